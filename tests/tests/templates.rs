//! Actions that reach real systems: request templates, destination auth and success
//! statuses, end to end through docket-api → Postgres → docket-worker → a real HTTP
//! server on loopback that records exactly what it receives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use docket::db::{attempts, jobs};
use docket::domain::{JobId, JobState};
use docket_tests::process::refusal;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, TestDb, Worker};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query exactly as sent.
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

type Answer = dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync;

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Answer>,
}

/// A server that records every request and answers with `answer(request, n)`.
struct Server {
    base: String,
    recorder: Recorder,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(answer: impl Fn(&Seen, usize) -> (u16, String) + Send + Sync + 'static) -> Self {
        let recorder = Recorder { seen: Arc::default(), answer: Arc::new(answer) };
        let app = Router::new().fallback(record).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, recorder, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.recorder.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method,
        target: uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        headers,
        body: body.to_vec(),
    };
    let n = {
        let mut all = recorder.seen.lock().unwrap();
        all.push(seen.clone());
        all.len()
    };
    let (status, body) = (recorder.answer)(&seen, n);
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body).into_response()
}

async fn finished(db: &TestDb, id: JobId) -> jobs::JobRow {
    wait_until(&format!("job {id} to finish"), DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await
}

/// Queues a job with a chosen document id and username (header), returns its id.
async fn trigger(api: &Api, action: &str, document: &str, username: &str) -> JobId {
    let response = reqwest::Client::new()
        .get(format!("{}/customAction", api.base))
        .query(&[("name", action), ("documentId", document), ("documentVersionId", "v1")])
        .header("apiKey", docket_tests::API_KEY)
        .header("username", username)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: serde_json::Value = response.json().await.unwrap();
    JobId(body["jobId"].as_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn a_templated_json_request_arrives_exactly_whatever_the_values_hold() {
    let db = TestDb::new().await;
    let target = Server::start(|_, _| (200, "{}".into())).await;
    let dir = catalog(&format!(
        r#"[[action]]
name = "publish"
kind = "http"
method = "PUT"
url = "{base}/dam/assets/{{{{ document.id }}}}/publish?by={{{{ user.username }}}}"
auth = {{ type = "bearer", token_env = "DAM_TOKEN" }}
allow_http = true  # the loopback stand-in speaks plain HTTP
success_status = [200, 201]

[action.headers]
X-Attempt = "{{{{ job.attempt }}}} of {{{{ job.max_attempts }}}}"

[action.body]
text = "{{{{ user.username }}}} archived {{{{ document.id }}}}"
copies = 2
urgent = false
tags = ["docket", "{{{{ job.action }}}}"]
[action.body.meta]
version = "{{{{ document.version_id }}}}"
job = "{{{{ job.id }}}}"
"#,
        base = target.base
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-templates", &[("DAM_TOKEN", "dam-secret-token-4711".into())])
            .await;

    // (Header values are ASCII; the document id carries the rest. Newlines and tabs
    // cannot pass the api's edge; the renderer's unit tests cover them.)
    let username = "Zoe \"Q\" O'Brien \\ </script>";
    let document = "a/b?c=d#e f 🎉 مرحبا";
    let id = trigger(&api, "publish", document, username).await;
    assert_eq!(finished(&db, id).await.state, JobState::Succeeded);

    let seen = target.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, Method::PUT);
    // Every byte but RFC 3986's unreserved characters, encoded.
    let by: String = username
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let document_segment = "a%2Fb%3Fc%3Dd%23e%20f%20%F0%9F%8E%89%20%D9%85%D8%B1%D8%AD%D8%A8%D8%A7";
    assert_eq!(request.target, format!("/dam/assets/{document_segment}/publish?by={by}"), "one path segment");
    assert_eq!(request.headers["authorization"], "Bearer dam-secret-token-4711");
    assert_eq!(request.headers["x-attempt"], "1 of 8");
    assert_eq!(request.headers["idempotency-key"], id.to_string().as_str());
    assert_eq!(request.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("valid JSON");
    assert_eq!(
        body,
        serde_json::json!({
            "text": format!("{username} archived {document}"),
            "copies": 2,
            "urgent": false,
            "tags": ["docket", "publish"],
            "meta": {"version": "v1", "job": id.to_string()}
        })
    );
    for line in worker.process.logs() {
        assert!(!line.contains("dam-secret-token-4711"), "the token leaked into a log: {line}");
    }
}

#[tokio::test]
async fn a_form_encoded_target_and_success_statuses() {
    let db = TestDb::new().await;
    // Answers 200 where only 204 counts as success.
    let target = Server::start(|_, _| (200, "{\"ok\":true}".into())).await;
    let dir = catalog(&format!(
        r#"[[action]]
name = "fusion"
kind = "http"
url = "{base}/hooks/fusion"
content_type = "application/x-www-form-urlencoded"
body_template = "document={{{{ document.id | urlencode }}}}&user={{{{ user.username | urlencode }}}}"
auth = {{ type = "basic", username = "docket", password_env = "FUSION_PASSWORD" }}
allow_http = true

[[action]]
name = "strict"
kind = "http"
url = "{base}/hooks/strict"
success_status = [204]
max_attempts = 1
"#,
        base = target.base
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-form", &[("FUSION_PASSWORD", "pa:ss word".into())]).await;

    let id = trigger(&api, "fusion", "doc 1&x=2", "ada@example.com").await;
    assert_eq!(finished(&db, id).await.state, JobState::Succeeded);
    let request = target.seen().into_iter().find(|s| s.target == "/hooks/fusion").unwrap();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(String::from_utf8(request.body).unwrap(), "document=doc%201%26x%3D2&user=ada%40example.com");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("docket:pa:ss word");
    assert_eq!(request.headers["authorization"], format!("Basic {basic}").as_str());

    let id = trigger(&api, "strict", "doc-2", "ada@example.com").await;
    let job = finished(&db, id).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(job.last_error.unwrap().contains("HTTP 200 OK"), "200 is not in success_status");
}

/// An OAuth2 token endpoint and a target that accepts only its current token.
struct OAuthWorld {
    db: TestDb,
    api: Api,
    token_endpoint: Server,
    target: Server,
    _dir: tempfile::TempDir,
}

async fn oauth_world(
    token_answer: impl Fn(&Seen, usize) -> (u16, String) + Send + Sync + 'static,
    target_rejects_first: bool,
    extra: &str,
) -> OAuthWorld {
    let db = TestDb::new().await;
    let token_endpoint = Server::start(token_answer).await;
    let rejected_once = Arc::new(AtomicUsize::new(0));
    let target = Server::start(move |seen, _| {
        let authorization = seen.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !authorization.starts_with("Bearer token-") {
            return (401, "{\"error\":\"no token\"}".into());
        }
        if target_rejects_first && rejected_once.fetch_add(1, Ordering::SeqCst) == 0 {
            return (401, "{\"error\":\"token revoked\"}".into());
        }
        (200, "{}".into())
    })
    .await;
    let dir = catalog(&format!(
        r#"[[action]]
name = "rest"
kind = "http"
url = "{target}/api/documents/{{{{ document.id }}}}/archive"
retry_base = "50ms"
retry_max = "100ms"
max_attempts = 3
allow_http = true
{extra}
[action.auth]
type = "oauth2_client_credentials"
token_url = "{tokens}/oauth/token"
client_id = "docket-client"
client_secret_env = "REST_CLIENT_SECRET"
scope = "archive:write"
"#,
        target = target.base,
        tokens = token_endpoint.base
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    OAuthWorld { db, api, token_endpoint, target, _dir: dir }
}

fn token(n: usize, expires_in: u64) -> (u16, String) {
    (200, format!("{{\"access_token\":\"token-{n}\",\"token_type\":\"Bearer\",\"expires_in\":{expires_in}}}"))
}

async fn oauth_worker(world: &OAuthWorld, id: &str) -> Worker {
    let env =
        [("REST_CLIENT_SECRET", "client-secret-0123456789".to_owned()), ("DOCKET_WORKER_CONCURRENCY", "64".to_owned())];
    Worker::start(&world.db.url, &catalog_path(&world._dir), id, &env).await
}

#[tokio::test]
async fn one_token_request_serves_a_hundred_jobs_at_once() {
    let world = oauth_world(|_, n| token(n, 3600), false, "").await;
    let worker = oauth_worker(&world, "w-oauth").await;
    let ids = world.api.enqueue_many(&reqwest::Client::new(), "rest", 100).await;
    for id in &ids {
        assert_eq!(finished(&world.db, *id).await.state, JobState::Succeeded);
    }
    let requests = world.token_endpoint.seen();
    assert_eq!(requests.len(), 1, "one token request for 100 jobs");
    let form = String::from_utf8(requests[0].body.clone()).unwrap();
    for part in ["grant_type=client_credentials", "client_id=docket-client", "scope=archive%3Awrite"] {
        assert!(form.contains(part), "{form}");
    }
    assert_eq!(world.target.seen().len(), 100);
    for line in worker.process.logs() {
        assert!(!line.contains("client-secret-0123456789") && !line.contains("token-1"), "a secret leaked: {line}");
    }
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced_before_use() {
    // Tokens that live 1 s (refreshed a tenth of their life early).
    let world = oauth_world(|_, n| token(n, 1), false, "").await;
    let _worker = oauth_worker(&world, "w-expiry").await;
    for n in 0..2 {
        let id = trigger(&world.api, "rest", &format!("doc-{n}"), "ada@example.com").await;
        assert_eq!(finished(&world.db, id).await.state, JobState::Succeeded);
        // Real time must pass for the token to expire.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let bearer: Vec<String> =
        world.target.seen().iter().map(|s| s.headers["authorization"].to_str().unwrap().to_owned()).collect();
    assert_eq!(bearer, ["Bearer token-1", "Bearer token-2"], "the expired token was replaced");
}

#[tokio::test]
async fn a_401_from_the_target_refreshes_the_token_once_and_succeeds() {
    let world = oauth_world(|_, n| token(n, 3600), true, "").await;
    let _worker = oauth_worker(&world, "w-401").await;
    let id = trigger(&world.api, "rest", "doc-401", "ada@example.com").await;
    let job = finished(&world.db, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1), "refreshed within the attempt");
    assert_eq!(world.token_endpoint.seen().len(), 2);
    let bearer: Vec<String> =
        world.target.seen().iter().map(|s| s.headers["authorization"].to_str().unwrap().to_owned()).collect();
    assert_eq!(bearer, ["Bearer token-1", "Bearer token-2"]);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_named_and_retried_and_a_wrong_secret_fails_at_once() {
    let world = oauth_world(|_, _| (500, "{\"error\":\"server_error\"}".into()), false, "").await;
    let _worker = oauth_worker(&world, "w-token-500").await;
    let id = trigger(&world.api, "rest", "doc-500", "ada@example.com").await;
    let job = finished(&world.db, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 3), "retried");
    let rows = attempts::list(&world.db.pool, id).await.unwrap();
    for row in &rows {
        let error = row.error.as_deref().unwrap();
        assert!(error.contains("token endpoint") && error.contains("/oauth/token") && error.contains("500"), "{error}");
        assert!(!error.contains("/api/documents"), "names the token endpoint, not the target: {error}");
    }
    assert!(world.target.seen().is_empty(), "the target was never called without a token");

    // A wrong client secret: the token endpoint answers 401.
    let world = oauth_world(|_, _| (401, "{\"error\":\"invalid_client\"}".into()), false, "").await;
    let _worker = oauth_worker(&world, "w-token-401").await;
    let id = trigger(&world.api, "rest", "doc-wrong", "ada@example.com").await;
    let job = finished(&world.db, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1), "a refused client is not retried");
    let error = job.last_error.unwrap();
    assert!(error.contains("token endpoint") && error.contains("invalid_client") && error.contains("401"), "{error}");
}

#[tokio::test]
async fn start_up_refuses_broken_templates_and_missing_secrets_naming_file_action_and_key() {
    let db = TestDb::new().await;
    let http = |extra: &str| {
        format!("[[action]]\nname = \"slack\"\nkind = \"http\"\nurl = \"https://hooks.example/x\"\n{extra}")
    };
    let cases = [
        (http("[action.body]\ntext = \"{{ document.id \"\n"), "field `body`", "line 1"),
        (http("[action.body]\ntext = \"{{ document.nope }}\"\n"), "field `body`", "body.text"),
        (http("[action.headers]\nX-A = \"ok\"\nX-B = \"{{ job.id | nofilter }}\"\n"), "field `headers`", "headers.X-B"),
        (
            http("body_template = \"x\"\ncontent_type = \"text/plain\"\n[action.body]\ntext = \"y\"\n"),
            "field `body_template`",
            "cannot be set together with body",
        ),
    ];
    for binary in ["docket-api", "docket-worker"] {
        for (text, field, detail) in &cases {
            let line = refusal(binary, &db.url, text).await;
            assert!(line.contains("actions.toml") && line.contains("\"slack\""), "{binary}: {line}");
            assert!(line.contains(field) && line.contains(detail), "{binary}: {line}");
        }
    }
    // A secret the worker needs but does not have stops it, naming the variable.
    let line =
        refusal("docket-worker", &db.url, &http("auth = { type = \"bearer\", token_env = \"SLACK_TOKEN_MISSING\" }\n"))
            .await;
    assert!(line.contains("SLACK_TOKEN_MISSING") && line.contains("\"slack\"") && line.contains("not set"), "{line}");
}

#[tokio::test]
async fn what_the_target_said_is_captured_by_a_json_pointer_and_shown_to_operators() {
    let db = TestDb::new().await;
    let target = Server::start(|seen, _| match seen.target.as_str() {
        "/found" => (201, "{\"data\":{\"url\":\"https://dam.example/assets/7\",\"id\":7}}".into()),
        "/missing" => (200, "{\"data\":{}}".into()),
        _ => (200, "not json at all".into()),
    })
    .await;
    let action = |name: &str, path: &str| {
        format!(
            "[[action]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}{path}\"\nresult = \"/data/url\"\n",
            target.base
        )
    };
    let dir = catalog(&[action("found", "/found"), action("missing", "/missing"), action("text", "/text")].concat());
    let admin = [("DOCKET_ADMIN_TOKEN", format!("tester:{}", docket_tests::inprocess::ADMIN_TOKEN))];
    let api = Api::start(&db.url, &catalog_path(&dir), &admin).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-results", &[]).await;

    let mut results = Vec::new();
    for name in ["found", "missing", "text"] {
        let id = trigger(&api, name, "doc-result", "ada@example.com").await;
        let job = finished(&db, id).await;
        assert_eq!(job.state, JobState::Succeeded, "{name}");
        let detail = api.job_detail(&reqwest::Client::new(), id).await;
        assert_eq!(detail["job"]["result"], job.result.clone().unwrap_or_default(), "{name}: the ops API shows it");
        results.push(job.result);
    }
    assert_eq!(
        results,
        [
            Some(serde_json::json!("https://dam.example/assets/7")),
            Some(serde_json::Value::Null),
            Some(serde_json::Value::Null)
        ]
    );
}

#[tokio::test]
async fn the_real_system_examples_send_exactly_what_their_targets_expect() {
    let db = TestDb::new().await;
    let server = Server::start(|seen, _| match seen.target.as_str() {
        "/oauth2/token" => {
            (200, "{\"access_token\":\"dam-token\",\"token_type\":\"Bearer\",\"expires_in\":3600}".into())
        }
        path if path.starts_with("/api/v2/documents/") => {
            (201, "{\"data\":{\"archiveUrl\":\"https://dam.example.com/a/1\"}}".into())
        }
        path if path.starts_with("/workflows/") => (202, String::new()),
        _ => (200, "ok".into()),
    })
    .await;
    let example = include_str!("../../examples/real-systems.toml");
    let mut text = example.to_owned();
    for host in [
        "https://hooks.slack.com",
        "https://prod-12.westeurope.logic.azure.com:443",
        "https://dam.example.com",
        "https://login.example.com",
        "https://hook.app.workfrontfusion.com",
        "https://print.example.com",
    ] {
        text = text.replace(&format!("url = \"{host}"), &format!("url = \"{}", server.base));
    }
    // The stand-in speaks plain HTTP on loopback.
    text = text.replace("kind = \"http\"", "kind = \"http\"\nallow_http = true");
    let dir = catalog(&text);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let secrets = [("DAM_CLIENT_SECRET", "dam-secret".to_owned()), ("PRINT_API_KEY", "print-key".to_owned())];
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-examples", &secrets).await;

    let user = "ada@example.com";
    let mut ids = Vec::new();
    for name in ["post-to-slack", "tell-teams", "archive-in-dam", "start-fusion-scenario", "send-to-print"] {
        let id = trigger(&api, name, "DOC 42/7", user).await;
        let job = finished(&db, id).await;
        assert_eq!(job.state, JobState::Succeeded, "{name}: {:?}", job.last_error);
        ids.push((name, id, job));
    }
    let seen = server.seen();
    let find = |prefix: &str| seen.iter().find(|s| s.target.starts_with(prefix)).cloned().expect(prefix);
    let json = |s: &Seen| serde_json::from_slice::<serde_json::Value>(&s.body).unwrap();

    let slack = find("/services/");
    assert_eq!((slack.method.as_str(), slack.headers["content-type"].to_str().unwrap()), ("POST", "application/json"));
    assert_eq!(
        json(&slack),
        serde_json::json!({"text": "ada@example.com sent document DOC 42/7 (version v1) to Slack."})
    );

    let teams = find("/workflows/");
    assert!(teams.target.ends_with("sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=XXXXXXXX"), "{}", teams.target);
    let card = json(&teams);
    assert_eq!(card["type"], "message");
    assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(card["attachments"][0]["content"]["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    assert_eq!(
        card["attachments"][0]["content"]["body"][0],
        serde_json::json!({"type": "TextBlock", "wrap": true, "text": "Document DOC 42/7 was sent by ada@example.com."})
    );

    let token = find("/oauth2/token");
    let form = String::from_utf8(token.body.clone()).unwrap();
    assert_eq!(
        form, "grant_type=client_credentials&scope=archive.write&client_id=docket&client_secret=dam-secret",
        "RFC 6749 §4.4, client authentication in the body"
    );
    let dam = find("/api/v2/documents/");
    assert_eq!(dam.method, Method::PUT);
    assert_eq!(dam.target, "/api/v2/documents/DOC%2042%2F7/versions/v1/archive");
    assert_eq!(dam.headers["authorization"], "Bearer dam-token");
    let dam_id = ids.iter().find(|(n, _, _)| *n == "archive-in-dam").unwrap();
    assert_eq!(
        json(&dam),
        serde_json::json!({"requestedBy": user, "jobId": dam_id.1.to_string(), "retention": {"years": 10, "legalHold": false}})
    );
    assert_eq!(dam_id.2.result, Some(serde_json::json!("https://dam.example.com/a/1")));

    let fusion = find("/abcdefghijklmnopqrstuvwxyz012345");
    let fusion_id = ids.iter().find(|(n, _, _)| *n == "start-fusion-scenario").unwrap().1;
    assert_eq!(
        json(&fusion),
        serde_json::json!({"documentId": "DOC 42/7", "documentVersionId": "v1", "requestedBy": user, "docketJobId": fusion_id.to_string()})
    );

    let print = find("/jobs");
    assert_eq!(print.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(print.headers["x-api-key"], "print-key");
    assert_eq!(
        String::from_utf8(print.body).unwrap(),
        // (Jinja's urlencode leaves "/" as it is; form decoders accept it.)
        "document=DOC%2042/7&version=v1&copies=1&requester=ada%40example.com"
    );
}

#[tokio::test]
async fn oauth2_clients_can_authenticate_with_http_basic_and_send_audience_and_extra_parameters() {
    let db = TestDb::new().await;
    let tokens = Server::start(|_, n| token(n, 3600)).await;
    let target = Server::start(|_, _| (200, "{}".into())).await;
    let dir = catalog(&format!(
        r#"[[action]]
name = "entra"
kind = "http"
url = "{target}/notify"
allow_http = true
[action.auth]
type = "oauth2_client_credentials"
token_url = "{tokens}/token"
client_id = "docket app"
client_secret_env = "ENTRA_SECRET"
audience = "api://workfront-bridge"
client_auth = "basic"
extra_params = {{ resource = "https://graph.example" }}
"#,
        target = target.base,
        tokens = tokens.base
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-basic", &[("ENTRA_SECRET", "s3cr:et".into())]).await;
    let id = trigger(&api, "entra", "doc-1", "ada@example.com").await;
    assert_eq!(finished(&db, id).await.state, JobState::Succeeded);

    let request = &tokens.seen()[0];
    use base64::Engine;
    // RFC 6749 §2.3.1: form-encoded, then joined.
    let basic = base64::engine::general_purpose::STANDARD.encode("docket+app:s3cr%3Aet");
    assert_eq!(request.headers["authorization"], format!("Basic {basic}").as_str());
    let form = String::from_utf8(request.body.clone()).unwrap();
    assert_eq!(
        form,
        "grant_type=client_credentials&audience=api%3A%2F%2Fworkfront-bridge&resource=https%3A%2F%2Fgraph.example"
    );
    assert_eq!(target.seen()[0].headers["authorization"], "Bearer token-1");
}
