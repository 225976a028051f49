//! Per-leg media state: everything the relay needs to know about one RTP
//! stream pair towards one endpoint.
//!
//! A leg owns: its negotiated [`LegParams`], the RTP and RTCP [`Latch`]es
//! and the resulting destinations, the [`StreamRewriter`] of the stream *we
//! send to it* (so its far end sees one SSRC and continuous sequence numbers
//! and timestamps whichever leg feeds it, RFC 3550 §5.1, §8.2), reception
//! statistics of what it sends us (RFC 3550 A.1, A.3, A.8) restarted on an
//! SSRC change, its RFC 4733 [`DtmfDetector`], its counters and its
//! inactivity timer. It does not own the bridge (the engine pairs legs) nor
//! sockets (the edge binds them).
//!
//! Inactivity timer:
//!
//! ```text
//!  armed(deadline = last RTP + timeout) ──deadline──► fired (RtpTimeout once)
//!     ▲   (timeout = hold_timeout unless sendrecv)            │
//!     └──────────── RTP received / UpdateLeg ◄────────────────┘
//! ```

use crate::config::MediaConfig;
use crate::latch::Latch;
use carillon_codec::Codec;
use carillon_mediactl::{AudioCodec, LegParams, LegStats, SessionId};
use carillon_rtp::{DtmfDetector, ReceiveStats, Ssrc, StreamRewriter};
use std::net::SocketAddr;
use std::time::Instant;

/// RTP clock rate of every codec a leg can carry today (G.711, RFC 4733 at 8 kHz).
pub const CLOCK_RATE: u32 = 8000;
/// Nanoseconds per RTP timestamp unit at [`CLOCK_RATE`].
const NANOS_PER_UNIT: u64 = 1_000_000_000 / CLOCK_RATE as u64;

/// The carillon-codec codec of a negotiated audio codec.
pub fn codec_of(codec: AudioCodec) -> Codec {
    match codec {
        AudioCodec::Pcmu => Codec::Pcmu,
        AudioCodec::Pcma => Codec::Pcma,
    }
}

/// An SDP address we can send to (not 0.0.0.0 / port 0, RFC 3264 §8.4 hold).
pub fn usable(addr: Option<SocketAddr>) -> Option<SocketAddr> {
    addr.filter(|a| !a.ip().is_unspecified() && a.port() != 0)
}

/// Media state of an open (bound) leg.
#[derive(Debug, Clone)]
pub struct LegMedia {
    pub rtp_latch: Latch,
    pub rtcp_latch: Latch,
    /// The stream we send towards this leg.
    pub rewriter: StreamRewriter,
    /// Reception statistics of the current source of this leg.
    rx: Option<(Ssrc, ReceiveStats)>,
    /// Loss of earlier sources of this leg.
    lost_before: i64,
    pub counters: LegStats,
    pub dtmf: DtmfDetector,
    pub last_activity: Instant,
    pub timed_out: bool,
    /// The flow from this leg forwarded by the kernel, if any.
    pub offload: Option<crate::offload::Offloaded>,
    /// Origin of arrival times in RTP units (for jitter, RFC 3550 A.8).
    epoch: Instant,
    /// The player feeding this leg instead of the relay (`Play`).
    pub player: Option<Box<crate::player::Player>>,
}

impl LegMedia {
    /// Fresh state for a leg bound at `now`, sending as `output_ssrc`.
    pub fn new(now: Instant, output_ssrc: Ssrc, config: &MediaConfig) -> Self {
        LegMedia {
            rtp_latch: Latch::new(config.relatch_packets),
            rtcp_latch: Latch::new(config.relatch_packets),
            rewriter: StreamRewriter::new(output_ssrc, CLOCK_RATE),
            rx: None,
            lost_before: 0,
            counters: LegStats::default(),
            dtmf: DtmfDetector::new(CLOCK_RATE),
            last_activity: now,
            timed_out: false,
            offload: None,
            epoch: now,
            player: None,
        }
    }

    /// Where RTP for this leg goes: the latched source, else the SDP address.
    pub fn rtp_destination(&self, params: &LegParams) -> Option<SocketAddr> {
        let sdp = usable(params.remote);
        if params.latch {
            self.rtp_latch.remote().or(sdp)
        } else {
            sdp
        }
    }

