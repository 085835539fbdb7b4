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
use crate::examples::{store_examples, ExamplePool, StoreExample};
use crate::link::{link, LinkOptions};
use crate::model::TextModel;
use crate::pipeline::{Align, EdcOptions, Pipeline};
use crate::provenance::check_source_graph;
use crate::schema::{definition_text, Schema};
use crate::{check_text, EdcError, InputError, ModelError, TextError};
use oxigraph::model::{GraphNameRef, NamedNode, Term};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tessera_llm::{
    Cancel, Embedder, LanguageModel, ModelCache, ModelOptions, RemoteConfig, RemoteModel,
};
use tessera_storage::entities::{EntityIndex, EntityLabel};
use tessera_storage::vocab::tessera;
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
    /// Device of the language model: `cpu`, `cuda` or `cuda:N` (CUDA needs the `cuda`
    /// feature). The embedder runs on the CPU.
    pub device: String,
    /// Most sequences in the model's running batch; requests beyond it queue for a place.
    pub batch_width: usize,
    /// A language model behind OpenAI-compatible servers (vLLM, SGLang, llama.cpp's
    /// `llama-server`) in place of the in-engine one: `llm`, `threads` and `device` are then
    /// unused, and the embedder stays local.
    pub remote: Option<RemoteConfig>,
    /// `false`: this database reads no text; `INSERT TEXT` is refused (HTTP 503) and no model
    /// is ever loaded.
    pub enabled: bool,
    /// Base IRI of minted entities.
    pub entity_base: String,
    /// Base IRI of relations added by self-canonicalization.
    pub relation_base: String,
    /// Pipeline knobs (alignment and refinement are overridden per request).
    pub edc: EdcOptions,
    /// Most reading requests queued or running at once; more are refused with
    /// [`TextError::Busy`] (HTTP 429) rather than piling up.
    pub max_queued: usize,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            llm: "qwen2.5-0.5b".into(),
            embedder: "minilm".into(),
            threads: ModelOptions::default().threads,
            device: "cpu".into(),
            batch_width: ModelOptions::default().max_batch,
            remote: None,
            enabled: true,
            entity_base: "http://tessera.local/entity/".into(),
            relation_base: "http://tessera.local/relation/".into(),
            edc: EdcOptions::default(),
            max_queued: 8,
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
    /// Marks the source as an example: its text and triples become few-shot examples for
    /// later reads into the same graph (see [`crate::examples`]).
    pub example: bool,
    /// Stops reading between decode steps and before each commit (a timeout, a client
    /// gone): a text not yet committed is not written at all.
    pub cancel: Cancel,
}

/// What [`Reader::index`] did.
#[derive(Debug, Clone, Copy)]
pub struct IndexReport {
    /// Entity labels in the index.
    pub labels: usize,
    /// Of those, embedded by this call.
    pub embedded: usize,
    /// Relations in the schema index.
    pub relations: usize,
}

/// The loaded models.
struct Models {
    llm: Box<dyn TextModel>,
    embedder: Embedder,
}

/// Where the reader's models stand (served at `/ready`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelStatus {
    /// Reading is off ([`TextConfig::enabled`]): no model is ever loaded.
    Disabled,
    /// Not loaded yet: the first text, or [`Reader::load`], loads them.
    NotLoaded,
    /// Being fetched or loaded.
    Loading,
    /// Loaded and in use.
    Loaded(ModelsInfo),
    /// Loading failed; the next text tries again.
    Failed {
        /// Why.
        error: String,
    },
}

/// The models a reader loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelsInfo {
    /// The language model as configured (name, path or URL).
    pub llm: String,
    /// Its file.
    pub llm_path: String,
    /// The embedder as configured.
    pub embedder: String,
    /// Its directory.
    pub embedder_path: String,
    /// The language model's device.
    pub device: String,
    /// Inference threads.
    pub threads: usize,
    /// Seconds spent fetching and loading both.
    pub load_seconds: f64,
}

