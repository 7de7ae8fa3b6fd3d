//! Deterministic jitter: a delay in `[0, max)` fixed by (schedule key, occurrence).
//!
//! Previews and forecasts must show the same delay the scheduler will apply, in any process
//! and any version, so the delay is a keyed hash — SipHash-1-3 with fixed keys over a
//! versioned, length-prefixed encoding — never std's randomly seeded hasher. Changing the
//! constants or the encoding moves every jittered run: don't.

use std::hash::Hasher;
use std::time::Duration;

use chrono::{DateTime, Utc};
use siphasher::sip::SipHasher13;

/// Fixed SipHash keys ("cairn jitter v1!" split in two little-endian words).
const KEY0: u64 = u64::from_le_bytes(*b"cairn ji");
const KEY1: u64 = u64::from_le_bytes(*b"tter v1!");

/// The delay for the run of the schedule identified by `key` (e.g. its 16-byte UUID) that
/// is due at `occurrence`: uniform in `[0, max)`, zero when `max` is zero.
pub fn jitter(key: &[u8], occurrence: DateTime<Utc>, max: Duration) -> Duration {
    let max_nanos = max.as_nanos();
    if max_nanos == 0 {
        return Duration::ZERO;
    }
    let mut h = SipHasher13::new_with_keys(KEY0, KEY1);
    h.write(b"cairn/jitter/v1");
    h.write(&(key.len() as u64).to_le_bytes());
    h.write(key);
    h.write(&occurrence.timestamp().to_le_bytes());
    h.write(&occurrence.timestamp_subsec_nanos().to_le_bytes());
    let hash = u128::from(h.finish());
    // floor(hash × max / 2^64), computed in two halves so a huge `max` cannot overflow.
    let (hi, lo) = (max_nanos >> 64, max_nanos & u128::from(u64::MAX));
    let nanos = hash * hi + ((hash * lo) >> 64);
    let secs = (nanos / 1_000_000_000) as u64;
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stable_across_processes_and_versions() {
        // Pinned outputs: if this test fails, every deployed schedule's runs would move.
        let key = [7u8; 16];
        let at: DateTime<Utc> = "2024-01-30T10:15:00Z".parse().unwrap();
        let max = Duration::from_secs(3600);
        assert_eq!(jitter(&key, at, max), PINNED_7S);
        assert_eq!(jitter(&[], at, max), PINNED_EMPTY);
    }

    const PINNED_7S: Duration = Duration::new(190, 782_568_153);
    const PINNED_EMPTY: Duration = Duration::new(1422, 717_034_693);

    #[test]
    fn zero_max_is_zero() {
        assert_eq!(jitter(b"k", Utc::now(), Duration::ZERO), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn within_bounds_and_deterministic(
            key in proptest::collection::vec(any::<u8>(), 0..32),
            secs in 0i64..8_000_000_000,
            max_nanos in 1u64..u64::MAX,
        ) {
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            let max = Duration::from_nanos(max_nanos);
            let d = jitter(&key, at, max);
            prop_assert!(d < max);
            prop_assert_eq!(d, jitter(&key, at, max));
        }

        #[test]
        fn huge_max_does_not_overflow(key in any::<[u8; 16]>(), secs in 0u64..u64::MAX) {
            let max = Duration::new(secs, 999_999_999);
            prop_assert!(jitter(&key, DateTime::UNIX_EPOCH, max) < max);
        }
    }
}
