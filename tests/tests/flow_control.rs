//! Flow control across several worker processes, against a real Postgres and real
//! HTTP targets: the cluster-wide concurrency limit (with its negative control and a
//! SIGKILLed slot holder), the rate limit, pause and resume, back-pressure (429 with
//! Retry-After), and the circuit breaker.

use std::time::{Duration, Instant};

use docket::domain::JobId;
use docket_tests::inprocess::{start_api, ADMIN_TOKEN};
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Reply, Target, TestDb, Worker, API_KEY};
use serde_json::Value;

/// An `http` action named `dam` calling `url`, with `extra` catalog lines.
fn dam_catalog(url: &str, extra: &str) -> tempfile::TempDir {
    catalog(&format!(
        "[[action]]\nname = \"dam\"\nkind = \"http\"\nurl = \"{url}\"\nretry_base = \"100ms\"\nretry_max = \"2s\"\n{extra}\n"
    ))
}

/// Quick polls, leases and rescues, so that the tests take seconds.
fn quick(concurrency: u32) -> Vec<(&'static str, String)> {
    vec![
        ("DOCKET_WORKER_CONCURRENCY", concurrency.to_string()),
        ("DOCKET_WORKER_POLL_INTERVAL", "200ms".into()),
        ("DOCKET_WORKER_LEASE", "2s".into()),
        ("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".into()),
    ]
}

struct Cluster {
    db: TestDb,
    api: String,
    workers: Vec<Worker>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(dir: tempfile::TempDir, workers: usize, concurrency: u32) -> Self {
        let db = TestDb::new().await;
        let api = start_api(&db.url, &catalog_path(&dir)).await;
        // No idle connections kept: the api closes a connection that stays idle past its
        // header timeout, and a request sent on it at that moment would fail.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let mut cluster = Self { db, api, workers: Vec::new(), client, _dir: dir };
        for n in 0..workers {
            cluster.add_worker(&format!("w-{n}"), concurrency).await;
        }
        cluster
    }

    async fn add_worker(&mut self, id: &str, concurrency: u32) {
        self.add_worker_with(id, &quick(concurrency)).await;
    }

    async fn add_worker_with(&mut self, id: &str, env: &[(&'static str, String)]) {
        let worker = Worker::start(&self.db.url, &catalog_path(&self._dir), id, env).await;
        self.workers.push(worker);
    }

    /// Triggers `n` jobs of `dam` the way Workfront does; each must be accepted.
    async fn trigger(&self, n: usize) -> Vec<JobId> {
        self.trigger_documents("doc", n).await
    }

    /// Triggers `dam` on documents `{prefix}-0` … `{prefix}-{n-1}`; each must be accepted.
    async fn trigger_documents(&self, prefix: &str, n: usize) -> Vec<JobId> {
        let mut ids = Vec::new();
        for i in 0..n {
            let response = self
                .client
                .get(format!("{}/customAction", self.api))
                .query(&[("name", "dam"), ("documentId", &format!("{prefix}-{i}")), ("documentVersionId", "v1")])
                .header("apiKey", API_KEY)
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], "success", "{body}");
            ids.push(JobId(body["jobId"].as_str().unwrap().parse().unwrap()));
        }
        ids
    }

    async fn count(&self, sql_where: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from jobs where {sql_where}"))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    async fn wait_all_succeeded(&self, n: i64) {
        wait_until("every job to succeed", DEADLINE, || async {
            (self.count("state = 'succeeded'").await == n).then_some(())
        })
        .await;
    }

    async fn ops(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.api)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn dam_flow(&self) -> Value {
        let (status, body) = self.ops(reqwest::Method::GET, "/ops/actions", None).await;
        assert_eq!(status, 200, "{body}");
        body["actions"].as_array().unwrap().iter().find(|a| a["action"] == "dam").cloned().unwrap()
    }
}

/// The most requests that arrived within any window of `window` (the target's own
/// receive times).
fn most_in_any_window(target: &Target, window: Duration) -> usize {
    let mut times: Vec<Instant> = target.received().iter().map(|r| r.at).collect();
    times.sort();
    (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t - times[i] < window).count()).max().unwrap_or(0)
}

