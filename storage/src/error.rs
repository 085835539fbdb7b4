//! Errors of the storage layer.

use oxigraph::io::{RdfFormat, RdfParseError};
use std::path::PathBuf;

/// An error of the storage layer; each variant names what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The store directory could not be opened.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The store directory.
        path: PathBuf,
        /// What oxigraph reported.
        source: oxigraph::store::StorageError,
    },
    /// The store directory was written by another format version.
    #[error("the store at {path} has format {found}, this build reads format {expected}; {hint}")]
    FormatVersion {
        /// The store directory.
        path: PathBuf,
        /// The version found on disk.
        found: String,
        /// The version this build reads.
        expected: u32,
        /// What to do about it.
        hint: &'static str,
    },
    /// Reading or writing a file of the store failed.
    #[error("{what}: {source}")]
    Io {
        /// The file or operation.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The underlying store failed.
    #[error("store error: {0}")]
    Store(#[from] oxigraph::store::StorageError),
    /// RDF input did not parse.
    #[error("invalid RDF: {0}")]
    Parse(#[from] RdfParseError),
    /// A SPARQL update failed.
    #[error("{0}")]
    Update(#[from] oxigraph::sparql::UpdateEvaluationError),
    /// An IRI was malformed.
    #[error("invalid IRI: {0}")]
    InvalidIri(String),
    /// A vector index was used inconsistently.
    #[error("vector index: {0}")]
    Index(String),
    /// A dataset format (with named graphs) was sent where one graph was expected.
    #[error("{} carries named graphs and cannot be loaded into a single graph", .0.name())]
    DatasetIntoGraph(RdfFormat),
}

impl From<oxigraph::store::LoaderError> for StorageError {
    fn from(e: oxigraph::store::LoaderError) -> Self {
        match e {
            oxigraph::store::LoaderError::Parsing(e) => Self::Parse(e),
            oxigraph::store::LoaderError::Storage(e) => Self::Store(e),
            other => Self::InvalidIri(other.to_string()),
        }
    }
}
