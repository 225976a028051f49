//! Header value grammar shared by several headers (RFC 3261 §25.1):
//! tokens, LWS, quoted strings, comma-separated lists, `;param` lists, and
//! the typed views a switch needs: [`NameAddr`] (From, To, Contact, Route,
//! Path), [`Via`] and [`CSeq`]. All views borrow from the message text.

use std::borrow::Cow;

use crate::method::Method;
use crate::uri::{split_host_port, Uri};

/// Why a header value does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("bad URI: {0}")]
    Uri(&'static str),
    #[error("bad host: {0}")]
    Host(&'static str),
    #[error("bad parameter: {0}")]
    Param(&'static str),
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("bad display name")]
    DisplayName,
    #[error("bad name-addr: {0}")]
    NameAddr(&'static str),
    #[error("bad Via: {0}")]
    Via(&'static str),
    #[error("bad CSeq: {0}")]
    CSeq(&'static str),
    #[error("empty list element")]
    EmptyElement,
    #[error("bad number")]
    Number,
}

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space on both sides.
pub fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// Returns the index just past the closing quote of a quoted string that
/// starts at `s[0] == '"'`.
fn quoted_end(s: &[u8]) -> Result<usize, SyntaxError> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(SyntaxError::UnterminatedQuote)
}

/// Splits `s` at `sep` outside quoted strings and angle brackets.
pub fn split_top_level(s: &str, sep: u8) -> Result<Vec<&str>, SyntaxError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut in_angle = false;
    while i < b.len() {
        match b[i] {
            b'"' if !in_angle => {
                i += quoted_end(&b[i..])?;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            c if c == sep && !in_angle => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start..]);
    Ok(out)
}

/// Splits a comma-separated header value into trimmed elements; an empty
/// element is an error (RFC 4475 §3.1.2.1).
pub fn split_list(s: &str) -> Result<Vec<&str>, SyntaxError> {
    let parts = split_top_level(s, b',')?;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let t = trim_lws(p);
        if t.is_empty() {
            return Err(SyntaxError::EmptyElement);
        }
        out.push(t);
    }
    Ok(out)
}

/// A `;name[=value]` list, validated at parse time and read lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    pub const EMPTY: Params<'static> = Params { raw: "" };

    /// Validates the text after the first `;` of a parameter list.
    pub fn parse(raw: &'a str) -> Result<Params<'a>, SyntaxError> {
        for piece in split_top_level(raw, b';')? {
            let (name, value) = split_param(piece);
            if !is_token(name) {
                return Err(SyntaxError::Param("missing or illegal parameter name"));
            }
            if let Some(v) = value {
                let ok = is_token(v)
                    || (v.starts_with('"') && v.len() >= 2 && v.ends_with('"'))
                    || (v.starts_with('[') && v.ends_with(']'))
                    || (!v.is_empty()
                        && v.bytes()
                            .all(|b| is_token_char(b) || b":[]/@&=+$".contains(&b)));
                if !ok {
                    return Err(SyntaxError::Param("illegal parameter value"));
                }
            }
        }
        Ok(Params { raw })
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The parameters as written, without the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates `(name, value)` pairs, trimmed.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let raw = self.raw;
        let pieces = if raw.is_empty() {
            Vec::new()
        } else {
            split_top_level(raw, b';').unwrap_or_default()
        };
        pieces.into_iter().map(split_param)
    }

    /// Looks a parameter up case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

fn split_param(piece: &str) -> (&str, Option<&str>) {
    match piece.find('=') {
        Some(eq) => (trim_lws(&piece[..eq]), Some(trim_lws(&piece[eq + 1..]))),
        None => (trim_lws(piece), None),
    }
}

/// `name-addr / addr-spec` with header parameters (RFC 3261 §20.10):
/// the value of From, To, Contact, Route, Record-Route and Path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept if it was quoted).
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`…).
    pub params: Params<'a>,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, SyntaxError> {
        let s = trim_lws(s);
        let b = s.as_bytes();
        let (display, after_display) = if b.first() == Some(&b'"') {
            let end = quoted_end(b)?;
            (Some(&s[..end]), trim_lws(&s[end..]))
        } else if let Some(lt) = s.find('<') {
            let d = trim_lws(&s[..lt]);
            if !d.is_empty() && !d.split([' ', '\t']).all(|w| w.is_empty() || is_token(w)) {
                return Err(SyntaxError::DisplayName);
            }
            (if d.is_empty() { None } else { Some(d) }, &s[lt..])
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let gt = inner
                .find('>')
                .ok_or(SyntaxError::NameAddr("missing '>'"))?;
            let uri = Uri::parse(&inner[..gt])?;
            let rest = trim_lws(&inner[gt + 1..]);
            let params = if rest.is_empty() {
                Params::EMPTY
            } else {
                let p = rest
                    .strip_prefix(';')
                    .ok_or(SyntaxError::NameAddr("junk after '>'"))?;
                Params::parse(p)?
            };
            return Ok(NameAddr {
                display,
                uri,
                params,
                bracketed: true,
            });
        }
        if display.is_some() {
            return Err(SyntaxError::NameAddr("display name without <URI>"));
        }
        // addr-spec form: parameters belong to the header, and the URI may
        // not carry '?', ',' or ';' (RFC 3261 §20).
        let (uri_text, params) = match s.find(';') {
            Some(semi) => (trim_lws(&s[..semi]), Params::parse(&s[semi + 1..])?),
            None => (s, Params::EMPTY),
        };
        if uri_text.contains('?') {
            return Err(SyntaxError::NameAddr("URI with headers must be in <>"));
        }
        Ok(NameAddr {
            display: None,
            uri: Uri::parse(uri_text)?,
            params,
            bracketed: false,
        })
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The display name without quotes and escapes.
    pub fn display_unquoted(&self) -> Option<Cow<'a, str>> {
        self.display.map(
            |d| match d.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                Some(inner) if inner.contains('\\') => {
                    let mut out = String::with_capacity(inner.len());
                    let mut esc = false;
                    for c in inner.chars() {
                        if esc || c != '\\' {
                            out.push(c);
                            esc = false;
                        } else {
                            esc = true;
                        }
                    }
                    Cow::Owned(out)
                }
                Some(inner) => Cow::Borrowed(inner),
                None => Cow::Borrowed(d),
            },
        )
    }
}

/// One Via value (RFC 3261 §20.42, RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, or unknown ones).
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    pub fn parse(s: &'a str) -> Result<Via<'a>, SyntaxError> {
        let s = trim_lws(s);
        let mut parts = s.splitn(3, '/');
        let name = trim_lws(parts.next().unwrap_or(""));
        let version = trim_lws(parts.next().ok_or(SyntaxError::Via("missing version"))?);
        let rest = trim_lws(parts.next().ok_or(SyntaxError::Via("missing transport"))?);
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(SyntaxError::Via("protocol is not SIP/2.0"));
        }
        let tlen = rest.bytes().take_while(|b| is_token_char(*b)).count();
        if tlen == 0 {
            return Err(SyntaxError::Via("missing transport"));
        }
        let transport = &rest[..tlen];
        let after = &rest[tlen..];
        if !after.starts_with([' ', '\t', '\r', '\n']) {
            return Err(SyntaxError::Via("missing sent-by"));
        }
        let after = trim_lws(after);
        let (sent_by, params) = match after.find(';') {
            Some(semi) => (trim_lws(&after[..semi]), Params::parse(&after[semi + 1..])?),
            None => (after, Params::EMPTY),
        };
        let (host, port) = split_host_port(sent_by).map_err(|_| SyntaxError::Via("bad sent-by"))?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// `Some(None)` when `rport` is present without a value (RFC 3581 request).
    pub fn rport(&self) -> Option<Option<&'a str>> {
        self.params.get("rport")
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `sent-by` as `host[:port]`, for transaction matching.
    pub fn sent_by(&self) -> (&'a str, u16) {
        let default = if self.transport.eq_ignore_ascii_case("TLS") {
            5061
        } else {
            5060
        };
        (self.host, self.port.unwrap_or(default))
    }
}

/// CSeq (RFC 3261 §20.16): a 32-bit sequence number and a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, SyntaxError> {
        let s = trim_lws(s);
        let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(SyntaxError::CSeq("missing sequence number"));
        }
        let seq =
            parse_u32(&s[..digits]).ok_or(SyntaxError::CSeq("sequence number above 2^32-1"))?;
        let rest = &s[digits..];
        if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
            return Err(SyntaxError::CSeq("missing space before method"));
        }
        let method = trim_lws(rest);
        if !is_token(method) {
            return Err(SyntaxError::CSeq("bad method"));
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

/// Parses decimal digits into a u32 without wrapping (leading zeros allowed).
pub fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v * 10 + u64::from(b - b'0');
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(v).ok()
}

/// Parses decimal digits, saturating at `u32::MAX` (for Expires and
/// Max-Forwards, where an overlarge value must not wrap: RFC 4475 §3.1.2.4).
pub fn parse_u32_saturating(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(parse_u32(s).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_with_quoted_display_and_params() {
        let n = NameAddr::parse(r#""Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33"#).unwrap();
        assert_eq!(n.uri.user, Some("jdrosen"));
        assert_eq!(n.params.get("newparam"), Some(Some("newvalue")));
        assert_eq!(n.params.get("secondparam"), Some(None));
        assert_eq!(n.params.get("q"), Some(Some("0.33")));
        assert_eq!(n.display_unquoted().unwrap(), r#"Quoted string """#);
    }

    #[test]
    fn addr_spec_parameters_belong_to_the_header() {
        let n = NameAddr::parse("sip:user@example.com;tag=abc").unwrap();
        assert!(n.uri.params.is_empty());
        assert_eq!(n.tag(), Some("abc"));
    }

    #[test]
    fn token_display_names_need_no_space_before_bracket() {
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("caller"));
        assert_eq!(n.tag(), Some("323"));
    }

    #[test]
    fn malformed_name_addrs_are_rejected() {
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
        assert!(NameAddr::parse("Bell").is_err());
        assert!(NameAddr::parse("<sip:user@example.com> junk").is_err());
    }

    #[test]
    fn via_tolerates_lws_around_slashes() {
        let v = Via::parse("SIP  /   2.0  / UDP  192.0.2.2 ; branch = z9hG4bK1;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.sent_by(), ("192.0.2.2", 5060));
    }

    #[test]
    fn via_with_stray_semicolons_is_rejected() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(split_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
    }

    #[test]
    fn cseq_rejects_values_above_32_bits() {
        assert_eq!(CSeq::parse("0009\r\n  INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("4294967296 INVITE").is_err());
        assert_eq!(CSeq::parse("4294967295 INVITE").unwrap().seq, u32::MAX);
        assert!(CSeq::parse("12INVITE").is_err());
    }

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        let l = split_list(r#""a,b" <sip:x@y;p=1,2>, <sip:z@w>"#).unwrap();
        assert_eq!(l.len(), 2);
    }
}
