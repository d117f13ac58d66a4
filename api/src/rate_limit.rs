//! An optional request budget per API key (`DOCKET_API_RATE_LIMIT`, e.g. `100/1s` or
//! `600/1m`): a token bucket per key that holds at most the budget and refills over the
//! period. Per api process; several api replicas each allow the budget. The limiter is
//! governor's.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::Quota;

/// `N/period`, e.g. `100/1s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests: u32,
    pub period: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use docket::duration::{PerPeriod, PerPeriodError};
        match PerPeriod::parse(text) {
            Ok(PerPeriod { count, period }) => Ok(Self { requests: count, period }),
            Err(PerPeriodError::Zero) => Err("the number of requests must be at least 1".into()),
            Err(PerPeriodError::Malformed) => Err(format!("{text:?}: write it as REQUESTS/PERIOD, e.g. 100/1s")),
        }
    }
}

/// One GCRA limiter (governor) keyed by the API key's index: the budget may be spent
/// at once, then refills evenly over the period — the token bucket's behaviour.
pub struct RateLimiter {
    limiter: governor::DefaultKeyedRateLimiter<usize>,
    clock: governor::clock::DefaultClock,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        let burst = NonZeroU32::new(rate.requests).unwrap_or(NonZeroU32::MIN);
        // One request's share of the period (at least a nanosecond, which governor needs).
        let per_request = (rate.period / rate.requests.max(1)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(per_request).expect("a positive period").allow_burst(burst);
        Self { limiter: governor::RateLimiter::keyed(quota), clock: Default::default() }
    }

    /// Takes one request from the budget of key `index`; `Err(wait)` when it is spent.
    pub fn take(&self, index: usize) -> Result<(), Duration> {
        self.limiter.check_key(&index).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!("100/1s".parse::<Rate>(), Ok(Rate { requests: 100, period: Duration::from_secs(1) }));
        assert!("100".parse::<Rate>().is_err());
        assert!("0/1s".parse::<Rate>().is_err());
        assert!("x/1s".parse::<Rate>().is_err());
        assert!("5/soon".parse::<Rate>().is_err());
    }

    #[test]
    fn budgets_are_per_key() {
        let limiter = RateLimiter::new("2/1h".parse().unwrap());
        assert!(limiter.take(0).is_ok());
        assert!(limiter.take(0).is_ok());
        let wait = limiter.take(0).unwrap_err();
        assert!(wait > Duration::from_secs(1000), "{wait:?}");
        assert!(limiter.take(1).is_ok(), "another key has its own budget");
    }
}
