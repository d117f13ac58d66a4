//! The api's one error type. Every error becomes Workfront's failure JSON with a
//! sentence a Workfront user can read; causes are logged once, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad parameter: {0}")]
    BadRequest(String),
    #[error("missing or wrong apiKey")]
    Unauthorized,
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("no such endpoint")]
    NoSuchEndpoint,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request URI too long")]
    UriTooLong,
    #[error("could not store the job: {0}")]
    Store(#[source] crate::inserter::StoreError),
    #[error("request timed out")]
    Timeout,
    #[error("rate limit of the API key reached")]
    TooManyRequests { retry_after: std::time::Duration },
}

/// Workfront's failure body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Failure {
    #[schema(pattern = "^failure$")]
    pub status: &'static str,
    pub error: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::FORBIDDEN,
            Self::UnknownAction(_) | Self::NoSuchEndpoint => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::Store(_) | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The sentence Workfront shows its user.
    pub fn user_message(&self) -> String {
        match self {
            Self::BadRequest(message) => message.clone(),
            Self::Unauthorized => "Docket did not accept this request's API key. Ask your Workfront \
                                   administrator to check the custom integration's settings."
                .into(),
            Self::UnknownAction(name) => format!(
                "Docket has no action named '{name}'. Ask your Workfront administrator to refresh the \
                 custom integration."
            ),
            Self::NoSuchEndpoint => "Docket has no such endpoint.".into(),
            Self::MethodNotAllowed => "Docket accepts only GET requests here.".into(),
            Self::UriTooLong => "The request is too long.".into(),
            Self::Store(_) | Self::Timeout => {
                "Docket could not record this request right now. Please try again in a minute.".into()
            }
            Self::TooManyRequests { .. } => {
                "Docket is receiving too many requests from this integration. Please try again in a moment.".into()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Store(cause @ crate::inserter::StoreError::NotWritten) => {
                tracing::warn!(error = %cause, "request timed out")
            }
            Self::Store(cause @ crate::inserter::StoreError::Unavailable(_)) => {
                tracing::warn!(error = %cause, "database unreachable; job not stored")
            }
            Self::Store(cause) => tracing::error!(error = %cause, "could not store job"),
            Self::Timeout => tracing::warn!("request timed out"),
            other => tracing::info!(reason = %other, "request refused"),
        }
        let body = Failure { status: "failure", error: self.user_message() };
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::TooManyRequests { retry_after: wait } = self {
            retry_after(response.headers_mut(), wait);
        }
        response
    }
}

/// Sets `Retry-After` to `wait` in whole seconds, rounded up (a client that waits as
/// told is not refused again), at least 1. Every reply that asks a client to come back
/// later sets it here.
pub fn retry_after(headers: &mut axum::http::HeaderMap, wait: std::time::Duration) {
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    headers.insert(axum::http::header::RETRY_AFTER, seconds.into());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        for (wait, expected) in [(0, "1"), (1, "1"), (1_001, "2"), (1_999, "2"), (60_000, "60")] {
            let mut headers = axum::http::HeaderMap::new();
            super::retry_after(&mut headers, Duration::from_millis(wait));
            assert_eq!(headers["retry-after"], expected, "{wait} ms");
        }
    }
}
