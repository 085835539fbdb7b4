//! The `tessera` command on a real on-disk store: load, query, update, dump, and one-line
//! errors with a non-zero exit for bad input; the model commands (`models`, `generate`,
//! `bench llm`) on the real small model.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tessera")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A failure is exit code 1 and exactly one `error:` line, never a panic.
fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
    // Said once: a message that quotes its cause is not followed by the cause again.
    let parts: Vec<&str> = lines[0].split(": ").filter(|p| p.len() >= 12).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "repeated {p:?}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn location(dir: &Path) -> String {
    dir.join("store").display().to_string()
}

#[test]
fn load_query_update_dump() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = location(dir.path());
    let data = dir.path().join("people.ttl");
    std::fs::write(
        &data,
        "<http://e/alice> <http://e/name> \"Alice\" . <http://e/bob> <http://e/name> \"Bob\" .",
    )
    .expect("write");
    let load = tessera(&[
        "load",
        "--location",
        &store,
        "--file",
        data.to_str().expect("utf-8 path"),
    ]);
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(String::from_utf8_lossy(&load.stderr).contains("triples/s"));

    let query = tessera(&[
        "query",
        "--location",
        &store,
        "--query",
        "SELECT ?n WHERE { ?s <http://e/name> ?n } ORDER BY ?n",
        "--format",
        "csv",
    ]);
    assert!(query.status.success());
    assert_eq!(stdout(&query), "n\r\nAlice\r\nBob\r\n");

    let update = tessera(&[
        "update",
        "--location",
        &store,
        "--update",
        "INSERT DATA { GRAPH <http://e/g> { <http://e/carol> <http://e/name> \"Carol\" } }",
    ]);
    assert!(
        update.status.success(),
        "{}",
        String::from_utf8_lossy(&update.stderr)
    );

    let dump = tessera(&["dump", "--location", &store, "--format", "nq"]);
    assert!(dump.status.success());
    let nquads = stdout(&dump);
    assert_eq!(nquads.lines().count(), 3, "{nquads}");
    assert!(nquads.contains("\"Carol\" <http://e/g> ."), "{nquads}");

    let graph = tessera(&[
        "dump",
        "--location",
        &store,
        "--format",
        "nt",
        "--graph",
        "http://e/g",
    ]);
    assert_eq!(
        stdout(&graph),
        "<http://e/carol> <http://e/name> \"Carol\" .\n"
    );
}

#[test]
fn bad_input_gives_one_line_and_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = location(dir.path());
    let insert = "INSERT DATA { <http://e/a> <http://e/b> <http://e/c> }";
    assert!(
        tessera(&["update", "--location", &store, "--update", insert])
            .status
            .success()
    );

    let file = |name: &str, content: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        path.display().to_string()
    };
    let bad_ttl = file("bad.ttl", b"<http://e/x> <http://e/y> .");
    let binary_query = file("query.rq", &[0xff, 0xfe, 0x00, 0x41]);
    let unknown = file("data.xyz", b"x");
    // (command, what the one error line must name)
    let cases: [(&[&str], &str); 6] = [
        (
            &["query", "--query", "SELECT * WHERE { ?s ?p }"],
            "syntax error",
        ),
        (&["update", "--update", "INSERT DATA { <a> }"], "syntax"),
        (&["load", "--file", &bad_ttl], "bad.ttl"),
        (&["query", "--query-file", &binary_query], "query.rq"),
        (&["load", "--file", &unknown], "--format"),
        (&["dump", "--format", "ttl"], "--graph"),
    ];
    for (args, needle) in cases {
        let mut full = vec![args[0], "--location", &store];
        full.extend_from_slice(&args[1..]);
        assert_one_line_error(&tessera(&full), needle);
    }

    let count = "SELECT (COUNT(*) AS ?n) { ?s ?p ?o }";
    let count = tessera(&[
        "query",
        "--location",
        &store,
        "--query",
        count,
        "--format",
        "csv",
    ]);
    assert_eq!(stdout(&count), "n\r\n1\r\n", "nothing stored was lost");
}

