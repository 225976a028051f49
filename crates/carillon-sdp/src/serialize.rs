//! The SDP writer: CRLF line ends and the canonical line order of
//! RFC 8866 §5:
//!
//! ```text
//! session: v o s i u e* p* c b* (t r*)+ z k a* ; media: m i c b* k a*
//! ```
//!
//! Lines with unknown type letters are written just before the section's
//! `a=` lines. An empty `t=` list is written as `t=0 0` and an empty
//! session name as `s= ` (RFC 8866 §5.3), so the output is always valid.
//!
//! The writer appends straight into one pre-sized `String` (no `fmt`
//! machinery, no per-line allocation): a call's offer and answer are
//! written on the signalling hot path. The `Display` impls go through the
//! same functions so both spellings stay identical.

use std::fmt::{self, Display, Formatter};
use std::net::IpAddr;

use crate::session::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, Rtcp, RtpMap, SessionDescription,
    UnknownLine,
};

impl SessionDescription {
    /// The serialized body, CRLF-terminated.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.size_hint());
        self.write_to(&mut out);
        out.into_bytes()
    }

    /// Appends the serialized body, CRLF-terminated, to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str("v=0\r\n");
        out.push_str("o=");
        push_origin(out, &self.origin);
        out.push_str("\r\n");
        if self.session_name.is_empty() {
            out.push_str("s= \r\n");
        } else {
            push_line(out, 's', &self.session_name);
        }
        opt_line(out, 'i', self.information.as_deref());
        opt_line(out, 'u', self.uri.as_deref());
        for email in &self.emails {
            push_line(out, 'e', email);
        }
        for phone in &self.phones {
            push_line(out, 'p', phone);
        }
        if let Some(c) = &self.connection {
            out.push_str("c=");
            push_connection(out, c);
            out.push_str("\r\n");
        }
        bandwidths(out, &self.bandwidths);
        if self.times.is_empty() {
            out.push_str("t=0 0\r\n");
        }
        for t in &self.times {
            out.push_str("t=");
            push_u64(out, t.start);
            out.push(' ');
            push_u64(out, t.stop);
            out.push_str("\r\n");
            for r in &t.repeats {
                push_line(out, 'r', r);
            }
        }
        opt_line(out, 'z', self.time_zones.as_deref());
        opt_line(out, 'k', self.encryption_key.as_deref());
        unknown(out, &self.unknown);
        attributes(out, &self.attributes);
        for media in &self.media {
            media.write_to(out);
        }
    }

    /// An upper bound guess of the serialized length, so the writer
    /// allocates once.
    fn size_hint(&self) -> usize {
        let media: usize = self
            .media
            .iter()
            .map(|m| 64 + m.formats.len() * 4 + m.attributes.len() * 32)
            .sum();
        160 + self.session_name.len() + self.attributes.len() * 32 + media
    }
}

impl Display for SessionDescription {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(self.size_hint());
        self.write_to(&mut out);
        f.write_str(&out)
    }
}

impl MediaDescription {
    /// Appends the `m=` section, each line CRLF-terminated, to `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str("m=");
        out.push_str(self.media.as_str());
        out.push(' ');
        push_u64(out, u64::from(self.port));
        if let Some(count) = self.port_count {
            out.push('/');
            push_u64(out, u64::from(count));
        }
        out.push(' ');
        out.push_str(&self.proto);
        for format in &self.formats {
            out.push(' ');
            out.push_str(format);
        }
        out.push_str("\r\n");
        opt_line(out, 'i', self.title.as_deref());
        if let Some(c) = &self.connection {
            out.push_str("c=");
            push_connection(out, c);
            out.push_str("\r\n");
        }
        bandwidths(out, &self.bandwidths);
        opt_line(out, 'k', self.encryption_key.as_deref());
        unknown(out, &self.unknown);
        attributes(out, &self.attributes);
    }
}

impl Display for MediaDescription {
    /// The `m=` section, each line CRLF-terminated.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(128);
        self.write_to(&mut out);
        f.write_str(&out)
    }
}

/// The two-digit decimal texts `00` to `99`, back to back.
const PAIRS: &str = "00010203040506070809101112131415161718192021222324\
25262728293031323334353637383940414243444546474849\
50515253545556575859606162636465666768697071727374\
75767778798081828384858687888990919293949596979899";

/// `k` (below 100) as two digits.
fn pair(k: u8) -> &'static str {
    let i = usize::from(k) * 2;
    PAIRS.get(i..i + 2).unwrap_or("00")
}

/// Appends `n` in decimal (no formatter; also used for SIP header text).
/// Two digits at a time from a table of `&str`, so there is neither a
/// UTF-8 check nor a push per digit.
pub fn push_u64(out: &mut String, mut n: u64) {
    // Base-100 digits, least significant first (a u64 has at most 10).
    let mut groups = [0u8; 10];
    let mut len = 0;
    loop {
        groups[len] = (n % 100) as u8;
        len += 1;
        n /= 100;
        if n == 0 {
            break;
        }
    }
    out.reserve(2 * len);
    let (top, rest) = groups[..len].split_last().unwrap_or((&0, &[]));
    if *top < 10 {
        out.push(char::from(b'0' + top));
    } else {
        out.push_str(pair(*top));
    }
    for g in rest.iter().rev() {
        out.push_str(pair(*g));
    }
}

/// `n` in decimal, as `to_string` writes it.
#[must_use]
pub(crate) fn u64_text(n: u64) -> String {
    let mut out = String::with_capacity(20);
    push_u64(&mut out, n);
    out
}

