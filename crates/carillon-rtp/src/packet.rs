//! RTP data packets (RFC 3550 §5.1, §5.3.1): a zero-copy view, a borrowing
//! builder that serialises into a caller buffer, and in-place header
//! rewrites for the relay hot path.
//!
//! Owns the fixed header, the CSRC list, the header extension framing
//! (§5.3.1, profile-specific 16-bit id + length in words; the RFC 8285
//! element layout inside it is left to callers) and padding. It does not own
//! payload formats (see [`crate::dtmf`]) or stream state.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers  (CC × 32)  |
//! |   defined by profile (X)      |           length (X)          |
//! |                 header extension (length × 32)                |
//! |                 payload ...           | padding | pad count (P)|
//! ```

use crate::{read_u16, read_u32, write_u16, write_u32, Ssrc, RTP_VERSION};

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
/// Most CSRCs a header can carry (4-bit CC).
pub const MAX_CSRCS: usize = 15;

/// Errors parsing, building or rewriting RTP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The datagram ends before the header it announces.
    #[error("RTP packet too short: {len} bytes, header needs {needed}")]
    TooShort { len: usize, needed: usize },
    /// The version field is not 2.
    #[error("unsupported RTP version {version}")]
    BadVersion { version: u8 },
    /// The padding count is zero or larger than what follows the header.
    #[error("bad RTP padding: count {padding}, only {available} bytes after the header")]
    BadPadding { padding: usize, available: usize },
    /// A payload type above 127 (it would overwrite the marker bit).
    #[error("payload type {payload_type} out of range 0..=127")]
    InvalidPayloadType { payload_type: u8 },
    /// More than 15 CSRCs.
    #[error("{count} CSRCs, at most 15 fit")]
    TooManyCsrcs { count: usize },
    /// Header extension data must be a whole number of 32-bit words, at most 65535 of them.
    #[error("header extension of {len} bytes is not a whole number of words or is too long")]
    BadExtensionLength { len: usize },
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall { needed: usize, available: usize },
}

/// A header extension (RFC 3550 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The 16-bit "defined by profile" field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// Extension data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

/// A validated, zero-copy view of one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
    extension: Option<Extension<'a>>,
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates `buf` as an RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let first = check_fixed_header(buf)?;
        let csrc_count = usize::from(first & 0x0F);
        let mut header_len = FIXED_HEADER_LEN + 4 * csrc_count;
        if buf.len() < header_len {
            return Err(RtpError::TooShort {
                len: buf.len(),
                needed: header_len,
            });
        }
        let mut extension = None;
        if first & 0x10 != 0 {
            let needed = header_len + 4;
            let (Some(profile), Some(words)) =
                (read_u16(buf, header_len), read_u16(buf, header_len + 2))
            else {
                return Err(RtpError::TooShort {
                    len: buf.len(),
                    needed,
                });
            };
            let data_end = needed + 4 * usize::from(words);
            let Some(data) = buf.get(needed..data_end) else {
                return Err(RtpError::TooShort {
                    len: buf.len(),
                    needed: data_end,
                });
            };
            extension = Some(Extension { profile, data });
            header_len = data_end;
        }
        let mut payload_end = buf.len();
        if first & 0x20 != 0 {
            let available = buf.len() - header_len;
            let padding = buf.last().map_or(0, |&b| usize::from(b));
            if padding == 0 || padding > available {
                return Err(RtpError::BadPadding { padding, available });
            }
            payload_end -= padding;
        }
        Ok(RtpPacket {
            buf,
            header_len,
            payload_end,
            extension,
        })
    }

    fn byte(&self, at: usize) -> u8 {
        self.buf.get(at).copied().unwrap_or(0)
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The RTP version (always 2 after a successful parse).
    pub fn version(&self) -> u8 {
        self.byte(0) >> 6
    }

    /// The P bit.
    pub fn has_padding(&self) -> bool {
        self.byte(0) & 0x20 != 0
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.byte(1) & 0x80 != 0
    }

    /// The payload type (0..=127).
    pub fn payload_type(&self) -> u8 {
        self.byte(1) & 0x7F
    }

    /// The 16-bit sequence number.
    pub fn sequence_number(&self) -> u16 {
        read_u16(self.buf, 2).unwrap_or(0)
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        read_u32(self.buf, 4).unwrap_or(0)
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(read_u32(self.buf, 8).unwrap_or(0))
    }

    /// Number of contributing sources.
    pub fn csrc_count(&self) -> usize {
        usize::from(self.byte(0) & 0x0F)
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        let buf = self.buf;
        (0..self.csrc_count())
            .filter_map(move |i| read_u32(buf, FIXED_HEADER_LEN + 4 * i).map(Ssrc))
    }

    /// The header extension, if the X bit is set.
    pub fn extension(&self) -> Option<Extension<'a>> {
        self.extension
    }

    /// Header length including CSRCs and extension: the payload offset.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &'a [u8] {
        self.buf
            .get(self.header_len..self.payload_end)
            .unwrap_or_default()
    }

    /// Padding bytes at the end, including the count byte (0 without the P bit).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.payload_end
    }
}

