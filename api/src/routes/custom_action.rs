//! `GET /customAction`: checks the caller and the request, stores a job, replies.
//! The job row is committed before the reply; the action runs later on a worker.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use docket::db::jobs::NewJob;
use docket::domain::{JobId, Username};

use crate::error::ApiError;
use crate::query::{header_error, CustomActionParams};
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Success {
    status: &'static str,
    job_id: JobId,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/customAction", get(custom_action))
}

#[tracing::instrument(name = "custom_action", skip_all, fields(job.id, job.action))]
async fn custom_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Success>, ApiError> {
    let key = state.keys.check(&headers)?;
    if let Some(limiter) = &state.rate_limit {
        limiter.take(key).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    }
    let params = CustomActionParams::parse(query.as_deref().unwrap_or(""))?;
    let requested_by = username(&headers)?;
    let action = state.catalog.get(&params.name).ok_or_else(|| ApiError::UnknownAction(params.name.clone()))?;
    let job = NewJob {
        id: JobId::new(),
        action: action.name.clone(),
        document_id: params.document_id,
        document_version_id: params.document_version_id,
        requested_by,
        max_attempts: action.retry.max_attempts,
        dedupe: action.dedupe,
    };
    let span = tracing::Span::current();
    span.record("job.id", tracing::field::display(job.id));
    span.record("job.action", job.action.as_str());
    let (new_id, document_id, action_name) = (job.id, job.document_id.clone(), job.action.clone());
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    let id = state.inserter.insert(job, deadline).await.map_err(ApiError::Store)?;
    if id == new_id {
        metrics::counter!("docket_jobs_enqueued_total", "action" => action_name).increment(1);
        tracing::info!(document.id = %document_id, "job queued");
    } else {
        span.record("job.id", tracing::field::display(id));
        metrics::counter!("docket_jobs_deduplicated_total", "action" => action_name).increment(1);
        tracing::info!(document.id = %document_id, "duplicate trigger: answering with the live job");
    }
    Ok(Json(Success { status: "success", job_id: id }))
}

/// The optional `username` header, validated like the ids.
fn username(headers: &HeaderMap) -> Result<Option<Username>, ApiError> {
    let Some(value) = headers.get("username") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::BadRequest("The 'username' header is not valid text.".into()))?;
    Username::parse(text).map(Some).map_err(|e| header_error("username", e))
}
