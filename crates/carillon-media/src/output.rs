//! Packets the engine generates itself (players today; generated DTMF and
//! other sources can use the same path), as opposed to relayed packets
//! that leave in the buffer they arrived in.
//!
//! Owns: writing one RTP packet of a generated stream towards a leg
//! ([`write_generated`]: the leg's payload type, its output
//! [`carillon_rtp::StreamRewriter`] so the far end sees one SSRC and
//! continuous sequence numbers and timestamps whoever feeds it, the leg's
//! destination and `send` attribute, its counters) and the queue of such
//! packets for the edge ([`GeneratedQueue`]: one flat byte buffer reused
//! from tick to tick, no allocation per packet).

use crate::leg::LegMedia;
use carillon_mediactl::LegParams;
use carillon_rtp::{RtpPacketBuilder, Ssrc};
use std::net::SocketAddr;
use std::time::Instant;

/// Where one generated packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    /// The leg's RTP port (the socket to send from).
    pub local_port: u16,
    pub destination: SocketAddr,
    start: usize,
    len: usize,
}

/// Generated packets waiting for the edge.
#[derive(Debug, Default, Clone)]
pub struct GeneratedQueue {
    bytes: Vec<u8>,
    packets: Vec<Generated>,
}

impl GeneratedQueue {
    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Calls `send` for every packet in order, then empties the queue
    /// (keeping its buffers).
    pub fn drain(&mut self, mut send: impl FnMut(&Generated, &[u8])) {
        for p in &self.packets {
            if let Some(bytes) = self.bytes.get(p.start..p.start + p.len) {
                send(p, bytes);
            }
        }
        self.packets.clear();
        self.bytes.clear();
    }
}

/// One packet of a generated stream (`ssrc`, `seq`, `timestamp` are the
/// generator's own; the leg's rewriter maps them onto its output stream).
#[derive(Debug, Clone, Copy)]
pub struct GeneratedRtp<'a> {
    pub ssrc: Ssrc,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// `None`: the leg's audio payload type.
    pub payload_type: Option<u8>,
    pub payload: &'a [u8],
}

/// What became of a generated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Queued,
    /// The leg is not `send` or has no destination (hold): the stream
    /// advances silently.
    NotSending,
    Malformed,
}

/// Writes `rtp` for the leg (`params`, `media`, RTP port `local_port`) into
/// `queue`, through the leg's output rewriter.
pub fn write_generated(
    now: Instant,
    params: &LegParams,
    local_port: u16,
    media: &mut LegMedia,
    rtp: GeneratedRtp<'_>,
    queue: &mut GeneratedQueue,
) -> WriteOutcome {
    let destination = match media.rtp_destination(params) {
        Some(d) if params.send => d,
        _ => return WriteOutcome::NotSending,
    };
    let builder = RtpPacketBuilder::new(
        rtp.payload_type.unwrap_or(params.payload_type),
        rtp.seq,
        rtp.timestamp,
        rtp.ssrc,
        rtp.payload,
    )
    .with_marker(rtp.marker);
    let start = queue.bytes.len();
    let len = builder.encoded_len();
    queue.bytes.resize(start + len, 0);
    let written = queue
        .bytes
        .get_mut(start..)
        .map(|buf| builder.write_into(buf).is_ok() && media.rewriter.rewrite(now, buf).is_ok())
        .unwrap_or(false);
    if !written {
        queue.bytes.truncate(start);
        return WriteOutcome::Malformed;
    }
    media.record_sent(len);
    queue.packets.push(Generated {
        local_port,
        destination,
        start,
        len,
    });
    WriteOutcome::Queued
}
