#![doc = include_str!("../README.md")]

mod error;
mod metrics;
mod stream;
mod update;

pub use error::Error;
pub use stream::{Items, QueryStream};
/// The inference core: language models, embedder, model cache.
pub use tessera_llm as llm;
pub use tessera_sparql::listener;
pub use tessera_sparql::Config as ServerConfig;
pub use tessera_storage::{vocab, GraphWrite, Storage};
/// Reading text: the EDC+R pipeline, entity linking, provenance, the INSERT TEXT grammar.
pub use tessera_text as text;
pub use tessera_text::{
    Align, LoadProgress, ModelStatus, ModelsInfo, ReaderMetrics, StoreExample, TextConfig,
    TextError, TextOptions, TextReport,
};

/// RDF terms, formats and SPARQL results from oxigraph, re-exported so callers need no
/// direct dependency.
pub use oxigraph::{io, model, sparql};

use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::{GraphNameRef, NamedNode, NamedOrBlankNodeRef};
use oxigraph::sparql::{QueryResults, SparqlEvaluator};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// An embedded Tessera database: an RDF store that answers SPARQL 1.1 and serves it over HTTP.
///
/// Cheap to clone (clones share the store), `Send + Sync`. Writes are serialised (one writer
/// at a time); queries run on snapshots and never wait for writers. The synchronous methods
/// block; from async code use the `*_async` methods, which evaluate on blocking threads.
#[derive(Clone)]
pub struct Database {
    storage: Storage,
    reader: Arc<tessera_text::Reader>,
}

