//! The `big` scenario: Docket with real data in the table. Millions of finished jobs
//! with their attempts, a large due backlog of one action (`archive`) and a small one
//! of another (`print`), an audit trail; then the statements and pages whose cost must
//! not grow with the table: the claim of a worker that serves only `print`, a
//! `/metrics` scrape, ops list pages, the audit of one job, a bulk retry of every
//! failed `archive` job, retention cycles (`retention.rs`), and pruning.

use std::time::{Duration, Instant};

use anyhow::ensure;
use docket::db::{jobs, ops};
use docket::domain::JobState;
use docket_harness::Api;

use crate::scenarios::Setup;
use crate::stats::{percentiles, Percentiles};

/// Three actions that succeed at once (`notify` has only a few finished jobs).
pub const CATALOG: &str = "[[action]]\nname = \"archive\"\nkind = \"noop\"\n\n\
                           [[action]]\nname = \"print\"\nkind = \"noop\"\n\n\
                           [[action]]\nname = \"notify\"\nkind = \"noop\"\n";

/// How much data.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub finished: u64,
    pub due_a: u64,
    pub due_b: u64,
    /// Operator actions in the audit trail.
    pub audit_rows: u64,
}

pub struct Big {
    pub rows: i64,
    pub fill_seconds: f64,
    pub claim_b_ms: Percentiles,
    pub scrape_ms: Percentiles,
    pub stats_ms: Percentiles,
    /// The first page of `/ops/jobs` by each filter alone (and a few pairs).
    pub page_ms: Vec<(String, Percentiles)>,
    pub audit_ms: Percentiles,
    pub retried: usize,
    pub retry_seconds: f64,
    pub pruned: u64,
    pub prune_rows_per_second: f64,
    /// Sizes before and after each retention cycle.
    pub history: Vec<crate::retention::Cycle>,
}

/// Retention cycles run after the views are timed.
const RETENTION_CYCLES: u64 = 4;

/// Which of the sizes a statement's `$1` is.
type SizeOf = fn(&Size) -> u64;

