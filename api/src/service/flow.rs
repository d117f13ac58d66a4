//! Flow control as operators see and steer it: every action's limits, usage, pause
//! and circuit (read for `GET /ops/actions`, `/ops/stats`, the dashboard and
//! `/metrics`), and the audited changes: pause, resume, close a circuit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use docket::catalog::Catalog;
use docket::db::flow::{self, ActionControl, GroupState};
use docket::db::{jobs, ops, Db};
use docket::domain::{AuditAction, CircuitState};

use super::OpsError;
use crate::state::AppState;

/// One action's flow control, as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionFlow {
    pub action: String,
    /// The limit group the action's limits belong to (its own name when alone).
    pub limit_group: Option<String>,
    pub max_concurrency: Option<u32>,
    /// As written in the catalog ("5/1s").
    pub rate: Option<String>,
    pub burst: Option<u32>,
    /// The rate now in force (lowered after back-pressure, raised on successes).
    pub effective_rate_per_second: Option<f64>,
    /// Jobs of the action running now, on every worker.
    pub running: i64,
    /// Jobs of the whole limit group running now.
    pub group_running: Option<i64>,
    pub paused: Option<Pause>,
    /// The target asked to wait until then (429 / 503 with Retry-After).
    pub backoff_until: Option<DateTime<Utc>>,
    pub circuit: Option<CircuitView>,
}

/// Who paused an action, when, why, and until when.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    /// `None`: until resumed.
    pub until: Option<DateTime<Utc>>,
    pub by: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// An action's circuit breaker.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitView {
    pub state: CircuitState,
    pub consecutive_failures: i32,
    /// Failures that open it.
    pub threshold: u32,
    /// While open: when the next probe may start.
    pub next_probe_at: Option<DateTime<Utc>>,
}

/// What can hold an action as a whole (the `reason` of `docket_action_paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// An operator's pause.
    Operator,
    /// The target asked to wait (429 / 503 with Retry-After).
    RetryAfter,
    /// The circuit is open or half-open.
    Circuit,
}

impl Hold {
    pub const ALL: &[Self] = &[Self::Operator, Self::RetryAfter, Self::Circuit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::RetryAfter => "retry_after",
            Self::Circuit => "circuit",
        }
    }
}

impl ActionFlow {
    /// Whether `hold` holds the action now.
    pub fn is_held_by(&self, hold: Hold) -> bool {
        match hold {
            Hold::Operator => self.paused.is_some(),
            Hold::RetryAfter => self.backoff_until.is_some(),
            Hold::Circuit => self.circuit.as_ref().is_some_and(|c| c.state != CircuitState::Closed),
        }
    }

    /// Why the action starts nothing now, if something holds it as a whole.
    pub fn holding(&self) -> Option<String> {
        if let Some(p) = &self.paused {
            let until = p.until.map_or("until resumed".to_owned(), |u| format!("until {}", u.format("%H:%M:%S UTC")));
            let by = p.by.as_deref().unwrap_or("an operator");
            let at = p.at.map(|a| format!(" at {}", a.format("%H:%M:%S UTC"))).unwrap_or_default();
            let note = p.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            return Some(format!("action '{}' is paused by {by}{at} {until}{note}", self.action));
        }
        if let Some(until) = self.backoff_until {
            return Some(format!(
                "the target pushed back (HTTP 429 / Retry-After): action '{}' waits until {}",
                self.action,
                until.format("%H:%M:%S UTC")
            ));
        }
        match &self.circuit {
            Some(c) if c.state == CircuitState::Open => Some(format!(
                "the circuit of action '{}' is open after {} consecutive failures; next probe at {}",
                self.action,
                c.consecutive_failures,
                c.next_probe_at.map(|t| t.format("%H:%M:%S UTC").to_string()).unwrap_or_else(|| "?".into())
            )),
            Some(c) if c.state == CircuitState::HalfOpen => {
                Some(format!("the circuit of action '{}' is half-open: one probe job decides", self.action))
            }
            _ => None,
        }
    }

    /// Whether the group's concurrency limit is reached.
    pub fn is_full(&self) -> bool {
        matches!((self.max_concurrency, self.group_running), (Some(max), Some(running)) if running >= i64::from(max))
    }
}

