//! RTCP (RFC 3550 §6): walking compound packets, identifying SR, RR, SDES,
//! BYE and APP, reading report blocks, rewriting the sender SSRC in place,
//! and building minimal SR, RR and SDES CNAME packets.
//!
//! Owns the common header (§6.4.1: V=2, P, count, PT, length in words − 1)
//! and the report block layout (§6.4.1). It does not own scheduling
//! (§6.3 interval computation) or feedback formats (RFC 4585); those packets
//! are walked and their sender SSRC rewritten like the others.
//!
//! ```text
//! compound = [SR | RR] [RR ...] SDES [BYE] [APP ...]     (one UDP datagram)
//! every packet: |V=2|P| count |  PT  |  length  | SSRC of sender | ...
//! ```

use crate::{read_u32, write_u16, write_u32, Ssrc, RTP_VERSION};

const HEADER_LEN: usize = 4;
const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;
/// Most report blocks one SR/RR can carry (5-bit count).
pub const MAX_REPORT_BLOCKS: usize = 31;

/// Errors parsing or building RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer bytes than a header or a declared structure needs.
    #[error("RTCP packet too short: {len} bytes, need {needed}")]
    TooShort { len: usize, needed: usize },
    /// The version field is not 2.
    #[error("unsupported RTCP version {version}")]
    BadVersion { version: u8 },
    /// The length field points past the end of the datagram.
    #[error("RTCP length field declares {declared} bytes, only {available} remain")]
    BadLength { declared: usize, available: usize },
    /// More than 31 report blocks.
    #[error("{count} report blocks, at most 31 fit")]
    TooManyReports { count: usize },
    /// An SDES item longer than 255 bytes.
    #[error("SDES item of {len} bytes, at most 255 fit")]
    ItemTooLong { len: usize },
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall { needed: usize, available: usize },
}

/// RTCP packet types (RFC 3550 §12.1 and later registrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpPacketType {
    /// 200
    SenderReport,
    /// 201
    ReceiverReport,
    /// 202
    SourceDescription,
    /// 203
    Bye,
    /// 204
    App,
    /// Anything else (e.g. 205/206 feedback, 207 XR).
    Other(u8),
}

impl RtcpPacketType {
    /// The type for a PT byte.
    pub fn from_u8(pt: u8) -> Self {
        match pt {
            200 => Self::SenderReport,
            201 => Self::ReceiverReport,
            202 => Self::SourceDescription,
            203 => Self::Bye,
            204 => Self::App,
            other => Self::Other(other),
        }
    }

