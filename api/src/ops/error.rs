//! The ops API's errors as HTTP: JSON `{"error": "..."}` with the status that fits.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub use crate::service::OpsError;

/// The body of every ops error.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = OpsError)]
pub struct OpsErrorBody {
    pub error: String,
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
