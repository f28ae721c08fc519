//! Heartbeat intervals and retry back-offs, as IPA computes them
//! (`ipa-protocol.md` §6.2, §6.3, §7).
//!
//! Every random choice goes through [`Jitter`], so tests can pin the draws and
//! check the exact durations.

use std::time::Duration;

use rand::Rng;

/// A source of uniform random numbers; injectable so tests are exact.
pub trait Jitter {
    /// A number drawn uniformly from `[low, high]` (`low` when the range is empty).
    fn uniform(&mut self, low: f64, high: f64) -> f64;
}

/// The production jitter: the thread-local RNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadJitter;

impl Jitter for ThreadJitter {
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        if high <= low {
            return low;
        }
        rand::thread_rng().gen_range(low..=high)
    }
}

/// A test jitter: each draw is `low + fraction × (high − low)`, the fractions taken in
/// turn (the last one repeats).
#[derive(Debug, Clone)]
pub struct FixedJitter {
    fractions: Vec<f64>,
    next: usize,
}

impl FixedJitter {
    /// Draws at these fractions of each range, in order.
    pub fn new(fractions: impl Into<Vec<f64>>) -> Self {
        Self {
            fractions: fractions.into(),
            next: 0,
        }
    }
}

impl Jitter for FixedJitter {
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let fraction = self
            .fractions
            .get(self.next)
            .or(self.fractions.last())
            .copied()
            .unwrap_or(0.0);
        self.next += 1;
        low + fraction.clamp(0.0, 1.0) * (high - low).max(0.0)
    }
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

/// The lower jitter multiplier of the heartbeat interval.
pub const HEARTBEAT_JITTER_MIN: f64 = 0.3;
/// The upper jitter multiplier of the heartbeat interval.
pub const HEARTBEAT_JITTER_MAX: f64 = 0.6;
/// IPA's floor between a failed heartbeat and the next one, in seconds.
pub const HEARTBEAT_ERROR_FLOOR: f64 = 5.0;

/// The wait after an accepted heartbeat: `heartbeat_timeout × U(0.3, 0.6)`.
pub fn heartbeat_interval(heartbeat_timeout: f64, jitter: &mut impl Jitter) -> Duration {
    secs(heartbeat_timeout * jitter.uniform(HEARTBEAT_JITTER_MIN, HEARTBEAT_JITTER_MAX))
}

/// The wait after a failed heartbeat (any error, 409 included): `5 × U(1, 2)`.
pub fn heartbeat_error_interval(jitter: &mut impl Jitter) -> Duration {
    secs(HEARTBEAT_ERROR_FLOOR * jitter.uniform(1.0, 2.0))
}

/// How lookup attempts are spaced (§6.2). The defaults are IPA's; tests shrink them.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupBackoff {
    /// `lookup_interval`: the shortest wait, and the lower bound of every draw.
    pub interval: Duration,
    /// The cap of the exponential upper bound (60 s).
    pub max: Duration,
    /// Extra sleeps after the 1st, 2nd, 3rd… 409; the last repeats (5, 10, 30 s).
    pub conflict_sleeps: Vec<Duration>,
}

impl LookupBackoff {
    /// IPA's policy for a given `lookup_interval` in seconds.
    pub fn ipa(lookup_interval: u64) -> Self {
        Self {
            interval: Duration::from_secs(lookup_interval),
            max: Duration::from_secs(60),
            conflict_sleeps: [5, 10, 30].into_iter().map(Duration::from_secs).collect(),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based):
    /// `U[interval, min(max, max(interval, 2^(attempt−1)))]`.
    pub fn delay(&self, attempt: u32, jitter: &mut impl Jitter) -> Duration {
        let low = self.interval.as_secs_f64();
        let exp = 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
        let high = self.max.as_secs_f64().min(low.max(exp)).max(low);
        secs(jitter.uniform(low, high))
    }

    /// The extra sleep before the normal back-off after the `conflicts`-th 409 (1-based).
    pub fn conflict_sleep(&self, conflicts: u32) -> Duration {
        let index = conflicts.saturating_sub(1) as usize;
        self.conflict_sleeps
            .get(index)
            .or(self.conflict_sleeps.last())
            .copied()
            .unwrap_or_default()
    }
}

/// How inspection POSTs are retried (§7). The defaults are IPA's; tests shrink them.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionRetry {
    /// Attempts in all (5).
    pub attempts: u32,
    /// The base of `base × 2^(n−1)` (1.5 s).
    pub base: Duration,
    /// The clamp's lower end (5 s).
    pub min: Duration,
    /// The clamp's upper end (30 s).
    pub max: Duration,
}

