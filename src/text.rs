//! Reading text into the store: `INSERT TEXT` and `DROP SOURCE` behind [`crate::Database`].
//!
//! Entry points: [`crate::Database::insert_text`], [`crate::Database::insert_texts`] (bulk,
//! batched through the model) and [`crate::Database::drop_source`]. The EDC+R pipeline
//! (`tessera_engine::edc`) runs outside the write lock against the store's own schema (read
//! from the store, indexed by `tessera_storage::SchemaIndex`); each text's plan is then
//! committed in one transaction: canonical triples in the target graph and in the source's own
//! named graph, entity labels, relations added by self-canonicalization, and the source's
//! metadata (text, hash, chunk offsets, model, prompt version, schema fingerprint, time, and a
//! reified statement per triple naming the chunk that stated it) in the sources graph. Mentions
//! are linked to known entities first (`crate::link`). Everything is plain RDF, so provenance
//! is a SPARQL query away:
//!
//! ```sparql
//! SELECT ?source ?text WHERE {
//!   GRAPH ?source { ?s ?p ?o }
//!   GRAPH <urn:tessera:sources> { ?source <https://tessera.dev/ns#text> ?text }
//! }
//! ```

use crate::link::Link;
use crate::Error;
use oxigraph::model::{
    GraphName, GraphNameRef, Literal, NamedNode, NamedNodeRef, NamedOrBlankNode, Quad, Term,
};
use oxigraph::store::Transaction;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tessera_engine::edc::{
    self, definition_text, name_key, Align, EdcOptions, Object, Pipeline, Plan, RelationRef,
    SchemaRelation, SchemaView,
};
use tessera_engine::{Embedder, LanguageModel, ModelCache, ModelOptions};
use tessera_storage::entities::{EntityIndex, SKOS_ALT_LABEL};
use tessera_storage::schema::{local_name, vocab, Relation};
use tessera_storage::SchemaIndex;

/// The graph that holds every source's metadata.
pub const SOURCES_GRAPH: &str = "urn:tessera:sources";
/// Tessera's vocabulary.
pub const NS: &str = "https://tessera.dev/ns#";
const PROV_ENTITY: &str = "http://www.w3.org/ns/prov#Entity";
const PROV_GENERATED_AT: &str = "http://www.w3.org/ns/prov#generatedAtTime";
const OWL_SAME_AS: &str = "http://www.w3.org/2002/07/owl#sameAs";
const RDF_SUBJECT: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#subject";
const RDF_PREDICATE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#predicate";
const RDF_OBJECT: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#object";
const XSD_DATE_TIME: &str = "http://www.w3.org/2001/XMLSchema#dateTime";
const XSD_INTEGER: &str = "http://www.w3.org/2001/XMLSchema#integer";

/// Which models read text, and how entities and new relations are named.
#[derive(Debug, Clone)]
pub struct TextConfig {
    /// Language model: a name from the model registry or a GGUF path.
    pub llm: String,
    /// Embedder: a registry name or a directory.
    pub embedder: String,
    /// Inference threads.
    pub threads: usize,
    /// Base IRI of minted entities.
    pub entity_base: String,
    /// Base IRI of relations added by self-canonicalization.
    pub relation_base: String,
    /// Pipeline knobs (alignment and refinement are overridden per request).
    pub edc: EdcOptions,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            llm: "qwen2.5-0.5b".into(),
            embedder: "minilm".into(),
            threads: ModelOptions::default().threads,
            entity_base: "http://tessera.local/entity/".into(),
            relation_base: "http://tessera.local/relation/".into(),
            edc: EdcOptions::default(),
        }
    }
}

/// Options of one `INSERT TEXT`.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// Target graph (`None`: the default graph).
    pub graph: Option<NamedNode>,
    /// Graph holding the target schema (`None`: every relation declared in the store).
    pub schema: Option<NamedNode>,
    /// Target alignment (default) or self-canonicalization.
    pub align: Align,
    /// EDC+R refinement rounds.
    pub refine: usize,
    /// The source's IRI (`None`: derived from the text's SHA-256). Inserting a text under an
    /// existing source IRI replaces that source.
    pub source: Option<NamedNode>,
}

/// What one `INSERT TEXT` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TextReport {
    /// The source IRI.
    pub source: String,
    /// Canonical triples written (subject, predicate, object in N-Triples).
    pub triples: Vec<[String; 3]>,
    /// The same triples as names: the entity's name as the text gave it, the relation's
    /// label, the literal's value.
    pub facts: Vec<[String; 3]>,
    /// Triples not written and why.
    pub dropped: Vec<DroppedTriple>,
    /// Relations added to the schema.
    pub relations_added: Vec<String>,
    /// Mentions resolved to entities already in the store.
    pub entities_linked: usize,
    /// Of those, mentions spelled differently from every label of their entity (recorded as
    /// `skos:altLabel`).
    pub aliases_added: usize,
    /// Entities created.
    pub entities_created: usize,
    /// Of those, entities probably the same as a known one (recorded as `owl:sameAs`).
    pub same_as_added: usize,
    /// Number of chunks the text was read in.
    pub chunks: usize,
    /// Counters and time per stage.
    pub stats: ReportStats,
}

