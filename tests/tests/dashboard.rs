//! The operators' dashboard: session cookie flags and CSRF over plain HTTP, and the
//! whole flow in a real headless Chromium (sign in, filter, open a failed job, retry
//! it, see it succeed), with a screenshot saved in the test output.

use std::time::Duration;

use docket::db::jobs;
use docket::domain::JobState;
use docket_tests::inprocess::ADMIN_TOKEN;
use docket_tests::wait::DEADLINE;
use docket_tests::webdriver::{reload_until, Browser};
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

fn admin() -> Vec<(&'static str, String)> {
    vec![("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}"))]
}

#[tokio::test]
async fn sessions_are_httponly_strict_cookies_and_forms_need_csrf() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let api = Api::start(&db.url, &catalog_path(&dir), &admin()).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let page = client.get(format!("{}/ops/", api.base)).send().await.unwrap();
    assert_eq!((page.status().as_u16(), page.headers()["location"].to_str().unwrap()), (303, "/ops/login"));
    let wrong = client.post(format!("{}/ops/login", api.base)).form(&[("token", "nope")]).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let login = client.post(format!("{}/ops/login", api.base)).form(&[("token", ADMIN_TOKEN)]).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ops"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie never holds the token");
    let session = cookie.split(';').next().unwrap().to_owned();

    let overview = client.get(format!("{}/ops/", api.base)).header("cookie", &session).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    let html = overview.text().await.unwrap();
    assert!(html.contains("signed in as tester"));

    // A state-changing form without (or with a wrong) CSRF token is refused.
    let id = docket::domain::JobId::new();
    for csrf in ["", "0123abcd"] {
        let post = client
            .post(format!("{}/ops/ui/jobs/{id}/retry", api.base))
            .header("cookie", &session)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 403);
    }
    // Hostile text is escaped.
    sqlx::query("insert into jobs (id, action, document_id, document_version_id, max_attempts) values (gen_random_uuid(), 'noop', '<script>alert(1)</script>', 'v', 1)")
        .execute(&db.pool)
        .await
        .unwrap();
    let list = client.get(format!("{}/ops/ui/jobs", api.base)).header("cookie", &session).send().await.unwrap();
    let html = list.text().await.unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>alert(1)"));
}

#[tokio::test]
async fn an_operator_retries_a_failed_job_in_a_real_browser() {
    let db = TestDb::new().await;
    // The target refuses the first call (the job fails for good) and accepts later ones.
    let target =
        Target::start(|n| if n == 1 { Reply::status(400).body("document locked") } else { Reply::status(200) }).await;
    let dir = catalog(&format!("[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\n", target.url));
    let api = Api::start(&db.url, &catalog_path(&dir), &admin()).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-dashboard", &[]).await;
    let client = reqwest::Client::new();
    let failed = api.enqueue(&client, "archive", "doc-locked").await;
    wait_until("the first job to fail", DEADLINE, || async {
        jobs::get(&db.pool, failed).await.unwrap().filter(|j| j.state == JobState::Failed)
    })
    .await;
    // Queued only now: the target refuses only its first call, which must be the
    // locked document's.
    let other = api.enqueue(&client, "archive", "doc-other").await;
    wait_until("the other job to succeed", DEADLINE, || async {
        jobs::get(&db.pool, other).await.unwrap().filter(|j| j.state == JobState::Succeeded)
    })
    .await;

    let browser = Browser::start().await;
    browser.goto(&format!("{}/ops/", api.base)).await;
    assert!(browser.url().await.ends_with("/ops/login"), "signed out visitors are sent to sign in");
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#sign-in").await;
    wait_until("the overview after signing in", DEADLINE, || async {
        browser.text("main").await.contains("Live workers").then_some(())
    })
    .await;
    assert!(!browser.url().await.contains(ADMIN_TOKEN), "no token in URLs");

    browser.goto(&format!("{}/ops/ui/jobs", api.base)).await;
    browser.type_into("#filter-state", "failed").await;
    browser.click("#apply-filters").await;
    wait_until("the filtered list", DEADLINE, || async { browser.url().await.contains("state=failed").then_some(()) })
        .await;
    let table = browser.text("#jobs").await;
    assert!(table.contains("doc-locked") && !table.contains("doc-other"), "{table}");
    browser.click(".job-link").await;
    wait_until("the job page", DEADLINE, || async { browser.url().await.contains(&failed.to_string()).then_some(()) })
        .await;
    let explanation = browser.text("#explanation").await;
    assert!(explanation.contains("failed") && explanation.contains("400"), "{explanation}");
    let attempts = browser.text("#attempts").await;
    assert!(attempts.contains("permanent_error") && attempts.contains("document locked"), "{attempts}");
    assert_eq!(browser.text("#job-state").await, "failed");

    browser.click("#retry").await;
    reload_until(&browser, "the retried job to succeed", Duration::from_secs(60), "#job-state", "succeeded").await;
    let attempts = browser.text("#attempts").await;
    assert!(attempts.contains("permanent_error") && attempts.contains("succeeded"), "{attempts}");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard-retried-job.png");
    browser.screenshot(&path).await;
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", path.display());
    assert_eq!(jobs::get(&db.pool, failed).await.unwrap().unwrap().state, JobState::Succeeded);
}
