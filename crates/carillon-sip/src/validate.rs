//! Stateless request checks (RFC 3261 §8.2, §16.3; RFC 4475): decides
//! whether a parsed request is well formed enough to process and, if not,
//! which response it is owed. Checks run in the order of RFC 3261 §8.2:
//! structure (400), method (405/501), URI scheme (416), extensions (420),
//! content (415) and Accept (406). Routing and auth are not this module's.

use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;
use crate::syntax::{split_list, CSeq, NameAddr, Via};
use crate::uri::{Scheme, Uri};

/// Option tags Carillon implements as their RFCs define them (RFC 3261
/// §19.2): reliable provisionals (RFC 3262, `calls::prack`), session
/// timers (RFC 4028, `calls::session_timer`) and Path (RFC 3327: the
/// registrar stores a REGISTER's Path and a call to the binding carries it
/// as its preloaded Route set). A `Require` naming anything else gets 420.
/// Not listed because not done: `replaces` (RFC 3891), `outbound` (RFC
/// 5626 flows and keep-alives).
pub const SUPPORTED_OPTIONS: &[&str] = &["100rel", "timer", "path"];

/// Methods Carillon handles, in and out of dialog (the `Allow` header).
/// Any other method is refused by [`method_refusal`].
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
];

/// [`ALLOWED_METHODS`] as the value of an `Allow` header.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, REGISTER, OPTIONS, INFO, UPDATE, PRACK, REFER";

/// [`SUPPORTED_OPTIONS`] as the value of a `Supported` header.
pub const SUPPORTED: &str = "100rel, timer, path";

/// The answer owed to a method outside [`ALLOWED_METHODS`], in or out of
/// a dialog: 405 (with `Allow`) for the methods the switch understands but
/// offers for no address (MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH), 501 for
/// methods it does not know at all (REFER is allowed: the switch answers
/// it in a dialog as a blind transfer and refuses it outside one)
/// (RFC 3261 §21.4.6, §21.5.2). `None` for an allowed method.
pub fn method_refusal(method: &Method) -> Option<Rejection> {
    if ALLOWED_METHODS.contains(method) {
        return None;
    }
    Some(match method {
        Method::Message | Method::Subscribe | Method::Notify | Method::Publish => {
            Rejection::new(405, "Method Not Allowed")
        }
        _ => Rejection::new(501, "Not Implemented"),
    })
}

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

/// Whether the media type of a Content-Type or Accept element (before any
/// `;` parameter) is one of `types` (lower case), ignoring ASCII case.
fn media_type_is(ct: &str, types: &[&str]) -> bool {
    let t = ct.split(';').next().unwrap_or("").trim();
    types.iter().any(|x| t.eq_ignore_ascii_case(x))
}

/// The parts of a request that [`validate_request_parts`] parsed while
/// checking it, handed on so that the transaction user (registrar, switch)
/// does not parse them again. Every view borrows from the message.
#[derive(Debug, Clone)]
pub struct RequestParts<'a> {
    pub method: &'a Method,
    pub request_uri: Uri<'a>,
    /// The topmost Via (first element of the first Via line).
    pub top_via: Via<'a>,
    pub from: NameAddr<'a>,
    pub to: NameAddr<'a>,
    pub call_id: &'a str,
    pub cseq: CSeq,
    /// Every Contact element that is not `*`, across lines, in order.
    pub contacts: Vec<NameAddr<'a>>,
    /// Whether a `*` Contact was present (only legal in REGISTER).
    pub wildcard: bool,
    /// The Expires header, saturating.
    pub expires: Option<u32>,
}

/// Checks a request; `Ok(())` means it may go to the transaction user.
/// A response passes unchecked.
pub fn validate_request(msg: &Message) -> Result<(), Rejection> {
    if msg.method().is_none() {
        return Ok(());
    }
    validate_request_parts(msg).map(|_| ())
}

/// The elements of one comma-separated header line, trimmed; `None` when
/// the line is not a well-formed list (unterminated quote, empty element),
/// as [`split_list`] decides.
fn list_items(line: &str) -> impl Iterator<Item = Option<&str>> {
    crate::syntax::TopLevelSplit::new(line, b',').map(|p| {
        let t = crate::syntax::trim_lws(p.ok()?);
        (!t.is_empty()).then_some(t)
    })
}

fn has_comma(s: &str) -> bool {
    memchr::memchr(b',', s.as_bytes()).is_some()
}

