//! What the trace tests share: a catalog whose actions call one target and queue a
//! follow-up, a traced trigger, and readers for what the target and the database got.

use docket::domain::JobId;
use docket::trace::TraceParent;

use crate::target::Received;
use crate::wait::DEADLINE;
use crate::{catalog, wait_until, Api, Target, TestDb, API_KEY};

pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `archive` (on the menu) queues `tell` when it succeeds; a document approved in
/// Workfront runs `on-approval`. All three call `url`.
pub fn traced_catalog(url: &str) -> tempfile::TempDir {
    catalog(&format!(
        r#"
[[action]]
name = "archive"
kind = "http"
url = "{url}"
on_finish = [{{ when = ["succeeded"], run = "tell" }}]

[[action]]
name = "tell"
kind = "http"
url = "{url}"
menu = false

[[action]]
name = "on-approval"
kind = "http"
url = "{url}"
menu = false

[[trigger]]
name = "became-approved"
obj_code = "DOCU"
event_type = "UPDATE"
run = "on-approval"
filters = [{{ field = "status", comparison = "eq", value = "APR" }}]
"#
    ))
}

/// `GET /customAction` for `archive`, with `traceparent` if given; the job's id.
pub async fn trigger(api: &Api, client: &reqwest::Client, document: &str, traceparent: Option<&str>) -> JobId {
    let mut request = client
        .get(format!("{}/customAction", api.base))
        .query(&[("name", "archive"), ("documentId", document), ("documentVersionId", "v1")])
        .header("apiKey", API_KEY);
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let response = request.send().await.expect("request to api");
    assert_eq!(response.status(), 200, "a traceparent never fails the request: {traceparent:?}");
    let body: serde_json::Value = response.json().await.expect("JSON reply");
    JobId(body["jobId"].as_str().expect("jobId").parse().expect("uuid"))
}

/// The target's request for job `id` (its `Idempotency-Key`), once it arrived.
pub async fn call_of(target: &Target, id: JobId) -> Received {
    let key = id.to_string();
    wait_until(&format!("the call of job {id}"), DEADLINE, || async {
        target.received().into_iter().find(|r| r.headers.get("idempotency-key").is_some_and(|v| *v == *key))
    })
    .await
}

/// The one, valid `traceparent` of a request to the target.
pub fn trace_of(call: &Received) -> TraceParent {
    let values: Vec<_> = call.headers.get_all("traceparent").iter().collect();
    assert_eq!(values.len(), 1, "exactly one traceparent: {values:?}");
    let text = values[0].to_str().unwrap();
    TraceParent::parse(text).unwrap_or_else(|| panic!("a valid traceparent: {text:?}"))
}

pub async fn stored(db: &TestDb, id: JobId) -> TraceParent {
    let text: Option<String> =
        sqlx::query_scalar("select traceparent from jobs where id = $1").bind(id.0).fetch_one(&db.pool).await.unwrap();
    TraceParent::parse(text.as_deref().expect("a stored traceparent")).expect("a valid stored traceparent")
}

/// The follow-up `tell` that `parent`'s success queued.
pub async fn follow_up(db: &TestDb, parent: JobId) -> JobId {
    wait_until(&format!("the follow-up of {parent}"), DEADLINE, || async {
        docket::db::jobs::children(&db.pool, parent).await.unwrap().first().map(|c| c.id)
    })
    .await
}
