//! Carillon RTP: sans-IO RTP/RTCP packet handling for the media plane.
//!
//! Everything here works on caller-provided byte slices and never allocates
//! on the per-packet path; time comes in as [`std::time::Instant`] or RTP
//! timestamp units.
//!
//! * [`packet`]: zero-copy RTP view [`RtpPacket`], the borrowing
//!   [`RtpPacketBuilder`], and in-place header rewrites (RFC 3550 §5.1).
//! * [`rtcp`]: compound RTCP walking, sender-SSRC rewrite, SR/RR building
//!   (RFC 3550 §6).
//! * [`seq`]: 16-bit sequence number and 32-bit timestamp unwrapping.
//! * [`stats`]: per-source reception statistics (RFC 3550 A.1, A.3, A.8).
//! * [`rewrite`]: keeping one continuous outgoing stream across source
//!   changes (SSRC, sequence and timestamp offsets).
//! * [`dtmf`]: RFC 4733 telephone-events, digit detection and generation.
//!
//! There is no jitter buffer yet.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod dtmf;
pub mod packet;
pub mod rewrite;
pub mod rtcp;
pub mod seq;
pub mod stats;

pub use dtmf::{DtmfDetector, DtmfDigit, DtmfError, DtmfGenerator, TelephoneEvent};
pub use packet::{
    set_marker, set_payload_type, set_seq, set_ssrc, set_timestamp, Extension, RtpError, RtpPacket,
    RtpPacketBuilder,
};
pub use rewrite::{Rewritten, StreamRewriter};
pub use rtcp::{
    ReceiverReport, ReportBlock, RtcpError, RtcpPacket, RtcpPacketType, SdesCname, SenderInfo,
    SenderReport,
};
pub use seq::{SeqUnwrapper, TimestampUnwrapper};
pub use stats::{IntervalLoss, ReceiveStats, SeqStatus};

/// RTP synchronisation source identifier (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl std::fmt::Display for Ssrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl From<u32> for Ssrc {
    fn from(value: u32) -> Self {
        Ssrc(value)
    }
}

/// The RTP version this crate speaks.
pub const RTP_VERSION: u8 = 2;

/// Reads a big-endian u16 at `at`, if the slice is long enough.
#[inline]
pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Reads a big-endian u32 at `at`, if the slice is long enough.
#[inline]
pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Writes a big-endian u16 at `at`; false if the slice is too short.
#[inline]
pub(crate) fn write_u16(buf: &mut [u8], at: usize, value: u16) -> bool {
    match at.checked_add(2).and_then(|end| buf.get_mut(at..end)) {
        Some(dst) => {
            dst.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Writes a big-endian u32 at `at`; false if the slice is too short.
#[inline]
pub(crate) fn write_u32(buf: &mut [u8], at: usize, value: u32) -> bool {
    match at.checked_add(4).and_then(|end| buf.get_mut(at..end)) {
        Some(dst) => {
            dst.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}
