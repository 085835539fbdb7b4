//! Fuzzes the request bodies the server parses itself: form-encoded queries and updates
//! (`/query`, `/update`, `/sparql`) and multipart Graph Store uploads (`/store`), through the
//! real router on an in-memory store. Any body gets an answer, a 4xx with a message or a
//! success, never a panic and never a 500.
#![no_main]
use axum::body::Body;
use axum::http::{header, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tessera_sparql::Config;
use tessera_storage::Storage;
use tower::ServiceExt;

struct Db(Storage);

impl tessera_sparql::Backend for Db {
    fn storage(&self) -> &Storage {
        &self.0
    }
}

/// Method, URI and Content-Type; the first input byte picks one.
const TARGETS: [(&str, &str, &str); 7] = [
    ("POST", "/query", "application/x-www-form-urlencoded"),
    ("POST", "/update", "application/x-www-form-urlencoded"),
    ("POST", "/sparql", "application/x-www-form-urlencoded; charset=UTF-8"),
    ("POST", "/store?default", "multipart/form-data; boundary=b"),
    ("POST", "/store?graph=http://example.org/g", "multipart/form-data; boundary=\"--XyZ\""),
    ("POST", "/store/g", "multipart/form-data; boundary=b"),
    ("PUT", "/store?default", "text/turtle"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, uri, content_type) = TARGETS[usize::from(pick) % TARGETS.len()];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let storage = Storage::in_memory().expect("in-memory store");
    let config = Config::default().with_max_body_bytes(1 << 16);
    let app = tessera_sparql::router(Arc::new(Db(storage)), config);
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .expect("request");
    let response = runtime.block_on(app.oneshot(request)).expect("infallible service");
    assert_ne!(response.status().as_u16(), 500, "{method} {uri}: {body:?}");
});
