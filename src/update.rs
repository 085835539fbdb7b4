//! SPARQL Update with the text extensions, as the database runs it: the request is split by
//! `tessera-text`'s grammar; standard parts go to oxigraph unchanged (through
//! `tessera-sparql`'s executor, which honours the protocol dataset and cancellation), and
//! `INSERT TEXT` / `DROP SOURCE` run on the database's reader. Entry point: [`execute`].

use crate::{Database, Error};
use tessera_llm::Cancel;
use tessera_sparql::{UpdateError, UpdateRequest};
use tessera_text::grammar::{self, Operation};
use tessera_text::{TextError, TextOptions};

/// How a text-layer failure reaches the HTTP layer: the request's fault (400), a full queue
/// (429), a cancellation, or a service that is not available (503); the error itself
/// travels, typed.
fn update_error(e: Error) -> UpdateError {
    match e {
        Error::Storage(s) => UpdateError::Storage(s),
        Error::Text(TextError::Storage(s)) => UpdateError::Storage(s),
        Error::Text(TextError::Cancelled) => UpdateError::Cancelled,
        Error::Text(e @ TextError::Busy { .. }) => UpdateError::Overloaded(Box::new(e)),
        Error::Text(t) if t.is_client_error() => UpdateError::Rejected(Box::new(t)),
        other => UpdateError::Unavailable(Box::new(other)),
    }
}

/// Executes an update request with the extension operations. Returns a JSON report when the
/// request held extension operations.
pub(crate) fn execute(
    db: &Database,
    request: &UpdateRequest,
) -> Result<Option<String>, UpdateError> {
    let ops = grammar::parse(&request.update, request.base_iri.as_deref())
        .map_err(|e| UpdateError::Rejected(Box::new(e)))?;
    if let [Operation::Standard(_)] = ops.as_slice() {
        return tessera_sparql::execute_update(db.storage(), request).map(|()| None);
    }
    let mut reports = Vec::new();
    for op in ops {
        match op {
            Operation::Standard(update) => {
                let req = UpdateRequest {
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
                    align: t.align,
                    refine: t.refine,
                    source: t.source,
                    example: t.example,
                    cancel: match &request.cancellation {
                        Some(token) => {
                            let token = token.clone();
                            Cancel::new(move || token.is_cancelled())
                        }
                        None => Cancel::default(),
                    },
                };
                let report = db.insert_text(&t.text, &opts).map_err(update_error)?;
                let mut v = serde_json::to_value(&report)
                    .map_err(|e| UpdateError::Unavailable(Box::new(e)))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("operation".into(), "insert text".into());
                }
                reports.push(v);
            }
            Operation::DropSource(s) => {
                let removed = db.drop_source(&s).map_err(update_error)?;
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