    /// The PT byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::SenderReport => 200,
            Self::ReceiverReport => 201,
            Self::SourceDescription => 202,
            Self::Bye => 203,
            Self::App => 204,
            Self::Other(pt) => pt,
        }
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed; clamped when written).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(buf: &[u8]) -> Option<Self> {
        let word1 = read_u32(buf, 4)?;
        let lost = (word1 & 0x00FF_FFFF) as i32;
        Some(ReportBlock {
            ssrc: Ssrc(read_u32(buf, 0)?),
            fraction_lost: (word1 >> 24) as u8,
            // Sign-extend the 24-bit field.
            cumulative_lost: (lost << 8) >> 8,
            extended_highest_seq: read_u32(buf, 8)?,
            jitter: read_u32(buf, 12)?,
            last_sr: read_u32(buf, 16)?,
            delay_since_last_sr: read_u32(buf, 20)?,
        })
    }

    fn write(&self, out: &mut [u8], at: usize) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        write_u32(out, at, self.ssrc.0);
        write_u32(out, at + 4, u32::from(self.fraction_lost) << 24 | lost);
        write_u32(out, at + 8, self.extended_highest_seq);
        write_u32(out, at + 12, self.jitter);
        write_u32(out, at + 16, self.last_sr);
        write_u32(out, at + 20, self.delay_since_last_sr);
    }
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp.
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the NTP time.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// A zero-copy view of one packet inside a compound RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> RtcpPacket<'a> {
    /// Walks a compound datagram packet by packet. After an error the
    /// iterator yields nothing more.
    pub fn iter_compound(buf: &'a [u8]) -> CompoundIter<'a> {
        CompoundIter { rest: buf }
    }

    /// Parses the first packet of `buf`; returns it and the bytes after it.
    pub fn parse(buf: &'a [u8]) -> Result<(Self, &'a [u8]), RtcpError> {
        let len = packet_len(buf)?;
        let (packet, rest) = buf.split_at(len);
        Ok((RtcpPacket { buf: packet }, rest))
    }

    /// The packet's bytes (header included).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The packet type.
    pub fn packet_type(&self) -> RtcpPacketType {
        RtcpPacketType::from_u8(self.buf.get(1).copied().unwrap_or(0))
    }

    /// The 5-bit count field (report blocks, SDES chunks, BYE sources, APP subtype).
    pub fn count(&self) -> usize {
        usize::from(self.buf.first().copied().unwrap_or(0) & 0x1F)
    }

    /// The P bit.
    pub fn has_padding(&self) -> bool {
        self.buf.first().is_some_and(|b| b & 0x20 != 0)
    }

    /// The SSRC of the sender: the first SSRC of SR, RR, APP, feedback and XR,
    /// the first chunk of SDES and the first source of BYE.
    pub fn sender_ssrc(&self) -> Option<Ssrc> {
        if has_sender_ssrc(self.buf) {
            read_u32(self.buf, 4).map(Ssrc)
        } else {
            None
        }
    }

    /// Sender info of an SR.
    pub fn sender_info(&self) -> Option<SenderInfo> {
        if self.packet_type() != RtcpPacketType::SenderReport {
            return None;
        }
        let hi = read_u32(self.buf, 8)?;
        let lo = read_u32(self.buf, 12)?;
        Some(SenderInfo {
            ntp_timestamp: u64::from(hi) << 32 | u64::from(lo),
            rtp_timestamp: read_u32(self.buf, 16)?,
            packet_count: read_u32(self.buf, 20)?,
            octet_count: read_u32(self.buf, 24)?,
        })
    }

    /// Report blocks of an SR or RR (empty for other types); stops at the
    /// end of the packet even if the count says more.
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        let start = match self.packet_type() {
            RtcpPacketType::SenderReport => HEADER_LEN + 4 + SENDER_INFO_LEN,
            RtcpPacketType::ReceiverReport => HEADER_LEN + 4,
            _ => usize::MAX,
        };
        let buf = self.buf;
        let count = if start == usize::MAX { 0 } else { self.count() };
        (0..count).map_while(move |i| {
            let at = start + i * REPORT_BLOCK_LEN;
            buf.get(at..at + REPORT_BLOCK_LEN)
                .and_then(ReportBlock::parse)
        })
    }
}

