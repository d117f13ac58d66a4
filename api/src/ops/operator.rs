//! Who is asking: an operator with an admin token (the JSON API's extractor, with the
//! sign-in throttle), and the client address a request counts against.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::OpsError;
use crate::admin::Actor;
use crate::state::AppState;

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
