//! Header value grammar shared by several headers (RFC 3261 §25.1):
//! tokens, LWS, quoted strings, comma-separated lists, `;param` lists, and
//! the typed views a switch needs: [`NameAddr`] (From, To, Contact, Route,
//! Path), [`Via`] and [`CSeq`]. All views borrow from the message text.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr3};

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

/// Byte classes, one bit each, looked up in [`CLASS`] so that every
/// per-byte check is one load and one test.
const TOKEN: u8 = 1;
/// `token` plus the extra characters a parameter value may carry unquoted.
const PARAM_VALUE: u8 = 2;
/// Characters legal anywhere in a URI (RFC 3261 §25.1, unescaped).
pub(crate) const URI: u8 = 4;
/// Host name and IPv4 characters: alphanumerics, `-` and `.`.
pub(crate) const HOST: u8 = 8;
/// Linear white space as [`trim_lws`] trims it.
const LWS: u8 = 16;
/// A display name written as tokens: `token` plus space and tab.
const DISPLAY_WORDS: u8 = 32;
/// What ends a run of ordinary bytes when splitting at `;` outside quotes
/// and brackets: `"`, `<` and `;`.
const SPLIT_SEMI: u8 = 64;
/// The bytes [`crate::uri::Uri::parse`] notes while checking: `:`, `@`,
/// `?` and `;`.
pub(crate) const URI_MARK: u8 = 128;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mut bits = 0u8;
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            bits |= TOKEN | PARAM_VALUE | DISPLAY_WORDS;
        }
        if matches!(
            c,
            b':' | b'[' | b']' | b'/' | b'@' | b'&' | b'=' | b'+' | b'$'
        ) {
            bits |= PARAM_VALUE;
        }
        if alnum
            || matches!(
                c,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'%'
                    | b';'
                    | b'/'
                    | b'?'
                    | b':'
                    | b'@'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
                    | b'['
                    | b']'
                    | b'#'
            )
        {
            bits |= URI;
        }
        if alnum || c == b'-' || c == b'.' {
            bits |= HOST;
        }
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            bits |= LWS;
        }
        if matches!(c, b' ' | b'\t') {
            bits |= DISPLAY_WORDS;
        }
        if matches!(c, b'"' | b'<' | b';') {
            bits |= SPLIT_SEMI;
        }
        if matches!(c, b':' | b'@' | b'?' | b';') {
            bits |= URI_MARK;
        }
        t[b] = bits;
        b += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

/// Whether byte `b` is in class `class` (one of the bit constants above).
#[inline]
pub(crate) fn has_class(b: u8, class: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

/// The class bits of byte `b`.
#[inline]
pub(crate) fn class_of(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// Length of the run of class-`class` bytes at the start of `b`.
#[inline]
pub(crate) fn run(b: &[u8], class: u8) -> usize {
    b.iter()
        .position(|c| !has_class(*c, class))
        .unwrap_or(b.len())
}

/// Whether every byte of `s` is in class `class` (true for an empty `s`).
#[inline]
pub(crate) fn all_class(s: &[u8], class: u8) -> bool {
    s.iter().all(|b| has_class(*b, class))
}

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    has_class(b, TOKEN)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && all_class(s.as_bytes(), TOKEN)
}

/// Length of the run of `token` characters at the start of `b`.
pub(crate) fn token_len(b: &[u8]) -> usize {
    run(b, TOKEN)
}

/// Trims linear white space on both sides.
pub fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && has_class(b[start], LWS) {
        start += 1;
    }
    while end > start && has_class(b[end - 1], LWS) {
        end -= 1;
    }
    // Only ASCII bytes were cut, so both ends are char boundaries.
    s.get(start..end).unwrap_or("")
}

/// Returns the index just past the closing quote of a quoted string that
/// starts at `s[0] == '"'`.
fn quoted_end(s: &[u8]) -> Result<usize, SyntaxError> {
    let mut i = 1;
    while let Some(off) = s.get(i..).and_then(|rest| memchr2(b'\\', b'"', rest)) {
        i += off;
        if s[i] == b'"' {
            return Ok(i + 1);
        }
        // A backslash escapes the next byte, whatever it is.
        i += 2;
    }
    Err(SyntaxError::UnterminatedQuote)
}

