//! The one place where errors become HTTP responses.
//!
//! Bodies have the Prometheus API error shape, `{"status":"error","errorType":"...",
//! "error":"..."}`. Internal details (paths, SQL, OS errors) go to the log, never to the client.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The kinds of API error, each with one HTTP status and one `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400 `bad_data`: the request is malformed or a value is invalid.
    BadData,
    /// 401 `unauthorized`: no token, or a token that is unknown or revoked.
    Unauthorized,
    /// 403 `forbidden`: the token's scope is too small.
    Forbidden,
    /// 404 `not_found`: no such route or object.
    NotFound,
    /// 413 `too_large`: the request body is over the limit.
    TooLarge,
    /// 415 `unsupported_media_type`: a content type or encoding the receiver does not speak.
    UnsupportedMediaType,
    /// 429 `too_many_requests`: the receiver is saturated; the answer carries `Retry-After`.
    TooManyRequests,
    /// 503 `unavailable`: not ready, or shutting down.
    Unavailable,
    /// 500 `internal`: a bug or a failing disk; details are in the server log.
    Internal,
}

impl ErrorCode {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadData => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `errorType` in the body.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorCode::BadData => "bad_data",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// An error answer: a code and a message safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The kind of error.
    pub code: ErrorCode,
    /// What went wrong and what to do, for the client.
    pub message: String,
}

/// The `Retry-After` of a 429, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// The message clients see for internal errors.
const INTERNAL_MESSAGE: &str = "internal error: the server log has the details";

impl ApiError {
    /// An error with a message for the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// A 500 whose detail is logged, not sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error while serving a request");
        ApiError::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "status": "error",
            "errorType": self.code.error_type(),
            "error": self.message,
        });
        let mut resp = (self.code.status(), Json(body)).into_response();
        if self.code == ErrorCode::Unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bongsu\""),
            );
        }
        if self.code == ErrorCode::TooManyRequests {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

impl From<bongsu_state::Error> for ApiError {
    fn from(e: bongsu_state::Error) -> ApiError {
        use bongsu_state::Error as S;
        match e {
            S::TokenNotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
            S::InvalidName(_) | S::InvalidScope(_) => {
                ApiError::new(ErrorCode::BadData, e.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> ApiError {
        match e {
            crate::Error::State(s) => s.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::TooLarge
        } else {
            ErrorCode::BadData
        };
        // axum's rejection texts describe the body, never server internals.
        ApiError::new(code, r.body_text().to_lowercase())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_details() {
        let e = bongsu_state::Error::Io(std::io::Error::other("/secret/path/state.db: denied"));
        let api: ApiError = e.into();
        assert_eq!(api.code, ErrorCode::Internal);
        assert!(!api.message.contains("/secret"));
    }

    #[test]
    fn every_code_has_a_distinct_status_and_type() {
        let all = [
            ErrorCode::BadData,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::TooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::TooManyRequests,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ];
        let statuses: std::collections::HashSet<_> = all.iter().map(|c| c.status()).collect();
        let types: std::collections::HashSet<_> = all.iter().map(|c| c.error_type()).collect();
        assert_eq!(statuses.len(), all.len());
        assert_eq!(types.len(), all.len());
    }
}
