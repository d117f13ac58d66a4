//! The ops API's one error type: JSON `{"error": "..."}` with the status that fits.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The body of every ops error.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = OpsError)]
pub struct OpsErrorBody {
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("no job with id {0}")]
    NotFound(String),
    /// Something other than a job is missing; the sentence says what.
    #[error("{0}")]
    Missing(String),
    #[error("no action named {0:?} in the catalog")]
    UnknownAction(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed sign-ins from this address; try again in {} s", .0.as_secs().max(1))]
    TooManyFailures(std::time::Duration),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What an operator is told when the database fails them: a sentence, never the
/// database's own text.
pub const DATABASE_SENTENCE: &str = "the database is unavailable; try again";

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, self.to_string()),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, self.to_string()),
            Self::NotFound(_) | Self::Missing(_) | Self::UnknownAction(_) => (StatusCode::NOT_FOUND, self.to_string()),
            Self::Conflict(_) => (StatusCode::CONFLICT, self.to_string()),
            Self::TooManyFailures(_) => (StatusCode::TOO_MANY_REQUESTS, self.to_string()),
            Self::Database(e) => {
                tracing::error!(error = %e, "ops request failed");
                (StatusCode::SERVICE_UNAVAILABLE, DATABASE_SENTENCE.to_owned())
            }
        };
        let mut response = (status, Json(OpsErrorBody { error: message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", "Bearer".parse().expect("valid header"));
        }
        if let Self::TooManyFailures(wait) = self {
            crate::error::retry_after(response.headers_mut(), wait);
        }
        response
    }
}
