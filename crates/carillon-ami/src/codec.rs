//! AMI wire framing: a packet is `Key: Value` lines ended by CRLF (a bare
//! LF is accepted, as VICIdial's scripts send it), and a blank line ends
//! it. Owns [`Packet`] (ordered headers, case-insensitive look-up,
//! serialisation with CRLF) and [`Decoder`] (bytes in, packets out, with
//! bounded line and packet sizes). Knows nothing of actions or logins
//! (`session`).
//!
//! ```text
//! bytes ─► Decoder::push ─► next_packet() ─► Ok(Packet) | Err(FrameError)
//!                              (line > max_line or packet > max_packet:
//!                               the rest of that packet is skipped up to
//!                               its blank line, then one error is returned)
//! ```
//!
//! Lines without a `:` are ignored, as Asterisk ignores them; invalid
//! UTF-8 is replaced, never fatal.

use std::fmt::Write as _;

/// Longest line accepted (Asterisk's own limit is 1,024 bytes per line).
pub const MAX_LINE: usize = 1024;
/// Largest packet accepted, in bytes of header lines.
pub const MAX_PACKET: usize = 16 * 1024;
/// Most header lines in one packet.
pub const MAX_HEADERS: usize = 128;

/// A framing problem; the offending packet is dropped whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line too long (limit {limit} bytes)")]
    LineTooLong { limit: usize },
    #[error("packet too large (limit {limit} bytes, {max_headers} lines)")]
    PacketTooLarge { limit: usize, max_headers: usize },
}

/// One AMI packet: an action, a response or an event, headers in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    headers: Vec<(String, String)>,
}

impl Packet {
    pub fn new() -> Packet {
        Packet::default()
    }

    /// Appends a header (builder style).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Packet {
        self.push(key, value);
        self
    }

    /// Appends a header.
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.headers.push((key.to_owned(), value.into()));
    }

    /// Appends every header of `other`.
    pub fn extend(&mut self, other: &Packet) {
        self.headers.extend(other.headers.iter().cloned());
    }

    /// The first value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The wire form: `Key: Value\r\n` per header and a blank line.
    /// Carriage returns and line feeds inside values are replaced by
    /// spaces, so a value can never end the packet early.
    pub fn to_wire(&self) -> String {
        let mut out = String::with_capacity(self.headers.len() * 24 + 2);
        for (k, v) in &self.headers {
            let v = v.replace(['\r', '\n'], " ");
            let _ = write!(out, "{k}: {v}\r\n");
        }
        out.push_str("\r\n");
        out
    }
}

/// Splits a byte stream into packets (see the module doc).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    current: Packet,
    current_bytes: usize,
    /// The error owed for the packet being skipped.
    skipping: Option<FrameError>,
    /// Bytes are dropped up to the next line feed (an overlong line).
    skip_line: bool,
    max_line: usize,
    max_packet: usize,
    max_headers: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(MAX_LINE, MAX_PACKET, MAX_HEADERS)
    }
}

