//! The SPARQL 1.1 Service Description
//! (<https://www.w3.org/TR/sparql11-service-description/>) returned by `GET /sparql` without a
//! query. Entry point: [`respond`].

use crate::negotiate;
use crate::HttpError;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use oxigraph::io::RdfSerializer;
use oxigraph::model::{BlankNode, NamedNode, Term, Triple};

const SD: &str = "http://www.w3.org/ns/sparql-service-description#";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
const FORMATS: &str = "http://www.w3.org/ns/formats/";

fn sd(name: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{SD}{name}"))
}

/// The description of the service whose endpoint is `endpoint`, as triples.
pub(crate) fn triples(endpoint: &str) -> Vec<Triple> {
    let service = BlankNode::default();
    let dataset = BlankNode::default();
    let default_graph = BlankNode::default();
    let rdf_type = NamedNode::new_unchecked(RDF_TYPE);
    let mut triples = vec![
        Triple::new(service.clone(), rdf_type.clone(), sd("Service")),
        Triple::new(
            service.clone(),
            sd("endpoint"),
            NamedNode::new_unchecked(endpoint),
        ),
        Triple::new(
            service.clone(),
            sd("supportedLanguage"),
            sd("SPARQL11Query"),
        ),
        Triple::new(
            service.clone(),
            sd("supportedLanguage"),
            sd("SPARQL11Update"),
        ),
        Triple::new(service.clone(), sd("feature"), sd("EmptyGraphs")),
        Triple::new(service.clone(), sd("defaultDataset"), dataset.clone()),
        Triple::new(dataset.clone(), rdf_type.clone(), sd("Dataset")),
        Triple::new(dataset, sd("defaultGraph"), default_graph.clone()),
        Triple::new(default_graph, rdf_type, sd("Graph")),
    ];
    for format in [
        "SPARQL_Results_JSON",
        "SPARQL_Results_XML",
        "SPARQL_Results_CSV",
        "SPARQL_Results_TSV",
        "Turtle",
        "N-Triples",
        "N-Quads",
        "TriG",
        "RDF_XML",
        "JSON-LD",
    ] {
        triples.push(Triple::new(
            service.clone(),
            sd("resultFormat"),
            Term::from(NamedNode::new_unchecked(format!("{FORMATS}{format}"))),
        ));
    }
    for format in [
        "Turtle",
        "N-Triples",
        "N-Quads",
        "TriG",
        "RDF_XML",
        "JSON-LD",
    ] {
        triples.push(Triple::new(
            service.clone(),
            sd("inputFormat"),
            NamedNode::new_unchecked(format!("{FORMATS}{format}")),
        ));
    }
    triples
}

/// Serialises the description in the format the client accepts.
pub(crate) fn respond(endpoint: &str, accept: Option<&str>) -> Result<Response, HttpError> {
    NamedNode::new(endpoint).map_err(|e| {
        HttpError::BadRequest(format!(
            "the request URL <{endpoint}> is not a valid IRI (check the Host header): {e}"
        ))
    })?;
    let format = negotiate::graph_format(accept).ok_or_else(|| {
        HttpError::NotAcceptable(
            "the service description is RDF; accept text/turtle, application/rdf+xml, application/n-triples or application/ld+json".into(),
        )
    })?;
    let mut serializer = RdfSerializer::from_format(format)
        .with_prefix("sd", SD)
        .map_err(|e| HttpError::Internal(e.to_string()))?
        .for_writer(Vec::new());
    for triple in triples(endpoint) {
        serializer
            .serialize_triple(&triple)
            .map_err(|e| HttpError::Internal(e.to_string()))?;
    }
    let body = serializer
        .finish()
        .map_err(|e| HttpError::Internal(e.to_string()))?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(negotiate::rdf_content_type(format)),
    );
    Ok(response)
}
