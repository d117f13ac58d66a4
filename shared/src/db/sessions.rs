//! Operators' dashboard sessions: recorded at sign-in, checked on every dashboard
//! request (one primary-key lookup), listed, revoked, and pruned. Rows hold the
//! SHA-256 of the session id, never the id the cookie carries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A live session as operators see it: no secret, only the digest that names it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub client: Option<String>,
}

/// Records a new session of `label`.
pub async fn create(
    executor: impl PgExecutor<'_>,
    id_hash: &[u8],
    label: &str,
    expires_at: DateTime<Utc>,
    client: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into operator_sessions (id_hash, label, expires_at, client) values ($1, $2, $3, $4::text::inet)",
        id_hash,
        label,
        expires_at,
        client,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Whether the session is live (recorded for `label`, not revoked, not expired);
/// refreshes its `last_seen_at` when that is more than a minute old, so most
/// requests only read.
pub async fn check(executor: impl PgExecutor<'_>, id_hash: &[u8], label: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query!(
        r#"with live as (
               select id_hash, last_seen_at from operator_sessions
               where id_hash = $1 and label = $2 and revoked_at is null and expires_at > now()
           ), touched as (
               update operator_sessions s set last_seen_at = now()
               from live
               where s.id_hash = live.id_hash and live.last_seen_at < now() - interval '1 minute'
               returning s.id_hash
           )
           select count(*) as "live!" from live"#,
        id_hash,
        label,
    )
    .fetch_one(executor)
    .await?;
    Ok(row.live == 1)
}

/// Live sessions (not revoked, not expired), of `label` if given, newest first.
pub async fn list_live(
    executor: impl PgExecutor<'_>,
    label: Option<&str>,
    limit: i64,
) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as!(
        SessionRow,
        r#"select id_hash, label, created_at, last_seen_at, expires_at, host(client) as client
           from operator_sessions
           where revoked_at is null and expires_at > now() and ($1::text is null or label = $1)
           order by created_at desc, id_hash
           limit $2"#,
        label,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// What revoking one session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// It was live; it is revoked now. The label it belonged to.
    Now(String),
    /// It exists but had already been revoked or had expired.
    AlreadyEnded,
    /// No session has this id.
    Unknown,
}

/// Revokes one session, recording who did it. Of two revokes at once, one revokes it
/// and the other is told it had already ended (the update re-checks the row it waited
/// for).
pub async fn revoke(executor: impl PgExecutor<'_>, id_hash: &[u8], by: &str) -> Result<Revoked, sqlx::Error> {
    let row = sqlx::query!(
        r#"with revoked as (
               update operator_sessions set revoked_at = now(), revoked_by = $2
               where id_hash = $1 and revoked_at is null and expires_at > now()
               returning label
           )
           select label as "label!", true as "revoked!" from revoked
           union all
           select label, false from operator_sessions
           where id_hash = $1 and not exists (select 1 from revoked)"#,
        id_hash,
        by,
    )
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        Some(r) if r.revoked => Revoked::Now(r.label),
        Some(_) => Revoked::AlreadyEnded,
        None => Revoked::Unknown,
    })
}

/// Revokes every live session of `label`; returns how many.
pub async fn revoke_label(executor: impl PgExecutor<'_>, label: &str, by: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update operator_sessions set revoked_at = now(), revoked_by = $2
         where label = $1 and revoked_at is null and expires_at > now()",
        label,
        by,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes up to `batch` sessions whose expiry lies more than `age` in the past
/// (revoked ones included: a session expires at most 12 hours after it was revoked).
pub async fn prune(executor: impl PgExecutor<'_>, age: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"delete from operator_sessions
           where id_hash in (select id_hash from operator_sessions
                             where expires_at < now() - make_interval(secs => $1)
                             order by expires_at limit $2
                             for update skip locked)"#,
        age.as_secs_f64(),
        batch,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
