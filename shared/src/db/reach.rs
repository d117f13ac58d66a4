//! [`Reach`]: what a process knows about reaching its database, so that once the
//! database is away every caller is told so at once instead of each one waiting out
//! a connect or acquire timeout of its own.
//!
//! - A connection that breaks in use marks the moment ([`Reach::lost`]): pooled
//!   connections opened before it are pinged before their next use (the pool's
//!   `before_acquire` hook, [`Reach::check_pooled`]), so the dead ones are dropped
//!   there instead of failing the next statement. Connections opened after it are
//!   not pinged: the extra round trip is paid only after a loss.
//! - A loss, a failed connect or an acquire that takes long starts one probe: a fresh
//!   connection and a ping, with a short timeout. If it fails, the database is
//!   *away*: [`Db`](super::Db) (in fail-fast mode, as the api uses it) refuses
//!   units of work at once with [`away_error`] until a probe, repeated every
//!   [`PROBE_EVERY`], succeeds.
//!
//! Hand-written because no crate does this for sqlx's pool: sqlx pings only if
//! asked to ping every connection on every acquire, and retries a refused connect
//! until the acquire timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::watch;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Longest a probe (connect and ping) or the ping of a suspect pooled connection may
/// take before the database counts as away.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a probe attempt is waited for before another one starts.
const PROBE_PATIENCE: Duration = Duration::from_secs(10);
/// How often a database that is away is probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);

/// Shared knowledge of whether the database can be reached. Cheap to clone.
#[derive(Clone)]
pub struct Reach(Arc<Inner>);

struct Inner {
    start: Instant,
    /// Nanoseconds after `start` at which a connection was last lost (0: never).
    lost_at: AtomicU64,
    away: watch::Sender<bool>,
    probing: AtomicBool,
    options: PgConnectOptions,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach").field("away", &self.is_away()).finish_non_exhaustive()
    }
}

impl Reach {
    /// Probes connect with `options` (those of the pool).
    pub fn new(options: PgConnectOptions) -> Self {
        Self(Arc::new(Inner {
            start: Instant::now(),
            lost_at: AtomicU64::new(0),
            away: watch::channel(false).0,
            probing: AtomicBool::new(false),
            options,
        }))
    }

    /// Whether the last probe failed and none has succeeded since.
    pub fn is_away(&self) -> bool {
        *self.0.away.borrow()
    }

    /// Completes once the database counts as away.
    pub async fn wait_away(&self) {
        let mut away = self.0.away.subscribe();
        let _ = away.wait_for(|away| *away).await;
    }

    /// Completes once the database does not count as away.
    pub async fn wait_back(&self) {
        let mut away = self.0.away.subscribe();
        let _ = away.wait_for(|away| !*away).await;
    }

    /// A unit of work succeeded: whatever a probe said, the database answers now.
    pub fn reached(&self) {
        if self.is_away() && self.0.away.send_replace(false) {
            tracing::info!("database reachable again");
        }
    }

    /// A connection broke while in use: the pooled connections opened before now are
    /// pinged before their next use, and a probe checks the database.
    pub fn lost(&self) {
        let now = u64::try_from(self.0.start.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        self.0.lost_at.fetch_max(now, Ordering::AcqRel);
        self.probe();
    }

    /// Something suggests the database may be away (a connect failed, a connection
    /// is slow to come): a probe checks, unless one is running.
    pub fn probe(&self) {
        if self.0.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let reach = self.clone();
        tokio::spawn(async move { reach.probe_until_reached().await });
    }

    async fn probe_until_reached(self) {
        loop {
            let attempt = tokio::time::timeout(PROBE_PATIENCE, connect_and_ping(&self.0.options));
            let mut attempt = std::pin::pin!(attempt);
            // An attempt without an answer within PROBE_TIMEOUT makes the database count
            // as away, but is still waited for: a stalled database that recovers
            // answers it at once.
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, attempt.as_mut()).await {
                Ok(answer) => answer,
                Err(_) => {
                    self.away(&format!("no answer within {PROBE_TIMEOUT:?}"));
                    attempt.await
                }
            };
            match answer {
                Ok(Ok(())) => {
                    self.0.probing.store(false, Ordering::Release);
                    self.reached();
                    return;
                }
                Ok(Err(e)) => self.away(&e.to_string()),
                Err(_) => self.away(&format!("no answer within {PROBE_PATIENCE:?}")),
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    fn away(&self, error: &str) {
        if !self.0.away.send_replace(true) {
            tracing::warn!(%error, "database unreachable: refusing work at once until it answers again");
        }
    }

    /// The pool's `before_acquire` hook: a connection opened before the last loss is
    /// pinged (and dropped if the ping fails or takes longer than [`PROBE_TIMEOUT`]);
    /// others are handed out as they are.
    pub fn check_pooled<'c>(
        &self,
        conn: &'c mut PgConnection,
        meta: PoolConnectionMetadata,
    ) -> BoxFuture<'c, Result<bool, sqlx::Error>> {
        let lost_at = self.0.lost_at.load(Ordering::Acquire);
        let opened_at = self.0.start.elapsed().saturating_sub(meta.age);
        let suspect = lost_at != 0 && u128::from(lost_at) >= opened_at.as_nanos();
        Box::pin(async move {
            if !suspect {
                return Ok(true);
            }
            match tokio::time::timeout(PROBE_TIMEOUT, conn.ping()).await {
                Ok(answered) => answered.map(|()| true),
                Err(_) => Err(sqlx::Error::PoolTimedOut),
            }
        })
    }
}

async fn connect_and_ping(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let mut conn = options.connect().await?;
    conn.ping().await?;
    let _ = conn.close().await;
    Ok(())
}

/// The error a fail-fast [`Db`](super::Db) gives while the database is away: nothing
/// was sent.
pub fn away_error() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the database is unreachable (its last probe failed); nothing was sent",
    ))
}

/// Whether an error means the connection itself failed (rather than a statement).
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_probe_marks_the_database_away_and_a_later_one_brings_it_back() {
        // A port nobody listens on: connects are refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let reach = Reach::new(PgConnectOptions::new().host("127.0.0.1").port(port).username("postgres"));
        assert!(!reach.is_away());
        reach.lost();
        tokio::time::timeout(Duration::from_secs(30), reach.wait_away()).await.expect("away after a failed probe");
        assert!(reach.0.probing.load(Ordering::Acquire), "probing goes on while away");
    }
}
