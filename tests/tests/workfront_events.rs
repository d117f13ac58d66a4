//! Workfront event subscriptions, end to end with the real binaries: a delivery in,
//! jobs out (only for the triggers whose filters match), the templated request at the
//! target, the follow-up note back on Workfront; redeliveries, bad input, tokens, a
//! database that is away, operators' views, metrics and retention.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use docket::db::jobs;
use docket::domain::{JobId, JobState};
use docket_tests::deliveries::{Answer, Encoding, Event, Sender};
use docket_tests::proxy::Proxy;
use docket_tests::wait::DEADLINE;
use docket_tests::workfront::{self, Workfront};
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker, ADMIN_TOKEN, EVENT_TOKEN};

/// `examples/workfront-events.toml`, its hosts pointed at `target` and the stand-in.
fn example(target: &str, workfront: &str) -> tempfile::TempDir {
    let origin = target.trim_end_matches("/hook");
    catalog(
        &include_str!("../../examples/workfront-events.toml")
            .replace("https://dam.example.com", origin)
            .replace("https://example.my.workfront.com", workfront)
            // The stand-ins speak plain HTTP on loopback.
            .replace("kind = \"http\"", "kind = \"http\"\nallow_http = true"),
    )
}

/// A catalog of noop actions with the "became approved" trigger and an
/// any-task-deleted one running two actions.
const NOOPS: &str = r#"
[[action]]
name = "archive"
kind = "noop"
menu = false

[[action]]
name = "tell"
kind = "noop"
menu = false

[[action]]
name = "menu-item"
kind = "noop"

[[trigger]]
name = "became-approved"
obj_code = "DOCU"
event_type = "UPDATE"
run = "archive"
filters = [{ field = "status", comparison = "changed" }, { field = "status", comparison = "eq", value = "APR" }]

[[trigger]]
name = "task-deleted"
obj_code = "TASK"
event_type = "DELETE"
run = ["archive", "tell"]
"#;

/// The api with the test tokens (events and admin) and `extra`.
async fn start(database_url: &str, dir: &tempfile::TempDir, extra: &[(&str, String)]) -> Api {
    let mut env = vec![("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}"))];
    env.extend(extra.iter().cloned());
    Api::start(database_url, &catalog_path(dir), &env).await
}

fn sender(api: &Api) -> Sender {
    Sender::new(&api.base, &format!("Bearer {EVENT_TOKEN}"))
}

fn ok(answer: &Answer) -> &Value {
    match answer {
        Answer::Status(200, body) => body,
        other => panic!("expected 200, got {other:?}"),
    }
}

fn job_ids(body: &Value) -> Vec<JobId> {
    serde_json::from_value(body["jobIds"].clone()).expect("jobIds")
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("select count(*) from {table}")).fetch_one(&db.pool).await.unwrap()
}

