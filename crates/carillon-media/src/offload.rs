//! The kernel fast path as the engine sees it: which relayed flows may be
//! forwarded without userspace, and what the kernel reports back.
//!
//! Owns the decision (when a flow is installed, when it must be removed)
//! and the bookkeeping of what the kernel forwarded. It does not own the
//! kernel side: the edge turns [`OffloadRequest`]s into flow-table entries
//! (`carillon-kernelpath`) and feeds the table's counters back through
//! [`crate::MediaEngine::handle_offload_progress`].
//!
//! A flow is one direction of a bridged call: RTP arriving from leg A's
//! latched peer on A's port, for B. It is installed after the userspace
//! relay forwarded a packet of it unchanged in codec, when:
//! * [`crate::MediaConfig::kernel_offload`] is on and every address is IPv4;
//! * A is latched on the packet's source (or does not latch);
//! * B's destination is final: latched, or B does not latch;
//! * the packet is audio (a telephone-event, CN or another SSRC is not
//!   matched by the kernel and keeps coming to userspace, so DTMF detection
//!   and source changes work as before); µ-law ↔ A-law flows carry the
//!   byte map the kernel applies ([`G711Map`]), and packets it cannot map
//!   (CSRCs, an extension, padding) keep coming to userspace.
//!
//! It is removed when anything it was built from may change: an
//! `UpdateLeg` of either leg (hold, new address, codec), a bridge change,
//! closing either leg, or a (re)latch of either leg. A new SSRC from A
//! reinstalls it with the new offsets. A `Play` on B removes it too (B's
//! output is then generated in userspace, see [`crate::player`]); while B
//! plays, what A sends is dropped before any offer, and the first packet
//! relayed after the playback installs the flow again.
//!
//! ```text
//!  none ──relayed in userspace, conditions hold──► Install ──► installed
//!   ▲                                                           │ progress: activity, counters,
//!   └──── Remove ◄── update / bridge / close / relatch ◄────────┘ last seq/ts for the rewriter
//! ```

use std::net::SocketAddrV4;

/// What the edge must do in the kernel's flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadRequest {
    /// Install (or replace) the flow arriving on `flow.local`'s port.
    Install(OffloadFlow),
    /// Remove the flow arriving on `local_port`, if one is installed.
    Remove { local_port: u16 },
}

/// One direction of a relayed call, with the rewriting the kernel applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadFlow {
    /// The latched peer of the receiving leg.
    pub remote: SocketAddrV4,
    /// The receiving leg's address and RTP port.
    pub local: SocketAddrV4,
    /// Where the bridged leg's RTP goes.
    pub destination: SocketAddrV4,
    /// The bridged leg's RTP port.
    pub source_port: u16,
    pub ssrc_in: u32,
    pub ssrc_out: u32,
    pub seq_delta: u16,
    pub ts_delta: u32,
    pub pt_in: u8,
    pub pt_out: u8,
    /// The destination is this host (loopback or the relay's own address).
    pub local_destination: bool,
    /// The payload's G.711 conversion when the legs' codecs differ.
    pub transcode: G711Map,
}

/// A G.711 payload conversion the kernel applies byte by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Map {
    None,
    UlawToAlaw,
    AlawToUlaw,
}

/// The kernel's counters of one installed flow (cumulative since install).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffloadProgress {
    pub packets: u64,
    pub bytes: u64,
    /// Sequence number and timestamp of the last packet the kernel sent.
    pub last_seq: u16,
    pub last_timestamp: u32,
}

/// A leg's installed flow, as the engine remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offloaded {
    pub remote: SocketAddrV4,
    pub ssrc: u32,
    /// What the kernel adds to the sequence number.
    pub seq_delta: u16,
    /// Counters already accounted for.
    pub seen: OffloadProgress,
}
