//! The server over real TCP on a real on-disk store: clients that send half a request or
//! vanish mid-response, and data that survives a restart.
#![allow(clippy::expect_used)]

mod common;

use common::TestServer;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tessera::ServerConfig;

fn count(server: &TestServer) -> String {
    let response = reqwest::blocking::Client::new()
        .get(server.url("/query"))
        .query(&[(
            "query",
            "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }",
        )])
        .header("accept", "text/csv")
        .send()
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    response.text().expect("body")
}

fn put_people(server: &TestServer) {
    let response = reqwest::blocking::Client::new()
        .put(server.url("/store?graph=http%3A%2F%2Fexample.org%2Fpeople"))
        .header("content-type", "text/turtle")
        .body("<http://e/alice> <http://e/knows> <http://e/bob> , <http://e/carol> .")
        .send()
        .expect("PUT");
    assert_eq!(response.status(), 201);
}

#[test]
fn truncated_and_abandoned_requests_change_nothing() {
    let server = TestServer::start(ServerConfig::default());
    put_people(&server);
    let before = count(&server);
    assert_eq!(before, "n\r\n2\r\n");

    // A body that promises 500 bytes and stops after a few, then the client disappears.
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    write!(
        stream,
        "POST /update HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-update\r\nContent-Length: 500\r\n\r\nDROP ALL ; INSERT DATA {{"
    )
    .expect("write");
    drop(stream);

    // Half a header block, then gone.
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(b"PUT /store?default HTTP/1.1\r\nContent-Ty")
        .expect("write");
    drop(stream);

    // Garbage instead of HTTP.
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(&[0xff, 0x00, 0xfe, b'\r', b'\n', b'\r', b'\n'])
        .expect("write");
    let mut answer = Vec::new();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.read_to_end(&mut answer);

    assert_eq!(
        count(&server),
        before,
        "nothing was written by the broken requests"
    );
}

#[test]
fn a_client_killed_mid_stream_stops_the_evaluation() {
    let server = TestServer::start(ServerConfig::default());
    let mut data = String::new();
    for i in 0..1000 {
        data.push_str(&format!("<http://e/s{i}> <http://e/p> \"{i}\" .\n"));
    }
    server
        .db
        .load(data.as_bytes(), tessera::io::RdfFormat::NTriples, None)
        .expect("load");
    // One million rows: the client reads a little and disappears.
    let query = form_urlencoded::byte_serialize(b"SELECT * WHERE { ?a ?p ?b . ?c ?q ?d }")
        .collect::<String>();
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    write!(
        stream,
        "GET /query?query={query} HTTP/1.1\r\nHost: x\r\nAccept: text/tab-separated-values\r\n\r\n"
    )
    .expect("write");
    let mut first = [0u8; 4096];
    let n = stream.read(&mut first).expect("the response starts");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);

    let start = Instant::now();
    while tessera_sparql::running_evaluations() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the evaluation outlived its client"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the server still serves.
    assert_eq!(count(&server), "n\r\n0\r\n");
}

#[test]
fn writes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let keep = tempfile::tempdir().expect("tempdir");
    {
        let server = TestServer::start_at(&path, ServerConfig::default(), keep);
        put_people(&server);
    }
    let server = TestServer::start_at(
        &path,
        ServerConfig::default(),
        tempfile::tempdir().expect("tempdir"),
    );
    assert_eq!(count(&server), "n\r\n2\r\n");
}

/// Peak resident memory of this process (the server runs in it), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// An on-disk store that reads text with the small model.
fn reading_store() -> (tempfile::TempDir, tessera::Database) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = tessera::Database::open(dir.path().join("store"))
        .expect("open")
        .with_text_config(tessera::TextConfig {
            llm: "smollm2".into(),
            threads: 2,
            ..tessera::TextConfig::default()
        });
    (dir, db)
}

