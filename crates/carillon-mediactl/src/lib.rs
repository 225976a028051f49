//! `carillon-mediactl`: the only thing the switch and the media plane share
//! (ARCHITECTURE.md principle 3). The switch sends [`MediaCommand`]s and
//! receives [`MediaEvent`]s; neither side knows the other's types, so media
//! could move to its own process (like rtpengine) without touching call
//! logic. Plain data, no behaviour.
//!
//! Ports: the switch picks each leg's local RTP port from the configured
//! range (so it can write its SDP answer at once); the media plane binds it
//! and reports `LegOpened` or `OpenFailed`. RTCP uses port + 1.

use std::net::SocketAddr;
use std::time::Duration;

/// One call's media: all legs of a call live in one session on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

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

/// Per-leg counters reported when a leg closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lost: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8).
    pub jitter: u32,
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
