//! `docket-api workfront-subscriptions list|plan|apply`, the real binary against the
//! stand-in subscription API: one subscription per trigger, nothing sent twice, other
//! integrations' subscriptions untouched, paging, and errors an administrator reads.

use std::path::Path;

use docket_tests::process::binary;
use docket_tests::subscriptions::{SubscriptionApi, NOT_ADMIN_SESSION, PATH, SESSION};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PUBLIC_URL: &str = "https://docket.example.com/";
const INTAKE: &str = "https://docket.example.com/workfront/events";
const FIRST_TOKEN: &str = "first-event-token-0123456789abcdef";
const SECOND_TOKEN: &str = "second-event-token-0123456789abcdef";

const CATALOG: &str = r#"
[[action]]
name = "archive"
kind = "noop"

[[action]]
name = "tell-owner"
kind = "noop"

[[trigger]]
name = "archive-approved"
obj_code = "DOCU"
event_type = "UPDATE"
run = "archive"
filters = [{ field = "status", comparison = "changed" }, { field = "status", comparison = "eq", value = "APR" }]

[[trigger]]
name = "new-version"
obj_code = "DOCV"
event_type = "CREATE"
run = ["archive", "tell-owner"]
filter_connector = "OR"
filters = [{ field = "DE:Region", comparison = "contains", value = ["EU", "UK"] },
           { field = "name", comparison = "ne", value = "draft", state = "oldState" }]

[[trigger]]
name = "task-deleted"
obj_code = "TASK"
event_type = "DELETE"
run = "tell-owner"
"#;

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `docket-api workfront-subscriptions <step>` in `dir` (which holds
/// `actions.toml`) with the settings for `api`, minus `without`, plus `extra`.
async fn run(dir: &Path, api: &SubscriptionApi, step: &str, without: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(binary("docket-api"));
    command
        .args(["workfront-subscriptions", step])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let tokens = format!("{FIRST_TOKEN},{SECOND_TOKEN}");
    let settings = [
        ("WORKFRONT_URL", api.base.as_str()),
        ("WORKFRONT_SESSION_ID", SESSION),
        ("DOCKET_PUBLIC_URL", PUBLIC_URL),
        ("DOCKET_EVENT_TOKENS", tokens.as_str()),
    ];
    for (name, value) in settings.iter().chain(extra).filter(|(name, _)| !without.contains(name)) {
        command.env(name, value);
    }
    let output = command.output().await.expect("run docket-api");
    let output = Output {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for secret in [SESSION, NOT_ADMIN_SESSION, FIRST_TOKEN, SECOND_TOKEN] {
        assert!(
            !output.stdout.contains(secret) && !output.stderr.contains(secret),
            "a secret was printed:\n{}\n{}",
            output.stdout,
            output.stderr
        );
    }
    output
}

fn catalog_dir(catalog: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("actions.toml"), catalog).unwrap();
    dir
}

fn docket_subscriptions(api: &SubscriptionApi) -> Vec<Value> {
    api.subscriptions().into_iter().filter(|s| s["url"] == INTAKE).collect()
}

fn find<'a>(subscriptions: &'a [Value], obj_code: &str, event_type: &str) -> &'a Value {
    subscriptions
        .iter()
        .find(|s| s["objCode"] == obj_code && s["eventType"] == event_type)
        .unwrap_or_else(|| panic!("a {obj_code} {event_type} subscription in {subscriptions:#?}"))
}

#[tokio::test]
async fn plan_prints_the_creates_and_changes_nothing() {
    let api = SubscriptionApi::start().await;
    let dir = catalog_dir(CATALOG);
    let out = run(dir.path(), &api, "plan", &[], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            r#"create DOCU UPDATE status changed AND status eq "APR" (trigger archive-approved)"#,
            r#"create DOCV CREATE DE:Region contains ["EU","UK"] OR name ne "draft" (oldState) (trigger new-version)"#,
            "create TASK DELETE (no filters) (trigger task-deleted)",
            "plan: 3 to create, 0 to delete, 0 unchanged; 0 pointing elsewhere left alone",
        ]
    );
    assert!(api.changes().is_empty(), "plan changed something: {:?}", api.changes());
    assert!(api.subscriptions().is_empty());
}

