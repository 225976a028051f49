//! `carillon-mediactl`: the only thing the switch and the media plane share
//! (ARCHITECTURE.md principle 3). The switch sends [`MediaCommand`]s and
//! receives [`MediaEvent`]s; neither side knows the other's types, so media
//! could move to its own process (like rtpengine) without touching call
//! logic. Plain data, no behaviour (besides the one log line both sides
//! may write, [`log_leg_closed`]).
//!
//! Ports: the switch picks each leg's local RTP port from the configured
//! range (so it can write its SDP answer at once); the media plane binds it
//! and reports `LegOpened` or `OpenFailed`. RTCP uses port + 1.

use std::net::SocketAddr;
use std::time::Duration;

/// One call's media: all legs of a call live in one session on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The media worker (of `workers`) that owns this session. The media
    /// runtime routes every command of the session there, and the switch
    /// gives the session RTP ports only from that worker's share of the
    /// range, so a worker can keep released sockets open for its own next
    /// calls (see [`port_partition`]). Sequential ids spread evenly.
    pub fn worker(self, workers: usize) -> usize {
        (mix(self.0) % workers.max(1) as u64) as usize
    }
}

/// The worker (of `workers`) whose share of the RTP range holds the pair
/// starting at even port `rtp_port`: pairs are dealt round-robin, so every
/// worker's share spans the whole range.
pub fn port_partition(rtp_port: u16, workers: usize) -> usize {
    usize::from(rtp_port / 2) % workers.max(1)
}

/// splitmix64 finaliser: spreads sequential ids (and seeds) evenly.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One leg (one RTP stream pair towards one endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// Audio codec of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

/// What was negotiated for a leg (from SDP offer/answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegParams {
    pub codec: AudioCodec,
    /// Payload type the far end uses for `codec`.
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    pub ptime: Duration,
    /// Where to send RTP, from SDP; `None` until known (or on hold with
    /// 0.0.0.0). With `latch`, the address media really arrives from wins.
    pub remote: Option<SocketAddr>,
    /// Symmetric RTP (learn the source address: phones behind NAT).
    pub latch: bool,
    /// Whether the switch sends to / accepts from this leg (hold: sendonly,
    /// inactive).
    pub send: bool,
    pub recv: bool,
}

/// Switch → media.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Bind `local_port` (RTP) and `local_port + 1` (RTCP) for a new leg.
    OpenLeg {
        session: SessionId,
        leg: LegId,
        local_port: u16,
        params: LegParams,
    },
    /// Re-INVITE/UPDATE: new remote, direction or codec.
    UpdateLeg {
        session: SessionId,
        leg: LegId,
        params: LegParams,
    },
    /// Relay between two legs of a session (transcoding if codecs differ).
    Bridge {
        session: SessionId,
        a: LegId,
        b: LegId,
    },
    /// Stop relaying between them (the legs stay open).
    Unbridge {
        session: SessionId,
        a: LegId,
        b: LegId,
    },
    /// Close one leg and release its ports.
    CloseLeg { session: SessionId, leg: LegId },
    /// Close every leg of the session.
    CloseSession { session: SessionId },
}

impl MediaCommand {
    /// The session the command is for (which decides its worker).
    pub fn session(&self) -> SessionId {
        match self {
            MediaCommand::OpenLeg { session, .. }
            | MediaCommand::UpdateLeg { session, .. }
            | MediaCommand::Bridge { session, .. }
            | MediaCommand::Unbridge { session, .. }
            | MediaCommand::CloseLeg { session, .. }
            | MediaCommand::CloseSession { session } => *session,
        }
    }
}

/// Per-leg counters reported when a leg closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lost: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8), of the
    /// packets seen in userspace.
    pub jitter: u32,
    /// Of `packets_in`, those the kernel fast path forwarded.
    pub packets_in_kernel: u64,
}

/// Media → switch.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    LegOpened {
        session: SessionId,
        leg: LegId,
        local: SocketAddr,
    },
    OpenFailed {
        session: SessionId,
        leg: LegId,
        reason: String,
    },
    /// No RTP received for the configured inactivity timeout.
    RtpTimeout { session: SessionId, leg: LegId },
    /// An RFC 4733 digit ended.
    Dtmf {
        session: SessionId,
        leg: LegId,
        digit: char,
        duration: Duration,
    },
    LegClosed {
        session: SessionId,
        leg: LegId,
        stats: LegStats,
    },
}

/// The `media leg closed` log line (one per leg, with its counters),
/// written by whichever side receives the [`MediaEvent::LegClosed`]: the
/// media worker itself when it does not report closes to the switch.
pub fn log_leg_closed(session: SessionId, leg: LegId, stats: &LegStats) {
    tracing::info!(
        session = session.0,
        leg = leg.0,
        packets_in = stats.packets_in,
        packets_out = stats.packets_out,
        packets_in_kernel = stats.packets_in_kernel,
        lost = stats.lost,
        jitter = stats.jitter,
        "media leg closed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_port_pairs_are_dealt_to_every_worker_in_turn() {
        let shares: Vec<usize> = (0..6u16)
            .map(|i| port_partition(10000 + 2 * i, 3))
            .collect();
        assert_eq!(shares, [2, 0, 1, 2, 0, 1]);
        assert_eq!(port_partition(10000, 0), 0, "zero workers count as one");
    }

    #[test]
    fn a_session_always_maps_to_the_same_worker_in_range() {
        for s in 0..1000 {
            let w = SessionId(s).worker(3);
            assert!(w < 3);
            assert_eq!(SessionId(s).worker(3), w);
        }
        assert_eq!(SessionId(5).worker(0), 0);
    }
}
