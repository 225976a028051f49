//! The SIP message and its zero-copy parser (RFC 3261 §7).
//!
//! A [`Message`] owns the received datagram or stream frame as [`Bytes`]:
//! the head (start line and headers) is checked as UTF-8 once and kept as a
//! `ByteString`, headers are byte ranges into it, and the body is a slice of
//! the same allocation. Header folding (§7.3.1) is kept in the buffer; the
//! few folded values are unfolded once at parse time into a side table, so
//! every header value can be borrowed from the message. The parser checks framing
//! (start line, version, header syntax, Content-Length); the semantic
//! checks of individual header values live in [`crate::validate`].

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use bytestring::ByteString;
use memchr::memchr;

use crate::header::HeaderName;
use crate::method::Method;
use crate::syntax::{
    first_list_item, is_token, split_list, token_len, CSeq, NameAddr, SyntaxError, Via,
};
use crate::uri::Uri;

/// Largest message Carillon accepts (UDP datagram or stream frame).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Why a byte string is not a SIP message; [`ParseError::status`] gives the
/// response a request is owed (a response that fails to parse is dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message too large ({size} bytes)")]
    TooLarge { size: usize },
    #[error("no end of headers")]
    Incomplete,
    #[error("message head is not UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    StartLine,
    #[error("unsupported SIP version {0}")]
    Version(String),
    #[error("bad status code")]
    StatusCode,
    #[error("malformed header line {line}")]
    HeaderLine { line: usize },
    #[error("bad Content-Length")]
    ContentLength,
    #[error("conflicting Content-Length headers")]
    ContentLengthConflict,
    #[error("body is shorter than Content-Length ({declared} declared, {actual} present)")]
    BodyLength { declared: usize, actual: usize },
    #[error("bad Request-URI: {0}")]
    RequestUri(SyntaxError),
}

impl ParseError {
    /// Status code owed to a request that failed this way.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::TooLarge { .. } => 513,
            ParseError::Version(_) => 505,
            _ => 400,
        }
    }
}

/// Request line or status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: Range<usize> },
    Response { code: u16, reason: Range<usize> },
}

#[derive(Debug, Clone)]
struct HeaderEntry {
    name: HeaderName,
    name_range: Range<usize>,
    value: Range<usize>,
    /// Set for a folded line: its unfolded value in `Message::unfolded`.
    unfolded: Option<u32>,
    folded: bool,
}

/// A parsed SIP request or response borrowing nothing: it owns its bytes.
#[derive(Debug, Clone)]
pub struct Message {
    head: ByteString,
    body: Bytes,
    start: StartLine,
    headers: Vec<HeaderEntry>,
    /// Unfolded values of folded header lines (§7.3.1), made once at parse
    /// time so that every header value can be borrowed from the message.
    unfolded: Vec<Box<str>>,
}

/// How many line ends [`LineEnds`] remembers; longer heads are rare and
/// their remaining lines are searched again.
const LINE_CACHE: usize = 40;

/// The LF positions met while looking for the end of the head, so that the
/// header loop does not search the same bytes a second time.
struct LineEnds {
    at: [u32; LINE_CACHE],
    len: usize,
    next: usize,
}

impl LineEnds {
    fn new() -> Self {
        LineEnds {
            at: [0; LINE_CACHE],
            len: 0,
            next: 0,
        }
    }

    fn push(&mut self, lf: usize) {
        if let (Some(slot), Ok(lf)) = (self.at.get_mut(self.len), u32::try_from(lf)) {
            *slot = lf;
            self.len += 1;
        }
    }

    /// The first LF at or after `pos` and before `limit`, if any.
    fn find(&mut self, bytes: &[u8], pos: usize, limit: usize) -> Option<usize> {
        while self.next < self.len {
            let lf = self.at[self.next] as usize;
            if lf >= pos {
                return (lf < limit).then_some(lf);
            }
            self.next += 1;
        }
        if self.len == LINE_CACHE {
            // Past the cache: search the rest of the head.
            return bytes
                .get(pos..limit)
                .and_then(|r| memchr(b'\n', r))
                .map(|e| pos + e);
        }
        None
    }
}

fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    find_head_end_with(buf, |_| {})
}

