//! Duplicate triggers: while a job for the same action, document and version is
//! waiting or running, another trigger creates no second job and answers with the
//! existing job's id. Race-free in the database.

use futures::StreamExt;

use docket::db::jobs;
use docket::domain::{JobId, JobState};
use docket_tests::inprocess::start_api;
use docket_tests::{catalog, catalog_path, TestDb, API_KEY};

const CATALOG: &str = "[[action]]\nname = \"archive\"\nkind = \"noop\"\n\n\
                       [[action]]\nname = \"stamp\"\nkind = \"noop\"\ndedupe = false\n";

async fn trigger(client: &reqwest::Client, base: &str, action: &str, document: &str, version: &str) -> JobId {
    let response = client
        .get(format!("{base}/customAction"))
        .query(&[("name", action), ("documentId", document), ("documentVersionId", version)])
        .header("apiKey", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "success");
    JobId(body["jobId"].as_str().unwrap().parse().unwrap())
}

async fn count(db: &TestDb, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from jobs where action = $1").bind(action).fetch_one(&db.pool).await.unwrap()
}

async fn concurrent(base: &str, action: &str, n: usize) -> Vec<JobId> {
    let client = reqwest::Client::new();
    futures::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            async move { trigger(&client, base, action, "doc-1", "v1").await }
        })
        .buffer_unordered(n)
        .collect()
        .await
}

#[tokio::test]
async fn fifty_concurrent_identical_triggers_make_exactly_one_job() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let base = start_api(&db.url, &catalog_path(&dir)).await;

    let ids = concurrent(&base, "archive", 50).await;
    assert_eq!(count(&db, "archive").await, 1, "one job for fifty triggers");
    assert!(ids.iter().all(|id| *id == ids[0]), "every reply names the one job");
}

#[tokio::test]
async fn dedupe_applies_only_while_the_job_is_live_and_only_to_the_same_document_version() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let base = start_api(&db.url, &catalog_path(&dir)).await;
    let client = reqwest::Client::new();

    let first = trigger(&client, &base, "archive", "doc-1", "v1").await;
    assert_eq!(trigger(&client, &base, "archive", "doc-1", "v1").await, first);
    assert_ne!(trigger(&client, &base, "archive", "doc-1", "v2").await, first, "another version");
    assert_ne!(trigger(&client, &base, "archive", "doc-2", "v1").await, first, "another document");

    // Retrying and running jobs are live too.
    for state in ["retrying", "running"] {
        let lease = if state == "running" { ", lease_owner = 'w', lease_expires_at = now()" } else { "" };
        sqlx::query(&format!("update jobs set state = '{state}'{lease} where id = $1"))
            .bind(first)
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(trigger(&client, &base, "archive", "doc-1", "v1").await, first, "while {state}");
    }
    // Once it has finished, a trigger makes a new job.
    sqlx::query("update jobs set state = 'succeeded', lease_owner = null, lease_expires_at = null, finished_at = now() where id = $1")
        .bind(first)
        .execute(&db.pool)
        .await
        .unwrap();
    let next = trigger(&client, &base, "archive", "doc-1", "v1").await;
    assert_ne!(next, first);
    assert_eq!(jobs::get(&db.pool, next).await.unwrap().unwrap().state, JobState::Queued);
}

#[tokio::test]
async fn actions_with_dedupe_off_get_a_job_per_trigger() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let base = start_api(&db.url, &catalog_path(&dir)).await;
    let ids = concurrent(&base, "stamp", 20).await;
    assert_eq!(count(&db, "stamp").await, 20);
    let unique: std::collections::HashSet<_> = ids.into_iter().collect();
    assert_eq!(unique.len(), 20);
}