/// A dropped triple in a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DroppedTriple {
    /// As extracted.
    pub triple: [String; 3],
    /// Why it was dropped.
    pub reason: String,
}

/// Counters of a report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReportStats {
    /// Milliseconds in extraction.
    pub extract_ms: u64,
    /// Milliseconds writing definitions.
    pub define_ms: u64,
    /// Milliseconds canonicalizing.
    pub canonicalize_ms: u64,
    /// Milliseconds in refinement.
    pub refine_ms: u64,
    /// Milliseconds committing.
    pub commit_ms: u64,
    /// Model calls.
    pub model_calls: usize,
    /// Prompt tokens (prefix-cache hits included).
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Generated tokens.
    pub generated_tokens: usize,
    /// Relations matched by name, by similarity, by the model.
    pub relations_by_name: usize,
    /// See `relations_by_name`.
    pub relations_by_similarity: usize,
    /// See `relations_by_name`.
    pub relations_by_model: usize,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why reading a text failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// The text cannot be read (empty, too large, binary).
    #[error("the text cannot be read: {0}")]
    Input(String),
    /// A model could not be found or loaded.
    #[error("loading the {what} model {name:?}: {message}")]
    Model {
        /// `language` or `embedding`.
        what: &'static str,
        /// The name or path asked for.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The pipeline failed.
    #[error("reading text: {0}")]
    Pipeline(String),
    /// An IRI could not be formed.
    #[error("invalid IRI: {0}")]
    Iri(String),
    /// The options cannot be honoured as given (a SOURCE that names a graph holding other
    /// data, which dropping or re-reading the source would wipe).
    #[error("{0}")]
    Options(String),
}

/// Refuses a source IRI that names a graph other data lives in: a source's own graph is
/// replaced when the source is read again and cleared when it is dropped, so it must be a
/// graph of its own, never the target graph, the schema graph or the sources graph.
fn check_source_graph(
    source: &NamedNode,
    target: Option<&NamedNode>,
    schema: Option<&NamedNode>,
) -> Result<(), TextError> {
    let clash = if target == Some(source) {
        "the target graph"
    } else if schema == Some(source) {
        "the schema graph"
    } else if source.as_str() == SOURCES_GRAPH {
        "the graph of source records"
    } else {
        return Ok(());
    };
    Err(TextError::Options(format!(
        "SOURCE <{}> is {clash}: a source's triples also live in a graph named by the source, which is replaced when the source is read again and cleared by DROP SOURCE, so a source needs an IRI of its own",
        source.as_str()
    )))
}

impl From<edc::EdcError> for TextError {
    fn from(e: edc::EdcError) -> Self {
        match e {
            edc::EdcError::Input(m) => Self::Input(m),
            other => Self::Pipeline(other.to_string()),
        }
    }
}

/// The loaded models.
pub(crate) struct Models {
    llm: LanguageModel,
    embedder: Embedder,
}

/// Shared state of text ingestion: configuration, lazily loaded models, schema indexes.
pub(crate) struct TextState {
    config: TextConfig,
    models: Mutex<Option<Arc<Models>>>,
    indexes: Mutex<HashMap<String, SchemaIndex>>,
    entities: Mutex<HashMap<String, EntityIndex>>,
}

impl TextState {
    pub(crate) fn new(config: TextConfig) -> Self {
        Self {
            config,
            models: Mutex::new(None),
            indexes: Mutex::new(HashMap::new()),
            entities: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Loads the models on first use (pulling registry models that are not cached yet).
    pub(crate) fn models(&self) -> Result<Arc<Models>, TextError> {
        let mut slot = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = &*slot {
            return Ok(m.clone());
        }
        let cache = ModelCache::default();
        let resolve = |what: &'static str, name: &str| -> Result<PathBuf, TextError> {
            cache
                .resolve_or_pull(name, &mut |_| {})
                .map_err(|e| TextError::Model {
                    what,
                    name: name.to_owned(),
                    message: e.to_string(),
                })
        };
        let llm_path = resolve("language", &self.config.llm)?;
        let emb_path = resolve("embedding", &self.config.embedder)?;
        tracing::info!(llm = %llm_path.display(), embedder = %emb_path.display(), "loading models");
        let llm = LanguageModel::load(
            &llm_path,
            &ModelOptions {
                threads: self.config.threads,
                ..ModelOptions::default()
            },
        )
        .map_err(|e| TextError::Model {
            what: "language",
            name: self.config.llm.clone(),
            message: e.to_string(),
        })?;
        let embedder = Embedder::load(&emb_path).map_err(|e| TextError::Model {
            what: "embedding",
            name: self.config.embedder.clone(),
            message: e.to_string(),
        })?;
        let m = Arc::new(Models { llm, embedder });
        *slot = Some(m.clone());
        Ok(m)
    }
}

/// The schema as the pipeline sees it: a synced [`SchemaIndex`] plus lookup by name.
struct View<'a> {
    index: &'a SchemaIndex,
    by_name: HashMap<String, usize>,
}

