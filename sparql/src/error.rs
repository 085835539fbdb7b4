//! The one place where errors meet HTTP: every failure of a handler is an [`HttpError`], and
//! its `IntoResponse` decides the status code and writes a short plain-text body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// A failed request, with a message a person can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// SPARQL or RDF syntax error, with the parser's message and position (400).
    #[error("{0}")]
    Syntax(String),
    /// A write without the right bearer token (401).
    #[error("this endpoint needs 'Authorization: Bearer <write token>'")]
    Unauthorized,
    /// A write to a read-only server (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such graph or endpoint (404).
    #[error("{0}")]
    NotFound(String),
    /// Wrong HTTP method (405).
    #[error("{message}")]
    MethodNotAllowed {
        /// What to do instead.
        message: String,
        /// The value of the `Allow` header.
        allow: &'static str,
    },
    /// No acceptable response format (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// Request body too large (413).
    #[error("the request body is larger than the {0} bytes this server accepts")]
    PayloadTooLarge(usize),
    /// Unsupported request media type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The operation ran past the timeout and was cancelled (503).
    #[error("the operation did not finish within {} s and was cancelled", .0.as_secs_f32())]
    Timeout(Duration),
    /// A failure inside the server (500).
    #[error("{0}")]
    Internal(String),
    /// A service the request needs is not available, e.g. the language model (503).
    #[error("{0}")]
    Unavailable(String),
    /// Too much work is queued already (429); try again after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests {
        /// Why.
        message: String,
        /// The value of the `Retry-After` header, in seconds.
        retry_after: u64,
    },
}

impl HttpError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Syntax(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(%status, error = %self, "request failed");
        } else {
            tracing::debug!(%status, error = %self, "request refused");
        }
        let mut response = (status, format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match &self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::TooManyRequests { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<tessera_storage::StorageError> for HttpError {
    fn from(e: tessera_storage::StorageError) -> Self {
        use oxigraph::sparql::UpdateEvaluationError as U;
        use tessera_storage::StorageError as S;
        match e {
            S::Parse(e) => Self::Syntax(format!("invalid RDF: {e}")),
            S::InvalidIri(m) => Self::BadRequest(m),
            e @ S::DatasetIntoGraph(_) => Self::UnsupportedMediaType(e.to_string()),
            S::Update(
                e @ (U::GraphAlreadyExists(_)
                | U::GraphDoesNotExist(_)
                | U::GraphParsing(_)
                | U::UnsupportedContentType(_)
                | U::UnsupportedService(_)
                | U::UnboundService
                | U::InvalidServiceName(_)
                | U::Service(_)),
            ) => Self::BadRequest(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_is_429_with_retry_after() {
        let response = HttpError::TooManyRequests {
            message: "queued".into(),
            retry_after: 5,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(5u64))
        );
        let busy = crate::UpdateError::Overloaded("8 requests queued".into());
        assert_eq!(
            HttpError::from(busy).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
