//! Keeping one continuous outgoing RTP stream when the incoming source
//! changes (RFC 3550 §5.1, §8.2 as seen by a relay / B2BUA media leg).
//!
//! Owns the output SSRC and the sequence-number and timestamp offsets of the
//! current (and the previous) input source. When a new SSRC appears — a
//! transfer, a re-INVITE to another media server, a prompt player taking
//! over — the far end keeps seeing the same SSRC, a sequence number one past
//! the last one it got, and a timestamp advanced by the real time elapsed,
//! with the marker bit set to flag the discontinuity to its jitter buffer.
//! Late packets of the previous source still map through its old offsets.
//! It does not own payload conversion or the decision to forward a packet.
//!
//! ```text
//!   source A (ssrc a) ──► offsets(a) ──┐
//!                                      ├──► ssrc OUT, seq/ts continuous
//!   source B (ssrc b) ──► offsets(b) ──┘    (first packet of B: marker set)
//! ```

use crate::packet::{rewrite_header, set_marker, RtpError, RtpPacket};
use crate::rtcp::{rewrite_sender_ssrc, RtcpError};
use crate::Ssrc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SourceMapping {
    input_ssrc: Ssrc,
    seq_offset: u16,
    ts_offset: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LastOutput {
    seq: u16,
    timestamp: u32,
    at: Instant,
}

/// What [`StreamRewriter::rewrite`] wrote into the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq: u16,
    pub timestamp: u32,
    /// This packet is the first of a new input source (marker was set).
    pub source_changed: bool,
}

/// Rewrites SSRC, sequence number and timestamp of one outgoing stream.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    output_ssrc: Ssrc,
    clock_rate: u32,
    initial: Option<(u16, u32)>,
    current: Option<SourceMapping>,
    previous: Option<SourceMapping>,
    last: Option<LastOutput>,
}

impl StreamRewriter {
    /// A rewriter sending as `output_ssrc`; the first source passes its
    /// sequence numbers and timestamps through unchanged.
    pub fn new(output_ssrc: Ssrc, clock_rate: u32) -> Self {
        StreamRewriter {
            output_ssrc,
            clock_rate,
            initial: None,
            current: None,
            previous: None,
            last: None,
        }
    }

    /// Starts the output at the given sequence number and timestamp
    /// (RFC 3550 recommends random initial values; pass them from a seeded RNG).
    pub fn with_initial(mut self, seq: u16, timestamp: u32) -> Self {
        self.initial = Some((seq, timestamp));
        self
    }

    /// The SSRC the far end sees.
    pub fn output_ssrc(&self) -> Ssrc {
        self.output_ssrc
    }

    /// The input SSRC currently mapped.
    pub fn current_source(&self) -> Option<Ssrc> {
        self.current.map(|m| m.input_ssrc)
    }

    /// The sequence and timestamp offsets of `ssrc` if it is the current
    /// source (what a kernel fast path must add to stay consistent).
    pub fn offsets_for(&self, ssrc: Ssrc) -> Option<(u16, u32)> {
        self.current
            .filter(|m| m.input_ssrc == ssrc)
            .map(|m| (m.seq_offset, m.ts_offset))
    }

    /// Records that a packet with `seq` and `timestamp` was sent at `now`
    /// by someone else on this stream's behalf (the kernel fast path), so a
    /// later source change continues after it.
    pub fn note_output(&mut self, now: Instant, seq: u16, timestamp: u32) {
        let newer = match self.last {
            None => true,
            Some(last) => (seq.wrapping_sub(last.seq) as i16) > 0,
        };
        if newer {
            self.last = Some(LastOutput {
                seq,
                timestamp,
                at: now,
            });
        }
    }

    /// Forgets the input sources: the next packet, from whichever source,
    /// continues the output stream (sequence + 1, timestamp advanced by the
    /// time elapsed, marker set), even from a source seen before. For an
    /// output that switches between a relayed source and a generated one
    /// (a prompt player) and back.
    pub fn forget_sources(&mut self) {
        self.current = None;
        self.previous = None;
    }

