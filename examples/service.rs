//! A Rust service that embeds a Tessera database: its own JSON route next to the whole SPARQL
//! HTTP service nested under `/kg`, one process, no external database.
//!
//! ```sh
//! cargo run --example service -- /tmp/tessera-service 127.0.0.1:8080
//! curl -X POST 'http://127.0.0.1:8080/people?name=Alan%20Shepard'
//! curl 'http://127.0.0.1:8080/people'
//! curl -H 'Accept: text/csv' --data-urlencode 'query=SELECT * { ?s ?p ?o }' http://127.0.0.1:8080/kg/query
//! ```
#![allow(clippy::print_stdout)] // a command-line program: its results go to stdout

use anyhow::Context as _;
use axum::extract::{Query, State};
use axum::routing::get;
use futures::StreamExt;
use std::collections::HashMap;
use tessera::model::{Literal, NamedNode, Term};
use tessera::{Database, QueryStream, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let location = args.next().unwrap_or_else(|| "tessera-service-data".into());
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let db = Database::open(&location).with_context(|| format!("opening {location}"))?;

    let app = axum::Router::new()
        .route("/people", get(list_people).post(add_person))
        .with_state(db.clone())
        .nest("/kg", db.router(ServerConfig::default()));

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{bind}");
    axum::serve(tessera::listener(listener), app).await?;
    Ok(())
}

const NAME: &str = "http://xmlns.com/foaf/0.1/name";

async fn add_person(
    State(db): State<Database>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<&'static str, String> {
    let name = params.get("name").ok_or("give ?name=")?;
    // Build the update from typed terms, so any name is safely quoted.
    let person = NamedNode::new(format!(
        "http://example.org/person/{}",
        name.to_lowercase()
            .replace(|c: char| !c.is_alphanumeric(), "-")
    ))
    .map_err(|e| e.to_string())?;
    let update = format!(
        "INSERT DATA {{ {person} <{NAME}> {} }}",
        Literal::new_simple_literal(name)
    );
    db.update_async(&update).await.map_err(|e| e.to_string())?;
    Ok("added\n")
}

async fn list_people(State(db): State<Database>) -> Result<String, String> {
    let query = format!("SELECT ?name WHERE {{ ?p <{NAME}> ?name }} ORDER BY ?name");
    let mut names = Vec::new();
    if let QueryStream::Solutions { mut solutions, .. } =
        db.query_async(&query).await.map_err(|e| e.to_string())?
    {
        while let Some(solution) = solutions.next().await {
            if let Some(Term::Literal(name)) = solution.map_err(|e| e.to_string())?.get("name") {
                names.push(name.value().to_owned());
            }
        }
    }
    Ok(names.join("\n") + "\n")
}
