//! A Workfront stand-in: the two APIs Docket's follow-ups use to tell a user how
//! their action ended, checked the way Workfront checks them, and an Adobe IMS token
//! endpoint. It answers like Workfront (`{"data": …}`, `{"error": {"class",
//! "message"}}`, 401 for a bad key, 429 for too many concurrent requests) and records
//! every note and comment it accepted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

/// The API key the stand-in accepts on the classic REST API.
pub const API_KEY: &str = "wf-api-key-0123456789";
/// The IMS client the stand-in accepts, and the organisation and acting user the
/// Comment Stream API requires.
pub const IMS_CLIENT_ID: &str = "docket-ims-client";
pub const IMS_CLIENT_SECRET: &str = "ims-client-secret-0123456789";
pub const IMS_ORG: &str = "0123456789ABCDEF@AdobeOrg";
pub const WF_USER: &str = "5f0a1b2c3d4e5f60718293a4b5c6d7e8";
/// Concurrent API requests Workfront allows per customer.
pub const CONCURRENCY_LIMIT: usize = 10;

/// What the stand-in accepted.
#[derive(Debug, Clone)]
pub struct Posted {
    /// "note" or "comment".
    pub kind: &'static str,
    pub object_id: String,
    pub text: String,
}

#[derive(Clone, Default)]
struct Shared {
    posted: Arc<Mutex<Vec<Posted>>>,
    down: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    gate: Option<watch::Receiver<bool>>,
    tokens_issued: Arc<AtomicUsize>,
}

pub struct Workfront {
    pub base: String,
    shared: Shared,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Workfront {
    /// Starts the stand-in; with `gated`, every API request waits for [`open_gate`](Self::open_gate).
    pub async fn start(gated: bool) -> Self {
        let (gate, gate_rx) = watch::channel(!gated);
        let shared = Shared { gate: Some(gate_rx), ..Shared::default() };
        let app = Router::new()
            .route("/attask/api/v21.0/note", post(note))
            .route("/comment-stream/api/v1/comment", post(comment))
            .route("/ims/token/v3", post(token))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, shared, gate, task }
    }

    pub fn open_gate(&self) {
        let _ = self.gate.send(true);
    }

    /// While down, every request gets 503 (an outage or maintenance).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.shared.posted.lock().unwrap().clone()
    }

    pub fn tokens_issued(&self) -> usize {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }
}

impl Drop for Workfront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(status: StatusCode, class: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"class": class, "message": message}}))).into_response()
}

/// Holds a request while the gate is closed, counts it in flight, and refuses it
/// while down or over the concurrency limit.
async fn admit(shared: &Shared) -> Result<InFlight, Response> {
    if shared.down.load(Ordering::SeqCst) {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "com.attask.common.MaintenanceException", "down"));
    }
    let in_flight = InFlight::new(shared.in_flight.clone());
    if in_flight.count > CONCURRENCY_LIMIT {
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "com.attask.common.TooManyRequestsException",
            "Too many concurrent API requests",
        ));
    }
    if let Some(mut gate) = shared.gate.clone() {
        let _ = gate.wait_for(|open| *open).await;
    }
    Ok(in_flight)
}

struct InFlight {
    counter: Arc<AtomicUsize>,
    count: usize,
}

impl InFlight {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Self { counter, count }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `POST /attask/api/v21.0/note` with `apiKey`: `{"noteObjCode": "DOCU", "objID", "noteText"}`.
async fn note(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let _in_flight = match admit(&shared).await {
        Ok(in_flight) => in_flight,
        Err(refused) => return refused,
    };
    if text(&headers, "apikey").as_deref() != Some(API_KEY) {
        return error(StatusCode::UNAUTHORIZED, "com.attask.common.AuthenticationException", "Invalid apiKey");
    }
    let Ok(note) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "com.attask.common.ParseException", "body is not JSON");
    };
    let (Some("DOCU"), Some(object_id), Some(note_text)) =
        (note["noteObjCode"].as_str(), note["objID"].as_str(), note["noteText"].as_str())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "com.attask.common.InvalidParameterException",
            "noteObjCode, objID, noteText",
        );
    };
    shared.posted.lock().unwrap().push(Posted { kind: "note", object_id: object_id.into(), text: note_text.into() });
    Json(json!({"data": {"ID": uuid::Uuid::new_v4().simple().to_string(), "objCode": "NOTE", "noteText": note_text}}))
        .into_response()
}

/// `POST /comment-stream/api/v1/comment` with an IMS bearer token, `x-api-key`,
/// `x-gw-ims-org-id` and `wf-userid`: `{"objectCode": "DOCU", "objectID", "content"}`.
async fn comment(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let _in_flight = match admit(&shared).await {
        Ok(in_flight) => in_flight,
        Err(refused) => return refused,
    };
    let bearer_ok = text(&headers, "authorization").is_some_and(|v| v.starts_with("Bearer ims-token-"));
    let headers_ok = text(&headers, "x-api-key").as_deref() == Some(IMS_CLIENT_ID)
        && text(&headers, "x-gw-ims-org-id").as_deref() == Some(IMS_ORG)
        && text(&headers, "wf-userid").as_deref() == Some(WF_USER);
    if !bearer_ok || !headers_ok {
        return error(StatusCode::UNAUTHORIZED, "com.attask.common.AuthenticationException", "Invalid credentials");
    }
    let Ok(comment) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "com.attask.common.ParseException", "body is not JSON");
    };
    let (Some("DOCU"), Some(object_id), Some(content)) =
        (comment["objectCode"].as_str(), comment["objectID"].as_str(), comment["content"].as_str())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "com.attask.common.InvalidParameterException",
            "objectCode, objectID, content",
        );
    };
    shared.posted.lock().unwrap().push(Posted { kind: "comment", object_id: object_id.into(), text: content.into() });
    (StatusCode::CREATED, Json(json!({"data": {"id": uuid::Uuid::new_v4().to_string(), "content": content}})))
        .into_response()
}

/// Adobe IMS: `POST /ims/token/v3`, client credentials in the form body.
async fn token(State(shared): State<Shared>, body: Bytes) -> Response {
    let form = String::from_utf8_lossy(&body).to_string();
    let expected = [
        "grant_type=client_credentials".to_owned(),
        format!("client_id={IMS_CLIENT_ID}"),
        format!("client_secret={IMS_CLIENT_SECRET}"),
    ];
    if !expected.iter().all(|part| form.split('&').any(|p| p == part)) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    let n = shared.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"access_token": format!("ims-token-{n}"), "token_type": "bearer", "expires_in": 86399})).into_response()
}
