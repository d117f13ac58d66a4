//! [`DbFlags`]: the database settings the api and the worker share, as flags and
//! environment variables (flattened into each binary's configuration), and how they
//! become [`PoolSettings`].

use std::time::Duration;

use super::handle::Pooler;

#[derive(Debug, Clone, clap::Args)]
pub struct DbFlags {
    /// Prepared statements cached per connection (ignored with DOCKET_DB_POOLER=transaction).
    #[arg(long = "db-statement-cache", env = "DOCKET_DB_STATEMENT_CACHE", default_value_t = 100)]
    pub statement_cache: usize,

    /// What DATABASE_URL points at: `none` (Postgres, or a session-mode pooler) or
    /// `transaction` (a transaction-mode pooler such as PgBouncer `pool_mode =
    /// transaction`): every unit of work then runs in its own transaction, so that it
    /// stays on one server connection, and the statement cache is off. The worker
    /// then needs DOCKET_LISTEN_DATABASE_URL pointing at Postgres itself.
    #[arg(long = "db-pooler", env = "DOCKET_DB_POOLER", default_value = "none")]
    pub pooler: Pooler,

    /// Ping each pooled connection before use (one more round trip per query). Broken
    /// connections are dropped anyway when they are returned to the pool.
    #[arg(long = "db-test-before-acquire", env = "DOCKET_DB_TEST_BEFORE_ACQUIRE", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub test_before_acquire: bool,
}

impl DbFlags {
    /// Pool settings with at most `max_connections` connections (the acquire timeout
    /// stays the default).
    pub fn pool_settings(&self, max_connections: u32) -> PoolSettings {
        PoolSettings {
            max_connections,
            statement_cache_capacity: self.statement_cache,
            test_before_acquire: self.test_before_acquire,
            pooler: self.pooler,
            ..PoolSettings::default()
        }
    }
}

/// How to build a connection pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a caller waits for a connection before the request fails.
    pub acquire_timeout: Duration,
    /// Prepared statements cached per connection.
    pub statement_cache_capacity: usize,
    /// Ping each connection before handing it out. Off saves a round trip per query;
    /// sqlx still pings every connection when it is returned, so broken ones are
    /// dropped there.
    pub test_before_acquire: bool,
    /// What sits between Docket and Postgres; a transaction-mode pooler turns the
    /// statement cache off and runs every unit of work in a transaction ([`Db`](super::Db)).
    pub pooler: Pooler,
    /// While the database is away, refuse units of work at once instead of waiting
    /// for a connection ([`Db::fail_fast`](super::Db::fail_fast)).
    pub fail_fast: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
            statement_cache_capacity: 100,
            test_before_acquire: true,
            pooler: Pooler::None,
            fail_fast: false,
        }
    }
}
