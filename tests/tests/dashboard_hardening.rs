//! The dashboard's sign-in and pages against hostile or unlucky use: cookies that stay
//! on HTTPS, guessing that gets slower with every failure, and database errors that
//! never reach a page.

use docket_tests::inprocess::{start_api_with, ADMIN_TOKEN};
use docket_tests::proxy::Proxy;
use docket_tests::{catalog, catalog_path, TestDb};

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn sign_in(base: &str, token: &str, forwarded_https: bool) -> reqwest::Response {
    let mut request = client().post(format!("{base}/ops/login")).form(&[("token", token)]);
    if forwarded_https {
        request = request.header("x-forwarded-proto", "https");
    }
    request.send().await.unwrap()
}

fn set_cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn session_cookies_are_secure_unless_the_dashboard_is_declared_plain_http() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let default = start_api_with(&db.url, &catalog_path(&dir), |_| {}).await;
    let public = start_api_with(&db.url, &catalog_path(&dir), |c| {
        c.public_url = Some("https://docket.example.com/".parse().unwrap());
    })
    .await;
    let plain = start_api_with(&db.url, &catalog_path(&dir), |c| {
        c.public_url = Some("http://docket.internal:8080/".parse().unwrap());
    })
    .await;

    // Browsers keep Secure cookies for http://localhost and 127.0.0.1 too, so Secure
    // is the default.
    let cookie = set_cookie(&sign_in(&default, ADMIN_TOKEN, false).await);
    assert!(cookie.contains("HttpOnly") && cookie.contains("; Secure"), "default: {cookie}");
    let cookie = set_cookie(&sign_in(&public, ADMIN_TOKEN, false).await);
    assert!(cookie.contains("; Secure") && cookie.contains("SameSite=Strict"), "DOCKET_PUBLIC_URL https: {cookie}");
    // Only an operator who says the dashboard is served over plain HTTP gets cookies
    // without Secure (unless a proxy says the request came over https).
    let cookie = set_cookie(&sign_in(&plain, ADMIN_TOKEN, false).await);
    assert!(cookie.contains("HttpOnly") && !cookie.contains("Secure"), "DOCKET_PUBLIC_URL http: {cookie}");
    let cookie = set_cookie(&sign_in(&plain, ADMIN_TOKEN, true).await);
    assert!(cookie.contains("; Secure"), "behind a proxy that says https: {cookie}");
}

#[tokio::test]
async fn failed_sign_ins_shut_the_address_out_for_longer_each_time() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let base = start_api_with(&db.url, &catalog_path(&dir), |_| {}).await;

    // Five free failures, then the sixth shuts the address out.
    for n in 1..=6 {
        let response = sign_in(&base, "wrong-token-0123456789abcdef", false).await;
        assert_eq!(response.status(), 401, "failure {n}");
    }
    // A wrong token is refused now without being counted.
    let refused = sign_in(&base, "wrong-token-0123456789abcdef", false).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.text().await.unwrap().contains("Too many failed sign-ins"));
    // Wrong bearer tokens of the ops API count against the same address.
    let bearer = client().get(format!("{base}/ops/jobs")).bearer_auth("wrong-token-0123456789abcdef").send().await;
    assert_eq!(bearer.unwrap().status(), 429);

    // Each failure after a shut-out ends shuts the address out for twice as long.
    for shut_out in [2, 4] {
        docket_tests::wait_until("the shut-out to end", docket_tests::wait::DEADLINE, || async {
            let wrong = client().get(format!("{base}/ops/jobs")).bearer_auth("wrong-token-0123456789abcdef");
            (wrong.send().await.unwrap().status() == 401).then_some(())
        })
        .await;
        let again = sign_in(&base, "wrong-token-0123456789abcdef", false).await;
        assert_eq!(again.status(), 429, "shut out again at once");
        let retry_after: u64 = again.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((shut_out - 1..=shut_out).contains(&retry_after), "a {shut_out} s shut-out: {retry_after}");
    }
}

#[tokio::test]
async fn nobody_can_lock_operators_out_a_valid_token_always_passes_and_missing_ones_are_not_guesses() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let base = start_api_with(&db.url, &catalog_path(&dir), |_| {}).await;
    // Requests without a token are not guesses: never a shut-out.
    for n in 1..=10 {
        let bare = client().get(format!("{base}/ops/jobs")).send().await.unwrap();
        assert_eq!(bare.status(), 401, "request {n} without a token");
    }
    // Wrong tokens shut the address out…
    for _ in 1..=6 {
        client().get(format!("{base}/ops/jobs")).bearer_auth("wrong-token-0123456789abcdef").send().await.unwrap();
    }
    let wrong = client().get(format!("{base}/ops/jobs")).bearer_auth("wrong-token-0123456789abcdef").send().await;
    assert_eq!(wrong.unwrap().status(), 429);
    // …a request without a token is still told it lacks one (not 429)…
    let bare = client().get(format!("{base}/ops/jobs")).send().await.unwrap();
    assert_eq!(bare.status(), 401, "no token while the address is shut out");
    // …and an operator with the right token, behind the same address, still gets in.
    let right = client().get(format!("{base}/ops/jobs")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(right.status(), 200);
    let signed_in = sign_in(&base, ADMIN_TOKEN, false).await;
    assert_eq!(signed_in.status(), 303, "the dashboard's sign-in too");
}

