//! A database that stalls or drops out at the worst moment: the api's reply still
//! matches what was stored, and a result the target already gave is written rather
//! than run a second time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use docket::db::{attempts, jobs};
use docket::domain::{AttemptOutcome, JobState};
use docket_tests::proxy::Proxy;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker, ADMIN_TOKEN};
use tokio::time::Instant;

/// Sends `/customAction` for `document` and returns (document, status, body, time taken).
async fn trigger(
    client: reqwest::Client,
    base: String,
    document: String,
) -> (String, u16, serde_json::Value, Duration) {
    let started = std::time::Instant::now();
    let response = client
        .get(format!("{base}/customAction"))
        .query(&[("name", "noop"), ("documentId", &document), ("documentVersionId", "v1")])
        .header("apiKey", docket_tests::API_KEY)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("JSON reply");
    (document, status, body, started.elapsed())
}

#[tokio::test]
async fn a_reply_always_matches_the_database_when_it_stalls_beyond_the_request_timeout() {
    const REQUESTS: usize = 30;
    const IN_FLIGHT: usize = 2;
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    // Writers that take one job each: most requests wait in the queue. One connection
    // more than the writes in flight, for the sampler (which the lock below may hold).
    let env = [
        ("DOCKET_API_REQUEST_TIMEOUT", "1s".to_owned()),
        ("DOCKET_API_DB_CONNECTIONS", (IN_FLIGHT + 1).to_string()),
        ("DOCKET_API_INSERT_BATCH", "1".to_owned()),
    ];
    let api = Api::start(&db.url_via(proxy.addr), &catalog_path(&dir), &env).await;
    let client = reqwest::Client::new();
    api.enqueue(&client, "noop", "warm-up").await;

    // Two writes are sent and held by a lock, so that they are surely in flight when
    // the database stalls; the database commits them during the stall, but the api
    // hears of it only afterwards.
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("lock table jobs in access exclusive mode").execute(&mut *lock).await.unwrap();
    let send = |n: usize| tokio::spawn(trigger(client.clone(), api.base.clone(), format!("stalled-{n}")));
    let mut requests: Vec<_> = (0..IN_FLIGHT).map(send).collect();
    wait_until("both writes to wait for the lock", DEADLINE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
                 where datname = $1 and wait_event_type = 'Lock' and query like '%insert into jobs%'",
        )
        .bind(&db.name)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (waiting == IN_FLIGHT as i64).then_some(())
    })
    .await;
    proxy.pause();
    lock.commit().await.unwrap();
    // The database stalls for three request timeouts.
    requests.extend((IN_FLIGHT..REQUESTS).map(send));
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
    for (n, (document, status, body, took)) in replies.iter().enumerate() {
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
        if n < IN_FLIGHT {
            assert_eq!(*status, 200, "{document}: its write was in flight and committed; it waited for that");
        }
    }
    eprintln!("replies while the database stalled: {statuses:?}");
    // The spare connection may carry one more write into the stall (then it waits and
    // gets its 200 like the two); every other job was never sent and refused.
    let refused = statuses.get(&503).copied().unwrap_or(0);
    assert!(refused >= REQUESTS - IN_FLIGHT - 1, "jobs not yet sent were refused: {statuses:?}");
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

/// One request a client sent while the database went away and came back.
struct Sent {
    document: String,
    /// When it was sent, counted from the start of the run.
    at: Duration,
    took: Duration,
    status: u16,
    job: Option<uuid::Uuid>,
}

/// Sends a `/customAction` request every 100 ms until `stop`, recording each answer.
async fn client_loop(
    client: reqwest::Client,
    base: String,
    name: usize,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for n in 0.. {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let at = t0.elapsed();
        let (document, status, body, took) = trigger(client.clone(), base.clone(), format!("client-{name}-{n}")).await;
        let job = body["jobId"].as_str().map(|id| id.parse().expect("a uuid"));
        sent.push(Sent { document, at, took, status, job });
    }
    sent
}

