//! Per-trunk call limits: concurrent calls (`max_calls`) and call attempts
//! per second (`max_cps`).
//!
//! The rate limit is a token bucket of `max_cps` tokens refilled at
//! `max_cps` per second, written as its equivalent GCRA form (a
//! "theoretical arrival time" that moves `1/max_cps` s forward per admitted
//! call, admitted while it is at most one second ahead of now). It needs
//! only an `Instant`, so a virtual clock drives it exactly, with no
//! floating point. Owns counting only; what to answer (503) is the
//! caller's.

use std::time::{Duration, Instant};

/// `max_cps` as a GCRA bucket.
#[derive(Debug, Clone)]
pub struct RateBucket {
    /// Time one call "costs": 1 s / max_cps.
    cost: Duration,
    /// How far the theoretical arrival time may run ahead of now while
    /// still admitting a call: (burst − 1) × cost, burst = max_cps.
    tolerance: Duration,
    tat: Option<Instant>,
}

impl RateBucket {
    /// A bucket admitting `per_second` calls per second, in bursts of up to
    /// `per_second` (a full bucket). `per_second` of 0 is taken as 1.
    pub fn new(per_second: u32) -> RateBucket {
        let per_second = per_second.max(1);
        let cost = Duration::from_secs(1) / per_second;
        RateBucket {
            cost,
            tolerance: cost.saturating_mul(per_second - 1),
            tat: None,
        }
    }

    fn start(&self, now: Instant) -> Instant {
        match self.tat {
            Some(tat) if tat > now => tat,
            _ => now,
        }
    }

    /// Whether a call would be admitted at `now` (consumes nothing).
    pub fn check(&self, now: Instant) -> bool {
        self.start(now).saturating_duration_since(now) <= self.tolerance
    }

    /// Consumes one token; call only after [`RateBucket::check`] said yes.
    pub fn take(&mut self, now: Instant) {
        self.tat = Some(self.start(now) + self.cost);
    }

    /// When the next call will be admitted (now if it already would be).
    pub fn next_admission(&self, now: Instant) -> Instant {
        let ahead = self.start(now).saturating_duration_since(now);
        now + ahead.saturating_sub(self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(bucket: &mut RateBucket, now: Instant) -> bool {
        let ok = bucket.check(now);
        if ok {
            bucket.take(now);
        }
        ok
    }

    #[test]
    fn a_full_bucket_admits_max_cps_calls_at_once_then_refuses() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(5);
        for _ in 0..5 {
            assert!(admit(&mut b, t0));
        }
        assert!(!admit(&mut b, t0));
        assert_eq!(b.next_admission(t0), t0 + Duration::from_millis(200));
    }

    #[test]
    fn one_token_comes_back_every_one_over_max_cps_seconds() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(4);
        for _ in 0..4 {
            assert!(admit(&mut b, t0));
        }
        let almost = t0 + Duration::from_millis(249);
        assert!(!admit(&mut b, almost));
        let quarter = t0 + Duration::from_millis(250);
        assert!(admit(&mut b, quarter));
        assert!(!admit(&mut b, quarter));
        // After a full idle second the bucket is full again.
        let later = quarter + Duration::from_secs(1);
        for _ in 0..4 {
            assert!(admit(&mut b, later));
        }
        assert!(!admit(&mut b, later));
    }

    #[test]
    fn checking_does_not_consume_a_token() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(1);
        assert!(b.check(t0));
        assert!(b.check(t0));
        assert!(admit(&mut b, t0));
        assert!(!b.check(t0));
    }
}
