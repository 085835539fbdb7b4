//! The SPARQL 1.1 Graph Store HTTP Protocol
//! (<https://www.w3.org/TR/sparql11-http-rdf-update/>) at `/store`: indirect identification
//! (`?default`, `?graph=IRI`), direct identification (`/store/...` names the graph whose IRI is
//! the request URL), GET/HEAD/PUT/POST/DELETE, multipart POST, and graph creation by POST to
//! `/store` (201 with `Location`). `GET /store` with no graph returns the whole dataset.
//!
//! Entry point: [`store_endpoint`].

use crate::negotiate;
use crate::protocol::{
    authorize_write, content_type, header_str, read_body, request_url, url_params, values,
};
use crate::stream::{stream_response, write_error, Limit};
use crate::{AppState, HttpError};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::{GraphNameRef, NamedNode, NamedOrBlankNodeRef};
use oxigraph::sparql::CancellationToken;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_storage::GraphWrite;

/// What a Graph Store request addresses.
enum Target {
    Default,
    Named(NamedNode),
    /// `/store` with no graph parameter.
    Service,
}

impl Target {
    fn graph(&self) -> Option<NamedOrBlankNodeRef<'_>> {
        match self {
            Self::Named(g) => Some(g.as_ref().into()),
            _ => None,
        }
    }
}

fn target(parts: &Parts) -> Result<Target, HttpError> {
    let params = url_params(parts);
    let default = !values(&params, "default").is_empty();
    let graphs = values(&params, "graph");
    let direct = parts
        .uri
        .path()
        .strip_prefix("/store/")
        .is_some_and(|p| !p.is_empty());
    if usize::from(default) + graphs.len() + usize::from(direct) > 1 {
        return Err(HttpError::BadRequest(
            "name one graph: either ?default, one ?graph=IRI, or a /store/... path".into(),
        ));
    }
    if direct {
        let iri = request_url(parts);
        return NamedNode::new(iri.as_str())
            .map(Target::Named)
            .map_err(|e| HttpError::BadRequest(format!("invalid graph IRI <{iri}>: {e}")));
    }
    if default {
        return Ok(Target::Default);
    }
    match graphs.first() {
        Some(iri) => NamedNode::new(*iri).map(Target::Named).map_err(|e| {
            HttpError::BadRequest(format!(
                "invalid graph IRI '{iri}' (it must be absolute): {e}"
            ))
        }),
        None => Ok(Target::Service),
    }
}

/// `/store` and `/store/...`.
pub(crate) async fn store_endpoint(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request).await.into_response()
}

async fn handle(state: AppState, request: Request) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let target = target(&parts)?;
    match parts.method {
        Method::GET | Method::HEAD => read(&state, &parts, target).await,
        Method::PUT => {
            authorize_write(&state, &parts.headers)?;
            if matches!(target, Target::Service) {
                return Err(HttpError::BadRequest(
                    "PUT needs a graph: ?default or ?graph=IRI".into(),
                ));
            }
            let format = body_format(&parts)?;
            let bytes = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
            let storage = state.backend.storage().clone();
            let base = base_of(&target, &parts);
            let written = blocking(move || {
                storage.replace_graph(target.graph(), bytes.as_ref(), format, Some(&base))
            })
            .await?;
            Ok(write_status(written))
        }
        Method::POST => {
            authorize_write(&state, &parts.headers)?;
            let parts_in = body_parts(&state, &parts, body).await?;
            let storage = state.backend.storage().clone();
            if let Target::Service = target {
                if parts_in.iter().all(|(_, f)| f.supports_datasets()) {
                    // A dataset posted to the service is added as it is.
                    blocking(move || {
                        storage.add_to_graph(
                            None,
                            parts_in.iter().map(|(b, f)| (b.as_ref(), *f)),
                            None,
                        )
                    })
                    .await?;
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
                let iri = new_graph_iri(&parts);
                let graph = NamedNode::new(iri.as_str()).map_err(|e| {
                    HttpError::BadRequest(format!(
                        "cannot mint a graph IRI from the request URL <{iri}>: {e}"
                    ))
                })?;
                blocking(move || {
                    storage.add_to_graph(
                        Some(graph.as_ref().into()),
                        parts_in.iter().map(|(b, f)| (b.as_ref(), *f)),
                        Some(graph.as_str()),
                    )
                })
                .await?;
                let mut response = StatusCode::CREATED.into_response();
                if let Ok(location) = HeaderValue::from_str(&iri) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                return Ok(response);
            }
            let base = base_of(&target, &parts);
            let written = blocking(move || {
                storage.add_to_graph(
                    target.graph(),
                    parts_in.iter().map(|(b, f)| (b.as_ref(), *f)),
                    Some(&base),
                )
            })
            .await?;
            Ok(write_status(written))
        }
        Method::DELETE => {
            authorize_write(&state, &parts.headers)?;
            if matches!(target, Target::Service) {
                return Err(HttpError::BadRequest(
                    "DELETE needs a graph: ?default or ?graph=IRI".into(),
                ));
            }
            let storage = state.backend.storage().clone();
            let name = graph_label(&target);
            let existed = blocking(move || storage.drop_graph(target.graph())).await?;
            if existed {
                Ok(StatusCode::NO_CONTENT.into_response())
            } else {
                Err(HttpError::NotFound(format!("no graph {name}")))
            }
        }
        _ => Err(HttpError::MethodNotAllowed {
            message: format!("{} is not supported by the graph store", parts.method),
            allow: "GET, HEAD, PUT, POST, DELETE",
        }),
    }
}

