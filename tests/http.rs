//! The HTTP service driven in process (no port) with `tower::ServiceExt::oneshot`: protocol
//! parsing, content negotiation, the graph store, limits, auth and bad input.
#![allow(clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::io::Write;
use std::time::Duration;
use tessera::{Database, ServerConfig};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn call(router: &axum::Router, request: Request<Body>) -> Reply {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

fn req(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost:7878")
}

fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    req(Method::POST, uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("valid request")
}

fn get(uri: &str, accept: Option<&str>) -> Request<Body> {
    let mut builder = req(Method::GET, uri);
    if let Some(accept) = accept {
        builder = builder.header(header::ACCEPT, accept);
    }
    builder.body(Body::empty()).expect("valid request")
}

fn server(config: ServerConfig) -> (Database, axum::Router) {
    let db = Database::in_memory().expect("in-memory store");
    db.update(
        "PREFIX ex: <http://example.org/>
         INSERT DATA { ex:a ex:name \"Alice\" . ex:b ex:name \"Bob\" . GRAPH ex:g { ex:a ex:knows ex:b } }",
    )
    .expect("seed data");
    let router = db.router(config);
    (db, router)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn query_by_get_post_direct_and_post_form() {
    let (_, app) = server(ServerConfig::default());
    let q = "SELECT ?n WHERE { ?s <http://example.org/name> ?n } ORDER BY ?n";
    let by_get = call(&app, get(&format!("/query?query={}", enc(q)), None)).await;
    assert_eq!(by_get.status, StatusCode::OK, "{}", by_get.text());
    assert!(by_get
        .content_type()
        .starts_with("application/sparql-results+json"));
    let json: serde_json::Value = serde_json::from_slice(&by_get.body).expect("JSON results");
    assert_eq!(json["results"]["bindings"][0]["n"]["value"], "Alice");
    assert_eq!(json["results"]["bindings"][1]["n"]["value"], "Bob");

    let direct = call(
        &app,
        post("/sparql", "application/sparql-query", q.to_owned()),
    )
    .await;
    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(direct.body, by_get.body);

    let form = call(
        &app,
        post(
            "/query",
            "application/x-www-form-urlencoded",
            format!("query={}", enc(q)),
        ),
    )
    .await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.body, by_get.body);
}

#[tokio::test]
async fn accept_q_values_choose_the_results_format() {
    let (_, app) = server(ServerConfig::default());
    let uri = format!(
        "/query?query={}",
        enc("SELECT ?n WHERE { ?s <http://example.org/name> ?n } ORDER BY ?n")
    );
    let csv = call(
        &app,
        get(
            &uri,
            Some("application/sparql-results+json;q=0.2, text/csv;q=0.9"),
        ),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type().starts_with("text/csv"));
    assert_eq!(csv.text(), "n\r\nAlice\r\nBob\r\n");
    let tsv = call(&app, get(&uri, Some("text/tab-separated-values"))).await;
    assert_eq!(tsv.text(), "?n\n\"Alice\"\n\"Bob\"\n");
    let xml = call(&app, get(&uri, Some("application/sparql-results+xml"))).await;
    assert!(
        xml.text().contains("<literal>Alice</literal>"),
        "{}",
        xml.text()
    );
    let by_param = call(
        &app,
        get(&format!("{uri}&format=tsv"), Some("application/json")),
    )
    .await;
    assert_eq!(by_param.body, tsv.body);
    let refused = call(&app, get(&uri, Some("image/png"))).await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
    assert!(
        refused.text().contains("text/csv"),
        "the 406 names what is offered"
    );
}

#[tokio::test]
async fn construct_is_served_in_every_graph_format() {
    let (_, app) = server(ServerConfig::default());
    let uri = format!(
        "/query?query={}",
        enc("CONSTRUCT WHERE { ?s <http://example.org/name> ?n }")
    );
    for (accept, needle) in [
        ("text/turtle", "\"Alice\""),
        (
            "application/n-triples",
            "<http://example.org/a> <http://example.org/name> \"Alice\" .",
        ),
        ("application/rdf+xml", "rdf:RDF"),
        ("application/ld+json", "\"@id\""),
        ("application/n-quads", "\"Bob\" ."),
        ("application/trig", "\"Bob\""),
    ] {
        let reply = call(&app, get(&uri, Some(accept))).await;
        assert_eq!(reply.status, StatusCode::OK, "{accept}");
        assert!(
            reply.content_type().starts_with(accept),
            "{accept}: {}",
            reply.content_type()
        );
        assert!(reply.text().contains(needle), "{accept}: {}", reply.text());
    }
    let refused = call(&app, get(&uri, Some("text/csv"))).await;
    assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn protocol_dataset_overrides_the_query_dataset() {
    let (_, app) = server(ServerConfig::default());
    let q = enc("SELECT ?o WHERE { ?s <http://example.org/knows> ?o }");
    let default_only = call(&app, get(&format!("/query?query={q}"), Some("text/csv"))).await;
    assert_eq!(default_only.text(), "o\r\n");
    let with_graph = call(
        &app,
        get(
            &format!(
                "/query?query={q}&default-graph-uri={}",
                enc("http://example.org/g")
            ),
            Some("text/csv"),
        ),
    )
    .await;
    assert_eq!(with_graph.text(), "o\r\nhttp://example.org/b\r\n");
}

#[tokio::test]
async fn syntax_errors_are_400_with_position() {
    let (_, app) = server(ServerConfig::default());
    let reply = call(
        &app,
        get(
            &format!("/query?query={}", enc("SELECT * WHERE { ?s ?p }")),
            None,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let text = reply.text();
    assert!(
        text.contains("syntax error") && text.contains("1:"),
        "{text}"
    );
    let update = call(
        &app,
        post(
            "/update",
            "application/sparql-update",
            "INSERT DATA { <a> }",
        ),
    )
    .await;
    assert_eq!(update.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn malformed_requests_are_4xx() {
    let (db, app) = server(ServerConfig::default());
    let before = db.len().expect("len");
    let two = call(&app, get("/query?query=ASK%7B%7D&query=ASK%7B%7D", None)).await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    let update_by_get = call(&app, get("/sparql?update=CLEAR%20ALL", None)).await;
    assert_eq!(update_by_get.status, StatusCode::METHOD_NOT_ALLOWED);
    let put = call(
        &app,
        req(Method::PUT, "/query?query=ASK%7B%7D")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    let text_plain = call(&app, post("/sparql", "text/plain", "ASK {}")).await;
    assert_eq!(text_plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let no_type = call(
        &app,
        req(Method::POST, "/sparql")
            .body(Body::from("ASK {}"))
            .expect("req"),
    )
    .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let utf16 = call(
        &app,
        post(
            "/sparql",
            "application/sparql-query; charset=UTF-16",
            "ASK {}",
        ),
    )
    .await;
    assert_eq!(utf16.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let not_utf8 = call(
        &app,
        post(
            "/update",
            "application/sparql-update",
            vec![0x49u8, 0xff, 0xfe, 0x20],
        ),
    )
    .await;
    assert_eq!(not_utf8.status, StatusCode::BAD_REQUEST);
    assert!(not_utf8.text().contains("UTF-8"), "{}", not_utf8.text());
    let both = call(
        &app,
        post(
            "/sparql",
            "application/x-www-form-urlencoded",
            "query=ASK%7B%7D&update=CLEAR%20ALL",
        ),
    )
    .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    let update_at_query = call(
        &app,
        post("/query", "application/sparql-update", "CLEAR ALL"),
    )
    .await;
    assert_eq!(update_at_query.status, StatusCode::BAD_REQUEST);
    let bad_iri = call(
        &app,
        get(
            "/query?query=ASK%7B%7D&default-graph-uri=not%20an%20iri",
            None,
        ),
    )
    .await;
    assert_eq!(bad_iri.status, StatusCode::BAD_REQUEST);
    let using_and_with = call(
        &app,
        post(
            "/update?using-named-graph-uri=http%3A%2F%2Fexample%2Fpeople",
            "application/sparql-update",
            "WITH <http://example/addresses> DELETE { ?p <http://e/n> 'Bill' } WHERE { ?p <http://e/n> 'Bill' }",
        ),
    )
    .await;
    assert_eq!(using_and_with.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        db.len().expect("len"),
        before,
        "no bad request may change the store"
    );
}

#[tokio::test]
async fn updates_need_the_write_token() {
    let (db, app) = server(ServerConfig::default().with_write_token("s3cret"));
    let update = "INSERT DATA { <http://e/x> <http://e/y> <http://e/z> }";
    let anonymous = call(&app, post("/update", "application/sparql-update", update)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous
            .headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let wrong = req(Method::POST, "/update")
        .header(header::CONTENT_TYPE, "application/sparql-update")
        .header(header::AUTHORIZATION, "Bearer s3cres")
        .body(Body::from(update))
        .expect("req");
    assert_eq!(call(&app, wrong).await.status, StatusCode::UNAUTHORIZED);
    let gsp = req(Method::PUT, "/store?default")
        .header(header::CONTENT_TYPE, "text/turtle")
        .body(Body::from("<http://e/1> <http://e/2> <http://e/3> ."))
        .expect("req");
    assert_eq!(call(&app, gsp).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(db.len().expect("len"), 3);
    let right = req(Method::POST, "/update")
        .header(header::CONTENT_TYPE, "application/sparql-update")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::from(update))
        .expect("req");
    assert_eq!(call(&app, right).await.status, StatusCode::NO_CONTENT);
    assert_eq!(db.len().expect("len"), 4);
    // Reads stay open.
    let read = call(&app, get("/query?query=ASK%7B%7D", None)).await;
    assert_eq!(read.status, StatusCode::OK);
}

#[tokio::test]
async fn read_only_refuses_writes() {
    let (db, app) = server(ServerConfig::default().with_read_only(true));
    let update = call(
        &app,
        post("/update", "application/sparql-update", "CLEAR ALL"),
    )
    .await;
    assert_eq!(update.status, StatusCode::FORBIDDEN);
    let delete = call(
        &app,
        req(Method::DELETE, "/store?graph=http%3A%2F%2Fexample.org%2Fg")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    assert_eq!(db.len().expect("len"), 3);
}

#[tokio::test]
async fn oversized_bodies_are_413_even_gzipped() {
    let (db, app) = server(ServerConfig::default().with_max_body_bytes(1024));
    let big = format!(
        "INSERT DATA {{ <http://e/s> <http://e/p> \"{}\" }}",
        "x".repeat(4096)
    );
    let plain = call(
        &app,
        post("/update", "application/sparql-update", big.clone()),
    )
    .await;
    assert_eq!(plain.status, StatusCode::PAYLOAD_TOO_LARGE);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(big.as_bytes()).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    assert!(compressed.len() < 1024, "the compressed body itself fits");
    let bomb = req(Method::POST, "/update")
        .header(header::CONTENT_TYPE, "application/sparql-update")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(compressed))
        .expect("req");
    assert_eq!(call(&app, bomb).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(db.len().expect("len"), 3);
}

#[tokio::test]
async fn gzip_request_bodies_are_accepted() {
    let (db, app) = server(ServerConfig::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"INSERT DATA { <http://e/gz> <http://e/p> \"zipped\" }")
        .expect("gzip");
    let request = req(Method::POST, "/update")
        .header(header::CONTENT_TYPE, "application/sparql-update")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gz.finish().expect("gzip")))
        .expect("req");
    let reply = call(&app, request).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_eq!(db.len().expect("len"), 4);
    let truncated = req(Method::POST, "/update")
        .header(header::CONTENT_TYPE, "application/sparql-update")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(vec![0x1f, 0x8b, 0x08, 0x00, 0x01]))
        .expect("req");
    assert_eq!(call(&app, truncated).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn slow_queries_are_cancelled_with_503() {
    let db = Database::in_memory().expect("store");
    let mut data = String::new();
    for i in 0..3000 {
        data.push_str(&format!(
            "<http://e/n{i}> <http://e/next> <http://e/n{}> .\n",
            i + 1
        ));
    }
    db.load(data.as_bytes(), tessera::io::RdfFormat::NTriples, None)
        .expect("load");
    let app = db.router(ServerConfig::default().with_timeout(Duration::from_millis(300)));
    // About 4.5 million path pairs: minutes of work unless the evaluation is really cancelled.
    let q = "SELECT (COUNT(*) AS ?c) WHERE { ?x <http://e/next>+ ?y }";
    let reply = call(&app, get(&format!("/query?query={}", enc(q)), None)).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(reply.text().contains("cancelled"));
    // The evaluation thread must stop soon after, not run to the end.
    let mut waited = Duration::ZERO;
    while tessera_sparql::running_evaluations() > 0 {
        assert!(
            waited < Duration::from_secs(20),
            "the cancelled evaluation is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
}

#[tokio::test]
async fn large_results_arrive_in_chunks() {
    let db = Database::in_memory().expect("store");
    let mut data = String::new();
    for i in 0..1000 {
        data.push_str(&format!("<http://e/s{i}> <http://e/p> \"value {i}\" .\n"));
    }
    db.load(data.as_bytes(), tessera::io::RdfFormat::NTriples, None)
        .expect("load");
    let app = db.router(ServerConfig::default());
    // One million rows, about 150 MB of JSON.
    let q = "SELECT * WHERE { ?a ?p ?b . ?c ?q ?d }";
    let response = app
        .oneshot(get(&format!("/query?query={}", enc(q)), None))
        .await
        .expect("router");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a first frame")
        .expect("no error");
    let first = first.into_data().expect("data frame");
    assert!(
        !first.is_empty() && first.len() <= 128 * 1024,
        "first frame: {} bytes",
        first.len()
    );
    // Dropping the body here stops the evaluation (the writer sees the client go away).
}

#[tokio::test]
async fn graph_store_put_get_head_post_delete() {
    let (_, app) = server(ServerConfig::default());
    let put = |uri: &str, body: &str| {
        req(Method::PUT, uri)
            .header(header::CONTENT_TYPE, "text/turtle; charset=utf-8")
            .body(Body::from(body.to_owned()))
            .expect("req")
    };
    let uri = "/store?graph=http%3A%2F%2Fexample.org%2Fpeople";
    let created = call(&app, put(uri, "<http://e/p1> <http://e/name> \"One\" .")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let replaced = call(&app, put(uri, "<http://e/p2> <http://e/name> \"Two\" .")).await;
    assert_eq!(replaced.status, StatusCode::NO_CONTENT);
    let read = call(&app, get(uri, Some("application/n-triples"))).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.text(), "<http://e/p2> <http://e/name> \"Two\" .\n");
    let head = call(
        &app,
        req(Method::HEAD, uri)
            .header(header::ACCEPT, "text/turtle")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.content_type(), "text/turtle; charset=utf-8");
    assert!(head.body.is_empty());

    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.ttl\"\r\nContent-Type: text/turtle\r\n\r\n<http://e/p2> <http://e/age> 2 .\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"; filename=\"b.nt\"\r\n\r\n<http://e/p2> <http://e/knows> <http://e/p1> .\r\n--XyZ--\r\n";
    let posted = call(
        &app,
        post(uri, "multipart/form-data; boundary=XyZ", multipart),
    )
    .await;
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{}", posted.text());
    let read = call(&app, get(uri, Some("application/n-triples"))).await;
    assert_eq!(read.text().lines().count(), 3, "{}", read.text());

    let bad = call(&app, put(uri, "<http://e/p3> <http://e/name> .")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let read_again = call(&app, get(uri, Some("application/n-triples"))).await;
    assert_eq!(
        read_again.body, read.body,
        "a failed PUT leaves the graph as it was"
    );
    let unsupported = call(&app, post(uri, "application/x-unknown", "<a> <b> <c> .")).await;
    assert_eq!(unsupported.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let deleted = call(
        &app,
        req(Method::DELETE, uri).body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, get(uri, None)).await.status,
        StatusCode::NOT_FOUND
    );
    let again = call(
        &app,
        req(Method::DELETE, uri).body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graph_store_direct_identification_and_creation() {
    let (_, app) = server(ServerConfig::default());
    let direct = req(Method::PUT, "/store/person/1.ttl")
        .header(header::CONTENT_TYPE, "text/turtle")
        .body(Body::from("<http://e/p> <http://e/n> \"direct\" ."))
        .expect("req");
    assert_eq!(call(&app, direct).await.status, StatusCode::CREATED);
    // The graph's IRI is the request URL.
    let indirect = call(
        &app,
        get(
            &format!(
                "/store?graph={}",
                enc("http://localhost:7878/store/person/1.ttl")
            ),
            Some("application/n-triples"),
        ),
    )
    .await;
    assert_eq!(indirect.text(), "<http://e/p> <http://e/n> \"direct\" .\n");

    let created = call(
        &app,
        post("/store", "text/turtle", "<http://e/new> <http://e/n> 1 ."),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let location = created
        .headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("Location")
        .to_owned();
    assert!(
        location.starts_with("http://localhost:7878/store/"),
        "{location}"
    );
    let fetched = call(
        &app,
        get(
            &format!("/store?graph={}", enc(&location)),
            Some("application/n-triples"),
        ),
    )
    .await;
    assert_eq!(
        fetched.text(),
        "<http://e/new> <http://e/n> \"1\"^^<http://www.w3.org/2001/XMLSchema#integer> .\n"
    );

    let dataset = call(&app, get("/store", Some("application/n-quads"))).await;
    assert_eq!(dataset.status, StatusCode::OK);
    assert!(
        dataset.text().contains("<http://example.org/g>"),
        "{}",
        dataset.text()
    );
    let conflicting = call(&app, get("/store?default&graph=http%3A%2F%2Fe%2Fg", None)).await;
    assert_eq!(conflicting.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn service_description_names_the_endpoint() {
    let (_, app) = server(ServerConfig::default());
    let reply = call(&app, get("/sparql", Some("text/turtle"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains("<http://localhost:7878/sparql>"), "{text}");
    assert!(
        text.contains("sd:Service") || text.contains("sparql-service-description#Service"),
        "{text}"
    );
}

#[tokio::test]
async fn update_report_is_json_when_accepted_else_204() {
    let (_, app) = server(ServerConfig::default());
    let plain = call(
        &app,
        post(
            "/update",
            "application/sparql-update",
            "CLEAR GRAPH <http://example.org/g>",
        ),
    )
    .await;
    assert_eq!(plain.status, StatusCode::NO_CONTENT);
    let unknown = call(&app, get("/nothing-here", None)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let page = call(&app, get("/", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("<textarea"));
}

#[tokio::test]
async fn cors_is_off_by_default_and_opt_in() {
    let (_, app) = server(ServerConfig::default());
    let preflight = || {
        req(Method::OPTIONS, "/query")
            .header(header::ORIGIN, "https://app.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .expect("req")
    };
    let off = call(&app, preflight()).await;
    assert!(off
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    let (_, app) = server(ServerConfig::default().with_cors_origin("https://app.example"));
    let on = call(&app, preflight()).await;
    assert_eq!(
        on.headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.as_bytes()),
        Some(&b"https://app.example"[..])
    );
}

/// Regression: with no write token (the default), `/update` took a form post that any web
/// page can make a visitor's browser send (no CORS preflight), so one page could `DROP ALL` a
/// local server. Browser writes from another site are refused; the same origin, clients that
/// are not browsers, and origins allowed with `--cors` still write.
#[tokio::test]
async fn writes_from_another_sites_page_are_refused() {
    let form = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut r = req(Method::POST, "/update")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        if let Some(f) = fetch_site {
            r = r.header("sec-fetch-site", f);
        }
        r.body(Body::from("update=DROP+ALL")).expect("req")
    };
    let (db, app) = server(ServerConfig::default());
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (Some("https://evil.example"), Some("cross-site")),
        (Some("http://localhost:8000"), Some("same-site")),
        (Some("null"), None),
        (None, Some("cross-site")),
    ] {
        let r = call(&app, form(origin, site)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin:?} {site:?}");
        assert!(r.text().contains("another site"), "{}", r.text());
    }
    let gsp = call(
        &app,
        req(Method::DELETE, "/store?default")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(gsp.status, StatusCode::FORBIDDEN);
    assert_eq!(db.len().expect("len"), 3, "nothing was dropped");
    // The server's own page (same origin), then a client that is not a browser.
    let own = call(&app, form(Some("http://localhost:7878"), None)).await;
    assert!(own.status.is_success(), "{}", own.text());
    assert_eq!(db.len().expect("len"), 0);
    let (db, app) = server(ServerConfig::default());
    let own = call(
        &app,
        form(Some("https://evil.example"), Some("same-origin")),
    )
    .await;
    assert!(own.status.is_success(), "{}", own.text());
    assert_eq!(db.len().expect("len"), 0);
    let (db, app) = server(ServerConfig::default());
    assert!(call(&app, form(None, None)).await.status.is_success());
    assert_eq!(db.len().expect("len"), 0);
    // An origin the operator allowed.
    let (db, app) = server(ServerConfig::default().with_cors_origin("https://app.example"));
    let allowed = call(&app, form(Some("https://app.example"), Some("cross-site"))).await;
    assert!(allowed.status.is_success(), "{}", allowed.text());
    assert_eq!(db.len().expect("len"), 0);
}

#[tokio::test]
async fn a_construct_asked_for_sparql_results_gets_rdf_xml() {
    // Debian's roqet sends its results Accept for every query form.
    let (_, app) = server(ServerConfig::default());
    let uri = format!(
        "/query?query={}",
        enc("CONSTRUCT WHERE { ?s <http://example.org/name> ?n }")
    );
    let reply = call(&app, get(&uri, Some("application/sparql-results+xml"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.content_type().starts_with("application/rdf+xml"));
    assert!(reply.text().contains("Alice"), "{}", reply.text());
    let describe = format!("/query?query={}", enc("DESCRIBE <http://example.org/a>"));
    let reply = call(
        &app,
        get(&describe, Some("application/sparql-results+json")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.content_type().starts_with("text/turtle"));
}

#[tokio::test]
async fn the_union_default_graph_shows_named_graphs_to_queries_only_when_asked() {
    let count = |uri: &str| {
        format!(
            "{uri}?query={}",
            enc("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
        )
    };
    let (_, plain) = server(ServerConfig::default());
    let reply = call(&plain, get(&count("/query"), Some("text/csv"))).await;
    assert_eq!(reply.text(), "n\r\n2\r\n", "default graph only");

    let (db, union) = server(ServerConfig::default().with_union_default_graph(true));
    let reply = call(&union, get(&count("/query"), Some("text/csv"))).await;
    assert_eq!(reply.text(), "n\r\n3\r\n", "the named graph's triple too");
    // FROM still chooses its own dataset.
    let from = format!(
        "/query?query={}",
        enc("SELECT (COUNT(*) AS ?n) FROM <http://example.org/g> WHERE { ?s ?p ?o }")
    );
    let reply = call(&union, get(&from, Some("text/csv"))).await;
    assert_eq!(reply.text(), "n\r\n1\r\n");
    // An update's WHERE matches the union; what it inserts goes to the real default graph.
    let reply = call(
        &union,
        post(
            "/update",
            "application/sparql-update",
            "INSERT { ?a <http://example.org/friend> ?b } WHERE { ?a <http://example.org/knows> ?b }",
        ),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text());
    let written = db
        .query("ASK { <http://example.org/a> <http://example.org/friend> <http://example.org/b> }")
        .expect("query");
    assert!(
        matches!(written, tessera::sparql::QueryResults::Boolean(true)),
        "the insert reached the default graph"
    );
}

#[tokio::test]
async fn health_ready_and_metrics_answer_and_a_server_without_text_refuses_insert_text() {
    let db = Database::in_memory()
        .expect("store")
        .with_text_config(tessera::TextConfig {
            enabled: false,
            ..tessera::TextConfig::default()
        });
    let app = db.router(ServerConfig::default());
    let health = call(&app, get("/health", None)).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = call(&app, get("/ready", None)).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    let detail: serde_json::Value = serde_json::from_slice(&ready.body).expect("JSON");
    assert_eq!(detail["models"]["state"], "disabled");
    assert_eq!(detail["ready"], true);

    let refused = call(
        &app,
        post(
            "/update",
            "application/sparql-update",
            "INSERT TEXT \"Alice knows Bob.\"",
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.text().contains("reads no text"),
        "{}",
        refused.text()
    );
    assert!(db.is_empty().expect("len"), "nothing written");

    let metrics = call(&app, get("/metrics", None)).await;
    assert!(metrics
        .content_type()
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text();
    for line in [
        "tessera_http_requests_total{endpoint=\"/update\",method=\"POST\",status=\"503\"} 1",
        "tessera_http_requests_total{endpoint=\"/ready\",method=\"GET\",status=\"200\"} 1",
        "tessera_text_queue_depth 0",
        "tessera_models_loaded 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn the_console_and_every_file_it_loads_are_served_relative_and_nested() {
    let (_, app) = server(ServerConfig::default());
    // Nested under a prefix, as an application would mount it.
    let nested = axum::Router::new().nest("/db", app.clone());
    // The page opened as /db sets its base to /db/ before loading anything.
    for (router, prefix, page) in [(&app, "", "/"), (&nested, "/db", "/db")] {
        let page = call(router, get(page, None)).await;
        assert_eq!(page.status, StatusCode::OK, "{prefix}");
        let html = page.text();
        let mut files = 0;
        for attribute in ["src=\"", "href=\""] {
            for rest in html.split(attribute).skip(1) {
                let url = rest.split('"').next().unwrap_or_default();
                if url.starts_with("data:") {
                    continue;
                }
                assert!(
                    !url.starts_with('/') && !url.contains("://"),
                    "{url} must be relative and local"
                );
                let file = call(router, get(&format!("{prefix}/{url}"), None)).await;
                assert_eq!(file.status, StatusCode::OK, "{prefix}/{url}");
                let expected = if url.ends_with(".js") {
                    "text/javascript"
                } else {
                    "text/css"
                };
                assert!(file.content_type().starts_with(expected), "{url}");
                assert!(!file.body.is_empty());
                files += 1;
            }
        }
        assert_eq!(files, 6, "four scripts and two style sheets");
    }
    let missing = call(&app, get("/assets/nope.js", None)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let licence = call(&app, get("/assets/vendor/cytoscape/LICENSE", None)).await;
    assert!(licence.text().contains("Permission is hereby granted"));
}
