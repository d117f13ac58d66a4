//! [`Db`], the handle every caller uses to reach Postgres: a pool, and how one unit of
//! work runs on it.
//!
//! Directly connected, a unit is one pooled connection and costs nothing extra.
//!
//! Behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`) every unit runs
//! in its own transaction. sqlx sends Parse and Bind in separate round trips and names
//! its prepared statements (`sqlx_s_1`, … counted per client connection), so outside a
//! transaction the pooler may hand the Bind to a different server connection, and two
//! clients' `sqlx_s_1` meet on the same one ("prepared statement already exists").
//! `BEGIN` pins one server connection until `COMMIT`; `DEALLOCATE ALL`, sent with it in
//! the same round trip, drops whatever statements an earlier unit (of any client) left
//! there. The statement cache is off in this mode (a cached statement lives on one
//! server connection only). PgBouncer 1.21+ can track named statements itself
//! (`max_prepared_statements`); this mode does not need it, so the PgBouncer that
//! distributions ship works.
//!
//! Every unit reports a broken connection to the handle's [`Reach`]; in fail-fast mode
//! (the api's) a unit is refused at once while the database is away, and a unit
//! whose connection is slow to come gives up as soon as a probe finds it away.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::reach::{away_error, is_connection_error, Reach};

/// What sits between Docket and Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// Postgres itself, or a pooler in session mode.
    #[default]
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`).
    Transaction,
}

impl FromStr for Pooler {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Self::None),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!("{other:?} is not a pooler mode; use \"none\" or \"transaction\"")),
        }
    }
}

/// Opens a unit behind a transaction-mode pooler: pins a server connection and clears
/// the prepared statements earlier units left on it, in one round trip.
const PINNED_BEGIN: &str = "BEGIN; DEALLOCATE ALL";

/// A connection that has not come after this long may mean the database is away: a
/// probe then checks (in fail-fast mode).
const SLOW_ACQUIRE: Duration = Duration::from_millis(250);

/// Why a unit of work failed: before anything of it was sent, or after.
#[derive(Debug)]
pub enum UnitError {
    /// No connection could be had, or the database is away: nothing was sent.
    NotSent(sqlx::Error),
    /// A statement failed, or the connection broke while the unit ran: it may have
    /// taken effect if the error is a connection error.
    Failed(sqlx::Error),
}

impl UnitError {
    pub fn into_inner(self) -> sqlx::Error {
        match self {
            Self::NotSent(e) | Self::Failed(e) => e,
        }
    }
}

/// The connection pool and the way units of work run on it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    pooler: Pooler,
    reach: Reach,
    fail_fast: bool,
}

impl Db {
    /// A handle on `pool`. Its [`Reach`] probes with the pool's connect options; the
    /// pool pings connections that predate a loss only if built by
    /// [`pool`](super::pool) with this reach ([`Db::with_reach`]).
    pub fn new(pool: PgPool, pooler: Pooler) -> Self {
        let reach = Reach::new((*pool.connect_options()).clone());
        Self::with_reach(pool, pooler, reach)
    }

    /// `reach` must be the one whose [`Reach::check_pooled`] the pool calls before
    /// handing out a connection.
    pub fn with_reach(pool: PgPool, pooler: Pooler, reach: Reach) -> Self {
        Self { pool, pooler, reach, fail_fast: false }
    }

    /// Refuse units at once while the database is away ([`Reach`]), instead of waiting
    /// for a connection until the acquire timeout.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// What this handle knows about reaching the database.
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// The pool itself, for callers that know they talk to Postgres directly (tests,
    /// the benchmark).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `work` as one unit: on a pooled connection, or, behind a transaction-mode
    /// pooler, in a transaction committed before this returns. Statements that must
    /// commit together belong in [`Db::begin`] instead.
    pub async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        self.run_unit(work).await.map_err(UnitError::into_inner)
    }

    /// [`Db::run`], telling a failure before anything was sent from one after.
    pub async fn run_unit<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, UnitError> {
        let out = self.run_unit_once(work).await;
        if out.is_ok() {
            self.reach.reached();
        }
        out
    }

    async fn run_unit_once<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, UnitError> {
        match self.pooler {
            Pooler::None => {
                let mut conn = self.guarded(self.pool.acquire()).await.map_err(UnitError::NotSent)?;
                work(&mut conn).await.map_err(|e| self.failed(e))
            }
            Pooler::Transaction => {
                let mut tx = self.begin().await.map_err(UnitError::NotSent)?;
                let out = work(&mut tx).await.map_err(|e| self.failed(e))?;
                tx.commit().await.map_err(|e| self.failed(e))?;
                Ok(out)
            }
        }
    }

    /// Begins a transaction (pinned and cleared behind a transaction-mode pooler).
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        match self.pooler {
            Pooler::None => self.guarded(self.pool.begin()).await,
            Pooler::Transaction => self.guarded(self.pool.begin_with(PINNED_BEGIN)).await,
        }
    }

    /// Waits for a connection (or a transaction on one), except in fail-fast mode
    /// while the database is away or once a probe finds it so.
    async fn guarded<T>(&self, acquire: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
        let result = if !self.fail_fast {
            acquire.await
        } else if self.reach.is_away() {
            return Err(away_error());
        } else {
            let gave_up = async {
                tokio::time::sleep(SLOW_ACQUIRE).await;
                self.reach.probe();
                self.reach.wait_away().await;
            };
            // Biased: a connection at hand is taken before the timer is ever polled, so
            // the common case registers no timer.
            tokio::select! {
                biased;
                result = acquire => result,
                () = gave_up => Err(away_error()),
            }
        };
        if let Err(e) = &result {
            if is_connection_error(e) || matches!(e, sqlx::Error::PoolTimedOut) {
                self.reach.probe();
            }
        }
        result
    }

    fn failed(&self, error: sqlx::Error) -> UnitError {
        if is_connection_error(&error) {
            self.reach.lost();
        }
        UnitError::Failed(error)
    }

    /// Closes every connection; waits for those in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooler_modes_parse_and_unknown_ones_are_named() {
        assert_eq!("none".parse::<Pooler>(), Ok(Pooler::None));
        assert_eq!("transaction".parse::<Pooler>(), Ok(Pooler::Transaction));
        let error = "session".parse::<Pooler>().unwrap_err();
        assert!(error.contains("\"session\"") && error.contains("transaction"), "{error}");
    }
}