/// Checks length and version of the fixed header; returns its first byte.
#[inline]
fn check_fixed_header(buf: &[u8]) -> Result<u8, RtpError> {
    match buf.first() {
        Some(&first) if buf.len() >= FIXED_HEADER_LEN => {
            let version = first >> 6;
            if version == RTP_VERSION {
                Ok(first)
            } else {
                Err(RtpError::BadVersion { version })
            }
        }
        _ => Err(RtpError::TooShort {
            len: buf.len(),
            needed: FIXED_HEADER_LEN,
        }),
    }
}

/// Everything needed to write one RTP packet; borrows CSRCs, extension and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacketBuilder<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    pub csrcs: &'a [Ssrc],
    pub extension: Option<Extension<'a>>,
    pub payload: &'a [u8],
    /// Padding bytes to append including the count byte; 0 for none.
    pub padding: u8,
}

impl<'a> RtpPacketBuilder<'a> {
    /// A packet with no marker, CSRCs, extension or padding.
    pub fn new(
        payload_type: u8,
        sequence_number: u16,
        timestamp: u32,
        ssrc: Ssrc,
        payload: &'a [u8],
    ) -> Self {
        RtpPacketBuilder {
            marker: false,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrcs: &[],
            extension: None,
            payload,
            padding: 0,
        }
    }

    /// Sets the marker bit.
    pub fn with_marker(mut self, marker: bool) -> Self {
        self.marker = marker;
        self
    }

    fn header_len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |e| 4 + e.data.len())
    }

    /// Size of the serialised packet.
    pub fn encoded_len(&self) -> usize {
        self.header_len() + self.payload.len() + usize::from(self.padding)
    }

    fn validate(&self) -> Result<(), RtpError> {
        if self.payload_type > 0x7F {
            return Err(RtpError::InvalidPayloadType {
                payload_type: self.payload_type,
            });
        }
        if self.csrcs.len() > MAX_CSRCS {
            return Err(RtpError::TooManyCsrcs {
                count: self.csrcs.len(),
            });
        }
        if let Some(ext) = self.extension {
            let len = ext.data.len();
            if len % 4 != 0 || len / 4 > usize::from(u16::MAX) {
                return Err(RtpError::BadExtensionLength { len });
            }
        }
        Ok(())
    }

    /// Serialises into the front of `buf`; returns the number of bytes written.
    pub fn write_into(&self, buf: &mut [u8]) -> Result<usize, RtpError> {
        self.validate()?;
        let len = self.encoded_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(RtpError::BufferTooSmall {
                needed: len,
                available: buf.len(),
            });
        };
        let mut first = RTP_VERSION << 6 | self.csrcs.len() as u8;
        if self.padding > 0 {
            first |= 0x20;
        }
        if self.extension.is_some() {
            first |= 0x10;
        }
        let second = self.payload_type | if self.marker { 0x80 } else { 0 };
        out[0] = first;
        out[1] = second;
        write_u16(out, 2, self.sequence_number);
        write_u32(out, 4, self.timestamp);
        write_u32(out, 8, self.ssrc.0);
        let mut at = FIXED_HEADER_LEN;
        for csrc in self.csrcs {
            write_u32(out, at, csrc.0);
            at += 4;
        }
        if let Some(ext) = self.extension {
            write_u16(out, at, ext.profile);
            write_u16(out, at + 2, (ext.data.len() / 4) as u16);
            at += 4;
            out[at..at + ext.data.len()].copy_from_slice(ext.data);
            at += ext.data.len();
        }
        out[at..at + self.payload.len()].copy_from_slice(self.payload);
        at += self.payload.len();
        if self.padding > 0 {
            let pad = usize::from(self.padding);
            out[at..at + pad].fill(0);
            out[at + pad - 1] = self.padding;
        }
        Ok(len)
    }

    /// Appends the packet to `buf` (growing it if needed); returns the bytes written.
    pub fn write_to(&self, buf: &mut bytes::BytesMut) -> Result<usize, RtpError> {
        self.validate()?;
        let start = buf.len();
        buf.resize(start + self.encoded_len(), 0);
        match buf.get_mut(start..) {
            Some(tail) => self.write_into(tail),
            None => Err(RtpError::BufferTooSmall {
                needed: self.encoded_len(),
                available: 0,
            }),
        }
    }
}

