//! Streaming responses: a query is evaluated and serialised on a blocking thread (oxigraph's
//! result iterators are not `Send`) into bounded chunks that flow to the client as they are
//! produced, so the first rows arrive before evaluation ends and memory stays flat.
//!
//! Entry point: [`stream_response`]. The status line waits for the first chunk (or the end),
//! so errors and timeouts before any output still get a proper status code; after that an
//! error aborts the body. An answer that ends before its first chunk fills (most do) goes out
//! whole, without the channel.

use crate::HttpError;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use oxigraph::sparql::CancellationToken;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Size of the chunks sent to the client.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the evaluator and the socket.
const CHANNEL_CHUNKS: usize = 4;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Number of evaluations running on blocking threads in this process (queries being
/// evaluated or serialised). A cancelled or abandoned evaluation leaves this count.
pub fn running_evaluations() -> usize {
    RUNNING.load(Ordering::SeqCst)
}

struct Running;

impl Running {
    fn start() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a response starts: the first chunk is in the channel, or the whole body was produced
/// before the first chunk filled (most answers), and it skips the channel.
enum Start {
    Streaming,
    Complete(Bytes),
}

/// The `Write` end of a streamed body, used by serialisers on the blocking thread.
pub(crate) struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
    ready: Option<oneshot::Sender<Result<Start, HttpError>>>,
    handle: Handle,
    deadline: Option<Instant>,
    stall: Option<Duration>,
}

impl ChunkWriter {
    fn send_chunk(&mut self) -> io::Result<()> {
        if let Some(ready) = self.ready.take() {
            // The receiver is gone only if the request already timed out.
            let _ = ready.send(Ok(Start::Streaming));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        let send = self.tx.send(Ok(chunk));
        let limit = match (self.deadline, self.stall) {
            (Some(deadline), Some(stall)) => Some(deadline.min(Instant::now() + stall)),
            (Some(deadline), None) => Some(deadline),
            (None, Some(stall)) => Some(Instant::now() + stall),
            (None, None) => None,
        };
        let sent = match limit {
            Some(deadline) => self
                .handle
                .block_on(tokio::time::timeout_at(deadline, send))
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timeout while sending"))?,
            None => self.handle.block_on(send),
        };
        sent.map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    fn finish(mut self, result: Result<(), HttpError>) {
        match result {
            Ok(()) => {
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(Start::Complete(Bytes::from(std::mem::take(
                        &mut self.buf,
                    )))));
                } else if let Err(e) = self.send_chunk() {
                    tracing::debug!(error = %e, "response stream ended early");
                }
            }
            Err(error) => match self.ready.take() {
                Some(ready) => {
                    let _ = ready.send(Err(error));
                }
                None => {
                    tracing::warn!(%error, "aborting a response after its first bytes");
                    let _ = self.tx.try_send(Err(io::Error::other(error.to_string())));
                }
            },
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Maps an I/O error of the writer: a timeout stays a timeout, a gone client ends quietly.
pub(crate) fn write_error(e: io::Error, timeout: Option<Duration>) -> HttpError {
    match e.kind() {
        io::ErrorKind::TimedOut => HttpError::Timeout(timeout.unwrap_or_default()),
        _ => HttpError::Internal(format!("cannot write the response: {e}")),
    }
}

/// How long a streamed response may take.
#[derive(Clone, Copy)]
pub(crate) enum Limit {
    /// The whole evaluation must end within this time (queries).
    Total(Option<Duration>),
    /// Each chunk must be taken by the client within this time (dumps, which may be long).
    Stall(Option<Duration>),
}

/// Runs `produce` on a blocking thread and streams what it writes as the response body.
///
/// With [`Limit::Total`], `cancel` is triggered when the time passes, which makes oxigraph
/// stop evaluating.
pub(crate) async fn stream_response<F>(
    content_type: &'static str,
    limit: Limit,
    cancel: CancellationToken,
    produce: F,
) -> Result<Response, HttpError>
where
    F: FnOnce(&mut ChunkWriter) -> Result<(), HttpError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (timeout, stall) = match limit {
        Limit::Total(t) => (t, None),
        Limit::Stall(s) => (None, s),
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut writer = ChunkWriter {
        tx,
        buf: Vec::with_capacity(CHUNK_BYTES),
        ready: Some(ready_tx),
        handle: Handle::current(),
        deadline,
        stall,
    };
    let running = Running::start();
    tokio::task::spawn_blocking(move || {
        let _running = running;
        let result = produce(&mut writer);
        writer.finish(result);
    });
    let ready = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, ready_rx).await {
            Ok(ready) => ready,
            Err(_) => {
                cancel.cancel();
                return Err(HttpError::Timeout(timeout.unwrap_or_default()));
            }
        },
        None => ready_rx.await,
    };
    let start = ready
        .map_err(|_| HttpError::Internal("the evaluation thread stopped unexpectedly".into()))??;
    let body = match start {
        Start::Complete(bytes) => Body::from(bytes),
        Start::Streaming => streaming_body(rx, deadline, cancel),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

fn streaming_body(
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
) -> Body {
    if let Some(deadline) = deadline {
        // Past the first bytes the deadline still holds: cancel the evaluation then.
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            cancel.cancel();
        });
    }
    Body::from_stream(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