impl<'a> View<'a> {
    fn new(index: &'a SchemaIndex) -> Self {
        let mut by_name = HashMap::new();
        for (i, r) in index.relations().iter().enumerate() {
            by_name.entry(name_key(&r.label)).or_insert(i);
            by_name.entry(name_key(local_name(&r.iri))).or_insert(i);
        }
        Self { index, by_name }
    }
}

fn to_view(r: &Relation) -> SchemaRelation {
    SchemaRelation {
        iri: r.iri.clone(),
        label: r.label.clone(),
        definition: r.definition.clone(),
        range: r.range.clone(),
    }
}

impl SchemaView for View<'_> {
    fn relation_count(&self) -> usize {
        self.index.relations().len()
    }
    fn nearest(&self, embedding: &[f32], k: usize) -> Vec<(SchemaRelation, f32)> {
        self.index
            .nearest(embedding, k)
            .into_iter()
            .map(|(r, s)| (to_view(r), s))
            .collect()
    }
    fn labels(&self) -> Vec<String> {
        self.index
            .relations()
            .iter()
            .map(|r| r.label.clone())
            .collect()
    }
    fn by_name(&self, name: &str) -> Option<SchemaRelation> {
        self.by_name
            .get(&name_key(name))
            .map(|&i| to_view(&self.index.relations()[i]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nn(iri: &str) -> Result<NamedNode, TextError> {
    NamedNode::new(iri).map_err(|e| TextError::Iri(format!("<{iri}>: {e}")))
}

fn tessera(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{NS}{local}"))
}

/// The IRI of an entity named `label`: the base plus the label with spaces as underscores and
/// everything outside unreserved IRI characters percent-encoded.
pub fn entity_iri(base: &str, label: &str) -> String {
    let mut out = String::from(base);
    for c in label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
    {
        if c.is_alphanumeric() || "-._~()',!*".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// An entity's label back from its IRI (the inverse of [`entity_iri`]).
pub fn entity_label(base: &str, iri: &str) -> Option<String> {
    let rest = iri.strip_prefix(base)?;
    let mut bytes = Vec::with_capacity(rest.len());
    let raw = rest.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let Ok(b) = u8::from_str_radix(&rest[i + 1..i + 3], 16) {
                bytes.push(b);
                i += 3;
                continue;
            }
        }
        bytes.push(if raw[i] == b'_' { b' ' } else { raw[i] });
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

impl crate::Database {
    fn schema_index<'a>(
        &self,
        models: &Models,
        indexes: &'a mut HashMap<String, SchemaIndex>,
        schema: Option<&NamedNode>,
    ) -> Result<&'a SchemaIndex, Error> {
        let key = schema.map_or_else(|| "all".to_owned(), |s| s.as_str().to_owned());
        let relations = self
            .storage
            .schema_relations(schema.map(NamedNode::as_ref))?;
        let path = self.index_file("schema", &key);
        let current = indexes.remove(&key);
        let embedder = &models.embedder;
        let (index, _) = SchemaIndex::sync(
            current,
            path.as_deref(),
            relations,
            embedder.identity(),
            embedder.dim(),
            &mut |rels: &[&Relation]| {
                let texts: Vec<String> = rels
                    .iter()
                    .map(|r| definition_text(&r.label, &r.definition))
                    .collect();
                embedder.embed(&texts).map_err(|e| e.to_string())
            },
        )?;
        Ok(indexes.entry(key).or_insert(index))
    }

    /// Where the index of `kind` for `key` (a schema or graph IRI) lives beside the store
    /// (`None` for an in-memory store): the key is hashed into the file name.
    fn index_file(&self, kind: &str, key: &str) -> Option<std::path::PathBuf> {
        let file = format!("{kind}-{}.idx", &hex(&Sha256::digest(key.as_bytes()))[..16]);
        self.storage.index_path(&file)
    }

    /// The entity index of the target graph, in line with the store.
    fn entity_index<'a>(
        &self,
        models: &Models,
        indexes: &'a mut HashMap<String, EntityIndex>,
        graph: Option<&NamedNode>,
    ) -> Result<&'a EntityIndex, Error> {
        let key = graph.map_or_else(String::new, |g| g.as_str().to_owned());
        let g = graph.map_or(GraphNameRef::DefaultGraph, |g| g.as_ref().into());
        let labels = self.storage.entity_labels(g)?;
        let path = self.index_file("entities", &key);
        let current = indexes.remove(&key);
        let embedder = &models.embedder;
        let (index, _) = EntityIndex::sync(
            current,
            path.as_deref(),
            labels,
            embedder.identity(),
            embedder.dim(),
            &mut |texts: &[&str]| embedder.embed(texts).map_err(|e| e.to_string()),
        )?;
        Ok(indexes.entry(key).or_insert(index))
    }

    /// Reads one text into the store (`INSERT TEXT`): extraction, canonicalization against
    /// the store's schema and one atomic commit with provenance.
    pub fn insert_text(&self, text: &str, opts: &TextOptions) -> Result<TextReport, Error> {
        self.insert_texts(&[text], opts)?
            .pop()
            .ok_or_else(|| Error::Text(TextError::Pipeline("no result".into())))?
    }

    /// Reads several texts, decoding them together through the model; each text is committed
    /// on its own (atomically), so one bad text does not stop the others. With several
    /// texts, `opts.source` must be `None` (each gets the IRI of its hash).
    pub fn insert_texts(
        &self,
        texts: &[&str],
        opts: &TextOptions,
    ) -> Result<Vec<Result<TextReport, Error>>, Error> {
        if texts.len() > 1 && opts.source.is_some() {
            return Err(Error::Text(TextError::Input(
                "SOURCE names one text; several texts each get their own source".into(),
            )));
        }
        if let Some(source) = &opts.source {
            check_source_graph(source, opts.graph.as_ref(), opts.schema.as_ref())?;
        }
        // Texts that cannot be read fail alone, before the model runs.
        let mut results: Vec<Option<Result<TextReport, Error>>> = texts
            .iter()
            .map(|t| {
                edc::check_text(t)
                    .err()
                    .map(|e| Err(Error::Text(TextError::from(e))))
            })
            .collect();
        let good: Vec<usize> = (0..texts.len()).filter(|&i| results[i].is_none()).collect();
        if !good.is_empty() {
            let state = self.text.clone();
            let models = state.models().map_err(Error::Text)?;
            let mut indexes = state.indexes.lock().unwrap_or_else(|e| e.into_inner());
            let index = self.schema_index(&models, &mut indexes, opts.schema.as_ref())?;
            let view = View::new(index);
            let edc_opts = EdcOptions {
                align: opts.align,
                refine: opts.refine,
                ..state.config().edc.clone()
            };
            let pipeline = Pipeline::new(&models.llm, &models.embedder, edc_opts);
            let batch: Vec<&str> = good.iter().map(|&i| texts[i]).collect();
            let plans = pipeline
                .run(&batch, &view)
                .map_err(|e| Error::Text(e.into()))?;
            let fingerprint = index.fingerprint().to_owned();
            drop(indexes);
            // Entity linking, still outside the write lock.
            let mut entities = state.entities.lock().unwrap_or_else(|e| e.into_inner());
            let entity_index = self.entity_index(&models, &mut entities, opts.graph.as_ref())?;
            let (links, link_stats) = crate::link::link(
                &plans,
                entity_index,
                &models.llm,
                &models.embedder,
                &crate::link::LinkOptions::default(),
            )
            .map_err(|e| Error::Text(e.into()))?;
            drop(entities);
            for (((&i, mut plan), links), asked) in
                good.iter().zip(plans).zip(links).zip(link_stats.asked)
            {
                plan.stats.model_calls += asked;
                let prov = Provenance {
                    model: models.llm.name().to_owned(),
                    embedder: models.embedder.identity().to_owned(),
                    schema_fingerprint: fingerprint.clone(),
                };
                results[i] = Some(self.commit_plan(texts[i], plan, &links, opts, &prov));
            }
            // Bring the persisted indexes in line with what was committed: the new labels (and
            // relations) are embedded now, so the files agree with the store between batches.
            // A crash before this point leaves a file whose fingerprint no longer matches the
            // store: it is rebuilt at the next use.
            let committed: Vec<&TextReport> = results
                .iter()
                .filter_map(|r| r.as_ref().and_then(|r| r.as_ref().ok()))
                .collect();
            if !committed.is_empty() {
                let grew_schema = committed.iter().any(|r| !r.relations_added.is_empty());
                let mut entities = state.entities.lock().unwrap_or_else(|e| e.into_inner());
                self.entity_index(&models, &mut entities, opts.graph.as_ref())?;
                drop(entities);
                if grew_schema {
                    let mut indexes = state.indexes.lock().unwrap_or_else(|e| e.into_inner());
                    self.schema_index(&models, &mut indexes, opts.schema.as_ref())?;
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Text(TextError::Pipeline("skipped".into())))))
            .collect())
    }

    fn commit_plan(
        &self,
        text: &str,
        plan: Plan,
        links: &HashMap<String, Link>,
        opts: &TextOptions,
        prov: &Provenance,
    ) -> Result<TextReport, Error> {
        let t0 = Instant::now();
        let cfg = self.text.config();
        let digest = hex(&Sha256::digest(text.as_bytes()));
        let source = match &opts.source {
            Some(s) => s.clone(),
            None => nn(&format!("urn:tessera:source:{}", &digest[..32])).map_err(Error::Text)?,
        };
        let target: GraphName = opts
            .graph
            .clone()
            .map_or(GraphName::DefaultGraph, GraphName::from);
        let schema_graph: GraphName = opts
            .schema
            .clone()
            .map(GraphName::from)
            .unwrap_or_else(|| target.clone());
        let source_graph = GraphName::NamedNode(source.clone());
        let sources = GraphName::NamedNode(NamedNode::new_unchecked(SOURCES_GRAPH));
        let label = NamedNode::new_unchecked(vocab::RDFS_LABEL);
        let mut report = TextReport {
            source: source.as_str().to_owned(),
            triples: Vec::new(),
            facts: Vec::new(),
            dropped: plan
                .dropped
                .iter()
                .map(|d| DroppedTriple {
                    triple: d.triple.clone(),
                    reason: d.reason.clone(),
                })
                .collect(),
            relations_added: Vec::new(),
            entities_linked: 0,
            aliases_added: 0,
            entities_created: 0,
            same_as_added: 0,
            chunks: plan.chunks.len(),
            stats: ReportStats {
                extract_ms: ms(plan.stats.extract),
                define_ms: ms(plan.stats.define),
                canonicalize_ms: ms(plan.stats.canonicalize),
                refine_ms: ms(plan.stats.refine),
                commit_ms: 0,
                model_calls: plan.stats.model_calls,
                prompt_tokens: plan.stats.prompt_tokens,
                cached_tokens: plan.stats.cached_tokens,
                generated_tokens: plan.stats.generated_tokens,
                relations_by_name: plan.stats.by_name,
                relations_by_similarity: plan.stats.by_similarity,
                relations_by_model: plan.stats.by_model,
            },
        };
        let new_iris: Vec<NamedNode> = plan
            .new_relations
            .iter()
            .map(|r| nn(&format!("{}{}", cfg.relation_base, r.name)))
            .collect::<Result<_, _>>()
            .map_err(Error::Text)?;
        let now =
            Literal::new_typed_literal(oxsdatatypes_now(), NamedNode::new_unchecked(XSD_DATE_TIME));
        self.storage.write(|tx| -> Result<(), Error> {
            // Re-reading a source replaces it.
            if is_source(tx, source.as_ref())? {
                drop_source_in(tx, source.as_ref())?;
            }
            let mut entity_cache: HashMap<String, (NamedNode, Naming)> = HashMap::new();
            let add = |tx: &mut Transaction<'_>, s: &NamedNode, p: &NamedNode, o: Term| {
                for g in [&target, &source_graph] {
                    tx.insert(&Quad::new(s.clone(), p.clone(), o.clone(), g.clone()));
                }
            };
            for (r, iri) in plan.new_relations.iter().zip(&new_iris) {
                let g = &schema_graph;
                let rdf_type = NamedNode::new_unchecked(vocab::RDF_TYPE);
                tx.insert(&Quad::new(
                    iri.clone(),
                    rdf_type,
                    NamedNode::new_unchecked(vocab::RDF_PROPERTY),
                    g.clone(),
                ));
                tx.insert(&Quad::new(
                    iri.clone(),
                    label.clone(),
                    Literal::new_simple_literal(&r.name),
                    g.clone(),
                ));
                tx.insert(&Quad::new(
                    iri.clone(),
                    NamedNode::new_unchecked(vocab::SKOS_DEFINITION),
                    Literal::new_simple_literal(&r.definition),
                    g.clone(),
                ));
                tx.insert(&Quad::new(
                    iri.clone(),
                    tessera("introducedBy"),
                    source.clone(),
                    g.clone(),
                ));
                report.relations_added.push(iri.as_str().to_owned());
            }
            for (n, t) in plan.triples.iter().enumerate() {
                let predicate = match &t.relation {
                    RelationRef::Schema(r) => nn(&r.iri).map_err(Error::Text)?,
                    RelationRef::New(i) => new_iris[*i].clone(),
                };
                let subject = resolve_entity(
                    tx,
                    &cfg.entity_base,
                    &t.subject,
                    links,
                    &mut entity_cache,
                    &mut report,
                )?;
                let object: Term = match &t.object {
                    Object::Entity(name) => resolve_entity(
                        tx,
                        &cfg.entity_base,
                        name,
                        links,
                        &mut entity_cache,
                        &mut report,
                    )?
                    .into(),
                    Object::Literal { value, datatype } => {
                        if datatype == edc::literal::xsd::STRING {
                            Literal::new_simple_literal(value).into()
                        } else {
                            Literal::new_typed_literal(value, nn(datatype).map_err(Error::Text)?)
                                .into()
                        }
                    }
                };
                add(tx, &subject, &predicate, object.clone());
                // Which chunk stated it: a reified statement in the sources graph, so plain
                // SPARQL reaches the chunk's offsets from the triple.
                let statement =
                    NamedNode::new_unchecked(format!("{}#statement-{n}", source.as_str()));
                let chunk =
                    NamedNode::new_unchecked(format!("{}#chunk-{}", source.as_str(), t.chunk));
                tx.insert(&Quad::new(
                    source.clone(),
                    tessera("statement"),
                    statement.clone(),
                    sources.clone(),
                ));
                for (p, o) in [
                    (
                        NamedNode::new_unchecked(RDF_SUBJECT),
                        Term::from(subject.clone()),
                    ),
                    (
                        NamedNode::new_unchecked(RDF_PREDICATE),
                        Term::from(predicate.clone()),
                    ),
                    (NamedNode::new_unchecked(RDF_OBJECT), object.clone()),
                    (tessera("chunk"), Term::from(chunk)),
                ] {
                    tx.insert(&Quad::new(statement.clone(), p, o, sources.clone()));
                }
                report.triples.push([
                    subject.to_string(),
                    predicate.to_string(),
                    object.to_string(),
                ]);
                report.facts.push([
                    t.subject.clone(),
                    match &t.relation {
                        RelationRef::Schema(r) => r.label.clone(),
                        RelationRef::New(i) => plan.new_relations[*i].name.clone(),
                    },
                    t.object.text().to_owned(),
                ]);
            }
            let alt_label = NamedNode::new_unchecked(SKOS_ALT_LABEL);
            let same_as = NamedNode::new_unchecked(OWL_SAME_AS);
            for (name, (iri, naming)) in &entity_cache {
                let name = Literal::new_simple_literal(name);
                match naming {
                    Naming::Label => add(tx, iri, &label, name.into()),
                    Naming::AltLabel => add(tx, iri, &alt_label, name.into()),
                    Naming::SameAs(known) => {
                        add(tx, iri, &label, name.into());
                        add(tx, iri, &same_as, known.clone().into());
                    }
                }
            }
            // The source's metadata.
            let meta = |tx: &mut Transaction<'_>, s: &NamedNode, p: NamedNode, o: Term| {
                tx.insert(&Quad::new(s.clone(), p, o, sources.clone()));
            };
            meta(
                tx,
                &source,
                NamedNode::new_unchecked(vocab::RDF_TYPE),
                NamedNode::new_unchecked(PROV_ENTITY).into(),
            );
            meta(
                tx,
                &source,
                tessera("text"),
                Literal::new_simple_literal(text).into(),
            );
            meta(
                tx,
                &source,
                tessera("sha256"),
                Literal::new_simple_literal(&digest).into(),
            );
            meta(
                tx,
                &source,
                NamedNode::new_unchecked(PROV_GENERATED_AT),
                now.clone().into(),
            );
            meta(
                tx,
                &source,
                tessera("model"),
                Literal::new_simple_literal(&prov.model).into(),
            );
            meta(
                tx,
                &source,
                tessera("embedder"),
                Literal::new_simple_literal(&prov.embedder).into(),
            );
            meta(
                tx,
                &source,
                tessera("promptVersion"),
                Literal::new_simple_literal(edc::prompts::PROMPT_VERSION).into(),
            );
            meta(
                tx,
                &source,
                tessera("schemaFingerprint"),
                Literal::new_simple_literal(&prov.schema_fingerprint).into(),
            );
            meta(
                tx,
                &source,
                tessera("alignment"),
                Literal::new_simple_literal(match opts.align {
                    Align::Target => "target",
                    Align::SelfCanonical => "self",
                })
                .into(),
            );
            let target_term: Term = match &target {
                GraphName::NamedNode(g) => g.clone().into(),
                _ => tessera("defaultGraph").into(),
            };
            meta(tx, &source, tessera("targetGraph"), target_term);
            for (i, c) in plan.chunks.iter().enumerate() {
                let chunk = NamedNode::new_unchecked(format!("{}#chunk-{i}", source.as_str()));
                meta(tx, &source, tessera("chunk"), chunk.clone().into());
                let int = |v: usize| -> Term {
                    Literal::new_typed_literal(v.to_string(), NamedNode::new_unchecked(XSD_INTEGER))
                        .into()
                };
                meta(tx, &chunk, tessera("start"), int(c.start));
                meta(tx, &chunk, tessera("end"), int(c.end));
            }
            Ok(())
        })?;
        report.stats.commit_ms = ms(t0.elapsed());
        tracing::debug!(
            source = %report.source,
            triples = report.triples.len(),
            dropped = report.dropped.len(),
            "text committed"
        );
        Ok(report)
    }

    /// Removes a source (`DROP SOURCE`): its metadata, its graph, and each of its triples from
    /// the target graph unless another source supports it. Returns the number of triples
    /// removed from the target graph; `None` if there was no such source.
    pub fn drop_source(&self, source: &NamedNode) -> Result<Option<usize>, Error> {
        self.storage.write(|tx| -> Result<Option<usize>, Error> {
            if !is_source(tx, source.as_ref())? {
                return Ok(None);
            }
            // A source recorded before such IRIs were refused: clearing its graph would
            // clear the target graph (the user's own triples with it).
            let target = recorded_target(tx, source.as_ref())?;
            check_source_graph(source, target.as_ref(), None)?;
            Ok(Some(drop_source_in(tx, source.as_ref())?))
        })
    }
}

