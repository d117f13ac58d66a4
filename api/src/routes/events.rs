//! `POST /workfront/events`: Workfront's event-subscription deliveries. Checks the
//! token and the message, then records the delivery and starts one job per action of
//! every trigger it matches, in one statement with the deliveries that arrive meanwhile
//! (`event_writer.rs`); answers only after the commit, well
//! inside Workfront's 5-second budget. A redelivery answers with the first delivery's
//! jobs and stores nothing.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::db::events::{Delivery, NewEventJob, Recorded};
use docket::domain::JobId;
use docket::events::{Event, MAX_MESSAGE_BYTES};
use docket::otlp;
use docket::trace::TraceParent;

use crate::event_writer::WriteError;
use crate::state::AppState;

/// Longest a delivery may take here: Workfront counts one that takes 5 s as failed.
pub const BUDGET: Duration = Duration::from_secs(4);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(workfront_events))
}

/// What a stored (or redelivered) event came to.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    #[schema(pattern = "^success$")]
    status: &'static str,
    /// The recorded delivery (`/ops/events/{id}`).
    event_id: uuid::Uuid,
    /// The triggers it matched (empty: none, and no job was started).
    triggers: Vec<String>,
    job_ids: Vec<JobId>,
    /// A redelivery: these are the first delivery's jobs; nothing new was stored.
    duplicate: bool,
}

/// The intake's failure body.
#[derive(Serialize, utoipa::ToSchema)]
struct Refused {
    #[schema(pattern = "^failure$")]
    status: &'static str,
    error: String,
}

/// Everything a delivery can fail with.
#[derive(Debug, thiserror::Error)]
enum IntakeError {
    #[error("event intake is off (DOCKET_EVENT_TOKENS is not set)")]
    Off,
    #[error("missing or wrong token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("the message is larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("the database is unreachable; nothing was stored")]
    Unavailable(#[source] std::sync::Arc<sqlx::Error>),
    #[error("the event could not be stored: {0}")]
    Database(#[source] std::sync::Arc<sqlx::Error>),
    #[error("the api is shutting down")]
    Closed,
    #[error("the event could not be stored in time; nothing is lost (Workfront delivers it again)")]
    Timeout,
}

impl IntakeError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Off => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) | Self::Database(_) | Self::Timeout | Self::Closed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let (outcome, body) = match &self {
            Self::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unreachable; event not stored");
                ("unavailable", "Docket could not store the event right now; deliver it again.".to_owned())
            }
            Self::Database(cause) => {
                tracing::error!(error = %cause, "could not store event");
                ("unavailable", "Docket could not store the event right now; deliver it again.".to_owned())
            }
            Self::Timeout => {
                tracing::warn!("event intake timed out");
                ("unavailable", self.to_string())
            }
            Self::Off => ("off", self.to_string()),
            other => {
                tracing::info!(reason = %other, "event refused");
                ("rejected", other.to_string())
            }
        };
        metrics::counter!("docket_workfront_events_total", "trigger" => "", "outcome" => outcome).increment(1);
        let mut response = (self.status(), Json(Refused { status: "failure", error: body })).into_response();
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            crate::error::retry_after(response.headers_mut(), Duration::from_secs(1));
        }
        response
    }
}

/// Receive a Workfront event-subscription delivery (message version 2).
#[utoipa::path(post, path = "/workfront/events", operation_id = "workfrontEvents", tag = "workfront",
    security(("eventToken" = [])),
    params(("traceparent" = Option<String>, Header,
        description = "W3C trace context: the jobs continue a valid one; any other value is ignored (a new trace)")),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "Workfront's message: eventType, subscriptionId, eventTime {epochSecond, nano}, newState, oldState (objects, JSON strings or base64)"),
    responses(
        (status = 200, description = "Stored with its jobs (or a redelivery of a stored event)", body = Accepted),
        (status = 400, description = "Not a Workfront event message", body = Refused),
        (status = 401, description = "Missing or wrong token", body = Refused),
        (status = 404, description = "Event intake is off", body = Refused),
        (status = 413, description = "Larger than 1 MiB", body = Refused),
        (status = 503, description = "Nothing was stored; deliver again", body = Refused)
    ))]
