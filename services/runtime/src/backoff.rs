//! Retry delays: exponential, capped, and jittered, so that many clients failing at the same
//! moment (every worker when a scheduler restarts) spread their retries instead of arriving
//! together.

use std::time::Duration;

/// Delays doubling from `initial` up to `max`, each drawn uniformly from its upper half.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, next: initial }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        jittered(d)
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// A delay drawn uniformly from `[d/2, d]`.
pub fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(rand::random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut ceiling = Duration::from_millis(200);
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
            ceiling = (ceiling * 2).min(Duration::from_secs(10));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }

    #[test]
    fn clients_failing_together_do_not_retry_together() {
        // 100 workers that lost the scheduler at the same instant: their third retries spread
        // over the window instead of landing on one instant.
        let third: std::collections::BTreeSet<u128> = (0..100)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
                b.next_delay();
                b.next_delay();
                b.next_delay().as_millis()
            })
            .collect();
        assert!(third.len() > 50, "only {} distinct delays: {third:?}", third.len());
        assert!(third.iter().all(|ms| (400..=800).contains(ms)), "{third:?}");
    }
}
