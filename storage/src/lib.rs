//! Tessera storage: an [oxigraph](https://docs.rs/oxigraph) store with a single serialised
//! writer and an on-disk format version.
//!
//! The entry point is [`Storage`]. oxigraph 0.5 on RocksDB does not detect write conflicts (a
//! transaction is a snapshot plus a write batch applied at commit), so every write goes through
//! one writer lock per [`Storage`]; reads work on snapshots and never wait for the lock.

pub mod entities;
mod error;
#[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
mod format;
pub mod schema;
pub mod vector;
pub mod vocab;

pub use error::StorageError;
pub use format::{FORMAT_FILE, FORMAT_VERSION};
pub use schema::{Relation, SchemaIndex};
pub use vector::VectorIndex;

/// The key names are compared by, for relations and entity labels alike: letters and digits,
/// lower-cased (`birthPlace`, `birth place` and `birth_place` are one name).
pub fn name_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{GraphNameRef, NamedOrBlankNodeRef, QuadRef};
use oxigraph::sparql::PreparedSparqlUpdate;
use oxigraph::store::{Store, Transaction};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The store: cheap to clone, `Send + Sync`; clones share the data and the writer lock.
#[derive(Clone)]
pub struct Storage {
    store: Store,
    writer: Arc<Mutex<()>>,
    location: Option<Arc<PathBuf>>,
}

/// What a write to a graph did, as the Graph Store Protocol reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphWrite {
    /// The graph did not exist before the write.
    Created,
    /// The graph existed and was changed.
    Updated,
}