#[tracing::instrument(name = "workfront_event", skip_all, fields(event.obj_code, event.obj_id, event.type, trace_id))]
async fn workfront_events(State(state): State<AppState>, request: Request) -> Result<Json<Accepted>, IntakeError> {
    let budget = state.request_timeout.min(BUDGET);
    // Every job of the delivery continues the intake's span.
    let (trace, caller) = docket::trace::TraceParent::intake(request.headers());
    let mut exported = otlp::Span::start("POST /workfront/events", otlp::Kind::Server, &trace, caller.as_ref());
    exported.set("http.request.method", "POST");
    exported.set("http.route", "/workfront/events");
    let answer = match tokio::time::timeout(budget, intake(state, request, trace)).await {
        Ok(answer) => answer,
        Err(_) => Err(IntakeError::Timeout),
    };
    if let (Ok(accepted), true) = (&answer, exported.is_recording()) {
        exported.set("docket.event.id", accepted.event_id.to_string());
        exported.set("docket.jobs", accepted.job_ids.len() as i64);
    }
    exported.answered(answer.as_ref().map_or_else(|e| e.status().as_u16(), |_| 200));
    answer
}

async fn intake(state: AppState, request: Request, traceparent: TraceParent) -> Result<Json<Accepted>, IntakeError> {
    let tokens = state.event_tokens.as_ref().ok_or(IntakeError::Off)?;
    // The token first: an unauthenticated body is never read.
    if !tokens.accepts(request.headers()) {
        return Err(IntakeError::Unauthorized);
    }
    let body = read_body(request.into_body()).await?;
    let event = Event::from_body(&body).map_err(|e| IntakeError::BadRequest(format!("not a Workfront event: {e}")))?;
    let span = tracing::Span::current();
    span.record("event.obj_code", event.obj_code.as_str());
    span.record("event.obj_id", event.obj_id.as_str());
    span.record("event.type", event.event_type.as_str());
    let mut jobs = Vec::new();
    for trigger in state.catalog.triggers().iter().filter(|t| t.matches(&event)) {
        for action in &trigger.run {
            let budget =
                state.catalog.get(action).map_or(docket::catalog::DEFAULT_MAX_ATTEMPTS, |a| a.retry.max_attempts);
            jobs.push(NewEventJob {
                id: JobId::new(),
                action: action.clone(),
                trigger: trigger.name.clone(),
                max_attempts: budget,
                traceparent: Some(traceparent),
            });
        }
    }
    let document = event.document();
    // Recorded with the deliveries that arrive meanwhile, in one statement and commit
    // (crate::event_writer); the workers are woken there.
    let recorded = state.event_writer.record(Delivery { event, document, jobs }).await.map_err(|e| match e {
        WriteError::Unavailable(e) => IntakeError::Unavailable(e),
        WriteError::Refused(e) => IntakeError::Database(e),
        WriteError::Closed => IntakeError::Closed,
    })?;
    count(&recorded);
    Ok(Json(Accepted {
        status: "success",
        event_id: recorded.event_id,
        triggers: recorded.triggers,
        job_ids: recorded.job_ids,
        duplicate: recorded.duplicate,
    }))
}

/// The body, up to [`MAX_MESSAGE_BYTES`].
async fn read_body(body: Body) -> Result<axum::body::Bytes, IntakeError> {
    axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.map_err(|e| {
        let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            IntakeError::TooLarge
        } else {
            IntakeError::BadRequest(format!("the body could not be read: {e}"))
        }
    })
}

fn count(recorded: &Recorded) {
    let outcome = match (recorded.duplicate, recorded.triggers.is_empty()) {
        (true, _) => "duplicate",
        (false, true) => "unmatched",
        (false, false) => "matched",
    };
    if recorded.triggers.is_empty() {
        metrics::counter!("docket_workfront_events_total", "trigger" => "", "outcome" => outcome).increment(1);
    }
    for trigger in &recorded.triggers {
        metrics::counter!("docket_workfront_events_total", "trigger" => trigger.clone(), "outcome" => outcome)
            .increment(1);
    }
    if recorded.duplicate {
        tracing::info!("redelivered event: answering with the first delivery's jobs");
    } else {
        tracing::info!(jobs = recorded.job_ids.len(), "event stored");
    }
}
