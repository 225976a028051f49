//! Header names (RFC 3261 §7.3, §20): canonical names, compact forms and
//! case-insensitive lookup. Owns only the naming, not header values.

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
    pub fn parse(name: &str) -> HeaderName {
        if name.len() == 1 {
            for (h, _, compact) in TABLE {
                if let Some(c) = compact {
                    if c.eq_ignore_ascii_case(name) {
                        return *h;
                    }
                }
            }
            return HeaderName::Other;
        }
        for (h, full, _) in TABLE {
            if full.len() == name.len() && full.eq_ignore_ascii_case(name) {
                return *h;
            }
        }
        HeaderName::Other
    }

    /// The canonical spelling used when Carillon writes the header.
    pub fn as_str(self) -> &'static str {
        TABLE
            .iter()
            .find(|(h, _, _)| *h == self)
            .map(|(_, full, _)| *full)
            .unwrap_or("X-Unknown")
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
    }
}