impl Default for InspectionRetry {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(1500),
            min: Duration::from_secs(5),
            max: Duration::from_secs(30),
        }
    }
}

impl InspectionRetry {
    /// The wait after failed attempt number `attempt` (1-based): `base × 2^(n−1)`
    /// clamped to `[min, max]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let raw = self.base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
        secs(raw.clamp(
            self.min.as_secs_f64(),
            self.max.as_secs_f64().max(self.min.as_secs_f64()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    #[test]
    fn heartbeat_interval_spans_point_three_to_point_six() {
        let mut low = FixedJitter::new([0.0]);
        let mut high = FixedJitter::new([1.0]);
        let mut mid = FixedJitter::new([0.5]);
        assert_eq!(heartbeat_interval(300.0, &mut low), s(90.0));
        assert_eq!(heartbeat_interval(300.0, &mut high), s(180.0));
        assert_eq!(heartbeat_interval(20.0, &mut mid), s(9.0));
    }

    #[test]
    fn heartbeat_error_interval_is_five_to_ten_seconds() {
        assert_eq!(
            heartbeat_error_interval(&mut FixedJitter::new([0.0])),
            s(5.0)
        );
        assert_eq!(
            heartbeat_error_interval(&mut FixedJitter::new([1.0])),
            s(10.0)
        );
        for _ in 0..100 {
            let d = heartbeat_error_interval(&mut ThreadJitter);
            assert!(d >= s(5.0) && d <= s(10.0), "{d:?}");
            let d = heartbeat_interval(300.0, &mut ThreadJitter);
            assert!(d >= s(90.0) && d <= s(180.0), "{d:?}");
        }
    }

    #[test]
    fn lookup_backoff_grows_exponentially_and_caps_at_sixty() {
        let policy = LookupBackoff::ipa(1);
        let mut top = FixedJitter::new([1.0]);
        let highs: Vec<Duration> = (1..=8).map(|n| policy.delay(n, &mut top)).collect();
        assert_eq!(
            highs,
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0].map(s).to_vec()
        );
        let mut bottom = FixedJitter::new([0.0]);
        assert_eq!(policy.delay(7, &mut bottom), s(1.0));
        // lookup_interval raises the floor and the first upper bound.
        let policy = LookupBackoff::ipa(10);
        assert_eq!(policy.delay(1, &mut FixedJitter::new([1.0])), s(10.0));
        assert_eq!(policy.delay(5, &mut FixedJitter::new([1.0])), s(16.0));
        assert_eq!(policy.delay(5, &mut FixedJitter::new([0.5])), s(13.0));
        // Large attempt numbers do not overflow.
        assert_eq!(
            policy.delay(u32::MAX, &mut FixedJitter::new([1.0])),
            s(60.0)
        );
    }

    #[test]
    fn lookup_conflict_sleeps_are_five_ten_thirty_then_thirty() {
        let policy = LookupBackoff::ipa(1);
        let sleeps: Vec<Duration> = (1..=5).map(|n| policy.conflict_sleep(n)).collect();
        assert_eq!(sleeps, [5.0, 10.0, 30.0, 30.0, 30.0].map(s).to_vec());
    }

    #[test]
    fn inspection_backoff_is_clamped_between_five_and_thirty() {
        let policy = InspectionRetry::default();
        let delays: Vec<Duration> = (1..=6).map(|n| policy.delay(n)).collect();
        assert_eq!(delays, [5.0, 5.0, 6.0, 12.0, 24.0, 30.0].map(s).to_vec());
        assert_eq!(policy.attempts, 5);
    }

    #[test]
    fn fixed_jitter_takes_fractions_in_turn() {
        let mut jitter = FixedJitter::new([0.0, 1.0]);
        assert_eq!(jitter.uniform(2.0, 4.0), 2.0);
        assert_eq!(jitter.uniform(2.0, 4.0), 4.0);
        assert_eq!(jitter.uniform(2.0, 4.0), 4.0);
        assert_eq!(ThreadJitter.uniform(3.0, 3.0), 3.0);
    }
}
