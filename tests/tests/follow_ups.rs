//! Follow-ups: when a job ends, the Workfront user learns how, through a note (REST
//! API, API key) or a comment (Comment Stream API, Adobe IMS token) on the document —
//! the examples of `examples/workfront-notes.toml` against a Workfront stand-in.

use std::time::Duration;

use nix::sys::signal::Signal;

use docket::db::jobs::{self, Completion, FollowUpRules, NewJob, NextState};
use docket::db::ops;
use docket::domain::{AttemptOutcome, DocumentId, DocumentVersionId, JobId, JobState};
use docket_tests::inprocess::ADMIN_TOKEN;
use docket_tests::process::refusal;
use docket_tests::wait::DEADLINE;
use docket_tests::workfront::{self, Workfront};
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

/// The example catalog, its hosts pointed at the archive target and the stand-in.
fn example_catalog(archive_url: &str, workfront: &Workfront, extra: &str) -> tempfile::TempDir {
    let text = include_str!("../../examples/workfront-notes.toml")
        .replace("https://dam.example.com/hooks/archive", archive_url)
        .replace("https://example.my.workfront.com", &workfront.base)
        .replace("https://ims-na1.adobelogin.com", &workfront.base)
        .replace("0123456789ABCDEF@AdobeOrg", workfront::IMS_ORG)
        .replace("5f0a1b2c3d4e5f60718293a4b5c6d7e8", workfront::WF_USER)
        .replace("docket-ims-client", workfront::IMS_CLIENT_ID)
        // The stand-ins speak plain HTTP on loopback.
        .replace("kind = \"http\"", "kind = \"http\"\nallow_http = true");
    catalog(&format!("{text}\n{extra}"))
}

fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("WORKFRONT_API_KEY", workfront::API_KEY.to_owned()),
        ("ADOBE_IMS_CLIENT_SECRET", workfront::IMS_CLIENT_SECRET.to_owned()),
    ]
}

