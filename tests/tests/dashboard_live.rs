//! The dashboard operators keep open, in a real headless Chromium: the overview
//! updates itself and draws the last minutes, bulk retry from the list, search, the
//! action and job pages, a phone-width screen; and, over plain HTTP, the friendly
//! paths and the bulk form's checks. Screenshots of every page are written on each
//! run (paths printed) and copied into `docs/screenshots/` for the README.

use std::collections::HashSet;

use docket::db::jobs;
use docket::domain::{JobId, JobState};
use docket_tests::inprocess::ADMIN_TOKEN;
use docket_tests::wait::DEADLINE;
use docket_tests::webdriver::Browser;
use docket_tests::{catalog, catalog_path, wait_until, Api, TestDb, Worker};

fn env() -> Vec<(&'static str, String)> {
    vec![("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}")), ("DOCKET_API_SAMPLE_INTERVAL", "1s".into())]
}

const CATALOG: &str =
    "[[action]]\nname = \"archive\"\nkind = \"noop\"\n\n[[action]]\nname = \"print\"\nkind = \"noop\"\n";

async fn screenshot(browser: &Browser, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    browser.screenshot(&path).await;
    assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Inserts `n` failed jobs of `action` (documents `{prefix}-0` …), oldest first.
async fn failed_jobs(db: &TestDb, action: &str, prefix: &str, n: usize) -> Vec<JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = JobId::new();
        sqlx::query(
            "insert into jobs (id, action, document_id, document_version_id, requested_by, state, attempts,
                               max_attempts, finished_at, last_error)
             values ($1, $2, $3, 'v1', 'ada@example.com', 'failed', 3, 3, now(),
                     'target answered HTTP 503 Service Unavailable: the archive is being migrated to new storage')",
        )
        .bind(id.0)
        .bind(action)
        .bind(format!("{prefix}-{i}"))
        .execute(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn the_overview_updates_itself_and_draws_the_last_minutes() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let api = Api::start(&db.url, &catalog_path(&dir), &env()).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-live", &[]).await;
    let browser = Browser::start().await;
    browser.sign_in(&api.base, ADMIN_TOKEN).await;
    let cell = "tr[data-action=\"archive\"] td[data-count=\"succeeded\"]";
    assert_eq!(browser.text(cell).await, "0");
    // A mark in the page: a reload or a navigation would remove it.
    browser.execute("window.docketMark = 42; return null;").await;

    let client = reqwest::Client::new();
    let ids = api.enqueue_many(&client, "archive", 6).await;
    for id in &ids {
        wait_until("the jobs to succeed", DEADLINE, || async {
            jobs::get(&db.pool, *id).await.unwrap().filter(|j| j.state == JobState::Succeeded)
        })
        .await;
    }
    wait_until("the overview to show 6 succeeded jobs by itself", DEADLINE, || async {
        (browser.text(cell).await == "6").then_some(())
    })
    .await;
    assert_eq!(browser.execute("return window.docketMark;").await, serde_json::json!(42), "the page was not reloaded");

    // The sparkline rises in its last minutes (the jobs ended in this minute, or in the
    // one before if a minute began since) and lies on its floor before them.
    let spark = "tr[data-action=\"archive\"] svg.spark polyline.ok-line";
    let points = wait_until("the chart to draw the last minutes", DEADLINE, || async {
        let points = browser.attr(spark, "points").await;
        let ys: Vec<f64> =
            points.split_whitespace().filter_map(|p| p.split(',').nth(1)).filter_map(|y| y.parse().ok()).collect();
        (ys.len() == 60 && (ys[58] < ys[0] || ys[59] < ys[0])).then_some(ys)
    })
    .await;
    assert!(points[..58].iter().all(|y| *y == points[0]), "only the last minutes have jobs: {points:?}");
    let day = browser.attr("#day-chart polyline.ok-line", "points").await;
    assert_eq!(day.split_whitespace().count(), 96, "{day}");
    assert!(browser.text("#flow").await.contains("running freely"));
    screenshot(&browser, "overview").await;
}

