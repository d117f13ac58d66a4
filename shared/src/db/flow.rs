//! Every statement of flow control: limit groups and their claim, what the ends of
//! attempts tell about a target (back-pressure, circuits, the adaptive rate), and the
//! operators' pause, resume and circuit close. The mechanism is told in the
//! flow-control migration.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use crate::catalog::{Catalog, LimitGroup};
use crate::db::jobs::ClaimedJob;
use crate::domain::{CircuitState, JobId};

/// Writes the limit groups of a catalog (a worker does so when it starts). A new
/// group starts with a full bucket; a changed rate takes effect at once (a lowered
/// effective rate stays lowered, never above the new rate). A changed group forgets
/// its running bound, so that its next claim counts its running jobs.
pub async fn configure(executor: impl PgExecutor<'_>, groups: &[LimitGroup]) -> Result<(), sqlx::Error> {
    if groups.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    // Postgres has no ragged arrays: a group's actions travel as one text, split there.
    let actions: Vec<String> = groups.iter().map(|g| g.actions.join("\n")).collect();
    let max_running: Vec<Option<i32>> = groups.iter().map(|g| g.max_concurrency.map(|n| n as i32)).collect();
    let rates: Vec<Option<f64>> = groups.iter().map(|g| g.rate.as_ref().map(|r| r.per_second)).collect();
    let bursts: Vec<Option<f64>> = groups.iter().map(|g| g.rate.as_ref().map(|r| f64::from(r.burst))).collect();
    sqlx::query!(
        r#"insert into limit_groups as l (name, actions, max_running, rate, burst, effective_rate, tokens)
           select t.name, string_to_array(t.actions, E'\n'), t.max_running, t.rate, t.burst, t.rate,
                  coalesce(t.burst, 0)
           from unnest($1::text[], $2::text[], $3::int4[], $4::float8[], $5::float8[])
               as t(name, actions, max_running, rate, burst)
           on conflict (name) do update
           set actions = excluded.actions, max_running = excluded.max_running, rate = excluded.rate,
               burst = excluded.burst,
               effective_rate = least(coalesce(l.effective_rate, excluded.rate), excluded.rate),
               tokens = least(l.tokens, coalesce(excluded.burst, 0)),
               running_bound = null, updated_at = now()
           where (l.actions, l.max_running, l.rate, l.burst)
                 is distinct from (excluded.actions, excluded.max_running, excluded.rate, excluded.burst)"#,
        &names as &[&str],
        &actions,
        &max_running as &[Option<i32>],
        &rates as &[Option<f64>],
        &bursts as &[Option<f64>],
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// What held back due jobs of a group in a claim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Held {
    /// The group runs as many jobs as it may.
    Concurrency,
    /// The bucket is empty; the next token comes after this.
    Rate(Duration),
}

impl Held {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Rate(_) => "rate",
        }
    }
}

/// What one claim of a group gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupClaim {
    pub jobs: Vec<ClaimedJob>,
    /// Set when due jobs were held back by a limit.
    pub held: Option<Held>,
    /// How long after the claim its jobs may still start: what the group's rate
    /// granted of the `start_within` asked for (zero without a rate).
    pub start_within: Duration,
}

/// Claims up to `want` jobs of a limit group, as its limits, pauses and circuits
/// allow (`docket_claim_group`). `start_within`: how long after the claim the worker
/// may start a job (zero: at once); a group with a rate keeps back its share of that
/// from the bucket's burst.
pub async fn claim_group(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    group: &str,
    want: i32,
    lease: Duration,
    start_within: Duration,
) -> Result<GroupClaim, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select (job).id as "id?: JobId", (job).action as "action?", (job).document_id as "document_id?",
                  (job).document_version_id as "document_version_id?", (job).requested_by as "requested_by?",
                  (job).attempts as "attempts?", (job).max_attempts as "max_attempts?",
                  (job).parent_id as "parent_id?: JobId", (job).snoozes as "snoozes?",
                  (job).traceparent as "traceparent?",
                  held_by as "held_by?", wait_seconds as "wait_seconds?", start_within as "start_within?"
           from docket_claim_group($1, $2, $3, $4, $5)"#,
        worker_id,
        group,
        want,
        lease.as_secs_f64(),
        start_within.as_secs_f64(),
    )
    .fetch_all(executor)
    .await?;
    let mut claim = GroupClaim::default();
    for r in rows {
        if let Some(granted) = r.start_within {
            claim.start_within = Duration::from_secs_f64(granted.clamp(0.0, start_within.as_secs_f64()));
        }
        match (r.id, r.held_by.as_deref()) {
            (Some(id), _) => claim.jobs.push(ClaimedJob {
                id,
                action: r.action.unwrap_or_default(),
                document_id: r.document_id.unwrap_or_default(),
                document_version_id: r.document_version_id.unwrap_or_default(),
                requested_by: r.requested_by,
                attempt: r.attempts.unwrap_or_default(),
                max_attempts: r.max_attempts.unwrap_or_default(),
                parent_id: r.parent_id,
                snoozes: r.snoozes.unwrap_or_default(),
                traceparent: r.traceparent.as_deref().and_then(crate::trace::TraceParent::parse),
            }),
            (None, Some("concurrency")) => claim.held = Some(Held::Concurrency),
            (None, Some(_)) => {
                let wait = r.wait_seconds.unwrap_or(0.0).clamp(0.0, 3600.0);
                claim.held = Some(Held::Rate(Duration::from_secs_f64(wait)));
            }
            (None, None) => {}
        }
    }
    Ok(claim)
}

