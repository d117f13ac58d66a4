//! Statements about the database itself: creating it, locking migrations, pinging.

use sqlx::{PgConnection, PgExecutor};

/// Serialises migrations across processes for the rest of the transaction.
pub async fn migration_lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Any constant; "docket" in ASCII.
    sqlx::query!("select pg_advisory_xact_lock(100111099107101116)").execute(conn).await?;
    Ok(())
}

/// `CREATE DATABASE`, with the name quoted as an identifier.
pub async fn create_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let statement = format!("create database \"{}\"", name.replace('"', "\"\""));
    sqlx::raw_sql(&statement).execute(conn).await?;
    Ok(())
}

/// Cheap liveness probe of the database.
pub async fn ping(executor: impl PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!("select 1 as one").fetch_one(executor).await?;
    Ok(())
}

/// The newest migration applied to this database, if any.
pub async fn schema_version(executor: impl PgExecutor<'_>) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("select max(version) from _sqlx_migrations where success").fetch_one(executor).await
}