impl Database {
    /// Opens (or creates) a durable database in the directory `path` (RocksDB).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self::with_storage(Storage::open(path)?))
    }

    /// Creates a volatile in-memory database.
    pub fn in_memory() -> Result<Self, Error> {
        Ok(Self::with_storage(Storage::in_memory()?))
    }

    fn with_storage(storage: Storage) -> Self {
        Self {
            storage,
            reader: Arc::new(tessera_text::Reader::new(TextConfig::default())),
        }
    }

    /// Sets which models read text and how entities are named (before the first
    /// `INSERT TEXT`; clones made earlier keep the previous configuration).
    pub fn with_text_config(mut self, config: TextConfig) -> Self {
        self.reader = Arc::new(tessera_text::Reader::new(config));
        self
    }

    /// The storage layer, for direct reads and writes.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Evaluates a SPARQL query. The results borrow nothing and can be iterated lazily, on
    /// this thread (oxigraph's iterators are not `Send`).
    pub fn query(&self, query: &str) -> Result<QueryResults<'static>, Error> {
        Ok(SparqlEvaluator::new()
            .parse_query(query)?
            .on_store(self.storage.store())
            .execute()?)
    }

    /// Evaluates a SPARQL query on a blocking thread and streams its results.
    pub async fn query_async(&self, query: &str) -> Result<QueryStream, Error> {
        stream::spawn_query(self.storage.store().clone(), query.to_owned()).await
    }

    /// Executes a SPARQL 1.1 update, with the `INSERT TEXT` and `DROP SOURCE` extensions.
    /// Standard operations run atomically together; each text commits on its own.
    pub fn update(&self, update: &str) -> Result<(), Error> {
        update::execute(self, &tessera_sparql::UpdateRequest::new(update))?;
        Ok(())
    }

    /// [`Database::update`] on a blocking thread.
    pub async fn update_async(&self, update: &str) -> Result<(), Error> {
        let db = self.clone();
        let update = update.to_owned();
        tokio::task::spawn_blocking(move || db.update(&update)).await?
    }

    /// Parses RDF and adds it atomically: into `graph` for triple formats (`None`: the default
    /// graph), as it is for dataset formats. Returns the number of quads read. Nothing is
    /// written if the input is malformed.
    pub fn load(
        &self,
        reader: impl Read,
        format: RdfFormat,
        graph: Option<NamedOrBlankNodeRef<'_>>,
    ) -> Result<u64, Error> {
        Ok(self.storage.load(reader, format, None, graph)?)
    }

    /// [`Database::load`] on a blocking thread, for bytes already in memory.
    pub async fn load_async(
        &self,
        data: impl AsRef<[u8]> + Send + 'static,
        format: RdfFormat,
    ) -> Result<u64, Error> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.load(data.as_ref(), format, None)).await?
    }

    /// Loads a large input with the bulk loader (fast, not atomic on failure), calling
    /// `on_progress` with the number of quads loaded so far. Returns the number of quads read.
    pub fn bulk_load(
        &self,
        reader: impl Read,
        format: RdfFormat,
        graph: Option<NamedOrBlankNodeRef<'_>>,
        on_progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<u64, Error> {
        Ok(self
            .storage
            .bulk_load(reader, format, None, graph, on_progress)?)
    }

    /// Writes the whole dataset (dataset formats) or one graph (`graph`, any format; `None`
    /// with a triple format means the default graph).
    pub fn dump<W: Write>(
        &self,
        writer: W,
        format: RdfFormat,
        graph: Option<GraphNameRef<'_>>,
    ) -> Result<W, Error> {
        let store = self.storage.store();
        let mut serializer = RdfSerializer::from_format(format).for_writer(writer);
        match graph {
            None if format.supports_datasets() => {
                for quad in store.iter() {
                    serializer.serialize_quad(&quad?)?;
                }
            }
            graph => {
                let graph = graph.unwrap_or(GraphNameRef::DefaultGraph);
                for quad in store.quads_for_pattern(None, None, None, Some(graph)) {
                    serializer.serialize_triple(quad?.as_ref())?;
                }
            }
        }
        Ok(serializer.finish()?)
    }

    /// Number of quads (a full scan on disk).
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.storage.len()?)
    }

    /// Whether the database holds no quad.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.storage.is_empty()?)
    }

    /// Makes committed writes durable against power loss.
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.storage.flush()?)
    }

    /// The text configuration in use.
    pub fn text_config(&self) -> &TextConfig {
        self.reader.config()
    }

    /// Fetches (if needed) and loads the models `INSERT TEXT` reads with, now rather than on
    /// the first text, reporting progress.
    pub fn load_text_models(
        &self,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<ModelsInfo, Error> {
        Ok(self.reader.load(progress)?)
    }

    /// [`Database::load_text_models`] on a thread of its own. From the moment this returns the
    /// database is not ready ([`Database::text_models`] says `Loading`, `/ready` answers 503)
    /// until the load ends.
    pub fn load_text_models_in_background(
        &self,
        progress: Box<dyn FnMut(LoadProgress) + Send>,
    ) -> std::thread::JoinHandle<Result<ModelsInfo, TextError>> {
        self.reader.load_in_background(progress)
    }

    /// Where the models `INSERT TEXT` reads with stand.
    pub fn text_models(&self) -> ModelStatus {
        self.reader.status()
    }

    /// Running totals of text reading since this database was opened.
    pub fn text_metrics(&self) -> ReaderMetrics {
        self.reader.metrics()
    }

    /// Reads one text into the store (`INSERT TEXT`): extraction, canonicalization against
    /// the store's schema and one atomic commit with provenance.
    pub fn insert_text(&self, text: &str, opts: &TextOptions) -> Result<TextReport, Error> {
        let mut reports = self.insert_texts(&[text], opts)?;
        Ok(reports
            .pop()
            .unwrap_or(Err(tessera_text::InputError::Empty.into()))?)
    }

    /// Reads several texts, decoding them together through the model; each text is committed
    /// on its own (atomically), so one bad text does not stop the others. With several
    /// texts, `opts.source` must be `None` (each gets the IRI of its hash).
    pub fn insert_texts(
        &self,
        texts: &[&str],
        opts: &TextOptions,
    ) -> Result<Vec<Result<TextReport, TextError>>, Error> {
        Ok(self.reader.read(&self.storage, texts, opts)?)
    }

    /// Bulk ingestion: reads `texts` in batches of `batch`, several batches through the model
    /// at once (their sequences share the model's running batch), each text committed on its
    /// own; `done(i, result)` is called for text `i` as it is committed. Returns the first
    /// error that stopped a whole batch (no batch starts after it).
    pub fn insert_texts_each(
        &self,
        texts: &[&str],
        opts: &TextOptions,
        batch: usize,
        done: &mut dyn FnMut(usize, Result<TextReport, TextError>),
    ) -> Result<(), Error> {
        Ok(self
            .reader
            .read_many(&self.storage, texts, opts, batch, done)?)
    }

    /// Writes texts with their triples given by hand as sources marked as examples: later
    /// reads into the same graph show the model the examples nearest each text after the
    /// built-in ones. Relations are the target schema's, by name; subjects and objects
    /// are names as the text spells them. Any source can also be marked later with
    /// `tessera:example true` in the sources graph (see [`tessera_text::examples`]).
    pub fn insert_examples(
        &self,
        examples: &[StoreExample],
        opts: &TextOptions,
    ) -> Result<Vec<Result<TextReport, TextError>>, Error> {
        Ok(self.reader.write_examples(&self.storage, examples, opts)?)
    }

    /// Removes a source (`DROP SOURCE`): its metadata, its graph, and each of its triples from
    /// the target graph unless another source supports it. Returns the number of triples
    /// removed from the target graph; `None` if there was no such source.
    pub fn drop_source(&self, source: &NamedNode) -> Result<Option<usize>, Error> {
        Ok(self.reader.drop_source(&self.storage, source)?)
    }

    /// Builds, or brings up to date, the indexes `INSERT TEXT` reads for a target graph
    /// (`None`: the default graph): its entity labels, written by any means, each embedded
    /// once (`progress(done, total)` as they are), and the schema index of `schema`. Run it
    /// ahead of the first text into a large existing graph (`tessera index`).
    pub fn index_text_graph(
        &self,
        graph: Option<&NamedNode>,
        schema: Option<&NamedNode>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<tessera_text::IndexReport, Error> {
        Ok(self.reader.index(&self.storage, graph, schema, progress)?)
    }

    /// The HTTP service of this database (SPARQL Protocol, Graph Store Protocol, console, health and metrics)
    /// as an axum router, to serve alone or nest in an application.
    pub fn router(&self, config: ServerConfig) -> axum::Router {
        tessera_sparql::router(Arc::new(self.clone()), config)
    }
}

impl tessera_sparql::Backend for Database {
    fn storage(&self) -> &Storage {
        &self.storage
    }

    fn update(
        &self,
        request: &tessera_sparql::UpdateRequest,
    ) -> Result<Option<String>, tessera_sparql::UpdateError> {
        update::execute(self, request)
    }

    fn readiness(&self) -> tessera_sparql::Readiness {
        let models = self.text_models();
        // Lazily loaded models (a library that never asked) are loaded by the first text:
        // only a load under way or one that failed makes the database not ready.
        let ready = !matches!(models, ModelStatus::Loading | ModelStatus::Failed { .. });
        tessera_sparql::Readiness {
            ready,
            detail: serde_json::json!({
                "store": self.storage.location().map_or_else(|| "memory".to_owned(), |p| p.display().to_string()),
                "models": models,
            }),
        }
    }

    fn write_metrics(&self, out: &mut tessera_sparql::metrics::Exposition) {
        metrics::write(self, out);
    }
}
