//! Tessera SPARQL: the HTTP face of a Tessera database, as a library.
//!
//! The entry point is [`router`], which returns an [`axum::Router`] serving
//! - the [SPARQL 1.1 Protocol](https://www.w3.org/TR/sparql11-protocol/) at `/query`, `/update`
//!   and `/sparql` (GET, POST direct, POST form; protocol datasets; a service description);
//! - the [Graph Store HTTP Protocol](https://www.w3.org/TR/sparql11-http-rdf-update/) at
//!   `/store` (indirect `?graph=`/`?default`) and `/store/...` (direct identification);
//! - the console at `/` (its files under `/assets/`, all compiled in);
//! - `/health`, `/ready` and Prometheus `/metrics` ([`metrics`]), and a log line per request
//!   (tower-http's trace layer, at `info`).
//!
//! What the server does with an update is the [`Backend`]'s business, so the root crate can
//! extend SPARQL Update (INSERT TEXT, parsed and run by `tessera-text`) without this crate
//! knowing about models or reading. HTTP status
//! codes are decided in one place, [`HttpError`]'s `IntoResponse`.

mod backend;
mod config;
mod error;
mod gsp;
mod health;
pub mod metrics;
pub mod negotiate;
mod page;
mod protocol;
mod service_description;
mod stream;

pub use backend::{execute_update, Backend, UpdateError, UpdateRequest};
pub use config::Config;
pub use error::HttpError;
pub use health::Readiness;
pub use stream::running_evaluations;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<Config>,
    pub http_metrics: Arc<metrics::HttpMetrics>,
}

/// Prepares a TCP listener for serving the router: every accepted connection gets
/// `TCP_NODELAY`, because a response ends with a small chunk that would otherwise wait for the
/// client's delayed ACK (about 40 ms per request on Linux).
pub fn listener(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    })
}

/// Builds the router serving every endpoint over `backend`.
///
/// Tests can drive it without a port with `tower::ServiceExt::oneshot`.
pub fn router(backend: Arc<dyn Backend>, config: Config) -> axum::Router {
    let cors = cors_layer(&config.cors_origins);
    let http_metrics = Arc::new(metrics::HttpMetrics::default());
    let state = AppState {
        backend,
        config: Arc::new(config),
        http_metrics: http_metrics.clone(),
    };
    let router = axum::Router::new()
        .route("/", get(page::console))
        .route("/assets/{*path}", get(page::asset))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/query", any(protocol::query_endpoint))
        .route("/update", any(protocol::update_endpoint))
        .route("/sparql", any(protocol::sparql_endpoint))
        .route("/store", any(gsp::store_endpoint))
        .route("/store/{*path}", any(gsp::store_endpoint))
        // Matched routes only: the series are named by route, never by a client's path.
        .route_layer(axum::middleware::from_fn_with_state(
            http_metrics,
            metrics::track,
        ))
        .fallback(|| async {
            HttpError::NotFound("no such endpoint; try /sparql, /query, /update or /store".into())
        })
        .with_state(state)
        // Bodies are read with an explicit cap in the handlers (413 with a message).
        .layer(DefaultBodyLimit::disable())
        .layer(
            RequestDecompressionLayer::new()
                .gzip(true)
                .pass_through_unaccepted(true),
        )
        // One log line per request: method, URI, status and latency.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                // A 5xx is already in the response line (a 503 while models load is normal);
                // the handlers log real failures themselves.
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        );
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(Any);
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(Any));
    }
    let list = origins
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect::<Vec<_>>();
    Some(layer.allow_origin(AllowOrigin::list(list)))
}
