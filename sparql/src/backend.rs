//! What the HTTP layer needs from a database: its storage for reads and graph-store writes,
//! and an update executor that the root crate extends (INSERT TEXT) without this crate
//! knowing how.

use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode};
use oxigraph::sparql::{CancellationToken, SparqlEvaluator, SparqlSyntaxError};
use tessera_storage::{Storage, StorageError};

/// A database served over HTTP.
pub trait Backend: Send + Sync + 'static {
    /// The store that queries read and the Graph Store Protocol writes.
    fn storage(&self) -> &Storage;

    /// Executes a SPARQL update request and returns an optional JSON report (sent back when the
    /// client accepts `application/json`). The default is plain SPARQL 1.1 Update.
    fn update(&self, request: &UpdateRequest) -> Result<Option<String>, UpdateError> {
        execute_update(self.storage(), request).map(|()| None)
    }

    /// Whether every kind of request can be served now (`/ready`); by default always.
    fn readiness(&self) -> crate::Readiness {
        crate::Readiness::default()
    }

    /// Adds the backend's own metric families to `/metrics`; by default none.
    fn write_metrics(&self, _out: &mut crate::metrics::Exposition) {}
}

/// A SPARQL update request as the protocol delivers it.
#[derive(Clone, Default)]
pub struct UpdateRequest {
    /// The update text.
    pub update: String,
    /// Base IRI for relative IRIs (the endpoint URL over HTTP).
    pub base_iri: Option<String>,
    /// `using-graph-uri` parameters.
    pub using_graphs: Vec<NamedNode>,
    /// `using-named-graph-uri` parameters.
    pub using_named_graphs: Vec<NamedNode>,
    /// Cancels the evaluation when triggered (a timeout); the update then writes nothing.
    pub cancellation: Option<CancellationToken>,
    /// `WHERE` clauses without `USING` (and without a protocol dataset) match the union of
    /// all graphs ([`crate::Config::union_default_graph`]).
    pub union_default_graph: bool,
}

impl UpdateRequest {
    /// An update with no protocol dataset.
    pub fn new(update: impl Into<String>) -> Self {
        Self {
            update: update.into(),
            ..Self::default()
        }
    }
}

/// Why an update failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The update text did not parse.
    #[error("SPARQL update syntax error: {0}")]
    Syntax(#[from] SparqlSyntaxError),
    /// The request's base IRI is not an IRI.
    #[error("invalid base IRI <{iri}>: {source}")]
    BaseIri {
        /// The base given.
        iri: String,
        /// Why it is not an IRI.
        #[source]
        source: oxigraph::model::IriParseError,
    },
    /// A protocol dataset together with USING or WITH (SPARQL 1.1 Protocol 2.2.3).
    #[error("using-graph-uri/using-named-graph-uri cannot be combined with USING, USING NAMED or WITH in the update")]
    DatasetConflict,
    /// The evaluation was cancelled; nothing was written.
    #[error("the update was cancelled")]
    Cancelled,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The backend's own part of the update (an extension such as INSERT TEXT) refused the
    /// request as given: its error names what is wrong. Nothing of that operation was written.
    #[error(transparent)]
    Rejected(Box<dyn std::error::Error + Send + Sync>),
    /// A service the update needs (a language model) is not available.
    #[error(transparent)]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// Too much of the backend's work is queued already: the client should retry later.
    #[error(transparent)]
    Overloaded(Box<dyn std::error::Error + Send + Sync>),
}

/// Parses and executes a standard SPARQL 1.1 update atomically on `storage`.
pub fn execute_update(storage: &Storage, request: &UpdateRequest) -> Result<(), UpdateError> {
    let mut evaluator = SparqlEvaluator::new();
    if let Some(base) = &request.base_iri {
        evaluator =
            evaluator
                .with_base_iri(base.as_str())
                .map_err(|source| UpdateError::BaseIri {
                    iri: base.clone(),
                    source,
                })?;
    }
    if let Some(token) = &request.cancellation {
        evaluator = evaluator.with_cancellation_token(token.clone());
    }
    let mut prepared = evaluator.parse_update(&request.update)?;
    if !request.using_graphs.is_empty() || !request.using_named_graphs.is_empty() {
        // SPARQL 1.1 Protocol 2.2.3: a protocol dataset together with USING/WITH is an error.
        if prepared.using_datasets().any(|d| !d.is_default_dataset()) {
            return Err(UpdateError::DatasetConflict);
        }
        for dataset in prepared.using_datasets_mut() {
            dataset.set_default_graph(
                request
                    .using_graphs
                    .iter()
                    .cloned()
                    .map(GraphName::from)
                    .collect(),
            );
            dataset.set_available_named_graphs(
                request
                    .using_named_graphs
                    .iter()
                    .cloned()
                    .map(NamedOrBlankNode::from)
                    .collect(),
            );
        }
    } else if request.union_default_graph {
        for dataset in prepared.using_datasets_mut() {
            if dataset.is_default_dataset() {
                dataset.set_default_graph_as_union();
            }
        }
    }
    match storage.update(prepared) {
        Ok(()) => Ok(()),
        Err(StorageError::Update(e)) if is_cancelled(&e) => Err(UpdateError::Cancelled),
        Err(e) => Err(e.into()),
    }
}

fn is_cancelled(e: &oxigraph::sparql::UpdateEvaluationError) -> bool {
    use oxigraph::sparql::{QueryEvaluationError, UpdateEvaluationError};
    // oxigraph reports a cancelled update as an unexpected error wrapping `Cancelled`.
    matches!(e, UpdateEvaluationError::Unexpected(inner)
        if matches!(inner.downcast_ref::<QueryEvaluationError>(), Some(QueryEvaluationError::Cancelled)))
}