/// Each statement with the size its `$1` is (if it has one). The old jobs are 1–30
/// days old: one in 30 failed, one in 100,000 cancelled and one in 100,000 retrying
/// (its next attempt an hour ahead), one in 10,000 started by the trigger
/// `became-approved`, one in 50,000 of `notify`; each of 5,000 users asked for as many,
/// and `rare@example.com` for one in 500,000. The due jobs are up to two hours
/// (archive) and thirty minutes (print) late. Ids are UUIDv7 of their creation time,
/// as the api makes them.
const FILL: &[(Option<SizeOf>, &str)] = &[
    (None, "create function pg_temp.uuid7_at(ts timestamptz) returns uuid language sql volatile as $$
         select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                placing substring(int8send((extract(epoch from ts) * 1000)::bigint) from 3) from 1 for 6),
                52, 1), 53, 1), 'hex')::uuid $$"),
    (Some(|s| s.finished), "insert into jobs (id, action, document_id, document_version_id, requested_by, state, attempts, max_attempts,
                       run_at, last_error, created_at, updated_at, finished_at, trigger)
     select pg_temp.uuid7_at(t),
            case when i % 50000 = 5 then 'notify' when i % 3 = 0 then 'print' else 'archive' end, 'doc-' || i, 'v1',
            case when i % 500000 = 11 then 'rare@example.com' else 'user' || (i % 5000) || '@example.com' end,
            case when i % 100000 = 7 then 'cancelled'::job_state when i % 100000 = 57 then 'retrying'
                 when i % 30 = 1 then 'failed' else 'succeeded' end,
            case when i % 100000 = 7 then 0 else 1 end, case when i % 100000 = 57 then 5 else 1 end,
            case when i % 100000 = 57 then now() + interval '1 hour' else t end,
            case when i % 100000 = 57 then 'target answered HTTP 503'
                 when i % 30 = 1 then 'target answered HTTP 400: document locked' end, t, t,
            case when i % 100000 <> 57 then t + interval '1 second' end,
            case when i % 10000 = 3 then 'became-approved' end
     from (select i, now() - interval '30 days' + (i * interval '29 days' / $1) as t
           from generate_series(1, $1) i) s"),
    (None, "insert into job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
     select id, 1, 'w-big', created_at, coalesce(finished_at, created_at + interval '1 second'),
            case state when 'failed' then 'permanent_error'::attempt_outcome when 'retrying' then 'retryable_error'
                       else 'succeeded' end, last_error
     from jobs where state <> 'cancelled'"),
    (Some(|s| s.due_a), "insert into jobs (id, action, document_id, document_version_id, state, max_attempts, run_at, created_at, updated_at)
     select pg_temp.uuid7_at(t), 'archive', 'due-a-' || i, 'v1', 'queued', 5, t, t, t
     from (select i, now() - interval '2 hours' + (i * interval '1 hour' / $1) as t
           from generate_series(1, $1) i) s"),
    (Some(|s| s.due_b), "insert into jobs (id, action, document_id, document_version_id, state, max_attempts, run_at, created_at, updated_at)
     select pg_temp.uuid7_at(t), 'print', 'due-b-' || i, 'v1', 'queued', 5, t, t, t
     from (select i, now() - interval '30 minutes' + (i * interval '10 minutes' / $1) as t
           from generate_series(1, $1) i) s"),
    (Some(|s| s.audit_rows), "insert into operator_actions (actor, action, job_ids, detail)
     select 'bench', 'retry', array[gen_random_uuid(), gen_random_uuid()], null from generate_series(1, $1)"),
];

pub async fn big(setup: &Setup, catalog: &std::path::Path, size: Size) -> anyhow::Result<Big> {
    let db = setup.database().await?;
    let started = Instant::now();
    crate::retention::prepare(&db.pool, size.finished).await?;
    {
        let mut conn = db.pool.acquire().await?;
        for (size_of, statement) in FILL {
            let mut query = sqlx::query(statement);
            if let Some(size_of) = size_of {
                query = query.bind(size_of(&size) as i64);
            }
            query.execute(&mut *conn).await?;
        }
        sqlx::query("vacuum analyze jobs").execute(&mut *conn).await?;
        sqlx::query("vacuum analyze job_attempts").execute(&mut *conn).await?;
        sqlx::query("vacuum analyze operator_actions").execute(&mut *conn).await?;
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    let rows: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&db.pool).await?;

    // A worker that serves only `print`: one job per claim, as a worker with one free
    // slot asks, through the same function the worker calls.
    let only_b = vec!["print".to_owned()];
    let mut claim = Vec::new();
    for _ in 0..size.due_b.min(500) {
        let t = Instant::now();
        let got = jobs::claim(&db.pool, "w-bench", &only_b, 1, Duration::from_secs(30)).await?;
        claim.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(got.len() == 1 && got[0].action == "print", "the claim for print found {got:?}");
    }

    let token = "bench-admin-token-0123456789";
    let env = setup.env(&db, &[("DOCKET_ADMIN_TOKEN", format!("bench:{token}"))]);
    let api = Api::start(&setup.url(&db), catalog, &env).await;
    let client = reqwest::Client::new();
    let timed = |path: String| {
        let (client, url) = (client.clone(), format!("{}{path}", api.base));
        async move {
            let mut samples = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                let response = client.get(&url).bearer_auth(token).send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                ensure!(status == 200, "{url}: {status}");
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(percentiles(&mut samples))
        }
    };
    let scrape_ms = timed("/metrics".into()).await?;
    let stats_ms = timed("/ops/stats".into()).await?;
    let page_ms = pages(&timed).await?;
    let some_job: uuid::Uuid =
        sqlx::query_scalar("select id from jobs order by id limit 1").fetch_one(&db.pool).await?;
    let audit_ms = timed(format!("/ops/audit?jobId={some_job}")).await?;

    // Every failed archive job, asking again while the api answers that more remain
    // (it stops between batches to answer within its request timeout).
    let t = Instant::now();
    let mut retried = 0;
    loop {
        let reply: serde_json::Value = client
            .post(format!("{}/ops/actions/archive/retry-failed", api.base))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let n = reply["retried"].as_u64().unwrap_or(0) as usize;
        ensure!(n > 0 || retried > 0, "bulk retry answered {reply}");
        retried += n;
        if reply["complete"] == true {
            break;
        }
    }
    let retry_seconds = t.elapsed().as_secs_f64();
    drop(api);

    let history = crate::retention::cycles(&db.pool, size.finished, RETENTION_CYCLES).await?;

    // Pruning as the worker does it: batches of 1,000 succeeded jobs older than 15 days.
    let t = Instant::now();
    let mut pruned = 0;
    loop {
        let n = ops::jobs_prune(&db.pool, &[JobState::Succeeded], Duration::from_secs(15 * 86_400), 1000).await?;
        pruned += n;
        if n < 1000 {
            break;
        }
    }
    let prune_seconds = t.elapsed().as_secs_f64();
    Ok(Big {
        rows,
        fill_seconds,
        claim_b_ms: percentiles(&mut claim),
        scrape_ms,
        stats_ms,
        page_ms,
        audit_ms,
        retried,
        retry_seconds,
        pruned,
        prune_rows_per_second: pruned as f64 / prune_seconds.max(1e-9),
        history,
    })
}

/// The first page of `/ops/jobs` by every filter alone: each state, a frequent and a
/// rare action and one without jobs, a frequent and a rare requester and nobody, a
/// trigger and one that never fired, a document and one without jobs, creation-time
/// windows (recent, in the middle of the history, before it); and the pairs timed
/// before.
async fn pages<F, Fut>(timed: F) -> anyhow::Result<Vec<(String, Percentiles)>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Percentiles>>,
{
    let ago = |days: i64| urlencode(&(chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339());
    let mut views: Vec<(String, String)> = vec![
        ("newest".into(), "/ops/jobs".into()),
        ("action=print&state=failed".into(), "/ops/jobs?action=print&state=failed".into()),
        ("failed, created in the last 3 days".into(), format!("/ops/jobs?state=failed&createdSince={}", ago(3))),
    ];
    for state in ["queued", "running", "retrying", "succeeded", "failed", "cancelled"] {
        views.push((format!("state={state}"), format!("/ops/jobs?state={state}")));
    }
    for (name, query) in [
        ("action=archive (frequent)", "action=archive"),
        ("action=notify (1 in 50,000)", "action=notify"),
        ("action=absent (no jobs)", "action=absent"),
        ("requestedBy (a frequent user)", "requestedBy=user17%40example.com"),
        ("requestedBy (a rare user)", "requestedBy=rare%40example.com"),
        ("requestedBy (nobody)", "requestedBy=nobody%40example.com"),
        ("trigger=became-approved (1 in 10,000)", "trigger=became-approved"),
        ("trigger=became-rejected (never fired)", "trigger=became-rejected"),
        ("documentId (one job)", "documentId=doc-12345"),
        ("documentId (no jobs)", "documentId=doc-none"),
    ] {
        views.push((name.into(), format!("/ops/jobs?{query}")));
    }
    views.push(("createdSince 1 day ago".into(), format!("/ops/jobs?createdSince={}", ago(1))));
    views.push((
        "created 15 to 14 days ago".into(),
        format!("/ops/jobs?createdSince={}&createdUntil={}", ago(15), ago(14)),
    ));
    views.push(("createdUntil 20 days ago".into(), format!("/ops/jobs?createdUntil={}", ago(20))));
    views.push((
        "created 40 to 35 days ago (empty)".into(),
        format!("/ops/jobs?createdSince={}&createdUntil={}", ago(40), ago(35)),
    ));
    let mut page_ms = Vec::new();
    for (name, path) in views {
        page_ms.push((format!("ops page: {name}"), timed(path).await?));
    }
    Ok(page_ms)
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}