#[tokio::test]
async fn a_database_error_shows_a_sentence_and_the_request_id_never_its_text() {
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let base = start_api_with(&db.url_via(proxy.addr), &catalog_path(&dir), |c| {
        c.db_acquire_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let signed_in = sign_in(&base, ADMIN_TOKEN, false).await;
    let cookie = set_cookie(&signed_in);
    let session = cookie.split(';').next().unwrap().to_owned();

    proxy.cut();
    for page in ["/ops/", "/ops/ui/jobs", "/ops/ui/jobs?state=failed"] {
        let response = client()
            .get(format!("{base}{page}"))
            .header("cookie", &session)
            .header("x-request-id", "req-dashboard-4711")
            .send()
            .await
            .unwrap();
        let body = response.text().await.unwrap();
        assert!(body.contains("Docket could not complete this request"), "{page}: {body}");
        assert!(body.contains("req-dashboard-4711"), "{page}: the request id is shown: {body}");
        for leak in ["database error", "pool timed out", "Connection refused", "connection", "sqlx"] {
            assert!(!body.to_lowercase().contains(&leak.to_lowercase()), "{page} shows {leak:?}: {body}");
        }
    }
}

/// Sends a POST head announcing `length` bytes of form, then only `sent` of them, and
/// returns the status line of the answer (which must come without the rest). Bytes
/// the server never reads would make it reset the connection when it closes it, so
/// the tests send none.
async fn post_announcing(base: &str, path: &str, cookie: Option<&str>, length: usize, sent: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let cookie = cookie.map(|c| format!("cookie: {c}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {length}\r\n{cookie}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'a'; sent]).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer before the body is complete"))
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn dashboard_forms_are_refused_before_their_body_is_read_without_a_session_and_bounded_with_one() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let base = start_api_with(&db.url, &catalog_path(&dir), |_| {}).await;
    for path in ["/ops/ui/jobs/bulk", "/ops/ui/actions/noop/pause", "/ops/logout", "/ops/ui/actions/noop/retry-failed"]
    {
        // No session: sent to sign in at once, the body never read.
        let status = post_announcing(&base, path, None, 10 * 1024, 0).await;
        assert!(status.contains(" 303 "), "{path}: {status}");
        // 2 MiB announced: refused at once, whoever sends it.
        let status = post_announcing(&base, path, None, 2 * 1024 * 1024, 0).await;
        assert!(status.contains(" 413 "), "{path}: {status}");
    }
    // With a session: a bulk form over 64 KiB and any other form over 16 KiB are 413.
    let signed_in = sign_in(&base, ADMIN_TOKEN, false).await;
    let cookie = set_cookie(&signed_in).split(';').next().unwrap().to_owned();
    let status = post_announcing(&base, "/ops/ui/jobs/bulk", Some(&cookie), 64 * 1024 + 1, 0).await;
    assert!(status.contains(" 413 "), "bulk: {status}");
    let status = post_announcing(&base, "/ops/ui/actions/noop/pause", Some(&cookie), 16 * 1024 + 1, 0).await;
    assert!(status.contains(" 413 "), "pause: {status}");
}

#[tokio::test]
async fn dashboard_pages_carry_security_headers() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let base = start_api_with(&db.url, &catalog_path(&dir), |_| {}).await;
    let job: serde_json::Value = client()
        .get(format!("{base}/customAction?name=noop&documentId=d&documentVersionId=v"))
        .header("apiKey", docket_tests::API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["jobId"].as_str().unwrap();
    let cookie = set_cookie(&sign_in(&base, ADMIN_TOKEN, false).await).split(';').next().unwrap().to_owned();
    for path in ["/ops/login".to_owned(), "/ops/".to_owned(), format!("/ops/ui/jobs/{id}")] {
        let page = client().get(format!("{base}{path}")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let csp = header("content-security-policy");
        for directive in ["frame-ancestors 'none'", "script-src 'self'", "form-action 'self'", "default-src 'none'"] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        let html = page.text().await.unwrap();
        assert!(!html.contains("<style") && !html.contains("<script>"), "{path}: no inline style or script");
    }
}

/// Wrong admin tokens sent as if through a proxy for `forwarded_for`; returns the
/// status of the last.
async fn wrong_tokens_from(base: &str, forwarded_for: &str, n: usize) -> u16 {
    let mut status = 0;
    for _ in 0..n {
        let reply = client()
            .get(format!("{base}/ops/jobs"))
            .bearer_auth("wrong-token-0123456789abcdef")
            .header("x-forwarded-for", forwarded_for)
            .send()
            .await
            .unwrap();
        status = reply.status().as_u16();
    }
    status
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_throttle_counts_the_forwarded_client() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let trusting = start_api_with(&db.url, &catalog_path(&dir), |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // A guesser behind the proxy is shut out; another client behind it is not.
    assert_eq!(wrong_tokens_from(&trusting, "203.0.113.7", 7).await, 429);
    assert_eq!(wrong_tokens_from(&trusting, "203.0.113.8", 1).await, 401);
    // What the client itself writes to the left of the proxy's entry is not believed.
    assert_eq!(wrong_tokens_from(&trusting, "198.51.100.1, 203.0.113.7", 1).await, 429);

    // Without trusted proxies the header is ignored: every request is the peer's.
    let plain = start_api_with(&db.url, &catalog_path(&dir), |_| {}).await;
    assert_eq!(wrong_tokens_from(&plain, "203.0.113.7", 7).await, 429);
    assert_eq!(wrong_tokens_from(&plain, "203.0.113.8", 1).await, 429);
}
