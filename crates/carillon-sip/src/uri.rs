//! SIP and other URIs (RFC 3261 §19.1, §25.1): a borrowed view over the
//! message text. Owns URI syntax checks (no whitespace, legal characters,
//! host and port), parameter and header access, and `%HH` unescaping for
//! comparisons; the raw text is never rewritten (RFC 4475 §3.1.1.3).

use std::borrow::Cow;
use std::fmt;

use crate::syntax::{class_of, run, Params, SyntaxError, HOST, URI, URI_MARK};

/// The URI scheme. Anything that is not `sip`, `sips` or `tel` is `Other`,
/// which a switch answers 416 (RFC 3261 §8.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    Other(&'a str),
}

/// A parsed URI borrowing from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme<'a>,
    /// User part, still escaped.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host (hostname, IPv4 or `[IPv6]`); empty for non-SIP schemes.
    pub host: &'a str,
    pub port: Option<u16>,
    /// URI parameters (`;lr;transport=tcp`).
    pub params: Params<'a>,
    /// Header part after `?`, still escaped.
    pub headers: Option<&'a str>,
    raw: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI. Whitespace, `<`, `>`, `"` and control
    /// characters are errors (RFC 4475 §3.1.2.8, §3.1.2.14).
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, SyntaxError> {
        if raw.is_empty() {
            return Err(SyntaxError::Uri("empty URI"));
        }
        // One pass checks every byte and notes the first ':', the last '@'
        // and the first '?' and ';' after that '@' (URIs are short: a byte
        // loop beats SIMD searches and their set-up).
        let mut colon = None;
        let mut last_at = None;
        let mut question = None;
        let mut semi = None;
        for (i, &b) in raw.as_bytes().iter().enumerate() {
            let class = class_of(b);
            if class & (URI | URI_MARK) == URI {
                continue;
            }
            if class & URI == 0 {
                return Err(if b == b' ' || b == b'\t' {
                    SyntaxError::Uri("whitespace inside URI")
                } else {
                    SyntaxError::Uri("illegal character in URI")
                });
            }
            match b {
                b':' => colon = colon.or(Some(i)),
                b'@' => {
                    last_at = Some(i);
                    question = None;
                    semi = None;
                }
                b'?' => question = question.or(Some(i)),
                _ => semi = semi.or(Some(i)),
            }
        }
        let colon = colon.ok_or(SyntaxError::Uri("URI has no scheme"))?;
        let scheme_text = &raw[..colon];
        let mut chars = scheme_text.bytes();
        let first_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !chars.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return Err(SyntaxError::Uri("bad URI scheme"));
        }
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_text.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_text)
        };
        let rest = &raw[colon + 1..];
        if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
            if rest.is_empty() {
                return Err(SyntaxError::Uri("empty URI body"));
            }
            return Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: "",
                port: None,
                params: Params::EMPTY,
                headers: None,
                raw,
            });
        }
        // The last '@' ends the userinfo: neither parameters nor headers
        // may contain an unescaped '@', but a user part may contain '?' and
        // ';' (RFC 4475 §3.1.1.2, §3.1.1.9).
        // A valid scheme holds none of ':', '@', '?' and ';', so what was
        // noted lies in `rest`; offsets below are relative to `rest`.
        let in_rest = |at: Option<usize>| at.and_then(|at| at.checked_sub(colon + 1));
        let (userinfo, after_user) = match in_rest(last_at) {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let base = rest.len() - after_user.len();
        let in_after = |at: Option<usize>| in_rest(at).and_then(|at| at.checked_sub(base));
        let question = in_after(question);
        let (hostpart, headers) = match question {
            Some(q) => (&after_user[..q], Some(&after_user[q + 1..])),
            None => (after_user, None),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match find_byte(ui, b':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(SyntaxError::Uri("empty user part"));
                }
                (Some(u), p)
            }
            None => (None, None),
        };
        let semi = in_after(semi).filter(|s| !matches!(question, Some(q) if q < *s));
        let (hostport, params) = match semi {
            Some(s) => (&hostpart[..s], Params::parse(&hostpart[s + 1..])?),
            None => (hostpart, Params::EMPTY),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            raw,
        })
    }

    /// The URI exactly as received.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The user part with `%HH` escapes decoded once.
    pub fn user_unescaped(&self) -> Option<Cow<'a, str>> {
        self.user.map(unescape)
    }

    /// A URI parameter (`None` = absent, `Some(None)` = present without value).
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Index of the first `needle` in `s`.
fn find_byte(s: &str, needle: u8) -> Option<usize> {
    s.bytes().position(|b| b == needle)
}

/// Splits `host[:port]`, validating the host and port.
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), SyntaxError> {
    let (host, port_text) = if let Some(stripped) = s.strip_prefix('[') {
        let end =
            find_byte(stripped, b']').ok_or(SyntaxError::Host("unterminated IPv6 reference"))?;
        let host = &s[..end + 2];
        let after = &stripped[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(SyntaxError::Host("junk after IPv6 reference")),
        }
    } else {
        // The host runs to the first byte outside the host characters,
        // which must be the ':' before a port.
        let c = run(s.as_bytes(), HOST);
        match s.as_bytes().get(c) {
            None => (s, None),
            Some(b':') if c == 0 => return Err(SyntaxError::Host("empty host")),
            Some(b':') => (&s[..c], Some(&s[c + 1..])),
            Some(_) => return Err(SyntaxError::Host("illegal character in host")),
        }
    };
    if host.is_empty() {
        return Err(SyntaxError::Host("empty host"));
    }
    let port = match port_text {
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SyntaxError::Host("bad port"));
            }
            // At most five digits: no overflow in u32.
            let n = p.bytes().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
            Some(u16::try_from(n).map_err(|_| SyntaxError::Host("port out of range"))?)
        }
        None => None,
    };
    Ok((host, port))
}

/// Decodes `%HH` escapes once; invalid escapes are kept literally.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (hi, lo) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_sip_uri_is_split_into_its_parts() {
        let u =
            Uri::parse("sip:alice:secret@[2001:db8::1]:5070;transport=tcp;lr?Subject=hi").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, Some("Subject=hi"));
    }

    #[test]
    fn a_user_part_may_contain_semicolons() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.user_unescaped().unwrap(), "user;par=u@example.net");
    }

    #[test]
    fn escapes_are_decoded_exactly_once() {
        assert_eq!(unescape("%2541"), "%41");
        assert_eq!(unescape("cal%6Cer"), "caller");
        assert_eq!(unescape("bad%zz%"), "bad%zz%");
    }

    #[test]
    fn whitespace_and_brackets_are_rejected() {
        assert!(Uri::parse("sip:user@example.com extra").is_err());
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@exa\"mple.com").is_err());
        assert!(Uri::parse("sip:user@host:99999").is_err());
    }

    #[test]
    fn other_schemes_parse_as_other() {
        let u = Uri::parse("isbn:2983792873").unwrap();
        assert_eq!(u.scheme, Scheme::Other("isbn"));
        assert!(!u.is_sip());
    }
}