async fn final_job(db: &TestDb, id: JobId) -> jobs::JobRow {
    wait_until(&format!("job {id} to finish"), DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await
}

#[tokio::test]
async fn an_approval_archives_the_document_with_the_event_in_its_templates_and_notes_back() {
    let db = TestDb::new().await;
    let workfront = Workfront::start(false).await;
    let target = Target::start(|_| Reply::status(200).body(r#"{"data":{"receipt":"R-1"}}"#)).await;
    let dir = example(&target.url, &workfront.base);
    let api = start(&db.url, &dir, &[]).await;
    let _worker = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-events",
        &[("WORKFRONT_API_KEY", workfront::API_KEY.to_owned())],
    )
    .await;

    let approve = Event::document_update("doc-42", "Brief „Q3“.pdf", "CUR", "APR", 1_780_000_000);
    let answer = sender(&api).post(&approve.message(Encoding::Object)).await;
    let body = ok(&answer);
    assert_eq!(body["status"], "success");
    assert_eq!(body["triggers"], json!(["archive-approved"]));
    assert_eq!(body["duplicate"], false);
    let [id] = job_ids(body)[..] else { panic!("one job: {body}") };

    // The job exists the moment the answer does (committed before it).
    let job = jobs::get(&db.pool, id).await.unwrap().expect("stored before the reply");
    assert_eq!(job.action, "archive-approved-document");
    assert_eq!(job.trigger.as_deref(), Some("archive-approved"));
    assert_eq!((job.document_id.as_str(), job.document_version_id.as_str()), ("doc-42", "doc-42-v2"));
    let done = final_job(&db, id).await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);

    let [request] = &target.received()[..] else { panic!("one request at the target") };
    assert_eq!((request.method.as_str(), request.uri.path()), ("PUT", "/api/documents/doc-42"));
    assert_eq!(
        request.body,
        json!({"name": "Brief „Q3“.pdf", "version": "doc-42-v2", "region": "EMEA",
               "approvedAt": "2026-05-28T20:26:40.941Z", "approvedBy": "user-7", "trigger": "archive-approved"})
    );
    let notes = wait_until("the note on Workfront", DEADLINE, || async {
        let posted = workfront.posted();
        (!posted.is_empty()).then_some(posted)
    })
    .await;
    assert_eq!(notes[0].object_id, "doc-42");
    assert!(notes[0].text.contains("archiving \"Brief „Q3“.pdf\" succeeded after 1 attempt(s)"), "{}", notes[0].text);
    assert!(notes[0].text.contains("Receipt: R-1"), "{}", notes[0].text);

    // Operators see the trigger and the event on the job, and can list by trigger.
    let client = reqwest::Client::new();
    let detail = api.job_detail(&client, id).await;
    assert_eq!(detail["job"]["trigger"], "archive-approved");
    let event = &detail["event"];
    assert_eq!(
        (&event["objCode"], &event["objID"], &event["eventType"], &event["eventTime"], &event["subscriptionId"]),
        (
            &json!("DOCU"),
            &json!("doc-42"),
            &json!("UPDATE"),
            &json!("2026-05-28T20:26:40.941Z"),
            &json!(approve.subscription_id)
        )
    );
    let listed = ops_json(&client, &api, "/ops/jobs?trigger=archive-approved").await;
    let listed: Vec<&str> = listed["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [id.to_string()]);
    let cookie = dashboard_cookie(&api).await;
    let page = dashboard_page(&client, &api, &format!("/ops/ui/jobs/{id}"), &cookie).await;
    assert!(page.contains("archive-approved") && page.contains("UPDATE DOCU"), "the job page shows the event");
    let overview = dashboard_page(&client, &api, "/ops/", &cookie).await;
    assert!(overview.contains("1 received in the last hour"), "the overview counts events");
    assert_eq!(ops_json(&client, &api, "/ops/stats").await["events"][0]["received"], 1);
}

/// An ops API reply, with the tests' admin token.
async fn ops_json(client: &reqwest::Client, api: &Api, path: &str) -> Value {
    let response = client.get(format!("{}{path}", api.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    response.json().await.unwrap()
}

/// A dashboard page, with a session cookie.
async fn dashboard_page(client: &reqwest::Client, api: &Api, path: &str, cookie: &str) -> String {
    let response = client.get(format!("{}{path}", api.base)).header("cookie", cookie).send().await.unwrap();
    response.text().await.unwrap()
}

/// Signs in to the dashboard and returns the session cookie.
async fn dashboard_cookie(api: &Api) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.post(format!("{}/ops/login", api.base)).form(&[("token", ADMIN_TOKEN)]).send().await.unwrap();
    let cookie = response.headers().get("set-cookie").expect("a session cookie").to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn became_approved_fires_once_and_a_broader_delivery_runs_only_what_matches() {
    let db = TestDb::new().await;
    let dir = catalog(NOOPS);
    let api = start(&db.url, &dir, &[]).await;
    let send = sender(&api);
    let approve = Event::document_update("d1", "a.pdf", "CUR", "APR", 1_780_000_000);
    let body = ok(&send.post(&approve.message(Encoding::Object)).await).clone();
    assert_eq!(job_ids(&body).len(), 1);
    // A later edit of the approved document: status stays APR.
    let rename = Event::document_update("d1", "b.pdf", "APR", "APR", 1_780_000_100);
    let body = ok(&send.post(&rename.message(Encoding::Object)).await).clone();
    assert_eq!((body["triggers"].clone(), job_ids(&body).len()), (json!([]), 0), "no job for an edit: {body}");
    // Rejected, not approved: no job either (the subscription may be broader).
    let reject = Event::document_update("d2", "c.pdf", "CUR", "REJ", 1_780_000_200);
    assert_eq!(job_ids(ok(&send.post(&reject.message(Encoding::Object)).await)).len(), 0);
    // A task deleted: two jobs, one per action of the trigger, from `oldState`.
    let deleted = Event {
        event_type: "DELETE",
        subscription_id: "sub-tasks".into(),
        epoch_second: 1_780_000_300,
        nano: 0,
        new_state: json!({}),
        old_state: json!({"ID": "task-9", "objCode": "TASK", "name": "Review"}),
    };
    let body = ok(&send.post(&deleted.message(Encoding::Object)).await).clone();
    let ids = job_ids(&body);
    assert_eq!(ids.len(), 2);
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from jobs where trigger = 'task-deleted' and document_id = '' order by action",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["archive", "tell"]);
    // Redeliveries answer from what was stored: both jobs of the task's trigger, and
    // nothing for the edit.
    let again = ok(&send.post(&deleted.message(Encoding::Object)).await).clone();
    assert_eq!(
        (again["triggers"].clone(), job_ids(&again), again["duplicate"].clone()),
        (json!(["task-deleted"]), ids.clone(), json!(true))
    );
    let again = ok(&send.post(&rename.message(Encoding::Object)).await).clone();
    assert_eq!(
        (again["triggers"].clone(), job_ids(&again).len(), again["duplicate"].clone()),
        (json!([]), 0, json!(true))
    );
    assert_eq!(count(&db, "jobs").await, 3);
    assert_eq!(count(&db, "workfront_events").await, 4, "every delivery is recorded, matched or not");

    // `/metrics` counts deliveries by trigger and outcome.
    let metrics = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
    for line in [
        r#"docket_workfront_events_total{trigger="became-approved",outcome="matched"} 1"#,
        r#"docket_workfront_events_total{trigger="task-deleted",outcome="matched"} 1"#,
        r#"docket_workfront_events_total{trigger="",outcome="unmatched"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn states_as_objects_json_strings_or_base64_all_start_jobs() {
    let db = TestDb::new().await;
    let dir = catalog(NOOPS);
    let api = start(&db.url, &dir, &[]).await;
    for (n, encoding) in [Encoding::Object, Encoding::JsonString, Encoding::Base64].into_iter().enumerate() {
        let event = Event::document_update(&format!("doc-{n}"), "x.pdf", "CUR", "APR", 1_780_000_000);
        let body = ok(&sender(&api).post(&event.message(encoding)).await).clone();
        let [id] = job_ids(&body)[..] else { panic!("{encoding:?}: {body}") };
        let job = jobs::get(&db.pool, id).await.unwrap().unwrap();
        assert_eq!(job.document_id, format!("doc-{n}"), "{encoding:?}");
    }
}

#[tokio::test]
async fn a_redelivery_gets_the_first_answer_and_fifty_at_once_make_one_set_of_jobs() {
    let db = TestDb::new().await;
    let dir = catalog(NOOPS);
    let api = start(&db.url, &dir, &[]).await;
    let send = sender(&api);
    let event = Event::document_update("d1", "a.pdf", "CUR", "APR", 1_780_000_000);
    let first = ok(&send.post(&event.message(Encoding::Object)).await).clone();
    // Redelivered, with the states encoded differently: the same event.
    let again = ok(&send.post(&event.message(Encoding::Base64)).await).clone();
    assert_eq!(again["duplicate"], true);
    assert_eq!((&again["eventId"], job_ids(&again)), (&first["eventId"], job_ids(&first)));
    assert_eq!(count(&db, "jobs").await, 1);

    // Fifty identical deliveries of a new event at once.
    let burst = Event::document_update("d2", "b.pdf", "CUR", "APR", 1_780_000_500);
    let message = burst.message(Encoding::Object);
    let answers = futures::future::join_all((0..50).map(|_| {
        let (send, message) = (send.clone(), message.clone());
        async move { send.post(&message).await }
    }))
    .await;
    let ids: Vec<Vec<JobId>> = answers.iter().map(|a| job_ids(ok(a))).collect();
    assert!(ids.iter().all(|i| i == &ids[0] && i.len() == 1), "one set of jobs: {ids:?}");
    assert_eq!(answers.iter().filter(|a| ok(a)["duplicate"] == false).count(), 1);
    assert_eq!(count(&db, "jobs").await, 2);
    assert_eq!(count(&db, "workfront_events").await, 2);

    // Out of order: an older event arriving later is its own event.
    let older = Event::document_update("d2", "b.pdf", "CUR", "APR", 1_780_000_400);
    assert_eq!(ok(&send.post(&older.message(Encoding::Object)).await)["duplicate"], false);
    let metrics = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"docket_workfront_events_total{trigger="became-approved",outcome="duplicate"} 50"#),
        "{metrics}"
    );
}

/// Deliveries that arrive together are recorded by one statement; one the database
/// refuses fails alone (a trigger on the table stands for a refusal), and the others
/// of its batch are stored with their jobs.
#[tokio::test]
async fn deliveries_recorded_together_fail_alone() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "create function pg_temp_refuse() returns trigger language plpgsql as $$
         begin
             if new.obj_id = 'refused' then raise exception 'refused by a test trigger'; end if;
             return new;
         end $$;
         create trigger refuse before insert on workfront_events for each row execute function pg_temp_refuse();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let dir = catalog(NOOPS);
    let api = start(&db.url, &dir, &[]).await;
    let send = sender(&api);
    // A writer waits on a lock with one delivery, keeping its turn (its batch was not
    // full), while the rest queue up: the next batch holds all of them, the refused one
    // among them.
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("lock table workfront_events in share row exclusive mode").execute(&mut *lock).await.unwrap();
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_locks where relation = 'workfront_events'::regclass and not granted",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let mut blocked = Vec::new();
    let message = Event::document_update("b0", "a.pdf", "CUR", "APR", 1).message(Encoding::Object);
    let first = send.clone();
    blocked.push(tokio::spawn(async move { first.post(&message).await }));
    wait_until("a writer to wait on the lock", DEADLINE, || async { (waiting().await == 1).then_some(()) }).await;
    let names: Vec<String> = (0..9).map(|n| format!("q{n}")).chain(["refused".to_owned()]).collect();
    let queued: Vec<_> = names
        .iter()
        .map(|name| {
            let (send, message) =
                (send.clone(), Event::document_update(name, "a.pdf", "CUR", "APR", 1).message(Encoding::Object));
            tokio::spawn(async move { send.post(&message).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The other writer did not start a second statement beside the first.
    assert_eq!(waiting().await, 1);
    lock.commit().await.unwrap();
    for answer in blocked {
        assert_eq!(job_ids(ok(&answer.await.unwrap())).len(), 1);
    }
    for (name, answer) in names.iter().zip(queued) {
        let answer = answer.await.unwrap();
        if name == "refused" {
            assert!(matches!(&answer, Answer::Status(503, _)), "{answer:?}");
        } else {
            assert_eq!(job_ids(ok(&answer)).len(), 1, "{name}");
        }
    }
    assert_eq!((count(&db, "workfront_events").await, count(&db, "jobs").await), (10, 10));
}

#[tokio::test]
async fn bad_deliveries_get_a_clear_error_and_store_nothing() {
    let db = TestDb::new().await;
    let dir = catalog(NOOPS);
    let api = start(&db.url, &dir, &[]).await;
    let send = sender(&api);
    let good = Event::document_update("d1", "a.pdf", "CUR", "APR", 1_780_000_000).message(Encoding::Object);
    let with = |key: &str, value: Value| {
        let mut m = good.clone();
        m[key] = value;
        m.to_string()
    };
    let without = |key: &str| {
        let mut m = good.clone();
        m.as_object_mut().unwrap().remove(key);
        m.to_string()
    };
    let mut deep = json!("leaf");
    for _ in 0..100 {
        deep = json!({"a": deep});
    }
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        ("not JSON".into(), b"{\"eventType\":".to_vec(), 400, "not JSON"),
        ("empty".into(), Vec::new(), 400, "not JSON"),
        ("an array".into(), b"[1]".to_vec(), 400, "not a JSON object"),
        ("no eventType".into(), without("eventType").into_bytes(), 400, "`eventType` is missing"),
        ("no eventTime".into(), without("eventTime").into_bytes(), 400, "`eventTime` is missing"),
        ("no newState".into(), without("newState").into_bytes(), 400, "`newState` is missing"),
        ("no oldState".into(), without("oldState").into_bytes(), 400, "`oldState` is missing"),
        ("unknown eventType".into(), with("eventType", json!("MERGE")).into_bytes(), 400, "\"MERGE\" is not"),
        (
            "bad base64".into(),
            with("newState", json!("%%%not-base64")).into_bytes(),
            400,
            "neither a JSON object nor base64",
        ),
        ("no object".into(), with("newState", json!({"name": "x"})).into_bytes(), 400, "`objCode`"),
        (
            "NUL".into(),
            with("newState", json!({"ID": "a", "objCode": "DOCU", "x": "a\u{0}b"})).into_bytes(),
            400,
            "NUL",
        ),
        ("format character".into(), with("subscriptionId", json!("s\u{202e}x")).into_bytes(), 400, "subscriptionId"),
        (
            "deep".into(),
            with("newState", json!({"ID": "a", "objCode": "DOCU", "deep": deep})).into_bytes(),
            400,
            "nesting",
        ),
        (
            "oversized".into(),
            with("newState", json!({"ID": "a", "objCode": "DOCU", "x": "y".repeat(1024 * 1024)})).into_bytes(),
            413,
            "larger than",
        ),
    ];
    for (what, body, status, message) in cases {
        match send.post_raw(body).await {
            Answer::Status(s, body) => {
                assert_eq!(s, status, "{what}: {body}");
                assert_eq!(body["status"], "failure", "{what}");
                assert!(body["error"].as_str().unwrap().contains(message), "{what}: {body}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!((count(&db, "workfront_events").await, count(&db, "jobs").await), (0, 0));
    let metrics = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"docket_workfront_events_total{trigger="",outcome="rejected"} 14"#), "{metrics}");
}

#[tokio::test]
async fn only_a_configured_token_opens_the_intake_and_without_tokens_it_is_off() {
    let db = TestDb::new().await;
    let dir = catalog(NOOPS);
    let second = "second-event-token-0123456789";
    let api = start(&db.url, &dir, &[("DOCKET_EVENT_TOKENS", format!("{EVENT_TOKEN},{second}"))]).await;
    let message = Event::document_update("d1", "a.pdf", "CUR", "APR", 1_780_000_000).message(Encoding::Object);
    for authorization in
        ["", "Bearer", "Bearer wrong-token-0123456789", &format!("Basic {EVENT_TOKEN}"), &EVENT_TOKEN[1..]]
    {
        let answer = Sender::new(&api.base, authorization).post(&message).await;
        assert!(matches!(&answer, Answer::Status(401, b) if b["status"] == "failure"), "{authorization:?}: {answer:?}");
    }
    assert_eq!(count(&db, "workfront_events").await, 0, "nothing stored for a wrong token");
    // Bare or as Bearer; the second token too (rotation).
    for (n, authorization) in [EVENT_TOKEN.to_owned(), format!("Bearer {second}")].iter().enumerate() {
        let event = Event::document_update(&format!("d{n}"), "a.pdf", "CUR", "APR", 1_780_000_000);
        ok(&Sender::new(&api.base, authorization).post(&event.message(Encoding::Object)).await);
    }
    // The menu does not offer event-only actions, and /customAction refuses them.
    let info: Value = reqwest::get(format!("{}/serviceInfo", api.base)).await.unwrap().json().await.unwrap();
    let offered: Vec<&str> =
        info["customActions"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["menu-item"]);
    let client = reqwest::Client::new();
    assert_eq!(api.custom_action(&client, "archive", "d1").await.status(), 404);
    assert_eq!(api.custom_action(&client, "menu-item", "d1").await.status(), 200);

    let off = start(&db.url, &dir, &[("DOCKET_EVENT_TOKENS", String::new())]).await;
    let answer = Sender::new(&off.base, EVENT_TOKEN).post(&message).await;
    assert!(
        matches!(&answer, Answer::Status(404, b) if b["error"].as_str().unwrap().contains("intake is off")),
        "{answer:?}"
    );
}

/// Workfront's budget is 5 s and it retries for two days: with the database away, a
/// delivery gets a 503 at once, and a redelivery after the return stores it.
#[tokio::test]
async fn with_the_database_away_deliveries_get_a_fast_503_and_workfronts_retry_stores_them() {
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let dir = catalog(NOOPS);
    let api = start(&db.url_via(proxy.addr), &dir, &[]).await;
    let send = sender(&api);
    ok(&send.post(&Event::document_update("warm", "a.pdf", "CUR", "APR", 1).message(Encoding::Object)).await);

    for cut in [true, false] {
        if cut {
            proxy.cut();
        } else {
            proxy.refuse();
        }
        let mut slowest = Duration::ZERO;
        // Every delivery after the first second of the outage answers in under 2 s.
        let outage = Instant::now();
        let mut n = 0;
        while outage.elapsed() < Duration::from_secs(5) {
            n += 1;
            let event = Event::document_update(&format!("away-{cut}-{n}"), "a.pdf", "CUR", "APR", 1_780_000_000);
            let sent = Instant::now();
            let answer = send.post(&event.message(Encoding::Object)).await;
            if outage.elapsed() > Duration::from_secs(1) {
                slowest = slowest.max(sent.elapsed());
            }
            assert!(matches!(&answer, Answer::Status(503, _)), "{answer:?}");
        }
        assert!(slowest < Duration::from_secs(2), "slowest 503 took {slowest:?}");
        proxy.restore();
        // Workfront redelivers (on its schedule, scaled down): the event is stored.
        let event = Event::document_update(&format!("after-{cut}"), "a.pdf", "CUR", "APR", 1_780_000_000);
        let answers = send.deliver(&event.message(Encoding::Object), Duration::from_millis(100)).await;
        assert!(answers.last().unwrap().is_success(), "{answers:?}");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from workfront_events where obj_id like 'away-%'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "no 503 stored anything");
    assert_eq!(count(&db, "workfront_events").await, 3);
}

#[tokio::test]
async fn workers_prune_event_records_past_their_retention_and_keep_the_jobs() {
    let db = TestDb::new().await;
    let dir = catalog(NOOPS);
    let api = start(&db.url, &dir, &[]).await;
    let old = ok(&sender(&api)
        .post(&Event::document_update("old", "a.pdf", "CUR", "APR", 1).message(Encoding::Object))
        .await)
    .clone();
    let new = ok(&sender(&api)
        .post(&Event::document_update("new", "a.pdf", "CUR", "APR", 2).message(Encoding::Object))
        .await)
    .clone();
    sqlx::query("update workfront_events set received_at = now() - interval '2 hours' where obj_id = 'old'")
        .execute(&db.pool)
        .await
        .unwrap();
    let _worker = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-prune",
        &[("DOCKET_RETENTION_EVENTS", "1h".to_owned()), ("DOCKET_RETENTION_INTERVAL", "100ms".to_owned())],
    )
    .await;
    wait_until("the old event to be pruned", DEADLINE, || async {
        (count(&db, "workfront_events").await == 1).then_some(())
    })
    .await;
    let left: String = sqlx::query_scalar("select obj_id from workfront_events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(left, "new");
    assert!(jobs::get(&db.pool, job_ids(&old)[0]).await.unwrap().is_some(), "its job stays");
    let detail = api.job_detail(&reqwest::Client::new(), job_ids(&old)[0]).await;
    assert_eq!((detail["job"]["trigger"].clone(), detail["event"].clone()), (json!("became-approved"), Value::Null));
    assert!(jobs::get(&db.pool, job_ids(&new)[0]).await.unwrap().is_some());
}
