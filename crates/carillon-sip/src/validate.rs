//! Stateless request checks (RFC 3261 §8.2, §16.3; RFC 4475): decides
//! whether a parsed request is well formed enough to process and, if not,
//! which response it is owed. Checks run in the order of RFC 3261 §8.2:
//! structure (400), method (501), URI scheme (416), extensions (420),
//! content (415) and Accept (406). Routing and auth are not this module's.

use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;
use crate::syntax::{split_list, CSeq, NameAddr, Via};
use crate::uri::{Scheme, Uri};

/// Option tags Carillon implements (RFC 3261 §19.2).
pub const SUPPORTED_OPTIONS: &[&str] = &["path", "outbound", "100rel", "timer", "replaces"];

/// Methods Carillon implements; others are answered 501.
pub const ALLOWED_METHODS: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Register,
    Method::Options,
    Method::Info,
    Method::Update,
    Method::Prack,
    Method::Refer,
    Method::Notify,
    Method::Message,
    Method::Subscribe,
];

/// A request the switch will not process, with the response it is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
    /// Option tags for an `Unsupported` header (420).
    pub unsupported: Vec<String>,
}

impl Rejection {
    fn new(status: u16, reason: &'static str) -> Self {
        Rejection {
            status,
            reason,
            unsupported: Vec::new(),
        }
    }
}

fn bad(reason: &'static str) -> Rejection {
    Rejection::new(400, reason)
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks a request; `Ok(())` means it may go to the transaction user.
pub fn validate_request(msg: &Message) -> Result<(), Rejection> {
    let Some(method) = msg.method() else {
        return Ok(());
    };
    for (h, what) in [
        (HeaderName::Via, "missing Via"),
        (HeaderName::From, "missing From"),
        (HeaderName::To, "missing To"),
        (HeaderName::CallId, "missing Call-ID"),
        (HeaderName::CSeq, "missing CSeq"),
    ] {
        if msg.header_count(h) == 0 {
            return Err(bad(what));
        }
    }
    for h in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::MaxForwards,
        HeaderName::ContentType,
    ] {
        if msg.header_count(h) > 1 {
            return Err(bad("repeated single-valued header"));
        }
    }
    for line in msg.header_all(HeaderName::Via) {
        let items = split_list(&line).map_err(|_| bad("malformed Via"))?;
        for item in items {
            Via::parse(item).map_err(|_| bad("malformed Via"))?;
        }
    }
    for h in [HeaderName::From, HeaderName::To] {
        let v = msg.header(h).unwrap_or_default();
        if split_list(&v).map_err(|_| bad("malformed From/To"))?.len() != 1 {
            return Err(bad("malformed From/To"));
        }
        NameAddr::parse(&v).map_err(|_| bad("malformed From/To"))?;
    }
    if msg.call_id().is_some_and(|c| c.trim().is_empty()) {
        return Err(bad("empty Call-ID"));
    }
    let cseq = CSeq::parse(&msg.header(HeaderName::CSeq).unwrap_or_default())
        .map_err(|_| bad("malformed CSeq"))?;
    if let Some(mf) = msg.header(HeaderName::MaxForwards) {
        if crate::syntax::parse_u32_saturating(mf.trim()).is_none() {
            return Err(bad("malformed Max-Forwards"));
        }
    }
    for line in msg.header_all(HeaderName::Contact) {
        let items = split_list(&line).map_err(|_| bad("malformed Contact"))?;
        for item in items {
            if item == "*" {
                if *method != Method::Register {
                    return Err(bad("wildcard Contact outside REGISTER"));
                }
                continue;
            }
            NameAddr::parse(item).map_err(|_| bad("malformed Contact"))?;
        }
    }
    if let Some(exp) = msg.header(HeaderName::Expires) {
        if crate::syntax::parse_u32_saturating(exp.trim()).is_none() {
            return Err(bad("malformed Expires"));
        }
    }

    if !ALLOWED_METHODS.contains(method) {
        return Err(Rejection::new(501, "Not Implemented"));
    }
    if cseq.method != *method {
        return Err(bad("CSeq method does not match the request"));
    }
    let ruri_text = msg.request_uri_str().unwrap_or("");
    let ruri = Uri::parse(ruri_text).map_err(|_| bad("malformed Request-URI"))?;
    match ruri.scheme {
        Scheme::Sip | Scheme::Sips | Scheme::Tel => {}
        Scheme::Other(_) => return Err(Rejection::new(416, "Unsupported URI Scheme")),
    }
    if ruri.headers.is_some() {
        return Err(bad("Request-URI must not carry headers"));
    }

    if !matches!(method, Method::Ack | Method::Cancel) {
        let mut unknown = Vec::new();
        for tag in msg
            .header_list(HeaderName::Require)
            .map_err(|_| bad("malformed Require"))?
        {
            if !SUPPORTED_OPTIONS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&tag))
            {
                unknown.push(tag);
            }
        }
        if !unknown.is_empty() {
            return Err(Rejection {
                status: 420,
                reason: "Bad Extension",
                unsupported: unknown,
            });
        }
    }

    let session_method = matches!(
        method,
        Method::Invite | Method::Update | Method::Prack | Method::Ack
    );
    if session_method && !msg.body().is_empty() {
        let ct = msg
            .content_type()
            .map(|c| media_type(&c))
            .unwrap_or_default();
        if ct != "application/sdp" && ct != "multipart/mixed" {
            return Err(Rejection::new(415, "Unsupported Media Type"));
        }
        if let Some(enc) = msg.header(HeaderName::ContentEncoding) {
            if !enc.trim().eq_ignore_ascii_case("identity") {
                return Err(Rejection::new(415, "Unsupported Media Type"));
            }
        }
    }
    if *method == Method::Invite {
        if let Some(accept) = msg.header(HeaderName::Accept) {
            let ok = split_list(&accept).unwrap_or_default().iter().any(|a| {
                let t = media_type(a);
                t == "application/sdp" || t == "application/*" || t == "*/*"
            });
            if !accept.trim().is_empty() && !ok {
                return Err(Rejection::new(406, "Not Acceptable"));
            }
        }
    }
    Ok(())
}

/// Whether a parsed response is usable: it must carry a parseable top Via,
/// From, To, Call-ID and a CSeq within 32 bits. Anything else is discarded
/// silently (RFC 4475 §3.1.2.5).
pub fn response_is_usable(msg: &Message) -> bool {
    msg.status().is_some()
        && msg.with_top_via(|_| ()).is_some()
        && msg.with_name_addr(HeaderName::From, |_| ()).is_some()
        && msg.with_name_addr(HeaderName::To, |_| ()).is_some()
        && msg.call_id().is_some()
        && msg
            .header(HeaderName::CSeq)
            .is_some_and(|c| CSeq::parse(&c).is_ok())
}