/// Every action of the catalog with its flow control, from one read.
pub async fn load(db: &Db, catalog: &Catalog) -> Result<Vec<ActionFlow>, sqlx::Error> {
    let (controls, groups, running) = db
        .run(async |c| {
            let controls = flow::controls(&mut *c).await?;
            let groups = flow::groups(&mut *c).await?;
            let running = flow::running_per_action(&mut *c).await?;
            Ok((controls, groups, running))
        })
        .await?;
    Ok(assemble(catalog, &controls, &groups, &running))
}

fn assemble(
    catalog: &Catalog,
    controls: &[ActionControl],
    groups: &[GroupState],
    running: &[(String, i64)],
) -> Vec<ActionFlow> {
    let running: HashMap<&str, i64> = running.iter().map(|(a, n)| (a.as_str(), *n)).collect();
    catalog
        .actions()
        .iter()
        .map(|action| {
            let group = catalog.limit_group_of(&action.name);
            let stored = group.and_then(|g| groups.iter().find(|s| s.name == g.name));
            let control = controls.iter().find(|c| c.action == action.name);
            ActionFlow {
                action: action.name.clone(),
                limit_group: group.map(|g| g.name.clone()),
                max_concurrency: group.and_then(|g| g.max_concurrency),
                rate: group.and_then(|g| g.rate.as_ref().map(|r| r.text.clone())),
                burst: group.and_then(|g| g.rate.as_ref().map(|r| r.burst)),
                // Before any worker wrote the group, its configured rate is in force.
                effective_rate_per_second: stored
                    .and_then(|s| s.effective_rate)
                    .or_else(|| group.and_then(|g| g.rate.as_ref().map(|r| r.per_second))),
                running: running.get(action.name.as_str()).copied().unwrap_or(0),
                group_running: group.map(|g| {
                    stored.map(|s| s.running).unwrap_or_else(|| {
                        g.actions.iter().map(|a| running.get(a.as_str()).copied().unwrap_or(0)).sum()
                    })
                }),
                paused: control.filter(|c| c.paused).map(|c| Pause {
                    until: c.paused_until,
                    by: c.paused_by.clone(),
                    at: c.paused_at,
                    note: c.pause_note.clone(),
                }),
                backoff_until: control.and_then(|c| c.backoff_until),
                circuit: action.flow.circuit.as_ref().map(|configured| CircuitView {
                    state: control.map_or(CircuitState::Closed, |c| c.circuit),
                    consecutive_failures: control.map_or(0, |c| c.failures),
                    threshold: configured.failures,
                    next_probe_at: control.filter(|c| c.circuit == CircuitState::Open).and_then(|c| c.circuit_until),
                }),
            }
        })
        .collect()
}

/// `POST /ops/actions/{action}/pause`: an optional JSON body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseRequest {
    /// The pause ends by itself then (RFC 3339); without it, it lasts until resumed.
    pub until: Option<DateTime<Utc>>,
    /// Why, for the other operators (shown with the pause).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"
    )]
    pub note: Option<String>,
}

/// Largest pause request body.
const PAUSE_BODY_BYTES: usize = 4096;
/// Longest note on a pause.
const NOTE_CHARS: usize = 500;

impl PauseRequest {
    /// Reads and checks a pause request: an empty body pauses until resumed.
    pub fn parse(body: &[u8], now: DateTime<Utc>) -> Result<Self, OpsError> {
        if body.len() > PAUSE_BODY_BYTES {
            return Err(OpsError::BadRequest(format!("the body is larger than {PAUSE_BODY_BYTES} bytes")));
        }
        let request: Self = if body.iter().all(u8::is_ascii_whitespace) {
            Self::default()
        } else {
            let not_a_request = |e: String| OpsError::BadRequest(format!("the body is not a pause request: {e}"));
            // An object only: serde would also read a struct from an array of its fields.
            match serde_json::from_slice::<Value>(body).map_err(|e| not_a_request(e.to_string()))? {
                object @ Value::Object(_) => {
                    serde_json::from_value(object).map_err(|e| not_a_request(e.to_string()))?
                }
                _ => return Err(not_a_request("expected a JSON object".into())),
            }
        };
        if request.until.is_some_and(|until| until <= now) {
            // Well formed, but the moment has passed: a conflict with the present.
            return Err(OpsError::Conflict("`until` has already passed; leave it out to pause until resumed".into()));
        }
        if let Some(note) = &request.note {
            docket::domain::check_text(note, NOTE_CHARS).map_err(|e| OpsError::BadRequest(format!("`note` {e}")))?;
        }
        Ok(request)
    }
}

