//! The schema registry: the relations the store itself declares, and the HNSW index of their
//! definition embeddings that the text pipeline retrieves from.
//!
//! Entry points: [`Storage::schema_relations`] reads the schema from the store (however it got
//! there: RDF load, SPARQL update, CSV import) and [`SchemaIndex::sync`] brings the persisted
//! index in line with it, embedding only what is new or changed. A relation is a subject typed
//! `rdf:Property`, `owl:ObjectProperty` or `owl:DatatypeProperty`, named by `rdfs:label` (else
//! its IRI's local name), defined by `skos:definition` (else `rdfs:comment`), with an optional
//! `rdfs:range`.

use crate::vector::VectorIndex;
use crate::vocab::{owl, rdf, rdfs, skos};
use crate::{Storage, StorageError};
use oxigraph::model::{GraphNameRef, NamedNodeRef, NamedOrBlankNodeRef, Term, TermRef};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A relation of the schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Relation {
    /// Its IRI.
    pub iri: String,
    /// `rdfs:label`, else the local name of the IRI.
    pub label: String,
    /// `skos:definition`, else `rdfs:comment`, else empty.
    pub definition: String,
    /// `rdfs:range`, if declared.
    pub range: Option<String>,
}

fn nn(iri: &str) -> NamedNodeRef<'_> {
    NamedNodeRef::new_unchecked(iri)
}

/// The local name of an IRI (after the last `#`, `/` or `:`).
pub fn local_name(iri: &str) -> &str {
    iri.rsplit(['#', '/', ':']).next().unwrap_or(iri)
}

impl Storage {
    /// The relations declared in `graph` (`None`: in any graph), sorted by IRI.
    pub fn schema_relations(
        &self,
        graph: Option<NamedNodeRef<'_>>,
    ) -> Result<Vec<Relation>, StorageError> {
        let g = graph.map(GraphNameRef::from);
        let mut found: BTreeMap<String, Relation> = BTreeMap::new();
        for class in [
            rdf::PROPERTY.as_str(),
            owl::OBJECT_PROPERTY.as_str(),
            owl::DATATYPE_PROPERTY.as_str(),
        ] {
            for q in self.store.quads_for_pattern(
                None,
                Some(nn(rdf::TYPE.as_str())),
                Some(nn(class).into()),
                g,
            ) {
                let q = q?;
                let NamedOrBlankNodeRef::NamedNode(s) = q.subject.as_ref() else {
                    continue;
                };
                if found.contains_key(s.as_str()) {
                    continue;
                }
                let first = |p: &str| -> Result<Option<Term>, StorageError> {
                    // Prefer an English or untagged literal for text.
                    let mut best: Option<Term> = None;
                    for q in self
                        .store
                        .quads_for_pattern(Some(s.into()), Some(nn(p)), None, g)
                    {
                        let o = q?.object;
                        let good = match o.as_ref() {
                            TermRef::Literal(l) => {
                                l.language().is_none_or(|lang| lang.starts_with("en"))
                            }
                            _ => true,
                        };
                        if good {
                            return Ok(Some(o));
                        }
                        best.get_or_insert(o);
                    }
                    Ok(best)
                };
                let text = |t: Option<Term>| match t {
                    Some(Term::Literal(l)) => Some(l.value().to_owned()),
                    _ => None,
                };
                let label = text(first(rdfs::LABEL.as_str())?)
                    .unwrap_or_else(|| local_name(s.as_str()).to_owned());
                let definition = text(first(skos::DEFINITION.as_str())?)
                    .or(text(first(rdfs::COMMENT.as_str())?))
                    .unwrap_or_default();
                let range = match first(rdfs::RANGE.as_str())? {
                    Some(Term::NamedNode(n)) => Some(n.into_string()),
                    _ => None,
                };
                found.insert(
                    s.as_str().to_owned(),
                    Relation {
                        iri: s.as_str().to_owned(),
                        label,
                        definition,
                        range,
                    },
                );
            }
        }
        Ok(found.into_values().collect())
    }

    /// Where the index of a schema selection lives beside a durable store.
    pub fn index_path(&self, name: &str) -> Option<PathBuf> {
        self.location().map(|p| p.join("indexes").join(name))
    }
}

/// SHA-256 over everything of the relations that the index depends on.
pub fn fingerprint(relations: &[Relation]) -> String {
    let keys: Vec<String> = relations.iter().map(entry_key).collect();
    crate::vector::fingerprint(&keys)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Index key of a relation: its IRI and a hash of the text that was embedded, so that a changed
/// definition is re-embedded and an unchanged one is reused.
fn entry_key(r: &Relation) -> String {
    let mut h = Sha256::new();
    h.update(r.label.as_bytes());
    h.update([0]);
    h.update(r.definition.as_bytes());
    h.update([0]);
    h.update(r.range.as_deref().unwrap_or("").as_bytes());
    format!("{}\u{0}{}", r.iri, &hex(&h.finalize())[..16])
}

/// The schema's relations with the HNSW index of their definition embeddings.
#[derive(Debug)]
pub struct SchemaIndex {
    relations: Vec<Relation>,
    keys: Vec<String>,
    index: VectorIndex,
    path: Option<PathBuf>,
}

/// Embeds relations (the caller decides the text and the model): one vector per relation.
pub type EmbedRelations<'a> = dyn FnMut(&[&Relation]) -> Result<Vec<Vec<f32>>, String> + 'a;

impl SchemaIndex {
    /// Brings an index in line with `relations`: reuses `current` or the file at `path` when
    /// they match (same embedder, same content), else embeds what is missing, rebuilds the
    /// HNSW graph and saves it. Returns the index and whether anything was (re)embedded.
    pub fn sync(
        current: Option<SchemaIndex>,
        path: Option<&Path>,
        relations: Vec<Relation>,
        identity: &str,
        dim: usize,
        embed: &mut EmbedRelations<'_>,
    ) -> Result<(SchemaIndex, bool), StorageError> {
        let keys: Vec<String> = relations.iter().map(entry_key).collect();
        let (index, changed) = VectorIndex::sync(
            current.map(|c| c.index),
            path,
            "schema definitions",
            &keys,
            identity,
            dim,
            &mut |missing: &[usize]| {
                let rels: Vec<&Relation> = missing.iter().map(|&i| &relations[i]).collect();
                embed(&rels)
            },
        )?;
        Ok((
            SchemaIndex {
                relations,
                keys,
                index,
                path: path.map(Path::to_owned),
            },
            changed,
        ))
    }

    /// Whether the index holds exactly `relations` as they are now (labels, definitions,
    /// ranges): then [`SchemaIndex::sync`] would change nothing.
    pub fn matches(&self, relations: &[Relation]) -> bool {
        self.keys.len() == relations.len()
            && self
                .keys
                .iter()
                .zip(relations)
                .all(|(k, r)| *k == entry_key(r))
    }

    /// The relations, sorted by IRI.
    pub fn relations(&self) -> &[Relation] {
        &self.relations
    }

    /// The content fingerprint.
    pub fn fingerprint(&self) -> &str {
        self.index.fingerprint()
    }

    /// Where the index is saved (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The `k` relations with the definitions nearest to `embedding`, with cosine similarity.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Vec<(&Relation, f32)> {
        let pos: std::collections::HashMap<&str, usize> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        self.index
            .search(embedding, k)
            .into_iter()
            .filter_map(|(key, s)| pos.get(key).map(|&i| (&self.relations[i], s)))
            .collect()
    }
}