    /// Where RTCP for this leg goes: the latched RTCP source, else RTP + 1.
    pub fn rtcp_destination(&self, params: &LegParams) -> Option<SocketAddr> {
        if params.latch {
            if let Some(remote) = self.rtcp_latch.remote() {
                return Some(remote);
            }
        }
        let rtp = self.rtp_destination(params)?;
        let port = rtp.port().checked_add(1)?;
        Some(SocketAddr::new(rtp.ip(), port))
    }

    /// Records one accepted RTP packet of `len` bytes; true if it re-armed
    /// an inactivity timer that had fired.
    pub fn record_rtp(&mut self, now: Instant, ssrc: Ssrc, seq: u16, ts: u32, len: usize) -> bool {
        let rearmed = self.timed_out;
        self.last_activity = now;
        self.timed_out = false;
        self.counters.packets_in += 1;
        self.counters.bytes_in += len as u64;
        let stats = match &mut self.rx {
            Some((current, stats)) if *current == ssrc => stats,
            rx => {
                if let Some((_, old)) = rx.as_ref() {
                    self.lost_before += old.cumulative_lost();
                }
                &mut rx.insert((ssrc, ReceiveStats::new(CLOCK_RATE))).1
            }
        };
        // Arrival in RTP units with 64-bit arithmetic (the 128-bit division
        // of `ReceiveStats::handle_packet` is a third of the relay path);
        // only the value modulo 2^32 matters, like RTP timestamps.
        let nanos = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        stats.handle_packet_at((nanos / NANOS_PER_UNIT) as u32, seq, ts);
        rearmed
    }

    /// Records one packet sent towards this leg.
    /// Accounts for `packets` RTP packets (`bytes` in all) that the kernel
    /// forwarded from this leg; true if it re-armed a fired inactivity timer.
    /// `ssrc` and `highest_seq` (as received) keep the loss statistics whole.
    pub fn record_offloaded(
        &mut self,
        now: Instant,
        ssrc: Ssrc,
        highest_seq: u16,
        packets: u64,
        bytes: u64,
    ) -> bool {
        let rearmed = self.timed_out;
        self.last_activity = now;
        self.timed_out = false;
        self.counters.packets_in += packets;
        self.counters.packets_in_kernel += packets;
        self.counters.bytes_in += bytes;
        if let Some((current, stats)) = self.rx.as_mut() {
            if *current == ssrc {
                stats.record_elsewhere(packets, highest_seq);
            }
        }
        rearmed
    }

    pub fn record_sent(&mut self, len: usize) {
        self.counters.packets_out += 1;
        self.counters.bytes_out += len as u64;
    }

    /// The leg's counters with loss and jitter filled in.
    pub fn stats(&self) -> LegStats {
        let (current_lost, jitter) = self
            .rx
            .as_ref()
            .map_or((0, 0), |(_, s)| (s.cumulative_lost(), s.jitter()));
        LegStats {
            lost: (self.lost_before + current_lost).max(0) as u64,
            jitter,
            ..self.counters
        }
    }

    /// The inactivity deadline under `params` (hold timeout unless sendrecv).
    pub fn inactivity_deadline(&self, params: &LegParams, config: &MediaConfig) -> Option<Instant> {
        if self.timed_out {
            return None;
        }
        let timeout = if params.send && params.recv {
            config.rtp_timeout
        } else {
            config.hold_timeout
        };
        timeout.map(|t| self.last_activity + t)
    }

    /// The earliest instant this leg needs [`crate::MediaEngine::handle_timeout`].
    pub fn deadline(&self, params: &LegParams, config: &MediaConfig) -> Option<Instant> {
        earliest(
            self.inactivity_deadline(params, config),
            self.dtmf.poll_timeout(),
        )
    }
}

/// The earlier of two optional instants.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Where a leg is in its life.
#[derive(Debug, Clone)]
pub enum LegState {
    /// Ports reserved, waiting for the edge to bind them.
    Binding,
    /// Bound; media flows.
    Open(Box<LegMedia>),
}

/// One leg as the engine stores it.
#[derive(Debug, Clone)]
pub struct Leg {
    pub id: carillon_mediactl::LegId,
    pub session: SessionId,
    pub local_port: u16,
    pub params: LegParams,
    /// Slot index of the bridged leg.
    pub peer: Option<usize>,
    /// DTMF mode, in-band detector and the digit being sent to the leg.
    pub dtmf_tap: crate::dtmf_tap::LegDtmf,
    pub state: LegState,
}