/// `/readyz` and an ops API read, every 500 ms until `stop`: (sent at, took, path, status).
async fn probe_loop(
    client: reqwest::Client,
    base: String,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<(Duration, Duration, &'static str, u16)> {
    let mut seen = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for path in ["/readyz", "/ops/jobs"] {
            let at = t0.elapsed();
            let response =
                client.get(format!("{base}{path}")).bearer_auth(ADMIN_TOKEN).send().await.expect("an answer");
            seen.push((at, t0.elapsed() - at, path, response.status().as_u16()));
        }
    }
    seen
}

#[tokio::test]
async fn with_the_database_refusing_connections_every_request_is_answered_at_once_and_truthfully() {
    database_away_for_30_s(Proxy::refuse).await;
}

#[tokio::test]
async fn with_the_database_hanging_up_every_request_is_answered_at_once_and_truthfully() {
    database_away_for_30_s(Proxy::cut).await;
}

/// 20 clients send through 30 s in which `go_away` keeps the api from its database:
/// after the first second every request has its 503 within 2 s, 200s are back within
/// 5 s of the database, `/readyz` and the ops API answer throughout, and every answer
/// matches the database.
async fn database_away_for_30_s(go_away: fn(&Proxy)) {
    const CLIENTS: usize = 20;
    const OUTAGE: Duration = Duration::from_secs(30);
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    // Every setting at its default: a 10 s request timeout, a 30 s commit wait.
    let env = [("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}"))];
    let api = Api::start(&db.url_via(proxy.addr), &catalog_path(&dir), &env).await;
    let client = reqwest::Client::new();
    api.enqueue(&client, "noop", "warm-up").await;

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client_loop(client.clone(), api.base.clone(), n, t0, stop.clone())))
        .collect();
    let probes = tokio::spawn(probe_loop(client.clone(), api.base.clone(), t0, stop.clone()));
    tokio::time::sleep_until(t0 + Duration::from_secs(2)).await;
    go_away(&proxy);
    let cut = t0.elapsed();
    tokio::time::sleep(OUTAGE).await;
    proxy.restore();
    let back = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.unwrap());
    }
    let probes = probes.await.unwrap();
    // Queued after every request above: once it is answered, every write is settled.
    api.enqueue(&client, "noop", "after-the-outage").await;

    let stored: HashMap<String, uuid::Uuid> =
        sqlx::query_as("select document_id, id from jobs").fetch_all(&db.pool).await.unwrap().into_iter().collect();
    let outage = cut + Duration::from_secs(1)..back;
    let mut slowest_in_outage = Duration::ZERO;
    let mut first_200_after = None;
    for s in &sent {
        match s.status {
            200 => assert_eq!(stored.get(&s.document), s.job.as_ref(), "{}: a 200 names its stored job", s.document),
            503 => assert!(!stored.contains_key(&s.document), "{}: answered 503 but stored", s.document),
            other => panic!("{}: unexpected status {other}", s.document),
        }
        if outage.contains(&s.at) {
            slowest_in_outage = slowest_in_outage.max(s.took);
            assert!(s.took < Duration::from_secs(2), "{}: its answer took {:?}", s.document, s.took);
            assert_eq!(s.status, 503, "{}: sent {:?} into the outage", s.document, s.at - cut);
        }
        if s.at >= back && s.status == 200 {
            let after = s.at + s.took - back;
            first_200_after = Some(first_200_after.map_or(after, |f: Duration| f.min(after)));
        }
        if s.at >= back + Duration::from_secs(5) {
            assert_eq!(s.status, 200, "{}: sent {:?} after the database returned", s.document, s.at - back);
        }
    }
    for (at, took, path, status) in &probes {
        if outage.contains(at) {
            assert_eq!(*status, 503, "{path} during the outage");
            assert!(*took < Duration::from_secs(2), "{path} took {took:?} during the outage");
        }
    }
    let in_outage = sent.iter().filter(|s| outage.contains(&s.at)).count();
    eprintln!(
        "{} requests, {in_outage} during the outage (slowest answer {slowest_in_outage:?}); \
         first 200 {first_200_after:?} after the database returned",
        sent.len()
    );
    assert!(in_outage >= CLIENTS * 100, "the clients kept sending during the outage: {in_outage}");
    assert!(first_200_after.is_some(), "requests succeed again after the outage");
}
