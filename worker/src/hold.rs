//! Back-pressure this worker heard, kept here too: a job that was claimed before a
//! target asked its action (or the action's limit group) to wait, and waited in the
//! local queue meanwhile, does not call the target before the wait is over. It ends
//! throttled instead (no attempt spent), as its action's next claim would have held
//! it back. The database's record of the wait (`action_controls.backoff_until`) stays
//! the one every worker's claims obey; this only covers jobs already claimed.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

/// Until when each action or group (by name) is held back.
#[derive(Default)]
pub struct HeldBack(Mutex<HashMap<String, Instant>>);

impl HeldBack {
    /// `key` waits until `until` (or longer, if it already waits longer).
    pub fn hold(&self, key: &str, until: Instant) {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, at| *at > now);
        let at = map.entry(key.to_owned()).or_insert(until);
        *at = (*at).max(until);
    }

    /// Until when `key` waits, if it still does.
    pub fn until(&self, key: &str) -> Option<Instant> {
        self.lock().get(key).copied().filter(|at| *at > Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::HeldBack;

    #[test]
    fn a_wait_holds_until_it_is_over_and_the_longer_one_wins() {
        let held = HeldBack::default();
        assert_eq!(held.until("archive"), None);
        let soon = Instant::now() + Duration::from_secs(5);
        held.hold("archive", soon);
        held.hold("archive", soon - Duration::from_secs(3));
        assert_eq!(held.until("archive"), Some(soon));
        assert_eq!(held.until("print"), None);
        held.hold("print", Instant::now() - Duration::from_secs(1));
        assert_eq!(held.until("print"), None, "a wait in the past holds nothing");
    }
}