/// Where the provenance record comes from.
struct Provenance {
    model: String,
    embedder: String,
    schema_fingerprint: String,
}

fn oxsdatatypes_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn sources_graph() -> NamedNode {
    NamedNode::new_unchecked(SOURCES_GRAPH)
}

fn is_source(tx: &Transaction<'_>, source: NamedNodeRef<'_>) -> Result<bool, Error> {
    Ok(tx
        .quads_for_pattern(
            Some(source.into()),
            Some(NamedNodeRef::new_unchecked(vocab::RDF_TYPE)),
            Some(NamedNodeRef::new_unchecked(PROV_ENTITY).into()),
            Some(sources_graph().as_ref().into()),
        )
        .next()
        .transpose()?
        .is_some())
}

/// The named graph a source's triples were written to (`None`: the default graph).
fn recorded_target(
    tx: &Transaction<'_>,
    source: NamedNodeRef<'_>,
) -> Result<Option<NamedNode>, Error> {
    let sources = sources_graph();
    Ok(
        match tx
            .quads_for_pattern(
                Some(source.into()),
                Some(tessera("targetGraph").as_ref()),
                None,
                Some(sources.as_ref().into()),
            )
            .next()
            .transpose()?
            .map(|q| q.object)
        {
            Some(Term::NamedNode(n)) if n != tessera("defaultGraph") => Some(n),
            _ => None,
        },
    )
}

