//! How many jobs the claim loop takes ahead of its free slots (its local queue):
//! enough to keep every slot busy while the next claim is on its way, and never more
//! than `DOCKET_WORKER_PREFETCH` (default sixteen times the concurrency). Sized from two
//! running averages: how long a job runs on this worker, and how long a claim takes
//! to come back.
//!
//! Short jobs (a noop, a fast target) then come in batches of several hundred per
//! statement instead of a few slots' worth at a time, as in the raw SQL loop that
//! `docket-bench limit` runs; slow ones (an HTTP call of a second) get a job or two
//! ahead, so no job waits here for long while another worker could have run it.
//! A job that waited past its start window (a rate-limited group's, see
//! `claim_loop`) stops all taking ahead until a job ends here: the slots are slower
//! than the averages say, and jobs claimed ahead would only be given back again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Weight of a new sample in the running averages.
const WEIGHT: f64 = 0.2;

/// A running average of durations, in seconds; 0 until the first sample.
#[derive(Default)]
struct Average(AtomicU64);

impl Average {
    /// Load and store, not compare-and-swap: a sample lost to a concurrent one
    /// changes an average by a little, which is all it is used for.
    fn add(&self, sample: Duration) {
        let old = f64::from_bits(self.0.load(Ordering::Relaxed));
        let new = if old == 0.0 { sample.as_secs_f64() } else { old + WEIGHT * (sample.as_secs_f64() - old) };
        self.0.store(new.max(f64::MIN_POSITIVE).to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> Option<f64> {
        Some(f64::from_bits(self.0.load(Ordering::Relaxed))).filter(|s| *s > 0.0)
    }
}

/// What this worker's jobs and claims have taken lately.
#[derive(Default)]
pub struct Pace {
    run: Average,
    claim: Average,
    /// A queued job missed its start window since the last job ended here.
    late: AtomicBool,
}

impl Pace {
    /// A job ran for `took` (from the start of its action to its end).
    pub fn ran(&self, took: Duration) {
        self.run.add(took);
        self.late.store(false, Ordering::Relaxed);
    }

    /// Runs a claim statement, timing its round trip when it succeeds.
    pub async fn time_claim<T, E>(&self, claim: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let sent = Instant::now();
        let claimed = claim.await?;
        self.claimed(sent.elapsed());
        Ok(claimed)
    }

    /// A job claimed ahead could not start within its window: take nothing ahead
    /// until a job ends here.
    pub fn missed_start(&self) {
        self.late.store(true, Ordering::Relaxed);
    }

    /// A claim came back `took` after it was sent.
    pub fn claimed(&self, took: Duration) {
        self.claim.add(took);
    }

    /// How many claimed jobs may wait here for a slot, at most `most`.
    pub fn ahead(&self, concurrency: usize, most: usize) -> usize {
        if self.late.load(Ordering::Relaxed) {
            return 0;
        }
        match (self.run.get(), self.claim.get()) {
            (Some(run), Some(claim)) => ahead(concurrency, run, claim).min(most),
            _ => 0,
        }
    }
}

/// The jobs `concurrency` slots finish during one claim of `claim` seconds when each
/// runs `run` seconds, rounded up.
fn ahead(concurrency: usize, run: f64, claim: f64) -> usize {
    let finished = concurrency as f64 * claim / run;
    // `as` saturates: a run of a nanosecond asks for usize::MAX, cut to `most`.
    finished.ceil() as usize
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ahead, Pace};

    #[test]
    fn nothing_is_taken_ahead_until_jobs_and_claims_were_timed() {
        let pace = Pace::default();
        assert_eq!(pace.ahead(64, 256), 0);
        pace.ran(Duration::from_micros(50));
        assert_eq!(pace.ahead(64, 256), 0, "no claim timed yet");
        pace.claimed(Duration::from_millis(3));
        assert_eq!(pace.ahead(64, 256), 256, "a noop: as many as allowed");
        assert_eq!(pace.ahead(64, 0), 0, "DOCKET_WORKER_PREFETCH=0");
    }

    #[test]
    fn a_missed_start_stops_taking_ahead_until_a_job_ends() {
        let pace = Pace::default();
        pace.ran(Duration::from_micros(50));
        pace.claimed(Duration::from_millis(3));
        pace.missed_start();
        assert_eq!(pace.ahead(64, 256), 0);
        pace.ran(Duration::from_micros(50));
        assert_eq!(pace.ahead(64, 256), 256);
    }

    #[test]
    fn short_jobs_fill_the_queue_and_slow_ones_get_a_job_or_two() {
        assert_eq!(ahead(64, 0.000_05, 0.003), 3840, "a noop: 64 slots finish 3,840 during a 3 ms claim");
        assert_eq!(ahead(64, 0.1, 0.003), 2, "100 ms calls: 64 slots finish 1.9 during a 3 ms claim");
        assert_eq!(ahead(64, 1.0, 0.003), 1);
        assert_eq!(ahead(1, 0.000_05, 0.003), 60);
        assert_eq!(ahead(64, f64::MIN_POSITIVE, 0.003), usize::MAX);
    }

    #[test]
    fn the_averages_follow_a_change_of_pace() {
        let pace = Pace::default();
        pace.claimed(Duration::from_millis(3));
        for _ in 0..50 {
            pace.ran(Duration::from_micros(50));
        }
        assert_eq!(pace.ahead(64, 256), 256);
        // The target slows down to a second per call: within a few dozen jobs the
        // queue ahead is back to one.
        for _ in 0..40 {
            pace.ran(Duration::from_secs(1));
        }
        assert_eq!(pace.ahead(64, 256), 1);
    }
}
