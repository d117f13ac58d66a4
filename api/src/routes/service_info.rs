//! `GET /serviceInfo`: what Docket offers. No authentication, by the spec.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

/// The Workfront document webhook spec version implemented.
pub const WEBHOOK_VERSION: &str = "1.2";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceInfo {
    webhook_version: &'static str,
    version: &'static str,
    publisher: &'static str,
    available_endpoints: [&'static str; 2],
    custom_actions: Vec<CustomAction>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomAction {
    name: String,
    display_name: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/serviceInfo", get(service_info))
}

async fn service_info(State(state): State<AppState>) -> Json<ServiceInfo> {
    Json(ServiceInfo {
        webhook_version: WEBHOOK_VERSION,
        version: docket::VERSION,
        publisher: "Docket",
        available_endpoints: ["serviceInfo", "customAction"],
        custom_actions: state
            .catalog
            .actions()
            .iter()
            .map(|a| CustomAction { name: a.name.clone(), display_name: a.display_name.clone() })
            .collect(),
    })
}