fn drop_source_in(tx: &mut Transaction<'_>, source: NamedNodeRef<'_>) -> Result<usize, Error> {
    let sources = sources_graph();
    let target: GraphName =
        recorded_target(tx, source)?.map_or(GraphName::DefaultGraph, GraphName::NamedNode);
    let own: Vec<Quad> = tx
        .quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(source)))
        .collect::<Result<_, _>>()?;
    let mut removed = 0;
    for q in &own {
        // Another source still supports the triple if its graph holds it too.
        let mut supported = false;
        for other in tx.quads_for_pattern(
            Some(q.subject.as_ref()),
            Some(q.predicate.as_ref()),
            Some(q.object.as_ref()),
            None,
        ) {
            let other = other?;
            if let GraphName::NamedNode(g) = &other.graph_name {
                if g.as_ref() != source && is_source(tx, g.as_ref())? {
                    supported = true;
                    break;
                }
            }
        }
        if !supported {
            let in_target = Quad::new(
                q.subject.clone(),
                q.predicate.clone(),
                q.object.clone(),
                target.clone(),
            );
            if tx.contains(&in_target)? {
                tx.remove(&in_target);
                removed += 1;
            }
        }
    }
    tx.clear_graph(GraphNameRef::NamedNode(source))?;
    tx.remove_named_graph(NamedOrBlankNode::from(source.into_owned()).as_ref())?;
    // Metadata: the source node and its chunk nodes.
    let meta: Vec<Quad> = tx
        .quads_for_pattern(
            Some(source.into()),
            None,
            None,
            Some(sources.as_ref().into()),
        )
        .collect::<Result<_, _>>()?;
    for q in &meta {
        if q.predicate == tessera("chunk") || q.predicate == tessera("statement") {
            if let Term::NamedNode(c) = &q.object {
                let chunk: Vec<Quad> = tx
                    .quads_for_pattern(
                        Some(c.as_ref().into()),
                        None,
                        None,
                        Some(sources.as_ref().into()),
                    )
                    .collect::<Result<_, _>>()?;
                for cq in &chunk {
                    tx.remove(cq);
                }
            }
        }
        tx.remove(q);
    }
    Ok(removed)
}