/// An iterator over the pieces of `s` between `sep` bytes outside quoted
/// strings and angle brackets, without allocating. It yields one
/// `Err(UnterminatedQuote)` and stops if a quoted string is not closed;
/// [`split_top_level`] is this iterator collected.
#[derive(Debug, Clone)]
pub struct TopLevelSplit<'a> {
    s: &'a str,
    start: usize,
    sep: u8,
    done: bool,
}

impl<'a> TopLevelSplit<'a> {
    pub fn new(s: &'a str, sep: u8) -> Self {
        TopLevelSplit {
            s,
            start: 0,
            sep,
            done: false,
        }
    }

    /// The next `"`, `<` or separator at or after `from`. Parameter lists
    /// are short, so `;` is searched byte by byte; longer comma lists use
    /// `memchr3`.
    fn find_special(&self, b: &[u8], from: usize) -> Option<usize> {
        let rest = b.get(from..)?;
        let off = if self.sep == b';' {
            rest.iter().position(|c| has_class(*c, SPLIT_SEMI))
        } else {
            memchr3(b'"', b'<', self.sep, rest)
        };
        off.map(|o| from + o)
    }

    fn last_piece(&mut self) -> Option<Result<&'a str, SyntaxError>> {
        self.done = true;
        Some(Ok(self.s.get(self.start..).unwrap_or("")))
    }
}

impl<'a> Iterator for TopLevelSplit<'a> {
    type Item = Result<&'a str, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.s.as_bytes();
        let mut i = self.start;
        loop {
            // Outside brackets only a quote, a '<' or the separator matter.
            let Some(at) = self.find_special(b, i) else {
                return self.last_piece();
            };
            i = at;
            match b[i] {
                b'"' => match quoted_end(&b[i..]) {
                    Ok(n) => i += n,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
                // Inside brackets nothing matters until the '>'.
                b'<' => match memchr(b'>', &b[i + 1..]) {
                    Some(gt) => i += gt + 2,
                    None => return self.last_piece(),
                },
                // A '>' outside brackets is ordinary (sep == '>').
                b'>' => i += 1,
                _ => {
                    let piece = self.s.get(self.start..i).unwrap_or("");
                    self.start = i + 1;
                    return Some(Ok(piece));
                }
            }
        }
    }
}

/// Splits `s` at `sep` outside quoted strings and angle brackets.
pub fn split_top_level(s: &str, sep: u8) -> Result<Vec<&str>, SyntaxError> {
    TopLevelSplit::new(s, sep).collect()
}

/// Splits a comma-separated header value into trimmed elements; an empty
/// element is an error (RFC 4475 §3.1.2.1).
pub fn split_list(s: &str) -> Result<Vec<&str>, SyntaxError> {
    let mut out = Vec::new();
    let mut empty = false;
    for p in TopLevelSplit::new(s, b',') {
        let t = trim_lws(p?);
        empty |= t.is_empty();
        out.push(t);
    }
    // An unterminated quote anywhere wins over an empty element.
    if empty {
        return Err(SyntaxError::EmptyElement);
    }
    Ok(out)
}

