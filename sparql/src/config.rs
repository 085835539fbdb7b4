//! Server settings.

use std::time::Duration;

/// Settings of the HTTP server. Build with [`Config::default`] and the `with_*` methods.
#[derive(Debug, Clone)]
#[must_use]
pub struct Config {
    /// When set, `/update` and the write methods of `/store` need `Authorization: Bearer TOKEN`.
    pub write_token: Option<String>,
    /// Refuse every write (403).
    pub read_only: bool,
    /// Largest request body accepted, after gzip decompression (413 beyond).
    pub max_body_bytes: usize,
    /// Queries and updates running longer are cancelled (503).
    pub timeout: Option<Duration>,
    /// Origins allowed by CORS; empty disables CORS, `*` allows any origin.
    pub cors_origins: Vec<String>,
    /// Queries and update `WHERE` clauses without a dataset of their own (no `FROM`, `USING`
    /// or protocol dataset) see the union of all graphs as their default graph, so text read
    /// into named graphs answers `SELECT * { ?s ?p ?o }`. Writes still go to the real default
    /// graph, and the Graph Store's `?default` is still the real default graph.
    pub union_default_graph: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            write_token: None,
            read_only: false,
            max_body_bytes: 128 * 1024 * 1024,
            timeout: Some(Duration::from_secs(60)),
            cors_origins: Vec::new(),
            union_default_graph: false,
        }
    }
}

impl Config {
    /// Requires `Authorization: Bearer token` on writes.
    pub fn with_write_token(mut self, token: impl Into<String>) -> Self {
        self.write_token = Some(token.into());
        self
    }

    /// Refuses all writes.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Caps request bodies.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// Cancels queries and updates after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Never cancels queries.
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Makes the default graph of queries the union of all graphs.
    pub fn with_union_default_graph(mut self, union: bool) -> Self {
        self.union_default_graph = union;
        self
    }

    /// Allows CORS requests from `origin` (`*` for any).
    pub fn with_cors_origin(mut self, origin: impl Into<String>) -> Self {
        self.cors_origins.push(origin.into());
        self
    }
}
