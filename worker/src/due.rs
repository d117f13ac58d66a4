//! Retries this worker scheduled, kept so that it claims them when they come due
//! rather than at the next poll: with notifications carrying the load, the poll
//! interval can be minutes long, and a retry makes no notification.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Instants within this of each other are woken for together.
const SLACK: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
pub struct Due {
    times: Mutex<BinaryHeap<Reverse<Instant>>>,
    earlier: Notify,
}

impl Due {
    /// Remembers that a job comes due at `at`.
    pub fn schedule(&self, at: Instant) {
        let mut times = self.lock();
        let earliest = times.peek().map(|t| t.0);
        times.push(Reverse(at));
        if earliest.is_none_or(|e| at < e) {
            self.earlier.notify_one();
        }
    }

    /// Completes when the earliest remembered instant has passed (never while there is
    /// none), forgetting every instant that has passed by then. Cancel-safe: nothing is
    /// forgotten unless it completes.
    pub async fn passed(&self) {
        loop {
            let earliest = self.lock().peek().map(|t| t.0);
            match earliest {
                None => self.earlier.notified().await,
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {
                            let mut times = self.lock();
                            let now = Instant::now() + SLACK;
                            while times.peek().is_some_and(|t| t.0 <= now) {
                                times.pop();
                            }
                            return;
                        }
                        _ = self.earlier.notified() => {}
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<Instant>>> {
        self.times.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_at_each_scheduled_instant_in_order_and_forgets_passed_ones() {
        let due = Due::default();
        let start = Instant::now();
        due.schedule(start + Duration::from_millis(120));
        due.schedule(start + Duration::from_millis(40));
        due.passed().await;
        let first = start.elapsed();
        assert!(first >= Duration::from_millis(40), "woke after {first:?}");
        due.passed().await;
        assert!(start.elapsed() >= Duration::from_millis(120), "woke after {:?}", start.elapsed());
        // Nothing left: waiting does not complete.
        assert!(tokio::time::timeout(Duration::from_millis(50), due.passed()).await.is_err());
    }

    #[tokio::test]
    async fn an_earlier_instant_scheduled_while_waiting_wakes_earlier() {
        let due = std::sync::Arc::new(Due::default());
        let start = Instant::now();
        due.schedule(start + Duration::from_secs(600));
        let waiter = tokio::spawn({
            let due = due.clone();
            async move { due.passed().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let earlier = Instant::now() + Duration::from_millis(20);
        due.schedule(earlier);
        // The 600 s instant cannot be what wakes it within this timeout; the earlier
        // one must, and not before it.
        tokio::time::timeout(Duration::from_secs(30), waiter).await.expect("woke for the earlier instant").unwrap();
        assert!(Instant::now() >= earlier, "woke {:?} before the earlier instant", earlier - Instant::now());
    }
}
