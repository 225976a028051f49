//! Header names (RFC 3261 §7.3, §20): canonical names, compact forms and
//! case-insensitive lookup. Owns only the naming, not header values.

/// `input.eq_ignore_ascii_case(canon)` for a canonical name made of ASCII
/// letters and `-`, eight bytes at a time: a letter may differ in bit 0x20
/// only, any other byte must be equal.
fn eq_canonical(input: &[u8], canon: &[u8]) -> bool {
    /// Compares the `N` bytes at `at`; bit 0x20 is ignored where the
    /// canonical byte has bit 0x40 set (the letters here).
    fn same<const N: usize>(input: &[u8], canon: &[u8], at: usize) -> bool {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            if let Some(src) = b.get(at..at + N) {
                w[..N].copy_from_slice(src);
            }
            u64::from_le_bytes(w)
        };
        let (i, c) = (word(input), word(canon));
        let m = (c & 0x4040_4040_4040_4040) >> 1;
        i | m == c | m
    }
    let n = canon.len();
    if input.len() != n {
        return false;
    }
    // Whole words, then one word ending at the last byte (overlapping).
    match n {
        0 => true,
        1 => same::<1>(input, canon, 0),
        2..=3 => same::<2>(input, canon, 0) && same::<2>(input, canon, n - 2),
        4..=7 => same::<4>(input, canon, 0) && same::<4>(input, canon, n - 4),
        _ => (0..n / 8).all(|k| same::<8>(input, canon, 8 * k)) && same::<8>(input, canon, n - 8),
    }
}

/// A header name, with the ones the switch reads as variants and every
/// other one kept as `Other` (its text lives in the message buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    ContentLength,
    ContentType,
    ContentEncoding,
    MaxForwards,
    Expires,
    MinExpires,
    Route,
    RecordRoute,
    Path,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Require,
    ProxyRequire,
    Supported,
    Unsupported,
    Allow,
    Accept,
    UserAgent,
    Server,
    Date,
    Event,
    Subject,
    ReferTo,
    ReferredBy,
    SessionExpires,
    MinSe,
    RSeq,
    RAck,
    PAssertedIdentity,
    RetryAfter,
    Other,
}

/// Every known name with its canonical spelling and compact form: the
/// reference that `parse` and `as_str` are tested against.
#[cfg(test)]
const TABLE: &[(HeaderName, &str, Option<&str>)] = &[
    (HeaderName::Via, "Via", Some("v")),
    (HeaderName::From, "From", Some("f")),
    (HeaderName::To, "To", Some("t")),
    (HeaderName::CallId, "Call-ID", Some("i")),
    (HeaderName::CSeq, "CSeq", None),
    (HeaderName::Contact, "Contact", Some("m")),
    (HeaderName::ContentLength, "Content-Length", Some("l")),
    (HeaderName::ContentType, "Content-Type", Some("c")),
    (HeaderName::ContentEncoding, "Content-Encoding", Some("e")),
    (HeaderName::MaxForwards, "Max-Forwards", None),
    (HeaderName::Expires, "Expires", None),
    (HeaderName::MinExpires, "Min-Expires", None),
    (HeaderName::Route, "Route", None),
    (HeaderName::RecordRoute, "Record-Route", None),
    (HeaderName::Path, "Path", None),
    (HeaderName::Authorization, "Authorization", None),
    (HeaderName::ProxyAuthorization, "Proxy-Authorization", None),
    (HeaderName::WwwAuthenticate, "WWW-Authenticate", None),
    (HeaderName::ProxyAuthenticate, "Proxy-Authenticate", None),
    (HeaderName::Require, "Require", None),
    (HeaderName::ProxyRequire, "Proxy-Require", None),
    (HeaderName::Supported, "Supported", Some("k")),
    (HeaderName::Unsupported, "Unsupported", None),
    (HeaderName::Allow, "Allow", None),
    (HeaderName::Accept, "Accept", None),
    (HeaderName::UserAgent, "User-Agent", None),
    (HeaderName::Server, "Server", None),
    (HeaderName::Date, "Date", None),
    (HeaderName::Event, "Event", Some("o")),
    (HeaderName::Subject, "Subject", Some("s")),
    (HeaderName::ReferTo, "Refer-To", Some("r")),
    (HeaderName::ReferredBy, "Referred-By", Some("b")),
    (HeaderName::SessionExpires, "Session-Expires", Some("x")),
    (HeaderName::MinSe, "Min-SE", None),
    (HeaderName::RSeq, "RSeq", None),
    (HeaderName::RAck, "RAck", None),
    (HeaderName::PAssertedIdentity, "P-Asserted-Identity", None),
    (HeaderName::RetryAfter, "Retry-After", None),
];