/// Checks that `buf` starts with an RTP version 2 fixed header.
#[inline]
fn check_mut(buf: &[u8]) -> Result<(), RtpError> {
    check_fixed_header(buf).map(|_| ())
}

/// Rewrites the SSRC of the RTP packet in `buf`.
#[inline]
pub fn set_ssrc(buf: &mut [u8], ssrc: Ssrc) -> Result<(), RtpError> {
    check_mut(buf)?;
    write_u32(buf, 8, ssrc.0);
    Ok(())
}

/// Rewrites the sequence number of the RTP packet in `buf`.
#[inline]
pub fn set_seq(buf: &mut [u8], seq: u16) -> Result<(), RtpError> {
    check_mut(buf)?;
    write_u16(buf, 2, seq);
    Ok(())
}

/// Rewrites the timestamp of the RTP packet in `buf`.
#[inline]
pub fn set_timestamp(buf: &mut [u8], timestamp: u32) -> Result<(), RtpError> {
    check_mut(buf)?;
    write_u32(buf, 4, timestamp);
    Ok(())
}

/// Rewrites the payload type, keeping the marker bit.
#[inline]
pub fn set_payload_type(buf: &mut [u8], payload_type: u8) -> Result<(), RtpError> {
    if payload_type > 0x7F {
        return Err(RtpError::InvalidPayloadType { payload_type });
    }
    check_mut(buf)?;
    if let Some(b) = buf.get_mut(1) {
        *b = (*b & 0x80) | payload_type;
    }
    Ok(())
}

/// Sets or clears the marker bit.
#[inline]
pub fn set_marker(buf: &mut [u8], marker: bool) -> Result<(), RtpError> {
    check_mut(buf)?;
    if let Some(b) = buf.get_mut(1) {
        *b = (*b & 0x7F) | if marker { 0x80 } else { 0 };
    }
    Ok(())
}