#[test]
fn a_megabyte_text_is_cancelled_by_the_timeout_in_bounded_memory() {
    let (dir, db) = reading_store();
    let server = TestServer::start_with(
        db,
        ServerConfig::default().with_timeout(Duration::from_secs(8)),
        dir,
    );
    let sentence =
        "Ada Lovelace was born in London and worked with Charles Babbage on the engine. ";
    let text = sentence.repeat((1 << 20) / sentence.len() - 1);
    assert!(text.len() > 1_000_000 && text.len() < 1 << 20);
    let update = format!("INSERT TEXT \"\"\"{text}\"\"\" INTO GRAPH <http://e/read>");
    let t0 = Instant::now();
    let response = reqwest::blocking::Client::new()
        .post(server.url("/update"))
        .header("content-type", "application/sparql-update")
        .body(update)
        .timeout(Duration::from_secs(600))
        .send()
        .expect("the server answers");
    let waited = t0.elapsed();
    let status = response.status();
    let body = response.text().expect("body");
    let peak = peak_rss_kib();
    eprintln!(
        "1 MiB INSERT TEXT: {status} after {:.1} s; peak RSS {} MiB",
        waited.as_secs_f64(),
        peak / 1024
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cancelled"), "{body}");
    // Cancelled between decode steps: well before the ~800 chunks could have been read.
    assert!(waited < Duration::from_secs(120), "{waited:?}");
    // Nothing of the text was written: no triple, no source.
    let response = reqwest::blocking::Client::new()
        .get(server.url("/query"))
        .query(&[(
            "query",
            "SELECT (COUNT(*) AS ?n) WHERE { { GRAPH <http://e/read> { ?s ?p ?o } } UNION { GRAPH <urn:tessera:sources> { ?s ?p ?o } } }",
        )])
        .header("accept", "text/csv")
        .send()
        .expect("query");
    assert_eq!(response.text().expect("body"), "n\r\n0\r\n");
    // Bounded: the model, at most 16 sequences' KV caches and the text, far from what 800
    // chunks decoded at once would take.
    assert!(peak < 4 << 20, "peak RSS {} MiB", peak / 1024);
}

#[test]
fn queries_keep_answering_while_clients_read_texts() {
    let (dir, db) = reading_store();
    // No timeout: three texts share one model, and a loaded machine must not turn that into 503s.
    let server = TestServer::start_with(db, ServerConfig::default().without_timeout(), dir);
    put_people(&server);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = [
        "Ada Lovelace was born in London.",
        "Niels Bohr was born in Copenhagen.",
        "Grace Hopper worked for the United States Navy.",
    ]
    .into_iter()
    .map(|text| {
        let url = server.url("/update");
        std::thread::spawn(move || {
            reqwest::blocking::Client::new()
                .post(url)
                .header("content-type", "application/sparql-update")
                .body(format!("INSERT TEXT \"{text}\" INTO GRAPH <http://e/read>"))
                .timeout(Duration::from_secs(600))
                .send()
                .expect("INSERT TEXT answers")
                .status()
        })
    })
    .collect();
    let queriers: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/query");
            let done = done.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut latencies = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let t0 = Instant::now();
                    let response = client
                        .get(&url)
                        .query(&[("query", "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 10")])
                        .header("accept", "application/sparql-results+json")
                        .send()
                        .expect("query answers");
                    assert_eq!(response.status(), 200);
                    response.bytes().expect("body");
                    latencies.push(t0.elapsed());
                    std::thread::sleep(Duration::from_millis(20));
                }
                latencies
            })
        })
        .collect();
    let statuses: Vec<_> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut latencies: Vec<Duration> = queriers
        .into_iter()
        .flat_map(|q| q.join().expect("querier"))
        .collect();
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!(
        "{} queries while 3 clients read texts: p50 {:?}, p99 {:?}, max {:?}; INSERT TEXT answers {statuses:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        p99,
        latencies[latencies.len() - 1]
    );
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    assert!(latencies.len() > 20, "too few queries ran");
    // Queries run on their own threads and snapshots: reading never holds them up.
    assert!(p99 < Duration::from_secs(2), "query p99 {p99:?}");
}
