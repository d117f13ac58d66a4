//! Security properties: a per-key request budget; secrets (API keys, admin tokens,
//! signing secrets, even wrong keys a client tried) never appearing in logs, metrics,
//! replies or the database; HTTPS targets verified against trusted roots.

use docket_tests::inprocess::{start_api_with, ADMIN_TOKEN, SECOND_KEY};
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker, API_KEY};

#[tokio::test]
async fn each_api_key_has_its_own_request_budget() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    let base = start_api_with(&db.url, &catalog_path(&dir), |c| c.rate_limit = Some("2/1h".parse().unwrap())).await;
    let client = reqwest::Client::new();
    let call = |key: &'static str| {
        let client = client.clone();
        let url = format!("{base}/customAction?name=noop&documentId=d&documentVersionId=v");
        async move { client.get(url).header("apiKey", key).send().await.unwrap() }
    };
    assert_eq!(call(API_KEY).await.status(), 200);
    assert_eq!(call(API_KEY).await.status(), 200);
    let limited = call(API_KEY).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 60, "Retry-After {wait}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["status"], "failure");
    assert!(body["error"].as_str().unwrap().contains("too many requests"));
    assert_eq!(call(SECOND_KEY).await.status(), 200, "the other key has its own budget");
    let stored: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, 3, "the refused request stored nothing");
}