/// Rewrites SSRC, sequence number and timestamp with one validation (the relay path).
#[inline]
pub fn rewrite_header(
    buf: &mut [u8],
    ssrc: Ssrc,
    seq: u16,
    timestamp: u32,
) -> Result<(), RtpError> {
    check_mut(buf)?;
    write_u16(buf, 2, seq);
    write_u32(buf, 4, timestamp);
    write_u32(buf, 8, ssrc.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let csrcs = [Ssrc(7), Ssrc(9)];
        let ext_data = [1u8, 2, 3, 4];
        let mut b = RtpPacketBuilder::new(8, 1000, 160_000, Ssrc(0xDEAD_BEEF), b"hello");
        b.marker = true;
        b.csrcs = &csrcs;
        b.extension = Some(Extension {
            profile: 0xBEDE,
            data: &ext_data,
        });
        b.padding = 3;
        let mut buf = vec![0u8; b.encoded_len()];
        assert_eq!(b.write_into(&mut buf), Ok(buf.len()));
        buf
    }

    #[test]
    fn a_built_packet_parses_back_to_the_same_fields() {
        let buf = sample();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.marker());
        assert!(p.has_padding());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence_number(), 1000);
        assert_eq!(p.timestamp(), 160_000);
        assert_eq!(p.ssrc(), Ssrc(0xDEAD_BEEF));
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(7), Ssrc(9)]);
        assert_eq!(
            p.extension(),
            Some(Extension {
                profile: 0xBEDE,
                data: &[1, 2, 3, 4]
            })
        );
        assert_eq!(p.payload(), b"hello");
        assert_eq!(p.padding_len(), 3);
        assert_eq!(p.header_len(), 12 + 8 + 8);
    }

    #[test]
    fn short_and_wrong_version_packets_are_rejected() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::TooShort {
                len: 11,
                needed: 12
            })
        );
        let mut buf = sample();
        buf[0] = (buf[0] & 0x3F) | 0x40;
        assert_eq!(
            RtpPacket::parse(&buf),
            Err(RtpError::BadVersion { version: 1 })
        );
    }

    #[test]
    fn csrc_list_longer_than_the_packet_is_rejected() {
        let mut buf = [0u8; 20];
        buf[0] = 0x83; // 3 CSRCs need 24 bytes
        assert_eq!(
            RtpPacket::parse(&buf),
            Err(RtpError::TooShort {
                len: 20,
                needed: 24
            })
        );
    }

    #[test]
    fn zero_or_oversized_padding_is_rejected() {
        let mut buf = vec![0xA0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xAA, 0];
        assert!(matches!(
            RtpPacket::parse(&buf),
            Err(RtpError::BadPadding { padding: 0, .. })
        ));
        *buf.last_mut().unwrap() = 3;
        assert!(matches!(
            RtpPacket::parse(&buf),
            Err(RtpError::BadPadding {
                padding: 3,
                available: 2
            })
        ));
        *buf.last_mut().unwrap() = 2;
        assert_eq!(RtpPacket::parse(&buf).unwrap().payload(), b"");
    }

    #[test]
    fn in_place_rewrites_change_only_their_field() {
        let mut buf = sample();
        let original = buf.clone();
        set_ssrc(&mut buf, Ssrc(1)).unwrap();
        set_seq(&mut buf, 2).unwrap();
        set_timestamp(&mut buf, 3).unwrap();
        set_payload_type(&mut buf, 0).unwrap();
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(
            (p.ssrc(), p.sequence_number(), p.timestamp()),
            (Ssrc(1), 2, 3)
        );
        assert_eq!(p.payload_type(), 0);
        assert!(p.marker(), "marker survives a payload type rewrite");
        assert_eq!(buf[12..], original[12..]);
        set_marker(&mut buf, false).unwrap();
        assert!(!RtpPacket::parse(&buf).unwrap().marker());
    }

    #[test]
    fn rewrites_refuse_non_rtp_buffers_and_bad_payload_types() {
        let mut short = [0x80u8; 8];
        assert!(set_ssrc(&mut short, Ssrc(1)).is_err());
        let mut buf = sample();
        assert_eq!(
            set_payload_type(&mut buf, 128),
            Err(RtpError::InvalidPayloadType { payload_type: 128 })
        );
        assert!(rewrite_header(&mut buf, Ssrc(5), 6, 7).is_ok());
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(
            (p.ssrc(), p.sequence_number(), p.timestamp()),
            (Ssrc(5), 6, 7)
        );
    }

    #[test]
    fn builder_rejects_what_the_header_cannot_express() {
        let csrcs = [Ssrc(0); 16];
        let mut b = RtpPacketBuilder::new(0, 0, 0, Ssrc(0), &[]);
        b.csrcs = &csrcs;
        assert_eq!(
            b.write_into(&mut [0; 200]),
            Err(RtpError::TooManyCsrcs { count: 16 })
        );
        let mut b = RtpPacketBuilder::new(200, 0, 0, Ssrc(0), &[]);
        assert!(b.write_into(&mut [0; 200]).is_err());
        b.payload_type = 0;
        b.extension = Some(Extension {
            profile: 1,
            data: &[1, 2, 3],
        });
        assert_eq!(
            b.write_into(&mut [0; 200]),
            Err(RtpError::BadExtensionLength { len: 3 })
        );
        b.extension = None;
        assert_eq!(
            b.write_into(&mut [0; 5]),
            Err(RtpError::BufferTooSmall {
                needed: 12,
                available: 5
            })
        );
    }

    #[test]
    fn writing_to_bytes_mut_appends() {
        let mut out = bytes::BytesMut::new();
        let b = RtpPacketBuilder::new(0, 1, 2, Ssrc(3), &[9; 160]);
        assert_eq!(b.write_to(&mut out), Ok(172));
        assert_eq!(b.write_to(&mut out), Ok(172));
        assert_eq!(out.len(), 344);
        assert_eq!(RtpPacket::parse(&out[172..]).unwrap().payload(), &[9; 160]);
    }
}
