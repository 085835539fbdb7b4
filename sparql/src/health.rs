//! The server's eyes: `/health` (the process answers), `/ready` (the store is open and the
//! backend's services, such as models, are loaded) and `/metrics` (Prometheus text format).

use crate::metrics::Exposition;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Whether a backend can serve every request now, and what it says about itself.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Ready for every kind of request.
    pub ready: bool,
    /// Details shown at `/ready` (a JSON object).
    pub detail: serde_json::Value,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            ready: true,
            detail: serde_json::json!({}),
        }
    }
}

/// `GET /health`: 200 while the process serves requests.
pub(crate) async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: 200 once the backend says it is ready, else 503; the body says why.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let backend = state.backend.clone();
    // The backend may look at its store: off the async threads.
    let readiness = tokio::task::spawn_blocking(move || backend.readiness())
        .await
        .unwrap_or_else(|e| Readiness {
            ready: false,
            detail: serde_json::json!({ "error": e.to_string() }),
        });
    let mut body = match readiness.detail {
        serde_json::Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("detail".into(), other);
            map
        }
    };
    body.insert("ready".into(), readiness.ready.into());
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &serde_json::Value::Object(body))
}

/// `GET /metrics`: the HTTP counters, then the backend's own families.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = Exposition::default();
    state.http_metrics.write(&mut out);
    state.backend.write_metrics(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
        .into_response()
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
