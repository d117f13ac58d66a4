//! Workfront's event subscription API (`{tenant}/attask/eventsubscription/api/v1/subscriptions`):
//! list every page, create, delete. The session goes in the `sessionID` header (marked
//! sensitive, never logged); errors are worded for the administrator running the command.

use std::time::Duration;

use docket::secret::Secret;
use reqwest::header::HeaderValue;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::shape::{id_text, Listed, Shape};

/// Where the API lives under the tenant's base URL.
pub const API_PATH: &str = "/attask/eventsubscription/api/v1/subscriptions";
/// Subscriptions asked for per page when listing.
pub const PAGE_LIMIT: u64 = 100;
/// Longest wait for any one request.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Pages read at most (a guard against a server that never says it is done).
const MAX_PAGES: u64 = 10_000;
/// Characters of an unexpected answer's body quoted in the error.
const EXCERPT_CHARS: usize = 200;

/// Why Workfront did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WorkfrontError {
    #[error(
        "Workfront refused the session (WORKFRONT_SESSION_ID expired or wrong): log in again and set \
         WORKFRONT_SESSION_ID to the new session id"
    )]
    Unauthorized,
    #[error(
        "the session's user is not a System Administrator: Workfront lets only System Administrators \
         manage event subscriptions; use an administrator's session"
    )]
    Forbidden,
    #[error("Workfront answered {status} to {action}: {excerpt}")]
    Status { action: String, status: StatusCode, excerpt: String },
    #[error("cannot reach Workfront at {origin}: {cause}")]
    Unreachable { origin: String, cause: &'static str },
    #[error("Workfront's answer to {action} is not what Docket expects: {message}")]
    Reply { action: String, message: String },
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// 201, with the new subscription's id (empty if Workfront did not say it).
    New(String),
    /// 409: Workfront already holds an identical subscription.
    AlreadyThere,
}

/// A client for one tenant, acting with one session.
pub struct Workfront {
    client: reqwest::Client,
    endpoint: url::Url,
    origin: String,
    session: HeaderValue,
}

impl Workfront {
    /// `base` is the tenant (`https://acme.my.workfront.com`). Fails when the session
    /// cannot be sent as a header or the HTTP client cannot be built.
    pub fn new(base: &url::Url, session: &Secret) -> Result<Self, String> {
        let endpoint = url::Url::parse(&format!("{}{API_PATH}", base.as_str().trim_end_matches('/')))
            .map_err(|e| format!("WORKFRONT_URL does not make a URL: {e}"))?;
        let mut session = HeaderValue::from_str(session.expose())
            .map_err(|_| "WORKFRONT_SESSION_ID holds characters a header cannot carry".to_owned())?;
        session.set_sensitive(true);
        let client = reqwest::Client::builder()
            .user_agent(concat!("docket/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, origin: base.origin().ascii_serialization(), endpoint, session })
    }

    /// Every subscription of the tenant, page by page.
    pub async fn list(&self) -> Result<Vec<Listed>, WorkfrontError> {
        let mut all: Vec<Listed> = Vec::new();
        for page in 1..=MAX_PAGES {
            let action = format!("the list of subscriptions (page {page})");
            let request = self.client.get(self.endpoint.clone()).query(&[("page", page), ("limit", PAGE_LIMIT)]);
            let response = self.send(&action, request).await?;
            if response.status() != StatusCode::OK {
                return Err(self.status_error(action, response, &[]).await);
            }
            let body: Value = response.json().await.map_err(|e| self.body_error(&action, e))?;
            let reply = |message: &str| WorkfrontError::Reply { action: action.clone(), message: message.into() };
            let items =
                body.get("subscriptions").and_then(Value::as_array).ok_or_else(|| reply("no `subscriptions` list"))?;
            for item in items {
                let listed = Listed::from_json(item).ok_or_else(|| reply("a subscription without an `id`"))?;
                if !all.iter().any(|l| l.id == listed.id) {
                    all.push(listed);
                }
            }
            let meta = &body["meta"];
            let page_count = meta.get("page_count").or_else(|| meta.get("pageCount")).and_then(Value::as_u64);
            let done = match page_count {
                Some(count) => page >= count,
                None => (items.len() as u64) < PAGE_LIMIT,
            };
            tracing::debug!(page, n_items = items.len(), ?page_count, "listed a page of subscriptions");
            if done || items.is_empty() {
                return Ok(all);
            }
        }
        Err(WorkfrontError::Reply {
            action: "the list of subscriptions".into(),
            message: format!("still more pages after {MAX_PAGES}"),
        })
    }

    /// Creates a subscription (`POST`; `auth_token` is Workfront's `authToken`).
    pub async fn create(&self, shape: &Shape, auth_token: &Secret) -> Result<Created, WorkfrontError> {
        let mut body = shape.to_json();
        body["authToken"] = Value::String(auth_token.expose().to_owned());
        let action = format!("creating a {} {} subscription", shape.obj_code, shape.event_type);
        let response = self.send(&action, self.client.post(self.endpoint.clone()).json(&body)).await?;
        match response.status() {
            StatusCode::CREATED => {
                let from_location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|location| location.trim_end_matches('/').rsplit('/').next())
                    .map(str::to_owned);
                let id = match from_location {
                    Some(id) if !id.is_empty() => id,
                    _ => response
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|body| body.get("id").and_then(id_text))
                        .unwrap_or_default(),
                };
                Ok(Created::New(id))
            }
            StatusCode::CONFLICT => Ok(Created::AlreadyThere),
            _ => Err(self.status_error(action, response, &[auth_token.expose()]).await),
        }
    }