/// How a mention is written as a name of the entity it resolved to.
enum Naming {
    /// `rdfs:label` (a new entity, or one of the entity's own labels).
    Label,
    /// `skos:altLabel` (another spelling of a known entity).
    AltLabel,
    /// A new entity with `rdfs:label`, probably the same as this known one (`owl:sameAs`).
    SameAs(NamedNode),
}

fn subject_exists(tx: &Transaction<'_>, iri: &NamedNode) -> Result<bool, Error> {
    Ok(tx
        .quads_for_pattern(Some(iri.as_ref().into()), None, None, None)
        .next()
        .transpose()?
        .is_some())
}

/// The entity a mention names: the link chosen before the commit (when the entity still
/// exists), else an entity whose IRI is the mention's minted IRI, else one whose `rdfs:label`
/// is the mention, else a new one.
fn resolve_entity(
    tx: &Transaction<'_>,
    base: &str,
    raw: &str,
    links: &HashMap<String, Link>,
    cache: &mut HashMap<String, (NamedNode, Naming)>,
    report: &mut TextReport,
) -> Result<NamedNode, Error> {
    let mention = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((iri, _)) = cache.get(&mention) {
        return Ok(iri.clone());
    }
    let minted = nn(&entity_iri(base, &mention)).map_err(Error::Text)?;
    let minted_exists = subject_exists(tx, &minted)?;
    let linked = match links.get(raw) {
        Some(Link::Existing { iri, alias }) => {
            let iri = nn(iri).map_err(Error::Text)?;
            subject_exists(tx, &iri)?.then(|| {
                report.entities_linked += 1;
                if *alias {
                    report.aliases_added += 1;
                    (iri, Naming::AltLabel)
                } else {
                    (iri, Naming::Label)
                }
            })
        }
        Some(Link::Possibly { iri }) if !minted_exists => {
            let iri = nn(iri).map_err(Error::Text)?;
            subject_exists(tx, &iri)?.then(|| {
                report.entities_created += 1;
                report.same_as_added += 1;
                (minted.clone(), Naming::SameAs(iri))
            })
        }
        _ => None,
    };
    let resolved = match linked {
        Some(r) => r,
        None if minted_exists => {
            report.entities_linked += 1;
            (minted, Naming::Label)
        }
        None => {
            let by_label = tx
                .quads_for_pattern(
                    None,
                    Some(NamedNodeRef::new_unchecked(vocab::RDFS_LABEL)),
                    Some(Literal::new_simple_literal(&mention).as_ref().into()),
                    None,
                )
                .filter_map(|q| match q {
                    Ok(q) => match q.subject {
                        NamedOrBlankNode::NamedNode(n) => Some(Ok(n)),
                        NamedOrBlankNode::BlankNode(_) => None,
                    },
                    Err(e) => Some(Err(e)),
                })
                .next()
                .transpose()?;
            match by_label {
                Some(n) => {
                    report.entities_linked += 1;
                    (n, Naming::Label)
                }
                None => {
                    report.entities_created += 1;
                    (minted, Naming::Label)
                }
            }
        }
    };
    let iri = resolved.0.clone();
    cache.insert(mention, resolved);
    Ok(iri)
}

