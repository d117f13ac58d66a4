//! The `http` action: sends the job to the target — the fixed JSON POST, or the
//! request the action's templates render, with its credentials — and classifies the
//! answer.
//!
//! 2xx (or the action's `success_status`) succeeds; 429, and 503 with `Retry-After`, are back-pressure (the job
//! waits as asked without spending an attempt); timeouts, connection errors, 408 and other 5xx are retried (honouring
//! `Retry-After`); any other status fails at once. Delivery is at-least-once, so every
//! request carries `Idempotency-Key: <jobId>`; and `traceparent` (the attempt's span),
//! so the target joins the trigger's trace.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Serialize;

use docket::catalog::HttpSpec;
use docket::db::jobs::ClaimedJob;
use docket::secret::Secret;
use docket::template::{Method, RenderedRequest, RequestTemplate, TemplateContext};
use docket::trace::TraceParent;

use super::auth::{sensitive, Credentials};
use super::outcome::{ActionOutcome, Lineage};
use super::signing::Signer;

/// Most characters of a response body kept in the attempt's error.
const EXCERPT_CHARS: usize = 200;
/// Most bytes of a response body read for the excerpt.
const EXCERPT_BYTES: usize = 2048;
/// Most bytes of a successful answer read to capture a result.
const RESULT_BYTES: usize = 64 * 1024;

pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("docket/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

pub struct HttpAction {
    client: reqwest::Client,
    url: String,
    signer: Option<Signer>,
    /// `None`: the fixed JSON POST of earlier versions, byte for byte.
    request: Option<RequestTemplate>,
    credentials: Option<Credentials>,
    /// Statuses that count as success; `None`: any 2xx.
    success_status: Option<Vec<u16>>,
    /// A JSON pointer into a successful answer's body: the value is kept on the job.
    result: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    job_id: String,
    action: &'a str,
    document_id: &'a str,
    document_version_id: &'a str,
    username: Option<&'a str>,
    attempt: i32,
}

impl HttpAction {
    /// The action `spec` describes, with its signer and credentials read from the
    /// environment.
    pub fn new(
        client: reqwest::Client,
        spec: &HttpSpec,
        signer: Option<Signer>,
        credentials: Option<Credentials>,
    ) -> Self {
        Self {
            client,
            url: spec.url.clone(),
            signer,
            request: spec.request.clone(),
            credentials,
            success_status: spec.success_status.clone(),
            result: spec.result.clone(),
        }
    }

    pub async fn run(&self, job: &ClaimedJob, lineage: &Lineage, timeout: Duration) -> ActionOutcome {
        let rendered = match self.render(job, lineage) {
            Ok(rendered) => rendered,
            Err(error) => return ActionOutcome::Permanent { error },
        };
        let mut token = match self.token(None).await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let mut refreshed = false;
        loop {
            let sent = self.send(job, &rendered, token.as_ref(), timeout).await;
            let response = match sent {
                Ok(response) => response,
                Err(e) if e.is_timeout() => return ActionOutcome::TimedOut,
                Err(e) => return ActionOutcome::Retryable { error: describe_send_error(e), retry_after: None },
            };
            let status = response.status();
            // A token the target refuses is replaced once, and the call made again.
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && matches!(self.credentials, Some(Credentials::OAuth2(_)))
            {
                refreshed = true;
                token = match self.token(token.as_ref()).await {
                    Ok(token) => token,
                    Err(outcome) => return outcome,
                };
                continue;
            }
            return self.classify(response).await;
        }
    }

    /// The request of this attempt: rendered from the action's templates, or the
    /// fixed JSON POST.
    fn render(&self, job: &ClaimedJob, lineage: &Lineage) -> Result<RenderedRequest, String> {
        let Some(template) = &self.request else {
            let payload = Payload {
                job_id: job.id.to_string(),
                action: &job.action,
                document_id: &job.document_id,
                document_version_id: &job.document_version_id,
                username: job.requested_by.as_deref(),
                attempt: job.attempt,
            };
            // Serialised here, so that a signature covers exactly the bytes sent.
            let body = serde_json::to_vec(&payload).map_err(|e| format!("cannot encode the request: {e}"))?;
            return Ok(RenderedRequest {
                method: Method::Post,
                url: self.url.clone(),
                headers: Vec::new(),
                body: Some((body, "application/json".to_owned())),
            });
        };
        template.render(&context(job, lineage)).map_err(|e| format!("cannot render the request: {e} (not retried)"))
    }

    /// The OAuth2 token to send, if the action uses one.
    async fn token(&self, rejected: Option<&Secret>) -> Result<Option<Secret>, ActionOutcome> {
        let Some(Credentials::OAuth2(source)) = &self.credentials else {
            return Ok(None);
        };
        match source.token(rejected).await {
            Ok(token) => Ok(Some(token)),
            Err(e) if e.retryable => Err(ActionOutcome::Retryable { error: e.error, retry_after: None }),
            Err(e) => Err(ActionOutcome::Permanent { error: format!("{} (not retried)", e.error) }),
        }
    }

    async fn send(
        &self,
        job: &ClaimedJob,
        rendered: &RenderedRequest,
        token: Option<&Secret>,
        timeout: Duration,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let id = job.id.to_string();
        let method = reqwest::Method::from_bytes(rendered.method.as_str().as_bytes()).expect("a known method");
        // The attempt's span (set by the claim loop), so the target joins the trace.
        let trace = job.traceparent.unwrap_or_else(TraceParent::new_root);
        let mut request = self
            .client
            .request(method, &rendered.url)
            .timeout(timeout)
            .header("Idempotency-Key", &id)
            .header(docket::trace::HEADER, trace.to_string());
        for (name, value) in &rendered.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match (&self.credentials, token) {
            (Some(Credentials::Header(name, value)), _) => {
                if let Some(value) = sensitive(value) {
                    request = request.header(name.clone(), value);
                }
            }
            (Some(Credentials::OAuth2(_)), Some(token)) => {
                if let Some(value) = sensitive(token) {
                    request = request.header(reqwest::header::AUTHORIZATION, value);
                }
            }
            _ => {}
        }
        let empty = Vec::new();
        let body = match &rendered.body {
            Some((body, content_type)) => {
                request = request.header(reqwest::header::CONTENT_TYPE, content_type.as_str());
                body
            }
            None => &empty,
        };
        if let Some(signer) = &self.signer {
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signer.sign(&id, timestamp, body));
        }
        if rendered.body.is_some() {
            request = request.body(body.clone());
        }
        request.send().await
    }

    async fn classify(&self, response: reqwest::Response) -> ActionOutcome {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let succeeded = match &self.success_status {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_success(),
        };
        if succeeded {
            let result = match &self.result {
                Some(pointer) => Some(captured(response, pointer).await),
                None => None,
            };
            return ActionOutcome::Succeeded { result };
        }
        let error = format!("target answered HTTP {}{}", status_text(status), excerpt(response).await);
        if is_back_pressure(status, retry_after) {
            ActionOutcome::Throttled { error, retry_after }
        } else if is_retryable(status) {
            ActionOutcome::Retryable { error, retry_after }
        } else {
            ActionOutcome::Permanent { error: format!("{error} (not retried)") }
        }
    }
}

