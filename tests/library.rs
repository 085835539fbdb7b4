//! `tessera::Database` as a library on a real on-disk store: every RDF format in, dump out,
//! async queries that stream, and clones that share one store.
#![allow(clippy::expect_used)]

use futures::StreamExt;
use tessera::io::RdfFormat;
use tessera::model::{GraphNameRef, NamedNode, Term};
use tessera::{Database, QueryStream};

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path().join("store")).expect("open");
    (dir, db)
}

#[test]
fn loads_every_rdf_format() {
    let (_dir, db) = open();
    let inputs: [(RdfFormat, &str); 6] = [
        (
            RdfFormat::Turtle,
            "@prefix e: <http://e/> . e:s1 e:p \"turtle\" .",
        ),
        (
            RdfFormat::NTriples,
            "<http://e/s2> <http://e/p> \"n-triples\" .",
        ),
        (
            RdfFormat::NQuads,
            "<http://e/s3> <http://e/p> \"n-quads\" <http://e/g> .",
        ),
        (
            RdfFormat::TriG,
            "<http://e/g2> { <http://e/s4> <http://e/p> \"trig\" }",
        ),
        (
            RdfFormat::RdfXml,
            r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:e="http://e/"><rdf:Description rdf:about="http://e/s5"><e:p>rdf-xml</e:p></rdf:Description></rdf:RDF>"#,
        ),
        (
            RdfFormat::JsonLd {
                profile: Default::default(),
            },
            r#"{"@id": "http://e/s6", "http://e/p": "json-ld"}"#,
        ),
    ];
    for (format, data) in inputs {
        let n = db.load(data.as_bytes(), format, None).expect("load");
        assert_eq!(n, 1, "{format}");
    }
    assert_eq!(db.len().expect("len"), 6);
    let nquads = db.dump(Vec::new(), RdfFormat::NQuads, None).expect("dump");
    let text = String::from_utf8(nquads).expect("utf-8");
    for value in [
        "turtle",
        "n-triples",
        "n-quads",
        "trig",
        "rdf-xml",
        "json-ld",
    ] {
        assert!(
            text.contains(&format!("\"{value}\"")),
            "{value} missing from {text}"
        );
    }
    let g = NamedNode::new("http://e/g").expect("iri");
    let graph = db
        .dump(
            Vec::new(),
            RdfFormat::NTriples,
            Some(GraphNameRef::NamedNode(g.as_ref())),
        )
        .expect("dump graph");
    assert_eq!(
        String::from_utf8_lossy(&graph),
        "<http://e/s3> <http://e/p> \"n-quads\" .\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_queries_stream_and_clones_share_the_store() {
    let (_dir, db) = open();
    let writer = db.clone();
    let mut data = String::new();
    for i in 0..5000 {
        data.push_str(&format!("<http://e/s{i}> <http://e/n> {i} .\n"));
    }
    writer
        .load_async(data, RdfFormat::Turtle)
        .await
        .expect("load");
    writer
        .update_async("INSERT DATA { <http://e/extra> <http://e/n> -1 }")
        .await
        .expect("update");
    let QueryStream::Solutions {
        variables,
        mut solutions,
    } = db
        .query_async("SELECT ?n WHERE { ?s <http://e/n> ?n } ORDER BY ?n")
        .await
        .expect("query")
    else {
        panic!("SELECT gives solutions");
    };
    assert_eq!(variables.len(), 1);
    let mut count = 0;
    let mut first = None;
    while let Some(solution) = solutions.next().await {
        let solution = solution.expect("solution");
        if first.is_none() {
            first = solution.get("n").cloned();
        }
        count += 1;
    }
    assert_eq!(count, 5001);
    assert!(matches!(first, Some(Term::Literal(l)) if l.value() == "-1"));
    let ask = db
        .query_async("ASK { <http://e/extra> ?p ?o }")
        .await
        .expect("ask");
    assert!(matches!(ask, QueryStream::Boolean(true)));
    let bad = db.query_async("SELECT WHERE").await;
    assert!(matches!(bad, Err(tessera::Error::Syntax(_))));
}

/// Regression: in a request mixing an extension operation with standard ones, a `PREFIX`
/// declared in a later standard operation was lost when that operation was merged into the
/// one before it ("error at 3:20: expected GRAPH").
#[test]
fn a_prefix_declared_after_an_extension_operation_is_kept() {
    let (_dir, db) = open();
    db.update(
        "PREFIX ex: <http://ex/> DROP SOURCE ex:s ;
         INSERT DATA { ex:a ex:b ex:c } ;
         PREFIX b: <http://b/> INSERT DATA { b:x b:y b:z } ;
         BASE <http://base/> INSERT DATA { <r> b:y ex:c }",
    )
    .expect("one request, three standard operations after DROP SOURCE");
    for (s, p, o) in [
        ("http://ex/a", "http://ex/b", "http://ex/c"),
        ("http://b/x", "http://b/y", "http://b/z"),
        ("http://base/r", "http://b/y", "http://ex/c"),
    ] {
        let ask = format!("ASK {{ <{s}> <{p}> <{o}> }}");
        assert!(
            matches!(
                db.query(&ask).expect("ask"),
                tessera::sparql::QueryResults::Boolean(true)
            ),
            "{s} {p} {o}"
        );
    }
}