#[tokio::test]
async fn max_concurrency_holds_exactly_across_three_worker_processes() {
    let target = Target::start(|_| Reply::status(200).delay(Duration::from_millis(200))).await;
    let cluster = Cluster::start(dam_catalog(&target.url, "max_concurrency = 3"), 3, 64).await;
    cluster.trigger(60).await;
    cluster.wait_all_succeeded(60).await;
    assert_eq!(target.count(), 60, "one call per job");
    assert_eq!(target.max_in_flight(), 3, "the limit is reached and never exceeded");
}

#[tokio::test]
async fn without_the_limit_the_same_load_exceeds_it() {
    // The negative control of the test above: the target does see more than 3 at once
    // when nothing limits the action, so that test can fail.
    let target = Target::start(|_| Reply::status(200).delay(Duration::from_millis(200))).await;
    let cluster = Cluster::start(dam_catalog(&target.url, ""), 3, 64).await;
    cluster.trigger(60).await;
    cluster.wait_all_succeeded(60).await;
    assert!(target.max_in_flight() > 3, "max in flight {}", target.max_in_flight());
}

#[tokio::test]
async fn a_killed_slot_holder_gives_its_slots_back_and_the_limit_still_holds() {
    // The first three calls take a second, so the first worker holds every slot when
    // it is killed; its leases (4 s) outlast those calls, so the rescued jobs start
    // only after the target answered them. (Long enough, too, that no live worker's
    // lease runs out on a busy machine.)
    let target = Target::start(|n| {
        let delay = if n <= 3 { Duration::from_secs(1) } else { Duration::from_millis(100) };
        Reply::status(200).delay(delay)
    })
    .await;
    let mut env = quick(64);
    env.retain(|(key, _)| *key != "DOCKET_WORKER_LEASE");
    env.push(("DOCKET_WORKER_LEASE", "4s".into()));
    let mut cluster = Cluster::start(dam_catalog(&target.url, "max_concurrency = 3"), 0, 64).await;
    cluster.add_worker_with("w-a", &env).await;
    cluster.trigger(30).await;
    wait_until("the first worker to hold all three slots", DEADLINE, || async { (target.count() >= 3).then_some(()) })
        .await;
    cluster.workers[0].process.kill().await;
    cluster.add_worker_with("w-b", &env).await;
    cluster.add_worker_with("w-c", &env).await;
    cluster.wait_all_succeeded(30).await;
    assert!(target.max_in_flight() <= 3, "max in flight {}", target.max_in_flight());
    let rescued = cluster.count("attempts = 2").await;
    assert_eq!(rescued, 3, "the killed worker's three jobs ran again");
}

#[tokio::test]
async fn max_concurrency_holds_exactly_while_claims_rely_on_the_running_bound() {
    // Claims of 8 slots (and a job ahead) against a limit of 20: while the bound kept
    // since the last count leaves room, a claim does not count the running jobs; the
    // third worker's claim does, and takes what is left.
    let target = Target::start(|_| Reply::status(200).delay(Duration::from_millis(200))).await;
    let cluster = Cluster::start(dam_catalog(&target.url, "max_concurrency = 20"), 3, 8).await;
    cluster.trigger(120).await;
    cluster.wait_all_succeeded(120).await;
    assert_eq!(target.count(), 120, "one call per job");
    assert_eq!(target.max_in_flight(), 20, "the limit is reached and never exceeded");
    let (bound, counted): (Option<i32>, bool) =
        sqlx::query_as("select running_bound, running_counted_at is not null from limit_groups where name = 'dam'")
            .fetch_one(&cluster.db.pool)
            .await
            .unwrap();
    assert!(counted && bound.is_some_and(|b| (0..=20).contains(&b)), "bound {bound:?}");
}