/// The value at `pointer` in a JSON answer (read up to [`RESULT_BYTES`]), or null
/// when the body is not JSON, too long, or has nothing there. Never the whole body
/// unless the pointer is "".
async fn captured(mut response: reqwest::Response, pointer: &str) -> serde_json::Value {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= RESULT_BYTES => body.extend_from_slice(&chunk),
            Ok(Some(_)) => {
                tracing::warn!(limit = RESULT_BYTES, "answer too long to capture a result; storing null");
                return serde_json::Value::Null;
            }
            Ok(None) => break,
            Err(_) => return serde_json::Value::Null,
        }
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json.pointer(pointer).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// What the templates of an attempt see.
fn context(job: &ClaimedJob, lineage: &Lineage) -> TemplateContext {
    // Job ids are UUIDv7: they carry the job's creation time to the millisecond.
    let created_at = job
        .id
        .0
        .get_timestamp()
        .map(|t| {
            let (seconds, nanos) = t.to_unix();
            chrono::DateTime::from_timestamp(seconds as i64, nanos).unwrap_or_default()
        })
        .unwrap_or_default();
    TemplateContext {
        job_id: job.id.to_string(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        action: job.action.clone(),
        created_at,
        document_id: job.document_id.clone(),
        document_version_id: job.document_version_id.clone(),
        username: job.requested_by.clone(),
        now: chrono::Utc::now(),
        parent: lineage.parent.clone(),
        event: lineage.event.clone(),
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// What failed, naming only the target's origin: a target's path and query can be the
/// credential (Slack and Teams hook paths, `?code=`), and this text lands in
/// `last_error`, logs, the ops API and the dashboard. The chain of causes says what
/// failed.
fn describe_send_error(error: reqwest::Error) -> String {
    let origin = error.url().map(|url| format!(" {}", url.origin().ascii_serialization())).unwrap_or_default();
    let error = error.without_url();
    let mut text = format!("request to target{origin} failed: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    one_line(&text, 400)
}

/// `": <first characters of the body>"`, or nothing for an empty or unreadable body.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(EXCERPT_BYTES);
    let text = one_line(&String::from_utf8_lossy(&body), EXCERPT_CHARS);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Collapses whitespace and control characters, and cuts to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + "…";
    }
    out
}

/// The target is busy, not broken: 429 Too Many Requests, or 503 with a
/// `Retry-After` saying when to come back.
fn is_back_pressure(status: StatusCode, retry_after: Option<Duration>) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || (status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some())
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn back_pressure_is_429_or_503_with_retry_after() {
        let wait = Some(Duration::from_secs(2));
        assert!(is_back_pressure(StatusCode::TOO_MANY_REQUESTS, None));
        assert!(is_back_pressure(StatusCode::TOO_MANY_REQUESTS, wait));
        assert!(is_back_pressure(StatusCode::SERVICE_UNAVAILABLE, wait));
        assert!(!is_back_pressure(StatusCode::SERVICE_UNAVAILABLE, None));
        assert!(!is_back_pressure(StatusCode::INTERNAL_SERVER_ERROR, wait));
    }

    #[test]
    fn classifies_statuses() {
        for code in [408u16, 429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [300u16, 301, 400, 401, 403, 404, 409, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn parses_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&future).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(90) && wait <= Duration::from_secs(100), "{wait:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(one_line("  a\n\tb\r\n c\u{0} ", 10), "a b c");
        assert_eq!(one_line(&"x".repeat(300), 5), "xxxxx…");
    }
}
