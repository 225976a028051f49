//! [`ApiError`]: every way a request can fail, and the JSON answer each
//! one owes. Owns the status codes and the error body
//! (`{"error": "...", "field": "..."}`); handlers return `ApiError`s and
//! never build error responses themselves.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one the configuration does not know.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token is valid but its role is below what the route needs.
    #[error("this needs the {needed} role (the token has {has})")]
    Forbidden {
        needed: &'static str,
        has: &'static str,
    },
    /// A query parameter or body field is wrong.
    #[error("{field}: {message}")]
    BadField { field: String, message: String },
    /// The resource (a recording, a route) does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The switch refused a reload: its running configuration is kept.
    #[error("reload refused; the running configuration is kept")]
    ReloadRefused { problems: Vec<String> },
    /// Something the answer depends on is not reachable now (the
    /// database, the signalling thread).
    #[error("{what} is unavailable: {reason}")]
    Unavailable { what: &'static str, reason: String },
    /// A file operation failed on our side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A `BadField` for `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::ReloadRefused { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<&'a [String]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Body {
            error: self.to_string(),
            field: match &self {
                ApiError::BadField { field, .. } => Some(field),
                _ => None,
            },
            problems: match &self {
                ApiError::ReloadRefused { problems } => Some(problems),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"carillon\""),
            );
        }
        response
    }
}
