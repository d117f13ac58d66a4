//! A database that stalls or drops out at the worst moment: the api's reply still
//! matches what was stored, and a result the target already gave is written rather
//! than run a second time.

use std::collections::HashMap;
use std::time::Duration;

use docket::db::{attempts, jobs};
use docket::domain::{AttemptOutcome, JobState};
use docket_tests::proxy::Proxy;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

#[tokio::test]
async fn a_reply_always_matches_the_database_when_it_stalls_beyond_the_request_timeout() {
    const REQUESTS: usize = 30;
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    // Two writers that take one job each: most requests wait in the queue.
    let env = [
        ("DOCKET_API_REQUEST_TIMEOUT", "1s".to_owned()),
        ("DOCKET_API_DB_CONNECTIONS", "2".to_owned()),
        ("DOCKET_API_INSERT_BATCH", "1".to_owned()),
    ];
    let api = Api::start(&db.url_via(proxy.addr), &catalog_path(&dir), &env).await;
    let client = reqwest::Client::new();
    api.enqueue(&client, "noop", "warm-up").await;

    // The database stalls for three request timeouts.
    proxy.pause();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let (client, base) = (client.clone(), api.base.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let response = client
                    .get(format!("{base}/customAction"))
                    .query(&[("name", "noop"), ("documentId", &format!("stalled-{n}")), ("documentVersionId", "v1")])
                    .header("apiKey", docket_tests::API_KEY)
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.expect("JSON reply");
                (format!("stalled-{n}"), status, body, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.resume();
    let mut replies = Vec::new();
    for request in requests {
        replies.push(request.await.unwrap());
    }
    // Queued after every stalled request: once it is answered, the writers have
    // dealt with everything queued before it.
    api.enqueue(&client, "noop", "after-the-stall").await;

    let stored: HashMap<String, uuid::Uuid> =
        sqlx::query_as("select document_id, id from jobs").fetch_all(&db.pool).await.unwrap().into_iter().collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for (document, status, body, took) in &replies {
        *statuses.entry(*status).or_default() += 1;
        match status {
            200 => {
                let id: uuid::Uuid = body["jobId"].as_str().unwrap().parse().unwrap();
                assert_eq!(stored.get(document), Some(&id), "{document}: 200 names the stored job");
                assert!(*took > Duration::from_secs(1), "it waited for its commit, past the request timeout");
            }
            503 => {
                assert_eq!(body["status"], "failure");
                assert!(!stored.contains_key(document), "{document}: answered 503 but stored (after {took:?})");
            }
            other => panic!("{document}: unexpected status {other}"),
        }
    }
    eprintln!("replies while the database stalled: {statuses:?}");
    assert!(statuses.get(&200).is_some_and(|&n| n >= 1), "jobs already being written waited: {statuses:?}");
    assert!(statuses.get(&503).is_some_and(|&n| n >= 1), "jobs still queued timed out: {statuses:?}");
}

#[tokio::test]
async fn a_result_given_just_before_a_40_s_outage_is_written_not_run_again() {
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    // The target answers the first call only when the test says so.
    let target = Target::start(|n| if n == 1 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = catalog(&format!("[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\n", target.url));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    // The default 30 s lease; both workers rescue eagerly once the database is back.
    let eager = || vec![("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".to_owned())];
    let via = db.url_via(proxy.addr);
    let _workers = [
        Worker::start(&via, &catalog_path(&dir), "w-outage-a", &eager()).await,
        Worker::start(&via, &catalog_path(&dir), "w-outage-b", &eager()).await,
    ];
    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-outage").await;
    wait_until("a worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;

    // The database goes away for every worker, and then the target answers.
    proxy.cut();
    target.open_gate();
    tokio::time::sleep(Duration::from_secs(40)).await;
    proxy.restore();

    let job = wait_until("the job to finish", Duration::from_secs(120), || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await;
    let rows = attempts::list(&db.pool, id).await.unwrap();
    let outcomes: Vec<_> = rows.iter().map(|a| a.outcome).collect();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1), "attempts: {outcomes:?}");
    assert_eq!(outcomes, [Some(AttemptOutcome::Succeeded)]);
    assert_eq!(target.count(), 1, "the target was called again although it had answered");
}
