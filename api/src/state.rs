//! What every handler may use: the application's shared state, built once by
//! `startup` and cloned into each request (routes and ops both use it, so it lives
//! in neither).

use std::sync::Arc;
use std::time::Duration;

use docket::catalog::Catalog;
use docket::db::Db;

use crate::admin::AdminTokens;
use crate::auth::ApiKeys;
use crate::inserter::Inserter;

/// Statement timeout of every operator query (and of the job figures of `/metrics`).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub keys: ApiKeys,
    /// `DOCKET_EVENT_TOKENS`; `None`: the event intake is off.
    pub event_tokens: Option<crate::event_tokens::EventTokens>,
    pub inserter: Inserter,
    /// Records event deliveries in batches (`POST /workfront/events`).
    pub event_writer: crate::event_writer::EventWriter,
    /// Wakes workers (the inserter and the event writer have their own handles).
    pub notifier: crate::notifier::Notifier,
    pub admin: AdminTokens,
    pub rate_limit: Option<std::sync::Arc<crate::rate_limit::RateLimiter>>,
    /// `DOCKET_API_REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client (`DOCKET_TRUSTED_PROXIES`).
    pub trusted_proxies: std::sync::Arc<Vec<std::net::IpAddr>>,
    /// Failed sign-ins and wrong admin tokens per client address.
    pub sign_in_throttle: crate::throttle::FailureThrottle,
    /// Whether the dashboard's cookies are `Secure`: unless `DOCKET_PUBLIC_URL` says
    /// it is served over plain `http://` (browsers keep Secure cookies for
    /// `http://localhost` anyway).
    pub https: bool,
}
