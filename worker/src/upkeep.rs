//! Background upkeep every worker does: its registration and heartbeat in `workers`
//! (and the removal of stale rows), pruning finished jobs past their retention and
//! operators' dashboard sessions that ended long ago, and the day partitions of the
//! history (`job_attempts`, `workfront_events`): made a week ahead, dropped whole past
//! retention.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use chrono::Utc;
use docket::db::partitions::{self, Partitioned};
use docket::db::{ops, sessions, workers, Db};
use docket::domain::JobState;

/// Workers whose heartbeat is older than this are deleted by any other worker.
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// Rows deleted per statement while pruning.
pub const PRUNE_BATCH: i64 = 1000;

/// Registers the worker, then refreshes its heartbeat every `interval` until `stop`;
/// deregisters on the way out.
pub async fn heartbeat(db: Db, me: workers::NewWorker, interval: Duration, stop: CancellationToken) {
    if let Err(e) = db.run(async |c| workers::register(c, &me).await).await {
        tracing::warn!(error = %e, "could not register the worker; will retry");
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => break,
        }
        match db.run(async |c| workers::heartbeat(c, &me.id).await).await {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = db.run(async |c| workers::register(c, &me).await).await {
                    tracing::warn!(error = %e, "could not re-register the worker");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not refresh the heartbeat"),
        }
        match db.run(async |c| workers::delete_stale(c, STALE_AFTER).await).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed stale worker registrations"),
            Err(e) => tracing::warn!(error = %e, "could not remove stale workers"),
        }
    }
    if let Err(e) = db.run(async |c| workers::deregister(c, &me.id).await).await {
        tracing::warn!(error = %e, "could not deregister the worker");
    }
}

/// How long a dashboard session's row is kept after it expired (revoked ones expire at
/// most 12 hours after they were revoked): long enough to look back at who was signed
/// in from where; the revokes themselves stay in `operator_actions`.
pub const SESSION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long finished jobs are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub succeeded: Duration,
    pub failed: Duration,
    /// How long Workfront event deliveries are kept (their jobs stay).
    pub events: Duration,
    pub interval: Duration,
}

/// Day partitions are made this many days ahead of today (UTC), so that a week
/// without any worker still finds them.
pub const PARTITION_DAYS_AHEAD: u64 = 7;

/// At start and every `interval`: keeps the day partitions (a week ahead; those past
/// retention dropped), then deletes finished jobs past their retention in small
/// batches. Only one worker prunes at a time; pruning never locks rows a claim wants
/// (it only touches finished jobs).
pub async fn prune(db: Db, retention: Retention, stop: CancellationToken) {
    loop {
        keep_partitions(&db, &retention, &stop).await;
        prune_in_batches(&db, &stop, History::Jobs(&[JobState::Succeeded], retention.succeeded)).await;
        prune_in_batches(&db, &stop, History::Jobs(&[JobState::Failed, JobState::Cancelled], retention.failed)).await;
        prune_in_batches(&db, &stop, History::Events(retention.events)).await;
        prune_in_batches(&db, &stop, History::OrphanAttempts).await;
        prune_in_batches(&db, &stop, History::Sessions).await;
        tokio::select! {
            _ = tokio::time::sleep(retention.interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Makes each history table's day partitions from today to [`PARTITION_DAYS_AHEAD`]
/// days ahead, drops those whose day is past retention (attempts: the longer of the
/// two job retentions, measured from the day the job was created). A failure (a lock
/// not had in time) is logged and tried again at the next round.
async fn keep_partitions(db: &Db, retention: &Retention, stop: &CancellationToken) {
    let today = Utc::now().date_naive();
    for table in Partitioned::ALL {
        for ahead in 0..=PARTITION_DAYS_AHEAD {
            let day = today + chrono::Days::new(ahead);
            match db.run(async |c| partitions::add_day(c, table, day).await).await {
                Ok(true) => tracing::info!(table = table.table(), %day, "made a day partition"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, table = table.table(), %day, "could not make a day partition");
                    break;
                }
            }
        }
        let kept = match table {
            Partitioned::JobAttempts => retention.succeeded.max(retention.failed),
            Partitioned::WorkfrontEvents => retention.events,
        };
        let Some(before) = chrono::Duration::from_std(kept).ok().and_then(|k| Utc::now().checked_sub_signed(k)) else {
            continue;
        };
        while !stop.is_cancelled() {
            match db.run(async |c| partitions::drop_oldest(c, table, before).await).await {
                Ok(Some(name)) => {
                    tracing::info!(table = table.table(), partition = name, "dropped a partition past retention")
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, table = table.table(), "could not drop a partition past retention");
                    break;
                }
            }
        }
    }
}

/// What retention deletes.
#[derive(Debug, Clone, Copy)]
enum History {
    /// Finished jobs in these states, this long after they finished (their attempts go
    /// with their day's partition).
    Jobs(&'static [JobState], Duration),
    /// Workfront event deliveries in the default partition (whose event time no day
    /// partition covers), kept this long after they arrived.
    Events(Duration),
    /// Attempts in the default partition whose job is gone.
    OrphanAttempts,
    /// Dashboard sessions, kept [`SESSION_RETENTION`] after they expired.
    Sessions,
}

/// Deletes `history` past its retention, [`PRUNE_BATCH`] rows at a time until a batch
/// finds fewer, leaving room for other work between batches.
async fn prune_in_batches(db: &Db, stop: &CancellationToken, history: History) {
    let what = match history {
        History::Jobs(..) => "finished jobs",
        History::Events(_) => "Workfront events",
        History::OrphanAttempts => "attempts of pruned jobs",
        History::Sessions => "dashboard sessions",
    };
    let mut total = 0;
    while !stop.is_cancelled() {
        let deleted = match history {
            History::Jobs(states, age) => db.run(async |c| ops::jobs_prune(c, states, age, PRUNE_BATCH).await).await,
            History::Events(age) => db.run(async |c| docket::db::events::prune(c, age, PRUNE_BATCH).await).await,
            History::OrphanAttempts => db.run(async |c| partitions::attempts_sweep_default(c, PRUNE_BATCH).await).await,
            History::Sessions => db.run(async |c| sessions::prune(c, SESSION_RETENTION, PRUNE_BATCH).await).await,
        };
        match deleted {
            Ok(n) => {
                total += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prune {what}");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, ?history, "pruned {what} past their retention");
    }
}
