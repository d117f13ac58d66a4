//! A stand-in for Workfront's event subscription API
//! (`/attask/eventsubscription/api/v1/subscriptions`), checked the way Workfront
//! documents it: the `sessionID` header (401 without a known one, 403 for a user who
//! is not a System Administrator), request shapes (400), 409 for an identical
//! subscription, 201 with a `Location` ending in the new id, paging with `page`,
//! `limit` and `meta`, one by id, and DELETE (204). It records every request, and can
//! be seeded with subscriptions made by other integrations.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// The API's path under the tenant.
pub const PATH: &str = "/attask/eventsubscription/api/v1/subscriptions";
/// A System Administrator's session.
pub const SESSION: &str = "wf-admin-session-5b1e0c9d7a3f";
/// A session of a user who is not a System Administrator.
pub const NOT_ADMIN_SESSION: &str = "wf-plain-user-session-8c2d41";
/// Most subscriptions per page Workfront serves.
pub const MAX_LIMIT: u64 = 1000;

const EVENT_TYPES: [&str; 3] = ["CREATE", "UPDATE", "DELETE"];
const COMPARISONS: [&str; 10] =
    ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "notContains", "containsOnly", "changed"];
const FIELDS: [&str; 8] =
    ["objCode", "eventType", "url", "authToken", "objId", "filters", "filterConnector", "base64Encoding"];

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// The `sessionID` header as sent.
    pub session: Option<String>,
    pub body: Option<Value>,
}

#[derive(Clone, Default)]
struct Shared {
    /// Subscriptions in the order they were made; each holds its `id`.
    subscriptions: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    next_id: Arc<Mutex<u64>>,
    /// Lists show no subscription (as if all were made after the list was read).
    hidden: Arc<AtomicBool>,
    /// While set, every request gets this status (after being recorded).
    failing: Arc<Mutex<Option<StatusCode>>>,
}

pub struct SubscriptionApi {
    /// The tenant's base URL (what `WORKFRONT_URL` holds).
    pub base: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl SubscriptionApi {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route(PATH, any(handle))
            .route(&format!("{PATH}/{{id}}"), any(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, shared, task }
    }

    /// Adds a subscription as another integration would have made it; returns its id.
    pub fn seed(&self, subscription: Value) -> String {
        let id = self.shared.new_id();
        let mut subscription = subscription;
        subscription["id"] = Value::String(id.clone());
        self.shared.subscriptions.lock().unwrap().push(subscription);
        id
    }

    /// Adds `n` `TASK` `CREATE` subscriptions pointing at `url`.
    pub fn seed_many(&self, n: usize, url: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.seed(json!({"objCode": "TASK", "eventType": "CREATE", "url": format!("{url}/{i}"),
                                 "authToken": "someone-elses-token", "filters": [], "filterConnector": "AND"}))
            })
            .collect()
    }

    /// Every subscription held, `authToken` included.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.shared.subscriptions.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests that would change something (POST and DELETE).
    pub fn changes(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == Method::POST || r.method == Method::DELETE).collect()
    }

    /// While set, lists are empty: subscriptions made by someone else between a
    /// client's list and its create.
    pub fn hide_from_lists(&self, hidden: bool) {
        self.shared.hidden.store(hidden, Ordering::SeqCst);
    }

    /// While set, every request is answered `status` with an error body.
    pub fn set_failing(&self, status: Option<StatusCode>) {
        *self.shared.failing.lock().unwrap() = status;
    }

    pub fn forget_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }
}