impl Storage {
    /// Opens (or creates) a durable store in the directory `path`.
    ///
    /// The directory carries a format version file; a store written by an incompatible version
    /// is refused with [`StorageError::FormatVersion`], never silently misread. Needs the
    /// `rocksdb` feature (on by default).
    #[cfg(feature = "rocksdb")]
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        format::check_or_init(path)?;
        let store = Store::open(path).map_err(|source| StorageError::Open {
            path: path.to_owned(),
            source,
        })?;
        tracing::debug!(path = %path.display(), "opened store");
        Ok(Self {
            store,
            writer: Arc::new(Mutex::new(())),
            location: Some(Arc::new(path.to_owned())),
        })
    }

    /// Creates a volatile in-memory store.
    pub fn in_memory() -> Result<Self, StorageError> {
        Ok(Self {
            store: Store::new().map_err(StorageError::Store)?,
            writer: Arc::new(Mutex::new(())),
            location: None,
        })
    }

    /// The directory of a durable store, `None` in memory.
    pub fn location(&self) -> Option<&Path> {
        self.location.as_deref().map(PathBuf::as_path)
    }

    /// Read access to the underlying store: queries and iteration run on snapshots and never
    /// wait for a writer. Write through [`Storage::write`] and the other methods of this type.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave a half-applied write behind (the
        // transaction is dropped uncommitted), so a poisoned lock is safe to take over.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` in one write transaction under the writer lock and commits it atomically.
    /// If `f` fails nothing is written.
    pub fn write<T, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let _guard = self.lock();
        let mut transaction = self
            .store
            .start_transaction()
            .map_err(StorageError::Store)?;
        let value = f(&mut transaction)?;
        transaction.commit().map_err(StorageError::Store)?;
        Ok(value)
    }

    /// Executes a prepared SPARQL update atomically under the writer lock.
    pub fn update(&self, update: PreparedSparqlUpdate) -> Result<(), StorageError> {
        let _guard = self.lock();
        update.on_store(&self.store).execute()?;
        Ok(())
    }

    /// Parses RDF from `reader` and adds it atomically, into `graph` for triple formats
    /// (`None`: the default graph). Nothing is written if the input is malformed.
    pub fn load(
        &self,
        reader: impl Read,
        format: RdfFormat,
        base_iri: Option<&str>,
        graph: Option<NamedOrBlankNodeRef<'_>>,
    ) -> Result<u64, StorageError> {
        let parser = parser(format, base_iri, graph)?;
        self.write(|transaction| insert_parsed(transaction, parser, reader))
    }

    /// Loads a large file with oxigraph's bulk loader (not atomic on failure), reporting the
    /// number of quads loaded so far to `on_progress`. Returns the number of quads read.
    pub fn bulk_load(
        &self,
        reader: impl Read,
        format: RdfFormat,
        base_iri: Option<&str>,
        graph: Option<NamedOrBlankNodeRef<'_>>,
        on_progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<u64, StorageError> {
        let parser = parser(format, base_iri, graph)?;
        let _guard = self.lock();
        let mut count = 0u64;
        let mut loader = self.store.bulk_loader().on_progress(on_progress);
        let quads = parser
            .rename_blank_nodes()
            .for_reader(reader)
            .inspect(|_| count += 1);
        loader.load_ok_quads::<_, StorageError>(quads)?;
        loader.commit()?;
        Ok(count)
    }

    /// Replaces the content of a graph (`None`: the default graph) with the parsed `reader`,
    /// atomically (Graph Store Protocol `PUT`).
    pub fn replace_graph(
        &self,
        graph: Option<NamedOrBlankNodeRef<'_>>,
        reader: impl Read,
        format: RdfFormat,
        base_iri: Option<&str>,
    ) -> Result<GraphWrite, StorageError> {
        self.write_graph(graph, [(reader, format)], base_iri, true)
    }

    /// Adds the parsed `readers` to a graph atomically (Graph Store Protocol `POST`; several
    /// readers for a multipart request).
    pub fn add_to_graph<R: Read>(
        &self,
        graph: Option<NamedOrBlankNodeRef<'_>>,
        readers: impl IntoIterator<Item = (R, RdfFormat)>,
        base_iri: Option<&str>,
    ) -> Result<GraphWrite, StorageError> {
        self.write_graph(graph, readers, base_iri, false)
    }

    fn write_graph<R: Read>(
        &self,
        graph: Option<NamedOrBlankNodeRef<'_>>,
        readers: impl IntoIterator<Item = (R, RdfFormat)>,
        base_iri: Option<&str>,
        replace: bool,
    ) -> Result<GraphWrite, StorageError> {
        self.write(|transaction| {
            let existed = match graph {
                Some(g) => transaction.contains_named_graph(g)?,
                None => true,
            };
            if replace {
                transaction
                    .clear_graph(graph.map_or(GraphNameRef::DefaultGraph, GraphNameRef::from))?;
            }
            if let Some(g) = graph {
                transaction.insert_named_graph(g);
            }
            for (reader, format) in readers {
                insert_parsed(transaction, parser(format, base_iri, graph)?, reader)?;
            }
            Ok(if existed {
                GraphWrite::Updated
            } else {
                GraphWrite::Created
            })
        })
    }

    /// Removes a named graph, or clears the default graph. Returns `false` if the named graph
    /// did not exist.
    pub fn drop_graph(&self, graph: Option<NamedOrBlankNodeRef<'_>>) -> Result<bool, StorageError> {
        self.write(|transaction| match graph {
            Some(g) => {
                if transaction.contains_named_graph(g)? {
                    transaction.remove_named_graph(g)?;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            None => {
                transaction.clear_graph(GraphNameRef::DefaultGraph)?;
                Ok(true)
            }
        })
    }

    /// Whether a named graph exists (the default graph always does).
    pub fn contains_graph(
        &self,
        graph: Option<NamedOrBlankNodeRef<'_>>,
    ) -> Result<bool, StorageError> {
        match graph {
            Some(g) => Ok(self.store.contains_named_graph(g)?),
            None => Ok(true),
        }
    }

    /// Number of quads in the store (a full scan on RocksDB).
    pub fn len(&self) -> Result<usize, StorageError> {
        Ok(self.store.len()?)
    }

    /// Whether the store holds no quad.
    pub fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.store.is_empty()?)
    }

    /// Inserts one quad under the writer lock.
    pub fn insert(&self, quad: QuadRef<'_>) -> Result<bool, StorageError> {
        self.write(|transaction| {
            let new = !transaction.contains(quad)?;
            transaction.insert(quad);
            Ok::<_, StorageError>(new)
        })
    }

    /// Writes committed data to disk so that it survives power loss (commits already survive a
    /// process crash through the write-ahead log).
    pub fn flush(&self) -> Result<(), StorageError> {
        #[cfg(feature = "rocksdb")]
        self.store.flush()?;
        Ok(())
    }
}

/// Parses `reader` into `transaction`; returns the number of quads read.
fn insert_parsed(
    transaction: &mut Transaction<'_>,
    parser: RdfParser,
    reader: impl Read,
) -> Result<u64, StorageError> {
    let mut count = 0;
    for quad in parser.rename_blank_nodes().for_reader(reader) {
        transaction.insert(quad?.as_ref());
        count += 1;
    }
    Ok(count)
}

fn parser(
    format: RdfFormat,
    base_iri: Option<&str>,
    graph: Option<NamedOrBlankNodeRef<'_>>,
) -> Result<RdfParser, StorageError> {
    let mut parser = RdfParser::from_format(format);
    if let Some(base) = base_iri {
        parser = parser
            .with_base_iri(base)
            .map_err(|e| StorageError::InvalidIri(format!("base IRI <{base}>: {e}")))?;
    }
    if let Some(graph) = graph {
        if format.supports_datasets() {
            return Err(StorageError::DatasetIntoGraph(format));
        }
        parser = parser.with_default_graph(graph.into_owned());
    }
    Ok(parser)
}

#[cfg(test)]
mod tests;
