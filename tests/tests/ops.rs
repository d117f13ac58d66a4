//! The operators' API over real HTTP against a real database: authentication, the job
//! list and its filters and pages, explanations, retry, cancel, bulk retry, figures,
//! the audit trail, metrics and the OpenAPI document.

use std::collections::HashSet;
use std::time::Duration;

use docket::db::jobs::{self, NewJob};
use docket::domain::{DocumentId, DocumentVersionId, JobId, JobState, Username};
use docket_tests::inprocess::{start_api, ADMIN_TOKEN};
use docket_tests::{catalog, catalog_path, TestDb, API_KEY};
use serde_json::Value;

const CATALOG: &str = "[[action]]\nname = \"archive\"\nkind = \"noop\"\nmax_attempts = 4\n\n\
                       [[action]]\nname = \"print\"\nkind = \"noop\"\n";

struct Ops {
    base: String,
    db: TestDb,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Ops {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let dir = catalog(CATALOG);
        let base = start_api(&db.url, &catalog_path(&dir)).await;
        Self { base, db, client: reqwest::Client::new(), _dir: dir }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn insert(&self, action: &str, document: &str, user: Option<&str>) -> JobId {
        let job = NewJob {
            id: JobId::new(),
            action: action.into(),
            document_id: DocumentId::parse(document).unwrap(),
            document_version_id: DocumentVersionId::parse("v1").unwrap(),
            requested_by: user.map(|u| Username::parse(u).unwrap()),
            max_attempts: 4,
            dedupe: false,
            traceparent: None,
        };
        jobs::insert(&self.db.pool, &job).await.unwrap();
        job.id
    }

    async fn set_state(&self, id: JobId, state: &str, attempts: i32, error: Option<&str>) {
        sqlx::query(
            "update jobs set state = $2::job_state, attempts = $3, last_error = $4,
                    finished_at = case when $2 in ('succeeded', 'failed', 'cancelled') then now() end
             where id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(attempts)
        .bind(error)
        .execute(&self.db.pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn ops_endpoints_need_the_admin_token_and_nothing_else() {
    let ops = Ops::start().await;
    let url = format!("{}/ops/jobs", ops.base);
    let client = &ops.client;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(client.get(&url).bearer_auth("wrong-token-wrong-token-000").send().await.unwrap().status(), 401);
    assert_eq!(client.get(&url).bearer_auth(API_KEY).send().await.unwrap().status(), 401, "a Workfront key");
    assert_eq!(client.get(&url).header("apiKey", API_KEY).send().await.unwrap().status(), 401);
    let response = client.post(format!("{}/ops/jobs/{}/retry", ops.base, JobId::new())).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(ops.get("/ops/jobs").await.0, 200);
    // And the admin token does not open Workfront's endpoint.
    let response = client
        .get(format!("{}/customAction?name=archive&documentId=d&documentVersionId=v", ops.base))
        .header("apiKey", ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn the_job_list_filters_and_pages_newest_first() {
    let ops = Ops::start().await;
    let mut archive = Vec::new();
    for i in 0..7 {
        archive.push(ops.insert("archive", &format!("doc-{i}"), Some("ada@example.com")).await);
    }
    let print = ops.insert("print", "doc-p", Some("bob@example.com")).await;
    ops.set_state(archive[2], "failed", 4, Some("HTTP 400")).await;

    let (status, page) = ops.get("/ops/jobs?action=archive&limit=3").await;
    assert_eq!(status, 200);
    let ids = |page: &Value| -> Vec<String> {
        page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
    };
    let first = ids(&page);
    assert_eq!(first, [archive[6], archive[5], archive[4]].map(|i| i.to_string()), "newest first");
    let mut seen: Vec<String> = first.clone();
    let mut cursor = page["nextCursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, next) = ops.get(&format!("/ops/jobs?action=archive&limit=3&cursor={c}")).await;
        seen.extend(ids(&next));
        cursor = next["nextCursor"].as_str().map(str::to_owned);
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (7, 7), "pages cover every job once");

    assert_eq!(ids(&ops.get("/ops/jobs?state=failed").await.1), [archive[2].to_string()]);
    assert_eq!(ids(&ops.get("/ops/jobs?documentId=doc-p").await.1), [print.to_string()]);
    assert_eq!(ids(&ops.get("/ops/jobs?requestedBy=bob%40example.com").await.1), [print.to_string()]);
    assert_eq!(ops.get("/ops/jobs?createdSince=2999-01-01T00:00:00Z").await.1["jobs"], serde_json::json!([]));
    assert_eq!(
        ops.get("/ops/jobs?createdUntil=2999-01-01T00:00:00Z&limit=100").await.1["jobs"].as_array().unwrap().len(),
        8
    );
    // The time filters bound the walk of the UUIDv7 key; the bound never drops a job.
    let count = |path: String| {
        let ops = &ops;
        async move { ops.get(&path).await.1["jobs"].as_array().unwrap().len() }
    };
    let moment = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339().replace('+', "%2B");
    let now = chrono::Utc::now();
    assert_eq!(count(format!("/ops/jobs?createdSince={}", moment(now - chrono::Duration::minutes(5)))).await, 8);
    assert_eq!(count(format!("/ops/jobs?createdSince={}", moment(now + chrono::Duration::minutes(5)))).await, 0);
    assert_eq!(count(format!("/ops/jobs?createdUntil={}", moment(now - chrono::Duration::minutes(5)))).await, 0);
    assert_eq!(count(format!("/ops/jobs?createdUntil={}", moment(now + chrono::Duration::minutes(5)))).await, 8);
    assert_eq!(count("/ops/jobs?createdSince=0001-01-01T00:00:00Z".into()).await, 8);
    assert_eq!(count("/ops/jobs?createdUntil=0001-01-01T00:00:00Z".into()).await, 0);
    assert_eq!(count("/ops/jobs?createdSince=9999-12-31T23:59:59Z".into()).await, 0);

    let (status, body) = ops.get("/ops/jobs?state=exploded").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("unknown state"));
    assert_eq!(ops.get("/ops/jobs?createdSince=yesterday").await.0, 400);
    // Empty values, as HTML forms send them, mean "not given".
    let (status, all) = ops.get("/ops/jobs?state=&action=&createdSince=&createdUntil=&cursor=&limit=").await;
    assert_eq!((status, all["jobs"].as_array().unwrap().len()), (200, 8));
    assert_eq!(ops.get("/ops/jobs?cursor=not-a-uuid").await.0, 400);
    assert_eq!(ops.get("/ops/jobs?bogus=1").await.0, 400);
    // Values Docket could never have stored are refused, not sent to Postgres (found
    // by schemathesis: a NUL made the query fail with a 503).
    let (status, body) = ops.get("/ops/jobs?action=%00x").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("the action filter contains control characters"), "{body}");
    assert_eq!(ops.get(&format!("/ops/jobs?documentId={}", "d".repeat(256))).await.0, 400);
    let (status, body) = ops.get("/ops/audit?limit=many").await;
    assert!(status == 400 && body["error"].is_string(), "a JSON error: {status} {body}");
}

#[tokio::test]
async fn the_page_size_is_capped() {
    let ops = Ops::start().await;
    for i in 0..210 {
        ops.insert("print", &format!("d{i}"), None).await;
    }
    let (_, page) = ops.get("/ops/jobs?limit=100000").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 200);
    assert!(page["nextCursor"].is_string());
}

#[tokio::test]
async fn detail_explains_and_retry_and_cancel_steer_with_an_audit_trail() {
    let ops = Ops::start().await;
    let waiting = ops.insert("archive", "doc-w", None).await;
    let (status, detail) = ops.get(&format!("/ops/jobs/{waiting}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["job"]["state"], "queued");
    let explanation = detail["explanation"].as_str().unwrap();
    assert!(explanation.contains("no live worker knows action 'archive'"), "{explanation}");

    // Retry: only failed or cancelled jobs.
    let (status, body) = ops.post(&format!("/ops/jobs/{waiting}/retry")).await;
    assert_eq!(status, 409);
    assert!(body["error"].as_str().unwrap().contains("is queued"));
    let failed = ops.insert("archive", "doc-f", None).await;
    ops.set_state(failed, "failed", 4, Some("target answered HTTP 400 Bad Request (not retried)")).await;
    let (_, detail) = ops.get(&format!("/ops/jobs/{failed}")).await;
    assert!(detail["explanation"].as_str().unwrap().starts_with("failed"));
    assert_eq!(ops.post(&format!("/ops/jobs/{failed}/retry")).await.0, 200);
    let job = jobs::get(&ops.db.pool, failed).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.max_attempts), (JobState::Queued, 4, 8), "a fresh budget of 4");
    assert!(job.finished_at.is_none());

    // Cancel: queued now; finished jobs refuse.
    let (status, body) = ops.post(&format!("/ops/jobs/{waiting}/cancel")).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("cancelled")));
    assert_eq!(jobs::get(&ops.db.pool, waiting).await.unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(ops.post(&format!("/ops/jobs/{waiting}/cancel")).await.0, 409);
    // A cancelled job can be retried.
    assert_eq!(ops.post(&format!("/ops/jobs/{waiting}/retry")).await.0, 200);

    assert_eq!(ops.get(&format!("/ops/jobs/{}", JobId::new())).await.0, 404);
    assert_eq!(ops.post(&format!("/ops/jobs/{}/cancel", JobId::new())).await.0, 404);
    assert_eq!(ops.get("/ops/jobs/not-an-id").await.0, 400);

    let (_, audit) = ops.get("/ops/audit").await;
    let actions: Vec<(String, String)> = audit["operatorActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["actor"].as_str().unwrap().to_owned(), a["action"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        actions,
        [("tester", "retry"), ("tester", "cancel"), ("tester", "retry")].map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let (_, on_job) = ops.get(&format!("/ops/jobs/{waiting}")).await;
    assert_eq!(on_job["operatorActions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bulk_retry_of_failed_jobs_reports_a_count() {
    let ops = Ops::start().await;
    for i in 0..3 {
        let id = ops.insert("archive", &format!("f{i}"), None).await;
        ops.set_state(id, "failed", 4, Some("HTTP 500")).await;
    }
    let other = ops.insert("print", "p", None).await;
    ops.set_state(other, "failed", 8, Some("HTTP 500")).await;
    let (status, body) = ops.post("/ops/actions/archive/retry-failed").await;
    assert_eq!((status, body["retried"].as_i64()), (200, Some(3)));
    assert_eq!(ops.get("/ops/jobs?state=failed").await.1["jobs"].as_array().unwrap().len(), 1);
    let (_, audit) = ops.get("/ops/audit").await;
    assert_eq!(audit["operatorActions"][0]["action"], "retry_failed");
    assert_eq!(audit["operatorActions"][0]["jobIds"].as_array().unwrap().len(), 3);
}

/// A bulk retry runs in batches of 10,000 (one transaction and one audit row each), so
/// that 100,000 failed jobs are never one statement's locks.
#[tokio::test]
async fn bulk_retry_goes_in_bounded_batches_each_recorded() {
    let ops = Ops::start().await;
    sqlx::query(
        "insert into jobs (id, action, document_id, document_version_id, state, attempts, max_attempts, finished_at,
                           last_error)
         select docket_uuid_v7(), 'archive', 'bulk-' || i, 'v1', 'failed', 3, 3, now(), 'HTTP 500'
         from generate_series(1, 25000) i",
    )
    .execute(&ops.db.pool)
    .await
    .unwrap();
    let (status, body) = ops.post("/ops/actions/archive/retry-failed").await;
    assert_eq!((status, body["retried"].as_i64()), (200, Some(25_000)), "{body}");
    let (failed, queued): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where state = 'failed'), count(*) filter (where state = 'queued') from jobs",
    )
    .fetch_one(&ops.db.pool)
    .await
    .unwrap();
    assert_eq!((failed, queued), (0, 25_000));
    let (_, audit) = ops.get("/ops/audit").await;
    let sizes: Vec<usize> = audit["operatorActions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "retry_failed")
        .map(|a| a["jobIds"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 25_000, "{sizes:?}");
    assert!(sizes.len() == 3 && sizes.iter().all(|&n| n <= 10_000), "{sizes:?}");
}

/// A bulk retry longer than the request timeout stops between batches and says so,
/// instead of being cut off with a 503 after some batches committed: every answer
/// counts exactly the jobs it queued again, and asking again retries the rest.
#[tokio::test]
async fn a_bulk_retry_longer_than_the_request_timeout_answers_what_it_did() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let base = docket_tests::inprocess::start_api_with(&db.url, &catalog_path(&dir), |c| {
        c.request_timeout = Duration::from_secs(2)
    })
    .await;
    sqlx::query(
        "insert into jobs (id, action, document_id, document_version_id, state, attempts, max_attempts, finished_at,
                           last_error)
         select docket_uuid_v7(), 'archive', 'bulk-' || i, 'v1', 'failed', 3, 3, now(), 'HTTP 500'
         from generate_series(1, 200000) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let mut answers = 0;
    loop {
        let response = client
            .post(format!("{base}/ops/actions/archive/retry-failed"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{body}");
        answers += 1;
        let retried = body["retried"].as_i64().unwrap();
        let queued: i64 =
            sqlx::query_scalar("select count(*) from jobs where state = 'queued'").fetch_one(&db.pool).await.unwrap();
        sqlx::query("update jobs set state = 'succeeded', finished_at = now() where state = 'queued'")
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(retried, queued, "the answer counts what was queued again: {body}");
        if body["complete"] == true {
            break;
        }
        assert!(retried > 0, "an incomplete answer made progress: {body}");
    }
    let failed: i64 =
        sqlx::query_scalar("select count(*) from jobs where state = 'failed'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(failed, 0, "after {answers} answers");
    assert!(answers > 1, "200,000 jobs in one answer: the stop between batches was never reached");
}

#[tokio::test]
async fn stats_metrics_and_openapi() {
    let ops = Ops::start().await;
    ops.insert("archive", "a", None).await;
    let done = ops.insert("print", "b", None).await;
    ops.set_state(done, "succeeded", 1, None).await;
    sqlx::query("update jobs set run_at = now() - interval '5 minutes' where state = 'queued'")
        .execute(&ops.db.pool)
        .await
        .unwrap();

    let (status, stats) = ops.get("/ops/stats").await;
    assert_eq!(status, 200);
    let counts = stats["counts"].as_array().unwrap();
    assert!(counts.iter().any(|c| c["action"] == "archive" && c["state"] == "queued" && c["count"] == 1));
    assert!(counts.iter().any(|c| c["action"] == "print" && c["state"] == "succeeded" && c["count"] == 1));
    let lag = stats["lag"][0]["lagSeconds"].as_f64().unwrap();
    assert!(lag >= 290.0, "lag {lag}");
    assert_eq!(
        stats["throughput"].as_array().unwrap().iter().map(|m| m["succeeded"].as_i64().unwrap()).sum::<i64>(),
        1
    );
    assert_eq!(stats["workers"], serde_json::json!([]));

    // A Workfront request, so that request metrics exist.
    let response = ops
        .client
        .get(format!("{}/customAction?name=print&documentId=m&documentVersionId=v", ops.base))
        .header("apiKey", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics = ops.client.get(format!("{}/metrics", ops.base)).send().await.unwrap().text().await.unwrap();
    for expected in [
        "docket_http_requests_total{route=\"/customAction\",status=\"200\"}",
        "docket_http_request_duration_seconds_bucket{route=\"/customAction\"",
        "docket_jobs_enqueued_total{action=\"print\"}",
        "docket_jobs{action=\"archive\",state=\"queued\"} 1",
        "docket_queue_lag_seconds{action=\"archive\"}",
        "docket_workers_live 0",
    ] {
        assert!(metrics.contains(expected), "missing {expected} in:\n{metrics}");
    }
    assert!(!metrics.contains(API_KEY) && !metrics.contains(ADMIN_TOKEN));

    let document: Value = reqwest::get(format!("{}/openapi.json", ops.base)).await.unwrap().json().await.unwrap();
    // Derived by utoipa, which writes OpenAPI 3.1 (3.0.3 while it was written by hand).
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/serviceInfo",
        "/customAction",
        "/healthz",
        "/readyz",
        "/metrics",
        "/ops/jobs",
        "/ops/jobs/{id}",
        "/ops/jobs/{id}/retry",
        "/ops/jobs/{id}/cancel",
        "/ops/actions/{action}/retry-failed",
        "/ops/stats",
        "/ops/audit",
        "/ops/actions",
        "/ops/actions/{action}/pause",
        "/ops/actions/{action}/resume",
        "/ops/actions/{action}/close-circuit",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing from openapi.json");
    }
    // The dashboard's HTML pages are not part of the JSON API's document.
    assert!(document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| !p.starts_with("/ops/ui") && p != "/ops/" && p != "/ops/login"));
    assert_eq!(document["components"]["schemas"]["JobState"]["enum"].as_array().unwrap().len(), 6);
}

/// The figures count a backlog exactly up to `COUNT_CAP` jobs per action; above it they
/// take its size from the latest sample, so that a scrape never counts 500,000 rows.
#[tokio::test]
async fn a_large_backlog_is_counted_once_per_sample_not_on_every_scrape() {
    use docket::db::{ops::COUNT_CAP, samples};
    let db = TestDb::new().await;
    let insert = |action: &'static str, n: i64, state: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(
                "insert into jobs (id, action, document_id, document_version_id, state, max_attempts)
                 select docket_uuid_v7(), $1, 'doc-' || i, 'v1', $3::job_state, 3 from generate_series(1, $2) i",
            )
            .bind(action)
            .bind(n)
            .bind(state)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    insert("archive", COUNT_CAP + 50, "queued").await;
    insert("archive", 7, "retrying").await;
    insert("print", 3, "queued").await;
    async fn counts(conn: &mut sqlx::PgConnection) -> Vec<(String, JobState, i64)> {
        let counts = docket::db::ops::state_counts(conn, std::time::Duration::from_secs(3600)).await.unwrap();
        counts.into_iter().map(|c| (c.action, c.state, c.count)).collect()
    }
    let mut conn = db.pool.acquire().await.unwrap();
    // No sample yet: at most COUNT_CAP + 1 rows are read per action.
    let before = counts(&mut conn).await;
    assert!(before.contains(&("print".into(), JobState::Queued, 3)), "{before:?}");
    let archive: i64 = before.iter().filter(|c| c.0 == "archive").map(|c| c.2).sum();
    assert_eq!(archive, COUNT_CAP + 1, "a bounded count: {before:?}");
    // After a sample, the exact figures of the backlog.
    assert!(samples::record(&mut conn).await.unwrap());
    let after = counts(&mut conn).await;
    assert!(after.contains(&("archive".into(), JobState::Queued, COUNT_CAP + 50)), "{after:?}");
    assert!(after.contains(&("archive".into(), JobState::Retrying, 7)), "{after:?}");
    assert!(after.contains(&("print".into(), JobState::Queued, 3)), "{after:?}");
}
