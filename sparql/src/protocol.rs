//! The SPARQL 1.1 Protocol (<https://www.w3.org/TR/sparql11-protocol/>) at `/query`, `/update`
//! and `/sparql`: request parsing (GET, POST form, POST direct), protocol datasets, query
//! evaluation with streamed results, updates through the [`crate::Backend`].
//!
//! Entry points: [`query_endpoint`], [`update_endpoint`], [`sparql_endpoint`].

use crate::negotiate;
use crate::service_description;
use crate::stream::{stream_response, write_error, Limit};
use crate::{AppState, HttpError, UpdateError, UpdateRequest};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use oxigraph::io::RdfSerializer;
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode};
use oxigraph::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
use oxigraph::sparql::{CancellationToken, QueryEvaluationError, QueryResults, SparqlEvaluator};
use spargebra::SparqlParser;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Query,
    Update,
    Both,
}

/// `/query`: queries only.
pub(crate) async fn query_endpoint(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Allowed::Query).await.into_response()
}

/// `/update`: updates only.
pub(crate) async fn update_endpoint(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Allowed::Update)
        .await
        .into_response()
}

/// `/sparql`: queries, updates and the service description.
pub(crate) async fn sparql_endpoint(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Allowed::Both).await.into_response()
}

enum Operation {
    Query {
        query: String,
        default_graphs: Vec<NamedNode>,
        named_graphs: Vec<NamedNode>,
    },
    Update {
        update: String,
        using_graphs: Vec<NamedNode>,
        using_named_graphs: Vec<NamedNode>,
    },
    Describe,
}

/// Key/value pairs of a URL query string or a form body.
pub(crate) type Params = Vec<(String, String)>;

pub(crate) fn url_params(parts: &Parts) -> Params {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn values<'a>(params: &'a Params, name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The URL the client used for this request, without the query string: the base IRI of
/// queries and updates, and the IRI of directly identified graphs.
pub(crate) fn request_url(parts: &Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    format!("http://{host}{}", parts.uri.path())
}

pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The media type of the request body, lower-cased, without parameters; and whether its
/// charset (if any) is UTF-8.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<(String, bool)> {
    let value = header_str(headers, header::CONTENT_TYPE)?;
    let mut parts = value.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let utf8 = parts.all(|p| match p.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let v = value.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    Some((essence, utf8))
}

/// Reads the whole body, refusing more than `limit` bytes (after gzip decompression).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, HttpError> {
    if let Some(length) =
        header_str(headers, header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok())
    {
        if length > limit as u64 && headers.get(header::CONTENT_ENCODING).is_none() {
            return Err(HttpError::PayloadTooLarge(limit));
        }
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // The limit error may arrive wrapped (e.g. behind the gzip decoder): check the source,
        // then the message.
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            HttpError::PayloadTooLarge(limit)
        } else {
            HttpError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })
}

