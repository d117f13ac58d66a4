//! `docket-api`'s configuration: every setting is a flag and an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use docket::secret::Secret;

/// Docket api: Workfront document webhook provider that stores custom actions as jobs.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "docket-api", version)]
pub struct Config {
    /// Postgres URL. The database is created if missing and migrated at start-up.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,

    /// Address to listen on (use port 0 for any free port).
    #[arg(long, env = "DOCKET_API_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// The action catalog (TOML).
    #[arg(long, env = "DOCKET_ACTIONS", default_value = "./actions.toml")]
    pub actions: PathBuf,

    /// Comma-separated API keys that Workfront may send in the `apiKey` header (several
    /// at once allow rotation). At least 16 characters each. Required unless
    /// DOCKET_INSECURE_DISABLE_AUTH is set.
    #[arg(long, env = "DOCKET_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<Secret>,

    /// Tokens that open the ops API and dashboard (`Authorization: Bearer <token>`):
    /// `token` or `label:token`, comma-separated; the label is recorded with every
    /// operator action. At least 24 characters, distinct from the API keys. Unset: the
    /// ops API and dashboard refuse everyone.
    #[arg(long, env = "DOCKET_ADMIN_TOKEN", value_delimiter = ',', hide_env_values = true)]
    pub admin_tokens: Vec<Secret>,

    /// Tokens Workfront's event subscriptions send back (`authToken`), comma-separated
    /// so that one can be rotated; 16 to 254 characters each. The first is the one
    /// `workfront-subscriptions apply` gives new subscriptions. Unset: `POST
    /// /workfront/events` answers 404 (intake off).
    #[arg(long, env = "DOCKET_EVENT_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub event_tokens: Vec<Secret>,

    /// DANGER, local development only: accept /customAction without any API key.
    #[arg(long, env = "DOCKET_INSECURE_DISABLE_AUTH", default_value_t = false)]
    pub insecure_disable_auth: bool,

    /// Optional budget of requests per API key, e.g. `100/1s` or `600/1m` (per api
    /// process); over it, /customAction answers 429 with Retry-After.
    #[arg(long, env = "DOCKET_API_RATE_LIMIT")]
    pub rate_limit: Option<crate::rate_limit::Rate>,

    /// Most database connections the api holds.
    #[arg(long, env = "DOCKET_API_DB_CONNECTIONS", default_value_t = 8)]
    pub db_connections: u32,

    /// How long a request waits for a database connection before it gets a 503.
    #[arg(long, env = "DOCKET_API_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime_duration)]
    pub db_acquire_timeout: Duration,

    /// Database settings both binaries share.
    #[command(flatten)]
    pub db: docket::db::DbFlags,

    /// Most jobs stored by one INSERT when requests arrive together, and most event
    /// deliveries recorded by one statement (group commit); 1 stores each on its own.
    #[arg(long, env = "DOCKET_API_INSERT_BATCH", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub insert_batch: u32,

    /// Most open client connections; further ones are closed at once.
    #[arg(long, env = "DOCKET_API_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Time a client has to send its request headers before it is disconnected.
    #[arg(long, env = "DOCKET_API_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime_duration)]
    pub header_timeout: Duration,

    /// The URL operators open the api at, when it differs from DOCKET_API_ADDR (behind
    /// a reverse proxy that terminates TLS, say). The dashboard's cookies are `Secure`
    /// unless this is an `http://` URL (a dashboard served over plain HTTP on a host
    /// other than localhost).
    #[arg(long, env = "DOCKET_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<url::Url>,

    /// Comma-separated addresses of reverse proxies in front of the api. A request
    /// from one of them is counted, for the sign-in throttle, against the right-most
    /// address in `X-Forwarded-For` that is not a trusted proxy, instead of against the
    /// proxy (whose address every operator would share). Unset: `X-Forwarded-For` is
    /// ignored (anyone can write it).
    #[arg(long, env = "DOCKET_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Longest time a request may take before it is answered 503. For /customAction
    /// it runs out only while the job waits to be written: a job being written waits
    /// for the write's outcome (see DOCKET_API_COMMIT_WAIT), so that a 503 never
    /// hides a stored job.
    #[arg(long, env = "DOCKET_API_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime_duration)]
    pub request_timeout: Duration,

    /// How often the queue is sampled for the dashboard's charts (`0s`: never).
    #[arg(long, env = "DOCKET_API_SAMPLE_INTERVAL", default_value = "10s", value_parser = docket::duration::parse_or_zero)]
    pub sample_interval: Duration,

    /// How long a /customAction request whose job is being written waits to learn
    /// whether the write committed, when the database stalls or the connection breaks
    /// during it (the write is repeated meanwhile; it is idempotent). Only after this
    /// is the outcome unknown: the reply is then 503 and the job may still exist.
    #[arg(long, env = "DOCKET_API_COMMIT_WAIT", default_value = "30s", value_parser = humantime_duration)]
    pub commit_wait: Duration,
}

/// Parses "250ms", "10s", "5m" and the like.
pub fn humantime_duration(text: &str) -> Result<Duration, String> {
    docket::duration::parse(text)
}

/// An absolute `http://` or `https://` URL.
fn public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        _ => Err("must be an http:// or https:// URL with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    #[test]
    fn debug_output_hides_the_database_password() {
        let config = Config::try_parse_from([
            "docket-api",
            "--database-url",
            "postgres://docket:s3cret-password@db.example.com/docket",
            "--api-keys",
            "0123456789abcdef0123",
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret-password"), "{printed}");
    }
}