/// What an attempt's end tells about its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Done well.
    Succeeded,
    /// A permanent error: the target is up and answered.
    Answered,
    /// A retryable error or a timeout.
    Failed,
    /// Back-pressure; the target asked to wait this long.
    Throttled(Duration),
}

impl Verdict {
    fn kind(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Answered => "answered",
            Self::Failed => "failed",
            Self::Throttled(_) => "throttled",
        }
    }
}

/// The flow-control settings of a catalog, as the feedback statement takes them.
#[derive(Debug, Clone, Default)]
pub struct FlowRules {
    /// Each controlled action's limit group.
    group_of: HashMap<String, String>,
    /// The actions whose group has a rate (successes raise a lowered one).
    rated: HashSet<String>,
    circuit_actions: Vec<String>,
    circuit_failures: Vec<i32>,
    cool_down: Vec<f64>,
    cool_down_max: Vec<f64>,
}

impl FlowRules {
    pub fn from_catalog(catalog: &Catalog) -> Self {
        let mut rules = Self::default();
        for group in catalog.limit_groups() {
            for action in &group.actions {
                rules.group_of.insert(action.clone(), group.name.clone());
                if group.rate.is_some() {
                    rules.rated.insert(action.clone());
                }
            }
        }
        for action in catalog.actions() {
            if let Some(circuit) = &action.flow.circuit {
                rules.circuit_actions.push(action.name.clone());
                rules.circuit_failures.push(circuit.failures as i32);
                rules.cool_down.push(circuit.cool_down.as_secs_f64());
                rules.cool_down_max.push(circuit.cool_down_max.as_secs_f64());
            }
        }
        rules
    }

    /// The action's limit group, if it has one.
    pub fn group(&self, action: &str) -> Option<&str> {
        self.group_of.get(action).map(String::as_str)
    }

    /// Whether the action has a circuit breaker.
    pub fn has_circuit(&self, action: &str) -> bool {
        self.circuit_actions.iter().any(|a| a == action)
    }

    /// Whether an attempt's end must be reported: the target pushed back, the action
    /// has a circuit, or it succeeded in a group with a rate. (The other ends change
    /// nothing that [`feedback`] keeps; reporting them only took the group's lock.)
    pub fn wants(&self, action: &str, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Throttled(_) => true,
            _ if self.has_circuit(action) => true,
            Verdict::Succeeded => self.rated.contains(action),
            Verdict::Answered | Verdict::Failed => false,
        }
    }
}

/// Records what the ends of attempts (action, job, verdict; in the order they ended)
/// tell about their targets: back-pressure pauses the action and its group and halves
/// the group's rate; successes raise a lowered rate; failures and probes move
/// circuits. Run in the transaction that records the attempts.
pub async fn feedback(
    executor: impl PgExecutor<'_>,
    rules: &FlowRules,
    ended: &[(String, JobId, Verdict)],
) -> Result<(), sqlx::Error> {
    if ended.is_empty() {
        return Ok(());
    }
    let actions: Vec<&str> = ended.iter().map(|(a, _, _)| a.as_str()).collect();
    let groups: Vec<Option<&str>> = ended.iter().map(|(a, _, _)| rules.group_of.get(a).map(String::as_str)).collect();
    let ids: Vec<uuid::Uuid> = ended.iter().map(|(_, id, _)| id.0).collect();
    let kinds: Vec<&str> = ended.iter().map(|(_, _, v)| v.kind()).collect();
    let waits: Vec<Option<f64>> = ended
        .iter()
        .map(|(_, _, v)| match v {
            Verdict::Throttled(wait) => Some(wait.as_secs_f64()),
            _ => None,
        })
        .collect();
    sqlx::query!(
        "select docket_flow_feedback($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &actions as &[&str],
        &groups as &[Option<&str>],
        &ids,
        &kinds as &[&str],
        &waits as &[Option<f64>],
        &rules.circuit_actions,
        &rules.circuit_failures,
        &rules.cool_down,
        &rules.cool_down_max,
    )
    .fetch_one(executor)
    .await?;
    Ok(())
}

/// An action's pause and circuit, as stored (actions never paused and never
/// tripped have no row), read at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ActionControl {
    pub action: String,
    /// An operator's pause holds.
    pub paused: bool,
    /// When it ends by itself (`None` while paused: until resumed).
    pub paused_until: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub pause_note: Option<String>,
    /// The target asked to wait until then (and that time has not passed).
    pub backoff_until: Option<DateTime<Utc>>,
    pub circuit: CircuitState,
    /// Consecutive retryable failures.
    pub failures: i32,
    /// While open: when the next probe may start.
    pub circuit_until: Option<DateTime<Utc>>,
    pub probe_job: Option<JobId>,
}

