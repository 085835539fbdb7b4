//! Reading through remote model servers: `tessera ingest --remote A,B` against two real
//! llama.cpp `llama-server` processes serving SmolLM2, one killed while it holds requests.
//! Its requests are tried again on the other: every text is written once, none lost, none
//! doubled, and the API key never reaches the logs.
//!
//! `llama-server` comes from `bench/llamacpp.sh` (which `scripts/test.sh` runs first); set
//! `TESSERA_LLAMA_SERVER` to use another build.
#![allow(clippy::expect_used)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera::llm::ModelCache;

const KEY: &str = "remote-test-key-5f1c";

fn llama_server() -> PathBuf {
    if let Ok(p) = std::env::var("TESSERA_LLAMA_SERVER") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("TESSERA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/tessera")
        });
    let p = home.join(
        "llamacpp/0.3.36/llama_cpp_python-0.3.36/vendor/llama.cpp/build-noamx/bin/llama-server",
    );
    assert!(
        p.exists(),
        "llama-server not found at {} (build it with bench/llamacpp.sh, or set TESSERA_LLAMA_SERVER)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A llama-server, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(KEY)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().unwrap_or_default()))
}

fn start_server(model: &Path) -> Server {
    let port = free_port();
    let child = Command::new(llama_server())
        .args(["-m", model.to_str().expect("utf-8"), "--host", "127.0.0.1"])
        .args([
            "--port",
            &port.to_string(),
            "-t",
            "1",
            "-np",
            "2",
            "-c",
            "4096",
        ])
        .args(["--api-key", KEY, "--log-disable"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let server = Server { child, port };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        if matches!(get(port, "/health"), Some((200, _))) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("llama-server on port {port} not healthy after 120 s");
}

fn busy(port: u16) -> bool {
    match get(port, "/slots") {
        Some((200, body)) => body.contains("\"is_processing\":true"),
        _ => false,
    }
}

#[test]
fn ingesting_through_two_servers_survives_one_killed_mid_run() {
    let smollm2 = ModelCache::default()
        .resolve_or_pull("smollm2", &mut |_| {})
        .expect("smollm2 in the cache or pulled");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_s = store.to_str().expect("utf-8");
    let tessera = env!("CARGO_BIN_EXE_tessera");
    let loaded = Command::new(tessera)
        .args(["load", "--location", store_s, "--file"])
        .arg(root.join("examples/data/sample-schema.ttl"))
        .output()
        .expect("load");
    assert!(loaded.status.success(), "{loaded:?}");
    // Sixteen short texts, each stated once.
    let people = [
        ("Ana Lima", "Lisbon", "Porto University"),
        ("Jonas Berg", "Oslo", "Statkraft"),
        ("Mei Chen", "Taipei", "Academia Sinica"),
        ("Omar Haddad", "Amman", "Orange Jordan"),
        ("Lena Vogel", "Graz", "Magna Steyr"),
        ("Pablo Ruiz", "Seville", "Abengoa"),
        ("Sara Nieminen", "Turku", "Nokia"),
        ("Tomasz Nowak", "Gdansk", "Energa"),
    ];
    let mut texts = Vec::new();
    for (name, city, org) in people {
        texts.push(format!("{name} was born in {city}."));
        texts.push(format!("{name} works for {org}."));
    }
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, texts.join("\n") + "\n").expect("write texts");

    let a = start_server(&smollm2);
    let b = start_server(&smollm2);
    let mut ingest = Command::new(tessera)
        .args(["ingest", "--location", store_s])
        .arg(&input)
        .args([
            "--batch",
            "4",
            "--remote-slots",
            "2",
            "--remote-retries",
            "6",
        ])
        .args([
            "--remote",
            &format!("http://127.0.0.1:{},http://127.0.0.1:{}", a.port, b.port),
        ])
        .env("TESSERA_REMOTE_API_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera ingest");
    // Kill A while it is answering, early in the run.
    let mut a = Some(a);
    let t0 = Instant::now();
    let mut killed_busy = false;
    while t0.elapsed() < Duration::from_secs(300) {
        if ingest.try_wait().expect("try_wait").is_some() {
            break;
        }
        if busy(a.as_ref().map_or(0, |s| s.port)) {
            killed_busy = true;
            drop(a.take());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        killed_busy,
        "server A was never seen answering before the run ended"
    );
    let mut out = String::new();
    let mut err = String::new();
    ingest
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    ingest
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = ingest.wait().expect("wait");
    assert!(status.success(), "ingest failed:\n{out}\n{err}");
    assert!(
        out.contains("16 texts ingested, 0 failed"),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains("trying again"),
        "the killed server's requests were retried: {err}"
    );
    assert!(
        !err.contains(KEY) && !out.contains(KEY),
        "the API key was logged"
    );
    drop(b);

    // Every text is a source exactly once, with the remote model in its provenance.
    let db = tessera::Database::open(&store).expect("open the store");
    let rows = solutions(
        &db,
        "SELECT ?text (COUNT(?source) AS ?n) WHERE { GRAPH <urn:tessera:sources> { ?source <https://tessera.dev/ns#text> ?text } } GROUP BY ?text",
        &["text", "n"],
    );
    assert_eq!(rows.len(), texts.len(), "{rows:?}");
    for row in &rows {
        assert_eq!(row[1], "1", "a text recorded twice: {row:?}");
        assert!(texts.contains(&row[0]), "unexpected text {row:?}");
    }
    let models = solutions(
        &db,
        "SELECT DISTINCT ?m WHERE { GRAPH <urn:tessera:sources> { ?s <https://tessera.dev/ns#model> ?m } }",
        &["m"],
    );
    let file = smollm2.file_name().and_then(|f| f.to_str()).expect("name");
    assert_eq!(models, vec![vec![file.to_owned()]]);
}

/// The values (lexical forms) of `vars` in each solution.
fn solutions(db: &tessera::Database, query: &str, vars: &[&str]) -> Vec<Vec<String>> {
    let tessera::sparql::QueryResults::Solutions(solutions) = db.query(query).expect("query")
    else {
        panic!("not a SELECT");
    };
    solutions
        .map(|s| {
            let s = s.expect("solution");
            vars.iter()
                .map(|v| match s.get(*v) {
                    Some(tessera::model::Term::Literal(l)) => l.value().to_owned(),
                    Some(t) => t.to_string(),
                    None => String::new(),
                })
                .collect()
        })
        .collect()
}
