//! The server's errors: [`ServerError`] (what stops it: a refused bind, TLS
//! files, the socket), and [`ApiError`], the one place where every error an
//! endpoint meets becomes a status code and a JSON body. A 5xx body says only
//! that something failed (with an id the server's log carries next to the
//! detail); everything else says what was wrong and how to fix it.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use firebreak_app::{AppError, ErrorKind};
use firebreak_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A bind that would expose the server without TLS.
    #[error(
        "refusing to serve on {0} without TLS\nhint: give --tls-cert and --tls-key, bind a loopback address, or say --insecure-bind"
    )]
    InsecureBind(std::net::SocketAddr),
    /// The certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server could not start (its first read of the store failed).
    #[error("starting the server: {0}")]
    Start(String),
    /// The socket failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, and a hint where there is one.
    pub error: String,
}

/// An endpoint's failure: an application error, or a request the server
/// itself refuses.
#[derive(Debug)]
pub(crate) enum ApiError {
    App(AppError),
    BadRequest(String),
    NotFound(String),
    Busy(String),
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError::App(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::App(error.into())
    }
}

/// Numbers the failures whose detail stays in the server's log.
static INCIDENTS: AtomicU64 = AtomicU64::new(1);

impl ApiError {
    /// The status and the message a caller sees; `None` as the message for
    /// an internal failure, whose detail must not leak.
    fn classify(&self) -> (StatusCode, Option<String>) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, Some(m.clone())),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, Some(m.clone())),
            ApiError::Busy(m) => (StatusCode::SERVICE_UNAVAILABLE, Some(m.clone())),
            ApiError::App(e) => {
                let shown = Some(e.to_string());
                match (e, e.kind()) {
                    (AppError::Refused(_), _) => (StatusCode::FORBIDDEN, shown),
                    (AppError::Store(StoreError::RequestChanged(_)), _) => {
                        (StatusCode::CONFLICT, shown)
                    }
                    (_, ErrorKind::Usage) => (StatusCode::BAD_REQUEST, shown),
                    (_, ErrorKind::NotFound) => (StatusCode::NOT_FOUND, shown),
                    (_, ErrorKind::Unauthenticated) => (StatusCode::UNAUTHORIZED, shown),
                    (_, ErrorKind::Forbidden) => (StatusCode::FORBIDDEN, shown),
                    (_, ErrorKind::Halted | ErrorKind::Tampered) => (StatusCode::CONFLICT, shown),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
                }
            }
        }
    }

    /// The status, the message a caller sees, and for an internal failure the
    /// line the log keeps (the message then names only its incident number).
    pub(crate) fn explain(self) -> (StatusCode, String, Option<String>) {
        let (status, message) = self.classify();
        match message {
            Some(m) => (status, m, None),
            None => {
                let id = INCIDENTS.fetch_add(1, Ordering::Relaxed);
                let detail = match &self {
                    ApiError::App(e) => format!("{e:?}"),
                    other => format!("{other:?}"),
                };
                (
                    status,
                    format!("internal error (incident {id}; the server's log has the detail)"),
                    Some(format!("incident {id}: {detail}")),
                )
            }
        }
    }

    /// The JSON answer, and for an internal failure the line the log keeps.
    pub(crate) fn answer(self) -> (Response, Option<String>) {
        let (status, message, log) = self.explain();
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"firebreak\""),
            );
        }
        (response, log)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (mut response, log) = self.answer();
        if let Some(line) = log {
            // The serving task's log layer picks this up and hands it to the face.
            response.extensions_mut().insert(Incident(line));
        }
        response
    }
}

/// The detail of an internal failure, carried to the log by the response.
#[derive(Debug, Clone)]
pub(crate) struct Incident(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error_kinds_and_internals_do_not_leak() {
        let status = |e: ApiError| e.answer().0.status();
        assert_eq!(
            status(AppError::Invalid("bad".into()).into()),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(StoreError::NoCampaign("x".into()).into()),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(AppError::Unauthenticated("no".into()).into()),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(AppError::Forbidden("no".into()).into()),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(AppError::Tampered("x".into()).into()),
            StatusCode::CONFLICT
        );
        let (response, log) =
            ApiError::App(AppError::Store(StoreError::Corrupt("secret-table".into()))).answer();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(log.is_some_and(|l| l.contains("secret-table")));
    }
}