impl Leg {
    /// The media state, when bound.
    pub fn media(&self) -> Option<&LegMedia> {
        match &self.state {
            LegState::Open(m) => Some(m),
            LegState::Binding => None,
        }
    }

    /// The media state, when bound.
    pub fn media_mut(&mut self) -> Option<&mut LegMedia> {
        match &mut self.state {
            LegState::Open(m) => Some(m),
            LegState::Binding => None,
        }
    }

    /// Counters (zero while binding).
    pub fn stats(&self) -> LegStats {
        self.media().map_or_else(LegStats::default, LegMedia::stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn params() -> LegParams {
        LegParams {
            codec: AudioCodec::Pcmu,
            payload_type: 0,
            telephone_event_pt: None,
            ptime: Duration::from_millis(20),
            remote: Some(SocketAddr::from(([192, 0, 2, 1], 4000))),
            latch: true,
            send: true,
            recv: true,
        }
    }

    #[test]
    fn rtcp_goes_to_the_rtp_port_plus_one_until_rtcp_latches() {
        let now = Instant::now();
        let mut m = LegMedia::new(now, Ssrc(1), &MediaConfig::default());
        let p = params();
        assert_eq!(
            m.rtcp_destination(&p),
            Some(SocketAddr::from(([192, 0, 2, 1], 4001)))
        );
        m.rtcp_latch
            .handle_packet(SocketAddr::from(([198, 51, 100, 2], 7777)), 5);
        assert_eq!(
            m.rtcp_destination(&p),
            Some(SocketAddr::from(([198, 51, 100, 2], 7777)))
        );
    }

    #[test]
    fn an_unspecified_sdp_address_is_no_destination() {
        let m = LegMedia::new(Instant::now(), Ssrc(1), &MediaConfig::default());
        let mut p = params();
        p.remote = Some(SocketAddr::from(([0, 0, 0, 0], 4000)));
        assert_eq!(m.rtp_destination(&p), None);
        assert_eq!(m.rtcp_destination(&p), None);
    }

    #[test]
    fn loss_of_an_earlier_source_survives_a_source_change() {
        let now = Instant::now();
        let mut m = LegMedia::new(now, Ssrc(1), &MediaConfig::default());
        for seq in [1u16, 2, 4] {
            m.record_rtp(now, Ssrc(10), seq, u32::from(seq) * 160, 172);
        }
        for seq in [100u16, 101, 103] {
            m.record_rtp(now, Ssrc(11), seq, u32::from(seq) * 160, 172);
        }
        let s = m.stats();
        assert_eq!(s.lost, 2);
        assert_eq!(s.packets_in, 6);
        assert_eq!(s.bytes_in, 6 * 172);
    }

    #[test]
    fn jitter_is_zero_for_regular_arrivals_and_grows_when_they_wobble() {
        let t0 = Instant::now();
        let mut m = LegMedia::new(t0, Ssrc(1), &MediaConfig::default());
        for i in 0..50u16 {
            let at = t0 + Duration::from_millis(20 * u64::from(i));
            m.record_rtp(at, Ssrc(10), i, u32::from(i) * 160, 172);
        }
        assert_eq!(m.stats().jitter, 0);
        for i in 50..100u16 {
            let wobble = if i % 2 == 0 { 0 } else { 10 };
            let at = t0 + Duration::from_millis(20 * u64::from(i) + wobble);
            m.record_rtp(at, Ssrc(10), i, u32::from(i) * 160, 172);
        }
        // |D| alternates around 80 units (10 ms at 8 kHz).
        assert!(
            (60..=80).contains(&m.stats().jitter),
            "{}",
            m.stats().jitter
        );
    }

    #[test]
    fn a_leg_on_hold_uses_the_hold_timeout() {
        let now = Instant::now();
        let config = MediaConfig::default();
        let m = LegMedia::new(now, Ssrc(1), &config);
        let mut p = params();
        assert_eq!(
            m.inactivity_deadline(&p, &config),
            Some(now + MediaConfig::DEFAULT_RTP_TIMEOUT)
        );
        p.send = false;
        assert_eq!(
            m.inactivity_deadline(&p, &config),
            Some(now + MediaConfig::DEFAULT_HOLD_TIMEOUT)
        );
    }
}