/// The first element of a comma-separated value, if the whole value is a
/// well-formed list (what `split_list(s)?.first()` gives, without the `Vec`).
pub fn first_list_item(s: &str) -> Option<&str> {
    let mut first = None;
    for p in TopLevelSplit::new(s, b',') {
        let t = trim_lws(p.ok()?);
        if t.is_empty() {
            return None;
        }
        first.get_or_insert(t);
    }
    first
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
        if simple_params(raw.as_bytes()) {
            return Ok(Params { raw });
        }
        // The first bad parameter is reported, unless a quoted string is
        // unterminated somewhere in the list: that error wins.
        let mut bad: Option<SyntaxError> = None;
        for piece in TopLevelSplit::new(raw, b';') {
            let piece = piece?;
            if bad.is_some() {
                continue;
            }
            let (name, value) = split_param(piece);
            if !is_token(name) {
                bad = Some(SyntaxError::Param("missing or illegal parameter name"));
            } else if let Some(v) = value {
                let ok = (!v.is_empty() && all_class(v.as_bytes(), PARAM_VALUE))
                    || (v.starts_with('"') && v.len() >= 2 && v.ends_with('"'))
                    || (v.starts_with('[') && v.ends_with(']'));
                if !ok {
                    bad = Some(SyntaxError::Param("illegal parameter value"));
                }
            }
        }
        match bad {
            Some(e) => Err(e),
            None => Ok(Params { raw }),
        }
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
        // `raw` was validated by `parse`, so the split never fails.
        let mut pieces = TopLevelSplit::new(self.raw, b';');
        pieces.done = self.raw.is_empty();
        pieces.map_while(Result::ok).map(split_param)
    }

    /// Looks a parameter up case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        match self.get_simple(name) {
            Some(found) => found,
            None => self
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v),
        }
    }

    /// [`Params::get`] in one pass over `token[=value]` pieces joined by
    /// `;`; `None` as soon as anything else (white space, quotes, brackets)
    /// is met before the parameter is found, for the general path to redo.
    fn get_simple(&self, name: &str) -> Option<Option<Option<&'a str>>> {
        let b = self.raw.as_bytes();
        if b.is_empty() {
            return Some(None);
        }
        let mut i = 0;
        loop {
            let start = i;
            i += run(&b[i..], TOKEN);
            let key = &b[start..i];
            if key.is_empty() {
                return None;
            }
            let value = if b.get(i) == Some(&b'=') {
                i += 1;
                let v = i;
                i += run(&b[i..], PARAM_VALUE);
                Some(self.raw.get(v..i)?)
            } else {
                None
            };
            let last = match b.get(i) {
                None => true,
                Some(b';') => false,
                Some(_) => return None,
            };
            if key.eq_ignore_ascii_case(name.as_bytes()) {
                return Some(Some(value));
            }
            if last {
                return Some(None);
            }
            i += 1;
        }
    }
}

/// Whether `b` is `token[=value]` pieces joined by single `;`, with no white
/// space, quotes or brackets: the usual case, which [`Params::parse`]
/// accepts in one pass (anything else takes the general path).
fn simple_params(mut b: &[u8]) -> bool {
    loop {
        let name = run(b, TOKEN);
        if name == 0 {
            return false;
        }
        b = &b[name..];
        if let Some(rest) = b.strip_prefix(b"=") {
            let value = run(rest, PARAM_VALUE);
            if value == 0 {
                return false;
            }
            b = &rest[value..];
        }
        match b.split_first() {
            None => return true,
            Some((b';', rest)) => b = rest,
            Some(_) => return false,
        }
    }
}

fn split_param(piece: &str) -> (&str, Option<&str>) {
    match piece.bytes().position(|b| b == b'=') {
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
        } else if let Some(lt) = b.iter().position(|c| *c == b'<') {
            let d = trim_lws(&s[..lt]);
            // Words of token characters separated by spaces or tabs.
            if !all_class(d.as_bytes(), DISPLAY_WORDS) {
                return Err(SyntaxError::DisplayName);
            }
            (if d.is_empty() { None } else { Some(d) }, &s[lt..])
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let gt = memchr(b'>', inner.as_bytes()).ok_or(SyntaxError::NameAddr("missing '>'"))?;
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
        let (uri_text, params) = match memchr(b';', b) {
            Some(semi) => (trim_lws(&s[..semi]), Params::parse(&s[semi + 1..])?),
            None => (s, Params::EMPTY),
        };
        if memchr(b'?', uri_text.as_bytes()).is_some() {
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
        // sent-protocol = name "/" version "/" transport, LWS allowed.
        let slash = s
            .bytes()
            .position(|b| b == b'/')
            .ok_or(SyntaxError::Via("missing version"))?;
        let name = trim_lws(&s[..slash]);
        let after = &s[slash + 1..];
        let slash = after
            .bytes()
            .position(|b| b == b'/')
            .ok_or(SyntaxError::Via("missing transport"))?;
        let version = trim_lws(&after[..slash]);
        let rest = trim_lws(&after[slash + 1..]);
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
        let (sent_by, params) = match memchr(b';', after.as_bytes()) {
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