fn utf8(bytes: Bytes, what: &str) -> Result<String, HttpError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        HttpError::BadRequest(format!(
            "the {what} is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn iris(params: &Params, name: &str) -> Result<Vec<NamedNode>, HttpError> {
    values(params, name)
        .into_iter()
        .map(|v| {
            NamedNode::new(v)
                .map_err(|e| HttpError::BadRequest(format!("invalid IRI in {name} '{v}': {e}")))
        })
        .collect()
}

fn single<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, HttpError> {
    let found = values(params, name);
    match found.len() {
        0 => Ok(None),
        1 => Ok(Some(found[0])),
        n => Err(HttpError::BadRequest(format!(
            "the request has {n} '{name}' parameters; send exactly one"
        ))),
    }
}

fn operation_from_params(params: &Params, allowed: Allowed) -> Result<Operation, HttpError> {
    let query = single(params, "query")?;
    let update = single(params, "update")?;
    match (query, update) {
        (Some(_), Some(_)) => Err(HttpError::BadRequest(
            "the request has both 'query' and 'update'; send one operation".into(),
        )),
        (Some(query), None) => Ok(Operation::Query {
            query: query.to_owned(),
            default_graphs: iris(params, "default-graph-uri")?,
            named_graphs: iris(params, "named-graph-uri")?,
        }),
        (None, Some(update)) => Ok(Operation::Update {
            update: update.to_owned(),
            using_graphs: iris(params, "using-graph-uri")?,
            using_named_graphs: iris(params, "using-named-graph-uri")?,
        }),
        (None, None) => match allowed {
            Allowed::Update => Err(HttpError::BadRequest(
                "the form has no 'update' parameter".into(),
            )),
            _ => Err(HttpError::BadRequest(
                "the request has no 'query' or 'update' parameter".into(),
            )),
        },
    }
}

async fn parse_request(
    state: &AppState,
    parts: &Parts,
    url: &Params,
    body: Body,
    allowed: Allowed,
) -> Result<Operation, HttpError> {
    match parts.method {
        Method::GET | Method::HEAD => {
            if !values(url, "update").is_empty() {
                return Err(HttpError::MethodNotAllowed {
                    message: "updates must be sent with POST".into(),
                    allow: "POST",
                });
            }
            if values(url, "query").is_empty() {
                return match allowed {
                    Allowed::Update => Err(HttpError::MethodNotAllowed {
                        message: "send updates with POST".into(),
                        allow: "POST",
                    }),
                    _ => Ok(Operation::Describe),
                };
            }
            operation_from_params(url, allowed)
        }
        Method::POST => {
            let Some((media, is_utf8)) = content_type(&parts.headers) else {
                return Err(HttpError::UnsupportedMediaType(
                    "the POST has no Content-Type; use application/sparql-query, application/sparql-update or application/x-www-form-urlencoded".into(),
                ));
            };
            if !is_utf8 {
                return Err(HttpError::UnsupportedMediaType(
                    "only the UTF-8 charset is supported".into(),
                ));
            }
            let body = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
            match media.as_str() {
                "application/x-www-form-urlencoded" => {
                    let text = utf8(body, "form body")?;
                    let mut params: Params = form_urlencoded::parse(text.as_bytes()).into_owned().collect();
                    params.extend(url.iter().filter(|(k, _)| k != "query" && k != "update").cloned());
                    operation_from_params(&params, allowed)
                }
                "application/sparql-query" => Ok(Operation::Query {
                    query: utf8(body, "query")?,
                    default_graphs: iris(url, "default-graph-uri")?,
                    named_graphs: iris(url, "named-graph-uri")?,
                }),
                "application/sparql-update" => Ok(Operation::Update {
                    update: utf8(body, "update")?,
                    using_graphs: iris(url, "using-graph-uri")?,
                    using_named_graphs: iris(url, "using-named-graph-uri")?,
                }),
                other => Err(HttpError::UnsupportedMediaType(format!(
                    "unsupported Content-Type '{other}'; use application/sparql-query, application/sparql-update or application/x-www-form-urlencoded"
                ))),
            }
        }
        _ => Err(HttpError::MethodNotAllowed {
            message: format!("{} is not supported here; use GET or POST", parts.method),
            allow: "GET, HEAD, POST",
        }),
    }
}

async fn handle(
    state: AppState,
    request: Request,
    allowed: Allowed,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    // Refuse unauthorised writes before reading a body that is certainly an update.
    let direct_update =
        content_type(&parts.headers).is_some_and(|(m, _)| m == "application/sparql-update");
    if parts.method == Method::POST && (allowed == Allowed::Update || direct_update) {
        authorize_write(&state, &parts.headers)?;
    }
    let url = url_params(&parts);
    let operation = parse_request(&state, &parts, &url, body, allowed).await?;
    let base = request_url(&parts);
    let accept = negotiate::effective_accept(
        &values(&url, "format"),
        header_str(&parts.headers, header::ACCEPT),
    );
    match operation {
        Operation::Describe => service_description::respond(&base, accept),
        Operation::Query {
            query,
            default_graphs,
            named_graphs,
        } => {
            if allowed == Allowed::Update {
                return Err(HttpError::BadRequest(
                    "this is the update endpoint; send queries to /query".into(),
                ));
            }
            run_query(&state, &query, default_graphs, named_graphs, &base, accept).await
        }
        Operation::Update {
            update,
            using_graphs,
            using_named_graphs,
        } => {
            if allowed == Allowed::Query {
                return Err(HttpError::BadRequest(
                    "this is the query endpoint; send updates to /update".into(),
                ));
            }
            authorize_write(&state, &parts.headers)?;
            let request = UpdateRequest {
                update,
                base_iri: Some(base),
                using_graphs,
                using_named_graphs,
                cancellation: None,
                union_default_graph: state.config.union_default_graph,
            };
            run_update(&state, request, accept).await
        }
    }
}

/// Refuses writes on a read-only server (403), writes a browser sends on behalf of another
/// site (403), or writes without the write token (401).
pub(crate) fn authorize_write(state: &AppState, headers: &HeaderMap) -> Result<(), HttpError> {
    if state.config.read_only {
        return Err(HttpError::Forbidden("this server is read-only".into()));
    }
    if let Some(origin) = cross_site_origin(headers) {
        let allowed = state
            .config
            .cors_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/') == origin);
        if !allowed {
            return Err(HttpError::Forbidden(format!(
                "a write from a page of another site ({origin}) is refused: browsers send such form posts without asking, so allow that origin with --cors if it is meant to write"
            )));
        }
    }
    if let Some(token) = &state.config.write_token {
        let given = header_str(headers, header::AUTHORIZATION)
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(HttpError::Unauthorized);
        }
    }
    Ok(())
}