fn known_action<'a>(state: &AppState, action: &'a str) -> Result<&'a str, OpsError> {
    match state.catalog.get(action) {
        Some(_) => Ok(action),
        None => Err(OpsError::UnknownAction(action.chars().take(64).collect())),
    }
}

/// Pauses an action; records who did it.
pub async fn pause_action(state: &AppState, actor: &str, action: &str, request: &PauseRequest) -> Result<(), OpsError> {
    let action = known_action(state, action)?;
    let mut detail = format!("action={action}");
    if let Some(until) = request.until {
        detail.push_str(&format!(" until={}", until.to_rfc3339()));
    }
    if let Some(note) = &request.note {
        detail.push_str(&format!(" note={note}"));
    }
    let mut tx = state.db.begin().await?;
    flow::pause(&mut *tx, action, request.until, actor, request.note.as_deref()).await?;
    ops::audit_record(&mut *tx, actor, AuditAction::Pause, &[], Some(&detail)).await?;
    tx.commit().await?;
    tracing::info!(job.action = %action, actor, until = ?request.until, "operator paused action");
    Ok(())
}

/// Resumes a paused action; records who did it. Workers are woken at once.
pub async fn resume_action(state: &AppState, actor: &str, action: &str) -> Result<(), OpsError> {
    let action = known_action(state, action)?;
    let mut tx = state.db.begin().await?;
    if !flow::resume(&mut *tx, action).await? {
        return Err(OpsError::Conflict(format!("action '{action}' is not paused")));
    }
    ops::audit_record(&mut *tx, actor, AuditAction::Resume, &[], Some(&format!("action={action}"))).await?;
    jobs::notify(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(job.action = %action, actor, "operator resumed action");
    Ok(())
}

/// Closes an action's circuit (and ends a back-pressure wait); records who did it.
pub async fn close_action_circuit(state: &AppState, actor: &str, action: &str) -> Result<(), OpsError> {
    let action = known_action(state, action)?;
    let mut tx = state.db.begin().await?;
    if !flow::close_circuit(&mut *tx, action).await? {
        return Err(OpsError::Conflict(format!(
            "the circuit of action '{action}' is closed and its target asked for no wait"
        )));
    }
    ops::audit_record(&mut *tx, actor, AuditAction::CloseCircuit, &[], Some(&format!("action={action}"))).await?;
    jobs::notify(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(job.action = %action, actor, "operator closed circuit");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn error(body: &str) -> String {
        PauseRequest::parse(body.as_bytes(), now()).unwrap_err().to_string()
    }

    #[test]
    fn pause_requests_are_checked() {
        assert!(PauseRequest::parse(b"", now()).unwrap().until.is_none());
        assert!(PauseRequest::parse(b"  \n", now()).unwrap().until.is_none());
        let until = PauseRequest::parse(br#"{"until":"2026-12-01T13:00:00Z","note":"DAM upgrade"}"#, now()).unwrap();
        assert_eq!(until.until, Some("2026-12-01T13:00:00Z".parse().unwrap()));
        assert!(error(r#"{"until":"2026-12-01T11:00:00Z"}"#).contains("already passed"));
        assert!(PauseRequest::parse(br#"{"until":"2036-12-01T11:00:00Z"}"#, now()).is_ok());
        assert!(error("[null, null]").contains("expected a JSON object"));
        assert!(error("null").contains("expected a JSON object"));
        assert!(error("\"x\"").contains("expected a JSON object"));
        assert!(error(r#"{"until":"tomorrow"}"#).contains("not a pause request"));
        assert!(error(r#"{"until":"2026-12-01T13:00:00Z","force":true}"#).contains("unknown field"));
        assert!(error("[1,2]").contains("not a pause request"));
        assert!(error(&format!(r#"{{"note":"{}"}}"#, "x".repeat(501))).contains("longer than 500"));
        assert!(error("{\"note\":\"a\\u0000b\"}").contains("control"));
        assert!(error(&" ".repeat(5000)).contains("larger than 4096"));
    }
}