/// Progress of [`Reader::load`]: which model (`language` or `embedding`), and how far.
#[derive(Debug, Clone)]
pub enum LoadProgress {
    /// Downloading or verifying a model that is not cached yet.
    Fetch {
        /// `language` or `embedding`.
        what: &'static str,
        /// The name asked for.
        name: String,
        /// How far.
        progress: tessera_llm::PullProgress,
    },
    /// Reading the weights into memory.
    Load {
        /// `language` or `embedding`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
}

/// Running totals of a reader since it was made (served at `/metrics`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ReaderMetrics {
    /// Reading requests queued or running now.
    pub queued: usize,
    /// Texts committed.
    pub texts_read: u64,
    /// Texts that failed (nothing of them written).
    pub texts_failed: u64,
    /// Triples written.
    pub triples_written: u64,
    /// Candidate triples dropped.
    pub triples_dropped: u64,
    /// Model calls.
    pub model_calls: u64,
    /// Prompt tokens, prefix-cache hits included.
    pub prompt_tokens: u64,
    /// Of those, served from the prefix cache.
    pub cached_tokens: u64,
    /// Generated tokens.
    pub generated_tokens: u64,
    /// Model tokens per stage, summed over texts, in the order of
    /// [`TOKEN_STAGES`](crate::TOKEN_STAGES).
    pub stage_tokens: [crate::StageTokens; 5],
    /// Milliseconds per stage, summed over texts: extract, define, canonicalize, refine,
    /// check, commit.
    pub stage_ms: [u64; 6],
    /// Seconds the last model load took.
    pub model_load_seconds: Option<f64>,
}

/// The stage names of [`ReaderMetrics::stage_ms`], in order.
pub const STAGES: [&str; 6] = [
    "extract",
    "define",
    "canonicalize",
    "refine",
    "check",
    "commit",
];

/// Reads text into a store: configuration, models loaded on first use, schema and entity
/// indexes kept between calls. `Send + Sync`; share it behind an `Arc`.
pub struct Reader {
    config: TextConfig,
    models: Mutex<Option<Arc<Models>>>,
    status: Mutex<ModelStatus>,
    metrics: Mutex<ReaderMetrics>,
    definitions: crate::define::DefinitionCache,
    /// Shared with the reads in progress, which hold the version they started with.
    indexes: Mutex<HashMap<String, Arc<SchemaIndex>>>,
    entities: Mutex<HashMap<String, EntityIndex>>,
    /// Store examples per target graph, with the embeddings of every example text seen.
    examples: Mutex<HashMap<String, ExampleCache>>,
    queued: AtomicUsize,
}

/// A graph's example pool as last read, and the embeddings of example texts (kept across
/// changes to the pool, so a new example embeds only its own text).
#[derive(Default)]
struct ExampleCache {
    pool: Arc<ExamplePool>,
    embeddings: HashMap<String, Vec<f32>>,
}

/// Batches that [`Reader::read_many`] reads at once: while one batch's long extractions end
/// one by one, or it embeds, links and commits, the others' sequences take the places it
/// leaves in the model's batch. Four: with the kernels at the reading widths fast, two left a
/// sixth of the CPU idle (seeded 300: 0.918 / 0.974 / 1.032 texts/s with two / three / four).
pub const READS_IN_FLIGHT: usize = 4;

