//! A job's life end to end: the real api and worker processes, a real Postgres
//! database per test, and a real HTTP target on loopback.

use std::time::Duration;

use docket::db::{attempts, jobs};
use docket::domain::{AttemptOutcome, JobId, JobState};
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

fn http_catalog(url: &str, extra: &str) -> tempfile::TempDir {
    catalog(&format!(
        "[[action]]\nname = \"archive\"\ndisplay_name = \"Archive\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n"
    ))
}

/// Waits until the job is in a final state and returns it.
async fn finished(db: &TestDb, id: JobId) -> jobs::JobRow {
    wait_until(&format!("job {id} to finish"), DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await
}

#[tokio::test]
async fn happy_path_runs_the_action_once_and_records_the_attempt() {
    let db = TestDb::new().await;
    let target = Target::always(200).await;
    let dir = http_catalog(&target.url, "");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker = Worker::start(&db.url, &catalog_path(&dir), "w-happy", &[]).await;
    let client = reqwest::Client::new();

    let id = api.enqueue(&client, "archive", "doc-1").await;
    let job = finished(&db, id).await;

    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.requested_by.as_deref(), Some("ada@example.com"));
    assert!(job.finished_at.is_some() && job.lease_owner.is_none());
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].worker_id, worker.id);
    assert_eq!(rows[0].outcome, Some(AttemptOutcome::Succeeded));

    for probe in ["healthz", "readyz"] {
        for base in [&api.base, &worker.health] {
            let response = reqwest::get(format!("{base}/{probe}")).await.unwrap();
            assert_eq!(response.status(), 200, "{base}/{probe}");
        }
    }

    let received = target.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.headers["idempotency-key"], id.to_string().as_str());
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.body,
        serde_json::json!({
            "jobId": id.to_string(), "action": "archive", "documentId": "doc-1",
            "documentVersionId": "v1", "username": "ada@example.com", "attempt": 1
        })
    );

    // The request id is returned and present in the api's log lines of that request.
    let response = client
        .get(format!("{}/customAction?name=archive&documentId=doc-1b&documentVersionId=v1", api.base))
        .header("apiKey", docket_tests::API_KEY)
        .header("x-request-id", "req-trace-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-trace-4711");
    let line = api.process.wait_for_log("req-trace-4711").await;
    assert!(line.contains("job.id"), "the request's log line names its job: {line}");
    for line in api.process.logs() {
        assert!(!line.contains(docket_tests::API_KEY), "the API key leaked into a log line: {line}");
    }
}

#[tokio::test]
async fn target_down_then_up_is_retried_to_success_with_every_attempt_recorded() {
    let db = TestDb::new().await;
    let target =
        Target::start(|n| if n <= 2 { Reply::status(503).body("maintenance until noon") } else { Reply::status(200) })
            .await;
    let dir = http_catalog(&target.url, "max_attempts = 5\nretry_base = \"50ms\"\nretry_max = \"200ms\"");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-retry", &[]).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-2").await;
    let job = finished(&db, id).await;

    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 3);
    let rows = attempts::list(&db.pool, id).await.unwrap();
    let outcomes: Vec<_> = rows.iter().map(|a| a.outcome.unwrap()).collect();
    assert_eq!(outcomes, [AttemptOutcome::RetryableError, AttemptOutcome::RetryableError, AttemptOutcome::Succeeded]);
    let error = rows[0].error.as_deref().unwrap();
    assert!(error.contains("HTTP 503 Service Unavailable: maintenance until noon"), "{error}");
    // Backoff: each retry started no earlier than retry_base after the failure.
    for pair in rows.windows(2) {
        let gap = pair[1].started_at - pair[0].finished_at.unwrap();
        assert!(gap >= chrono::Duration::milliseconds(40), "retry came after {gap}");
    }
    let seen: Vec<_> = target.received().iter().map(|r| r.body["attempt"].as_i64().unwrap()).collect();
    assert_eq!(seen, [1, 2, 3]);
}

#[tokio::test]
async fn a_refusing_target_fails_the_job_after_one_attempt() {
    let db = TestDb::new().await;
    let target = Target::start(|_| Reply::status(400).body("{\"error\":\"document is locked\"}")).await;
    let dir = http_catalog(&target.url, "max_attempts = 5\nretry_base = \"50ms\"");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-400", &[]).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-3").await;
    let job = finished(&db, id).await;

    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 1);
    let error = job.last_error.unwrap();
    assert!(
        error.contains("HTTP 400 Bad Request") && error.contains("document is locked") && error.contains("not retried"),
        "{error}"
    );
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, Some(AttemptOutcome::PermanentError));
    assert_eq!(target.count(), 1);
}