/// Every stored action control. (A pause until resumed is stored as infinity, which
/// chrono cannot hold: it is read as `paused` with no end.)
pub async fn controls(executor: impl PgExecutor<'_>) -> Result<Vec<ActionControl>, sqlx::Error> {
    sqlx::query_as!(
        ActionControl,
        r#"select action,
                  coalesce(paused_until > now(), false) as "paused!",
                  case when paused_until > now() and paused_until <> 'infinity' then paused_until end as "paused_until",
                  case when paused_until > now() then paused_by end as "paused_by",
                  case when paused_until > now() then paused_at end as "paused_at",
                  case when paused_until > now() then pause_note end as "pause_note",
                  case when backoff_until > now() then backoff_until end as "backoff_until",
                  circuit as "circuit: CircuitState", failures, circuit_until, probe_job as "probe_job: JobId"
           from action_controls order by action"#
    )
    .fetch_all(executor)
    .await
}

/// Running jobs per action (read through the index of running rows).
pub async fn running_per_action(executor: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select action, count(*) as "running!" from jobs where state = 'running' group by action order by action"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| (r.action, r.running)).collect())
}

/// What a limit group's row holds that the catalog does not: the rate in force and
/// the group's running jobs. (Its limits are the catalog's.)
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupState {
    pub name: String,
    /// The rate in force (AIMD), if the group has a rate.
    pub effective_rate: Option<f64>,
    pub running: i64,
}

/// Every limit group with its running jobs (read through the index of running rows).
pub async fn groups(executor: impl PgExecutor<'_>) -> Result<Vec<GroupState>, sqlx::Error> {
    sqlx::query_as!(
        GroupState,
        r#"select l.name, l.effective_rate,
                  (select count(*) from jobs j where j.state = 'running' and j.action = any (l.actions)) as "running!"
           from limit_groups l order by l.name"#
    )
    .fetch_all(executor)
    .await
}

/// Pauses an action (until `until`, or until resumed). Replaces an earlier pause.
pub async fn pause(
    executor: impl PgExecutor<'_>,
    action: &str,
    until: Option<DateTime<Utc>>,
    by: &str,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into action_controls (action, paused_until, paused_by, paused_at, pause_note)
         values ($1, coalesce($2::timestamptz, 'infinity'::timestamptz), $3, now(), $4)
         on conflict (action) do update
         set paused_until = excluded.paused_until, paused_by = excluded.paused_by, paused_at = excluded.paused_at,
             pause_note = excluded.pause_note, updated_at = now()",
        action,
        until,
        by,
        note,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Ends an operator's pause; returns whether one held.
pub async fn resume(executor: impl PgExecutor<'_>, action: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update action_controls
         set paused_until = null, paused_by = null, paused_at = null, pause_note = null, updated_at = now()
         where action = $1 and paused_until > now()",
        action,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Closes an action's circuit by hand (and forgets its failures and back-pressure
/// pause); returns whether it was open or half-open.
pub async fn close_circuit(executor: impl PgExecutor<'_>, action: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update action_controls
         set circuit = 'closed', failures = 0, circuit_until = null, cool_down_seconds = null, probe_job = null,
             backoff_until = null, updated_at = now()
         where action = $1 and (circuit <> 'closed' or backoff_until > now())",
        action,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{FlowRules, Verdict};
    use crate::catalog::Catalog;

    #[test]
    fn only_the_ends_that_feedback_records_are_reported() {
        let catalog = Catalog::parse(
            r#"
            [[action]]
            name = "bounded"
            kind = "noop"
            max_concurrency = 4
            [[action]]
            name = "paced"
            kind = "noop"
            rate = "5/1s"
            [[action]]
            name = "guarded"
            kind = "noop"
            circuit = { failures = 3 }
            [[action]]
            name = "plain"
            kind = "noop"
            "#,
            Path::new("actions.toml"),
        )
        .unwrap();
        let rules = FlowRules::from_catalog(&catalog);
        let throttled = Verdict::Throttled(Duration::from_secs(1));
        for action in ["bounded", "paced", "guarded", "plain"] {
            assert!(rules.wants(action, throttled), "{action}: back-pressure always counts");
        }
        for verdict in [Verdict::Succeeded, Verdict::Answered, Verdict::Failed] {
            assert!(rules.wants("guarded", verdict), "a circuit hears every end: {verdict:?}");
            assert!(!rules.wants("bounded", verdict), "max_concurrency alone keeps nothing: {verdict:?}");
            assert!(!rules.wants("plain", verdict));
        }
        assert!(rules.wants("paced", Verdict::Succeeded), "a success may raise a lowered rate");
        assert!(!rules.wants("paced", Verdict::Failed));
    }
}