#[tokio::test]
async fn secrets_never_appear_in_logs_metrics_replies_or_the_database() {
    const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const WRONG_KEY: &str = "attacker-guess-0123456789-xyz";
    const BEARER: &str = "bearer-secret-value-0123456789";
    const CLIENT_SECRET: &str = "client-secret-value-0123456789";
    const ACCESS_TOKEN: &str = "oauth-access-token-abc123";
    let secrets =
        [API_KEY, ADMIN_TOKEN, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", WRONG_KEY, BEARER, CLIENT_SECRET, ACCESS_TOKEN];
    let db = TestDb::new().await;
    let target = Target::start(|n| if n == 1 { Reply::status(500).body("oops") } else { Reply::status(200) }).await;
    // The bearer action's target fails its first call with a body (into the attempt's
    // error); the OAuth2 action's refuses its first token (401: fetched again).
    let bearer_target =
        Target::start(|n| if n == 1 { Reply::status(503).body("busy") } else { Reply::status(200) }).await;
    let authed = Target::start(|n| if n == 1 { Reply::status(401).body("expired") } else { Reply::status(200) }).await;
    let tokens = Target::start(|_| {
        Reply::status(200).body(&format!("{{\"access_token\":\"{ACCESS_TOKEN}\",\"expires_in\":3600}}"))
    })
    .await;
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\nretry_base = \"50ms\"\nsigning_secret_env = \"SIGNING\"\n\
         [[action]]\nname = \"bearer\"\nkind = \"http\"\nurl = \"{bearer}\"\nretry_base = \"50ms\"\n\
         auth = {{ type = \"bearer\", token_env = \"BEARER_SECRET\" }}\nallow_http = true\n\
         [[action]]\nname = \"oauth\"\nkind = \"http\"\nurl = \"{authed}\"\nretry_base = \"50ms\"\n\
         auth = {{ type = \"oauth2_client_credentials\", token_url = \"{tokens}\", client_id = \"docket\", client_secret_env = \"CLIENT_SECRET\" }}\nallow_http = true\n",
        target.url,
        bearer = bearer_target.url,
        authed = authed.url,
        tokens = tokens.url,
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[("DOCKET_ADMIN_TOKEN", format!("ops:{ADMIN_TOKEN}"))]).await;
    let worker_env = [
        ("SIGNING", SIGNING.to_owned()),
        ("BEARER_SECRET", BEARER.to_owned()),
        ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
    ];
    let worker = Worker::start(&db.url, &catalog_path(&dir), "w-secrets", &worker_env).await;
    let client = reqwest::Client::new();
    let mut replies = Vec::new();

    let id = api.enqueue(&client, "archive", "doc-s").await;
    let bearer_id = api.enqueue(&client, "bearer", "doc-b").await;
    let oauth_id = api.enqueue(&client, "oauth", "doc-o").await;
    for other in [bearer_id, oauth_id] {
        wait_until("the authenticated jobs to succeed", DEADLINE, || async {
            let job = docket::db::jobs::get(&db.pool, other).await.unwrap()?;
            (job.state == docket::domain::JobState::Succeeded).then_some(())
        })
        .await;
        let reply = client.get(format!("{}/ops/jobs/{other}", api.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        replies.push(reply.text().await.unwrap());
    }
    assert!(
        authed.received().iter().any(|r| r.headers["authorization"] == format!("Bearer {ACCESS_TOKEN}").as_str()),
        "the OAuth2 token was used"
    );
    assert!(bearer_target.received().iter().all(|r| r.headers["authorization"] == format!("Bearer {BEARER}").as_str()));
    let wrong = client
        .get(format!("{}/customAction?name=archive&documentId=d&documentVersionId=v", api.base))
        .header("apiKey", WRONG_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    replies.push(wrong.text().await.unwrap());
    let ops_wrong = client.get(format!("{}/ops/jobs", api.base)).bearer_auth(WRONG_KEY).send().await.unwrap();
    replies.push(ops_wrong.text().await.unwrap());
    wait_until("the job to succeed after a retry", DEADLINE, || async {
        let job = docket::db::jobs::get(&db.pool, id).await.unwrap()?;
        (job.state == docket::domain::JobState::Succeeded).then_some(())
    })
    .await;
    for path in [format!("/ops/jobs/{id}"), "/ops/stats".into(), "/ops/audit".into()] {
        let reply = client.get(format!("{}{path}", api.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        replies.push(reply.text().await.unwrap());
    }
    let conflict =
        client.post(format!("{}/ops/jobs/{id}/retry", api.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    replies.push(conflict.text().await.unwrap());
    let bulk = client
        .post(format!("{}/ops/actions/archive/retry-failed", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status(), 200);
    replies.push(bulk.text().await.unwrap());
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/ops/login", api.base))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    replies.push(format!("{:?}", login.headers()));
    replies.push(reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap());
    replies.push(reqwest::get(format!("{}/metrics", worker.health)).await.unwrap().text().await.unwrap());
    replies.push(reqwest::get(format!("{}/openapi.json", api.base)).await.unwrap().text().await.unwrap());

    let database: Vec<String> = sqlx::query_scalar(
        "select t::text from jobs t union all select t::text from job_attempts t
         union all select t::text from operator_actions t union all select t::text from workers t",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(database.len() >= 5, "the scenario wrote rows: {database:?}");

    let everything = [api.process.logs(), worker.process.logs(), replies, database].concat();
    assert!(everything.len() > 20);
    for text in &everything {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret appeared in: {text}");
        }
    }
}

#[tokio::test]
async fn https_targets_are_reached_only_with_a_trusted_certificate() {
    let db = TestDb::new().await;
    let target = docket_tests::tls::TlsTarget::start().await;
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 1\n",
        target.url
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let client = reqwest::Client::new();
    let finished = |id: docket::domain::JobId| {
        let pool = db.pool.clone();
        async move {
            wait_until("the job to finish", DEADLINE, || async {
                docket::db::jobs::get(&pool, id).await.unwrap().filter(|j| j.state.is_final())
            })
            .await
        }
    };

    // The certificate's CA is in no root store the worker uses: the handshake fails,
    // nothing is sent, and the attempt says why.
    let mut untrusting = Worker::start(&db.url, &catalog_path(&dir), "w-untrusting", &[]).await;
    let refused = finished(api.enqueue(&client, "archive", "doc-untrusted").await).await;
    assert_eq!(refused.state, docket::domain::JobState::Failed);
    let error = refused.last_error.unwrap_or_default();
    assert!(error.contains("certificate") && error.contains("UnknownIssuer"), "{error}");
    assert_eq!(target.count(), 0, "no request went out over an unverified connection");
    untrusting.process.kill().await;

    // Trusted through the system roots (SSL_CERT_FILE stands in for the system store):
    // the same target is reached.
    let _trusting = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-trusting",
        &[("SSL_CERT_FILE", target.ca_file.display().to_string())],
    )
    .await;
    let done = finished(api.enqueue(&client, "archive", "doc-trusted").await).await;
    assert_eq!(done.state, docket::domain::JobState::Succeeded, "{:?}", done.last_error);
    assert_eq!(target.count(), 1);
}

#[tokio::test]
async fn a_target_url_with_secrets_never_reaches_attempt_errors_or_logs() {
    let db = TestDb::new().await;
    // A webhook URL whose path and query are the credential (Slack, Teams, Azure
    // Functions' `?code=`), on a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/hook-path-secret-42?code=query-secret-43");
    let dir = catalog(&format!("[[action]]\nname = \"hook\"\nkind = \"http\"\nurl = \"{url}\"\nmax_attempts = 1\n"));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker = Worker::start(&db.url, &catalog_path(&dir), "w-url-secret", &[]).await;
    let id = api.enqueue(&reqwest::Client::new(), "hook", "doc-1").await;
    let job = wait_until("the job to fail", DEADLINE, || async {
        docket::db::jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await;
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "the error names the target's origin: {error}");
    for secret in ["hook-path-secret-42", "query-secret-43"] {
        assert!(!error.contains(secret), "{secret} in last_error: {error}");
        assert!(!worker.process.logs().iter().any(|l| l.contains(secret)), "{secret} in the worker's logs");
    }
}

#[tokio::test]
async fn a_document_id_of_dot_dot_cannot_climb_the_targets_path() {
    let db = TestDb::new().await;
    let target = Target::always(200).await;
    // `…/x/{{ document.id }}/hook`: with `..` the request would land on `…/hook`, the
    // target's real endpoint, with the action's method and credentials.
    let base = target.url.trim_end_matches("/hook");
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{base}/x/{{{{ document.id }}}}/hook\"\nmax_attempts = 3\n"
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-dot-dot", &[]).await;
    let client = reqwest::Client::new();
    for document in ["..", "."] {
        let id = api.enqueue(&client, "archive", document).await;
        let job = wait_until("the job to end", DEADLINE, || async {
            docket::db::jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
        })
        .await;
        assert_eq!((job.state, job.attempts), (docket::domain::JobState::Failed, 1), "{document}: failed for good");
        let error = job.last_error.unwrap_or_default();
        assert!(error.contains("'.' or '..'"), "{document}: {error}");
    }
    assert_eq!(target.count(), 0, "nothing reached the target");
}
