//! The worker's own small HTTP server: `GET /healthz` (the process answers),
//! `GET /readyz` (the database answers and carries this build's schema) and
//! `GET /metrics` (Prometheus text: attempts by action and outcome, their durations,
//! rescues, running jobs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use docket::db::Db;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn serve(listener: TcpListener, db: Db, stop: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|| async { docket::metrics::handle().render() }))
        .with_state(db);
    let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "health server stopped");
    }
}

async fn readyz(State(db): State<Db>) -> (StatusCode, Json<Value>) {
    match docket::db::readiness(&db).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not ready"})))
        }
    }
}
