//! `GET /customAction`: checks the caller and the request, stores a job, replies.
//! The job row is committed before the reply; the action runs later on a worker.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::db::jobs::NewJob;
use docket::domain::{JobId, Username};
use docket::otlp;
use docket::trace::TraceParent;

use crate::error::{ApiError, Failure};
use crate::query::{header_error, CustomActionParams};
use crate::state::AppState;

/// Workfront's success body, with the id of the job (a new one, or the live job a
/// duplicate trigger joined).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Success {
    #[schema(pattern = "^success$")]
    status: &'static str,
    job_id: JobId,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(custom_action))
}

/// Queue a custom action on a document. The parameters are read from the raw query
/// (a repeated one is refused), so their schema is stated here.
#[utoipa::path(get, path = "/customAction", operation_id = "customAction", tag = "workfront",
    security(("apiKey" = [])),
    params(
        ("name" = String, Query, description = "the action", min_length = 1, max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"),
        ("documentId" = String, Query, min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"),
        ("documentVersionId" = String, Query, min_length = 1, max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"),
        ("username" = Option<String>, Header, description = "the Workfront user", min_length = 1, max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the job continues a valid one; any other value is ignored (a new trace)")
    ),
    responses(
        (status = 200, description = "The job is stored", body = Success),
        (status = 400, description = "A parameter is missing, empty, repeated, too long, not UTF-8 or holds control characters", body = Failure),
        (status = 403, description = "Missing or wrong apiKey", body = Failure),
        (status = 404, description = "No such action", body = Failure),
        (status = 414, description = "Query string too long", body = Failure),
        (status = 503, description = "The job could not be stored", body = Failure)
    ))]
#[tracing::instrument(name = "custom_action", skip_all, fields(job.id, job.action, trace_id))]
async fn custom_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Success>, ApiError> {
    let (trace, caller) = TraceParent::intake(&headers);
    let mut exported = otlp::Span::start("GET /customAction", otlp::Kind::Server, &trace, caller.as_ref());
    exported.set("http.request.method", "GET");
    exported.set("http.route", "/customAction");
    let answer = queue(&state, &headers, query, trace).await;
    if let (Ok(success), true) = (&answer, exported.is_recording()) {
        exported.set("docket.job.id", success.job_id.to_string());
    }
    exported.answered(answer.as_ref().map_or_else(|e| e.status().as_u16(), |_| 200));
    answer.map(Json)
}

/// Checks the caller and the request, then stores the job (as the span `trace`).
async fn queue(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<String>,
    trace: TraceParent,
) -> Result<Success, ApiError> {
    let key = state.keys.check(headers)?;
    if let Some(limiter) = &state.rate_limit {
        limiter.take(key).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    }
    let params = CustomActionParams::parse(query.as_deref().unwrap_or(""))?;
    let requested_by = username(headers)?;
    // An action kept out of the menu (`menu = false`) is not one Workfront can ask for.
    let action = state
        .catalog
        .get(&params.name)
        .filter(|a| a.menu)
        .ok_or_else(|| ApiError::UnknownAction(params.name.clone()))?;
    let job = NewJob {
        id: JobId::new(),
        action: action.name.clone(),
        document_id: params.document_id,
        document_version_id: params.document_version_id,
        requested_by,
        max_attempts: action.retry.max_attempts,
        dedupe: action.dedupe,
        traceparent: Some(trace),
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
    Ok(Success { status: "success", job_id: id })
}

/// The optional `username` header, validated like the ids.
fn username(headers: &HeaderMap) -> Result<Option<Username>, ApiError> {
    let Some(value) = headers.get("username") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::BadRequest("The 'username' header is not valid text.".into()))?;
    Username::parse(text).map(Some).map_err(|e| header_error("username", e))
}