#[test]
fn stores_of_another_format_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let ok = tessera(&[
        "update",
        "--location",
        store.to_str().expect("path"),
        "--update",
        "INSERT DATA { <http://e/a> <http://e/b> <http://e/c> }",
    ]);
    assert!(ok.status.success());
    std::fs::write(
        store.join(tessera_storage::FORMAT_FILE),
        "tessera-store 99\n",
    )
    .expect("write");
    let refused = tessera(&[
        "query",
        "--location",
        store.to_str().expect("path"),
        "--query",
        "ASK {}",
    ]);
    assert_one_line_error(&refused, "tessera-store 99");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "hello").expect("write");
    let refused = tessera(&[
        "query",
        "--location",
        foreign.to_str().expect("path"),
        "--query",
        "ASK {}",
    ]);
    assert_one_line_error(&refused, "not a Tessera store");

    let serve = tessera(&["serve", "--location", foreign.to_str().expect("path")]);
    assert_one_line_error(&serve, "not a Tessera store");
}

#[test]
fn serve_reports_a_busy_port_in_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = location(dir.path());
    let busy = tessera(&["serve", "--location", &store, "--bind", &addr]);
    assert_one_line_error(&busy, &addr);
}

/// Runs `tessera` and returns stdout, failing the test on a non-zero exit.
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

// Model commands as a new user runs them: `models list|pull|path|info`, `generate` by name and
// by GGUF path (real SmolLM2), `bench llm --json`, and one-line errors.

