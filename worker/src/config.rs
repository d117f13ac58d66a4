//! `docket-worker`'s configuration: every setting is a flag and an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use docket::secret::Secret;

/// Docket worker: claims jobs from Postgres and runs their actions.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "docket-worker", version)]
pub struct Config {
    /// Postgres URL (may point at a transaction-mode pooler). The database is created
    /// if missing and migrated at start-up.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,

    /// Direct Postgres URL for LISTEN (a pooler in transaction mode cannot LISTEN).
    /// Default: DATABASE_URL.
    #[arg(long, env = "DOCKET_LISTEN_DATABASE_URL", hide_env_values = true)]
    pub listen_database_url: Option<Secret>,

    /// The action catalog (TOML).
    #[arg(long, env = "DOCKET_ACTIONS", default_value = "./actions.toml")]
    pub actions: PathBuf,

    /// Most jobs this worker runs at once. HTTP actions mostly wait on the network,
    /// so a worker runs many at little cost (a task each; database connections do
    /// not grow with it).
    #[arg(long, env = "DOCKET_WORKER_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Most claimed jobs waiting here for a slot (the local queue). With a backlog, a
    /// claim also takes the jobs this worker's slots will finish before the next claim
    /// comes back (measured), up to this many; slow jobs get a job or two ahead, short
    /// ones come in batches that keep the database at its limit. 0: claim only for
    /// free slots. Default: [`PREFETCH_PER_SLOT`] times the concurrency, at most
    /// [`MAX_PREFETCH`].
    #[arg(long, env = "DOCKET_WORKER_PREFETCH", value_parser = clap::value_parser!(u32).range(0..=MAX_PREFETCH as i64))]
    pub prefetch: Option<u32>,

    /// This worker's id, recorded on its attempts. Default: host-pid-random.
    #[arg(long, env = "DOCKET_WORKER_ID")]
    pub worker_id: Option<String>,

    /// How long a claimed job stays reserved without a renewal. Renewed every fifth
    /// of it; another worker rescues the job once it has expired.
    #[arg(long, env = "DOCKET_WORKER_LEASE", default_value = "30s", value_parser = lease_duration)]
    pub lease: Duration,

    /// How often to look for due jobs when no notification arrives (retries coming
    /// due, lost notifications).
    #[arg(long, env = "DOCKET_WORKER_POLL_INTERVAL", default_value = "1s", value_parser = duration)]
    pub poll_interval: Duration,

    /// How often to rescue jobs whose lease expired.
    #[arg(long, env = "DOCKET_WORKER_RESCUE_INTERVAL", default_value = "5s", value_parser = duration)]
    pub rescue_interval: Duration,

    /// On SIGTERM, how long running jobs may take to finish before they are stopped
    /// and released to other workers.
    #[arg(long, env = "DOCKET_WORKER_SHUTDOWN_GRACE", default_value = "25s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// Address of the worker's health server (`/healthz`, `/readyz`); port 0 picks a
    /// free port.
    #[arg(long, env = "DOCKET_WORKER_ADDR", default_value = "127.0.0.1:9090")]
    pub addr: std::net::SocketAddr,

    /// How often the worker refreshes its row in `workers`.
    #[arg(long, env = "DOCKET_WORKER_HEARTBEAT", default_value = "5s", value_parser = duration)]
    pub heartbeat: Duration,

    /// How long `succeeded` jobs (and their attempts) are kept after they finished.
    #[arg(long, env = "DOCKET_RETENTION_SUCCEEDED", default_value = "7d", value_parser = retention)]
    pub retention_succeeded: Duration,

    /// How long `failed` and `cancelled` jobs are kept after they finished.
    #[arg(long, env = "DOCKET_RETENTION_FAILED", default_value = "30d", value_parser = retention)]
    pub retention_failed: Duration,

    /// How long Workfront event deliveries are kept after they arrived (the jobs
    /// they started stay; a redelivery after this is a new event).
    #[arg(long, env = "DOCKET_RETENTION_EVENTS", default_value = "30d", value_parser = retention)]
    pub retention_events: Duration,

    /// How often one of the workers prunes finished jobs.
    #[arg(long, env = "DOCKET_RETENTION_INTERVAL", default_value = "1m", value_parser = duration)]
    pub retention_interval: Duration,

    /// Most database connections the worker holds (besides the LISTEN connection).
    #[arg(long, env = "DOCKET_WORKER_DB_CONNECTIONS", default_value_t = 4)]
    pub db_connections: u32,

    /// Database settings both binaries share.
    #[command(flatten)]
    pub db: docket::db::DbFlags,
}

fn duration(text: &str) -> Result<Duration, String> {
    docket::duration::parse(text)
}

fn retention(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration ({e})"))?;
    if age < Duration::from_secs(60) {
        return Err("must be at least 1m".into());
    }
    Ok(age)
}

fn lease_duration(text: &str) -> Result<Duration, String> {
    let lease = duration(text)?;
    if lease < Duration::from_millis(500) {
        return Err("must be at least 500ms".into());
    }
    Ok(lease)
}

/// The local queue's default depth per slot. Four per slot left the two default
/// workers' queues (256 each) shorter than what they finish while a claim is on its
/// way on a fast machine, and their claims smaller than the raw loop's: the default
/// drain measured 0.90–0.92× the raw limit against 0.93–0.94× with sixteen
/// (`docs/performance-analysis.md`). Slow jobs are not affected: the pace gives them a
/// job or two ahead whatever the cap.
pub const PREFETCH_PER_SLOT: u32 = 16;

/// The deepest local queue, set or defaulted.
pub const MAX_PREFETCH: u32 = 40_000;

/// `host-pid-xxxx`: unique across hosts and restarts.
pub fn default_worker_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host: String = host.chars().filter(|c| !c.is_control()).take(64).collect();
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    #[test]
    fn debug_output_hides_the_database_passwords() {
        let config = Config::try_parse_from([
            "docket-worker",
            "--database-url",
            "postgres://docket:s3cret-password@db.example.com/docket",
            "--listen-database-url",
            "postgres://docket:listen-password@db.example.com/docket",
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret-password") && !printed.contains("listen-password"), "{printed}");
    }
}