/// The text of an IP address as `Display` writes it (dotted quad for
/// IPv4, RFC 5952 for IPv6), without the `fmt` machinery for IPv4.
#[must_use]
pub fn ip_text(ip: IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// Appends [`ip_text`] of `ip` to `out`.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_line(out: &mut String, kind: char, value: &str) {
    out.push(kind);
    out.push('=');
    out.push_str(value);
    out.push_str("\r\n");
}

fn opt_line(out: &mut String, kind: char, value: Option<&str>) {
    if let Some(v) = value {
        push_line(out, kind, v);
    }
}

fn bandwidths(out: &mut String, list: &[Bandwidth]) {
    for b in list {
        out.push_str("b=");
        out.push_str(&b.bwtype);
        out.push(':');
        push_u64(out, b.value);
        out.push_str("\r\n");
    }
}

fn unknown(out: &mut String, list: &[UnknownLine]) {
    for u in list {
        push_line(out, u.kind, &u.value);
    }
}

fn attributes(out: &mut String, list: &[Attribute]) {
    for a in list {
        out.push_str("a=");
        push_attribute(out, a);
        out.push_str("\r\n");
    }
}

fn push_origin(out: &mut String, o: &Origin) {
    out.push_str(&o.username);
    out.push(' ');
    out.push_str(&o.session_id);
    out.push(' ');
    push_u64(out, o.session_version);
    out.push(' ');
    out.push_str(&o.net_type);
    out.push(' ');
    out.push_str(o.addr_type.as_str());
    out.push(' ');
    out.push_str(&o.address);
}

fn push_connection(out: &mut String, c: &Connection) {
    out.push_str(&c.net_type);
    out.push(' ');
    out.push_str(c.addr_type.as_str());
    out.push(' ');
    out.push_str(&c.address);
}

fn push_rtpmap(out: &mut String, m: &RtpMap) {
    push_u64(out, u64::from(m.payload_type));
    out.push(' ');
    out.push_str(&m.encoding);
    out.push('/');
    push_u64(out, u64::from(m.clock_rate));
    if let Some(ch) = m.channels {
        out.push('/');
        push_u64(out, u64::from(ch));
    }
}

fn push_rtcp(out: &mut String, r: &Rtcp) {
    push_u64(out, u64::from(r.port));
    if let Some(c) = &r.connection {
        out.push(' ');
        push_connection(out, c);
    }
}

fn push_attribute(out: &mut String, a: &Attribute) {
    match a {
        Attribute::RtpMap(m) => {
            out.push_str("rtpmap:");
            push_rtpmap(out, m);
        }
        Attribute::Fmtp(p) => {
            out.push_str("fmtp:");
            push_u64(out, u64::from(p.payload_type));
            out.push(' ');
            out.push_str(&p.params);
        }
        Attribute::Ptime(ms) => {
            out.push_str("ptime:");
            push_u64(out, u64::from(*ms));
        }
        Attribute::MaxPtime(ms) => {
            out.push_str("maxptime:");
            push_u64(out, u64::from(*ms));
        }
        Attribute::Direction(d) => out.push_str(d.as_str()),
        Attribute::Rtcp(r) => {
            out.push_str("rtcp:");
            push_rtcp(out, r);
        }
        Attribute::RtcpMux => out.push_str("rtcp-mux"),
        Attribute::Other { name, value } => {
            out.push_str(name);
            if let Some(v) = value {
                out.push(':');
                out.push_str(v);
            }
        }
    }
}

/// Runs a writer into a scratch string and hands it to the formatter.
fn display_with(f: &mut Formatter<'_>, write: impl FnOnce(&mut String)) -> fmt::Result {
    let mut out = String::with_capacity(64);
    write(&mut out);
    f.write_str(&out)
}

impl Display for Origin {
    /// The value of `o=`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        display_with(f, |out| push_origin(out, self))
    }
}

impl Display for Connection {
    /// The value of `c=`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        display_with(f, |out| push_connection(out, self))
    }
}

impl Display for RtpMap {
    /// The value of `a=rtpmap:`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        display_with(f, |out| push_rtpmap(out, self))
    }
}

impl Display for Rtcp {
    /// The value of `a=rtcp:`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        display_with(f, |out| push_rtcp(out, self))
    }
}

impl Display for Attribute {
    /// The value of the `a=` line (without `a=`).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        display_with(f, |out| push_attribute(out, self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ip_text_matches_display_for_both_families() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
            IpAddr::V4(Ipv4Addr::new(255, 10, 100, 7)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6("2001:db8::1:0:0:1".parse().unwrap()),
        ] {
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for o in 0..=255u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(o, 9, o, 99));
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn push_u64_writes_zero_and_the_largest_value() {
        let mut s = String::new();
        push_u64(&mut s, 0);
        s.push(' ');
        push_u64(&mut s, u64::MAX);
        assert_eq!(s, format!("0 {}", u64::MAX));
    }

    #[test]
    fn push_u64_writes_what_to_string_writes() {
        let mut values: Vec<u64> = (0..=100_000).collect();
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, next - 1]);
            p = next;
        }
        values.extend([u64::MAX, u64::MAX - 1, 1 << 63, 12_345_678_901_234_567_890]);
        for v in values {
            let mut s = String::from("x");
            push_u64(&mut s, v);
            assert_eq!(s, format!("x{v}"));
        }
    }
}
