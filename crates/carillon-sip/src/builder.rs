//! Serialization: building requests and responses as bytes (RFC 3261
//! §7, §8.2.6). [`ResponseBuilder`] copies Via, From, To, Call-ID and CSeq
//! from the request as §8.2.6.2 requires; [`MessageBuilder`] writes any
//! message from a start line and header list. Both always write a correct
//! Content-Length and never emit a header twice unless asked to.

use std::borrow::Cow;

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;

/// Standard reason phrase for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn finish(out: &mut Vec<u8>, body: Option<(&str, &[u8])>) {
    match body {
        Some((ct, b)) => {
            push_header(out, "Content-Type", ct);
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, b.len());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// Appends `n` in decimal without a temporary `String`.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Builds a response to a parsed request.
#[derive(Debug)]
pub struct ResponseBuilder<'r> {
    req: &'r Message,
    status: u16,
    reason: Cow<'r, str>,
    to_tag: Option<Cow<'r, str>>,
    top_via: Option<Cow<'r, str>>,
    /// Whether the request's To has a tag, when the caller already knows.
    request_to_tagged: Option<bool>,
    headers: Vec<(Cow<'r, str>, Cow<'r, str>)>,
    body: Option<(Cow<'r, str>, Bytes)>,
}

impl<'r> ResponseBuilder<'r> {
    pub fn new(req: &'r Message, status: u16) -> Self {
        ResponseBuilder {
            req,
            status,
            reason: Cow::Borrowed(reason_phrase(status)),
            to_tag: None,
            top_via: None,
            request_to_tagged: None,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Every text argument may be borrowed (for as long as the request is)
    /// or owned, so that building a response copies each piece once.
    pub fn reason(mut self, reason: impl Into<Cow<'r, str>>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Adds a To tag unless the request already had one (RFC 3261 §8.2.6.2).
    pub fn to_tag(mut self, tag: impl Into<Cow<'r, str>>) -> Self {
        self.to_tag = Some(tag.into());
        self
    }

    /// Replaces the top Via (with `received`/`rport` filled in, RFC 3581).
    pub fn top_via(mut self, via: impl Into<Cow<'r, str>>) -> Self {
        self.top_via = Some(via.into());
        self
    }

    /// Tells [`ResponseBuilder::build`] whether the request's To carries a
    /// tag, as validation found when it parsed To, so that `build` does not
    /// parse To again to decide whether to add ours.
    pub fn request_to_tagged(mut self, tagged: bool) -> Self {
        self.request_to_tagged = Some(tagged);
        self
    }

    pub fn header(mut self, name: impl Into<Cow<'r, str>>, value: impl Into<Cow<'r, str>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, content_type: impl Into<Cow<'r, str>>, body: Bytes) -> Self {
        self.body = Some((content_type.into(), body));
        self
    }

    pub fn build(self) -> Bytes {
        let extra: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + self.top_via.as_ref().map_or(0, |v| v.len())
            + self
                .body
                .as_ref()
                .map_or(0, |(ct, b)| ct.len() + b.len() + 40);
        let mut out = Vec::with_capacity(128 + self.req.head().len() + extra);
        out.extend_from_slice(b"SIP/2.0 ");
        push_decimal(&mut out, usize::from(self.status));
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut via_done = false;
        for (name, _, value) in self.req.headers() {
            match name {
                HeaderName::Via => {
                    if !via_done {
                        via_done = true;
                        if let Some(top) = &self.top_via {
                            // Replace the first element of the first Via line;
                            // the others follow, joined by ", ", unless the
                            // line is not a well-formed list.
                            out.extend_from_slice(b"Via: ");
                            out.extend_from_slice(top.as_bytes());
                            let mark = out.len();
                            let items = crate::syntax::TopLevelSplit::new(&value, b',');
                            for (i, item) in items.enumerate() {
                                match item.map(crate::syntax::trim_lws) {
                                    Ok(item) if !item.is_empty() => {
                                        if i > 0 {
                                            out.extend_from_slice(b", ");
                                            out.extend_from_slice(item.as_bytes());
                                        }
                                    }
                                    _ => {
                                        out.truncate(mark);
                                        break;
                                    }
                                }
                            }
                            out.extend_from_slice(b"\r\n");
                            continue;
                        }
                    }
                    push_header(&mut out, "Via", &value);
                }
                HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    push_header(&mut out, name.as_str(), &value);
                }
                HeaderName::To => {
                    out.extend_from_slice(b"To: ");
                    out.extend_from_slice(value.as_bytes());
                    // The To is parsed only when a tag could be added.
                    let tag = self.to_tag.as_ref().filter(|_| self.status > 100);
                    if let Some(tag) = tag {
                        let has_tag = self.request_to_tagged.unwrap_or_else(|| {
                            crate::syntax::NameAddr::parse(&value)
                                .map(|n| n.tag().is_some())
                                .unwrap_or(true)
                        });
                        if !has_tag {
                            out.extend_from_slice(b";tag=");
                            out.extend_from_slice(tag.as_bytes());
                        }
                    }
                    out.extend_from_slice(b"\r\n");
                }
                _ => {}
            }
        }
        for (n, v) in &self.headers {
            push_header(&mut out, n, v);
        }
        finish(
            &mut out,
            self.body.as_ref().map(|(ct, b)| (ct.as_ref(), &b[..])),
        );
        // The estimate counts the whole request head (Authorization, User-
        // Agent...), most of which a response does not copy, and a server
        // transaction keeps its final response for up to 32 s: give the
        // excess back when it is large.
        if out.capacity() - out.len() > SHRINK_ABOVE {
            out.shrink_to_fit();
        }
        Bytes::from(out)
    }
}

/// Unused buffer bytes above which a built response is shrunk to fit.
const SHRINK_ABOVE: usize = 256;

/// Builds a request or response from scratch.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    start: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
}

impl MessageBuilder {
    pub fn request(method: &Method, uri: &str) -> Self {
        let method = method.as_str();
        let mut start = String::with_capacity(method.len() + uri.len() + 9);
        start.push_str(method);
        start.push(' ');
        start.push_str(uri);
        start.push_str(" SIP/2.0");
        MessageBuilder {
            start,
            headers: Vec::with_capacity(12),
            body: None,
        }
    }

    pub fn response(status: u16, reason: &str) -> Self {
        MessageBuilder {
            start: format!("SIP/2.0 {status} {reason}"),
            headers: Vec::with_capacity(12),
            body: None,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    pub fn body(mut self, content_type: impl Into<String>, body: Bytes) -> Self {
        self.body = Some((content_type.into(), body));
        self
    }

    pub fn build(&self) -> Bytes {
        let mut out = Vec::with_capacity(
            self.start.len()
                + 4
                + self
                    .headers
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 4)
                    .sum::<usize>()
                + 64,
        );
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            push_header(&mut out, n, v);
        }
        finish(
            &mut out,
            self.body.as_ref().map(|(ct, b)| (ct.as_str(), &b[..])),
        );
        Bytes::from(out)
    }
}

/// Writes a message straight into one pre-sized buffer: the start line,
/// then headers in the order given, then Content-Type/Content-Length and
/// the body, the same bytes [`MessageBuilder`] produces. For the switch's
/// per-call requests: a header value is written from its parts, so no
/// header name or value is allocated on its own.
#[derive(Debug)]
pub struct MessageWriter {
    out: Vec<u8>,
}

impl MessageWriter {
    /// A request; `capacity` is a guess of the whole message's length.
    pub fn request(method: &Method, uri: &str, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(64));
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        MessageWriter { out }
    }

    /// A header whose value is the concatenation of `parts`.
    pub fn header(&mut self, name: &str, parts: &[&str]) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        for p in parts {
            self.out.extend_from_slice(p.as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// `CSeq: <seq> <method>`.
    pub fn cseq(&mut self, seq: u32, method: &str) -> &mut Self {
        self.out.extend_from_slice(b"CSeq: ");
        push_decimal(&mut self.out, seq as usize);
        self.out.push(b' ');
        self.out.extend_from_slice(method.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the headers with Content-Length (and Content-Type with a body)
    /// and appends the body.
    pub fn finish(mut self, body: Option<(&str, &[u8])>) -> Bytes {
        finish(&mut self.out, body);
        Bytes::from(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_copies_the_dialog_headers_and_adds_a_to_tag() {
        let req = Message::parse(Bytes::from_static(
            b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@y>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 5 OPTIONS\r\nSubject: not copied\r\n\r\n",
        ))
        .unwrap();
        let resp = ResponseBuilder::new(&req, 200)
            .to_tag("t9")
            .top_via("SIP/2.0/UDP a;branch=z9hG4bK1;received=10.0.0.1;rport=5062")
            .header("Allow", "INVITE")
            .build();
        let m = Message::parse(resp).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.tag(HeaderName::To).as_deref(), Some("t9"));
        assert_eq!(m.header_list(HeaderName::Via).unwrap().len(), 2);
        assert!(m.top_via_str().unwrap().contains("received=10.0.0.1"));
        assert!(m.header(HeaderName::Subject).is_none());
        assert_eq!(m.header(HeaderName::ContentLength).unwrap(), "0");
    }

    #[test]
    fn the_writer_writes_the_same_bytes_as_the_builder() {
        let sdp = Bytes::from_static(b"v=0\r\n");
        let built = MessageBuilder::request(&Method::Invite, "sip:100@example.com")
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport")
            .header("Call-ID", "abc")
            .header("CSeq", "4294967295 INVITE")
            .body("application/sdp", sdp.clone())
            .build();
        let mut w = MessageWriter::request(&Method::Invite, "sip:100@example.com", 0);
        w.header(
            "Via",
            &["SIP/2.0/UDP ", "127.0.0.1:5060", ";branch=z9hG4bKx;rport"],
        )
        .header("Call-ID", &["abc"])
        .cseq(u32::MAX, "INVITE");
        assert_eq!(w.finish(Some(("application/sdp", &sdp))), built);
        let empty = MessageBuilder::request(&Method::Ack, "sip:a@b").build();
        let w = MessageWriter::request(&Method::Ack, "sip:a@b", 10);
        assert_eq!(w.finish(None), empty);
    }

    #[test]
    fn a_built_request_parses_back() {
        let b = MessageBuilder::request(&Method::Invite, "sip:100@example.com")
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx")
            .header("Call-ID", "abc")
            .body("application/sdp", Bytes::from_static(b"v=0\r\n"))
            .build();
        let m = Message::parse(b).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(&m.body()[..], b"v=0\r\n");
    }
}