/// The origin of a request a browser made from another site's page, if it is one. Browsers
/// send a form post to any site without a CORS preflight (so one page could otherwise `DROP
/// ALL` a local server), but they say where it comes from: `Origin` on every POST, and
/// `Sec-Fetch-Site` where they support it. Clients that are not browsers send neither.
fn cross_site_origin(headers: &HeaderMap) -> Option<String> {
    let origin = header_str(headers, header::ORIGIN).map(|o| o.trim().trim_end_matches('/'));
    let fetch_site =
        header_str(headers, header::HeaderName::from_static("sec-fetch-site")).map(str::trim);
    let named = || origin.unwrap_or("an unnamed origin").to_owned();
    match fetch_site {
        Some("same-origin" | "none") => return None,
        Some(_) => return Some(named()),
        None => {}
    }
    // No Sec-Fetch-Site: compare the Origin's host and port with the Host the request went to.
    let origin = origin?;
    if origin == "null" {
        return Some(named());
    }
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    let host = header_str(headers, header::HOST).unwrap_or("");
    (!authority.eq_ignore_ascii_case(host)).then(named)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Every byte is compared, so the time does not reveal how long a matching prefix is.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn evaluation_error(e: QueryEvaluationError, state: &AppState) -> HttpError {
    match e {
        QueryEvaluationError::Cancelled => {
            HttpError::Timeout(state.config.timeout.unwrap_or_default())
        }
        QueryEvaluationError::Service(_)
        | QueryEvaluationError::UnsupportedService(_)
        | QueryEvaluationError::UnboundService
        | QueryEvaluationError::InvalidServiceName(_) => {
            HttpError::BadRequest(format!("SERVICE is not supported by this server: {e}"))
        }
        e => HttpError::Internal(format!("query evaluation failed: {e}")),
    }
}

async fn run_query(
    state: &AppState,
    query: &str,
    default_graphs: Vec<NamedNode>,
    named_graphs: Vec<NamedNode>,
    base: &str,
    accept: Option<&str>,
) -> Result<Response, HttpError> {
    let parsed = SparqlParser::new()
        .with_base_iri(base)
        .map_err(|e| HttpError::BadRequest(format!("invalid base IRI <{base}>: {e}")))?
        .parse_query(query)
        .map_err(|e| HttpError::Syntax(format!("SPARQL query syntax error: {e}")))?;
    enum Out {
        Solutions(QueryResultsFormat),
        Graph(oxigraph::io::RdfFormat),
    }
    let out = match parsed {
        spargebra::Query::Select { .. } | spargebra::Query::Ask { .. } => Out::Solutions(
            negotiate::solutions_format(accept).ok_or_else(|| {
                HttpError::NotAcceptable(
                    "no acceptable format for query results; accept application/sparql-results+json, application/sparql-results+xml, text/csv or text/tab-separated-values".into(),
                )
            })?,
        ),
        spargebra::Query::Construct { .. } | spargebra::Query::Describe { .. } => Out::Graph(
            negotiate::graph_format_for_query(accept).ok_or_else(|| {
                HttpError::NotAcceptable(
                    "no acceptable RDF format for this graph; accept text/turtle, application/n-triples, application/rdf+xml, application/ld+json, application/n-quads or application/trig".into(),
                )
            })?,
        ),
    };
    let cancel = CancellationToken::new();
    let mut prepared = SparqlEvaluator::new()
        .with_cancellation_token(cancel.clone())
        .for_query(parsed);
    if !default_graphs.is_empty() || !named_graphs.is_empty() {
        // The protocol dataset replaces FROM / FROM NAMED of the query (Protocol 2.1.4).
        let dataset = prepared.dataset_mut();
        dataset.set_default_graph(default_graphs.into_iter().map(GraphName::from).collect());
        dataset.set_available_named_graphs(
            named_graphs
                .into_iter()
                .map(NamedOrBlankNode::from)
                .collect(),
        );
    } else if state.config.union_default_graph && prepared.dataset().is_default_dataset() {
        prepared.dataset_mut().set_default_graph_as_union();
    }
    let store = state.backend.storage().store().clone();
    let timeout = state.config.timeout;
    let error_state = state.clone();
    let content_type = match &out {
        Out::Solutions(f) => negotiate::solutions_content_type(*f),
        Out::Graph(f) => negotiate::rdf_content_type(*f),
    };
    let cancel_check = cancel.clone();
    stream_response(content_type, Limit::Total(timeout), cancel, move |writer| {
        let results = prepared
            .on_store(&store)
            .execute()
            .map_err(|e| evaluation_error(e, &error_state))?;
        let io = |e| write_error(e, timeout);
        match (results, out) {
            (QueryResults::Solutions(solutions), Out::Solutions(format)) => {
                let mut serializer = QueryResultsSerializer::from_format(format)
                    .serialize_solutions_to_writer(writer, solutions.variables().to_vec())
                    .map_err(io)?;
                for solution in solutions {
                    // oxigraph checks the token when it reads the store; check between
                    // solutions too.
                    if cancel_check.is_cancelled() {
                        return Err(evaluation_error(
                            QueryEvaluationError::Cancelled,
                            &error_state,
                        ));
                    }
                    let solution = solution.map_err(|e| evaluation_error(e, &error_state))?;
                    serializer.serialize(&solution).map_err(io)?;
                }
                serializer.finish().map_err(io)?;
            }
            (QueryResults::Boolean(value), Out::Solutions(format)) => {
                QueryResultsSerializer::from_format(format)
                    .serialize_boolean_to_writer(writer, value)
                    .map_err(io)?;
            }
            (QueryResults::Graph(triples), Out::Graph(format)) => {
                let mut serializer = RdfSerializer::from_format(format).for_writer(writer);
                for triple in triples {
                    if cancel_check.is_cancelled() {
                        return Err(evaluation_error(
                            QueryEvaluationError::Cancelled,
                            &error_state,
                        ));
                    }
                    let triple = triple.map_err(|e| evaluation_error(e, &error_state))?;
                    serializer.serialize_triple(&triple).map_err(io)?;
                }
                serializer.finish().map_err(io)?;
            }
            _ => {
                return Err(HttpError::Internal(
                    "unexpected kind of query results".into(),
                ))
            }
        }
        Ok(())
    })
    .await
}

/// Cancels an update when the request's future is dropped before it finished.
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        // After completion cancelling changes nothing: the update has returned.
        self.0.cancel();
    }
}

