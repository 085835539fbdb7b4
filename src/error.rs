//! Errors of the [`crate::Database`] API.

/// What went wrong, naming the part that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed (open, format version, read, write).
    #[error(transparent)]
    Storage(#[from] tessera_storage::StorageError),
    /// A SPARQL query did not parse.
    #[error("SPARQL syntax error: {0}")]
    Syntax(#[from] oxigraph::sparql::SparqlSyntaxError),
    /// A query failed during evaluation.
    #[error("query evaluation failed: {0}")]
    Evaluation(#[from] oxigraph::sparql::QueryEvaluationError),
    /// An update failed; nothing was written.
    #[error("update failed: {0}")]
    Update(#[from] tessera_sparql::UpdateError),
    /// Reading text into the store failed (`INSERT TEXT`); nothing was written.
    #[error(transparent)]
    Text(#[from] tessera_text::TextError),
    /// Reading or writing a stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<oxigraph::store::StorageError> for Error {
    fn from(e: oxigraph::store::StorageError) -> Self {
        Self::Storage(e.into())
    }
}
