//! Query results for async callers: evaluated on a blocking thread, delivered through a
//! bounded channel so memory stays flat and the runtime never blocks. Entry point:
//! [`QueryStream`].

use crate::Error;
use futures::Stream;
use oxigraph::model::Triple;
use oxigraph::sparql::{QueryResults, QuerySolution, SparqlEvaluator, Variable};
use oxigraph::store::Store;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

const BUFFERED_ITEMS: usize = 256;

/// The results of a query, streamed.
#[non_exhaustive]
pub enum QueryStream {
    /// SELECT: a stream of solutions.
    Solutions {
        /// The projected variables.
        variables: Arc<[Variable]>,
        /// The solutions, in order.
        solutions: Items<QuerySolution>,
    },
    /// ASK.
    Boolean(bool),
    /// CONSTRUCT and DESCRIBE: a stream of triples.
    Graph(Items<Triple>),
}

/// A stream of results fed by the evaluating thread.
pub struct Items<T>(mpsc::Receiver<Result<T, Error>>);

impl<T> Stream for Items<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

enum Head {
    Solutions(Arc<[Variable]>),
    Boolean(bool),
    Graph,
}

pub(crate) async fn spawn_query(store: Store, query: String) -> Result<QueryStream, Error> {
    let (head_tx, head_rx) = oneshot::channel::<Result<Head, Error>>();
    let (solutions_tx, solutions_rx) = mpsc::channel(BUFFERED_ITEMS);
    let (triples_tx, triples_rx) = mpsc::channel(BUFFERED_ITEMS);
    tokio::task::spawn_blocking(move || {
        let results = SparqlEvaluator::new()
            .parse_query(&query)
            .map_err(Error::from)
            .and_then(|q| q.on_store(&store).execute().map_err(Error::from));
        match results {
            Err(e) => {
                let _ = head_tx.send(Err(e));
            }
            Ok(QueryResults::Boolean(b)) => {
                let _ = head_tx.send(Ok(Head::Boolean(b)));
            }
            Ok(QueryResults::Solutions(solutions)) => {
                let variables: Arc<[Variable]> = solutions.variables().into();
                let _ = head_tx.send(Ok(Head::Solutions(variables)));
                for solution in solutions {
                    // A closed channel means the caller dropped the stream: stop evaluating.
                    if solutions_tx
                        .blocking_send(solution.map_err(Error::from))
                        .is_err()
                    {
                        break;
                    }
                }
            }
            Ok(QueryResults::Graph(triples)) => {
                let _ = head_tx.send(Ok(Head::Graph));
                for triple in triples {
                    if triples_tx
                        .blocking_send(triple.map_err(Error::from))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let head = head_rx
        .await
        .map_err(|_| Error::Io(std::io::Error::other("the query thread stopped")))??;
    Ok(match head {
        Head::Boolean(b) => QueryStream::Boolean(b),
        Head::Solutions(variables) => QueryStream::Solutions {
            variables,
            solutions: Items(solutions_rx),
        },
        Head::Graph => QueryStream::Graph(Items(triples_rx)),
    })
}
