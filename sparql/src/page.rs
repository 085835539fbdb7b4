//! The console served at `/`: a SPARQL editor (CodeMirror, SPARQL mode), results as a paged
//! table and as a graph (Cytoscape.js), reading text with `INSERT TEXT` and its report, the
//! schema and the sources. Every file is compiled into the binary and served under `assets/`
//! (no CDN: the page works offline); the pages use relative URLs, so a router nested under a
//! prefix still works. The vendored libraries and their licences come from npm through
//! `scripts/vendor-console.sh`. Entry points: [`console`] and [`asset`].

use crate::HttpError;
use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

/// `GET /`.
pub(crate) async fn console() -> Html<&'static str> {
    Html(include_str!("../assets/console.html"))
}

/// The files under `assets/`: path, media type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/console.css"),
    ),
    (
        "vendor/codemirror/codemirror.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/codemirror/codemirror.js"),
    ),
    (
        "vendor/codemirror/codemirror.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/codemirror/codemirror.css"),
    ),
    (
        "vendor/codemirror/sparql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/codemirror/sparql.js"),
    ),
    (
        "vendor/codemirror/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/codemirror/LICENSE"),
    ),
    (
        "vendor/cytoscape/cytoscape.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/cytoscape/cytoscape.min.js"),
    ),
    (
        "vendor/cytoscape/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/cytoscape/LICENSE"),
    ),
];

/// `GET /assets/{*path}`.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, media_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
                // The files change only with the binary; a browser may keep them for an hour.
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => HttpError::NotFound(format!("no console file {path:?}")).into_response(),
    }
}
