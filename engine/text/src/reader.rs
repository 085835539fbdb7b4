//! The reader: what `INSERT TEXT` and `DROP SOURCE` do to a store. Entry points:
//! [`Reader::read`] (texts in, one report per text; decoded together through the model, each
//! committed on its own) and [`Reader::drop_source`].
//!
//! The EDC+R pipeline runs outside the write lock against the store's own schema (read from
//! the store, indexed by [`tessera_storage::SchemaIndex`]); mentions are then linked to known
//! entities ([`crate::link`]) and each text's plan is committed in one transaction
//! ([`crate::commit`]). Everything is plain RDF, so provenance is a SPARQL query away:
//!
//! ```sparql
//! SELECT ?source ?text WHERE {
//!   GRAPH ?source { ?s ?p ?o }
//!   GRAPH <urn:tessera:sources> { ?source <https://tessera.dev/ns#text> ?text }
//! }
//! ```

use crate::commit::{commit, hex, Provenance, TextReport};
use crate::link::{link, LinkOptions};
use crate::pipeline::{Align, EdcOptions, Pipeline};
use crate::provenance::check_source_graph;
use crate::schema::{definition_text, Schema};
use crate::{check_text, InputError, ModelError, TextError};
use oxigraph::model::{GraphNameRef, NamedNode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tessera_llm::{Embedder, LanguageModel, ModelCache, ModelOptions};
use tessera_storage::entities::EntityIndex;
use tessera_storage::{Relation, SchemaIndex, Storage};

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

/// The loaded models.
struct Models {
    llm: LanguageModel,
    embedder: Embedder,
}

/// Reads text into a store: configuration, models loaded on first use, schema and entity
/// indexes kept between calls. `Send + Sync`; share it behind an `Arc`.
pub struct Reader {
    config: TextConfig,
    models: Mutex<Option<Arc<Models>>>,
    indexes: Mutex<HashMap<String, SchemaIndex>>,
    entities: Mutex<HashMap<String, EntityIndex>>,
}

impl Reader {
    /// A reader with `config`; nothing is loaded yet.
    pub fn new(config: TextConfig) -> Self {
        Self {
            config,
            models: Mutex::new(None),
            indexes: Mutex::new(HashMap::new()),
            entities: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Loads the models on first use (pulling registry models that are not cached yet).
    fn models(&self) -> Result<Arc<Models>, TextError> {
        let mut slot = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = &*slot {
            return Ok(m.clone());
        }
        let failed = |what: &'static str, name: &str| {
            let name = name.to_owned();
            move |e: ModelError| TextError::Model {
                what,
                name,
                source: Box::new(e),
            }
        };
        let cache = ModelCache::default();
        let resolve = |what: &'static str, name: &str| -> Result<PathBuf, TextError> {
            cache
                .resolve_or_pull(name, &mut |_| {})
                .map_err(|e| failed(what, name)(e.into()))
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
        .map_err(|e| failed("language", &self.config.llm)(e.into()))?;
        let embedder = Embedder::load(&emb_path)
            .map_err(|e| failed("embedding", &self.config.embedder)(e.into()))?;
        let m = Arc::new(Models { llm, embedder });
        *slot = Some(m.clone());
        Ok(m)
    }

    fn schema_index<'a>(
        &self,
        storage: &Storage,
        models: &Models,
        indexes: &'a mut HashMap<String, SchemaIndex>,
        schema: Option<&NamedNode>,
    ) -> Result<&'a SchemaIndex, TextError> {
        let key = schema.map_or_else(|| "all".to_owned(), |s| s.as_str().to_owned());
        let relations = storage.schema_relations(schema.map(NamedNode::as_ref))?;
        let path = index_file(storage, "schema", &key);
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

    /// The entity index of the target graph, in line with the store.
    fn entity_index<'a>(
        &self,
        storage: &Storage,
        models: &Models,
        indexes: &'a mut HashMap<String, EntityIndex>,
        graph: Option<&NamedNode>,
    ) -> Result<&'a EntityIndex, TextError> {
        let key = graph.map_or_else(String::new, |g| g.as_str().to_owned());
        let g = graph.map_or(GraphNameRef::DefaultGraph, |g| g.as_ref().into());
        let labels = storage.entity_labels(g)?;
        let path = index_file(storage, "entities", &key);
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

    /// Reads several texts into `storage`, decoding them together through the model; each
    /// text is committed on its own (atomically), so one bad text does not stop the others.
    /// With several texts, `opts.source` must be `None` (each gets the IRI of its hash).
    pub fn read(
        &self,
        storage: &Storage,
        texts: &[&str],
        opts: &TextOptions,
    ) -> Result<Vec<Result<TextReport, TextError>>, TextError> {
        if texts.len() > 1 && opts.source.is_some() {
            return Err(InputError::OneSourceManyTexts.into());
        }
        if let Some(source) = &opts.source {
            check_source_graph(source, opts.graph.as_ref(), opts.schema.as_ref())?;
        }
        // Texts that cannot be read fail alone, before the model runs.
        let mut results: Vec<Option<Result<TextReport, TextError>>> = texts
            .iter()
            .map(|t| check_text(t).err().map(|e| Err(e.into())))
            .collect();
        let good: Vec<usize> = (0..texts.len()).filter(|&i| results[i].is_none()).collect();
        if !good.is_empty() {
            let models = self.models()?;
            let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
            let index = self.schema_index(storage, &models, &mut indexes, opts.schema.as_ref())?;
            let schema = Schema::new(index);
            let edc_opts = EdcOptions {
                align: opts.align,
                refine: opts.refine,
                ..self.config.edc.clone()
            };
            let pipeline = Pipeline::new(&models.llm, &models.embedder, edc_opts);
            let batch: Vec<&str> = good.iter().map(|&i| texts[i]).collect();
            let plans = pipeline.run(&batch, &schema)?;
            let fingerprint = schema.fingerprint().to_owned();
            drop(indexes);
            // Entity linking, still outside the write lock.
            let mut entities = self.entities.lock().unwrap_or_else(|e| e.into_inner());
            let entity_index =
                self.entity_index(storage, &models, &mut entities, opts.graph.as_ref())?;
            let (links, link_stats) = link(
                &plans,
                entity_index,
                &models.llm,
                &models.embedder,
                &LinkOptions::default(),
            )?;
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
                results[i] = Some(commit(
                    storage,
                    &self.config,
                    texts[i],
                    plan,
                    &links,
                    opts,
                    &prov,
                ));
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
                let mut entities = self.entities.lock().unwrap_or_else(|e| e.into_inner());
                self.entity_index(storage, &models, &mut entities, opts.graph.as_ref())?;
                drop(entities);
                if grew_schema {
                    let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
                    self.schema_index(storage, &models, &mut indexes, opts.schema.as_ref())?;
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(InputError::Empty.into())))
            .collect())
    }

    /// Removes a source (`DROP SOURCE`): its metadata, its graph, and each of its triples from
    /// the target graph unless another source supports it. Returns the number of triples
    /// removed from the target graph; `None` if there was no such source.
    pub fn drop_source(
        &self,
        storage: &Storage,
        source: &NamedNode,
    ) -> Result<Option<usize>, TextError> {
        storage.write(|tx| crate::provenance::drop_source(tx, source))
    }
}

/// Where the index of `kind` for `key` (a schema or graph IRI) lives beside the store (`None`
/// for an in-memory store): the key is hashed into the file name.
fn index_file(storage: &Storage, kind: &str, key: &str) -> Option<PathBuf> {
    let file = format!("{kind}-{}.idx", &hex(&Sha256::digest(key.as_bytes()))[..16]);
    storage.index_path(&file)
}
