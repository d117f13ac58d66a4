//! `GET /serviceInfo`: what Docket offers. No authentication, by the spec.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The Workfront document webhook spec version implemented.
pub const WEBHOOK_VERSION: &str = "1.2";

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ServiceInfo {
    webhook_version: &'static str,
    version: &'static str,
    publisher: &'static str,
    available_endpoints: [&'static str; 2],
    custom_actions: Vec<CustomAction>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CustomAction {
    name: String,
    display_name: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(service_info))
}

/// What Docket offers (no authentication).
#[utoipa::path(get, path = "/serviceInfo", operation_id = "serviceInfo", tag = "workfront",
    responses((status = 200, description = "What Docket offers", body = ServiceInfo)))]
async fn service_info(State(state): State<AppState>) -> Json<ServiceInfo> {
    Json(ServiceInfo {
        webhook_version: WEBHOOK_VERSION,
        version: docket::VERSION,
        publisher: "Docket",
        available_endpoints: ["serviceInfo", "customAction"],
        custom_actions: state
            .catalog
            .menu()
            .map(|a| CustomAction { name: a.name.clone(), display_name: a.display_name.clone() })
            .collect(),
    })
}
