//! The API's errors: one kind per status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error;
use crate::query::{ParamError, QueryError};

/// Why a call is answered with an error, as `{"error": "..."}`. [`ApiError::status`] is the one
/// place a kind of error gets its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body the caller got wrong, or a query the engine refuses to run.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or one nobody was given.
    #[error("{0}")]
    Unauthorized(String),
    /// A known caller whose role is too low.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// Over a limit on concurrent work (tails).
    #[error("{0}")]
    TooManyRequests(String),
    /// A fault of the server itself.
    #[error("{0}")]
    Internal(String),
    /// A service the answer needs cannot be reached now (the control topic's broker): try again.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The text of the `error` field.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooManyRequests(m)
            | ApiError::Internal(m)
            | ApiError::Unavailable(m) => m,
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(error: ParamError) -> ApiError {
        ApiError::BadRequest(error.0)
    }
}

impl From<QueryError> for ApiError {
    /// A query refused is the caller's mistake; any other failure is ours.
    fn from(error: QueryError) -> ApiError {
        match error {
            QueryError::Refused(param) => param.into(),
            QueryError::Failed(error) => ApiError::Internal(format!("{error:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        error(status, self.message())
    }
}