#[tokio::test]
async fn bulk_retry_of_twenty_failed_jobs_retries_exactly_those_with_one_audit_row() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let api = Api::start(&db.url, &catalog_path(&dir), &env()).await;
    let failed = failed_jobs(&db, "archive", "bulk", 25).await;
    let browser = Browser::start().await;
    browser.sign_in(&api.base, ADMIN_TOKEN).await;
    browser.goto(&format!("{}/ops/ui/jobs?state=failed&limit=20", api.base)).await;
    let table = browser.text("#jobs").await;
    // The list's excerpt ends at a word; the whole error is on the job's page.
    assert!(
        table.contains("target answered HTTP 503 Service Unavailable: the archive is being migrated to…\n"),
        "{table}"
    );
    screenshot(&browser, "jobs").await;
    browser.click("#select-all").await;
    assert_eq!(browser.text("#bulk-retry").await, "Retry selected (20)");
    browser.click("#bulk-retry").await;
    wait_until("the confirmation", DEADLINE, || async {
        (browser.text("#bulk-question").await == "Retry 20 jobs?").then_some(())
    })
    .await;
    browser.click("#bulk-confirm").await;
    let result = browser.text("#bulk-result").await;
    assert_eq!(result, "Retried 20 of 20 jobs; 0 were no longer failed or cancelled.");

    // Exactly the 20 newest, and one audit row naming them.
    let queued: HashSet<uuid::Uuid> = sqlx::query_scalar::<_, uuid::Uuid>("select id from jobs where state = 'queued'")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let newest: HashSet<uuid::Uuid> = failed[5..].iter().map(|id| id.0).collect();
    assert_eq!(queued, newest);
    let audit: Vec<(String, Vec<uuid::Uuid>)> =
        sqlx::query_as("select action, job_ids from operator_actions").fetch_all(&db.pool).await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "bulk_retry");
    assert_eq!(audit[0].1.iter().copied().collect::<HashSet<_>>(), newest);

    // "All matching" counts what it would touch before it does anything.
    browser.goto(&format!("{}/ops/ui/jobs?state=failed", api.base)).await;
    browser.click("#bulk-cancel-all").await;
    wait_until("the confirmation", DEADLINE, || async {
        (browser.text("#bulk-question").await == "Cancel 5 jobs?").then_some(())
    })
    .await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from operator_actions").fetch_one(&db.pool).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn one_search_box_finds_a_job_by_document_user_or_id() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let api = Api::start(&db.url, &catalog_path(&dir), &env()).await;
    failed_jobs(&db, "archive", "hay", 30).await;
    let needle = failed_jobs(&db, "print", "needle", 1).await[0];
    sqlx::query("update jobs set requested_by = 'grace@example.com' where id = $1")
        .bind(needle.0)
        .execute(&db.pool)
        .await
        .unwrap();
    let browser = Browser::start().await;
    browser.sign_in(&api.base, ADMIN_TOKEN).await;
    for search in ["needle-0", "grace@example.com", &needle.to_string()] {
        browser.goto(&format!("{}/ops/ui/jobs", api.base)).await;
        browser.type_into("#search", search).await;
        browser.click("#apply-filters").await;
        wait_until("the search's page", DEADLINE, || async { browser.url().await.contains("q=").then_some(()) }).await;
        let table = browser.text("#jobs").await;
        assert!(table.contains("needle-0") && !table.contains("hay-"), "{search}: {table}");
        assert!(browser.attr(".job-link .id", "title").await == needle.to_string());
    }
}

#[tokio::test]
async fn action_and_job_pages_and_a_phone_screen() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let api = Api::start(&db.url, &catalog_path(&dir), &env()).await;
    let failed = failed_jobs(&db, "archive", "doc", 4).await;
    // A job with two attempts and a backoff between them, for the timeline.
    sqlx::query(
        "insert into job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error) values
         ($1, 1, 'w-1', now() - interval '70 s', now() - interval '69 s', 'retryable_error', 'HTTP 503'),
         ($1, 2, 'w-1', now() - interval '40 s', now() - interval '39 s', 'retryable_error', 'HTTP 503'),
         ($1, 3, 'w-2', now() - interval '10 s', now() - interval '9 s', 'permanent_error', 'HTTP 400')",
    )
    .bind(failed[0].0)
    .execute(&db.pool)
    .await
    .unwrap();
    let browser = Browser::start().await;
    browser.sign_in(&api.base, ADMIN_TOKEN).await;

    browser.goto(&format!("{}/ops/ui/actions/archive", api.base)).await;
    assert_eq!(browser.text("#failures tr:nth-child(2) td.num").await, "4");
    let failures = browser.text("#failures").await;
    assert!(failures.contains("target answered HTTP 503 Service Unavailable"), "{failures}");
    assert!(browser.text("#settings").await.contains("noop (succeeds at once)"));
    screenshot(&browser, "action").await;

    browser.goto(&format!("{}/ops/ui/jobs/{}", api.base, failed[0])).await;
    assert!(browser.text("#explanation").await.contains("failed"));
    let bars = browser.execute("return document.querySelectorAll('#timeline rect.attempt').length;").await;
    assert_eq!(bars, serde_json::json!(3));
    let gaps = browser.execute("return document.querySelectorAll('#timeline rect.gap').length;").await;
    assert_eq!(gaps, serde_json::json!(2));
    screenshot(&browser, "job").await;

    browser.resize(390, 844).await;
    for path in [
        "/ops/".to_owned(),
        "/ops/ui/jobs".into(),
        "/ops/ui/actions/archive".into(),
        format!("/ops/ui/jobs/{}", failed[0]),
    ] {
        browser.goto(&format!("{}{path}", api.base)).await;
        browser.find("main h1").await;
        let overflow = browser
            .execute("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
            .await;
        let wide = browser
            .execute(
                "return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > \
                 document.documentElement.clientWidth + 1 && !e.closest('.scroll')).map(e => e.tagName + '.' + e.className \
                 + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 5);",
            )
            .await;
        assert_eq!(overflow, serde_json::json!(0), "{path} scrolls sideways on a phone: {wide}");
    }
    screenshot(&browser, "phone-job").await;
}

