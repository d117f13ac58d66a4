//! The `http` action: POSTs the job as JSON to the target and classifies the answer.
//!
//! 2xx succeeds; timeouts, connection errors, 408, 429 and 5xx are retried (honouring
//! `Retry-After`); any other status fails at once. Delivery is at-least-once, so every
//! request carries `Idempotency-Key: <jobId>`.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Serialize;

use docket::db::jobs::ClaimedJob;

use super::{ActionOutcome, Signer};

/// Most characters of a response body kept in the attempt's error.
const EXCERPT_CHARS: usize = 200;
/// Most bytes of a response body read for the excerpt.
const EXCERPT_BYTES: usize = 2048;

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
    pub fn new(client: reqwest::Client, url: String, signer: Option<Signer>) -> Self {
        Self { client, url, signer }
    }

    pub async fn run(&self, job: &ClaimedJob, timeout: Duration) -> ActionOutcome {
        let payload = Payload {
            job_id: job.id.to_string(),
            action: &job.action,
            document_id: &job.document_id,
            document_version_id: &job.document_version_id,
            username: job.requested_by.as_deref(),
            attempt: job.attempt,
        };
        // Serialised here, so that a signature covers exactly the bytes sent.
        let body = match serde_json::to_vec(&payload) {
            Ok(body) => body,
            Err(e) => return ActionOutcome::Permanent { error: format!("cannot encode the request: {e}") },
        };
        let id = job.id.to_string();
        let mut request = self
            .client
            .post(&self.url)
            .timeout(timeout)
            .header("Idempotency-Key", &id)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(signer) = &self.signer {
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signer.sign(&id, timestamp, &body));
        }
        let sent = request.body(body).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return ActionOutcome::TimedOut,
            Err(e) => return ActionOutcome::Retryable { error: describe_send_error(&e), retry_after: None },
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        if status.is_success() {
            return ActionOutcome::Succeeded;
        }
        let error = format!("target answered HTTP {}{}", status_text(status), excerpt(response).await);
        if is_retryable(status) {
            ActionOutcome::Retryable { error, retry_after }
        } else {
            ActionOutcome::Permanent { error: format!("{error} (not retried)") }
        }
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

fn describe_send_error(error: &reqwest::Error) -> String {
    // The URL is the catalog's, not a secret; the chain of causes says what failed.
    let mut text = format!("request to target failed: {error}");
    let mut source = std::error::Error::source(error);
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