impl Decoder {
    pub fn new(max_line: usize, max_packet: usize, max_headers: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            current: Packet::new(),
            current_bytes: 0,
            skipping: None,
            skip_line: false,
            max_line,
            max_packet,
            max_headers,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete packet or framing error; `None` until more bytes
    /// arrive.
    pub fn next_packet(&mut self) -> Option<Result<Packet, FrameError>> {
        loop {
            let newline = self.buf.iter().position(|&b| b == b'\n');
            if self.skip_line {
                match newline {
                    Some(pos) => {
                        self.buf.drain(..=pos);
                        self.skip_line = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            let Some(pos) = newline else {
                if self.buf.len() > self.max_line {
                    self.buf.clear();
                    self.skip_line = true;
                    self.start_skipping(FrameError::LineTooLong {
                        limit: self.max_line,
                    });
                }
                return None;
            };
            let mut end = pos;
            if end > 0 && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
            if end > self.max_line {
                self.buf.drain(..=pos);
                self.start_skipping(FrameError::LineTooLong {
                    limit: self.max_line,
                });
                continue;
            }
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..=pos);
            if line.trim().is_empty() {
                if let Some(e) = self.skipping.take() {
                    return Some(Err(e));
                }
                if !self.current.headers.is_empty() {
                    self.current_bytes = 0;
                    return Some(Ok(std::mem::take(&mut self.current)));
                }
                continue;
            }
            if self.skipping.is_some() {
                continue;
            }
            self.current_bytes += line.len() + 2;
            if self.current_bytes > self.max_packet
                || self.current.headers.len() >= self.max_headers
            {
                self.start_skipping(FrameError::PacketTooLarge {
                    limit: self.max_packet,
                    max_headers: self.max_headers,
                });
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim();
                if !k.is_empty() {
                    self.current.push(k, v.trim());
                }
            }
        }
    }

    fn start_skipping(&mut self, e: FrameError) {
        self.current = Packet::new();
        self.current_bytes = 0;
        if self.skipping.is_none() {
            self.skipping = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut Decoder) -> Vec<Result<Packet, FrameError>> {
        std::iter::from_fn(|| d.next_packet()).collect()
    }

    #[test]
    fn crlf_and_bare_lf_packets_both_parse_and_a_blank_line_ends_each() {
        let mut d = Decoder::default();
        d.push(b"Action: Login\r\nUsername: dialer\r\n\r\nAction: Ping\nActionID: 7\n\n");
        let p = all(&mut d);
        assert_eq!(p.len(), 2);
        let first = p[0].as_ref().unwrap();
        assert_eq!(first.get("action"), Some("Login"));
        assert_eq!(first.get("USERNAME"), Some("dialer"));
        let second = p[1].as_ref().unwrap();
        assert_eq!(second.get("ActionID"), Some("7"));
    }

    #[test]
    fn a_packet_split_across_reads_comes_out_once_complete() {
        let mut d = Decoder::default();
        d.push(b"Action: Pi");
        assert!(d.next_packet().is_none());
        d.push(b"ng\r\nActionID: a:b\r");
        assert!(d.next_packet().is_none());
        d.push(b"\n\r\n");
        let p = d.next_packet().unwrap().unwrap();
        assert_eq!(p.get("action"), Some("Ping"));
        // Only the first colon splits.
        assert_eq!(p.get("actionid"), Some("a:b"));
    }

    #[test]
    fn an_overlong_line_drops_its_packet_with_one_error_and_the_next_packet_is_fine() {
        let mut d = Decoder::new(16, 1024, 8);
        d.push(b"Action: Ping\r\nX: ");
        d.push(&[b'y'; 100]);
        assert!(d.next_packet().is_none(), "no error before the packet ends");
        d.push(b"yyy\r\nMore: 1\r\n\r\nAction: Ping\r\n\r\n");
        let p = all(&mut d);
        assert_eq!(p[0], Err(FrameError::LineTooLong { limit: 16 }));
        assert_eq!(p[1].as_ref().unwrap().get("action"), Some("Ping"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn too_many_lines_is_packet_too_large() {
        let mut d = Decoder::new(64, 1024, 3);
        d.push(b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
        assert!(matches!(
            d.next_packet(),
            Some(Err(FrameError::PacketTooLarge { .. }))
        ));
    }

    #[test]
    fn garbage_never_panics_and_lines_without_colon_are_ignored() {
        let mut d = Decoder::default();
        d.push(&[0xff, 0xfe, b'\n', b'\r', b'\n', 0, 1, 2, b':', b'\n', b'\n']);
        d.push(b"no colon here\r\nAction: Ping\r\n\r\n");
        let p = all(&mut d);
        // The NUL-led line has a colon but an odd key; it is kept as a
        // header, the packet is returned, nothing panics.
        assert!(p.iter().all(|r| r.is_ok()));
        assert_eq!(
            p.last().unwrap().as_ref().unwrap().get("action"),
            Some("Ping")
        );
        // Random bytes of every value, in every split.
        let mut seed = 0x2545_f491_u32;
        let mut d = Decoder::new(32, 256, 8);
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            d.push(&seed.to_le_bytes());
            while d.next_packet().is_some() {}
        }
    }

    #[test]
    fn values_cannot_inject_a_line_break() {
        let p = Packet::new()
            .with("Response", "Success")
            .with("Message", "a\r\n\r\nEvent: x");
        let w = p.to_wire();
        assert_eq!(w.matches("\r\n").count(), 3);
        assert!(w.ends_with("\r\n\r\n"));
    }
}
