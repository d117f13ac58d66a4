//! The api over real HTTP: `/serviceInfo`, every refusal of `/customAction`, request
//! ids, and the database going away and coming back.

use docket_tests::inprocess::{start_api, SECOND_KEY};
use docket_tests::proxy::Proxy;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, TestDb, API_KEY};
use serde_json::Value;

const CATALOG: &str = "[[action]]\nname = \"archive\"\ndisplay_name = \"Archive\"\nkind = \"noop\"\n\n\
                       [[action]]\nname = \"print\"\ndisplay_name = \"Send to print\"\nkind = \"noop\"\n";

struct App {
    base: String,
    db: TestDb,
    _dir: tempfile::TempDir,
}

/// Starts the api in-process on port 0, with its own database.
async fn app() -> App {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let base = start_api(&db.url, &catalog_path(&dir)).await;
    App { base, db, _dir: dir }
}

async fn job_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from jobs").fetch_one(&db.pool).await.unwrap()
}

/// Sends a raw query string (not re-encoded) with the given apiKey.
async fn call(app: &App, query: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}/customAction?{query}", app.base));
    if let Some(key) = key {
        request = request.header("apiKey", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

fn assert_failure(body: &Value, expected: &str) {
    assert_eq!(body["status"], "failure");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    for leak in ["sqlx", "SQL", "panicked", "Error(", "relation", "pool"] {
        assert!(!error.contains(leak), "error leaks internals: {error}");
    }
}

#[tokio::test]
async fn service_info_lists_the_catalog_without_auth() {
    let app = app().await;
    let response = reqwest::get(format!("{}/serviceInfo", app.base)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["webhookVersion"], "1.2");
    assert_eq!(body["publisher"], "Docket");
    assert_eq!(body["version"], docket::VERSION);
    assert_eq!(body["availableEndpoints"], serde_json::json!(["serviceInfo", "customAction"]));
    assert_eq!(
        body["customActions"],
        serde_json::json!([{"name": "archive", "displayName": "Archive"}, {"name": "print", "displayName": "Send to print"}])
    );
}

#[tokio::test]
async fn custom_action_stores_the_job_before_replying() {
    let app = app().await;
    let (status, body) =
        call(&app, "name=print&documentId=abc123&documentVersionId=v9&access_type=offline", Some(API_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    let id: uuid::Uuid = body["jobId"].as_str().unwrap().parse().unwrap();
    let job = docket::db::jobs::get(&app.db.pool, docket::domain::JobId(id))
        .await
        .unwrap()
        .expect("committed before the reply");
    assert_eq!(
        (job.action.as_str(), job.document_id.as_str(), job.document_version_id.as_str()),
        ("print", "abc123", "v9")
    );
    assert_eq!(job.state, docket::domain::JobState::Queued);
    assert_eq!(job.max_attempts, 8);
    assert_eq!(job.requested_by, None, "no username header sent");
    // The second (rotation) key works too.
    let (status, _) = call(&app, "name=print&documentId=abc123&documentVersionId=v9", Some(SECOND_KEY)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_bad_request_gets_a_readable_failure_and_stores_nothing() {
    let app = app().await;
    let long = "x".repeat(256);
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        ("name=archive&documentId=d&documentVersionId=v".into(), None, 403, "API key"),
        ("name=archive&documentId=d&documentVersionId=v".into(), Some("wrong-key-wrong-key"), 403, "API key"),
        ("name=archive&documentId=d&documentVersionId=v".into(), Some(""), 403, "API key"),
        ("name=nosuch&documentId=d&documentVersionId=v".into(), Some(API_KEY), 404, "no action named 'nosuch'"),
        ("documentId=d&documentVersionId=v".into(), Some(API_KEY), 400, "missing the 'name' parameter"),
        ("name=archive&documentVersionId=v".into(), Some(API_KEY), 400, "missing the 'documentId' parameter"),
        ("name=archive&documentId=d".into(), Some(API_KEY), 400, "missing the 'documentVersionId' parameter"),
        ("name=archive&documentId=&documentVersionId=v".into(), Some(API_KEY), 400, "'documentId' parameter is empty"),
        (
            format!("name=archive&documentId={long}&documentVersionId=v"),
            Some(API_KEY),
            400,
            "longer than 255 characters",
        ),
        (
            format!("name=archive&documentId=d&documentVersionId={long}"),
            Some(API_KEY),
            400,
            "longer than 255 characters",
        ),
        ("name=archive&documentId=a%0Ab&documentVersionId=v".into(), Some(API_KEY), 400, "control characters"),
        ("name=archive&documentId=a%00b&documentVersionId=v".into(), Some(API_KEY), 400, "control characters"),
        // Right-to-left override, zero-width space: a value that shows as another.
        ("name=archive&documentId=a%E2%80%AEb&documentVersionId=v".into(), Some(API_KEY), 400, "invisible formatting"),
        ("name=archive&documentId=d&documentVersionId=v%E2%80%8B".into(), Some(API_KEY), 400, "invisible formatting"),
        ("name=archive&documentId=%C3%28&documentVersionId=v".into(), Some(API_KEY), 400, "not valid UTF-8"),
        ("name=archive&name=print&documentId=d&documentVersionId=v".into(), Some(API_KEY), 400, "more than once"),
        (
            "name=%27%3Bdrop%20table%20jobs%3B--&documentId=d&documentVersionId=v".into(),
            Some(API_KEY),
            404,
            "no action named",
        ),
        (
            format!("name=archive&documentId=d&documentVersionId=v&pad={}", "y".repeat(9000)),
            Some(API_KEY),
            414,
            "too long",
        ),
    ];
    for (query, key, status, message) in &cases {
        let (got, body) = call(&app, query, *key).await;
        assert_eq!(got, *status, "for {query:.80}: {body}");
        assert_failure(&body, message);
    }
    assert_eq!(job_count(&app.db).await, 0, "no refused request stored a job");
}

#[tokio::test]
async fn bad_username_header_is_refused() {
    let app = app().await;
    let response = reqwest::Client::new()
        .get(format!("{}/customAction?name=archive&documentId=d&documentVersionId=v", app.base))
        .header("apiKey", API_KEY)
        .header("username", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_failure(&response.json().await.unwrap(), "'username' header is longer than 255 characters");
    let response = reqwest::Client::new()
        .get(format!("{}/customAction?name=archive&documentId=d&documentVersionId=v", app.base))
        .header("apiKey", API_KEY)
        .header("username", "ada\u{202E}moc.elpmaxe@".as_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_failure(&response.json().await.unwrap(), "not valid text");
    assert_eq!(job_count(&app.db).await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_failure_json() {
    let app = app().await;
    let client = reqwest::Client::new();
    let response = client.get(format!("{}/nope", app.base)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_failure(&response.json().await.unwrap(), "no such endpoint");
    let response = client.post(format!("{}/customAction", app.base)).header("apiKey", API_KEY).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_failure(&response.json().await.unwrap(), "only GET");
}

#[tokio::test]
async fn request_ids_are_returned_and_kept() {
    let app = app().await;
    let client = reqwest::Client::new();
    let response = client.get(format!("{}/serviceInfo", app.base)).send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let response =
        client.get(format!("{}/serviceInfo", app.base)).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn database_outage_gives_503_and_the_api_recovers_by_itself() {
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let dir = catalog(CATALOG);
    let mut api =
        Api::start(&db.url_via(proxy.addr), &catalog_path(&dir), &[("DOCKET_API_DB_ACQUIRE_TIMEOUT", "1s".into())])
            .await;
    let client = reqwest::Client::new();
    api.enqueue(&client, "archive", "before").await;

    proxy.cut();
    let response = api.custom_action(&client, "archive", "during").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_failure(&body, "could not record this request right now");
    assert!(api.process.is_running(), "the api stays up");

    let ready = reqwest::get(format!("{}/readyz", api.base)).await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while the database is away");
    assert_eq!(reqwest::get(format!("{}/healthz", api.base)).await.unwrap().status(), 200, "but alive");

    proxy.restore();
    wait_until("the api to store jobs again", DEADLINE, || async {
        (api.custom_action(&client, "archive", "after").await.status() == 200).then_some(())
    })
    .await;
    let documents: Vec<String> =
        sqlx::query_scalar("select document_id from jobs order by id").fetch_all(&db.pool).await.unwrap();
    assert_eq!(documents.first().map(String::as_str), Some("before"));
    assert!(!documents.iter().any(|d| d == "during"), "a 503 stored nothing");
    assert!(documents.iter().any(|d| d == "after"));
    assert_eq!(reqwest::get(format!("{}/readyz", api.base)).await.unwrap().status(), 200);
}