#[tokio::test]
async fn a_target_slower_than_the_timeout_times_out_and_gives_up() {
    let db = TestDb::new().await;
    // The target would answer only after a minute; the attempts are cut at 300 ms.
    let target = Target::start(|_| Reply::status(200).delay(Duration::from_secs(60))).await;
    let dir = http_catalog(&target.url, "timeout = \"300ms\"\nmax_attempts = 2\nretry_base = \"50ms\"");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-slow", &[]).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-4").await;
    let job = finished(&db, id).await;

    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.last_error.as_deref(), Some("timed out after 300ms (gave up after 2 attempts)"));
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert!(rows.iter().all(|a| a.outcome == Some(AttemptOutcome::TimedOut)));
    for a in &rows {
        // Far below the target's minute, generous for a busy CI: the attempt was cut.
        let ran = a.finished_at.unwrap() - a.started_at;
        assert!(ran < chrono::Duration::seconds(30), "attempt was not cut at the timeout: {ran}");
    }
}

#[tokio::test]
async fn retry_after_from_the_target_is_honoured() {
    let db = TestDb::new().await;
    let target = Target::start(|n| if n == 1 { Reply::status(429).retry_after("2") } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url, "retry_base = \"10ms\"\nretry_max = \"1m\"");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-429", &[("DOCKET_WORKER_POLL_INTERVAL", "100ms".into())]).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-5").await;
    let job = finished(&db, id).await;

    assert_eq!(job.state, JobState::Succeeded);
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!(rows.len(), 2);
    let gap = rows[1].started_at - rows[0].finished_at.unwrap();
    assert!(gap >= chrono::Duration::milliseconds(1900), "Retry-After: 2 not honoured; retried after {gap}");
}

#[tokio::test]
async fn the_reply_does_not_wait_for_the_action() {
    let db = TestDb::new().await;
    let target = Target::start(|_| Reply::status(200).gated()).await;
    let dir = http_catalog(&target.url, "");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-async", &[]).await;

    // The target holds every request until the gate opens: a reply that waited for
    // the action would never come.
    let id = tokio::time::timeout(DEADLINE, api.enqueue(&reqwest::Client::new(), "archive", "doc-6"))
        .await
        .expect("the reply came while the action could not finish");
    assert!(jobs::get(&db.pool, id).await.unwrap().is_some(), "the job row exists when the reply arrives");

    wait_until("the worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    let job = jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((job.state, job.finished_at), (JobState::Running, None), "held by the target, not finished");
    target.open_gate();
    assert_eq!(finished(&db, id).await.state, JobState::Succeeded);
}

#[tokio::test]
async fn noop_actions_succeed_at_once() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-noop", &[]).await;
    let id = api.enqueue(&reqwest::Client::new(), "noop", "doc-7").await;
    let job = finished(&db, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
}

/// Verifies a Standard Webhooks signature as a receiver would (the specification's
/// algorithm, written here independently of the worker's code).
fn verify_standard_webhook(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    let fresh = (-300..=300).contains(&age);
    headers["webhook-signature"].to_str().unwrap().split(' ').any(|s| s == format!("v1,{expected}")) && fresh
}

#[tokio::test]
async fn signed_actions_carry_standard_webhooks_signatures() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let db = TestDb::new().await;
    let target = Target::start(|n| if n == 1 { Reply::status(503) } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url, "retry_base = \"50ms\"\nsigning_secret_env = \"ARCHIVE_SIGNING_SECRET\"");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-signed", &[("ARCHIVE_SIGNING_SECRET", SECRET.into())]).await;
    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-signed").await;
    assert_eq!(finished(&db, id).await.state, JobState::Succeeded);

    let received = target.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert!(verify_standard_webhook(SECRET, &request.headers, &request.raw_body), "{:?}", request.headers);
        assert_eq!(request.headers["webhook-id"], id.to_string().as_str(), "stable across retries");
    }
    let tampered = [received[0].raw_body.as_slice(), b" "].concat();
    assert!(!verify_standard_webhook(SECRET, &received[0].headers, &tampered), "a changed body fails");
    for line in worker.process.logs() {
        assert!(!line.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "the secret leaked into a log: {line}");
    }
}

#[tokio::test]
async fn a_worker_without_its_signing_secret_refuses_to_start() {
    let db = TestDb::new().await;
    let dir = http_catalog("http://127.0.0.1:9/hook", "signing_secret_env = \"MISSING_SIGNING_SECRET\"");
    let mut worker = docket_tests::process::Process::spawn(
        "docket-worker",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("DOCKET_ACTIONS", catalog_path(&dir).display().to_string()),
            ("DOCKET_WORKER_ADDR", "127.0.0.1:0".into()),
        ],
    );
    assert_eq!(worker.wait_exit(DEADLINE).await, Some(2));
    let line = worker.wait_for_log("MISSING_SIGNING_SECRET").await;
    assert!(line.contains("archive") && line.contains("is not set"), "{line}");
}