/// Finds the end of the head, telling `on_lf` about every LF before it.
fn find_head_end_with(buf: &[u8], mut on_lf: impl FnMut(usize)) -> Option<(usize, usize)> {
    // Returns (end of last header line, start of body): the first LF that
    // is followed by LF or CRLF ends the head.
    let mut from = 0;
    while let Some(off) = buf.get(from..).and_then(|rest| memchr(b'\n', rest)) {
        let i = from + off;
        on_lf(i);
        match buf.get(i + 1) {
            Some(b'\n') => return Some((i, i + 2)),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => {
                let end = if i > 0 && buf.get(i - 1) == Some(&b'\r') {
                    i - 1
                } else {
                    i
                };
                return Some((end, i + 3));
            }
            None => return None,
            Some(_) => from = i + 1,
        }
    }
    None
}

/// Whether `b` is white space for `str::trim` (ASCII part of Unicode
/// `White_Space`: tab, LF, VT, FF, CR and space).
fn is_ascii_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `s.trim_start()`, with a byte loop for the ASCII white space that
/// precedes nearly every header value.
fn trim_start_fast(s: &str) -> &str {
    // Usual case: "Name: value", one space then a printable ASCII byte.
    if let [b' ', b'!'..=b'~', ..] = s.as_bytes() {
        return &s[1..];
    }
    let skip = s.bytes().take_while(|b| is_ascii_ws(*b)).count();
    let rest = s.get(skip..).unwrap_or("");
    if rest.as_bytes().first().is_some_and(|b| *b >= 0x80) {
        rest.trim_start()
    } else {
        rest
    }
}

/// `s.trim_end()`, with a byte loop for ASCII white space.
fn trim_end_fast(s: &str) -> &str {
    if let [.., b'!'..=b'~'] = s.as_bytes() {
        return s;
    }
    let keep = s.len() - s.bytes().rev().take_while(|b| is_ascii_ws(*b)).count();
    let rest = s.get(..keep).unwrap_or("");
    if rest.as_bytes().last().is_some_and(|b| *b >= 0x80) {
        rest.trim_end()
    } else {
        rest
    }
}

/// Length of a complete message at the start of a stream buffer, framed by
/// Content-Length (RFC 3261 §18.3); `Ok(None)` means more bytes are needed.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some((head_end, body_start)) = find_head_end(buf) else {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge { size: buf.len() });
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut declared: Option<usize> = None;
    for line in head.split('\n').skip(1) {
        let Some(colon) = line.find(':') else {
            continue;
        };
        if matches!(
            HeaderName::parse(line[..colon].trim()),
            HeaderName::ContentLength
        ) {
            let v = parse_content_length(line[colon + 1..].trim())?;
            if declared.is_some_and(|d| d != v) {
                return Err(ParseError::ContentLengthConflict);
            }
            declared = Some(v);
        }
    }
    // RFC 3261 §18.3: Content-Length is mandatory on streams.
    let len = declared.ok_or(ParseError::ContentLength)?;
    let total = body_start + len;
    if total > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge { size: total });
    }
    Ok(if buf.len() >= total {
        Some(total)
    } else {
        None
    })
}

fn parse_content_length(v: &str) -> Result<usize, ParseError> {
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::ContentLength);
    }
    v.parse().map_err(|_| ParseError::ContentLength)
}

fn is_sip_version(v: &str) -> bool {
    v.eq_ignore_ascii_case("SIP/2.0")
}

fn looks_like_version(v: &str) -> bool {
    v.len() > 4 && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
}