#[tokio::test]
async fn apply_creates_one_subscription_per_trigger_and_a_second_apply_sends_nothing() {
    let api = SubscriptionApi::start().await;
    let dir = catalog_dir(CATALOG);
    let out = run(dir.path(), &api, "apply", &[], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .ends_with("apply: 3 created, 0 already there, 0 deleted, 0 unchanged; 0 pointing elsewhere left alone\n"),
        "{}",
        out.stdout
    );
    let made = docket_subscriptions(&api);
    assert_eq!(made.len(), 3, "{made:#?}");
    for subscription in &made {
        assert_eq!(subscription["authToken"], FIRST_TOKEN);
        let id = subscription["id"].as_str().unwrap();
        assert!(out.stdout.contains(&format!("created {id} ")), "{}", out.stdout);
    }
    let approved = find(&made, "DOCU", "UPDATE");
    assert_eq!(approved["filterConnector"], "AND");
    assert_eq!(
        approved["filters"],
        json!([{"fieldName": "status", "comparison": "changed", "state": "newState"},
               {"fieldName": "status", "fieldValue": "APR", "comparison": "eq", "state": "newState"}])
    );
    let version = find(&made, "DOCV", "CREATE");
    assert_eq!(version["filterConnector"], "OR");
    assert_eq!(
        version["filters"],
        json!([{"fieldName": "DE:Region", "fieldValue": ["EU", "UK"], "comparison": "contains", "state": "newState"},
               {"fieldName": "name", "fieldValue": "draft", "comparison": "ne", "state": "oldState"}])
    );
    assert_eq!(find(&made, "TASK", "DELETE")["filters"], json!([]));
    for request in api.requests() {
        assert_eq!(request.session.as_deref(), Some(SESSION));
    }

    api.forget_requests();
    let again = run(dir.path(), &api, "apply", &[], &[]).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(
        again.stdout,
        "apply: 0 created, 0 already there, 0 deleted, 3 unchanged; 0 pointing elsewhere left alone\n"
    );
    assert!(api.changes().is_empty(), "the second apply changed something: {:?}", api.changes());
    assert_eq!(docket_subscriptions(&api).len(), 3);
}

