//! Everything for operators under `/ops/`, as HTTP: the JSON API ([`api`], [`flow`],
//! [`sessions`]) and the dashboard ([`dashboard`] and the pages it merges), two thin
//! adapters over the operations in [`crate::service`]. Authenticated with admin tokens
//! ([`operator`]) or a dashboard session ([`session`]), never with Workfront's API keys.

pub mod api;
mod bulk;
pub mod dashboard;
pub mod error;
pub mod flow;
mod flow_page;
pub mod list_query;
pub mod operator;
mod pages;
pub mod session;
pub mod sessions;
mod ui;
mod views;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The JSON API (documented) and the dashboard's pages (not in the OpenAPI document).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(api::router().layer(axum::middleware::from_fn(browser_to_dashboard)))
        .merge(sessions::router())
        .merge(flow::router())
        .merge(dashboard::router().into())
        .layer(axum::middleware::map_response(security_headers))
}

/// What every `/ops` reply carries: scripts, styles, forms and fetches only from the
/// api itself, no framing, no sniffing, no referrer, no caching (pages show jobs and
/// operators' names). The dashboard has no inline script or style.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::header::{self, HeaderValue};
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A browser that opens `/ops/jobs` or `/ops/jobs/{id}` (a GET that accepts HTML and
/// carries no admin token) is sent to the dashboard's page for it, with the same
/// filters, instead of a JSON 401.
async fn browser_to_dashboard(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue, Method, StatusCode};
    use axum::response::IntoResponse;
    let headers = request.headers();
    let wants_html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if request.method() == Method::GET && wants_html && !headers.contains_key(header::AUTHORIZATION) {
        let uri = request.uri();
        if let Some(rest) = uri.path().strip_prefix("/ops/jobs") {
            let one_job = rest.strip_prefix('/').is_some_and(|id| !id.is_empty() && !id.contains('/'));
            if rest.is_empty() || one_job {
                let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                if let Ok(location) = HeaderValue::try_from(format!("/ops/ui/jobs{rest}{query}")) {
                    return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
                }
            }
        }
    }
    next.run(request).await
}
