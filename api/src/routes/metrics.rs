//! `GET /metrics` (Prometheus text) and the middleware that counts and times every
//! HTTP request by route template and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::db::{ops, workers};
use docket::domain::CircuitState;

use crate::service::flow::{self, Hold};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(render))
}

/// Records `docket_http_requests_total{route,status}` and
/// `docket_http_request_duration_seconds{route}`. The route is the template
/// (`/ops/jobs/{id}`), never the raw path, so hostile URLs cannot add series.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("docket_http_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("docket_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Refreshes the gauges read from the database, then renders every metric.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "probes", summary = "Prometheus metrics",
    responses((status = 200, description = "text exposition format", content_type = "text/plain", body = String)))]
async fn render(State(state): State<AppState>) -> Response {
    if let Err(e) = refresh_gauges(&state).await {
        tracing::warn!(error = %e, "could not read job figures for /metrics");
        metrics::gauge!("docket_metrics_database_up").set(0.0);
    } else {
        metrics::gauge!("docket_metrics_database_up").set(1.0);
    }
    let body = docket::metrics::handle().render();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

async fn refresh_gauges(state: &AppState) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, crate::state::QUERY_TIMEOUT).await?;
    let counts = ops::state_counts(&mut tx, std::time::Duration::from_secs(3600)).await?;
    let lag = ops::lag_per_action(&mut *tx).await?;
    let live = workers::list_live(&mut *tx).await?;
    tx.commit().await?;
    // Every action of the catalog and every state gets a series, zero included, so
    // that alerts on absent series are not needed.
    for action in state.catalog.names() {
        for job_state in docket::domain::JobState::ALL {
            let n = counts.iter().find(|c| c.action == action && c.state == job_state).map_or(0, |c| c.count);
            metrics::gauge!("docket_jobs", "action" => action.clone(), "state" => job_state.as_str()).set(n as f64);
        }
        let seconds = lag.iter().find(|l| l.action == action).map_or(0.0, |l| l.lag_seconds);
        metrics::gauge!("docket_queue_lag_seconds", "action" => action.clone()).set(seconds);
    }
    metrics::gauge!("docket_workers_live").set(live.len() as f64);
    for flow in flow::load(&state.db, &state.catalog).await? {
        let action = flow.action.clone();
        metrics::gauge!("docket_action_running", "action" => action.clone()).set(flow.running as f64);
        for &hold in Hold::ALL {
            let on = if flow.is_held_by(hold) { 1.0 } else { 0.0 };
            metrics::gauge!("docket_action_paused", "action" => action.clone(), "reason" => hold.as_str()).set(on);
        }
        let circuit = match flow.circuit.as_ref().map(|c| c.state) {
            Some(CircuitState::Open) => 2.0,
            Some(CircuitState::HalfOpen) => 1.0,
            Some(CircuitState::Closed) | None => 0.0,
        };
        metrics::gauge!("docket_action_circuit_state", "action" => action).set(circuit);
    }
    Ok(())
}
