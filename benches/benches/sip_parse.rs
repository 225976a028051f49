//! Criterion benchmarks of the SIP hot path: parsing a request and reading
//! the transaction/dialog keys (top Via branch, From tag, Call-ID, CSeq), and
//! serializing a response and a request. Each case runs Carillon's
//! `carillon_sip` and `rsip` 0.4 on the same bytes in the same run, so the
//! ratio between the two is what to read (absolute times depend on the
//! machine). Run: `cargo bench -p carillon-benches --bench sip_parse`.

use std::hint::black_box;

use bytes::Bytes;
use carillon_benches::{carillon_parse_keys, SwitchKeys, INVITE, REGISTER};
use carillon_sip::{HeaderName, Message, MessageBuilder, Method, ResponseBuilder};
use criterion::{criterion_group, criterion_main, Criterion};
use rsip::prelude::*;

mod common;
use common::short;

fn rsip_parse_keys(buf: &[u8]) -> Option<SwitchKeys> {
    let m = rsip::SipMessage::try_from(buf).ok()?;
    let via = m.via_header().ok()?.typed().ok()?;
    let branch = via.branch()?.to_string();
    let from_tag = m.from_header().ok()?.tag().ok()??.to_string();
    let call_id = m.call_id_header().ok()?.value().to_owned();
    let cseq = m.cseq_header().ok()?.seq().ok()?;
    Some(SwitchKeys {
        branch,
        from_tag,
        call_id,
        cseq,
    })
}

const SDP: &[u8] = b"v=0\r\no=Z 1700000000000 1 IN IP4 203.0.113.45\r\ns=Z\r\nc=IN IP4 203.0.113.45\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0 8 101 9\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=ptime:20\r\na=sendrecv\r\na=rtcp-mux\r\n";

const INVITE_URI: &str = "sip:+15551230001@sip.carillon.example:5060;transport=udp";

/// The headers of the INVITE the switch sends to the B leg.
const INVITE_HEADERS: &[(&str, &str)] = &[
    (
        "Via",
        "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-c4r1ll0n-77f0a3;rport",
    ),
    ("Max-Forwards", "69"),
    ("Contact", "<sip:carillon@198.51.100.7:5060;transport=udp>"),
    ("To", "<sip:+15551230001@sip.carillon.example>"),
    (
        "From",
        "\"Agent 8013\" <sip:8013@sip.carillon.example>;tag=c4-91b2e6",
    ),
    ("Call-ID", "c4r1ll0n-5e1f7a9b3c2d4e6f8a0b"),
    ("CSeq", "1 INVITE"),
    (
        "Allow",
        "INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO",
    ),
    ("Supported", "replaces, timer"),
    ("User-Agent", "Carillon"),
];

fn carillon_build_invite() -> Bytes {
    let mut b = MessageBuilder::request(&Method::Invite, INVITE_URI);
    for (n, v) in INVITE_HEADERS {
        b.push_header(*n, *v);
    }
    b.body("application/sdp", Bytes::from_static(SDP)).build()
}

fn rsip_header(name: &str, value: &str) -> rsip::Header {
    use rsip::headers as h;
    match name {
        "Via" => h::Via::new(value).into(),
        "Max-Forwards" => h::MaxForwards::new(value).into(),
        "Contact" => h::Contact::new(value).into(),
        "To" => h::To::new(value).into(),
        "From" => h::From::new(value).into(),
        "Call-ID" => h::CallId::new(value).into(),
        "CSeq" => h::CSeq::new(value).into(),
        "Allow" => h::Allow::new(value).into(),
        "Supported" => h::Supported::new(value).into(),
        "User-Agent" => h::UserAgent::new(value).into(),
        _ => rsip::Header::Other(name.into(), value.into()),
    }
}

fn rsip_build_invite(uri: &rsip::Uri) -> String {
    let mut headers = rsip::Headers::default();
    for (n, v) in INVITE_HEADERS {
        headers.push(rsip_header(n, v));
    }
    headers.push(rsip::headers::ContentType::new("application/sdp").into());
    headers.push(rsip::headers::ContentLength::from(SDP.len() as u32).into());
    rsip::Request {
        method: rsip::Method::Invite,
        uri: uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: SDP.to_vec(),
    }
    .to_string()
}

const CONTACT_200: &str =
    "<sip:8013@203.0.113.45:52174;rinstance=1f2e3d4c5b6a7980;transport=UDP>;expires=3600";

fn carillon_build_200(req: &Message) -> Bytes {
    ResponseBuilder::new(req, 200)
        .to_tag("c4-5d2a")
        .header("Contact", CONTACT_200)
        .build()
}

fn rsip_build_200(req: &rsip::SipMessage) -> Option<String> {
    let mut headers = rsip::Headers::default();
    for h in req.headers().iter() {
        match h {
            rsip::Header::Via(_)
            | rsip::Header::From(_)
            | rsip::Header::CallId(_)
            | rsip::Header::CSeq(_) => headers.push(h.clone()),
            rsip::Header::To(to) => {
                let to = to.clone().with_tag(rsip::param::Tag::new("c4-5d2a")).ok()?;
                headers.push(to.into());
            }
            _ => {}
        }
    }
    headers.push(rsip::headers::Contact::new(CONTACT_200).into());
    headers.push(rsip::headers::ContentLength::from(0u32).into());
    Some(
        rsip::Response {
            status_code: 200.into(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
        .to_string(),
    )
}

fn parse(c: &mut Criterion) {
    for (name, msg) in [("invite", INVITE), ("register", REGISTER)] {
        // Both parsers must agree before their speed means anything.
        assert_eq!(
            carillon_parse_keys(Bytes::from_static(msg)),
            rsip_parse_keys(msg),
            "{name}: the parsers disagree"
        );
        let mut g = c.benchmark_group(format!("parse_{name}"));
        g.bench_function("carillon", |b| {
            b.iter(|| carillon_parse_keys(black_box(Bytes::from_static(msg))))
        });
        g.bench_function("rsip", |b| b.iter(|| rsip_parse_keys(black_box(msg))));
        g.finish();
    }
}

fn serialize(c: &mut Criterion) {
    let req = Message::parse(Bytes::from_static(REGISTER)).expect("fixture parses");
    let rreq = rsip::SipMessage::try_from(REGISTER).expect("fixture parses in rsip");
    let ours = Message::parse(carillon_build_200(&req)).expect("our 200 parses");
    let theirs = rsip_build_200(&rreq).expect("rsip builds a 200");
    assert_eq!(ours.tag(HeaderName::To).as_deref(), Some("c4-5d2a"));
    assert!(theirs.contains("tag=c4-5d2a"));

    let mut g = c.benchmark_group("build_200_register");
    g.bench_function("carillon", |b| {
        b.iter(|| carillon_build_200(black_box(&req)))
    });
    g.bench_function("rsip", |b| b.iter(|| rsip_build_200(black_box(&rreq))));
    g.finish();

    let uri = rsip::Uri::try_from(INVITE_URI).expect("uri parses in rsip");
    let ours = Message::parse(carillon_build_invite()).expect("our INVITE parses");
    assert_eq!(&ours.body()[..], SDP);
    assert!(rsip::SipMessage::try_from(rsip_build_invite(&uri).as_str()).is_ok());
    let mut g = c.benchmark_group("build_invite");
    g.bench_function("carillon", |b| b.iter(carillon_build_invite));
    g.bench_function("rsip", |b| b.iter(|| rsip_build_invite(black_box(&uri))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = short();
    targets = parse, serialize
}
criterion_main!(benches);
