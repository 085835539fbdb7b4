//! `tessera serve` as people run it: models fetched by URL (a Hugging Face name under
//! `HF_ENDPOINT`, served here by a local HTTP server) with their checksum, `/ready` only once
//! they are loaded, `/metrics`, and JSON logs. The real binary, the real small model.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tessera::llm::ModelCache;

fn cached(name: &str) -> PathBuf {
    ModelCache::default()
        .resolve_or_pull(name, &mut |_| {})
        .expect("the model is in the cache or can be pulled")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A file server for one file: answers `GET path` with the file, holding back everything after
/// the first MiB until `release` is sent. Sends the request paths it saw on the returned
/// channel.
fn hold_back_server(
    file: PathBuf,
    path: &'static str,
) -> (u16, mpsc::Sender<()>, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (release, released) = mpsc::channel::<()>();
    let (seen_tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        let mut released = Some(released);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            while let Ok(n) = reader.read_line(&mut String::new()) {
                if n <= 2 {
                    break;
                }
            }
            let requested = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let _ = seen_tx.send(requested.clone());
            if requested != path {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let bytes = std::fs::read(&file).expect("model file");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                bytes.len()
            );
            let first = bytes.len().min(1 << 20);
            let _ = stream.write_all(&bytes[..first]);
            let _ = stream.flush();
            if let Some(r) = released.take() {
                let _ = r.recv_timeout(Duration::from_secs(120));
            }
            let _ = stream.write_all(&bytes[first..]);
        }
    });
    (port, release, seen)
}

struct Served {
    child: Child,
    port: u16,
    stderr: mpsc::Receiver<String>,
}

impl Served {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .arg("serve")
            .args(["--bind", &bind])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn tessera serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("serve: {line}");
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            port,
            stderr: rx,
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    /// Waits until `path` answers `status`, or panics after `limit`.
    fn wait_status(&mut self, path: &str, status: u16, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some((s, body)) = self.get(path) {
                if s == status {
                    return body;
                }
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("the server exited ({exit}) before {path} answered {status}");
            }
            assert!(
                started.elapsed() < limit,
                "{path} did not answer {status} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end by itself; its status and stderr.
    fn wait_exit(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.stderr.try_iter().collect());
            }
            assert!(started.elapsed() < limit, "the server did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.stderr.try_iter().collect()
    }
}

fn sha256(path: &Path) -> String {
    tessera::llm::registry::sha256_file(path).expect("checksum")
}

#[test]
fn serve_fetches_a_hugging_face_model_and_is_ready_only_once_it_is_loaded() {
    let model = cached("smollm2");
    let embedder = cached("minilm");
    let sha = sha256(&model);
    let home = tempfile::tempdir().expect("tempdir");
    let (http_port, release, seen) =
        hold_back_server(model.clone(), "/org/SmolLM2-GGUF/resolve/main/smol.gguf");
    let endpoint = format!("http://127.0.0.1:{http_port}");
    let store = home.path().join("db");
    let spec = format!("hf://org/SmolLM2-GGUF/smol.gguf#sha256={sha}");
    let mut server = Served::start(
        &[
            "--location",
            store.to_str().expect("utf-8"),
            "--model",
            &spec,
            "--embedder",
            embedder.to_str().expect("utf-8"),
            "--threads",
            "1",
        ],
        &[
            ("TESSERA_HOME", home.path().to_str().expect("utf-8")),
            ("HF_ENDPOINT", &endpoint),
            ("HF_TOKEN", "secret-token-never-logged"),
        ],
    );
    // Alive at once, not ready while the model is still arriving.
    server.wait_status("/health", 200, Duration::from_secs(60));
    let (status, body) = server.get("/ready").expect("/ready answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"loading\""), "{body}");
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(30)).as_deref(),
        Ok("/org/SmolLM2-GGUF/resolve/main/smol.gguf"),
        "the file is asked of HF_ENDPOINT by the hub's path"
    );
    release.send(()).expect("release the download");
    let body = server.wait_status("/ready", 200, Duration::from_secs(300));
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["models"]["state"], "loaded", "{body}");
    let llm_path = ready["models"]["llm_path"].as_str().unwrap_or_default();
    assert!(
        llm_path.starts_with(
            home.path()
                .join("models")
                .join("url")
                .to_str()
                .expect("utf-8")
        ) && llm_path.ends_with("smol.gguf"),
        "{llm_path}"
    );
    assert_eq!(
        sha256(Path::new(llm_path)),
        sha,
        "the cached file is the model"
    );
    let (status, metrics) = server.get("/metrics").expect("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\ntessera_models_loaded 1\n"), "{metrics}");
    assert!(
        metrics.contains("\ntessera_model_load_seconds "),
        "{metrics}"
    );
    let logs = server.stop();
    assert!(
        logs.iter()
            .all(|l| !l.contains("secret-token-never-logged")),
        "the token never reaches the logs"
    );
}

#[test]
fn a_model_url_with_the_wrong_checksum_stops_the_server_and_caches_nothing() {
    let model = cached("smollm2");
    let embedder = cached("minilm");
    let mut wrong = sha256(&model);
    let flipped = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(63.., flipped);
    let home = tempfile::tempdir().expect("tempdir");
    let (http_port, release, _seen) = hold_back_server(model, "/m/smol.gguf");
    release.send(()).expect("no holding back");
    let spec = format!("http://127.0.0.1:{http_port}/m/smol.gguf#sha256={wrong}");
    let server = Served::start(
        &[
            "--model",
            &spec,
            "--embedder",
            embedder.to_str().expect("utf-8"),
        ],
        &[("TESSERA_HOME", home.path().to_str().expect("utf-8"))],
    );
    let (status, stderr) = server.wait_exit(Duration::from_secs(120));
    assert!(!status.success());
    let last = stderr.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains("SHA-256 mismatch"),
        "{stderr:?}"
    );
    let url_dir = home.path().join("models").join("url");
    let left: Vec<_> = std::fs::read_dir(&url_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing cached: {left:?}");

    // No checksum at all: refused before anything is fetched.
    let spec = format!("http://127.0.0.1:{http_port}/m/smol.gguf");
    let server = Served::start(
        &["--model", &spec],
        &[("TESSERA_HOME", home.path().to_str().expect("utf-8"))],
    );
    let (status, stderr) = server.wait_exit(Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        stderr
            .last()
            .is_some_and(|l| l.contains("needs its checksum")),
        "{stderr:?}"
    );
}

#[test]
fn json_logs_give_one_object_per_line_and_a_line_per_request() {
    let mut server = Served::start(&["--no-text", "--log-format", "json"], &[]);
    server.wait_status("/ready", 200, Duration::from_secs(60));
    let (status, _) = server.get("/query?query=ASK%7B%7D").expect("query");
    assert_eq!(status, 200);
    let logs = server.stop();
    let objects: Vec<serde_json::Value> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        objects
            .iter()
            .any(|o| o["span"]["uri"] == "/query?query=ASK%7B%7D" && o["fields"]["status"] == 200),
        "a request line for the query: {logs:?}"
    );
}
