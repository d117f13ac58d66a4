//! Everything for operators, under `/ops/`: the JSON API ([`api`]), the dashboard
//! ([`dashboard`]), their credentials ([`auth`]), their dashboard sessions
//! ([`sessions`]) and the job explanations ([`explain`]). Authenticated with admin tokens, never with Workfront's API keys.

pub mod api;
pub mod auth;
mod bulk;
pub mod dashboard;
pub mod error;
pub mod explain;
pub mod flow;
mod flow_page;
mod pages;
pub mod sessions;
pub mod throttle;
mod views;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;
use auth::Actor;
use error::OpsError;

pub use crate::state::QUERY_TIMEOUT;
/// Most jobs in one page of the list.
pub const PAGE_CAP: i64 = 200;

/// The JSON API (documented) and the dashboard's pages (not in the OpenAPI document).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(api::router().layer(axum::middleware::from_fn(browser_to_dashboard)))
        .merge(sessions::router())
        .merge(flow::router())
        .merge(dashboard::router().into())
        .merge(flow_page::router().into())
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

/// An operator authenticated with `Authorization: Bearer <admin token>`.
pub struct Operator(pub Actor);

impl FromRequestParts<AppState> for Operator {
    type Rejection = OpsError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The token first: a valid one always passes, so nobody sharing the address
        // (behind a proxy, say) can lock the operators out. Only a wrong token counts
        // as a guess; a request without one is not a guess.
        let client = client_address(state, &parts.extensions, &parts.headers);
        if let Some(actor) = state.admin.check_bearer(&parts.headers) {
            state.sign_in_throttle.succeeded(client);
            return Ok(Operator(actor));
        }
        if !parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            return Err(OpsError::Unauthorized);
        }
        state.sign_in_throttle.check(client).map_err(OpsError::TooManyFailures)?;
        state.sign_in_throttle.failed(client);
        Err(OpsError::Unauthorized)
    }
}

/// The client a request counts against: the address of its connection (unspecified
/// if unknown), or, when that is a trusted proxy, the right-most address in
/// `X-Forwarded-For` that is not a trusted proxy (addresses to its left could be
/// anything the client wrote).
pub fn client_address(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> std::net::IpAddr {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let trusted = |ip: &std::net::IpAddr| state.trusted_proxies.contains(ip);
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer)
}

/// The attempt budget a retried job gets: its action's `max_attempts`.
pub fn retry_budget(state: &AppState, action: &str) -> i32 {
    state.catalog.get(action).map(|a| a.retry.max_attempts).unwrap_or(docket::catalog::DEFAULT_MAX_ATTEMPTS) as i32
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
