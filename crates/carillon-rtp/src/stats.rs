//! Per-source reception statistics (RFC 3550 §6.4.1, Appendix A.1, A.3, A.8).
//!
//! Owns, for one SSRC: the extended highest sequence number with wrap
//! counting, sequence validation against large jumps (A.1, without the
//! probation period: the first packet is trusted), packets received and
//! expected, cumulative and per-interval loss (A.3), interarrival jitter
//! (A.8), and duplicate / reordered counts. It does not own RTCP timing or
//! which SSRC a packet belongs to.
//!
//! ```text
//!            ┌──────── seq == bad_seq: restart (A.1) ◄──┐
//!            ▼                                          │
//! (empty) ─first─► tracking ──jump > MAX_DROPOUT──► remember bad_seq = seq+1,
//!                   │  ▲                               packet not counted
//!                   └──┘ in order / reordered / duplicate
//! ```
//!
//! Arrival times come in either as RTP timestamp units (`handle_packet_at`)
//! or as an [`Instant`] that is converted with the clock rate
//! (`handle_packet`). As in the RFC, `received` counts late and duplicate
//! packets too, so duplicates reduce the reported loss; [`ReceiveStats::duplicates`]
//! tells them apart.

use crate::rtcp::ReportBlock;
use crate::Ssrc;
use std::time::{Duration, Instant};

/// A.1: a forward jump of this many or more is not trusted.
pub const MAX_DROPOUT: u16 = 3000;
/// A.1: a backward step of at most this many is a late packet.
pub const MAX_MISORDER: u16 = 100;

/// How one packet's sequence number related to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    /// The first packet of the source (or after a restart).
    First,
    /// Newer than everything before; `skipped` numbers were never seen (yet).
    InOrder { skipped: u16 },
    /// Older than the highest, not seen before.
    Reordered,
    /// Seen before.
    Duplicate,
    /// A large jump; ignored unless the next packet continues from it.
    Rejected,
    /// The previous packet's jump was confirmed; statistics restarted there.
    Restarted,
}

/// Loss over one reporting interval (A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntervalLoss {
    pub expected: u64,
    pub received: u64,
    /// Expected − received; negative with duplicates.
    pub lost: i64,
    /// Loss fraction in 1/256, 0 when nothing was lost.
    pub fraction_lost: u8,
}

#[derive(Debug, Clone, Copy)]
struct Tracking {
    base_ext: u64,
    max_ext: u64,
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    duplicates: u64,
    reordered: u64,
    /// Bit i set: extended sequence `max_ext - i` was received.
    window: u128,
}

impl Tracking {
    fn new(seq: u16) -> Self {
        Tracking {
            base_ext: u64::from(seq),
            max_ext: u64::from(seq),
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            duplicates: 0,
            reordered: 0,
            window: 1,
        }
    }

    fn expected(&self) -> u64 {
        self.max_ext - self.base_ext + 1
    }
}

/// Reception statistics for one source.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    epoch: Option<Instant>,
    tracking: Option<Tracking>,
    last_transit: Option<u32>,
    /// Jitter × 16, as in A.8.
    jitter_q4: u32,
}

impl ReceiveStats {
    /// Statistics for a source with the given RTP clock rate (Hz).
    pub fn new(clock_rate: u32) -> Self {
        ReceiveStats {
            clock_rate,
            epoch: None,
            tracking: None,
            last_transit: None,
            jitter_q4: 0,
        }
    }

    /// Records a packet that arrived at `now`.
    pub fn handle_packet(&mut self, now: Instant, seq: u16, timestamp: u32) -> SeqStatus {
        let epoch = *self.epoch.get_or_insert(now);
        let elapsed = now.saturating_duration_since(epoch);
        let units = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        // Arrival times only matter modulo 2^32, like RTP timestamps.
        self.handle_packet_at(units as u32, seq, timestamp)
    }

    /// Records a packet whose arrival time is given in RTP timestamp units.
    pub fn handle_packet_at(&mut self, arrival: u32, seq: u16, timestamp: u32) -> SeqStatus {
        let status = self.update_seq(seq);
        match status {
            SeqStatus::Rejected | SeqStatus::Duplicate => {}
            _ => self.update_jitter(arrival, timestamp),
        }
        status
    }