impl Message {
    /// Parses one message. Octets after the Content-Length worth of body
    /// are ignored (RFC 4475 §3.1.1.8); a body shorter than declared is an
    /// error (RFC 4475 §3.1.2.2).
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Self::parse_inner(buf, true)
    }

    /// Parses a request that failed [`Message::parse`] just well enough to
    /// answer it with an error: extra spaces in the start line, a bad
    /// Request-URI and a wrong Content-Length are tolerated.
    pub fn parse_lenient(buf: Bytes) -> Result<Message, ParseError> {
        Self::parse_inner(buf, false)
    }

    fn parse_inner(buf: Bytes, strict: bool) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge { size: buf.len() });
        }
        // Leading CRLFs before a start line are ignored (RFC 3261 §7.5).
        let lead = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        let buf = buf.slice(lead..);
        let mut line_ends = LineEnds::new();
        let (head_end, body_start) = match find_head_end_with(&buf, |lf| line_ends.push(lf)) {
            Some(x) => x,
            // A datagram is a whole message: when answering an error, its
            // end may stand for the missing empty line.
            None if !strict => {
                let trimmed = buf.len()
                    - buf
                        .iter()
                        .rev()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                (trimmed, buf.len())
            }
            None => return Err(ParseError::Incomplete),
        };
        let head = ByteString::try_from(buf.slice(..head_end)).map_err(|_| ParseError::NotUtf8)?;
        let text: &str = &head;

        let bytes = text.as_bytes();
        let first_end = line_ends.find(bytes, 0, text.len()).unwrap_or(text.len());
        let first = text[..first_end]
            .strip_suffix('\r')
            .unwrap_or(&text[..first_end]);
        let start = if strict {
            parse_start_line(first)?
        } else {
            parse_start_line_lenient(first)?
        };

        let mut headers: Vec<HeaderEntry> = Vec::with_capacity(16);
        let mut pos = first_end + 1;
        let mut line_no = 1;
        while pos < text.len() {
            line_no += 1;
            let end = line_ends.find(bytes, pos, text.len()).unwrap_or(text.len());
            let line_end = if end > pos && bytes[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            let line = &text[pos..line_end];
            let lb = line.as_bytes();
            if matches!(lb.first(), Some(b' ' | b'\t')) {
                let last = headers
                    .last_mut()
                    .ok_or(ParseError::HeaderLine { line: line_no })?;
                if !line.trim().is_empty() {
                    last.value.end = pos + line.trim_end().len();
                }
                last.folded = true;
            } else {
                // name = token, then optional spaces or tabs, then ':'
                // (a colon after anything else is a malformed line too).
                let name_len = token_len(lb);
                let colon = name_len
                    + lb[name_len..]
                        .iter()
                        .take_while(|b| matches!(b, b' ' | b'\t'))
                        .count();
                if name_len == 0 || lb.get(colon) != Some(&b':') {
                    return Err(ParseError::HeaderLine { line: line_no });
                }
                let name = &line[..name_len];
                let raw_value = &line[colon + 1..];
                let lead_ws = raw_value.len() - trim_start_fast(raw_value).len();
                let vstart = pos + colon + 1 + lead_ws;
                let vend = pos + colon + 1 + trim_end_fast(raw_value).len();
                headers.push(HeaderEntry {
                    name: HeaderName::parse(name),
                    name_range: pos..pos + name.len(),
                    value: vstart..vend.max(vstart),
                    unfolded: None,
                    folded: false,
                });
            }
            pos = end + 1;
        }

        let mut declared: Option<usize> = None;
        for h in headers
            .iter()
            .filter(|h| strict && h.name == HeaderName::ContentLength)
        {
            let v = parse_content_length(text.get(h.value.clone()).unwrap_or("").trim())?;
            if declared.is_some_and(|d| d != v) {
                return Err(ParseError::ContentLengthConflict);
            }
            declared = Some(v);
        }
        let available = buf.len().saturating_sub(body_start);
        let body_len = match declared {
            Some(d) if d > available => {
                return Err(ParseError::BodyLength {
                    declared: d,
                    actual: available,
                })
            }
            Some(d) => d,
            None => available,
        };
        let body = buf.slice(body_start.min(buf.len())..body_start.min(buf.len()) + body_len);
        let mut unfolded = Vec::new();
        for h in headers.iter_mut().filter(|h| h.folded) {
            h.unfolded = u32::try_from(unfolded.len()).ok();
            unfolded.push(unfold(text.get(h.value.clone()).unwrap_or("")).into_boxed_str());
        }
        let msg = Message {
            head,
            body,
            start,
            headers,
            unfolded,
        };
        if let (true, StartLine::Request { uri, .. }) = (strict, &msg.start) {
            let u = msg.head.get(uri.clone()).unwrap_or("");
            Uri::parse(u).map_err(ParseError::RequestUri)?;
        }
        Ok(msg)
    }

    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => self.head.get(reason.clone()),
            StartLine::Request { .. } => None,
        }
    }

    /// Request-URI text (validated at parse time).
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => self.head.get(uri.clone()),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str().and_then(|u| Uri::parse(u).ok())
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The head as received (start line and headers, without the blank line).
    pub fn head(&self) -> &str {
        &self.head
    }

    fn value_of(&self, h: &HeaderEntry) -> Cow<'_, str> {
        Cow::Borrowed(self.value_str(h))
    }

    /// A header line's value, unfolded, borrowed from the message.
    fn value_str(&self, h: &HeaderEntry) -> &str {
        match h.unfolded {
            Some(i) => self.unfolded.get(i as usize).map_or("", |v| v.as_ref()),
            None => self.head.get(h.value.clone()).unwrap_or(""),
        }
    }

    /// The first value line of a header, borrowed (what [`Message::header`]
    /// gives, without the `Cow`).
    pub fn header_str(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.value_str(h))
    }

    /// Every line of a header, in order, borrowed.
    pub fn header_all_str(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.value_str(h))
    }

    /// The topmost Via (first element of the first Via line), parsed; `None`
    /// when there is none or it does not parse.
    pub fn top_via(&self) -> Option<Via<'_>> {
        Via::parse(first_list_item(self.header_str(HeaderName::Via)?)?).ok()
    }

    /// All header lines as `(name as written, value unfolded)`.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, &str, Cow<'_, str>)> {
        self.headers.iter().map(|h| {
            (
                h.name,
                self.head.get(h.name_range.clone()).unwrap_or(""),
                self.value_of(h),
            )
        })
    }

    /// The first value line of a header.
    pub fn header(&self, name: HeaderName) -> Option<Cow<'_, str>> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.value_of(h))
    }

    /// Every line of a header, in order.
    pub fn header_all(&self, name: HeaderName) -> impl Iterator<Item = Cow<'_, str>> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.value_of(h))
    }

    /// An extension header by name (case-insensitive).
    pub fn header_named(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .iter()
            .find(|h| {
                self.head
                    .get(h.name_range.clone())
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|h| self.value_of(h))
    }

    /// The name of every header line, in order.
    pub(crate) fn header_names(&self) -> impl Iterator<Item = HeaderName> + '_ {
        self.headers.iter().map(|h| h.name)
    }

    pub fn header_count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }

    /// Every comma-separated element of a list header, across lines.
    pub fn header_list(&self, name: HeaderName) -> Result<Vec<String>, SyntaxError> {
        let mut out = Vec::new();
        for line in self.header_all(name) {
            for item in split_list(&line)? {
                out.push(item.to_owned());
            }
        }
        Ok(out)
    }

    pub fn call_id(&self) -> Option<Cow<'_, str>> {
        self.header(HeaderName::CallId)
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.header(HeaderName::CSeq)
            .and_then(|v| CSeq::parse(&v).ok())
    }

    /// The topmost Via value as text (first element of the first line).
    pub fn top_via_str(&self) -> Option<String> {
        first_list_item(self.header_str(HeaderName::Via)?).map(str::to_owned)
    }

    /// Runs `f` over the parsed top Via.
    pub fn with_top_via<T>(&self, f: impl FnOnce(&Via<'_>) -> T) -> Option<T> {
        Some(f(&self.top_via()?))
    }

    /// Runs `f` over the parsed From/To/etc. name-addr.
    pub fn with_name_addr<T>(
        &self,
        name: HeaderName,
        f: impl FnOnce(&NameAddr<'_>) -> T,
    ) -> Option<T> {
        let na = NameAddr::parse(self.header_str(name)?).ok()?;
        Some(f(&na))
    }

    /// The tag parameter of From or To.
    pub fn tag(&self, name: HeaderName) -> Option<String> {
        self.with_name_addr(name, |n| n.tag().map(str::to_owned))
            .flatten()
    }

    /// Expires header as seconds, saturating (overlarge values do not wrap).
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(|v| crate::syntax::parse_u32_saturating(v.trim()))
    }

    pub fn content_type(&self) -> Option<Cow<'_, str>> {
        self.header(HeaderName::ContentType)
    }

    /// Serializes the message as it is (header lines unchanged, folding
    /// kept), recomputing nothing. Useful for logging and forwarding tests.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + 4 + self.body.len());
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }
}