/// Iterator over the packets of a compound datagram.
#[derive(Debug, Clone)]
pub struct CompoundIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RtcpPacket::parse(self.rest) {
            Ok((packet, rest)) => {
                self.rest = rest;
                Some(Ok(packet))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Length in bytes of the packet at the front of `buf`, validated.
fn packet_len(buf: &[u8]) -> Result<usize, RtcpError> {
    let Some(&first) = buf.first() else {
        return Err(RtcpError::TooShort {
            len: 0,
            needed: HEADER_LEN,
        });
    };
    if buf.len() < HEADER_LEN {
        return Err(RtcpError::TooShort {
            len: buf.len(),
            needed: HEADER_LEN,
        });
    }
    let version = first >> 6;
    if version != RTP_VERSION {
        return Err(RtcpError::BadVersion { version });
    }
    let words = crate::read_u16(buf, 2).unwrap_or(0);
    let declared = (usize::from(words) + 1) * 4;
    if declared > buf.len() {
        return Err(RtcpError::BadLength {
            declared,
            available: buf.len(),
        });
    }
    Ok(declared)
}

fn has_sender_ssrc(packet: &[u8]) -> bool {
    if packet.len() < 8 {
        return false;
    }
    let count = packet.first().map_or(0, |b| b & 0x1F);
    match RtcpPacketType::from_u8(packet.get(1).copied().unwrap_or(0)) {
        RtcpPacketType::SourceDescription | RtcpPacketType::Bye => count > 0,
        _ => true,
    }
}

/// Validates a whole compound datagram: every packet well framed.
pub fn validate_compound(buf: &[u8]) -> Result<usize, RtcpError> {
    let mut packets = 0;
    for packet in RtcpPacket::iter_compound(buf) {
        packet?;
        packets += 1;
    }
    Ok(packets)
}

/// Rewrites the sender SSRC (see [`RtcpPacket::sender_ssrc`]) of every packet
/// in a compound datagram. Validates the whole datagram before touching it;
/// returns the number of SSRC fields rewritten.
pub fn rewrite_sender_ssrc(buf: &mut [u8], ssrc: Ssrc) -> Result<usize, RtcpError> {
    validate_compound(buf)?;
    let mut at = 0;
    let mut rewritten = 0;
    while at < buf.len() {
        let Some(packet) = buf.get_mut(at..) else {
            break;
        };
        let len = packet_len(packet)?;
        if packet.get(..len).is_some_and(has_sender_ssrc) && write_u32(packet, 4, ssrc.0) {
            rewritten += 1;
        }
        at += len;
    }
    Ok(rewritten)
}

/// Sets the "SSRC of source" of every report block in every SR/RR of a
/// compound datagram (a relay maps reports back to the stream it forwarded).
/// Returns the number of blocks rewritten.
pub fn rewrite_report_sources(buf: &mut [u8], ssrc: Ssrc) -> Result<usize, RtcpError> {
    validate_compound(buf)?;
    let mut at = 0;
    let mut rewritten = 0;
    while at < buf.len() {
        let Some(packet) = buf.get_mut(at..) else {
            break;
        };
        let len = packet_len(packet)?;
        let count = usize::from(packet.first().map_or(0, |b| b & 0x1F));
        let start = match RtcpPacketType::from_u8(packet.get(1).copied().unwrap_or(0)) {
            RtcpPacketType::SenderReport => Some(HEADER_LEN + 4 + SENDER_INFO_LEN),
            RtcpPacketType::ReceiverReport => Some(HEADER_LEN + 4),
            _ => None,
        };
        if let Some(start) = start {
            for i in 0..count {
                let block = start + i * REPORT_BLOCK_LEN;
                if block + REPORT_BLOCK_LEN > len {
                    break;
                }
                if write_u32(packet, block, ssrc.0) {
                    rewritten += 1;
                }
            }
        }
        at += len;
    }
    Ok(rewritten)
}

fn write_header(out: &mut [u8], count: usize, pt: RtcpPacketType, len: usize) {
    if let Some(first) = out.first_mut() {
        *first = RTP_VERSION << 6 | (count as u8 & 0x1F);
    }
    if let Some(second) = out.get_mut(1) {
        *second = pt.to_u8();
    }
    write_u16(out, 2, (len / 4 - 1) as u16);
}

fn output(buf: &mut [u8], len: usize) -> Result<&mut [u8], RtcpError> {
    let available = buf.len();
    buf.get_mut(..len).ok_or(RtcpError::BufferTooSmall {
        needed: len,
        available,
    })
}

/// A sender report to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    pub ssrc: Ssrc,
    pub info: SenderInfo,
    pub reports: &'a [ReportBlock],
}

impl SenderReport<'_> {
    /// Serialised length.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * self.reports.len()
    }

    /// Writes the SR to the front of `buf`; returns the bytes written.
    pub fn write_into(&self, buf: &mut [u8]) -> Result<usize, RtcpError> {
        if self.reports.len() > MAX_REPORT_BLOCKS {
            return Err(RtcpError::TooManyReports {
                count: self.reports.len(),
            });
        }
        let len = self.encoded_len();
        let out = output(buf, len)?;
        write_header(out, self.reports.len(), RtcpPacketType::SenderReport, len);
        write_u32(out, 4, self.ssrc.0);
        write_u32(out, 8, (self.info.ntp_timestamp >> 32) as u32);
        write_u32(out, 12, self.info.ntp_timestamp as u32);
        write_u32(out, 16, self.info.rtp_timestamp);
        write_u32(out, 20, self.info.packet_count);
        write_u32(out, 24, self.info.octet_count);
        for (i, block) in self.reports.iter().enumerate() {
            block.write(out, 28 + i * REPORT_BLOCK_LEN);
        }
        Ok(len)
    }
}