#[tokio::test]
async fn a_rate_limit_holds_in_every_sliding_window_across_three_processes() {
    let target = Target::always(200).await;
    let cluster = Cluster::start(dam_catalog(&target.url, "rate = \"10/1s\"\nburst = 2"), 3, 64).await;
    cluster.trigger(60).await;
    cluster.wait_all_succeeded(60).await;
    assert_eq!(target.count(), 60);
    // burst + rate × 1 s
    let most = most_in_any_window(&target, Duration::from_secs(1));
    assert!(most <= 12, "{most} calls within one second");
}

#[tokio::test]
async fn a_rate_limit_with_a_start_window_holds_in_every_sliding_window_across_three_processes() {
    // Calls of 5 ms on two slots a worker: the workers take jobs ahead of their slots,
    // which start within the 20 ms window a burst of 20 at 100/s grants.
    let target = Target::start(|_| Reply::status(200).delay(Duration::from_millis(5))).await;
    let cluster = Cluster::start(dam_catalog(&target.url, "rate = \"100/1s\"\nburst = 20"), 3, 2).await;
    cluster.trigger(300).await;
    cluster.wait_all_succeeded(300).await;
    assert_eq!(target.count(), 300, "one call per job");
    for (window, most) in [(1000, 20 + 100), (250, 20 + 25), (50, 20 + 5)] {
        let seen = most_in_any_window(&target, Duration::from_millis(window));
        assert!(seen <= most, "{seen} calls within {window} ms (at most {most})");
    }
}