    /// Rewrites the RTP packet in `packet` (received at `now`) in place.
    pub fn rewrite(&mut self, now: Instant, packet: &mut [u8]) -> Result<Rewritten, RtpError> {
        let (ssrc, in_seq, in_ts) = {
            let p = RtpPacket::parse(packet)?;
            (p.ssrc(), p.sequence_number(), p.timestamp())
        };
        let mut source_changed = false;
        let mapping = match (self.current, self.previous) {
            (Some(m), _) if m.input_ssrc == ssrc => m,
            (_, Some(m)) if m.input_ssrc == ssrc => m,
            _ => {
                let fresh = self.map_new_source(now, ssrc, in_seq, in_ts);
                source_changed = self.last.is_some();
                self.previous = self.current;
                self.current = Some(fresh);
                fresh
            }
        };
        let seq = in_seq.wrapping_add(mapping.seq_offset);
        let timestamp = in_ts.wrapping_add(mapping.ts_offset);
        rewrite_header(packet, self.output_ssrc, seq, timestamp)?;
        if source_changed {
            set_marker(packet, true)?;
        }
        self.note_output(now, seq, timestamp);
        Ok(Rewritten {
            seq,
            timestamp,
            source_changed,
        })
    }

    fn map_new_source(&self, now: Instant, ssrc: Ssrc, in_seq: u16, in_ts: u32) -> SourceMapping {
        let (target_seq, target_ts) = match self.last {
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                let units =
                    (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
                (
                    last.seq.wrapping_add(1),
                    last.timestamp.wrapping_add(units.max(1)),
                )
            }
            None => self.initial.unwrap_or((in_seq, in_ts)),
        };
        SourceMapping {
            input_ssrc: ssrc,
            seq_offset: target_seq.wrapping_sub(in_seq),
            ts_offset: target_ts.wrapping_sub(in_ts),
        }
    }

    /// Rewrites the sender SSRC of an RTCP compound packet of this stream.
    pub fn rewrite_rtcp(&self, packet: &mut [u8]) -> Result<usize, RtcpError> {
        rewrite_sender_ssrc(packet, self.output_ssrc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::RtpPacketBuilder;
    use std::time::Duration;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        let mut buf = vec![0u8; 172];
        RtpPacketBuilder::new(0, seq, ts, Ssrc(ssrc), &[0xFF; 160])
            .write_into(&mut buf)
            .unwrap();
        buf
    }

    fn fields(buf: &[u8]) -> (Ssrc, u16, u32, bool) {
        let p = RtpPacket::parse(buf).unwrap();
        (p.ssrc(), p.sequence_number(), p.timestamp(), p.marker())
    }

    #[test]
    fn after_forget_sources_a_source_seen_before_continues_the_stream() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(Ssrc(0x1111), 8000);
        let mut p = packet(0xAAAA, 500, 8000);
        r.rewrite(t0, &mut p).unwrap();
        r.forget_sources();
        let mut g = packet(0xBBBB, 7, 70);
        r.rewrite(t0 + Duration::from_millis(20), &mut g).unwrap();
        assert_eq!(fields(&g), (Ssrc(0x1111), 501, 8160, true));
        r.forget_sources();
        // A's next packet would map through its old offsets; forgotten, it
        // continues after the generated one.
        let mut p = packet(0xAAAA, 501, 8160);
        r.rewrite(t0 + Duration::from_millis(40), &mut p).unwrap();
        assert_eq!(fields(&p), (Ssrc(0x1111), 502, 8320, true));
    }