impl HeaderName {
    /// Looks a header name up case-insensitively, accepting compact forms.
    ///
    /// The length and the first letter (and for a few pairs the second)
    /// pick at most one candidate, which is then compared in full.
    pub fn parse(name: &str) -> HeaderName {
        use HeaderName as H;
        let b = name.as_bytes();
        let Some(first) = b.first().map(u8::to_ascii_lowercase) else {
            return H::Other;
        };
        let second = b.get(1).map_or(0, u8::to_ascii_lowercase);
        let candidate = match (b.len(), first) {
            (1, _) => {
                return match first {
                    b'v' => H::Via,
                    b'f' => H::From,
                    b't' => H::To,
                    b'i' => H::CallId,
                    b'm' => H::Contact,
                    b'l' => H::ContentLength,
                    b'c' => H::ContentType,
                    b'e' => H::ContentEncoding,
                    b'k' => H::Supported,
                    b'o' => H::Event,
                    b's' => H::Subject,
                    b'r' => H::ReferTo,
                    b'b' => H::ReferredBy,
                    b'x' => H::SessionExpires,
                    _ => H::Other,
                }
            }
            (2, b't') => H::To,
            (3, b'v') => H::Via,
            (4, b'f') => H::From,
            (4, b'c') => H::CSeq,
            (4, b'p') => H::Path,
            (4, b'd') => H::Date,
            (4, b'r') if second == b's' => H::RSeq,
            (4, b'r') => H::RAck,
            (5, b'r') => H::Route,
            (5, b'a') => H::Allow,
            (5, b'e') => H::Event,
            (6, b'a') => H::Accept,
            (6, b's') => H::Server,
            (6, b'm') => H::MinSe,
            (7, b'c') if second == b'a' => H::CallId,
            (7, b'c') => H::Contact,
            (7, b'e') => H::Expires,
            (7, b'r') => H::Require,
            (7, b's') => H::Subject,
            (8, b'r') => H::ReferTo,
            (9, b's') => H::Supported,
            (10, b'u') => H::UserAgent,
            (11, b'm') => H::MinExpires,
            (11, b'u') => H::Unsupported,
            (11, b'r') if b.get(2).map(u8::to_ascii_lowercase) == Some(b'f') => H::ReferredBy,
            (11, b'r') => H::RetryAfter,
            (12, b'm') => H::MaxForwards,
            (12, b'c') => H::ContentType,
            (12, b'r') => H::RecordRoute,
            (13, b'a') => H::Authorization,
            (13, b'p') => H::ProxyRequire,
            (14, b'c') => H::ContentLength,
            (15, b's') => H::SessionExpires,
            (16, b'c') => H::ContentEncoding,
            (16, b'w') => H::WwwAuthenticate,
            (18, b'p') => H::ProxyAuthenticate,
            (19, b'p') if second == b'-' => H::PAssertedIdentity,
            (19, b'p') => H::ProxyAuthorization,
            _ => return H::Other,
        };
        if eq_canonical(b, candidate.as_str().as_bytes()) {
            candidate
        } else {
            H::Other
        }
    }

