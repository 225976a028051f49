//! Unwrapping RTP's wrapping counters: 16-bit sequence numbers to `u64`
//! (RFC 3550 §A.1 "extended sequence number") and 32-bit timestamps to `u64`.
//!
//! Owns only the counter arithmetic. Each value is placed in the cycle that
//! puts it closest to the highest value seen so far, so late (reordered)
//! packets from before a wrap land in the previous cycle and never move the
//! highest value back. Validity policy (large jumps, restarts) belongs to
//! [`crate::stats::ReceiveStats`].
//!
//! ```text
//! seq: 65534 65535 0     1     65535(late) 2
//! ext: 65534 65535 65536 65537 65535       65538
//! ```

/// 16-bit RTP sequence number → monotonic extended `u64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// An unwrapper that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends `seq`. The first value becomes `seq` itself (cycle 0); a late
    /// value that would fall before cycle 0 is reported as 0 and ignored.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(seq),
            Some(highest) => {
                let delta = seq.wrapping_sub(highest as u16) as i16;
                match highest.checked_add_signed(i64::from(delta)) {
                    Some(ext) => ext,
                    // Before cycle 0: report 0 and leave the state alone.
                    None => return 0,
                }
            }
        };
        if self.highest.is_none_or_less(ext) {
            self.highest = Some(ext);
        }
        ext
    }

    /// The highest extended value seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

/// 32-bit RTP timestamp → monotonic extended `u64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampUnwrapper {
    highest: Option<u64>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends `timestamp` (same rules as [`SeqUnwrapper::unwrap`]).
    pub fn unwrap(&mut self, timestamp: u32) -> u64 {
        let ext = match self.highest {
            None => u64::from(timestamp),
            Some(highest) => {
                let delta = timestamp.wrapping_sub(highest as u32) as i32;
                match highest.checked_add_signed(i64::from(delta)) {
                    Some(ext) => ext,
                    None => return 0,
                }
            }
        };
        if self.highest.is_none_or_less(ext) {
            self.highest = Some(ext);
        }
        ext
    }

    /// The highest extended value seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

trait NoneOrLess {
    fn is_none_or_less(&self, value: u64) -> bool;
}

impl NoneOrLess for Option<u64> {
    fn is_none_or_less(&self, value: u64) -> bool {
        match self {
            None => true,
            Some(current) => *current < value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_continue_across_the_wrap() {
        let mut u = SeqUnwrapper::new();
        let out: Vec<u64> = [65534u16, 65535, 0, 1]
            .iter()
            .map(|&s| u.unwrap(s))
            .collect();
        assert_eq!(out, vec![65534, 65535, 65536, 65537]);
    }

    #[test]
    fn a_late_packet_from_before_the_wrap_stays_in_the_old_cycle() {
        let mut u = SeqUnwrapper::new();
        for s in [65534u16, 65535, 0, 1] {
            u.unwrap(s);
        }
        assert_eq!(u.unwrap(65533), 65533);
        assert_eq!(u.unwrap(2), 65538);
        assert_eq!(u.highest(), Some(65538));
    }

    #[test]
    fn a_late_packet_before_the_first_cycle_reads_zero_and_changes_nothing() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.unwrap(1), 1);
        assert_eq!(u.unwrap(65535), 0);
        assert_eq!(u.highest(), Some(1));
        assert_eq!(u.unwrap(2), 2);
    }

    #[test]
    fn timestamps_continue_across_the_wrap() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(u32::MAX - 159), u64::from(u32::MAX) - 159);
        assert_eq!(u.unwrap(0), 1 << 32);
        assert_eq!(u.unwrap(160), (1 << 32) + 160);
        assert_eq!(u.unwrap(u32::MAX - 159), u64::from(u32::MAX) - 159);
    }
}
