//! Operators' dashboard sessions are recorded server-side and can be revoked: a
//! revoked, signed-out or label-wide revoked session's cookie is refused at once even
//! though its signature and expiry still check out; the list never shows a secret;
//! bad requests get clear 4xx answers; long-ended sessions are pruned by the workers.

use docket_tests::inprocess::{start_api_with, ADMIN_TOKEN};
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, TestDb, Worker};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A second admin token, labelled `other`.
const OTHER_TOKEN: &str = "other-token-0123456789abcdefgh";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// An api with two admin tokens: `tester` and `other`.
async fn api(db: &TestDb) -> String {
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    start_api_with(&db.url, &catalog_path(&dir), |c| {
        c.admin_tokens.push(docket::secret::Secret::new(format!("other:{OTHER_TOKEN}")));
    })
    .await
}

/// Signs in with `token`; returns the `Cookie` header value of the new session.
async fn sign_in(base: &str, token: &str) -> String {
    let response = client().post(format!("{base}/ops/login")).form(&[("token", token)]).send().await.unwrap();
    assert_eq!(response.status(), 303, "sign-in with a right token");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The overview's status with `cookie`, and where it redirects to (if it does).
async fn overview(base: &str, cookie: &str) -> (u16, String) {
    let page = client().get(format!("{base}/ops/")).header("cookie", cookie).send().await.unwrap();
    let location = page.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (page.status().as_u16(), location)
}

fn signed_in(answer: (u16, String)) -> bool {
    match answer {
        (200, _) => true,
        (303, location) if location == "/ops/login" => false,
        other => panic!("neither a page nor sent to sign in: {other:?}"),
    }
}

/// The id the ops API names the session of `cookie` by: the SHA-256 of the random
/// session id the cookie carries (`docket_session=label.id.expires.mac`).
fn listed_id(cookie: &str) -> String {
    let value = cookie.trim_start_matches("docket_session=");
    let id = value.split('.').nth(1).expect("a session id in the cookie");
    assert_eq!(id.len(), 32, "128 random bits in hex: {value}");
    hex(&Sha256::digest(decode_hex(id)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

async fn get_json(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn post_json(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().post(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// The ids of the live sessions the ops API lists.
async fn listed(base: &str) -> Vec<String> {
    let (status, body) = get_json(base, "/ops/sessions", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

/// The audit trail's actions and details, newest first.
async fn audit(base: &str) -> Vec<(String, String, String)> {
    let (status, body) = get_json(base, "/ops/audit", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["operatorActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let text = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (text("actor"), text("action"), text("detail"))
        })
        .collect()
}

#[tokio::test]
async fn a_session_works_until_it_is_revoked_then_its_cookie_is_sent_to_sign_in_at_once() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    let cookie = sign_in(&base, ADMIN_TOKEN).await;
    assert!(signed_in(overview(&base, &cookie).await));
    assert!(signed_in(overview(&base, &cookie).await), "and keeps working");

    // Listed with its label, times and address; never with the cookie or its id.
    let (status, body) = get_json(&base, "/ops/sessions", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{body}");
    let session = &sessions[0];
    let id = listed_id(&cookie);
    assert_eq!(session["id"], id.as_str(), "{body}");
    assert_eq!(session["label"], "tester");
    assert_eq!(session["client"], "127.0.0.1");
    for field in ["createdAt", "lastSeenAt", "expiresAt"] {
        assert!(session[field].is_string(), "{field}: {body}");
    }
    let text = body.to_string();
    let value = cookie.trim_start_matches("docket_session=");
    for secret in value.split('.').skip(1).chain([value, ADMIN_TOKEN]) {
        assert!(!text.contains(secret), "the list shows {secret:?}: {text}");
    }
    // The table holds only the digest of the session id.
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select id_hash from operator_sessions").fetch_all(&db.pool).await.unwrap();
    assert_eq!(stored.iter().map(|h| hex(h)).collect::<Vec<_>>(), vec![id.clone()]);

    // Revoked: the very same cookie, still well signed and unexpired, is refused at once,
    // for pages and for forms.
    let (status, body) = post_json(&base, &format!("/ops/sessions/{id}/revoke"), Some(ADMIN_TOKEN)).await;
    assert_eq!((status, &body["id"], &body["label"]), (200, &Value::from(id.as_str()), &Value::from("tester")));
    assert!(!signed_in(overview(&base, &cookie).await), "a revoked session's cookie");
    let form = client().post(format!("{base}/ops/logout")).header("cookie", &cookie).form(&[("csrf", "x")]);
    let form = form.send().await.unwrap();
    assert_eq!((form.status().as_u16(), form.headers()["location"].to_str().unwrap()), (303, "/ops/login"));
    assert!(listed(&base).await.is_empty(), "no longer listed");
    // Revoking it again says so.
    let (status, body) = post_json(&base, &format!("/ops/sessions/{id}/revoke"), Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already been revoked"), "{body}");
    // Recorded: who revoked which session.
    let trail = audit(&base).await;
    assert!(
        trail
            .iter()
            .any(|(actor, action, detail)| actor == "tester" && action == "revoke_session" && detail.contains(&id)),
        "{trail:?}"
    );
    // A new sign-in works as ever.
    assert!(signed_in(overview(&base, &sign_in(&base, ADMIN_TOKEN).await).await));
}

#[tokio::test]
async fn signing_out_revokes_the_session_so_a_replayed_cookie_is_useless() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    let cookie = sign_in(&base, ADMIN_TOKEN).await;
    let page = client().get(format!("{base}/ops/")).header("cookie", &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();

    let out = client().post(format!("{base}/ops/logout")).header("cookie", &cookie).form(&[("csrf", &csrf)]);
    let out = out.send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/ops/login");
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the browser forgets it");

    // Someone who kept a copy of the cookie replays it: refused.
    assert!(!signed_in(overview(&base, &cookie).await), "a signed-out session's cookie");
    let again = client().post(format!("{base}/ops/logout")).header("cookie", &cookie).form(&[("csrf", &csrf)]);
    let again = again.send().await.unwrap();
    assert_eq!((again.status().as_u16(), again.headers()["location"].to_str().unwrap()), (303, "/ops/login"));
    assert!(listed(&base).await.is_empty());
    let revoked_by: Option<String> =
        sqlx::query_scalar("select revoked_by from operator_sessions").fetch_one(&db.pool).await.unwrap();
    assert_eq!(revoked_by.as_deref(), Some("tester"));
    let trail = audit(&base).await;
    assert!(trail.iter().any(|(actor, action, _)| actor == "tester" && action == "sign_out"), "{trail:?}");
}

#[tokio::test]
async fn revoking_a_label_ends_every_session_of_it_and_no_other() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    let testers = [sign_in(&base, ADMIN_TOKEN).await, sign_in(&base, ADMIN_TOKEN).await];
    let other = sign_in(&base, OTHER_TOKEN).await;
    assert_eq!(listed(&base).await.len(), 3);
    let (status, body) = get_json(&base, "/ops/sessions?label=other", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1, "filtered by label: {body}");

    // `other` revokes every session of `tester`.
    let (status, body) = post_json(&base, "/ops/sessions/revoke?label=tester", Some(OTHER_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({"label": "tester", "revoked": 2}));
    for cookie in &testers {
        assert!(!signed_in(overview(&base, cookie).await), "a session of the revoked label");
    }
    assert!(signed_in(overview(&base, &other).await), "another label's session lives on");
    assert_eq!(listed(&base).await, vec![listed_id(&other)]);
    let trail = audit(&base).await;
    assert!(
        trail.iter().any(|(actor, action, detail)| actor == "other"
            && action == "revoke_sessions"
            && detail.contains("tester")),
        "{trail:?}"
    );
    // The bearer token itself is not a session: it still works.
    let (status, _) = get_json(&base, "/ops/sessions", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_session_requests_get_clear_client_errors() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    let cookie = sign_in(&base, ADMIN_TOKEN).await;
    let id = listed_id(&cookie);
    let unknown = "0".repeat(64);

    // Without (or with a wrong) admin token: 401, and nothing is revoked.
    for token in [None, Some("wrong-token-0123456789abcdef")] {
        assert_eq!(get_json(&base, "/ops/sessions", token).await.0, 401);
        assert_eq!(post_json(&base, &format!("/ops/sessions/{id}/revoke"), token).await.0, 401);
        assert_eq!(post_json(&base, "/ops/sessions/revoke?label=tester", token).await.0, 401);
    }
    // The session cookie is no admin token for the JSON API.
    let with_cookie = client().post(format!("{base}/ops/sessions/{id}/revoke")).header("cookie", &cookie);
    assert_eq!(with_cookie.send().await.unwrap().status(), 401);
    assert!(signed_in(overview(&base, &cookie).await), "still live");

    let cases = [
        (format!("/ops/sessions/{unknown}/revoke"), 404, "no session"),
        ("/ops/sessions/not-a-session/revoke".to_owned(), 400, "not a session id"),
        (format!("/ops/sessions/{}/revoke", id.to_uppercase()), 400, "not a session id"),
        (format!("/ops/sessions/{}/revoke", &id[..63]), 400, "not a session id"),
        // The cookie's own session id is not how sessions are named.
        (format!("/ops/sessions/{}/revoke", cookie.split('.').nth(1).unwrap()), 400, "not a session id"),
        ("/ops/sessions/revoke".to_owned(), 400, "label"),
        ("/ops/sessions/revoke?label=".to_owned(), 400, "label"),
        ("/ops/sessions/revoke?label=bad%20label".to_owned(), 400, "not an admin token label"),
        ("/ops/sessions/revoke?label=nobody".to_owned(), 404, "no admin token is labelled"),
        ("/ops/sessions/revoke?label=tester&extra=1".to_owned(), 400, "unknown field"),
    ];
    for (path, status, says) in cases {
        let (got, body) = post_json(&base, &path, Some(ADMIN_TOKEN)).await;
        assert_eq!(got, status, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{path}: a JSON error: {body}"));
        assert!(error.contains(says), "{path}: {error}");
    }
    for (path, status) in [("/ops/sessions?label=nobody", 404), ("/ops/sessions?label=a%0Ab", 400)] {
        let (got, body) = get_json(&base, path, Some(ADMIN_TOKEN)).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    assert!(signed_in(overview(&base, &cookie).await), "none of these revoked anything");
    assert_eq!(listed(&base).await, vec![id]);

    // The endpoints are documented.
    let (_, document) = get_json(&base, "/openapi.json", None).await;
    for path in ["/ops/sessions", "/ops/sessions/{id}/revoke", "/ops/sessions/revoke"] {
        assert!(document["paths"][path].is_object(), "{path} in /openapi.json");
    }
}

#[tokio::test]
async fn sessions_that_ended_long_ago_are_pruned_by_the_workers() {
    let db = TestDb::new().await;
    // Expired 40 and 2 days ago, revoked 40 days ago, live.
    for (n, expires, revoked) in
        [(1, "-40 days", false), (2, "-2 days", false), (3, "-40 days", true), (4, "12 hours", false)]
    {
        sqlx::query(
            "insert into operator_sessions (id_hash, label, created_at, expires_at, revoked_at)
             values (sha256($1), 'tester', now() + $2::interval - interval '12 hours', now() + $2::interval,
                     case when $3 then now() + $2::interval - interval '1 hour' end)",
        )
        .bind(vec![n as u8])
        .bind(expires)
        .bind(revoked)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let _worker = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-prune-sessions",
        &[("DOCKET_RETENTION_INTERVAL", "200ms".into())],
    )
    .await;
    wait_until("long-ended sessions to be pruned", DEADLINE, || async {
        let left: i64 = sqlx::query_scalar("select count(*) from operator_sessions").fetch_one(&db.pool).await.unwrap();
        (left == 2).then_some(())
    })
    .await;
    let kept: Vec<Vec<u8>> = sqlx::query_scalar("select id_hash from operator_sessions order by expires_at")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let digest = |n: u8| Sha256::digest([n]).to_vec();
    assert_eq!(kept, vec![digest(2), digest(4)], "the recently expired and the live one stay");
}

/// The CSRF token of the session of `cookie`, from a page's sign-out form.
async fn csrf_of(base: &str, cookie: &str) -> String {
    let html = client().get(format!("{base}/ops/")).header("cookie", cookie).send().await.unwrap().text().await;
    let html = html.unwrap();
    html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
}

async fn post_form(base: &str, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, String) {
    let response = client().post(format!("{base}{path}")).header("cookie", cookie).form(form).send().await.unwrap();
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status().as_u16(), location)
}

#[tokio::test]
async fn the_dashboard_lists_sessions_and_revokes_one_or_a_label_with_csrf() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    let mine = sign_in(&base, ADMIN_TOKEN).await;
    let stolen = sign_in(&base, ADMIN_TOKEN).await;
    let other = sign_in(&base, OTHER_TOKEN).await;
    let page = client().get(format!("{base}/ops/ui/sessions")).header("cookie", &mine).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for cookie in [&mine, &stolen, &other] {
        let value = cookie.trim_start_matches("docket_session=");
        assert!(html.contains(&listed_id(cookie)[..8]), "each session is listed: {html}");
        for secret in value.split('.').skip(1) {
            assert!(!html.contains(secret), "the page shows {secret:?}");
        }
    }
    assert!(html.contains("(this session)"));
    let csrf = csrf_of(&base, &mine).await;

    // Without the CSRF token: refused, nothing revoked.
    let path = format!("/ops/ui/sessions/{}/revoke", listed_id(&stolen));
    assert_eq!(post_form(&base, &path, &mine, &[("csrf", "wrong")]).await.0, 403);
    assert!(signed_in(overview(&base, &stolen).await));
    // One session.
    let answer = post_form(&base, &path, &mine, &[("csrf", &csrf)]).await;
    assert_eq!(answer, (303, "/ops/ui/sessions".to_owned()));
    assert!(!signed_in(overview(&base, &stolen).await), "revoked from the dashboard");
    assert!(signed_in(overview(&base, &mine).await), "the operator's own session lives on");
    // A bad id is said on a page.
    let bad = client().post(format!("{base}/ops/ui/sessions/nope/revoke")).header("cookie", &mine);
    let bad = bad.form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("is not a session id"));
    // Every session of a label.
    let answer = post_form(&base, "/ops/ui/sessions/revoke", &mine, &[("csrf", &csrf), ("label", "other")]).await;
    assert_eq!(answer.0, 303);
    assert!(!signed_in(overview(&base, &other).await));
    assert!(signed_in(overview(&base, &mine).await));
    let trail = audit(&base).await;
    let done: Vec<&str> = trail.iter().map(|(_, action, _)| action.as_str()).collect();
    assert_eq!(&done[..2], ["revoke_sessions", "revoke_session"], "{trail:?}");
}

#[tokio::test]
async fn of_two_revokes_at_once_one_revokes_and_the_other_is_told_it_had_ended() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    for _ in 0..5 {
        let id = listed_id(&sign_in(&base, ADMIN_TOKEN).await);
        let path = format!("/ops/sessions/{id}/revoke");
        let (a, b) =
            tokio::join!(post_json(&base, &path, Some(ADMIN_TOKEN)), post_json(&base, &path, Some(OTHER_TOKEN)));
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    }
    let revokes = audit(&base).await.into_iter().filter(|(_, action, _)| action == "revoke_session").count();
    assert_eq!(revokes, 5, "one audit row per session actually revoked");
}

#[tokio::test]
async fn last_seen_is_refreshed_at_most_once_a_minute() {
    let db = TestDb::new().await;
    let base = api(&db).await;
    let cookie = sign_in(&base, ADMIN_TOKEN).await;
    let seen = || async {
        let at: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("select last_seen_at from operator_sessions").fetch_one(&db.pool).await.unwrap();
        at
    };
    let set_seen = |ago: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query("update operator_sessions set last_seen_at = now() - $1::interval")
                .bind(ago)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    // Seen 30 s ago: a request leaves the row alone.
    set_seen("30 seconds").await;
    let before = seen().await;
    assert!(signed_in(overview(&base, &cookie).await));
    assert_eq!(seen().await, before, "no write within the minute");
    // Seen 2 min ago: the next request refreshes it.
    set_seen("2 minutes").await;
    let before = seen().await;
    assert!(signed_in(overview(&base, &cookie).await));
    let after = seen().await;
    assert!(after - before > chrono::Duration::seconds(100), "{before} -> {after}");
}