    fn update_seq(&mut self, seq: u16) -> SeqStatus {
        let Some(t) = self.tracking.as_mut() else {
            let mut t = Tracking::new(seq);
            t.received = 1;
            self.tracking = Some(t);
            return SeqStatus::First;
        };
        let udelta = seq.wrapping_sub(t.max_ext as u16);
        let status = if udelta == 0 {
            t.duplicates += 1;
            SeqStatus::Duplicate
        } else if udelta < MAX_DROPOUT {
            t.max_ext += u64::from(udelta);
            t.window = if udelta >= 128 { 0 } else { t.window << udelta };
            t.window |= 1;
            t.bad_seq = None;
            SeqStatus::InOrder {
                skipped: udelta - 1,
            }
        } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
            if t.bad_seq == Some(seq) {
                // Two sequential packets after a jump: the source restarted.
                let mut fresh = Tracking::new(seq);
                fresh.received = 1;
                *t = fresh;
                return SeqStatus::Restarted;
            }
            t.bad_seq = Some(seq.wrapping_add(1));
            return SeqStatus::Rejected;
        } else {
            let distance = (t.max_ext as u16).wrapping_sub(seq);
            let known = u64::from(distance) <= t.max_ext - t.base_ext;
            let bit = 1u128 << distance.min(127);
            if known && distance < 128 && t.window & bit != 0 {
                t.duplicates += 1;
                SeqStatus::Duplicate
            } else {
                if distance < 128 {
                    t.window |= bit;
                }
                t.reordered += 1;
                SeqStatus::Reordered
            }
        };
        t.received += 1;
        status
    }

    fn update_jitter(&mut self, arrival: u32, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last) as i32;
            let d = d.unsigned_abs();
            // J += (|D| − J) / 16, kept ×16 with rounding (A.8).
            let j = i64::from(self.jitter_q4);
            let next = j + i64::from(d) - ((j + 8) >> 4);
            self.jitter_q4 = next.clamp(0, i64::from(u32::MAX)) as u32;
        }
        self.last_transit = Some(transit);
    }

    /// Accounts for `packets` packets of this source that were received and
    /// forwarded without passing through this tracker (the kernel fast
    /// path), the newest of them numbered `highest_seq`, so loss stays
    /// `expected - received` over the whole stream. Jitter is not updated.
    pub fn record_elsewhere(&mut self, packets: u64, highest_seq: u16) {
        let Some(t) = self.tracking.as_mut() else {
            return;
        };
        let udelta = highest_seq.wrapping_sub(t.max_ext as u16);
        if udelta != 0 && udelta < 0x8000 {
            t.max_ext += u64::from(udelta);
            t.window = u128::MAX;
            t.bad_seq = None;
        }
        t.received += packets;
    }

    /// Packets counted as received (late and duplicate ones included, as in A.3).
    pub fn packets_received(&self) -> u64 {
        self.tracking.map_or(0, |t| t.received)
    }

    /// Packets expected: extended highest − base + 1.
    pub fn packets_expected(&self) -> u64 {
        self.tracking.map_or(0, |t| t.expected())
    }

    /// Cumulative packets lost (expected − received; negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.packets_expected() as i64 - self.packets_received() as i64
    }

    /// Packets seen more than once.
    pub fn duplicates(&self) -> u64 {
        self.tracking.map_or(0, |t| t.duplicates)
    }

    /// Packets that arrived after a higher sequence number.
    pub fn reordered(&self) -> u64 {
        self.tracking.map_or(0, |t| t.reordered)
    }

    /// Extended highest sequence number (cycles << 16 | seq), as reported in RTCP.
    pub fn extended_highest_seq(&self) -> Option<u32> {
        self.tracking.map(|t| t.max_ext as u32)
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        if self.clock_rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(u64::from(self.jitter()) * 1_000_000_000 / u64::from(self.clock_rate))
    }

    /// Loss since the previous call (A.3); starts the next interval.
    pub fn take_interval(&mut self) -> IntervalLoss {
        let Some(t) = self.tracking.as_mut() else {
            return IntervalLoss::default();
        };
        let expected_now = t.expected();
        let expected = expected_now - t.expected_prior;
        let received = t.received - t.received_prior;
        t.expected_prior = expected_now;
        t.received_prior = t.received;
        let lost = expected as i64 - received as i64;
        let fraction_lost = if expected == 0 || lost <= 0 {
            0
        } else {
            ((lost as u64) * 256 / expected).min(255) as u8
        };
        IntervalLoss {
            expected,
            received,
            lost,
            fraction_lost,
        }
    }

    /// A report block about `source` for an SR/RR; takes the interval.
    /// LSR/DLSR are left 0 for the caller to fill in.
    pub fn report_block(&mut self, source: Ssrc) -> ReportBlock {
        let interval = self.take_interval();
        ReportBlock {
            ssrc: source,
            fraction_lost: interval.fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            extended_highest_seq: self.extended_highest_seq().unwrap_or(0),
            jitter: self.jitter(),
            last_sr: 0,
            delay_since_last_sr: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stats: &mut ReceiveStats, seqs: &[u16]) -> Vec<SeqStatus> {
        seqs.iter()
            .map(|&s| stats.handle_packet_at(u32::from(s) * 160, s, u32::from(s) * 160))
            .collect()
    }

    #[test]
    fn a_gap_counts_as_loss_and_reports_a_fraction() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, &[10, 11, 13, 14]);
        assert_eq!(s.packets_expected(), 5);
        assert_eq!(s.packets_received(), 4);
        assert_eq!(s.cumulative_lost(), 1);
        let interval = s.take_interval();
        assert_eq!(interval.lost, 1);
        assert_eq!(interval.fraction_lost, 51); // 1/5 * 256
        assert_eq!(s.take_interval().fraction_lost, 0);
    }

    #[test]
    fn a_late_packet_fills_the_gap_and_is_counted_as_reordered() {
        let mut s = ReceiveStats::new(8000);
        let st = feed(&mut s, &[1, 2, 4, 3]);
        assert_eq!(
            st,
            vec![
                SeqStatus::First,
                SeqStatus::InOrder { skipped: 0 },
                SeqStatus::InOrder { skipped: 1 },
                SeqStatus::Reordered
            ]
        );
        assert_eq!(s.cumulative_lost(), 0);
        assert_eq!(s.reordered(), 1);
    }

    #[test]
    fn duplicates_are_detected_and_lower_the_loss_as_the_rfc_says() {
        let mut s = ReceiveStats::new(8000);
        let st = feed(&mut s, &[1, 2, 3, 3, 2]);
        assert_eq!(st[3], SeqStatus::Duplicate);
        assert_eq!(st[4], SeqStatus::Duplicate);
        assert_eq!(s.duplicates(), 2);
        assert_eq!(s.cumulative_lost(), -2);
    }

    #[test]
    fn loss_is_counted_across_the_sequence_wrap() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, &[65533, 65534, 1, 2]);
        assert_eq!(s.packets_expected(), 6);
        assert_eq!(s.cumulative_lost(), 2);
        assert_eq!(s.extended_highest_seq(), Some(65536 + 2));
    }

    #[test]
    fn a_single_wild_jump_is_ignored_but_two_in_a_row_restart() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, &[100, 101]);
        assert_eq!(feed(&mut s, &[40000]), vec![SeqStatus::Rejected]);
        assert_eq!(
            feed(&mut s, &[102]),
            vec![SeqStatus::InOrder { skipped: 0 }]
        );
        assert_eq!(s.cumulative_lost(), 0);
        assert_eq!(
            feed(&mut s, &[50000, 50001]),
            vec![SeqStatus::Rejected, SeqStatus::Restarted]
        );
        assert_eq!(s.packets_expected(), 1);
        assert_eq!(s.packets_received(), 1);
    }

    #[test]
    fn constant_transit_time_gives_zero_jitter() {
        let mut s = ReceiveStats::new(8000);
        for i in 0..50u16 {
            s.handle_packet_at(1000 + u32::from(i) * 160, i, u32::from(i) * 160);
        }
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn alternating_delay_converges_to_the_delay_difference() {
        let mut s = ReceiveStats::new(8000);
        for i in 0..500u16 {
            let extra = if i % 2 == 0 { 0 } else { 80 };
            s.handle_packet_at(u32::from(i) * 160 + extra, i, u32::from(i) * 160);
        }
        // |D| is always 80, so J converges to 80 (minus the A.8 rounding).
        assert!((75..=80).contains(&s.jitter()), "{}", s.jitter());
        assert_eq!(
            s.jitter_duration(),
            Duration::from_micros(u64::from(s.jitter()) * 125)
        );
    }

    #[test]
    fn instant_arrivals_are_converted_with_the_clock_rate() {
        let base = Instant::now();
        let mut s = ReceiveStats::new(8000);
        for i in 0..20u16 {
            let at = base + Duration::from_millis(20 * u64::from(i));
            s.handle_packet(at, i, 5000 + u32::from(i) * 160);
        }
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn report_block_carries_the_counters() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, &[1, 3]);
        let b = s.report_block(Ssrc(9));
        assert_eq!(b.ssrc, Ssrc(9));
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.extended_highest_seq, 3);
        assert_eq!(b.fraction_lost, 85);
    }

    #[test]
    fn packets_forwarded_elsewhere_count_as_received_and_move_the_highest() {
        let mut s = ReceiveStats::new(8000);
        s.handle_packet_at(0, 65530, 0);
        s.handle_packet_at(160, 65531, 160);
        // The kernel forwarded 50 more, through a wrap; none was lost.
        s.record_elsewhere(50, 65531u16.wrapping_add(50));
        assert_eq!(s.packets_received(), 52);
        assert_eq!(s.packets_expected(), 52);
        assert_eq!(s.cumulative_lost(), 0);
        // The next packet in userspace is in order, not a jump.
        assert_eq!(
            s.handle_packet_at(9000, 65531u16.wrapping_add(51), 8320),
            SeqStatus::InOrder { skipped: 0 }
        );
        // 10 reported for a stretch of 12 numbers: 2 lost.
        s.record_elsewhere(10, 65531u16.wrapping_add(63));
        assert_eq!(s.cumulative_lost(), 2);
    }
}
