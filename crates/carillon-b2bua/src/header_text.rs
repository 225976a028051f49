//! Header values the switch writes on every call leg — Via, From/To with
//! a tag, CSeq, Contact, branches and Call-IDs — appended into one
//! exactly-sized `String` each, without `format!`.
//!
//! Owns only text assembly: no SIP state and no policy. The values are
//! the ones RFC 3261 §8.1.1 and §12.2.1.1 require of a UAC; callers choose
//! them. `format!` goes through `core::fmt` (dynamic dispatch, padding
//! checks, a growing buffer) and `Ipv4Addr`'s `Display` alone costs about
//! a thousand instructions, which on the signalling hot path was a tenth
//! of the switch's work per call.

use std::net::SocketAddr;

/// The concatenation of `parts`, allocated once.
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

pub(crate) use carillon_sdp::{push_ip, push_u64};

/// Appends `n` as eight (or more) lower-case hex digits, as `{n:08x}`.
pub(crate) fn push_hex08(out: &mut String, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let width = (16 - n.leading_zeros() as usize / 4).max(8);
    for i in (0..width).rev() {
        out.push(char::from(HEX[((n >> (i * 4)) & 0xf) as usize]));
    }
}

/// `host:port` (IPv4) or `[host]:port` (IPv6), as a SIP URI writes it.
pub(crate) fn sip_uri_host(addr: SocketAddr) -> String {
    let mut out = String::with_capacity(48);
    if addr.is_ipv6() {
        out.push('[');
        push_ip(&mut out, addr.ip());
        out.push(']');
    } else {
        push_ip(&mut out, addr.ip());
    }
    out.push(':');
    push_u64(&mut out, u64::from(addr.port()));
    out
}

/// `SIP/2.0/<token> <host>;branch=<branch>;rport`.
pub(crate) fn via(token: &str, host: &str, branch: &str) -> String {
    concat(&["SIP/2.0/", token, " ", host, ";branch=", branch, ";rport"])
}

/// `<seq> <method>`, a CSeq value.
pub(crate) fn cseq(seq: u32, method: &str) -> String {
    let mut out = String::with_capacity(method.len() + 11);
    push_u64(&mut out, u64::from(seq));
    out.push(' ');
    out.push_str(method);
    out
}

/// `SIP/<name>-<key as {:08x}>`, a channel name as Asterisk writes it.
pub(crate) fn channel(name: &str, key: u64) -> String {
    let mut out = String::with_capacity(name.len() + 21);
    out.push_str("SIP/");
    out.push_str(name);
    out.push('-');
    push_hex08(&mut out, key);
    out
}

/// The name-addr without its `;tag=` parameter (and anything after it).
pub(crate) fn strip_tag(name_addr: &str) -> &str {
    // `find(";tag=")` by a scan for ';' (a `&str` pattern sets up a
    // two-way searcher for every call).
    let bytes = name_addr.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes
        .get(from..)
        .and_then(|r| r.iter().position(|b| *b == b';'))
    {
        let at = from + i;
        if bytes.get(at..).is_some_and(|r| r.starts_with(b";tag=")) {
            return name_addr.get(..at).unwrap_or(name_addr);
        }
        from = at + 1;
    }
    name_addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_helper_writes_what_format_would() {
        let v4 = SocketAddr::from(([192, 168, 1, 20], 5060));
        let v6: SocketAddr = "[2001:db8::7]:5070".parse().unwrap();
        assert_eq!(sip_uri_host(v4), format!("{}:{}", v4.ip(), v4.port()));
        assert_eq!(sip_uri_host(v6), "[2001:db8::7]:5070");
        assert_eq!(
            via("UDP", "h:1", "z9hG4bKx"),
            "SIP/2.0/UDP h:1;branch=z9hG4bKx;rport"
        );
        assert_eq!(cseq(0, "BYE"), "0 BYE");
        assert_eq!(cseq(u32::MAX, "INVITE"), format!("{} INVITE", u32::MAX));
        let mut id = String::new();
        push_u64(&mut id, 1_800_000_000);
        id.push('.');
        push_hex08(&mut id, 0xdead_beef);
        assert_eq!(id, format!("1800000000.{:08x}", 0xdead_beefu32));
        for key in [0u64, 1, 0xabc, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            assert_eq!(channel("100", key), format!("SIP/100-{key:08x}"));
        }
        assert_eq!(strip_tag("<sip:a@b>;tag=9;x=1"), "<sip:a@b>");
        assert_eq!(strip_tag("<sip:a@b>"), "<sip:a@b>");
        for s in [
            "",
            ";tag=",
            "a;tag",
            "<sip:a@b;x=1>;ta;tag=1",
            "<sip:a@b>;x;;tag=2;tag=3",
            "\"é;\" <sip:a@b>;tag=ü",
        ] {
            let want = s.find(";tag=").map_or(s, |i| &s[..i]);
            assert_eq!(strip_tag(s), want, "{s:?}");
        }
    }
}