fn unfold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let raw = raw.trim_start();
    let mut lines = raw.split('\n');
    if let Some(first) = lines.next() {
        out.push_str(first.trim_end_matches('\r').trim_end());
    }
    for l in lines {
        let piece = l.trim_end_matches('\r').trim();
        if !piece.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(piece);
        }
    }
    out
}

fn parse_start_line_lenient(line: &str) -> Result<StartLine, ParseError> {
    let mut words = line.split_whitespace();
    let method = words.next().ok_or(ParseError::StartLine)?;
    if looks_like_version(method) {
        return parse_start_line(line);
    }
    let uri = words.next().ok_or(ParseError::StartLine)?;
    // The search starts `method.len()` bytes in, or after the method where
    // that is inside a character (leading white space before a non-ASCII
    // method once made this slice panic).
    let from = if line.is_char_boundary(method.len()) {
        method.len()
    } else {
        method.as_ptr() as usize - line.as_ptr() as usize + method.len()
    };
    let offset = line
        .get(from..)
        .and_then(|rest| rest.find(uri))
        .map_or(0, |i| i + from);
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: offset..offset + uri.len(),
    })
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if looks_like_version(line) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !is_sip_version(version) {
            return Err(ParseError::Version(version.to_owned()));
        }
        let code_text = parts.next().ok_or(ParseError::StartLine)?;
        if code_text.len() != 3 || !code_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let code: u16 = code_text.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        let reason_start = (version.len() + 1 + code_text.len() + 1).min(line.len());
        return Ok(StartLine::Response {
            code,
            reason: reason_start..line.len(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces.
    let space = |s: &str| s.bytes().position(|b| b == b' ');
    let sp1 = space(line).ok_or(ParseError::StartLine)?;
    let (method, after) = (&line[..sp1], &line[sp1 + 1..]);
    // The URI is the long part: a SIMD search.
    let sp2 = memchr(b' ', after.as_bytes()).ok_or(ParseError::StartLine)?;
    let (uri, version) = (&after[..sp2], &after[sp2 + 1..]);
    if space(version).is_some() || !is_token(method) || uri.is_empty() {
        return Err(ParseError::StartLine);
    }
    if !is_sip_version(version) {
        return Err(if looks_like_version(version) {
            ParseError::Version(version.to_owned())
        } else {
            ParseError::StartLine
        });
    }
    let uri_start = method.len() + 1;
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri_start..uri_start + uri.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\nFrom: <sip:100@example.com>;tag=a\r\nTo: <sip:100@example.com>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:100@10.0.0.1:5060>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_register_parses_into_its_parts() {
        let m = Message::parse(Bytes::from_static(REGISTER.as_bytes())).unwrap();
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.request_uri_str(), Some("sip:example.com"));
        assert_eq!(m.call_id().unwrap(), "c1");
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.expires(), Some(3600));
        assert_eq!(m.tag(HeaderName::From).as_deref(), Some("a"));
        assert_eq!(
            m.with_top_via(|v| v.branch().map(str::to_owned))
                .flatten()
                .as_deref(),
            Some("z9hG4bK1")
        );
        assert!(m.body().is_empty());
    }

    #[test]
    fn folded_header_values_are_unfolded_on_read() {
        let raw =
            "OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nCall-ID: x\r\n\r\n";
        let m = Message::parse(Bytes::from(raw)).unwrap();
        assert_eq!(m.header(HeaderName::Subject).unwrap(), "one two three");
        assert_eq!(m.call_id().unwrap(), "x");
    }

    #[test]
    fn trailing_bytes_after_content_length_are_ignored() {
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef";
        let m = Message::parse(Bytes::from(raw)).unwrap();
        assert_eq!(&m.body()[..], b"abc");
    }

    #[test]
    fn short_bodies_and_bad_lengths_are_errors() {
        let short = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 30\r\n\r\nabc";
        assert!(matches!(
            Message::parse(Bytes::from(short)),
            Err(ParseError::BodyLength {
                declared: 30,
                actual: 3
            })
        ));
        let neg = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -3\r\n\r\n";
        assert_eq!(
            Message::parse(Bytes::from(neg)).unwrap_err(),
            ParseError::ContentLength
        );
    }

    #[test]
    fn a_datagram_without_the_empty_line_is_rejected_but_can_be_answered() {
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nl: 0\r\n";
        assert_eq!(
            Message::parse(Bytes::from(raw)).unwrap_err(),
            ParseError::Incomplete
        );
        let m = Message::parse_lenient(Bytes::from(raw)).unwrap();
        assert_eq!(m.call_id().unwrap(), "x");
        assert_eq!(m.header(HeaderName::ContentLength).unwrap(), "0");
    }

    #[test]
    fn versions_other_than_2_0_are_owed_505() {
        let raw = "OPTIONS sip:a@b SIP/7.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(Message::parse(Bytes::from(raw)).unwrap_err().status(), 505);
    }

    #[test]
    fn status_codes_above_699_are_rejected() {
        let raw = "SIP/2.0 4294967301 better not break the receiver\r\nCall-ID: x\r\n\r\n";
        assert!(Message::parse(Bytes::from(raw)).is_err());
        let ok = Message::parse(Bytes::from("SIP/2.0 100 \r\nCall-ID: x\r\n\r\n")).unwrap();
        assert_eq!(ok.status(), Some(100));
        assert_eq!(ok.reason(), Some(""));
    }

    #[test]
    fn a_multibyte_character_where_a_version_could_start_is_a_start_line_error() {
        // "SIP\u{e9}/2.0": byte 4 is inside the 'é', which once panicked.
        let raw = "INVITE sip:a@b SIP\u{e9}/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(
            Message::parse(Bytes::from(raw)).unwrap_err(),
            ParseError::StartLine
        );
        let raw = "\u{fe7b}\u{505c}\u{96fb} sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert!(Message::parse_lenient(Bytes::from(raw)).is_ok());
        let raw = " 2\u{e9} sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        let m = Message::parse_lenient(Bytes::from(raw)).unwrap();
        assert_eq!(m.request_uri_str(), Some("sip:a@b"));
    }

    #[test]
    fn header_values_are_trimmed_of_unicode_white_space_as_before() {
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nSubject: \u{a0}hi\u{3000} \r\nCall-ID:x \x0b\r\n\r\n";
        let m = Message::parse(Bytes::from(raw)).unwrap();
        assert_eq!(m.header(HeaderName::Subject).unwrap(), "hi");
        assert_eq!(m.call_id().unwrap(), "x");
    }

    #[test]
    fn the_head_ends_at_the_first_empty_line_whatever_the_line_ends() {
        let lf =
            Message::parse(Bytes::from("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n\nbody")).unwrap();
        assert_eq!(lf.head(), "OPTIONS sip:a@b SIP/2.0\nCall-ID: x");
        assert_eq!(&lf.body()[..], b"body");
        let mixed = Message::parse(Bytes::from(
            "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\nbody",
        ))
        .unwrap();
        assert_eq!(mixed.head(), "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r");
        assert_eq!(mixed.call_id().unwrap(), "x");
        assert_eq!(&mixed.body()[..], b"body");
        assert_eq!(
            Message::parse(Bytes::from("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n")).unwrap_err(),
            ParseError::Incomplete
        );
    }

    #[test]
    fn stream_framing_uses_content_length() {
        let mut two = REGISTER.as_bytes().to_vec();
        two.extend_from_slice(REGISTER.as_bytes());
        assert_eq!(stream_frame_len(&two).unwrap(), Some(REGISTER.len()));
        assert_eq!(stream_frame_len(&two[..20]).unwrap(), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Message::parse(Bytes::from(data.clone()));
            let _ = Message::parse_lenient(Bytes::from(data.clone()));
            let _ = stream_frame_len(&data);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "[A-Za-z0-9 :;<>@\"\\\\,=./\r\n\t%?-]{0,400}") {
            if let Ok(m) = Message::parse(Bytes::from(s)) {
                let _ = crate::validate::validate_request(&m);
                let _ = m.header_list(HeaderName::Contact);
            }
        }
    }
}
