//! Failed sign-ins and wrong admin tokens, per client address: after a few free
//! failures each further one shuts the address out for twice as long as the last
//! (1 s, 2 s, 4 s, … up to 5 min), and while it is shut out its wrong tokens are
//! refused with 429 without being counted, so guessing costs time that grows. A valid
//! token is checked first and always passes (behind a reverse proxy every client shares
//! the proxy's address: a guesser must not lock the operators out) and resets the
//! count; a request without a token is no guess. `DOCKET_TRUSTED_PROXIES` keys the
//! count on the forwarded client instead of the proxy. An address with no failure for
//! 15 minutes starts afresh.
//!
//! Written by hand because the usual limiters (governor's keyed limiters among them)
//! give a fixed rate; the delay here grows with each failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures before the first shut-out.
const FREE_FAILURES: u32 = 5;
const FIRST_SHUT_OUT: Duration = Duration::from_secs(1);
const LONGEST_SHUT_OUT: Duration = Duration::from_secs(300);
/// An address with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Most addresses remembered; beyond this, forgotten ones are dropped first.
const MOST_ADDRESSES: usize = 10_000;

struct Record {
    failures: u32,
    last_failure: Instant,
    shut_until: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct FailureThrottle {
    records: Arc<Mutex<HashMap<IpAddr, Record>>>,
}

impl FailureThrottle {
    /// `Err(wait)` while `address` is shut out.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        let records = self.lock();
        let now = Instant::now();
        match records.get(&address).and_then(|r| r.shut_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns how long the address is now shut out, if it is (and
    /// logs it then).
    pub fn failed(&self, address: IpAddr) -> Option<Duration> {
        let shut_out = self.count_failure(address);
        if let Some(wait) = shut_out {
            tracing::warn!(client = %address, shut_out = ?wait, "repeated failed sign-ins or admin tokens; address shut out");
        }
        shut_out
    }

    fn count_failure(&self, address: IpAddr) -> Option<Duration> {
        let mut records = self.lock();
        let now = Instant::now();
        if records.len() >= MOST_ADDRESSES {
            records.retain(|_, r| now.duration_since(r.last_failure) < FORGET_AFTER);
        }
        if records.len() >= MOST_ADDRESSES && !records.contains_key(&address) {
            // Every remembered address failed recently: make room for this one.
            if let Some(oldest) = records.iter().min_by_key(|(_, r)| r.last_failure).map(|(a, _)| *a) {
                records.remove(&oldest);
            }
        }
        let record = records.entry(address).or_insert(Record { failures: 0, last_failure: now, shut_until: None });
        if now.duration_since(record.last_failure) >= FORGET_AFTER {
            record.failures = 0;
        }
        record.failures += 1;
        record.last_failure = now;
        let over = record.failures.checked_sub(FREE_FAILURES + 1)?;
        let shut_out = FIRST_SHUT_OUT.saturating_mul(1 << over.min(16)).min(LONGEST_SHUT_OUT);
        record.shut_until = Some(now + shut_out);
        Some(shut_out)
    }

    /// A valid token from the address: it starts afresh.
    pub fn succeeded(&self, address: IpAddr) {
        self.lock().remove(&address);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shut_out_doubles_after_the_free_failures_and_a_success_resets_it() {
        let throttle = FailureThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.failed(a), None);
            assert!(throttle.check(a).is_ok());
        }
        assert_eq!(throttle.failed(a), Some(Duration::from_secs(1)));
        assert!(throttle.check(a).is_err());
        assert_eq!(throttle.failed(a), Some(Duration::from_secs(2)));
        assert_eq!(throttle.failed(a), Some(Duration::from_secs(4)));
        assert!(throttle.check(b).is_ok(), "per address");
        for _ in 0..20 {
            throttle.failed(a);
        }
        assert_eq!(throttle.failed(a), Some(LONGEST_SHUT_OUT), "capped");
        throttle.succeeded(a);
        assert!(throttle.check(a).is_ok());
        assert_eq!(throttle.failed(a), None);
    }
}