#[tokio::test]
async fn a_paused_action_accepts_triggers_starts_nothing_and_drains_on_resume() {
    let target = Target::always(200).await;
    let cluster = Cluster::start(dam_catalog(&target.url, ""), 2, 64).await;
    let (status, body) =
        cluster.ops(reqwest::Method::POST, "/ops/actions/dam/pause", Some(r#"{"note":"DAM upgrade"}"#)).await;
    assert_eq!((status, body["paused"].clone()), (200, Value::Bool(true)), "{body}");

    let ids = cluster.trigger(10).await;
    // Absence cannot be polled for: give the workers several polls (200 ms) and
    // notifications to start something, then check that nothing started.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(target.count(), 0);
    let attempts: i64 =
        sqlx::query_scalar("select count(*) from job_attempts").fetch_one(&cluster.db.pool).await.unwrap();
    assert_eq!(attempts, 0);

    let flow = cluster.dam_flow().await;
    assert_eq!(flow["paused"]["by"], "tester");
    assert_eq!(flow["paused"]["note"], "DAM upgrade");
    let (_, detail) = cluster.ops(reqwest::Method::GET, &format!("/ops/jobs/{}", ids[0]), None).await;
    let explanation = detail["explanation"].as_str().unwrap();
    assert!(explanation.contains("paused by tester"), "{explanation}");

    let (status, _) = cluster.ops(reqwest::Method::POST, "/ops/actions/dam/resume", None).await;
    assert_eq!(status, 200);
    cluster.wait_all_succeeded(10).await;
    let (status, _) = cluster.ops(reqwest::Method::POST, "/ops/actions/dam/resume", None).await;
    assert_eq!(status, 409, "resuming an action that is not paused");

    let (_, audit) = cluster.ops(reqwest::Method::GET, "/ops/audit", None).await;
    let kinds: Vec<&str> =
        audit["operatorActions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"pause") && kinds.contains(&"resume"), "{kinds:?}");
}

#[tokio::test]
async fn a_pause_with_an_end_ends_by_itself() {
    let target = Target::always(200).await;
    let cluster = Cluster::start(dam_catalog(&target.url, ""), 1, 8).await;
    let until = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let (status, body) =
        cluster.ops(reqwest::Method::POST, "/ops/actions/dam/pause", Some(&format!(r#"{{"until":"{until}"}}"#))).await;
    assert_eq!(status, 200, "{body}");
    let paused_at = Instant::now();
    cluster.trigger(3).await;
    cluster.wait_all_succeeded(3).await;
    assert!(paused_at.elapsed() >= Duration::from_millis(1500), "jobs ran during the pause");
    assert!(cluster.dam_flow().await["paused"].is_null());
}

#[tokio::test]
async fn pause_requests_are_checked() {
    let target = Target::always(200).await;
    let cluster = Cluster::start(dam_catalog(&target.url, ""), 0, 1).await;
    let post = reqwest::Method::POST;
    let cases: [(&str, Option<&str>, u16, &str); 7] = [
        ("/ops/actions/dam/pause", Some("[null, null]"), 400, "expected a JSON object"),
        ("/ops/actions/nope/pause", None, 404, "no action named \"nope\""),
        ("/ops/actions/dam/pause", Some(r#"{"until":"2020-01-01T00:00:00Z"}"#), 409, "already passed"),
        ("/ops/actions/dam/pause", Some(r#"{"until":"tomorrow"}"#), 400, "not a pause request"),
        ("/ops/actions/dam/pause", Some("{\"note\":\"<script>\\u0007\"}"), 400, "control characters"),
        ("/ops/actions/dam/close-circuit", None, 409, "is closed"),
        ("/ops/actions/dam/resume", None, 409, "is not paused"),
    ];
    for (path, body, status, error) in cases {
        let (got, reply) = cluster.ops(post.clone(), path, body).await;
        assert_eq!(got, status, "{path} {body:?}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains(error), "{path} {body:?}: {reply}");
    }
    let long = format!("/ops/actions/{}/pause", "x".repeat(5000));
    let (got, reply) = cluster.ops(post.clone(), &long, None).await;
    assert_eq!(got, 404, "{reply}");
    assert!(reply["error"].as_str().unwrap().len() < 200, "the reply does not echo a hostile name whole");
    let unauthenticated =
        cluster.client.post(format!("{}/ops/actions/dam/pause", cluster.api)).send().await.unwrap().status();
    assert_eq!(unauthenticated, 401);
    assert!(cluster.dam_flow().await["paused"].is_null(), "no refused request paused the action");
}

#[tokio::test]
async fn back_pressure_spends_no_attempt_and_pauses_the_action() {
    // 429 with Retry-After: 2 for five seconds from the first call, then 200: the first
    // job is turned away at least twice, more than its two attempts would allow.
    let first_call = std::sync::Arc::new(std::sync::OnceLock::new());
    let target = Target::start(move |_| {
        if first_call.get_or_init(Instant::now).elapsed() < Duration::from_secs(5) {
            Reply::status(429).retry_after("2")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let cluster = Cluster::start(dam_catalog(&target.url, "max_attempts = 2"), 2, 64).await;
    cluster.trigger(20).await;
    // Once the target has pushed back, the action waits as a whole: jobs triggered now
    // are not called before the time the target gave either.
    let remaining: f64 = wait_until("the action to wait for the target", DEADLINE, || async {
        sqlx::query_scalar::<_, Option<f64>>(
            "select extract(epoch from backoff_until - now())::float8 from action_controls where action = 'dam'",
        )
        .fetch_optional(&cluster.db.pool)
        .await
        .unwrap()
        .flatten()
        .filter(|seconds| *seconds > 0.5)
    })
    .await;
    let waits_until = Instant::now() + Duration::from_secs_f64(remaining) - Duration::from_millis(50);
    // (Accepted while the action waits: `trigger_documents` checks each reply.)
    let later: Vec<String> = cluster.trigger_documents("later", 5).await.iter().map(|id| id.to_string()).collect();
    cluster.wait_all_succeeded(25).await;
    let throttled: i64 = sqlx::query_scalar("select count(*) from job_attempts where outcome = 'throttled'")
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert!(throttled >= 2, "throttled attempts: {throttled}");
    assert_eq!(cluster.count("state = 'failed'").await, 0, "no attempt was burnt on a 429");
    assert!(cluster.count("snoozes >= 2").await >= 1, "a job turned away twice still succeeded with max_attempts = 2");
    assert_eq!(cluster.count("max_attempts <> 2 + snoozes").await, 0, "each snooze gave its attempt back");
    let early: Vec<Instant> = target
        .received()
        .iter()
        .filter(|r| later.iter().any(|id| r.body["jobId"] == id.as_str()) && r.at < waits_until)
        .map(|r| r.at)
        .collect();
    assert!(early.is_empty(), "{} calls of later jobs while the action waited", early.len());
}

#[tokio::test]
async fn an_open_circuit_lets_one_probe_through_per_cool_down_and_closes_when_the_target_is_back() {
    // Down (503 without Retry-After) for five seconds, then up.
    let started = Instant::now();
    let down_for = Duration::from_secs(5);
    let target =
        Target::start(move |_| if started.elapsed() < down_for { Reply::status(503) } else { Reply::status(200) })
            .await;
    let extra = "max_attempts = 30\ncircuit = { failures = 3, cool_down = \"1s\", cool_down_max = \"2s\" }";
    // Two workers with one slot each: at most two calls are under way when it opens.
    let cluster = Cluster::start(dam_catalog(&target.url, extra), 2, 1).await;
    cluster.trigger(10).await;
    cluster.wait_all_succeeded(10).await;

    let mut down: Vec<Duration> =
        target.received().iter().map(|r| r.at.duration_since(started)).filter(|t| *t < down_for).collect();
    down.sort();
    // Three failures open it (a fourth may have been under way); after that, probes
    // only, one per cool-down (1 s, then 2 s).
    let probes = &down[down.len().min(4)..];
    assert!(!probes.is_empty(), "the circuit let a probe through while the target was down: {down:?}");
    for pair in probes.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(900), "two probes within one cool-down: {down:?}");
    }
    assert!(down.len() <= 4 + 5, "calls while down: {down:?}");
    let flow = cluster.dam_flow().await;
    assert_eq!(flow["circuit"]["state"], "closed", "{flow}");
}

#[tokio::test]
async fn an_operator_closes_an_open_circuit_by_hand() {
    let target = Target::always(503).await;
    let extra = "max_attempts = 100\ncircuit = { failures = 2, cool_down = \"1h\" }";
    let cluster = Cluster::start(dam_catalog(&target.url, extra), 1, 4).await;
    cluster.trigger(4).await;
    wait_until("the circuit to open", DEADLINE, || async {
        (cluster.dam_flow().await["circuit"]["state"] == "open").then_some(())
    })
    .await;
    let calls = target.count();
    let (status, body) = cluster.ops(reqwest::Method::POST, "/ops/actions/dam/close-circuit", None).await;
    assert_eq!(status, 200, "{body}");
    wait_until("calls to resume after the close", DEADLINE, || async { (target.count() > calls).then_some(()) }).await;
    let (_, audit) = cluster.ops(reqwest::Method::GET, "/ops/audit", None).await;
    assert_eq!(audit["operatorActions"][0]["action"], "close_circuit");
}

#[tokio::test]
async fn the_dashboard_shows_flow_control_and_pauses_and_resumes_with_csrf() {
    let target = Target::always(200).await;
    let cluster =
        Cluster::start(dam_catalog(&target.url, "max_concurrency = 3\nrate = \"5/1s\"\nburst = 2"), 0, 1).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client.post(format!("{}/ops/login", cluster.api)).form(&[("token", ADMIN_TOKEN)]).send().await.unwrap();
    let session = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let overview = || async {
        let page = client.get(format!("{}/ops/", cluster.api)).header("cookie", &session).send().await.unwrap();
        page.text().await.unwrap()
    };
    let html = overview().await;
    let row =
        html.split("<tr data-action=\"dam\">").nth(1).expect("a row for the action").split("</tr>").next().unwrap();
    assert!(row.contains("0 / 3") && row.contains("5/1s (burst 2)") && row.contains("running freely"), "{row}");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

    let post = |path: &'static str, csrf: String| {
        let (client, session, base) = (client.clone(), session.clone(), cluster.api.clone());
        async move {
            client.post(format!("{base}{path}")).header("cookie", session).form(&[("csrf", csrf)]).send().await.unwrap()
        }
    };
    assert_eq!(post("/ops/ui/actions/dam/pause", "wrong".into()).await.status(), 403);
    assert!(cluster.dam_flow().await["paused"].is_null(), "a forged form changed nothing");
    assert_eq!(post("/ops/ui/actions/dam/pause", csrf.clone()).await.status(), 303);
    assert_eq!(cluster.dam_flow().await["paused"]["by"], "tester");
    assert!(overview().await.contains("<strong>paused</strong> by tester until resumed"));
    assert_eq!(post("/ops/ui/actions/dam/resume", csrf.clone()).await.status(), 303);
    assert!(cluster.dam_flow().await["paused"].is_null());
    let refused = post("/ops/ui/actions/dam/resume", csrf).await;
    assert_eq!(refused.status(), 409);
    assert!(refused.text().await.unwrap().contains("is not paused"));
}

#[tokio::test]
async fn metrics_show_running_pauses_and_circuits_per_action() {
    let target = Target::always(200).await;
    let cluster = Cluster::start(dam_catalog(&target.url, "circuit = { failures = 5 }"), 0, 1).await;
    cluster.ops(reqwest::Method::POST, "/ops/actions/dam/pause", None).await;
    let metrics = cluster.client.get(format!("{}/metrics", cluster.api)).send().await.unwrap().text().await.unwrap();
    for series in [
        "docket_action_running{action=\"dam\"} 0",
        "docket_action_paused{action=\"dam\",reason=\"operator\"} 1",
        "docket_action_paused{action=\"dam\",reason=\"retry_after\"} 0",
        "docket_action_paused{action=\"dam\",reason=\"circuit\"} 0",
        "docket_action_circuit_state{action=\"dam\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn a_limited_action_claims_again_as_slots_free_without_waiting_for_the_poll() {
    // Found by docket-bench: a worker that serves only limited actions claimed a batch,
    // then waited for the next poll instead of claiming as its slots freed. With a
    // ten-minute poll, only event-driven claims can finish these jobs in time.
    let target = Target::always(200).await;
    let mut cluster = Cluster::start(dam_catalog(&target.url, "max_concurrency = 1000"), 0, 1).await;
    cluster.trigger(100).await;
    let worker = Worker::start(
        &cluster.db.url,
        &catalog_path(&cluster._dir),
        "w-slow-poll",
        &[("DOCKET_WORKER_CONCURRENCY", "4".into()), ("DOCKET_WORKER_POLL_INTERVAL", "10m".into())],
    )
    .await;
    cluster.workers.push(worker);
    cluster.wait_all_succeeded(100).await;
}

/// The catalog of the statement-level tests below: `a` and `b` share limit group `g`
/// (10/1s), `c` has a circuit of 2 failures.
fn statement_catalog() -> docket::catalog::Catalog {
    let text = "[[action]]\nname = \"a\"\nkind = \"noop\"\nlimit_group = \"g\"\nrate = \"10/1s\"\nburst = 10\n\n\
                [[action]]\nname = \"b\"\nkind = \"noop\"\nlimit_group = \"g\"\n\n\
                [[action]]\nname = \"c\"\nkind = \"noop\"\ncircuit = { failures = 2, cool_down = \"1h\", cool_down_max = \"3h\" }\n";
    docket::catalog::Catalog::parse(text, std::path::Path::new("actions.toml")).unwrap()
}

async fn effective_rate(db: &TestDb) -> f64 {
    sqlx::query_scalar("select effective_rate from limit_groups where name = 'g'").fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn back_pressure_halves_the_group_rate_once_per_wait_and_successes_raise_it_back_to_the_configured_rate() {
    use docket::db::flow::{self, FlowRules, Verdict};
    let db = TestDb::new().await;
    let catalog = statement_catalog();
    flow::configure(&db.pool, catalog.limit_groups()).await.unwrap();
    let rules = FlowRules::from_catalog(&catalog);
    let throttled = |action: &str| (action.to_owned(), JobId::new(), Verdict::Throttled(Duration::from_secs(30)));
    let succeeded = |action: &str| (action.to_owned(), JobId::new(), Verdict::Succeeded);
    assert_eq!(effective_rate(&db).await, 10.0);

    flow::feedback(&db.pool, &rules, &[throttled("a")]).await.unwrap();
    assert_eq!(effective_rate(&db).await, 5.0, "halved");
    // Every action of the group waits, not only the one that was turned away.
    let waiting: Vec<String> = sqlx::query_scalar(
        "select action from action_controls where backoff_until > now() + interval '25 seconds' order by action",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(waiting, ["a", "b"]);
    flow::feedback(&db.pool, &rules, &[throttled("b"), throttled("a")]).await.unwrap();
    assert_eq!(effective_rate(&db).await, 5.0, "at most once per wait");

    // Each success adds a fiftieth of the configured rate, up to the configured rate.
    let ten: Vec<_> = (0..10).map(|_| succeeded("b")).collect();
    flow::feedback(&db.pool, &rules, &ten).await.unwrap();
    assert!((effective_rate(&db).await - 7.0).abs() < 1e-9);
    let many: Vec<_> = (0..100).map(|_| succeeded("a")).collect();
    flow::feedback(&db.pool, &rules, &many).await.unwrap();
    assert_eq!(effective_rate(&db).await, 10.0, "never above the configured rate");
}

#[tokio::test]
async fn a_circuit_counts_consecutive_failures_and_only_its_probe_decides() {
    use docket::db::flow::{self, FlowRules, Verdict};
    let db = TestDb::new().await;
    let catalog = statement_catalog();
    flow::configure(&db.pool, catalog.limit_groups()).await.unwrap();
    let rules = FlowRules::from_catalog(&catalog);
    let ended = |verdict: Verdict| ("c".to_owned(), JobId::new(), verdict);
    let state = || async {
        sqlx::query_as::<_, (String, i32, Option<f64>)>(
            "select circuit, failures, cool_down_seconds from action_controls where action = 'c'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    // A permanent error (the target answered) breaks the run of failures.
    flow::feedback(&db.pool, &rules, &[ended(Verdict::Failed), ended(Verdict::Answered)]).await.unwrap();
    assert_eq!(state().await, ("closed".into(), 0, None));
    flow::feedback(&db.pool, &rules, &[ended(Verdict::Failed)]).await.unwrap();
    assert_eq!(state().await.1, 1);
    flow::feedback(&db.pool, &rules, &[ended(Verdict::Failed)]).await.unwrap();
    assert_eq!(state().await, ("open".into(), 2, Some(3600.0)));

    // Half-open with a probe: another job's success decides nothing, the probe's
    // failure reopens it for twice as long (capped), the probe's success closes it.
    let probe = JobId::new();
    sqlx::query("update action_controls set circuit = 'half_open', probe_job = $1 where action = 'c'")
        .bind(probe.0)
        .execute(&db.pool)
        .await
        .unwrap();
    flow::feedback(&db.pool, &rules, &[ended(Verdict::Succeeded)]).await.unwrap();
    assert_eq!(state().await.0, "half_open");
    flow::feedback(&db.pool, &rules, &[("c".to_owned(), probe, Verdict::Failed)]).await.unwrap();
    assert_eq!(state().await.0, "open");
    assert_eq!(state().await.2, Some(7200.0));
    sqlx::query(
        "update action_controls set circuit = 'half_open', probe_job = $1, cool_down_seconds = 7200 where action = 'c'",
    )
    .bind(probe.0)
    .execute(&db.pool)
    .await
    .unwrap();
    flow::feedback(&db.pool, &rules, &[("c".to_owned(), probe, Verdict::Failed)]).await.unwrap();
    assert_eq!(state().await.2, Some(10800.0), "capped at cool_down_max");
    sqlx::query("update action_controls set circuit = 'half_open', probe_job = $1 where action = 'c'")
        .bind(probe.0)
        .execute(&db.pool)
        .await
        .unwrap();
    flow::feedback(&db.pool, &rules, &[("c".to_owned(), probe, Verdict::Succeeded)]).await.unwrap();
    assert_eq!(state().await, ("closed".into(), 0, None));
}
