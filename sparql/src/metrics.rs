//! What the server counts, and the Prometheus text format it is read in.
//!
//! [`HttpMetrics`] counts requests by endpoint and status and keeps a latency histogram per
//! endpoint; the [`track`] middleware feeds it. [`Exposition`] writes the Prometheus text
//! exposition format (version 0.0.4) and is public so that a [`crate::Backend`] can add its
//! own families to `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request counts and latencies of the HTTP endpoints.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl HttpMetrics {
    /// Records one request: its endpoint (the route, e.g. `/store/{*path}`), method, status and
    /// seconds until the response's head was ready (a streamed body may flow on after).
    pub fn record(&self, endpoint: &str, method: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((endpoint.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = latency.entry(endpoint.to_owned()).or_default();
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Writes the request families.
    pub fn write(&self, out: &mut Exposition) {
        out.family(
            "tessera_http_requests_total",
            "counter",
            "HTTP requests answered, by endpoint, method and status",
        );
        for ((endpoint, method, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.sample(
                "tessera_http_requests_total",
                &[
                    ("endpoint", endpoint),
                    ("method", method),
                    ("status", &status.to_string()),
                ],
                *n as f64,
            );
        }
        out.family(
            "tessera_http_request_duration_seconds",
            "histogram",
            "Seconds until the response head was ready, by endpoint",
        );
        for (endpoint, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let name = "tessera_http_request_duration_seconds";
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                out.sample(
                    &format!("{name}_bucket"),
                    &[("endpoint", endpoint), ("le", &bound.to_string())],
                    count as f64,
                );
            }
            out.sample(
                &format!("{name}_bucket"),
                &[("endpoint", endpoint), ("le", "+Inf")],
                h.count as f64,
            );
            out.sample(&format!("{name}_sum"), &[("endpoint", endpoint)], h.sum);
            out.sample(
                &format!("{name}_count"),
                &[("endpoint", endpoint)],
                h.count as f64,
            );
        }
    }
}

/// Middleware: records every request in the server's [`HttpMetrics`].
pub(crate) async fn track(
    State(metrics): State<std::sync::Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // The route pattern, not the path: one series per endpoint whatever the graph IRIs.
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    metrics.record(
        &endpoint,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A Prometheus text exposition being written.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The text so far.
    pub fn finish(self) -> String {
        self.text
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = HttpMetrics::default();
        m.record("/query", "GET", 200, 0.003);
        m.record("/query", "GET", 200, 0.2);
        m.record("/store/{*path}", "PUT", 400, 0.0005);
        let mut out = Exposition::default();
        m.write(&mut out);
        out.sample("x", &[("l", "a\"b\\c\nd")], 1.0);
        let text = out.finish();
        assert!(text.contains(
            "tessera_http_requests_total{endpoint=\"/query\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{endpoint=\"/query\",le=\"0.001\"} 0\n"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{endpoint=\"/query\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{endpoint=\"/query\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("x{l=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
    }
}
