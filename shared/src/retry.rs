//! The retry policy: how many attempts an action gets and how long to wait between them.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter. The delay before attempt `n + 1` (after attempt `n`
/// failed) is `base * 2^(n-1)`, capped at `cap`, then jittered by ±20 % and kept
/// within `[base, cap]`. Defaults: see [`crate::catalog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

/// How far jitter moves a delay, as a fraction of it.
const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// The delay before the next attempt, after attempt number `attempt` (1-based)
    /// failed. A `Retry-After` from the target replaces the computed backoff, still
    /// capped at `cap`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.cap);
        }
        let exponent = attempt.saturating_sub(1).min(40);
        let raw = self.base.as_secs_f64() * 2f64.powi(exponent as i32);
        let capped = raw.min(self.cap.as_secs_f64());
        let factor = rand::thread_rng().gen_range((1.0 - JITTER)..=(1.0 + JITTER));
        let jittered = (capped * factor).clamp(self.base.as_secs_f64(), self.cap.as_secs_f64());
        Duration::from_secs_f64(jittered)
    }
}

/// The backoff of a loop that retries until it succeeds or gives up by its own rule
/// (reconnecting, claiming, writing results): a [`RetryPolicy`]'s delays without its
/// attempt limit, one failure after another, back to `base` after a success. Every
/// retrying loop in Docket waits through this or through an action's policy.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { policy: RetryPolicy { max_attempts: u32::MAX, base, cap }, failures: 0 }
    }

    /// The wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.delay(self.failures, None)
    }

    /// After a success: the next failure waits `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 5, base: Duration::from_secs(1), cap: Duration::from_secs(60) }
    }

    #[test]
    fn grows_exponentially_within_jitter() {
        let p = policy();
        for (attempt, nominal) in [(1u32, 1.0f64), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0)] {
            for _ in 0..200 {
                let d = p.delay(attempt, None).as_secs_f64();
                assert!(d >= (nominal * 0.8).max(1.0) - 1e-9 && d <= nominal * 1.2 + 1e-9, "attempt {attempt}: {d}");
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let p = policy();
        let delays: std::collections::HashSet<u128> = (0..50).map(|_| p.delay(4, None).as_micros()).collect();
        assert!(delays.len() > 10, "jitter must vary delays: {delays:?}");
    }

    #[test]
    fn never_exceeds_cap_or_goes_below_base() {
        let p = policy();
        for attempt in [1, 7, 10, 100, u32::MAX] {
            let d = p.delay(attempt, None);
            assert!(d <= p.cap && d >= p.base, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn a_loop_backoff_grows_to_its_cap_and_starts_over_after_a_success() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(120), "{first:?}");
        let later: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(*later.last().unwrap() >= Duration::from_secs(4), "{later:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }

    #[test]
    fn retry_after_replaces_backoff_but_is_capped() {
        let p = policy();
        assert_eq!(p.delay(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(60));
    }
}
