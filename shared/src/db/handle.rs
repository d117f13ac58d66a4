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

use std::str::FromStr;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

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

/// The connection pool and the way units of work run on it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
    pooler: Pooler,
}

impl Db {
    pub fn new(pool: PgPool, pooler: Pooler) -> Self {
        Self { pool, pooler }
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
        match self.pooler {
            Pooler::None => {
                let mut conn = self.pool.acquire().await?;
                work(&mut conn).await
            }
            Pooler::Transaction => {
                let mut tx = self.begin().await?;
                let out = work(&mut tx).await?;
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Begins a transaction (pinned and cleared behind a transaction-mode pooler).
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        match self.pooler {
            Pooler::None => self.pool.begin().await,
            Pooler::Transaction => self.pool.begin_with(PINNED_BEGIN).await,
        }
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
