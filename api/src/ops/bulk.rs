//! Bulk actions from the jobs list: the selected jobs, or every job matching the
//! filters (at most [`BULK_CAP`]), retried or cancelled. Two steps: the first
//! POST shows how many jobs it would touch; the confirmation (the same form with the
//! exact ids) does it, through one audited transaction, and says what happened.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use docket::domain::JobId;

use super::list_query::ListQuery;
use super::session::{CsrfForm, Session};
use super::ui::{csrf_refused, error_page, form_limit, page};
use super::views::jobs::{confirm, done, Plan};
use crate::service::jobs::{self, BulkOp, BULK_CAP};
use crate::service::OpsError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/ops/ui/jobs/bulk", post(bulk)).layer(form_limit(BODY_BYTES))
}

/// Largest form: a thousand ids and the filters.
const BODY_BYTES: usize = 64 * 1024;

/// The filters of an "all matching" form, read like the list reads its query.
fn filters(pairs: &[(String, String)]) -> Result<ListQuery, OpsError> {
    let fields: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "csrf" | "op" | "all" | "confirmed" | "id"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let uri: axum::http::Uri =
        format!("/ops/ui/jobs?{encoded}").parse().map_err(|_| OpsError::BadRequest("bad filter".into()))?;
    axum::extract::Query::<ListQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| OpsError::BadRequest(format!("bad filter: {}", e.body_text())))
}

/// The session is checked from the headers (the `Session` extractor) before the body
/// is read; the body is bounded by the router's limit.
async fn bulk(s: Session, State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let form = CsrfForm { csrf: field(&pairs, "csrf").unwrap_or_default().to_owned() };
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    match run(&state, &s, &pairs).await {
        Ok(response) => response,
        Err(e) => error_page(&s, &headers, e),
    }
}

/// The first value of a form field.
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn run(state: &AppState, s: &Session, pairs: &[(String, String)]) -> Result<Response, OpsError> {
    let field = |name: &str| field(pairs, name);
    let Some(op) = field("op").and_then(BulkOp::parse) else {
        return Err(OpsError::BadRequest("choose retry or cancel".into()));
    };
    let ids: Vec<JobId> =
        pairs.iter().filter(|(k, _)| k == "id").map(|(_, v)| jobs::parse_id(v)).collect::<Result<_, _>>()?;
    if ids.len() as i64 > BULK_CAP {
        return Err(OpsError::BadRequest(format!("at most {} jobs at once", BULK_CAP)));
    }
    if field("confirmed") == Some("1") {
        let sentence = match op {
            BulkOp::Retry => {
                let retried = jobs::retry_jobs(state, &s.actor.0, &ids).await?;
                format!(
                    "Retried {retried} of {} jobs; {} were no longer failed or cancelled.",
                    ids.len(),
                    ids.len() - retried
                )
            }
            BulkOp::Cancel => {
                let c = jobs::cancel_jobs(state, &s.actor.0, &ids).await?;
                format!(
                    "Cancelled {} of {} jobs and asked the workers of {} running ones to stop them; {} had already ended.",
                    c.now,
                    ids.len(),
                    c.requested,
                    ids.len() - c.now - c.requested
                )
            }
        };
        return Ok(page("Jobs", Some(s), done(&sentence)));
    }
    let body = if field("all") == Some("1") {
        let query = filters(pairs)?;
        let (matching, more) = jobs::matching_ids(state, &query.filter()?, BULK_CAP).await?;
        confirm(s, &Plan { op, ids: &matching, more })
    } else {
        confirm(s, &Plan { op, ids: &ids, more: false })
    };
    Ok(page("Confirm", Some(s), body))
}