    /// The canonical spelling used when Carillon writes the header.
    pub fn as_str(self) -> &'static str {
        use HeaderName as H;
        match self {
            H::Via => "Via",
            H::From => "From",
            H::To => "To",
            H::CallId => "Call-ID",
            H::CSeq => "CSeq",
            H::Contact => "Contact",
            H::ContentLength => "Content-Length",
            H::ContentType => "Content-Type",
            H::ContentEncoding => "Content-Encoding",
            H::MaxForwards => "Max-Forwards",
            H::Expires => "Expires",
            H::MinExpires => "Min-Expires",
            H::Route => "Route",
            H::RecordRoute => "Record-Route",
            H::Path => "Path",
            H::Authorization => "Authorization",
            H::ProxyAuthorization => "Proxy-Authorization",
            H::WwwAuthenticate => "WWW-Authenticate",
            H::ProxyAuthenticate => "Proxy-Authenticate",
            H::Require => "Require",
            H::ProxyRequire => "Proxy-Require",
            H::Supported => "Supported",
            H::Unsupported => "Unsupported",
            H::Allow => "Allow",
            H::Accept => "Accept",
            H::UserAgent => "User-Agent",
            H::Server => "Server",
            H::Date => "Date",
            H::Event => "Event",
            H::Subject => "Subject",
            H::ReferTo => "Refer-To",
            H::ReferredBy => "Referred-By",
            H::SessionExpires => "Session-Expires",
            H::MinSe => "Min-SE",
            H::RSeq => "RSeq",
            H::RAck => "RAck",
            H::PAssertedIdentity => "P-Asserted-Identity",
            H::RetryAfter => "Retry-After",
            H::Other => "X-Unknown",
        }
    }

    /// Headers that may appear at most once in a request (RFC 3261 §7.3.1);
    /// several values make the request malformed (RFC 4475 §3.3.8).
    pub fn is_single_valued(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_long_forms_are_the_same_header() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("VIA"), HeaderName::Via);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("m"), HeaderName::Contact);
        assert_eq!(HeaderName::parse("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("NewFangledHeader"), HeaderName::Other);
        assert_eq!(HeaderName::parse("q"), HeaderName::Other);
    }

    #[test]
    fn canonical_names_round_trip() {
        for (h, full, _) in TABLE {
            assert_eq!(HeaderName::parse(full), *h);
            assert_eq!(h.as_str(), *full);
        }
        assert_eq!(TABLE.len(), 38);
    }

    #[test]
    fn names_match_in_any_case_and_near_misses_do_not() {
        for (h, full, _) in TABLE {
            assert_eq!(HeaderName::parse(&full.to_ascii_lowercase()), *h);
            assert_eq!(HeaderName::parse(&full.to_ascii_uppercase()), *h);
            // Same length and first letter, one byte changed further on.
            let mut near = full.as_bytes().to_vec();
            let last = near.len() - 1;
            near[last] = if near[last] == b'Z' { b'Y' } else { b'Z' };
            let near = String::from_utf8(near).unwrap();
            assert_eq!(HeaderName::parse(&near), HeaderName::Other, "{near}");
        }
        assert_eq!(HeaderName::parse(""), HeaderName::Other);
        assert_eq!(HeaderName::parse("Call-IDs"), HeaderName::Other);
        assert_eq!(HeaderName::parse("Via\u{e9}"), HeaderName::Other);
    }

    #[test]
    fn every_compact_form_and_only_those_letters_are_known() {
        for c in b'a'..=b'z' {
            let want = TABLE
                .iter()
                .find(|(_, _, compact)| compact.is_some_and(|x| x.as_bytes()[0] == c))
                .map_or(HeaderName::Other, |(h, _, _)| *h);
            let lower = (c as char).to_string();
            assert_eq!(HeaderName::parse(&lower), want, "{lower}");
            assert_eq!(HeaderName::parse(&lower.to_ascii_uppercase()), want);
        }
    }
}