/// 201 for a graph the write created, 204 for one it changed.
fn write_status(written: GraphWrite) -> Response {
    match written {
        GraphWrite::Created => StatusCode::CREATED.into_response(),
        GraphWrite::Updated => StatusCode::NO_CONTENT.into_response(),
    }
}

fn graph_label(target: &Target) -> String {
    match target {
        Target::Named(g) => g.to_string(),
        Target::Default => "default graph".into(),
        Target::Service => "dataset".into(),
    }
}

fn base_of(target: &Target, parts: &Parts) -> String {
    match target {
        Target::Named(g) => g.as_str().to_owned(),
        _ => request_url(parts),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tessera_storage::StorageError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HttpError::Internal(format!("the storage task failed: {e}")))?
        .map_err(HttpError::from)
}

fn new_graph_iri(parts: &Parts) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = request_url(parts);
    format!("{}/{nanos:x}-{n:x}", base.trim_end_matches('/'))
}

fn body_format(parts: &Parts) -> Result<RdfFormat, HttpError> {
    let Some((media, _)) = content_type(&parts.headers) else {
        return Err(HttpError::UnsupportedMediaType(
            "the request has no Content-Type; send RDF as text/turtle, application/n-triples, application/rdf+xml, application/ld+json, application/trig or application/n-quads".into(),
        ));
    };
    negotiate::rdf_format_of_content_type(&media).ok_or_else(|| {
        HttpError::UnsupportedMediaType(format!(
            "unsupported RDF media type '{media}'; use text/turtle, application/n-triples, application/rdf+xml, application/ld+json, application/trig or application/n-quads"
        ))
    })
}

/// The RDF documents of a POST: one body, or the parts of a multipart/form-data request.
async fn body_parts(
    state: &AppState,
    parts: &Parts,
    body: axum::body::Body,
) -> Result<Vec<(Bytes, RdfFormat)>, HttpError> {
    let is_multipart =
        content_type(&parts.headers).is_some_and(|(m, _)| m == "multipart/form-data");
    if !is_multipart {
        let format = body_format(parts)?;
        let bytes = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
        return Ok(vec![(bytes, format)]);
    }
    let boundary = header_str(&parts.headers, header::CONTENT_TYPE)
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| HttpError::BadRequest("multipart/form-data without a boundary".into()))?;
    let limit = state.config.max_body_bytes;
    let bytes = read_body(&parts.headers, body, limit).await?;
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut documents = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| HttpError::BadRequest(format!("malformed multipart body: {e}")))?
    {
        let format = field
            .content_type()
            .and_then(|m| negotiate::rdf_format_of_content_type(m.as_ref()))
            .or_else(|| {
                field
                    .file_name()
                    .and_then(|n| n.rsplit_once('.'))
                    .and_then(|(_, ext)| RdfFormat::from_extension(ext))
            })
            .ok_or_else(|| {
                HttpError::UnsupportedMediaType(format!(
                    "multipart part '{}' has no RDF Content-Type or file extension",
                    field.name().unwrap_or("")
                ))
            })?;
        let data = field
            .bytes()
            .await
            .map_err(|e| HttpError::BadRequest(format!("malformed multipart body: {e}")))?;
        documents.push((data, format));
    }
    if documents.is_empty() {
        return Err(HttpError::BadRequest(
            "the multipart body has no part".into(),
        ));
    }
    Ok(documents)
}

async fn read(state: &AppState, parts: &Parts, target: Target) -> Result<Response, HttpError> {
    let url = url_params(parts);
    let accept = negotiate::effective_accept(
        &values(&url, "format"),
        header_str(&parts.headers, header::ACCEPT),
    );
    let format = match target {
        Target::Service => negotiate::dataset_format(accept).ok_or_else(|| {
            HttpError::NotAcceptable("the dataset is sent as application/trig, application/n-quads or application/ld+json".into())
        })?,
        _ => negotiate::graph_format(accept).ok_or_else(|| {
            HttpError::NotAcceptable("a graph is sent as text/turtle, application/n-triples, application/rdf+xml, application/ld+json, application/n-quads or application/trig".into())
        })?,
    };
    let storage = state.backend.storage().clone();
    let exists = {
        let storage = storage.clone();
        let graph = match &target {
            Target::Named(g) => Some(g.clone()),
            _ => None,
        };
        blocking(move || storage.contains_graph(graph.as_ref().map(|g| g.as_ref().into()))).await?
    };
    if !exists {
        return Err(HttpError::NotFound(format!(
            "no graph {}",
            graph_label(&target)
        )));
    }
    let content_type = negotiate::rdf_content_type(format);
    if parts.method == Method::HEAD {
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return Ok(response);
    }
    let timeout = state.config.timeout;
    stream_response(
        content_type,
        Limit::Stall(timeout),
        CancellationToken::new(),
        move |writer| {
            let store = storage.store();
            let io = |e| write_error(e, timeout);
            let mut serializer = RdfSerializer::from_format(format).for_writer(writer);
            match &target {
                Target::Service => {
                    for quad in store.iter() {
                        let quad = quad.map_err(|e| HttpError::Internal(e.to_string()))?;
                        serializer.serialize_quad(&quad).map_err(io)?;
                    }
                }
                _ => {
                    let graph = match &target {
                        Target::Named(g) => GraphNameRef::from(g.as_ref()),
                        _ => GraphNameRef::DefaultGraph,
                    };
                    for quad in store.quads_for_pattern(None, None, None, Some(graph)) {
                        let quad = quad.map_err(|e| HttpError::Internal(e.to_string()))?;
                        serializer.serialize_triple(quad.as_ref()).map_err(io)?;
                    }
                }
            }
            serializer.finish().map_err(io)?;
            Ok(())
        },
    )
    .await
}