async fn final_job(db: &TestDb, id: JobId) -> jobs::JobRow {
    wait_until(&format!("job {id} to finish"), DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await
}

async fn posted(workfront: &Workfront, n: usize) -> Vec<workfront::Posted> {
    wait_until(&format!("{n} note(s) or comment(s) on Workfront"), DEADLINE, || async {
        let posted = workfront.posted();
        (posted.len() >= n).then_some(posted)
    })
    .await
}

async fn children(db: &TestDb, id: JobId) -> Vec<jobs::ChildJob> {
    jobs::children(&db.pool, id).await.unwrap()
}

#[tokio::test]
async fn a_failed_job_leaves_one_note_and_a_succeeded_one_one_comment_on_the_document() {
    let db = TestDb::new().await;
    let workfront = Workfront::start(false).await;
    let refusal = "{\"error\":\"Dokument „Q3“ ist \\\"gesperrt\\\" — 🔒\"}";
    let receipt = "{\"data\":{\"receipt\":\"Archiv „Q3“ \\\"ok\\\"\\nZeile 2 🗄\"}}";
    let target =
        Target::start(
            move |n| {
                if n == 1 {
                    Reply::status(400).body(refusal)
                } else {
                    Reply::status(200).body(receipt)
                }
            },
        )
        .await;
    let dir = example_catalog(&target.url, &workfront, "");
    let admin = [("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}"))];
    let api = Api::start(&db.url, &catalog_path(&dir), &admin).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-notes", &secrets()).await;
    let client = reqwest::Client::new();

    let failed = api.enqueue(&client, "archive", "doc-fail").await;
    assert_eq!(final_job(&db, failed).await.state, JobState::Failed);
    let note = posted(&workfront, 1).await.remove(0);
    assert_eq!((note.kind, note.object_id.as_str()), ("note", "doc-fail"));
    assert!(note.text.starts_with("Docket: archiving failed after 1 attempt(s).\nReason: "), "{:?}", note.text);
    assert!(
        note.text.contains("Dokument „Q3“ ist \\\"gesperrt\\\" — 🔒"),
        "quotes and non-ASCII intact: {:?}",
        note.text
    );

    let succeeded = api.enqueue(&client, "archive", "doc-ok").await;
    assert_eq!(final_job(&db, succeeded).await.state, JobState::Succeeded);
    let comment = posted(&workfront, 2).await.remove(1);
    assert_eq!((comment.kind, comment.object_id.as_str()), ("comment", "doc-ok"));
    assert_eq!(comment.text, "Docket: archived (1 attempt(s)). Receipt: Archiv „Q3“ \"ok\"\nZeile 2 🗄");
    assert_eq!(workfront.tokens_issued(), 1);

    // Exactly one follow-up each, linked to its parent, shown by the ops API.
    for (parent, action) in [(failed, "note-on-document"), (succeeded, "comment-on-document")] {
        let kids = children(&db, parent).await;
        assert_eq!(kids.len(), 1, "{kids:?}");
        assert_eq!((kids[0].action.as_str(), kids[0].state), (action, JobState::Succeeded));
        let detail = api.job_detail(&client, kids[0].id).await;
        assert_eq!(detail["job"]["parentId"], parent.to_string());
    }
    assert_eq!(workfront.posted().len(), 2, "nothing posted twice");

    // The dashboard links parent and follow-up both ways.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = browser.post(format!("{}/ops/login", api.base)).form(&[("token", ADMIN_TOKEN)]).send().await.unwrap();
    let session = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = |id: JobId| {
        let (browser, session, base) = (browser.clone(), session.clone(), api.base.clone());
        async move {
            let response = browser.get(format!("{base}/ops/ui/jobs/{id}")).header("cookie", session).send().await;
            response.unwrap().text().await.unwrap()
        }
    };
    let note = children(&db, failed).await.remove(0);
    assert!(page(failed)
        .await
        .contains(&format!(r#"<a class="child-link" href="/ops/ui/jobs/{}">note-on-document</a>"#, note.id)));
    assert!(page(note.id).await.contains(&format!(r#"<a class="parent-link" href="/ops/ui/jobs/{failed}">"#)));
}

#[tokio::test]
async fn a_cancelled_running_job_leaves_a_note() {
    let db = TestDb::new().await;
    let workfront = Workfront::start(false).await;
    let target = Target::start(|_| Reply::status(200).gated()).await;
    let dir = example_catalog(&target.url, &workfront, "");
    let admin = [("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}"))];
    let api = Api::start(&db.url, &catalog_path(&dir), &admin).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-cancel-note", &secrets()).await;
    let client = reqwest::Client::new();
    let id = api.enqueue(&client, "archive", "doc-cancel").await;
    wait_until("the archive call", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    let cancel =
        client.post(format!("{}/ops/jobs/{id}/cancel", api.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(final_job(&db, id).await.state, JobState::Cancelled);
    let note = posted(&workfront, 1).await.remove(0);
    assert_eq!(note.object_id, "doc-cancel");
    assert!(note.text.contains("archiving cancelled after 1 attempt(s)"), "{:?}", note.text);
    assert!(note.text.contains("cancelled by an operator"), "{:?}", note.text);
}

#[tokio::test]
async fn a_worker_killed_after_the_final_state_still_leaves_exactly_one_note() {
    let db = TestDb::new().await;
    // Workfront holds every request until the test opens it.
    let workfront = Workfront::start(true).await;
    let target = Target::always(400).await;
    let dir = example_catalog(&target.url, &workfront, "");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let short = || {
        let mut env = secrets();
        env.push(("DOCKET_WORKER_LEASE", "2s".into()));
        env.push(("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".into()));
        env.push(("DOCKET_WORKER_POLL_INTERVAL", "200ms".into()));
        env
    };
    let mut doomed = Worker::start(&db.url, &catalog_path(&dir), "w-doomed", &short()).await;
    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-kill").await;
    assert_eq!(final_job(&db, id).await.state, JobState::Failed);
    // The note job exists (queued with the failure) and its worker is calling Workfront.
    let note_job = wait_until("the note job to run", DEADLINE, || async {
        children(&db, id).await.into_iter().find(|c| c.state == JobState::Running)
    })
    .await;
    doomed.process.signal(Signal::SIGKILL);
    doomed.process.wait_exit(DEADLINE).await;

    let _survivor = Worker::start(&db.url, &catalog_path(&dir), "w-survivor", &short()).await;
    workfront.open_gate();
    let done = final_job(&db, note_job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    let notes = posted(&workfront, 1).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(children(&db, id).await.len(), 1, "one note job");
    let attempts = docket::db::attempts::list(&db.pool, note_job.id).await.unwrap();
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::LeaseExpired), "the killed worker's attempt");
}

#[tokio::test]
async fn a_note_waits_out_a_workfront_outage_and_the_original_job_stays_as_it_ended() {
    let db = TestDb::new().await;
    let workfront = Workfront::start(false).await;
    workfront.set_down(true);
    let target = Target::always(400).await;
    let dir = example_catalog(&target.url, &workfront, "");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-outage", &secrets()).await;
    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-outage").await;
    assert_eq!(final_job(&db, id).await.state, JobState::Failed);
    let note_job = wait_until("a refused note attempt", DEADLINE, || async {
        let kids = children(&db, id).await;
        let kid = kids.first()?;
        let attempts = docket::db::attempts::list(&db.pool, kid.id).await.unwrap();
        attempts.iter().any(|a| a.outcome == Some(AttemptOutcome::RetryableError)).then_some(kid.id)
    })
    .await;
    // Workfront stays down until the note has been refused twice (it is retried, not
    // given up on), then comes back.
    wait_until("a second refused note attempt", DEADLINE, || async {
        let attempts = docket::db::attempts::list(&db.pool, note_job).await.unwrap();
        (attempts.iter().filter(|a| a.outcome == Some(AttemptOutcome::RetryableError)).count() >= 2).then_some(())
    })
    .await;
    workfront.set_down(false);
    assert_eq!(final_job(&db, note_job).await.state, JobState::Succeeded);
    assert_eq!(posted(&workfront, 1).await.len(), 1);
    let original = jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((original.state, original.attempts), (JobState::Failed, 1), "the archive job is as it ended");
}

fn new_job(action: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        action: action.into(),
        document_id: DocumentId::parse("doc").unwrap(),
        document_version_id: DocumentVersionId::parse("v1").unwrap(),
        requested_by: None,
        max_attempts: 1,
        dedupe: false,
        traceparent: None,
    }
}

#[tokio::test]
async fn every_way_to_a_final_state_queues_follow_ups_once() {
    let db = TestDb::new().await;
    let dir = catalog(
        "[[action]]\nname = \"a\"\nkind = \"noop\"\non_finish = [{ when = [\"succeeded\", \"failed\", \"cancelled\"], run = \"note\" }]\n\
         [[action]]\nname = \"note\"\nkind = \"noop\"\nmax_attempts = 4\n",
    );
    let catalog = docket::catalog::Catalog::load(&catalog_path(&dir)).unwrap();
    let rules = FollowUpRules::from_catalog(&catalog);
    let lease = Duration::from_secs(30);
    let claim = || async { jobs::claim(&db.pool, "w", &["a".to_owned()], 10, lease).await.unwrap() };

    // Completion, written twice (a completer retry after an unknown commit).
    let done = new_job("a");
    jobs::insert(&db.pool, &done).await.unwrap();
    claim().await;
    let completion = Completion {
        id: done.id,
        attempt: 1,
        next: NextState::Succeeded,
        outcome: AttemptOutcome::Succeeded,
        error: None,
        result: None,
    };
    assert_eq!(jobs::complete(&db.pool, "w", std::slice::from_ref(&completion), &rules).await.unwrap(), [done.id]);
    assert!(jobs::complete(&db.pool, "w", &[completion], &rules).await.unwrap().is_empty());

    // The rescuer, on the last attempt.
    let rescued = new_job("a");
    jobs::insert(&db.pool, &rescued).await.unwrap();
    claim().await;
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(rescued.id.0)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs::rescue_expired(&db.pool, 10, &rules).await.unwrap()[0].state, JobState::Failed);
    assert!(jobs::rescue_expired(&db.pool, 10, &rules).await.unwrap().is_empty());

    // An operator's cancel of a waiting job.
    let cancelled = new_job("a");
    jobs::insert(&db.pool, &cancelled).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(ops::job_cancel(&mut conn, cancelled.id, &rules).await.unwrap(), ops::Cancelled::Now);
    assert_eq!(ops::job_cancel(&mut conn, cancelled.id, &rules).await.unwrap(), ops::Cancelled::NotCancellable);

    for (parent, state) in [(done.id, "succeeded"), (rescued.id, "failed"), (cancelled.id, "cancelled")] {
        let kids = children(&db, parent).await;
        assert_eq!(kids.len(), 1, "{state}: one follow-up");
        let kid = jobs::get(&db.pool, kids[0].id).await.unwrap().unwrap();
        assert_eq!((kid.action.as_str(), kid.state, kid.max_attempts), ("note", JobState::Queued, 4));
        assert_eq!(kid.parent_id, Some(parent));
        assert!(kid.id.0.get_version_num() == 7 && kid.id.0 > parent.0, "{state}: a UUIDv7 newer than its parent");
    }
}

#[tokio::test]
async fn a_follow_up_cycle_stops_both_binaries_naming_the_actions() {
    let db = TestDb::new().await;
    let text =
        "[[action]]\nname = \"archive\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\"], run = \"notify\" }]\n\
         [[action]]\nname = \"notify\"\nkind = \"noop\"\non_finish = [{ when = [\"failed\"], run = \"archive\" }]\n";
    for binary in ["docket-api", "docket-worker"] {
        let last = refusal(binary, &db.url, text).await;
        assert!(last.contains("follow-ups form a cycle: archive → notify → archive"), "{binary}: {last}");
    }
}