#[test]
fn pull_path_info_generate_bench() {
    let path = ok(&tessera(&["models", "pull", "smollm2"]))
        .trim()
        .to_owned();
    assert!(path.ends_with(".gguf"), "{path}");
    assert_eq!(ok(&tessera(&["models", "path", "smollm2"])).trim(), path);
    let list = ok(&tessera(&["models", "list"]));
    for name in ["smollm2", "qwen2.5-0.5b", "qwen2.5-1.5b", "minilm"] {
        assert!(list.contains(name), "{list}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with("smollm2") && l.contains(" yes ")),
        "{list}"
    );
    let info = ok(&tessera(&["models", "info", &path]));
    assert!(
        info.contains("architecture  llama") && info.contains("Q4_1"),
        "{info}"
    );

    for model in ["smollm2", path.as_str()] {
        let out = ok(&tessera(&[
            "generate",
            "--model",
            model,
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            "--threads",
            "2",
            "The capital of France is",
        ]));
        assert!(out.contains("Paris"), "{out}");
    }
    let schema = std::env::temp_dir().join(format!("tessera-schema-{}.json", std::process::id()));
    std::fs::write(&schema, r#"{"type":"object","properties":{"city":{"type":"string","maxLength":20}},"required":["city"]}"#)
        .expect("write schema");
    let out = ok(&tessera(&[
        "generate",
        "--model",
        "smollm2",
        "--json-schema",
        schema.to_str().expect("utf-8"),
        "--max-tokens",
        "64",
        "What is the capital of France? Answer as JSON.",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("constrained output parses");
    assert!(v["city"].is_string(), "{v}");
    std::fs::remove_file(&schema).expect("remove");

    let out = ok(&tessera(&[
        "bench",
        "llm",
        "--model",
        "smollm2",
        "--threads",
        "1",
        "--prompt-tokens",
        "32",
        "--gen-tokens",
        "8",
        "--reps",
        "1",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    for key in ["prefill_tok_s", "decode_tok_s", "peak_rss_bytes"] {
        assert!(v[key].as_f64().expect(key) > 0.0, "{v}");
    }
}

#[test]
fn model_errors_are_one_line() {
    assert_one_line_error(
        &tessera(&["models", "pull", "no-such-model"]),
        "unknown model",
    );
    assert_one_line_error(
        &tessera(&["generate", "--model", "/nonexistent/m.gguf", "hi"]),
        "unknown model",
    );
    let junk = std::env::temp_dir().join(format!("tessera-junk-{}.gguf", std::process::id()));
    std::fs::write(&junk, b"GGUF\x03\x00\x00\x00garbage").expect("write");
    assert_one_line_error(
        &tessera(&["generate", "--model", junk.to_str().expect("utf-8"), "hi"]),
        "not a valid GGUF file",
    );
    assert_one_line_error(
        &tessera(&["models", "info", junk.to_str().expect("utf-8")]),
        "tessera-junk",
    );
    std::fs::remove_file(&junk).expect("remove");
}

#[test]
fn bench_ingest_reports_tokens_per_text_and_the_floor_they_imply() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let texts = root.join("examples/data/sample-texts.txt");
    let schema = root.join("examples/data/sample-schema.ttl");
    let output = tessera(&[
        "bench",
        "ingest",
        texts.to_str().expect("utf-8"),
        "--schema",
        schema.to_str().expect("utf-8"),
        "--limit",
        "2",
        "--model",
        "smollm2",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("one JSON line");
    assert_eq!(r["texts"], 2);
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    assert!(f("texts_per_s") > 0.0, "{r}");
    assert!(f("uncached_prompt_tokens_per_text") > 0.0, "{r}");
    assert!(f("generated_tokens_per_text") > 0.0, "{r}");
    // SmolLM2-135M: about 135 million weights in its matrix products (the output tied).
    let params = f("matmul_params");
    assert!((1.0e8..1.6e8).contains(&params), "{r}");
    let tokens = f("uncached_prompt_tokens_per_text") + f("generated_tokens_per_text");
    assert!(
        (f("gflop_per_text") - 2.0 * params * tokens / 1e9).abs() < 1e-6,
        "{r}"
    );
    if r["int8_peak_gops"].is_number() {
        // Nothing reads faster than the floor of its own token budget.
        assert!(
            f("share_of_floor") > 0.0 && f("share_of_floor") < 1.0,
            "{r}"
        );
    }
}

/// The main job's reading (`scripts/run.sh`): the four sample texts of `examples/data`,
/// ingested with the default model against the sample schema, give exactly these facts.
/// (The default model read "Santiago capital Chile" and "Norwegian Polar Institute employer
/// Ingrid Solberg" the wrong way round, and Valparaíso as an employer, before the text's
/// phrasing was consulted for direction.)
#[test]
fn the_sample_texts_read_exactly_with_the_default_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = location(dir.path());
    let sample = "http://tessera.local/sample";
    let (schema, facts) = (format!("{sample}/schema"), format!("{sample}/facts"));
    let run = |args: &[&str]| {
        let out = tessera(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let file = |f: &str| root.join("examples/data").join(f).display().to_string();
    run(&[
        "load",
        "--location",
        &store,
        "--file",
        &file("sample-schema.ttl"),
        "--graph",
        &schema,
    ]);
    run(&[
        "ingest",
        "--location",
        &store,
        &file("sample-texts.txt"),
        "--graph",
        &facts,
        "--schema",
        &schema,
        "--model",
        "qwen2.5-0.5b",
        "--threads",
        "2",
    ]);
    let query = format!(
        "SELECT ?subject ?relation ?object WHERE {{
           GRAPH <{facts}> {{ ?s ?p ?o FILTER(?p != <http://www.w3.org/2000/01/rdf-schema#label>) }}
           GRAPH <{schema}> {{ ?p <http://www.w3.org/2000/01/rdf-schema#label> ?relation }}
           OPTIONAL {{ GRAPH <{facts}> {{ ?s <http://www.w3.org/2000/01/rdf-schema#label> ?sl }} }}
           OPTIONAL {{ GRAPH <{facts}> {{ ?o <http://www.w3.org/2000/01/rdf-schema#label> ?ol }} }}
           BIND(STR(COALESCE(?sl, ?s)) AS ?subject)
           BIND(STR(COALESCE(?ol, ?o)) AS ?object)
         }} ORDER BY ?subject ?relation ?object"
    );
    let got = run(&[
        "query",
        "--location",
        &store,
        "--format",
        "tsv",
        "--query",
        &query,
    ]);
    let got: Vec<&str> = got.lines().skip(1).collect();
    assert_eq!(
        got,
        [
            "\"Chile\"\t\"capital\"\t\"Santiago\"",
            "\"Ingrid Solberg\"\t\"birthDate\"\t\"1972-03-14\"",
            "\"Ingrid Solberg\"\t\"birthPlace\"\t\"Bergen\"",
            "\"Ingrid Solberg\"\t\"employer\"\t\"Norwegian Polar Institute\"",
            "\"Ingrid Solberg\"\t\"occupation\"\t\"marine biologist\"",
            "\"Norwegian Polar Institute\"\t\"country\"\t\"Norway\"",
            "\"Norwegian Polar Institute\"\t\"foundingYear\"\t\"1928\"",
            "\"Norwegian Polar Institute\"\t\"location\"\t\"Tromsø\"",
            "\"Tomás Herrera\"\t\"employer\"\t\"Herrera y Lagos\"",
        ]
    );
}