/// Executes an update request with the extension operations: standard parts go to oxigraph
/// unchanged, `INSERT TEXT` and `DROP SOURCE` run here. Returns a JSON report when the request
/// held extension operations.
pub(crate) fn execute_update(
    db: &crate::Database,
    request: &tessera_sparql::UpdateRequest,
) -> Result<Option<String>, tessera_sparql::UpdateError> {
    use tessera_sparql::extension::{self, AlignMode, Operation};
    use tessera_sparql::UpdateError;
    let ops = extension::parse(&request.update, request.base_iri.as_deref())?;
    if let [Operation::Standard(_)] = ops.as_slice() {
        return tessera_sparql::execute_update(db.storage(), request).map(|()| None);
    }
    let mut reports = Vec::new();
    for op in ops {
        match op {
            Operation::Standard(update) => {
                let req = tessera_sparql::UpdateRequest {
                    update,
                    ..request.clone()
                };
                tessera_sparql::execute_update(db.storage(), &req)?;
                reports.push(serde_json::json!({"operation": "update"}));
            }
            Operation::InsertText(t) => {
                let opts = TextOptions {
                    graph: t.graph,
                    schema: t.schema,
                    align: match t.align {
                        AlignMode::Target => Align::Target,
                        AlignMode::SelfCanonical => Align::SelfCanonical,
                    },
                    refine: t.refine,
                    source: t.source,
                };
                let report = db.insert_text(&t.text, &opts).map_err(|e| match e {
                    Error::Text(TextError::Input(m) | TextError::Options(m)) => {
                        UpdateError::Text(m)
                    }
                    Error::Text(e @ TextError::Model { .. }) => {
                        UpdateError::Unavailable(e.to_string())
                    }
                    Error::Storage(s) => UpdateError::Storage(s),
                    other => UpdateError::Unavailable(other.to_string()),
                })?;
                let mut v = serde_json::to_value(&report)
                    .map_err(|e| UpdateError::Invalid(e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("operation".into(), "insert text".into());
                }
                reports.push(v);
            }
            Operation::DropSource(s) => {
                let removed = db.drop_source(&s).map_err(|e| match e {
                    Error::Text(TextError::Options(m)) => UpdateError::Text(m),
                    Error::Storage(s) => UpdateError::Storage(s),
                    other => UpdateError::Invalid(other.to_string()),
                })?;
                reports.push(serde_json::json!({
                    "operation": "drop source",
                    "source": s.as_str(),
                    "found": removed.is_some(),
                    "triples_removed": removed.unwrap_or(0),
                }));
            }
        }
    }
    Ok(Some(
        serde_json::json!({ "operations": reports }).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_iris_round_trip() {
        let base = "http://tessera.local/entity/";
        for label in [
            "Alan Shepard",
            "Ærø",
            "AT&T Park",
            "A/B test",
            "100% Pure",
            "x_y",
        ] {
            let iri = entity_iri(base, label);
            assert!(NamedNode::new(&iri).is_ok(), "{iri}");
            if !label.contains('_') {
                assert_eq!(entity_label(base, &iri).as_deref(), Some(label), "{iri}");
            }
        }
        assert_eq!(
            entity_iri(base, "Alan  Shepard"),
            format!("{base}Alan_Shepard")
        );
    }

    #[test]
    fn dates_of_the_clock() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
