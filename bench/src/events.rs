//! The `events` scenario: Workfront event-subscription deliveries to
//! `POST /workfront/events`. Steady intake at the `enqueue` scenario's concurrency
//! (each delivery matches one trigger and starts one job, as a `/customAction` call
//! queues one), then a burst of deliveries all sent at once, as a bulk edit in
//! Workfront sends them; Workfront counts a delivery not answered within 5 s as failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use docket_harness::Api;

use crate::probe;
use crate::scenarios::{usage, Setup, Usage};
use crate::stats::{percentiles, Percentiles};

/// The benchmark's catalog plus a trigger: a document that became Approved (the
/// filters of examples/workfront-events.toml) starts the noop action, one job per
/// delivery.
pub const CATALOG: &str = "[[action]]\nname = \"noop\"\nkind = \"noop\"\n\n\
                           [[trigger]]\nname = \"approved\"\nobj_code = \"DOCU\"\nevent_type = \"UPDATE\"\n\
                           run = \"noop\"\nfilters = [\n    { field = \"status\", comparison = \"changed\" },\n    \
                           { field = \"status\", comparison = \"eq\", value = \"APR\" },\n]\n";

/// `DOCKET_EVENT_TOKENS` of the api under test; the deliveries send it as
/// `Authorization: Bearer …`, as a subscription's `authToken`.
pub(crate) const TOKEN: &str = "docket-bench-events-7c41e0d9b2a85f36";

/// A `DOCU` `UPDATE` from `CUR` to `APR` as Workfront's v2 message, happening now
/// (so it is stored in today's partition). `n` makes the object id, so every delivery
/// has its own identity (no redelivery).
fn message(n: usize) -> String {
    template(&format!("doc-{n}"), &chrono::Utc::now().timestamp().to_string())
}

/// The delivery of object `id` at `epoch_second`, written into the JSON as given (a
/// placeholder for wrk's script to replace, or a number).
pub(crate) fn template(id: &str, epoch_second: &str) -> String {
    let marker = 4_102_444_800_i64; // 2100-01-01, a number only this template writes
    serde_json::json!({
        "eventType": "UPDATE",
        "subscriptionId": "8a0d839d5ef32c9a015ef33064b00001",
        "eventTime": {"epochSecond": marker, "nano": 941_000_000},
        "eventVersion": "v2",
        "newState": {"ID": id, "objCode": "DOCU", "status": "APR", "name": "a.pdf",
                     "currentVersionID": "v2", "lastUpdatedByID": "user-7"},
        "oldState": {"ID": id, "objCode": "DOCU", "status": "CUR", "name": "a.pdf",
                     "currentVersionID": "v2"},
    })
    .to_string()
    .replace(&marker.to_string(), epoch_second)
}

pub(crate) async fn start_api(setup: &Setup, db: &docket_harness::TestDb) -> Api {
    let env = setup.env(db, &[("DOCKET_EVENT_TOKENS", TOKEN.to_owned())]);
    Api::start(&setup.url(db), &setup.events_catalog, &env).await
}

fn post(client: &reqwest::Client, url: &str, body: String) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body)
}

pub struct Intake {
    pub deliveries_per_second: f64,
    pub latency_ms: Percentiles,
    pub errors: usize,
    pub wal_bytes_per_delivery: f64,
    pub api: Usage,
}

/// `deliveries` POSTs at `concurrency` over real HTTP, as `enqueue` sends its
/// requests; checks that exactly one job per delivery answered 200 exists afterwards.
pub async fn intake(setup: &Setup, deliveries: usize, concurrency: usize) -> anyhow::Result<Intake> {
    let db = setup.database().await?;
    let api = start_api(setup, &db).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let url = format!("{}/workfront/events", api.base);
    let wal_before = probe::wal_position(&db.pool).await?;
    let (mut latencies, errors, elapsed) =
        crate::scenarios::drive(&client, deliveries, concurrency, move |client, n| post(client, &url, message(n)))
            .await?;
    let wal = probe::wal_position(&db.pool).await? - wal_before;
    let stored = probe::count_jobs(&db.pool).await?;
    ensure!(stored == (deliveries - errors) as i64, "{stored} jobs for {} answered deliveries", deliveries - errors);
    Ok(Intake {
        deliveries_per_second: deliveries as f64 / elapsed,
        latency_ms: percentiles(&mut latencies),
        errors,
        wal_bytes_per_delivery: wal as f64 / (deliveries - errors).max(1) as f64,
        api: usage(&api.process),
    })
}

pub struct Burst {
    pub latency_ms: Percentiles,
    /// Deliveries answered 200 with one new job each.
    pub answered: usize,
    /// Rows in `jobs` afterwards.
    pub jobs: i64,
    /// From the release of the burst to its last answer.
    pub seconds: f64,
}

/// `deliveries` POSTs released at the same instant, each on its own connection, to an
/// idle api on a fresh database; every latency includes the connection's set-up.
/// A delivery that gets no answer within 30 s counts as unanswered.
pub async fn burst(setup: &Setup, deliveries: usize) -> anyhow::Result<Burst> {
    let db = setup.database().await?;
    let api = start_api(setup, &db).await;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(deliveries).timeout(Duration::from_secs(30)).build()?;
    let url = format!("{}/workfront/events", api.base);
    let bodies: Vec<String> = (0..deliveries).map(message).collect();
    let gate = Arc::new(tokio::sync::Barrier::new(deliveries + 1));
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (request, gate) = (post(&client, &url, body), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                let sent = Instant::now();
                let response = request.send().await.ok()?;
                if response.status() != 200 {
                    return None;
                }
                let reply: serde_json::Value = response.json().await.ok()?;
                let one_job = reply["jobIds"].as_array().is_some_and(|ids| ids.len() == 1);
                (one_job && reply["duplicate"] == false).then(|| sent.elapsed().as_secs_f64() * 1000.0)
            })
        })
        .collect();
    gate.wait().await;
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(deliveries);
    for task in tasks {
        if let Some(ms) = task.await? {
            latencies.push(ms);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let jobs = probe::count_jobs(&db.pool).await?;
    Ok(Burst { answered: latencies.len(), latency_ms: percentiles(&mut latencies), jobs, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use docket::events::Event;

    #[test]
    fn every_message_is_a_distinct_approval_that_starts_one_noop_job() {
        let catalog = docket::catalog::Catalog::parse(CATALOG, std::path::Path::new("events.toml")).expect("catalog");
        let (a, b) = (message(1), message(2));
        let (a, b) = (Event::from_body(a.as_bytes()).expect("event"), Event::from_body(b.as_bytes()).expect("event"));
        assert_ne!(a.obj_id, b.obj_id);
        let matched: Vec<_> = catalog.triggers().iter().filter(|t| t.matches(&a)).collect();
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].run, ["noop"]);
    }

    #[test]
    fn the_template_wrk_fills_is_the_same_message() {
        let filled = template("@ID@", "@NOW@").replace("@ID@", "doc-0-1").replace("@NOW@", "1764806400");
        let event = Event::from_body(filled.as_bytes()).expect("event");
        assert_eq!(event.obj_id, "doc-0-1");
        assert_eq!(filled, template("doc-0-1", "1764806400"));
        assert!(filled.contains(r#""epochSecond":1764806400"#), "{filled}");
    }
}
