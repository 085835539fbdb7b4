//! Every vocabulary term Tessera reads or writes, defined once: oxigraph's own constants where
//! it has them (`rdf`, `rdfs`, `xsd`), the rest (`owl`, `skos`, `prov` and Tessera's own
//! namespace) here, in the same form (`NamedNodeRef` constants).

pub use oxigraph::model::vocab::{rdf, rdfs, xsd};

use oxigraph::model::NamedNodeRef;

/// OWL terms.
pub mod owl {
    use super::NamedNodeRef;
    /// `owl:ObjectProperty`
    pub const OBJECT_PROPERTY: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#ObjectProperty");
    /// `owl:DatatypeProperty`
    pub const DATATYPE_PROPERTY: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#DatatypeProperty");
    /// `owl:sameAs`
    pub const SAME_AS: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/2002/07/owl#sameAs");
}

/// SKOS terms.
pub mod skos {
    use super::NamedNodeRef;
    /// `skos:definition`
    pub const DEFINITION: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/2004/02/skos/core#definition");
    /// `skos:altLabel`
    pub const ALT_LABEL: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/2004/02/skos/core#altLabel");
}

/// PROV-O terms.
pub mod prov {
    use super::NamedNodeRef;
    /// `prov:Entity`
    pub const ENTITY: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/ns/prov#Entity");
    /// `prov:generatedAtTime`
    pub const GENERATED_AT_TIME: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("http://www.w3.org/ns/prov#generatedAtTime");
}

/// Tessera's own vocabulary: source records, their chunks and statements.
pub mod tessera {
    use super::NamedNodeRef;
    /// The namespace.
    pub const NS: &str = "https://tessera.dev/ns#";
    /// The graph that holds every source's metadata.
    pub const SOURCES_GRAPH: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("urn:tessera:sources");
    /// The graph that holds the commit counts entity indexes are checked against.
    pub const INDEX_GRAPH: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("urn:tessera:index");
    /// A source's text.
    pub const TEXT: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("https://tessera.dev/ns#text");
    /// SHA-256 of a source's text.
    pub const SHA256: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#sha256");
    /// The language model that read a source.
    pub const MODEL: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("https://tessera.dev/ns#model");
    /// The embedder that read a source.
    pub const EMBEDDER: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#embedder");
    /// The prompt version a source was read with.
    pub const PROMPT_VERSION: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#promptVersion");
    /// The schema fingerprint a source was read against.
    pub const SCHEMA_FINGERPRINT: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#schemaFingerprint");
    /// `target` or `self` alignment.
    pub const ALIGNMENT: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#alignment");
    /// The graph a source's triples were written to.
    pub const TARGET_GRAPH: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#targetGraph");
    /// Stands for the default graph as a `targetGraph`.
    pub const DEFAULT_GRAPH: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#defaultGraph");
    /// A chunk of a source.
    pub const CHUNK: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("https://tessera.dev/ns#chunk");
    /// A chunk's first character offset.
    pub const START: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("https://tessera.dev/ns#start");
    /// A chunk's end character offset.
    pub const END: NamedNodeRef<'_> = NamedNodeRef::new_unchecked("https://tessera.dev/ns#end");
    /// A reified statement of a source.
    pub const STATEMENT: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#statement");
    /// How many texts' commits an entity index must hold (see the reader).
    pub const INDEX_SEQ: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#indexSeq");
    /// Marks a source as an example (`true`): its text and its triples are few-shot examples
    /// for later reads into the same graph.
    pub const EXAMPLE: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#example");
    /// The source whose reading added a relation to the schema.
    pub const INTRODUCED_BY: NamedNodeRef<'_> =
        NamedNodeRef::new_unchecked("https://tessera.dev/ns#introducedBy");
}