#[tokio::test]
async fn other_subscriptions_are_left_alone_and_stale_docket_ones_are_deleted() {
    let api = SubscriptionApi::start().await;
    let foreign = api.seed(json!({"objCode": "DOCU", "eventType": "UPDATE", "url": "https://fusion.example.com/hook",
                                  "authToken": "fusion", "filters": [], "filterConnector": "AND"}));
    let stale = api.seed(json!({"objCode": "PROJ", "eventType": "CREATE", "url": INTAKE,
                                "authToken": FIRST_TOKEN, "filters": [], "filterConnector": "AND"}));
    // Already there, as Workfront lists it (no state, no connector: the defaults).
    let kept = api.seed(json!({"objCode": "TASK", "eventType": "DELETE", "url": INTAKE, "filters": []}));
    let dir = catalog_dir(CATALOG);

    let plan = run(dir.path(), &api, "plan", &[], &[]).await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!("delete {stale} PROJ CREATE (no filters): no trigger wants it\n")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.ends_with("plan: 2 to create, 1 to delete, 1 unchanged; 1 pointing elsewhere left alone\n"),
        "{}",
        plan.stdout
    );
    assert!(api.changes().is_empty());

    // With every log line on: still no secret printed (`run` checks).
    let out = run(dir.path(), &api, "apply", &[], &[("RUST_LOG", "trace")]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("deleted {stale} PROJ CREATE (no filters): no trigger wants it\n")),
        "{}",
        out.stdout
    );
    let ids: Vec<String> = api.subscriptions().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.contains(&foreign) && ids.contains(&kept) && !ids.contains(&stale), "{ids:?}");
    let deletes: Vec<String> = api.changes().into_iter().filter(|r| r.method == "DELETE").map(|r| r.uri).collect();
    assert_eq!(deletes, [format!("{PATH}/{stale}")]);
    assert_eq!(api.subscriptions().iter().find(|s| s["id"] == foreign).unwrap()["authToken"], "fusion");

    let list = run(dir.path(), &api, "list", &[], &[]).await;
    assert_eq!(list.code, 0, "{}{}", list.stdout, list.stderr);
    assert!(
        list.stdout
            .starts_with(&format!("other  {foreign} DOCU UPDATE https://fusion.example.com/hook (no filters)\n")),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains(&format!("docket {kept} TASK DELETE {INTAKE} (no filters)\n")), "{}", list.stdout);
    assert!(
        list.stdout.ends_with(&format!("list: 4 subscriptions, 3 pointing at Docket ({INTAKE})\n")),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn every_page_is_read_when_many_subscriptions_point_elsewhere() {
    let api = SubscriptionApi::start().await;
    api.seed_many(250, "https://other.example.com/hooks");
    let dir = catalog_dir(CATALOG);
    let out = run(dir.path(), &api, "apply", &[], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.ends_with(
            "apply: 3 created, 0 already there, 0 deleted, 0 unchanged; 250 pointing elsewhere left alone\n"
        ),
        "{}",
        out.stdout
    );
    let pages: Vec<String> = api.requests().into_iter().filter(|r| r.method == "GET").map(|r| r.uri).collect();
    assert_eq!(pages, (1..=3).map(|n| format!("{PATH}?page={n}&limit=100")).collect::<Vec<_>>());

    // Docket's subscriptions are now on the last page: a second apply finds them there.
    api.forget_requests();
    let again = run(dir.path(), &api, "apply", &[], &[]).await;
    assert!(
        again.stdout.ends_with(
            "apply: 0 created, 0 already there, 0 deleted, 3 unchanged; 250 pointing elsewhere left alone\n"
        ),
        "{}",
        again.stdout
    );
    assert!(api.changes().is_empty(), "{:?}", api.changes());
    assert_eq!(api.subscriptions().len(), 253);

    let list = run(dir.path(), &api, "list", &[], &[]).await;
    assert_eq!(list.stdout.lines().count(), 254, "{}", list.stdout);
    assert!(list.stdout.ends_with(&format!("list: 253 subscriptions, 3 pointing at Docket ({INTAKE})\n")));
}

#[tokio::test]
async fn a_refused_session_and_a_user_who_is_not_an_administrator_are_named() {
    let api = SubscriptionApi::start().await;
    let dir = catalog_dir(CATALOG);
    for step in ["list", "plan", "apply"] {
        let out = run(dir.path(), &api, step, &[], &[("WORKFRONT_SESSION_ID", "expired-session-0000")]).await;
        assert_eq!(out.code, 1, "{step}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("Workfront refused the session (WORKFRONT_SESSION_ID expired or wrong): log in again"),
            "{step}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("expired-session-0000"), "{}", out.stderr);
        let out = run(dir.path(), &api, step, &[], &[("WORKFRONT_SESSION_ID", NOT_ADMIN_SESSION)]).await;
        assert_eq!(out.code, 1, "{step}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("the session's user is not a System Administrator"), "{step}: {}", out.stderr);
    }
    assert!(api.changes().is_empty());
}

#[tokio::test]
async fn an_unreachable_workfront_is_named_by_its_origin() {
    let api = SubscriptionApi::start().await;
    let dir = catalog_dir(CATALOG);
    let out = run(dir.path(), &api, "plan", &[], &[("WORKFRONT_URL", "http://127.0.0.1:1/some/path")]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cannot reach Workfront at http://127.0.0.1:1:"), "{}", out.stderr);
    assert!(!out.stderr.contains("some/path"), "{}", out.stderr);
}

#[tokio::test]
async fn another_status_is_named_with_an_excerpt_of_the_body() {
    let api = SubscriptionApi::start().await;
    api.set_failing(Some(StatusCode::SERVICE_UNAVAILABLE));
    let dir = catalog_dir(CATALOG);
    let out = run(dir.path(), &api, "plan", &[], &[]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "Workfront answered 503 Service Unavailable to the list of subscriptions (page 1): \
             {\"error\":{\"message\":\"Workfront is being upgraded, please come back later\"}}"
        ),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_stand_in_checks_what_workfront_checks() {
    let api = SubscriptionApi::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}{PATH}", api.base);
    let post = |session: &'static str, body: Value| client.post(&url).header("sessionID", session).json(&body).send();
    let good = json!({"objCode": "DOCU", "eventType": "UPDATE", "url": INTAKE, "authToken": FIRST_TOKEN,
                      "filters": [{"fieldName": "status", "comparison": "changed"}], "filterConnector": "AND"});
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post("wrong", good.clone()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post(NOT_ADMIN_SESSION, good.clone()).await.unwrap().status(), StatusCode::FORBIDDEN);
    for (field, bad) in [
        ("eventType", json!("MODIFY")),
        ("objCode", json!("")),
        ("url", json!("ftp://x")),
        ("authToken", json!("x".repeat(255))),
        ("filterConnector", json!("XOR")),
        ("filters", json!([{"fieldName": "status", "comparison": "like", "fieldValue": "A"}])),
        ("filters", json!([{"fieldName": "status", "comparison": "eq"}])),
        ("filters", json!([{"fieldName": "status", "comparison": "eq", "fieldValue": "A", "state": "midState"}])),
        ("extra", json!(1)),
    ] {
        let mut body = good.clone();
        body[field] = bad;
        assert_eq!(post(SESSION, body.clone()).await.unwrap().status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let created = post(SESSION, good.clone()).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(post(SESSION, good.clone()).await.unwrap().status(), StatusCode::CONFLICT);
    let one: Value =
        client.get(format!("{url}/{id}")).header("sessionID", SESSION).send().await.unwrap().json().await.unwrap();
    assert_eq!((one["id"].as_str(), one.get("authToken")), (Some(id.as_str()), None));
    api.seed_many(4, "https://other.example.com");
    let page: Value = client
        .get(format!("{url}?page=2&limit=2"))
        .header("sessionID", SESSION)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["meta"], json!({"page": 2, "page_count": 3, "limit": 2, "total_count": 5}));
    assert_eq!(page["subscriptions"].as_array().unwrap().len(), 2);
    let deleted = client.delete(format!("{url}/{id}")).header("sessionID", SESSION).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(api.subscriptions().len(), 4);
    assert_eq!(api.changes().len(), 14);
}

#[tokio::test]
async fn a_missing_setting_or_a_bad_catalog_exits_2_naming_it() {
    let api = SubscriptionApi::start().await;
    let dir = catalog_dir(CATALOG);
    for name in ["WORKFRONT_URL", "WORKFRONT_SESSION_ID", "DOCKET_PUBLIC_URL", "DOCKET_EVENT_TOKENS"] {
        let out = run(dir.path(), &api, "apply", &[name], &[]).await;
        assert_eq!(out.code, 2, "{name}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(&format!("{name} is not set")), "{name}: {}", out.stderr);
    }
    // `list` reads no catalog and sends no token.
    let out = run(dir.path(), &api, "list", &["DOCKET_EVENT_TOKENS"], &[("DOCKET_ACTIONS", "missing.toml")]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let out = run(dir.path(), &api, "plan", &[], &[("DOCKET_ACTIONS", "missing.toml")]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cannot read action catalog missing.toml"), "{}", out.stderr);
    let bad = catalog_dir(&CATALOG.replace("event_type = \"DELETE\"", "event_type = \"REMOVE\""));
    let out = run(bad.path(), &api, "plan", &[], &[]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("trigger \"task-deleted\", field `event_type`"), "{}", out.stderr);
    assert!(api.requests().iter().all(|r| r.method == "GET"), "{:?}", api.requests());
}

#[tokio::test]
async fn a_conflict_counts_as_already_there() {
    // An identical subscription the list did not show (made between the list and the
    // create, say): Workfront answers 409, and apply says so and carries on.
    let api = SubscriptionApi::start().await;
    let held = api.seed(json!({"objCode": "TASK", "eventType": "DELETE", "url": INTAKE, "authToken": FIRST_TOKEN,
                               "filters": [], "filterConnector": "AND"}));
    api.hide_from_lists(true);
    let dir = catalog_dir(CATALOG);
    let out = run(dir.path(), &api, "apply", &[], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "exists TASK DELETE (no filters) (trigger task-deleted): Workfront answered 409, it is already there\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("apply: 2 created, 1 already there, 0 deleted, 0 unchanged; 0 pointing elsewhere left alone\n"),
        "{}",
        out.stdout
    );
    assert!(api.subscriptions().iter().any(|s| s["id"] == held));
    assert_eq!(docket_subscriptions(&api).len(), 3);
}