/// A receiver report to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    pub ssrc: Ssrc,
    pub reports: &'a [ReportBlock],
}

impl ReceiverReport<'_> {
    /// Serialised length.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + REPORT_BLOCK_LEN * self.reports.len()
    }

    /// Writes the RR to the front of `buf`; returns the bytes written.
    pub fn write_into(&self, buf: &mut [u8]) -> Result<usize, RtcpError> {
        if self.reports.len() > MAX_REPORT_BLOCKS {
            return Err(RtcpError::TooManyReports {
                count: self.reports.len(),
            });
        }
        let len = self.encoded_len();
        let out = output(buf, len)?;
        write_header(out, self.reports.len(), RtcpPacketType::ReceiverReport, len);
        write_u32(out, 4, self.ssrc.0);
        for (i, block) in self.reports.iter().enumerate() {
            block.write(out, 8 + i * REPORT_BLOCK_LEN);
        }
        Ok(len)
    }
}

/// An SDES packet with one chunk carrying only a CNAME (RFC 3550 §6.5.1),
/// the minimum a compound packet must include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesCname<'a> {
    pub ssrc: Ssrc,
    pub cname: &'a [u8],
}

impl SdesCname<'_> {
    /// Serialised length: chunk = SSRC + item + terminating zero, padded to 32 bits.
    pub fn encoded_len(&self) -> usize {
        let chunk = 4 + 2 + self.cname.len() + 1;
        HEADER_LEN + chunk.div_ceil(4) * 4
    }

    /// Writes the SDES packet; returns the bytes written.
    pub fn write_into(&self, buf: &mut [u8]) -> Result<usize, RtcpError> {
        if self.cname.len() > 255 {
            return Err(RtcpError::ItemTooLong {
                len: self.cname.len(),
            });
        }
        let len = self.encoded_len();
        let out = output(buf, len)?;
        out.fill(0);
        write_header(out, 1, RtcpPacketType::SourceDescription, len);
        write_u32(out, 4, self.ssrc.0);
        if let Some(item) = out.get_mut(8..10 + self.cname.len()) {
            item[0] = 1; // CNAME
            item[1] = self.cname.len() as u8;
            item[2..].copy_from_slice(self.cname);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u32) -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(n),
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 70_000,
            jitter: 12,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    fn compound() -> Vec<u8> {
        let mut buf = vec![0u8; 200];
        let blocks = [block(11), block(12)];
        let sr = SenderReport {
            ssrc: Ssrc(0xAAAA),
            info: SenderInfo {
                ntp_timestamp: 0x0102_0304_0506_0708,
                rtp_timestamp: 160,
                packet_count: 5,
                octet_count: 800,
            },
            reports: &blocks,
        };
        let mut at = sr.write_into(&mut buf).unwrap();
        at += SdesCname {
            ssrc: Ssrc(0xAAAA),
            cname: b"carillon@example",
        }
        .write_into(&mut buf[at..])
        .unwrap();
        // BYE with one source.
        buf[at..at + 8].copy_from_slice(&[0x81, 203, 0, 1, 0, 0, 0xAA, 0xAA]);
        at += 8;
        buf.truncate(at);
        buf
    }

    #[test]
    fn compound_packets_are_identified_in_order() {
        let buf = compound();
        let types: Vec<_> = RtcpPacket::iter_compound(&buf)
            .map(|p| p.unwrap().packet_type())
            .collect();
        assert_eq!(
            types,
            vec![
                RtcpPacketType::SenderReport,
                RtcpPacketType::SourceDescription,
                RtcpPacketType::Bye
            ]
        );
        let sr = RtcpPacket::iter_compound(&buf).next().unwrap().unwrap();
        assert_eq!(sr.sender_ssrc(), Some(Ssrc(0xAAAA)));
        assert_eq!(
            sr.sender_info().unwrap().ntp_timestamp,
            0x0102_0304_0506_0708
        );
        let blocks: Vec<_> = sr.report_blocks().collect();
        assert_eq!(blocks, vec![block(11), block(12)]);
    }

    #[test]
    fn sender_ssrc_is_rewritten_in_every_packet() {
        let mut buf = compound();
        assert_eq!(rewrite_sender_ssrc(&mut buf, Ssrc(0x5555)), Ok(3));
        for p in RtcpPacket::iter_compound(&buf) {
            assert_eq!(p.unwrap().sender_ssrc(), Some(Ssrc(0x5555)));
        }
        // Report blocks still name the reported sources.
        let sr = RtcpPacket::iter_compound(&buf).next().unwrap().unwrap();
        assert_eq!(sr.report_blocks().next().unwrap().ssrc, Ssrc(11));
    }

    #[test]
    fn report_sources_are_rewritten_separately() {
        let mut buf = compound();
        assert_eq!(rewrite_report_sources(&mut buf, Ssrc(99)), Ok(2));
        let sr = RtcpPacket::iter_compound(&buf).next().unwrap().unwrap();
        assert!(sr.report_blocks().all(|b| b.ssrc == Ssrc(99)));
        assert_eq!(sr.sender_ssrc(), Some(Ssrc(0xAAAA)));
    }

    #[test]
    fn a_truncated_compound_is_rejected_without_being_modified() {
        let mut buf = compound();
        buf.truncate(buf.len() - 2);
        let before = buf.clone();
        assert!(matches!(
            rewrite_sender_ssrc(&mut buf, Ssrc(1)),
            Err(RtcpError::BadLength { .. })
        ));
        assert_eq!(buf, before);
    }

    #[test]
    fn receiver_report_round_trips_with_negative_loss() {
        let blocks = [block(3)];
        let rr = ReceiverReport {
            ssrc: Ssrc(7),
            reports: &blocks,
        };
        let mut buf = [0u8; 64];
        let n = rr.write_into(&mut buf).unwrap();
        assert_eq!(n, 32);
        let (p, rest) = RtcpPacket::parse(&buf[..n]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(p.packet_type(), RtcpPacketType::ReceiverReport);
        assert_eq!(p.report_blocks().next(), Some(block(3)));
    }

    #[test]
    fn cumulative_loss_is_clamped_to_24_bits() {
        let mut b = block(1);
        b.cumulative_lost = 10_000_000;
        let blocks = [b];
        let mut buf = [0u8; 32];
        ReceiverReport {
            ssrc: Ssrc(1),
            reports: &blocks,
        }
        .write_into(&mut buf)
        .unwrap();
        let (p, _) = RtcpPacket::parse(&buf).unwrap();
        assert_eq!(p.report_blocks().next().unwrap().cumulative_lost, 0x7F_FFFF);
    }

    #[test]
    fn empty_bye_has_no_sender_ssrc() {
        let buf = [0x80, 203, 0, 0];
        let (p, _) = RtcpPacket::parse(&buf).unwrap();
        assert_eq!(p.sender_ssrc(), None);
    }

    #[test]
    fn bad_version_and_short_input_are_errors() {
        assert_eq!(
            RtcpPacket::parse(&[0x80, 200]).unwrap_err(),
            RtcpError::TooShort { len: 2, needed: 4 }
        );
        assert_eq!(
            RtcpPacket::parse(&[0x40, 200, 0, 0]).unwrap_err(),
            RtcpError::BadVersion { version: 1 }
        );
    }

    #[test]
    fn builders_refuse_small_buffers() {
        let rr = ReceiverReport {
            ssrc: Ssrc(1),
            reports: &[],
        };
        assert_eq!(
            rr.write_into(&mut [0u8; 4]),
            Err(RtcpError::BufferTooSmall {
                needed: 8,
                available: 4
            })
        );
    }
}
