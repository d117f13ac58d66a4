//! The other half of a Workfront stand-in: it POSTs event-subscription deliveries the
//! way Workfront does (message version 2; states as objects, JSON strings or base64;
//! the subscription's `authToken` in `Authorization`), and redelivers after a non-2xx
//! or no answer within 5 seconds, on Workfront's schedule scaled down to a test's time.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// Workfront's answer budget: a delivery not answered 2xx within it has failed.
pub const BUDGET: Duration = Duration::from_secs(5);
/// Workfront's retries after the first delivery.
pub const RETRIES: u32 = 11;

/// How the states travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Object,
    JsonString,
    Base64,
}

/// One event, as Workfront describes it.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: &'static str,
    pub subscription_id: String,
    pub epoch_second: i64,
    pub nano: u32,
    pub new_state: Value,
    pub old_state: Value,
}

impl Event {
    /// An UPDATE of document `id` from `old_status` to `new_status`, at `second`.
    pub fn document_update(id: &str, name: &str, old_status: &str, new_status: &str, second: i64) -> Self {
        Self {
            event_type: "UPDATE",
            subscription_id: "8a0d839d5ef32c9a015ef33064b00001".into(),
            epoch_second: second,
            nano: 941_000_000,
            new_state: json!({"ID": id, "objCode": "DOCU", "name": name, "status": new_status,
                              "currentVersionID": format!("{id}-v2"), "lastUpdatedByID": "user-7",
                              "parameterValues": {"DE:Region": "EMEA"}}),
            old_state: json!({"ID": id, "objCode": "DOCU", "name": name, "status": old_status,
                              "currentVersionID": format!("{id}-v1")}),
        }
    }

    /// The message body, its states encoded as `encoding`.
    pub fn message(&self, encoding: Encoding) -> Value {
        let encode = |state: &Value| match encoding {
            Encoding::Object => state.clone(),
            Encoding::JsonString => Value::String(state.to_string()),
            Encoding::Base64 => Value::String(base64::engine::general_purpose::STANDARD.encode(state.to_string())),
        };
        json!({
            "eventType": self.event_type,
            "subscriptionId": self.subscription_id,
            "eventTime": {"nano": self.nano, "epochSecond": self.epoch_second},
            "eventVersion": "v2",
            "newState": encode(&self.new_state),
            "oldState": encode(&self.old_state),
        })
    }
}

/// What one delivery attempt got.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Status(u16, Value),
    /// No answer within [`BUDGET`], or no connection.
    Failed(String),
}

impl Answer {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Status(s, _) if (200..300).contains(s))
    }
}

/// Sends deliveries to a Docket api.
#[derive(Clone)]
pub struct Sender {
    url: String,
    authorization: String,
    /// Further headers every delivery carries (e.g. `traceparent`).
    headers: Vec<(String, String)>,
    client: reqwest::Client,
}

impl Sender {
    /// Deliveries to `{base}/workfront/events` with `authorization` as the header.
    pub fn new(base: &str, authorization: &str) -> Self {
        let client = reqwest::Client::builder().timeout(BUDGET).build().expect("client");
        Self {
            url: format!("{base}/workfront/events"),
            authorization: authorization.to_owned(),
            headers: Vec::new(),
            client,
        }
    }

    /// The same sender, adding `name: value` to every delivery.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// One POST of `body` (any bytes), as Workfront sends it.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> Answer {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("authorization", &self.authorization);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let sent = request.body(body).send().await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                Answer::Status(status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(e) => Answer::Failed(e.to_string()),
        }
    }

    /// One delivery of `message`.
    pub async fn post(&self, message: &Value) -> Answer {
        self.post_raw(message.to_string()).await
    }

    /// Delivers like Workfront: after a failure, again after (2^n − 1) × `unit` (about
    /// 85 s in Workfront), up to [`RETRIES`] times. Returns every attempt's answer.
    pub async fn deliver(&self, message: &Value, unit: Duration) -> Vec<Answer> {
        let mut answers = Vec::new();
        for n in 0..=RETRIES {
            if n > 0 {
                tokio::time::sleep(unit * (2u32.pow(n) - 1)).await;
            }
            let answer = self.post(message).await;
            let done = answer.is_success();
            answers.push(answer);
            if done {
                break;
            }
        }
        answers
    }
}
