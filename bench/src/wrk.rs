//! `enqueue` and `events` driven by `wrk` (Debian package `wrk`), the load generator
//! issue #24 names: a C client whose CPU cost per request is a fraction of reqwest's, so
//! on a 2-core box the figure says more about the api and less about the client that
//! loads it. Each request carries its own document id (thread and counter), so none is
//! a duplicate or a redelivery.

use std::time::Duration;

use anyhow::{ensure, Context};
use docket_harness::Api;

use crate::probe;
use crate::scenarios::Setup;

pub struct WrkLoad {
    /// Requests (deliveries) answered per second.
    pub requests_per_second: f64,
    /// Answers other than 2xx, and socket errors.
    pub errors: u64,
}

/// What every script starts with: each wrk thread's number, `tid`, which makes the
/// ids unique across threads.
const THREADS: &str = r#"
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
"#;

/// `enqueue`'s script: unique document ids per thread, the api key and a requester.
const ENQUEUE: &str = r#"
function init(args)
  counter = 0
  wrk.headers["apiKey"] = os.getenv("DOCKET_BENCH_API_KEY")
  wrk.headers["username"] = "bench@example.com"
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/customAction?name=noop&documentVersionId=v1&documentId=doc-" .. tid .. "-" .. counter)
end
"#;

/// `events`' script: the scenario's delivery (`DOCKET_BENCH_BODY`, from
/// [`crate::events::template`]) with its own object id per thread and counter and the
/// current second as its event time, with the subscription's token.
const EVENTS: &str = r#"
function init(args)
  counter = 0
  body = os.getenv("DOCKET_BENCH_BODY")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("DOCKET_BENCH_TOKEN")
end
function request()
  counter = counter + 1
  local id = "doc-" .. tid .. "-" .. counter
  local message = body:gsub("@ID@", id):gsub("@NOW@", tostring(os.time()))
  return wrk.format(nil, "/workfront/events", nil, message)
end
"#;

/// Whether wrk is installed.
fn installed() -> bool {
    std::process::Command::new("wrk").arg("--version").output().is_ok()
}

/// `GET /customAction` for `duration` from `connections` connections on 2 threads;
/// `None` when wrk is not installed. Checks that every answered request stored its
/// job (requests cut off when wrk stops may have stored theirs too).
pub async fn enqueue(setup: &Setup, duration: Duration, connections: usize) -> anyhow::Result<Option<WrkLoad>> {
    if !installed() {
        return Ok(None);
    }
    let db = setup.database().await?;
    let api = Api::start(&setup.url(&db), &setup.catalog, &setup.env(&db, &[])).await;
    let env = [("DOCKET_BENCH_API_KEY", docket_harness::API_KEY.to_owned())];
    drive(&db, &api, ENQUEUE, &env, duration, connections).await.map(Some)
}

/// `POST /workfront/events` as the `events` scenario sends it (one job per delivery),
/// for `duration` from `connections` connections; `None` when wrk is not installed.
pub async fn events(setup: &Setup, duration: Duration, connections: usize) -> anyhow::Result<Option<WrkLoad>> {
    if !installed() {
        return Ok(None);
    }
    let db = setup.database().await?;
    let api = crate::events::start_api(setup, &db).await;
    let env = [
        ("DOCKET_BENCH_TOKEN", crate::events::TOKEN.to_owned()),
        ("DOCKET_BENCH_BODY", crate::events::template("@ID@", "@NOW@")),
    ];
    drive(&db, &api, EVENTS, &env, duration, connections).await.map(Some)
}

/// Runs wrk with `script` against `api` and checks that every request answered 2xx
/// stored its job.
async fn drive(
    db: &docket_harness::TestDb,
    api: &Api,
    script: &str,
    env: &[(&str, String)],
    duration: Duration,
    connections: usize,
) -> anyhow::Result<WrkLoad> {
    let path = std::env::temp_dir().join(format!("docket-bench-wrk-{}.lua", std::process::id()));
    std::fs::write(&path, format!("{THREADS}{script}"))?;
    let output = tokio::process::Command::new("wrk")
        .args(["--threads", "2", "--latency"])
        .arg(format!("--connections={connections}"))
        .arg(format!("--duration={}s", duration.as_secs().max(1)))
        .arg(format!("--script={}", path.display()))
        .arg(&api.base)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await?;
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    let field =
        |prefix: &str| stdout.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()));
    let requests_per_second: f64 =
        field("Requests/sec:").and_then(|v| v.parse().ok()).context("no Requests/sec line in wrk's output")?;
    let answered: u64 = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
        .context("no request count in wrk's output")?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let socket_errors: u64 = field("Socket errors:")
        .map(|v| v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let stored = probe::count_jobs(&db.pool).await? as u64;
    ensure!(stored >= answered - non_2xx, "wrk: {answered} answered ({non_2xx} not 2xx) but {stored} jobs stored");
    Ok(WrkLoad { requests_per_second, errors: non_2xx + socket_errors })
}
