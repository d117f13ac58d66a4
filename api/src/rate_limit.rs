//! An optional request budget per API key (`DOCKET_API_RATE_LIMIT`, e.g. `100/1s` or
//! `600/1m`): a token bucket per key that holds at most the budget and refills over the
//! period. Per api process; several api replicas each allow the budget.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `N/period`, e.g. `100/1s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests: u32,
    pub period: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (n, period) = text.split_once('/').ok_or("write it as REQUESTS/PERIOD, e.g. 100/1s")?;
        let requests: u32 = n.trim().parse().map_err(|_| format!("{n:?} is not a number of requests"))?;
        let period = docket::duration::parse(period.trim())?;
        if requests == 0 {
            return Err("the number of requests must be at least 1".into());
        }
        Ok(Self { requests, period })
    }
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<Vec<Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: Rate, keys: usize) -> Self {
        let now = Instant::now();
        let buckets = (0..keys.max(1)).map(|_| Bucket { tokens: f64::from(rate.requests), refilled: now }).collect();
        Self { rate, buckets: Mutex::new(buckets) }
    }

    /// Takes one request from the budget of key `index`; `Err(wait)` when it is spent.
    pub fn take(&self, index: usize) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = buckets.get_mut(index) else { return Ok(()) };
        let now = Instant::now();
        let per_second = f64::from(self.rate.requests) / self.rate.period.as_secs_f64();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(f64::from(self.rate.requests));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
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
        let limiter = RateLimiter::new("2/1h".parse().unwrap(), 2);
        assert!(limiter.take(0).is_ok());
        assert!(limiter.take(0).is_ok());
        let wait = limiter.take(0).unwrap_err();
        assert!(wait > Duration::from_secs(1000), "{wait:?}");
        assert!(limiter.take(1).is_ok(), "another key has its own budget");
    }
}