async fn run_update(
    state: &AppState,
    mut request: UpdateRequest,
    accept: Option<&str>,
) -> Result<Response, HttpError> {
    let cancel = CancellationToken::new();
    request.cancellation = Some(cancel.clone());
    // A client that goes away drops this future: the update is cancelled with it (a text
    // not yet committed is then not written at all).
    let _on_drop = CancelOnDrop(cancel.clone());
    let backend = state.backend.clone();
    let mut task = tokio::task::spawn_blocking(move || backend.update(&request));
    let joined = match state.config.timeout {
        Some(timeout) => match tokio::time::timeout(timeout, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                // Cancel, then wait: the answer must say whether the update was applied.
                cancel.cancel();
                task.await
            }
        },
        None => task.await,
    };
    let report = joined
        .map_err(|e| HttpError::Internal(format!("the update task failed: {e}")))?
        .map_err(|e| match e {
            UpdateError::Cancelled => HttpError::Timeout(state.config.timeout.unwrap_or_default()),
            e => e.into(),
        })?;
    let wants_json = accept.is_some_and(|a| {
        negotiate::choose(Some(a), &[("application/json", ())]).is_some()
            && !a.trim().starts_with("*/*")
    });
    match report {
        Some(report) if wants_json => {
            let mut response = (StatusCode::OK, report).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

impl From<UpdateError> for HttpError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::Syntax(_) => Self::Syntax(e.to_string()),
            UpdateError::Cancelled => Self::Timeout(std::time::Duration::ZERO),
            UpdateError::Storage(e) => e.into(),
            UpdateError::Unavailable(_) => Self::Unavailable(e.to_string()),
            UpdateError::Overloaded(_) => Self::TooManyRequests {
                message: e.to_string(),
                retry_after: 5,
            },
            // Every other kind is the request's fault, named by the error itself.
            _ => Self::BadRequest(e.to_string()),
        }
    }
}