    /// Deletes the subscription `id` (`DELETE …/{id}`).
    pub async fn delete(&self, id: &str) -> Result<(), WorkfrontError> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut().map_err(|()| self.unreachable("a URL that cannot hold a path"))?.push(id);
        let action = format!("deleting subscription {id}");
        let response = self.send(&action, self.client.delete(url)).await?;
        match response.status() {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            _ => Err(self.status_error(action, response, &[]).await),
        }
    }

    /// Sends with the session; turns 401, 403 and transport failures into errors.
    async fn send(&self, action: &str, request: RequestBuilder) -> Result<Response, WorkfrontError> {
        let response = request.header("sessionID", self.session.clone()).send().await.map_err(|e| {
            let cause = cause(&e);
            tracing::debug!(error = %e.without_url(), action, "Workfront request failed");
            self.unreachable(cause)
        })?;
        tracing::debug!(status = response.status().as_u16(), action, "Workfront answered");
        match response.status() {
            StatusCode::UNAUTHORIZED => Err(WorkfrontError::Unauthorized),
            StatusCode::FORBIDDEN => Err(WorkfrontError::Forbidden),
            _ => Ok(response),
        }
    }

    /// The status and a short excerpt of the body, with the session (and any of
    /// `secrets`) blotted out should Workfront echo them.
    async fn status_error(&self, action: String, response: Response, secrets: &[&str]) -> WorkfrontError {
        let status = response.status();
        let mut body = response.text().await.unwrap_or_default();
        for secret in secrets.iter().copied().chain(self.session.to_str().ok()) {
            if !secret.is_empty() {
                body = body.replace(secret, "[redacted]");
            }
        }
        let mut excerpt = body
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if excerpt.chars().count() > EXCERPT_CHARS {
            excerpt = excerpt.chars().take(EXCERPT_CHARS).collect::<String>() + "…";
        }
        if excerpt.is_empty() {
            excerpt = "(no body)".into();
        }
        WorkfrontError::Status { action, status, excerpt }
    }

    fn unreachable(&self, cause: &'static str) -> WorkfrontError {
        WorkfrontError::Unreachable { origin: self.origin.clone(), cause }
    }

    fn body_error(&self, action: &str, e: reqwest::Error) -> WorkfrontError {
        if e.is_decode() {
            WorkfrontError::Reply { action: action.to_owned(), message: "the body is not JSON".into() }
        } else {
            self.unreachable(cause(&e))
        }
    }
}

fn cause(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "no answer within 30 s"
    } else if e.is_connect() {
        "the connection failed"
    } else {
        "the request failed"
    }
}