impl Drop for SubscriptionApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn new_id(&self) -> String {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        format!("8a0d839d5ef32c9a{:016x}", *next)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let session = headers.get("sessionid").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    shared.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        uri: uri.to_string(),
        session: session.clone(),
        body: parsed.clone(),
    });
    if let Some(status) = *shared.failing.lock().unwrap() {
        return error(status, "Workfront is being upgraded, please come back later");
    }
    match session.as_deref() {
        Some(SESSION) => {}
        Some(NOT_ADMIN_SESSION) => return error(StatusCode::FORBIDDEN, "You must be a System Administrator"),
        _ => return error(StatusCode::UNAUTHORIZED, "No valid session"),
    }
    let id = uri.path().strip_prefix(PATH).and_then(|rest| rest.strip_prefix('/')).filter(|id| !id.is_empty());
    match (method, id) {
        (Method::GET, None) => list(&shared, uri.query().unwrap_or_default()),
        (Method::POST, None) => match parsed {
            Some(Value::Object(request)) => create(&shared, request),
            _ => error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        },
        (Method::GET, Some(id)) => match shared.subscriptions.lock().unwrap().iter().find(|s| s["id"] == id) {
            Some(subscription) => Json(public(subscription)).into_response(),
            None => error(StatusCode::NOT_FOUND, "no such subscription"),
        },
        (Method::DELETE, Some(id)) => {
            let mut subscriptions = shared.subscriptions.lock().unwrap();
            match subscriptions.iter().position(|s| s["id"] == id) {
                Some(at) => {
                    subscriptions.remove(at);
                    StatusCode::NO_CONTENT.into_response()
                }
                None => error(StatusCode::NOT_FOUND, "no such subscription"),
            }
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// A subscription as the API shows it (without `authToken`).
fn public(subscription: &Value) -> Value {
    let mut shown = subscription.clone();
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("authToken");
    }
    shown
}

fn list(shared: &Shared, query: &str) -> Response {
    let params: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let number = |name: &str, default: u64| params.get(name).map_or(Some(default), |v| v.parse::<u64>().ok());
    let (Some(page), Some(limit)) = (number("page", 1), number("limit", 100)) else {
        return error(StatusCode::BAD_REQUEST, "page and limit must be numbers");
    };
    if page == 0 || limit == 0 || limit > MAX_LIMIT {
        return error(StatusCode::BAD_REQUEST, "page counts from 1; limit is 1 to 1000");
    }
    let subscriptions = shared.subscriptions.lock().unwrap();
    let subscriptions = if shared.hidden.load(Ordering::SeqCst) { &[][..] } else { &subscriptions[..] };
    let total = subscriptions.len() as u64;
    let shown: Vec<Value> =
        subscriptions.iter().skip(((page - 1) * limit) as usize).take(limit as usize).map(public).collect();
    Json(json!({"subscriptions": shown,
                "meta": {"page": page, "page_count": total.div_ceil(limit), "limit": limit, "total_count": total}}))
    .into_response()
}

fn create(shared: &Shared, request: Map<String, Value>) -> Response {
    if let Err(message) = check(&request) {
        return error(StatusCode::BAD_REQUEST, &message);
    }
    let mut subscriptions = shared.subscriptions.lock().unwrap();
    if subscriptions.iter().any(|s| identity(s) == identity(&Value::Object(request.clone()))) {
        return error(StatusCode::CONFLICT, "an identical subscription already exists");
    }
    let id = shared.new_id();
    let mut subscription = Value::Object(request);
    subscription["id"] = Value::String(id.clone());
    subscriptions.push(subscription.clone());
    let location = format!("{PATH}/{id}");
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(public(&subscription))).into_response()
}

/// What makes two subscriptions the same: all but the id and token, filters as a set.
fn identity(subscription: &Value) -> (String, String, String, BTreeSet<String>, String) {
    let text = |name: &str| subscription[name].as_str().unwrap_or_default().to_owned();
    let filters = subscription["filters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let state = f["state"].as_str().unwrap_or("newState");
            format!("{}|{}|{}|{state}", f["fieldName"], f["comparison"], f.get("fieldValue").unwrap_or(&Value::Null))
        })
        .collect();
    let connector = subscription["filterConnector"].as_str().unwrap_or("AND").to_owned();
    (text("objCode"), text("eventType"), text("url"), filters, connector)
}

/// The request's shape, as Workfront documents it.
fn check(request: &Map<String, Value>) -> Result<(), String> {
    if let Some(unknown) = request.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {unknown}"));
    }
    let text = |name: &str| request.get(name).and_then(Value::as_str).filter(|t| !t.is_empty());
    text("objCode").ok_or("objCode is required")?;
    if !text("eventType").is_some_and(|t| EVENT_TYPES.contains(&t)) {
        return Err("eventType must be CREATE, UPDATE or DELETE".into());
    }
    if !text("url").is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) {
        return Err("url must be an http(s) URL".into());
    }
    if text("authToken").is_none_or(|t| t.chars().count() >= 255) {
        return Err("authToken is required and must be under 255 characters".into());
    }
    match request.get("filterConnector") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if c == "AND" || c == "OR" => {}
        Some(_) => return Err("filterConnector must be AND or OR".into()),
    }
    let filters = match request.get("filters") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(filters)) => filters,
        Some(_) => return Err("filters must be a list".into()),
    };
    for filter in filters {
        let Some(filter) = filter.as_object() else { return Err("a filter must be an object".into()) };
        if let Some(unknown) =
            filter.keys().find(|k| !["fieldName", "fieldValue", "comparison", "state"].contains(&k.as_str()))
        {
            return Err(format!("unknown filter field {unknown}"));
        }
        if filter.get("fieldName").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err("a filter needs a fieldName".into());
        }
        let comparison = filter.get("comparison").and_then(Value::as_str).unwrap_or_default();
        if !COMPARISONS.contains(&comparison) {
            return Err(format!("comparison {comparison:?} is not one of {}", COMPARISONS.join(" ")));
        }
        let has_value = filter.get("fieldValue").is_some_and(|v| !v.is_null());
        if comparison != "changed" && !has_value {
            return Err(format!("comparison {comparison} needs a fieldValue"));
        }
        match filter.get("state") {
            None => {}
            Some(Value::String(s)) if s == "newState" || s == "oldState" => {}
            Some(_) => return Err("state must be newState or oldState".into()),
        }
    }
    Ok(())
}
