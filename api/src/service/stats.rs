//! The figures: counts per state, lag, throughput, live workers, every action's flow
//! control, Workfront events per minute; for `/ops/stats`, the dashboard's overview
//! and an action's page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use docket::db::{ops, samples, workers};

use super::{flow, OpsError};
use crate::state::{AppState, QUERY_TIMEOUT};

/// The figures of `/ops/stats` and the dashboard's overview.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub counts: Vec<ops::StateCount>,
    pub lag: Vec<ops::Lag>,
    pub throughput: Vec<ops::Minute>,
    pub workers: Vec<workers::WorkerRow>,
    /// Every action's limits, usage, pause and circuit.
    pub actions: Vec<flow::ActionFlow>,
    /// Workfront event deliveries received per minute, the last hour.
    pub events: Vec<docket::db::events::EventMinute>,
}

pub async fn load_stats(state: &AppState) -> Result<Stats, OpsError> {
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let counts = ops::state_counts(&mut tx, std::time::Duration::from_secs(3600)).await?;
    let lag = ops::lag_per_action(&mut *tx).await?;
    let throughput = ops::throughput_last_hour(&mut *tx).await?;
    let workers = workers::list_live(&mut *tx).await?;
    let events = docket::db::events::per_minute_last_hour(&mut *tx).await?;
    tx.commit().await?;
    let actions = flow::load(&state.db, &state.catalog).await?;
    Ok(Stats { counts, lag, throughput, workers, actions, events })
}

/// What the dashboard's overview shows.
pub struct Overview {
    pub stats: Stats,
    /// The last 24 hours of `queue_samples`.
    pub samples: Vec<samples::Sample>,
    pub now: DateTime<Utc>,
    /// The catalog's triggers.
    pub trigger_names: Vec<String>,
}

/// The figures and the last 24 hours of samples.
pub async fn overview(state: &AppState) -> Result<Overview, OpsError> {
    let stats = load_stats(state).await?;
    let now = Utc::now();
    let samples = state.db.run(async |c| samples::since(c, now - chrono::Duration::hours(24)).await).await?;
    let trigger_names: Vec<String> = state.catalog.triggers().iter().map(|t| t.name.clone()).collect();
    Ok(Overview { stats, samples, now, trigger_names })
}

/// What an action's page shows beside its catalog entry.
pub struct ActionFigures {
    /// Its flow control (`None` only if the catalog changed meanwhile).
    pub flow: Option<flow::ActionFlow>,
    /// Failures of the last 24 hours, grouped by error (the 20 largest groups).
    pub failures: Vec<ops::FailureGroup>,
    /// The last hour of its `queue_samples`.
    pub samples: Vec<samples::Sample>,
    pub now: DateTime<Utc>,
}

/// The figures of one action of the catalog.
pub async fn action_figures(state: &AppState, action: &str) -> Result<ActionFigures, OpsError> {
    if state.catalog.get(action).is_none() {
        return Err(OpsError::UnknownAction(action.chars().take(64).collect()));
    }
    let now = Utc::now();
    let flows = flow::load(&state.db, &state.catalog).await?;
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let failures = ops::failures_by_error(&mut *tx, action, now - chrono::Duration::hours(24), 20).await?;
    let mut samples = samples::since(&mut *tx, now - chrono::Duration::hours(1)).await?;
    tx.commit().await?;
    samples.retain(|s| s.action == action);
    Ok(ActionFigures { flow: flows.into_iter().find(|f| f.action == action), failures, samples, now })
}