#[tokio::test]
async fn browsers_opening_the_json_paths_land_on_the_dashboard() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let api = Api::start(&db.url, &catalog_path(&dir), &env()).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let id = JobId::new();
    for (path, to) in [
        ("/ops/jobs?state=failed&action=archive".to_owned(), "/ops/ui/jobs?state=failed&action=archive".to_owned()),
        ("/ops/jobs".into(), "/ops/ui/jobs".into()),
        (format!("/ops/jobs/{id}"), format!("/ops/ui/jobs/{id}")),
    ] {
        let reply = client.get(format!("{}{path}", api.base)).header("accept", html).send().await.unwrap();
        assert_eq!(reply.status(), 303, "{path}");
        assert_eq!(reply.headers()["location"], to.as_str());
    }
    // JSON clients, and anyone with a token, get JSON as before.
    let json = client.get(format!("{}/ops/jobs", api.base)).send().await.unwrap();
    assert_eq!(json.status(), 401);
    let with_token = client
        .get(format!("{}/ops/jobs", api.base))
        .header("accept", html)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
    let retry = client.get(format!("{}/ops/jobs/{id}/retry", api.base)).header("accept", html).send().await.unwrap();
    assert_ne!(retry.status(), 303, "only the list and a job's page are pages");
}

#[tokio::test]
async fn the_bulk_form_checks_its_session_its_operation_and_its_size() {
    let db = TestDb::new().await;
    let dir = catalog(CATALOG);
    let api = Api::start(&db.url, &catalog_path(&dir), &env()).await;
    // A connection per request: the api closes the one it refused an oversized form on,
    // and a pooled client could send the next form on it.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let login = client.post(format!("{}/ops/login", api.base)).form(&[("token", ADMIN_TOKEN)]).send().await.unwrap();
    let session = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let overview = client.get(format!("{}/ops/ui/jobs", api.base)).header("cookie", &session).send().await.unwrap();
    let html = overview.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let failed = failed_jobs(&db, "archive", "form", 2).await;
    let try_post = |body: String| {
        let (client, session, url) = (client.clone(), session.clone(), format!("{}/ops/ui/jobs/bulk", api.base));
        async move {
            let reply = client
                .post(url)
                .header("cookie", session)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await?;
            Ok::<_, reqwest::Error>((reply.status().as_u16(), reply.text().await?))
        }
    };
    let post = |body: String| {
        let reply = try_post(body);
        async move { reply.await.unwrap() }
    };
    let id = failed[0];
    assert_eq!(post(format!("csrf=wrong&op=retry&confirmed=1&id={id}")).await.0, 403);
    assert_eq!(post(format!("op=retry&confirmed=1&id={id}")).await.0, 403);
    let (status, text) = post(format!("csrf={csrf}&op=explode&id={id}")).await;
    assert!(status == 400 && text.contains("choose retry or cancel"), "{status} {text}");
    let (status, text) = post(format!("csrf={csrf}&op=retry&id=not-a-job")).await;
    assert!(status == 400 && text.contains("is not a job id"), "{status} {text}");
    let many: String = (0..1001).map(|_| format!("&id={}", JobId::new())).collect();
    let (status, text) = post(format!("csrf={csrf}&op=retry{many}")).await;
    assert!(status == 400 && text.contains("at most 1000 jobs"), "{status} {text}");
    let huge = "x".repeat(70 * 1024);
    // Over the 64 KiB limit: refused before it is read whole — a 413, or, when the
    // server closes the connection before the client has sent the rest, a reset.
    match try_post(format!("csrf={csrf}&op=retry&note={huge}")).await {
        Ok((status, text)) => assert_eq!(status, 413, "{text}"),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    let (status, text) = post(format!("csrf={csrf}&op=retry&all=1&createdSince=yesterday")).await;
    assert!(status == 400 && text.contains("bad filter"), "{status} {text}");
    // Nothing above changed anything.
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from operator_actions").fetch_one(&db.pool).await.unwrap(),
        0
    );
    // A confirmed retry of a job that is no longer failed says so.
    sqlx::query("update jobs set state = 'queued', finished_at = null where id = $1")
        .bind(failed[1].0)
        .execute(&db.pool)
        .await
        .unwrap();
    let (status, text) = post(format!("csrf={csrf}&op=retry&confirmed=1&id={}&id={}", failed[0], failed[1])).await;
    assert!(
        status == 200 && text.contains("Retried 1 of 2 jobs; 1 were no longer failed or cancelled."),
        "{status} {text}"
    );
    let (status, text) = post(format!("csrf={csrf}&op=cancel&confirmed=1&id={}&id={}", failed[0], failed[1])).await;
    assert!(
        status == 200
            && text.contains(
                "Cancelled 2 of 2 jobs and asked the workers of 0 running ones to stop them; 0 had already ended."
            ),
        "{status} {text}"
    );
}
