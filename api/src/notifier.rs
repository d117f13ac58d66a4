//! Wakes workers after jobs are inserted: at most one `NOTIFY` in flight, and at
//! most one per `MIN_GAP`, so a burst of inserts never serialises on Postgres's
//! notify lock. The first notification after a quiet spell goes out at once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

/// Shortest time between two notifications.
pub const MIN_GAP: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct Notifier {
    pending: Arc<Notify>,
}

impl Notifier {
    /// Starts the background task that sends the notifications.
    pub fn spawn(pool: PgPool) -> Self {
        let pending = Arc::new(Notify::new());
        let waiter = pending.clone();
        tokio::spawn(async move {
            loop {
                // `notify_one` stores one permit, so wake-ups during a send or a gap
                // fold into a single next notification.
                waiter.notified().await;
                if let Err(e) = docket::db::jobs::notify(&pool).await {
                    // Workers fall back to polling; a lost wake-up only delays a job.
                    tracing::warn!(error = %e, "could not notify workers");
                }
                tokio::time::sleep(MIN_GAP).await;
            }
        });
        Self { pending }
    }

    /// Asks for a notification soon.
    pub fn wake(&self) {
        self.pending.notify_one();
    }
}
