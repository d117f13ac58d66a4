//! Wakes workers after jobs are inserted: at most one `NOTIFY` in flight, and at
//! most one per `MIN_GAP`, so a burst of inserts never serialises on Postgres's
//! notify lock. After a quiet spell, the first insert carries its `NOTIFY` inside its
//! own statement ([`Notifier::take_quiet`]), saving a round trip on the idle path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docket::db::Db;
use tokio::sync::Notify;

/// Shortest time between two notifications.
pub const MIN_GAP: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct Notifier {
    pending: Arc<Notify>,
    /// Microseconds since `epoch` when the last notification was sent or claimed.
    last_sent: Arc<AtomicU64>,
    epoch: Instant,
}

impl Notifier {
    /// Starts the background task that sends the notifications.
    pub fn spawn(db: Db) -> Self {
        let pending = Arc::new(Notify::new());
        let notifier = Self { pending: pending.clone(), last_sent: Arc::new(AtomicU64::new(0)), epoch: Instant::now() };
        let waiter = pending;
        let sender = notifier.clone();
        tokio::spawn(async move {
            loop {
                // `notify_one` stores one permit, so wake-ups during a send or a gap
                // fold into a single next notification.
                waiter.notified().await;
                sender.last_sent.store(sender.now_micros(), Ordering::Relaxed);
                if let Err(e) = db.run(async |c| docket::db::jobs::notify(c).await).await {
                    // Workers fall back to polling; a lost wake-up only delays a job.
                    tracing::warn!(error = %e, "could not notify workers");
                }
                tokio::time::sleep(MIN_GAP).await;
            }
        });
        notifier
    }

    /// True when no notification went out within `MIN_GAP`: the caller then sends it
    /// inside its own insert statement, and this counts as the latest notification.
    pub fn take_quiet(&self) -> bool {
        let now = self.now_micros();
        let last = self.last_sent.load(Ordering::Relaxed);
        now.saturating_sub(last) >= MIN_GAP.as_micros() as u64
            && self.last_sent.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    fn now_micros(&self) -> u64 {
        // Offset by MIN_GAP so that the very first call counts as quiet.
        (self.epoch.elapsed() + MIN_GAP).as_micros() as u64
    }

    /// Asks for a notification soon.
    pub fn wake(&self) {
        self.pending.notify_one();
    }
}