/// A place in the reader's admission queue, given back when dropped.
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Reader {
    /// A reader with `config`; nothing is loaded yet.
    pub fn new(config: TextConfig) -> Self {
        let status = if config.enabled {
            ModelStatus::NotLoaded
        } else {
            ModelStatus::Disabled
        };
        Self {
            config,
            models: Mutex::new(None),
            status: Mutex::new(status),
            metrics: Mutex::new(ReaderMetrics::default()),
            definitions: crate::define::DefinitionCache::default(),
            indexes: Mutex::new(HashMap::new()),
            entities: Mutex::new(HashMap::new()),
            examples: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
        }
    }

    /// A place in the admission queue, or [`TextError::Busy`] when it is full.
    fn admit(&self) -> Result<Admitted<'_>, TextError> {
        let queued = self.queued.fetch_add(1, Ordering::SeqCst) + 1;
        let admitted = Admitted(&self.queued);
        if queued > self.config.max_queued.max(1) {
            return Err(TextError::Busy { queued: queued - 1 });
        }
        Ok(admitted)
    }

    /// The configuration.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// Where the models stand.
    pub fn status(&self) -> ModelStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Running totals since this reader was made.
    pub fn metrics(&self) -> ReaderMetrics {
        let mut m = *self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.queued = self.queued.load(Ordering::SeqCst);
        m
    }

    fn set_status(&self, status: ModelStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }

    /// Fetches (if not cached) and loads the models now rather than on the first text,
    /// reporting progress; returns what was loaded. A server calls it at start.
    pub fn load(&self, progress: &mut dyn FnMut(LoadProgress)) -> Result<ModelsInfo, TextError> {
        self.load_models(progress)?;
        match self.status() {
            ModelStatus::Loaded(info) => Ok(info),
            _ => Err(TextError::Disabled),
        }
    }

    /// [`Reader::load`] on a thread of its own; the status says `Loading` from the moment this
    /// returns, so a server that starts listening next is not ready until the load ends.
    pub fn load_in_background(
        self: &Arc<Self>,
        mut progress: Box<dyn FnMut(LoadProgress) + Send>,
    ) -> std::thread::JoinHandle<Result<ModelsInfo, TextError>> {
        if self.config.enabled {
            self.set_status(ModelStatus::Loading);
        }
        let reader = self.clone();
        std::thread::spawn(move || reader.load(&mut *progress))
    }

    /// Loads the models on first use (pulling registry models that are not cached yet).
    fn models(&self) -> Result<Arc<Models>, TextError> {
        self.load_models(&mut |_| {})
    }

    fn load_models(
        &self,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Arc<Models>, TextError> {
        if !self.config.enabled {
            return Err(TextError::Disabled);
        }
        let mut slot = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = &*slot {
            return Ok(m.clone());
        }
        self.set_status(ModelStatus::Loading);
        let started = std::time::Instant::now();
        match self.load_now(progress) {
            Ok((m, mut info)) => {
                let m = Arc::new(m);
                *slot = Some(m.clone());
                info.load_seconds = started.elapsed().as_secs_f64();
                self.metrics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .model_load_seconds = Some(info.load_seconds);
                tracing::info!(
                    llm = %info.llm,
                    embedder = %info.embedder,
                    device = %info.device,
                    threads = info.threads,
                    seconds = format_args!("{:.1}", info.load_seconds),
                    "models loaded"
                );
                self.set_status(ModelStatus::Loaded(info));
                Ok(m)
            }
            Err(e) => {
                self.set_status(ModelStatus::Failed {
                    error: e.to_string(),
                });
                Err(e)
            }
        }
    }

    fn load_now(
        &self,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<(Models, ModelsInfo), TextError> {
        let failed = |what: &'static str, name: &str| {
            let name = name.to_owned();
            move |e: ModelError| TextError::Model {
                what,
                name,
                source: Box::new(e),
            }
        };
        // A remote model is connected to first: no file to fetch.
        let remote = match &self.config.remote {
            Some(remote) => {
                let shown = remote
                    .endpoints
                    .iter()
                    .map(|e| tessera_llm::download::without_credentials(e))
                    .collect::<Vec<_>>()
                    .join(" ");
                let what = remote.model.clone().unwrap_or_else(|| "remote".to_owned());
                progress(LoadProgress::Load {
                    what: "language",
                    name: what.clone(),
                });
                tracing::info!(endpoints = %shown, "connecting to the remote language model");
                let llm = RemoteModel::connect(remote)
                    .map_err(|e| failed("language", &what)(e.into()))?;
                Some((llm, shown))
            }
            None => None,
        };
        let cache = ModelCache::default();
        let mut resolve = |what: &'static str, name: &str| -> Result<PathBuf, TextError> {
            let path = cache
                .resolve_or_pull(name, &mut |p| {
                    progress(LoadProgress::Fetch {
                        what,
                        name: name.to_owned(),
                        progress: p,
                    })
                })
                .map_err(|e| failed(what, name)(e.into()))?;
            progress(LoadProgress::Load {
                what,
                name: name.to_owned(),
            });
            Ok(path)
        };
        // The language model as the pipeline uses it, and how `/ready` names it.
        let (llm, llm_name, llm_path, device, threads): (Box<dyn TextModel>, _, _, _, _) =
            match remote {
                Some((llm, shown)) => {
                    let (name, capacity) = (llm.name().to_owned(), llm.capacity());
                    (Box::new(llm), name, shown, "remote".to_owned(), capacity)
                }
                None => {
                    let path = resolve("language", &self.config.llm)?;
                    let (backend, ordinal) = tessera_llm::Backend::parse(&self.config.device)
                        .map_err(|e| failed("language", &self.config.llm)(ModelError::Device(e)))?;
                    let device = backend
                        .device(ordinal)
                        .map_err(|e| failed("language", &self.config.llm)(ModelError::Device(e)))?;
                    tracing::info!(llm = %path.display(), device = %self.config.device, "loading the language model");
                    let mut options = ModelOptions {
                        threads: self.config.threads,
                        max_batch: self.config.batch_width.max(1),
                        ..ModelOptions::default()
                    };
                    options.load.device = device;
                    let llm = LanguageModel::load(&path, &options)
                        .map_err(|e| failed("language", &self.config.llm)(e.into()))?;
                    (
                        Box::new(llm),
                        self.config.llm.clone(),
                        path.display().to_string(),
                        self.config.device.clone(),
                        self.config.threads,
                    )
                }
            };
        let emb_path = resolve("embedding", &self.config.embedder)?;
        tracing::info!(embedder = %emb_path.display(), "loading the embedder");
        let embedder = Embedder::load(&emb_path)
            .map_err(|e| failed("embedding", &self.config.embedder)(e.into()))?;
        let info = ModelsInfo {
            llm: llm_name,
            llm_path,
            embedder: self.config.embedder.clone(),
            embedder_path: emb_path.display().to_string(),
            device,
            threads,
            load_seconds: 0.0,
        };
        Ok((Models { llm, embedder }, info))
    }

    fn schema_index(
        &self,
        storage: &Storage,
        models: &Models,
        indexes: &mut HashMap<String, Arc<SchemaIndex>>,
        schema: Option<&NamedNode>,
    ) -> Result<Arc<SchemaIndex>, TextError> {
        let key = schema.map_or_else(|| "all".to_owned(), |s| s.as_str().to_owned());
        let relations = storage.schema_relations(schema.map(NamedNode::as_ref))?;
        if let Some(current) = indexes.get(&key) {
            if current.matches(&relations) {
                return Ok(current.clone());
            }
        }
        let path = index_file(storage, "schema", &key, "idx");
        // A version still in use by a read in progress stays with it; this one starts from
        // the file.
        let current = indexes.remove(&key).and_then(|c| Arc::try_unwrap(c).ok());
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
        let index = Arc::new(index);
        indexes.insert(key, index.clone());
        Ok(index)
    }

    /// The entity index of the target graph: in memory after the first use (kept in line by
    /// appending what each commit wrote), else opened from its log, else built from the
    /// store's labels (with progress).
    fn entity_index<'a>(
        &self,
        storage: &Storage,
        models: &Models,
        map: &'a mut HashMap<String, EntityIndex>,
        graph: Option<&NamedNode>,
    ) -> Result<&'a mut EntityIndex, TextError> {
        let key = graph_key(graph);
        Ok(match map.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut last = 0;
                let (index, _) =
                    load_entity_index(storage, &models.embedder, graph, &mut |done, total| {
                        // A line per tenth: a large graph takes minutes the first time.
                        if total > 0 && done * 10 / total > last {
                            last = done * 10 / total;
                            tracing::info!(done, total, "indexing entity labels");
                        }
                    })?;
                v.insert(index)
            }
        })
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
            let _admitted = self.admit()?;
            let models = self.models()?;
            let index = {
                let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
                self.schema_index(storage, &models, &mut indexes, opts.schema.as_ref())?
            };
            // No lock is held while the model reads: another read's batch shares its steps.
            let schema = Schema::new(&index);
            let edc_opts = EdcOptions {
                align: opts.align,
                refine: opts.refine,
                cancel: opts.cancel.clone(),
                ..self.config.edc.clone()
            };
            let pool = self.example_pool(storage, &models, opts.graph.as_ref())?;
            let pipeline = Pipeline::new(&*models.llm, &models.embedder, edc_opts)
                .with_definition_cache(&self.definitions)
                .with_examples(&pool);
            let batch: Vec<&str> = good.iter().map(|&i| texts[i]).collect();
            let plans = pipeline.run(&batch, &schema)?;
            let fingerprint = schema.fingerprint().to_owned();
            self.commit_plans(
                storage,
                &models,
                texts,
                &good,
                plans,
                &fingerprint,
                opts,
                &mut results,
            )?;
        }
        Ok(settled(results))
    }

    /// Links the mentions of `plans` (one for each text `good` names) to known entities and
    /// commits each text on its own; results go to `results`.
    #[allow(clippy::too_many_arguments)]
    fn commit_plans(
        &self,
        storage: &Storage,
        models: &Models,
        texts: &[&str],
        good: &[usize],
        plans: Vec<crate::Plan>,
        fingerprint: &str,
        opts: &TextOptions,
        results: &mut [Option<Result<TextReport, TextError>>],
    ) -> Result<(), TextError> {
        {
            // Entity linking, still outside the write lock; the entity index stays locked
            // until each text's labels are appended, so its sequence follows the store's.
            let mut entities = self.entities.lock().unwrap_or_else(|e| e.into_inner());
            let key = graph_key(opts.graph.as_ref());
            let entity_index =
                self.entity_index(storage, models, &mut entities, opts.graph.as_ref())?;
            let (links, link_stats) = link(
                &plans,
                entity_index,
                &*models.llm,
                &models.embedder,
                &LinkOptions::default(),
            )?;
            let node = index_node(&key);
            let mut stale = false;
            let mut grew_schema = false;
            for (((&i, mut plan), links), asked) in
                good.iter().zip(plans).zip(links).zip(link_stats.asked)
            {
                plan.stats.model_calls += asked;
                let prov = Provenance {
                    model: models.llm.identity(),
                    embedder: models.embedder.identity().to_owned(),
                    schema_fingerprint: fingerprint.to_owned(),
                    index_node: node.clone(),
                    seq: entity_index.seq() + 1,
                };
                let seq = prov.seq;
                let result = if opts.cancel.is_cancelled() {
                    Err(TextError::Cancelled)
                } else {
                    commit(storage, &self.config, texts[i], plan, &links, opts, &prov)
                };
                self.count(&result);
                if let Ok(report) = &result {
                    grew_schema |= !report.relations_added.is_empty();
                    // The labels this commit wrote join the index (embedded now, once).
                    if let Err(e) =
                        append_labels(entity_index, &models.embedder, &report.labels_written, seq)
                    {
                        // The log stays behind the store: it is rebuilt when next opened.
                        tracing::warn!(error = %e, "the entity index could not take a commit's labels; it will be rebuilt");
                        stale = true;
                    }
                }
                results[i] = Some(result);
            }
            if stale {
                entities.remove(&key);
            }
            drop(entities);
            // Relations added by self-canonicalization join the schema index.
            if grew_schema {
                let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
                self.schema_index(storage, models, &mut indexes, opts.schema.as_ref())?;
            }
        }
        Ok(())
    }

    /// The example pool of target graph `graph`: the sources marked as examples, their texts
    /// embedded once.
    fn example_pool(
        &self,
        storage: &Storage,
        models: &Models,
        graph: Option<&NamedNode>,
    ) -> Result<Arc<ExamplePool>, TextError> {
        let examples = store_examples(storage, graph)?;
        let mut caches = self.examples.lock().unwrap_or_else(|e| e.into_inner());
        let cache = caches.entry(graph_key(graph)).or_default();
        if cache.pool.examples() == examples.as_slice() {
            return Ok(cache.pool.clone());
        }
        let missing: Vec<&str> = examples
            .iter()
            .map(|e| e.text.as_str())
            .filter(|t| !cache.embeddings.contains_key(*t))
            .collect();
        if !missing.is_empty() {
            tracing::info!(examples = missing.len(), "embedding store examples");
            let embedded = models.embedder.embed(&missing).map_err(EdcError::from)?;
            for (t, e) in missing.iter().zip(embedded) {
                cache.embeddings.insert((*t).to_owned(), e);
            }
        }
        let embeddings = examples
            .iter()
            .map(|e| cache.embeddings.get(&e.text).cloned().unwrap_or_default())
            .collect();
        cache.pool = Arc::new(ExamplePool::new(examples, embeddings));
        Ok(cache.pool.clone())
    }

    /// Writes texts with their triples given by hand (no extraction) as sources marked as
    /// examples: later reads into the same graph take their few-shot examples from them. A
    /// triple's relation is a relation of the target schema, by label or local name; its
    /// subject and object are names as the text spells them, linked to known entities as a
    /// read's are. Each example is committed on its own.
    pub fn write_examples(
        &self,
        storage: &Storage,
        examples: &[StoreExample],
        opts: &TextOptions,
    ) -> Result<Vec<Result<TextReport, TextError>>, TextError> {
        if examples.len() > 1 && opts.source.is_some() {
            return Err(InputError::OneSourceManyTexts.into());
        }
        let relations = storage.schema_relations(opts.schema.as_ref().map(NamedNode::as_ref))?;
        let schema = crate::schema::RelationsByName::new(&relations);
        let mut results: Vec<Option<Result<TextReport, TextError>>> = Vec::new();
        let mut plans = Vec::new();
        let mut good = Vec::new();
        for (i, e) in examples.iter().enumerate() {
            match example_plan(e, &schema) {
                Ok(plan) => {
                    good.push(i);
                    plans.push(plan);
                    results.push(None);
                }
                Err(err) => results.push(Some(Err(err))),
            }
        }
        if !good.is_empty() {
            let _admitted = self.admit()?;
            let models = self.models()?;
            let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
            let opts = TextOptions {
                example: true,
                ..opts.clone()
            };
            let fingerprint = tessera_storage::schema::fingerprint(&relations);
            self.commit_plans(
                storage,
                &models,
                &texts,
                &good,
                plans,
                &fingerprint,
                &opts,
                &mut results,
            )?;
        }
        Ok(settled(results))
    }

    /// Reads many texts in batches of `batch`, [`READS_IN_FLIGHT`] batches at a time: the
    /// model's running batch takes the sequences of all of them, so one batch's short calls
    /// (definitions, checks) fill the places that another's long extraction leaves. `done(i,
    /// result)` is called, on the calling thread, for text `i` as its batch is committed.
    /// Returns the first error that stopped a whole batch (the model could not load, say);
    /// no batch starts after it.
    pub fn read_many(
        &self,
        storage: &Storage,
        texts: &[&str],
        opts: &TextOptions,
        batch: usize,
        done: &mut dyn FnMut(usize, Result<TextReport, TextError>),
    ) -> Result<(), TextError> {
        if opts.source.is_some() && texts.len() > 1 {
            return Err(InputError::OneSourceManyTexts.into());
        }
        let batch = batch.max(1);
        let batches = texts.len().div_ceil(batch);
        let next = AtomicUsize::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        type Batch = (usize, Result<Vec<Result<TextReport, TextError>>, TextError>);
        let (tx, rx) = std::sync::mpsc::channel::<Batch>();
        std::thread::scope(|s| {
            for _ in 0..READS_IN_FLIGHT.min(batches) {
                let tx = tx.clone();
                let (next, stop) = (&next, &stop);
                s.spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= batches || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let part = &texts[k * batch..((k + 1) * batch).min(texts.len())];
                    let r = self.read(storage, part, opts);
                    if r.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if tx.send((k, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut first_error = None;
            for (k, r) in rx {
                match r {
                    Ok(results) => {
                        for (j, r) in results.into_iter().enumerate() {
                            done(k * batch + j, r);
                        }
                    }
                    Err(e) => {
                        stop.store(true, Ordering::SeqCst);
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    fn count(&self, result: &Result<TextReport, TextError>) {
        let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(r) = result else {
            m.texts_failed += 1;
            return;
        };
        let n = |x: usize| x as u64;
        m.texts_read += 1;
        m.triples_written += n(r.triples.len());
        m.triples_dropped += n(r.dropped.len());
        m.model_calls += n(r.stats.model_calls);
        m.prompt_tokens += n(r.stats.prompt_tokens);
        m.cached_tokens += n(r.stats.cached_tokens);
        m.generated_tokens += n(r.stats.generated_tokens);
        for (t, o) in m.stage_tokens.iter_mut().zip(&r.stats.tokens) {
            t.add(o);
        }
        let s = &r.stats;
        for (total, ms) in m.stage_ms.iter_mut().zip([
            s.extract_ms,
            s.define_ms,
            s.canonicalize_ms,
            s.refine_ms,
            s.check_ms,
            s.commit_ms,
        ]) {
            *total += ms;
        }
    }

    /// Builds, or brings up to date, the indexes INSERT TEXT reads for a target graph: its
    /// entity index (labels written by any means, not only by INSERT TEXT; each embedded
    /// once, `progress(done, total)` as they are) and the schema index. Run ahead of the first
    /// `INSERT TEXT` into a large existing graph (`tessera index`).
    pub fn index(
        &self,
        storage: &Storage,
        graph: Option<&NamedNode>,
        schema: Option<&NamedNode>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IndexReport, TextError> {
        let models = self.models()?;
        let mut map = self.entities.lock().unwrap_or_else(|e| e.into_inner());
        let mut embedded = 0;
        let index = match map.entry(graph_key(graph)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let (index, built) = load_entity_index(storage, &models.embedder, graph, progress)?;
                if built {
                    embedded = index.len();
                }
                v.insert(index)
            }
        };
        // Labels written since by other means (SPARQL updates, loads); an index built just now
        // read every label already.
        let missing: Vec<EntityLabel> = if embedded > 0 {
            Vec::new()
        } else {
            let g = graph.map_or(GraphNameRef::DefaultGraph, |g| g.as_ref().into());
            storage
                .entity_labels(g)?
                .into_iter()
                .filter(|l| !index.contains(&l.iri, &l.label))
                .collect()
        };
        let mut records = Vec::with_capacity(missing.len());
        for chunk in missing.chunks(256) {
            let texts: Vec<&str> = chunk.iter().map(|l| l.label.as_str()).collect();
            let vectors = models.embedder.embed(&texts).map_err(EdcError::from)?;
            records.extend(chunk.iter().cloned().zip(vectors));
            progress(records.len(), missing.len());
        }
        embedded += records.len();
        let seq = index.seq();
        index.append(records, seq)?;
        let labels = index.len();
        drop(map);
        let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
        let relations = self
            .schema_index(storage, &models, &mut indexes, schema)?
            .relations()
            .len();
        Ok(IndexReport {
            labels,
            embedded,
            relations,
        })
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
fn index_file(storage: &Storage, kind: &str, key: &str, extension: &str) -> Option<PathBuf> {
    let file = format!(
        "{kind}-{}.{extension}",
        &hex(&Sha256::digest(key.as_bytes()))[..16]
    );
    storage.index_path(&file)
}

/// The key of a target graph's entity index (empty: the default graph).
fn graph_key(graph: Option<&NamedNode>) -> String {
    graph.map_or_else(String::new, |g| g.as_str().to_owned())
}

/// The node whose `tessera:indexSeq` (in `<urn:tessera:index>`) counts the commits of a target
/// graph's texts: written in the same transaction as their triples, it tells an entity index
/// log whether it has every commit's labels.
fn index_node(key: &str) -> NamedNode {
    NamedNode::new_unchecked(format!(
        "urn:tessera:entity-index:{}",
        &hex(&Sha256::digest(key.as_bytes()))[..16]
    ))
}

/// The commit sequence the store records for a target graph's entity index (0: none yet).
pub fn entity_index_seq(storage: &Storage, graph: Option<&NamedNode>) -> Result<u64, TextError> {
    let node = index_node(&graph_key(graph));
    let found = storage
        .store()
        .quads_for_pattern(
            Some(node.as_ref().into()),
            Some(tessera::INDEX_SEQ),
            None,
            Some(tessera::INDEX_GRAPH.into()),
        )
        .next()
        .transpose()?;
    Ok(match found.map(|q| q.object) {
        Some(Term::Literal(l)) => l.value().parse().unwrap_or(0),
        _ => 0,
    })
}

/// The entity index log of a target graph (`None` for an in-memory store).
pub fn entity_index_path(storage: &Storage, graph: Option<&NamedNode>) -> Option<PathBuf> {
    index_file(storage, "entities", &graph_key(graph), "log")
}

/// Opens a target graph's entity index from its log, or builds it from the store's labels
/// (then `true`, with `progress(done, total)` as labels are embedded).
fn load_entity_index(
    storage: &Storage,
    embedder: &Embedder,
    graph: Option<&NamedNode>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(EntityIndex, bool), TextError> {
    let seq = entity_index_seq(storage, graph)?;
    let path = entity_index_path(storage, graph);
    if let Some(p) = &path {
        if let Some(index) = EntityIndex::open(p, embedder.identity(), embedder.dim(), seq)? {
            return Ok((index, false));
        }
        // An index file of the format before logs: replaced by the log.
        let _ = std::fs::remove_file(p.with_extension("idx"));
    }
    let g = graph.map_or(GraphNameRef::DefaultGraph, |g| g.as_ref().into());
    let labels = storage.entity_labels(g)?;
    tracing::info!(labels = labels.len(), "indexing entity labels");
    let index = EntityIndex::build(
        path.as_deref(),
        embedder.identity(),
        embedder.dim(),
        labels,
        seq,
        &mut |texts: &[&str]| embedder.embed(texts).map_err(|e| e.to_string()),
        progress,
    )?;
    Ok((index, true))
}

/// Embeds the labels a commit wrote that the index lacks and appends them at `seq`.
fn append_labels(
    index: &mut EntityIndex,
    embedder: &Embedder,
    written: &[(String, String)],
    seq: u64,
) -> Result<(), TextError> {
    let new: Vec<&(String, String)> = written
        .iter()
        .filter(|(iri, label)| !index.contains(iri, label))
        .collect();
    let texts: Vec<&str> = new.iter().map(|(_, l)| l.as_str()).collect();
    let vectors = if texts.is_empty() {
        Vec::new()
    } else {
        embedder.embed(&texts).map_err(EdcError::from)?
    };
    let records = new
        .into_iter()
        .zip(vectors)
        .map(|((iri, label), v)| {
            (
                EntityLabel {
                    iri: iri.clone(),
                    label: label.clone(),
                    types: Vec::new(),
                },
                v,
            )
        })
        .collect();
    Ok(index.append(records, seq)?)
}

/// Every text's result once all are settled.
fn settled(
    results: Vec<Option<Result<TextReport, TextError>>>,
) -> Vec<Result<TextReport, TextError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(InputError::Empty.into())))
        .collect()
}

/// The plan of an example given by hand: its text as one chunk, its triples resolved by
/// relation name.
fn example_plan(
    e: &StoreExample,
    schema: &crate::schema::RelationsByName<'_>,
) -> Result<crate::Plan, TextError> {
    check_text(&e.text)?;
    let mut plan = crate::Plan {
        chunks: vec![crate::chunk::Chunk {
            start: 0,
            end: e.text.chars().count(),
            text: e.text.clone(),
        }],
        ..crate::Plan::default()
    };
    for t in &e.triples {
        let relation = schema
            .get(&t[1])
            .ok_or_else(|| InputError::ExampleRelation(t[1].clone()))?;
        let (subject, object) = (t[0].trim(), t[2].trim());
        if subject.is_empty() || object.is_empty() {
            return Err(InputError::ExampleTriple.into());
        }
        plan.triples.push(crate::pipeline::PlannedTriple {
            subject: subject.to_owned(),
            relation: crate::pipeline::RelationRef::Schema(relation.clone()),
            object: crate::literal::type_object(object, relation.range.as_deref()),
            chunk: 0,
            extracted: t.clone(),
            decision: crate::pipeline::Decision::Name,
            support: None,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_admission_queue_refuses_and_frees_its_places() {
        let reader = Reader::new(TextConfig {
            max_queued: 2,
            ..TextConfig::default()
        });
        let first = reader.admit().expect("first");
        let second = reader.admit().expect("second");
        assert!(matches!(reader.admit(), Err(TextError::Busy { queued: 2 })));
        drop(first);
        let third = reader.admit().expect("a place was given back");
        drop((second, third));
        assert_eq!(reader.queued.load(Ordering::SeqCst), 0);
    }
}