/// [`validate_request`], returning what it parsed. A response is refused
/// (400): only requests have these parts.
pub fn validate_request_parts(msg: &Message) -> Result<RequestParts<'_>, Rejection> {
    let Some(method) = msg.method() else {
        return Err(bad("not a request"));
    };
    // One pass counts the headers that must be present or single.
    let mut count = [0usize; 7];
    for name in msg.header_names() {
        let slot = match name {
            HeaderName::Via => 0,
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 3,
            HeaderName::CSeq => 4,
            HeaderName::MaxForwards => 5,
            HeaderName::ContentType => 6,
            _ => continue,
        };
        count[slot] += 1;
    }
    for (n, what) in count.iter().zip([
        "missing Via",
        "missing From",
        "missing To",
        "missing Call-ID",
        "missing CSeq",
    ]) {
        if *n == 0 {
            return Err(bad(what));
        }
    }
    if count[1..].iter().any(|n| *n > 1) {
        return Err(bad("repeated single-valued header"));
    }
    let mut top_via = None;
    for line in msg.header_all_str(HeaderName::Via) {
        for item in list_items(line) {
            let item = item.ok_or_else(|| bad("malformed Via"))?;
            let via = Via::parse(item).map_err(|_| bad("malformed Via"))?;
            top_via.get_or_insert(via);
        }
    }
    // At least one Via line was counted, and every line has an element.
    let top_via = top_via.ok_or_else(|| bad("missing Via"))?;
    let from_to = |h: HeaderName| -> Result<NameAddr<'_>, Rejection> {
        let v = msg.header_str(h).unwrap_or_default();
        // Without a comma the value is one element; the only ways it could
        // still fail as a list (empty, an unterminated quote) fail as a
        // name-addr too, so the list pass is only needed with a comma.
        if has_comma(v) {
            let mut items = 0usize;
            for item in list_items(v) {
                item.ok_or_else(|| bad("malformed From/To"))?;
                items += 1;
            }
            if items != 1 {
                return Err(bad("malformed From/To"));
            }
        }
        NameAddr::parse(v).map_err(|_| bad("malformed From/To"))
    };
    let from = from_to(HeaderName::From)?;
    let to = from_to(HeaderName::To)?;
    let call_id = msg.header_str(HeaderName::CallId).unwrap_or_default();
    if call_id.trim().is_empty() {
        return Err(bad("empty Call-ID"));
    }
    let cseq = CSeq::parse(msg.header_str(HeaderName::CSeq).unwrap_or_default())
        .map_err(|_| bad("malformed CSeq"))?;
    if let Some(mf) = msg.header_str(HeaderName::MaxForwards) {
        if crate::syntax::parse_u32_saturating(mf.trim()).is_none() {
            return Err(bad("malformed Max-Forwards"));
        }
    }
    let mut contacts = Vec::new();
    let mut wildcard = false;
    for line in msg.header_all_str(HeaderName::Contact) {
        // The whole line is checked as a list before any element is parsed
        // (without a comma it is one element: see `from_to`).
        if has_comma(line) && list_items(line).any(|i| i.is_none()) {
            return Err(bad("malformed Contact"));
        }
        for item in list_items(line) {
            let item = item.ok_or_else(|| bad("malformed Contact"))?;
            if item == "*" {
                if *method != Method::Register {
                    return Err(bad("wildcard Contact outside REGISTER"));
                }
                wildcard = true;
                continue;
            }
            contacts.push(NameAddr::parse(item).map_err(|_| bad("malformed Contact"))?);
        }
    }
    let expires = match msg.header_str(HeaderName::Expires) {
        Some(exp) => Some(
            crate::syntax::parse_u32_saturating(exp.trim())
                .ok_or_else(|| bad("malformed Expires"))?,
        ),
        None => None,
    };

    if let Some(refusal) = method_refusal(method) {
        return Err(refusal);
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
        let ct = msg.header_str(HeaderName::ContentType).unwrap_or_default();
        if !media_type_is(ct, &["application/sdp", "multipart/mixed"]) {
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
            let ok = split_list(&accept)
                .unwrap_or_default()
                .iter()
                .any(|a| media_type_is(a, &["application/sdp", "application/*", "*/*"]));
            if !accept.trim().is_empty() && !ok {
                return Err(Rejection::new(406, "Not Acceptable"));
            }
        }
    }
    Ok(RequestParts {
        method,
        request_uri: ruri,
        top_via,
        from,
        to,
        call_id,
        cseq,
        contacts,
        wildcard,
        expires,
    })
}

