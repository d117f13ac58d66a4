//! The database layer: connecting (creating the database if needed), migrating, and
//! every SQL statement Docket runs ([`jobs`], [`attempts`], [`admin`], [`sessions`], …).
//!
//! Invariant: no other module issues SQL.

pub mod admin;
pub mod attempts;
pub mod events;
mod flags;
pub mod flow;
mod handle;
pub mod jobs;
pub mod ops;
pub mod partitions;
pub mod reach;
pub mod samples;
pub mod sessions;
pub mod workers;

pub use flags::{DbFlags, PoolSettings};
pub use handle::{Db, Pooler, UnitError};
pub use reach::Reach;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    Url(#[source] sqlx::Error),
    #[error("cannot connect to Postgres: {0}")]
    Connect(#[source] sqlx::Error),
    #[error(
        "database {name:?} does not exist, and it cannot be created through a transaction-mode pooler: \
         create it first, or start once with DATABASE_URL pointing at Postgres itself"
    )]
    MissingBehindPooler { name: String },
    #[error("cannot create database {name:?}: {source}")]
    Create { name: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot apply migrations: {0}")]
    MigrateSql(#[source] sqlx::Error),
}

/// Parses a database URL, with the statement cache set as asked. Behind a
/// transaction-mode pooler the cache is off, and the start-up parameter
/// `extra_float_digits` is not sent: a stock PgBouncer refuses it ("unsupported
/// startup parameter") unless told to ignore it, and managed poolers often cannot be
/// told. (Since PostgreSQL 12 the server's default already prints floats exactly.)
pub fn connect_options(url: &str, settings: &PoolSettings) -> Result<PgConnectOptions, SetupError> {
    let options = PgConnectOptions::from_str(url).map_err(SetupError::Url)?.application_name("docket");
    Ok(match settings.pooler {
        Pooler::None => options.statement_cache_capacity(settings.statement_cache_capacity),
        Pooler::Transaction => options.statement_cache_capacity(0).extra_float_digits(None),
    })
}

/// Creates the database named in `options` if it does not exist yet. Safe when several
/// processes do it at once.
pub async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), SetupError> {
    match PgConnection::connect_with(options).await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Err(e) if sqlstate(&e).as_deref() == Some("3D000") => {}
        Err(e) => return Err(SetupError::Connect(e)),
    }
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin =
        PgConnection::connect_with(&options.clone().database("postgres")).await.map_err(SetupError::Connect)?;
    let result = admin::create_database(&mut admin, &name).await;
    let _ = admin.close().await;
    match result {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        // Another process created it first: 42P04 duplicate_database, or 23505 when
        // both raced on pg_database's unique index.
        Err(e) if matches!(sqlstate(&e).as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(source) => Err(SetupError::Create { name, source }),
    }
}

/// Behind a pooler: fails with a clear error when the database is missing (PgBouncer
/// reports it as 08P01, not 3D000, and cannot run CREATE DATABASE on our behalf
/// without caching the failed login for `server_login_retry`).
async fn check_database_exists(options: &PgConnectOptions) -> Result<(), SetupError> {
    match PgConnection::connect_with(options).await {
        Ok(mut conn) => {
            // A protocol-level ping: no statement that a pooler could split.
            let answered = conn.ping().await;
            let _ = conn.close().await;
            answered.map_err(|e| missing_or(options, e))
        }
        Err(e) => Err(missing_or(options, e)),
    }
}

fn missing_or(options: &PgConnectOptions, error: sqlx::Error) -> SetupError {
    let missing = sqlstate(&error).as_deref() == Some("3D000")
        || error.as_database_error().is_some_and(|e| e.message().ends_with("does not exist"));
    if missing {
        SetupError::MissingBehindPooler { name: options.get_database().unwrap_or("postgres").to_owned() }
    } else {
        SetupError::Connect(error)
    }
}

/// Creates the database if needed, applies migrations and returns the handle.
pub async fn connect_and_migrate(url: &str, settings: &PoolSettings) -> Result<Db, SetupError> {
    let options = connect_options(url, settings)?;
    match settings.pooler {
        Pooler::None => create_database_if_missing(&options).await?,
        Pooler::Transaction => check_database_exists(&options).await?,
    }
    let reach = Reach::new(options.clone());
    let pool = pool_with_reach(options, settings, Some(&reach));
    let db = Db::with_reach(pool, settings.pooler, reach).fail_fast(settings.fail_fast);
    migrate(&db).await?;
    Ok(db)
}

/// A lazily connecting pool: it keeps working (and recovers) when the database is
/// down at times.
pub fn pool(options: PgConnectOptions, settings: &PoolSettings) -> PgPool {
    pool_with_reach(options, settings, None)
}

/// [`pool`], pinging the connections opened before a loss that `reach` learnt of
/// before their next use.
fn pool_with_reach(options: PgConnectOptions, settings: &PoolSettings, reach: Option<&Reach>) -> PgPool {
    let mut builder = PgPoolOptions::new();
    if let Some(reach) = reach.cloned() {
        builder = builder.before_acquire(move |conn, meta| reach.check_pooled(conn, meta));
    }
    builder
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(settings.test_before_acquire)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options)
}

/// Applies pending migrations. Serialised by a transaction-level advisory lock, so it
/// is safe when several processes start at once and works behind a transaction-mode
/// pooler (no session-level lock).
pub async fn migrate(db: &Db) -> Result<(), SetupError> {
    let mut tx = db.begin().await.map_err(SetupError::Connect)?;
    admin::migration_lock(&mut tx).await.map_err(SetupError::MigrateSql)?;
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.set_locking(false);
    migrator.run_direct(&mut *tx).await.map_err(SetupError::Migrate)?;
    tx.commit().await.map_err(SetupError::MigrateSql)?;
    Ok(())
}

/// The newest migration this build knows.
pub fn expected_schema_version() -> i64 {
    sqlx::migrate!("../migrations").migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Longest a readiness check waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database answers (within 2 s) and carries this build's schema. `Err`
/// says why not, in words for an operator.
pub async fn readiness(db: &Db) -> Result<(), String> {
    let version = tokio::time::timeout(READINESS_TIMEOUT, db.run(async |c| admin::schema_version(c).await));
    match version.await {
        Ok(Ok(Some(v))) if v >= expected_schema_version() => Ok(()),
        Ok(Ok(v)) => Err(format!("schema is at migration {v:?}, this build needs {}", expected_schema_version())),
        Ok(Err(e)) => Err(format!("database unreachable: {e}")),
        Err(_) => Err(format!("the database did not answer within {READINESS_TIMEOUT:?}")),
    }
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

/// Whether an error is a serialization failure or deadlock, worth retrying at once.
pub fn is_transient(error: &sqlx::Error) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40001" | "40P01"))
}

/// Runs `op`, retrying it when Postgres reports a serialization failure or deadlock
/// (up to 5 times, with a short pause), and at once when a pooled connection turns out
/// to be dead (up to 8 times: after a database restart every idle connection in the
/// pool is; each failed one is dropped, and a fresh one is opened).
pub async fn retry_transient<T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let (mut tries, mut reconnects) = (0u32, 0u32);
    loop {
        match op().await {
            Err(e) if is_transient(&e) && tries < 5 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "transient database error; retrying");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
            }
            Err(sqlx::Error::Io(e)) if reconnects < 8 => {
                reconnects += 1;
                tracing::debug!(error = %e, reconnects, "database connection lost; retrying on another");
            }
            other => return other,
        }
    }
}
