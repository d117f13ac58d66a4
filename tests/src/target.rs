//! A scriptable HTTP target on loopback, standing in for the external system an
//! `http` action calls. It records every request and answers as the test scripts,
//! optionally holding requests until the test opens a gate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::watch;

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    /// Hold the request until [`Target::open_gate`].
    pub wait_for_gate: bool,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self { status, body: String::new(), delay: Duration::ZERO, wait_for_gate: false, retry_after: None }
    }
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    pub fn gated(mut self) -> Self {
        self.wait_for_gate = true;
        self
    }
    pub fn retry_after(mut self, value: &str) -> Self {
        self.retry_after = Some(value.to_owned());
        self
    }
}

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: axum::http::Method,
    /// The path and query.
    pub uri: axum::http::Uri,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// The body exactly as received (signatures cover these bytes).
    pub raw_body: Vec<u8>,
    pub at: std::time::Instant,
}

type Script = dyn Fn(usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct State {
    script: Arc<Script>,
    received: Arc<Mutex<Vec<Received>>>,
    gate: watch::Receiver<bool>,
    in_flight: Arc<InFlight>,
}

/// Requests being answered now, and the most there ever were at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Counts a request as in flight until it is answered or dropped (a client that
/// went away).
struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    fn enter(counter: Arc<InFlight>) -> Self {
        let now = counter.now.fetch_add(1, Ordering::SeqCst) + 1;
        counter.max.fetch_max(now, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Target {
    pub url: String,
    in_flight: Arc<InFlight>,
    received: Arc<Mutex<Vec<Received>>>,
    gate: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Target {
    /// Starts a target; `script(n)` answers the n-th request (1-based).
    pub async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let (gate, gate_rx) = watch::channel(false);
        let received = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(InFlight::default());
        let state =
            State { script: Arc::new(script), received: received.clone(), gate: gate_rx, in_flight: in_flight.clone() };
        // POST /hook, and anything else on any path (templated requests).
        let app = Router::new().route("/hook", post(handle)).fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, in_flight, received, gate, server }
    }

    /// The most requests the target was answering at one time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(Ordering::SeqCst)
    }

    /// A target that answers every request with `status`.
    pub async fn always(status: u16) -> Self {
        Self::start(move |_| Reply::status(status)).await
    }

    /// Releases every held request, and those that arrive later.
    pub fn open_gate(&self) {
        let _ = self.gate.send(true);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<State>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlightGuard::enter(state.in_flight.clone());
    let raw_body = body.to_vec();
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let n = {
        let mut received = state.received.lock().unwrap();
        received.push(Received { method, uri, headers, body, raw_body, at: std::time::Instant::now() });
        received.len()
    };
    let reply = (state.script)(n);
    if reply.wait_for_gate {
        let mut gate = state.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
    }
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(value) = reply.retry_after {
        response.headers_mut().insert("retry-after", value.parse().unwrap());
    }
    response
}