/// Whether a parsed response is usable: it must carry a parseable top Via,
/// From, To, Call-ID and a CSeq within 32 bits. Anything else is discarded
/// silently (RFC 4475 §3.1.2.5).
pub fn response_is_usable(msg: &Message) -> bool {
    response_parts(msg).is_some()
}

/// The parts of a response that [`response_parts`] parsed while checking
/// that it is usable, handed on so that the transaction user does not parse
/// them again. Every view borrows from the message.
#[derive(Debug, Clone)]
pub struct ResponseParts<'a> {
    pub status: u16,
    /// The topmost Via (first element of the first Via line).
    pub top_via: Via<'a>,
    pub from: NameAddr<'a>,
    pub to: NameAddr<'a>,
    pub call_id: &'a str,
    pub cseq: CSeq,
}

/// [`response_is_usable`], returning what it parsed; `None` for a request
/// or an unusable response.
pub fn response_parts(msg: &Message) -> Option<ResponseParts<'_>> {
    let status = msg.status()?;
    let top_via = msg.top_via()?;
    let from = NameAddr::parse(msg.header_str(HeaderName::From)?).ok()?;
    let to = NameAddr::parse(msg.header_str(HeaderName::To)?).ok()?;
    let call_id = msg.header_str(HeaderName::CallId)?;
    let cseq = CSeq::parse(msg.header_str(HeaderName::CSeq)?).ok()?;
    Some(ResponseParts {
        status,
        top_via,
        from,
        to,
        call_id,
        cseq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn parse(s: &str) -> Message {
        Message::parse(Bytes::from(s.to_owned())).unwrap()
    }

    fn request(method: &str, extra: &str) -> Message {
        parse(&format!(
            "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:101@127.0.0.1>;tag=f\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\n\
             CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn the_allow_and_supported_texts_list_exactly_the_constants() {
        let allow: Vec<&str> = ALLOWED_METHODS.iter().map(Method::as_str).collect();
        assert_eq!(ALLOW, allow.join(", "));
        assert_eq!(SUPPORTED, SUPPORTED_OPTIONS.join(", "));
        for tag in ["replaces", "outbound"] {
            assert!(!SUPPORTED_OPTIONS.contains(&tag), "{tag} is not honoured");
        }
        for m in ["MESSAGE", "SUBSCRIBE", "NOTIFY", "PUBLISH"] {
            assert!(!ALLOW.contains(m), "{m} is not handled");
        }
    }

    #[test]
    fn methods_the_switch_does_not_handle_get_405_or_501_and_allowed_ones_pass() {
        for (method, status) in [
            ("MESSAGE", 405),
            ("SUBSCRIBE", 405),
            ("NOTIFY", 405),
            ("PUBLISH", 405),
            ("FOO", 501),
        ] {
            let r = validate_request(&request(method, "")).unwrap_err();
            assert_eq!(r.status, status, "{method}");
            assert_eq!(method_refusal(&Method::from_token(method)), Some(r));
        }
        for method in ["OPTIONS", "INFO", "BYE", "UPDATE", "PRACK", "REFER"] {
            assert_eq!(validate_request(&request(method, "")), Ok(()), "{method}");
            assert_eq!(method_refusal(&Method::from_token(method)), None);
        }
    }

    #[test]
    fn a_require_of_an_option_tag_not_listed_gets_420_naming_it() {
        for tag in ["replaces", "outbound", "norefersub"] {
            let r = validate_request(&request("OPTIONS", &format!("Require: timer, {tag}\r\n")))
                .unwrap_err();
            assert_eq!((r.status, r.unsupported), (420, vec![tag.to_owned()]));
        }
        for tag in ["100rel", "timer", "path", "PATH"] {
            let m = request("OPTIONS", &format!("Require: {tag}\r\n"));
            assert_eq!(validate_request(&m), Ok(()), "{tag}");
        }
    }

    #[test]
    fn media_types_compare_as_the_lowercased_text_did() {
        let types = ["application/sdp", "multipart/mixed"];
        for (ct, want) in [
            ("application/sdp", true),
            (" Application/SDP ; charset=x", true),
            ("MULTIPART/MIXED;boundary=b", true),
            ("application/sdpx", false),
            ("", false),
            ("text/plain", false),
        ] {
            assert_eq!(media_type_is(ct, &types), want, "{ct:?}");
        }
    }

    #[test]
    fn the_parts_of_a_usable_response_are_handed_on_parsed() {
        let m = parse(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\n\
             From: <sip:100@example.com>;tag=f\r\nTo: <sip:101@example.com>\r\n ;tag=t\r\n\
             Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let p = response_parts(&m).unwrap();
        assert!(response_is_usable(&m));
        assert_eq!(p.status, 180);
        assert_eq!(p.top_via.branch(), Some("z9hG4bKa"));
        assert_eq!(p.from.tag(), Some("f"));
        assert_eq!(p.to.tag(), Some("t"));
        assert_eq!(p.call_id, "c1");
        assert_eq!((p.cseq.seq, &p.cseq.method), (7, &Method::Invite));
        for broken in [
            "SIP/2.0 200 OK\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCSeq: 1 BYE\r\n\r\n",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 99999999999 BYE\r\n\r\n",
            "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n",
        ] {
            let m = parse(broken);
            assert!(response_parts(&m).is_none(), "{broken:?}");
            assert!(!response_is_usable(&m));
        }
    }

    #[test]
    fn the_parts_of_a_valid_register_are_handed_on_parsed() {
        let m = parse(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:100@example.com>;tag=f\r\nTo: \"Hundred\" <sip:100@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 7 REGISTER\r\n\
             Contact: <sip:100@10.0.0.1>;expires=60, <sip:100@10.0.0.2>\r\n\
             Expires: 99999999999\r\nContent-Length: 0\r\n\r\n",
        );
        let p = validate_request_parts(&m).unwrap();
        assert_eq!(*p.method, Method::Register);
        assert_eq!(p.request_uri.host, "example.com");
        assert_eq!(p.from.tag(), Some("f"));
        assert_eq!(p.to.uri.user, Some("100"));
        assert_eq!(p.to.tag(), None);
        assert_eq!(p.call_id, "c1");
        assert_eq!(p.cseq.seq, 7);
        assert_eq!(p.contacts.len(), 2);
        assert_eq!(p.contacts[1].uri.host, "10.0.0.2");
        assert!(!p.wildcard);
        assert_eq!(p.expires, Some(u32::MAX));
    }

    #[test]
    fn a_wildcard_contact_is_flagged_and_folded_lines_are_read_unfolded() {
        let m = parse(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:100@example.com>\r\n ;tag=f\r\nTo: <sip:100@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 7 REGISTER\r\nContact: *\r\nExpires: 0\r\n\r\n",
        );
        let p = validate_request_parts(&m).unwrap();
        assert!(p.wildcard);
        assert!(p.contacts.is_empty());
        assert_eq!(p.from.tag(), Some("f"));
        assert_eq!(
            m.header_str(HeaderName::From),
            Some("<sip:100@example.com> ;tag=f")
        );
    }

    #[test]
    fn single_elements_with_unterminated_quotes_or_nothing_are_malformed() {
        let base = |from: &str, to: &str, contact: &str| {
            format!(
                "REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: {from}\r\nTo: {to}\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n\
                 Contact: {contact}\r\n\r\n"
            )
        };
        for (raw, reason) in [
            (
                base("<sip:a@b>;tag=\"x", "<sip:a@b>", "<sip:a@h>"),
                "malformed From/To",
            ),
            (
                base("<sip:a@b>;tag=1", "\"open <sip:a@b>", "<sip:a@h>"),
                "malformed From/To",
            ),
            (
                base("<sip:a@b>;tag=1", "<sip:a@b>", "<sip:a@h>;q=\"1"),
                "malformed Contact",
            ),
            (
                base("<sip:a@b>;tag=1", "<sip:a@b>", ""),
                "malformed Contact",
            ),
            (
                base("<sip:a@b>;tag=1", "<sip:a@b>", "<sip:a@h>, \"x"),
                "malformed Contact",
            ),
        ] {
            let r = validate_request_parts(&parse(&raw)).unwrap_err();
            assert_eq!((r.status, r.reason), (400, reason), "{raw}");
        }
    }

    #[test]
    fn rejections_are_the_same_with_or_without_the_parts() {
        for raw in [
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>, <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1,,\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContact: *\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContact: <sip:a@b>, \"x\r\n\r\n",
        ] {
            let m = parse(raw);
            let a = validate_request(&m).unwrap_err();
            let b = validate_request_parts(&m).unwrap_err();
            assert_eq!(a, b);
            assert_eq!(a.status, 400, "{raw}");
        }
    }
}