    #[test]
    fn the_first_source_passes_through_under_the_output_ssrc() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(Ssrc(0x1111), 8000);
        let mut p = packet(0xAAAA, 500, 8000);
        let out = r.rewrite(t0, &mut p).unwrap();
        assert!(!out.source_changed);
        assert_eq!(fields(&p), (Ssrc(0x1111), 500, 8000, false));
    }

    #[test]
    fn a_new_source_continues_sequence_and_timestamp() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(Ssrc(0x1111), 8000);
        for i in 0..3u16 {
            let mut p = packet(0xAAAA, 65534u16.wrapping_add(i), 1000 + u32::from(i) * 160);
            r.rewrite(t0 + Duration::from_millis(20 * u64::from(i)), &mut p)
                .unwrap();
        }
        // Last output: seq 0, ts 1320 at 40 ms. New source 60 ms later.
        let mut p = packet(0xBBBB, 7, 999_999);
        let out = r.rewrite(t0 + Duration::from_millis(100), &mut p).unwrap();
        assert!(out.source_changed);
        assert_eq!(fields(&p), (Ssrc(0x1111), 1, 1320 + 480, true));
        let mut p = packet(0xBBBB, 8, 999_999 + 160);
        r.rewrite(t0 + Duration::from_millis(120), &mut p).unwrap();
        assert_eq!(fields(&p), (Ssrc(0x1111), 2, 1320 + 480 + 160, false));
        assert_eq!(r.current_source(), Some(Ssrc(0xBBBB)));
    }

    #[test]
    fn after_forget_sources_a_known_source_continues_after_the_last_packet_sent() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(Ssrc(0x1111), 8000);
        let mut a = packet(0xAAAA, 10, 1600);
        r.rewrite(t0, &mut a).unwrap();
        // A generated stream takes over for two packets, then hands back.
        for (i, seq) in [(1u64, 500u16), (2, 501)] {
            let mut g = packet(0x4444, seq, 0);
            r.rewrite(t0 + Duration::from_millis(20 * i), &mut g)
                .unwrap();
        }
        r.forget_sources();
        // A's next packet (its seq 13: two of its packets were muted).
        let mut a = packet(0xAAAA, 13, 1600 + 3 * 160);
        let out = r.rewrite(t0 + Duration::from_millis(60), &mut a).unwrap();
        assert!(out.source_changed);
        assert_eq!(
            fields(&a).1,
            13,
            "one past the generated packets (10, 11, 12)"
        );
    }

    #[test]
    fn a_late_packet_of_the_previous_source_keeps_its_old_mapping() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(Ssrc(1), 8000);
        let mut a = packet(0xA, 10, 0);
        r.rewrite(t0, &mut a).unwrap();
        let mut b = packet(0xB, 77, 5000);
        r.rewrite(t0 + Duration::from_millis(20), &mut b).unwrap();
        let mut late = packet(0xA, 9, 0);
        let out = r
            .rewrite(t0 + Duration::from_millis(21), &mut late)
            .unwrap();
        assert_eq!(out.seq, 9);
        assert!(!out.source_changed);
        assert_eq!(r.current_source(), Some(Ssrc(0xB)));
        let mut next_b = packet(0xB, 78, 5160);
        assert_eq!(
            r.rewrite(t0 + Duration::from_millis(40), &mut next_b)
                .unwrap()
                .seq,
            12
        );
    }

    #[test]
    fn initial_values_offset_the_first_source() {
        let mut r = StreamRewriter::new(Ssrc(1), 8000).with_initial(40000, 7);
        let mut p = packet(0xA, 3, 100);
        r.rewrite(Instant::now(), &mut p).unwrap();
        assert_eq!(fields(&p), (Ssrc(1), 40000, 7, false));
    }

    #[test]
    fn a_non_rtp_buffer_is_refused_untouched() {
        let mut r = StreamRewriter::new(Ssrc(1), 8000);
        let mut junk = [0u8; 20];
        assert!(r.rewrite(Instant::now(), &mut junk).is_err());
        assert_eq!(junk, [0u8; 20]);
        assert_eq!(r.current_source(), None);
    }
}
