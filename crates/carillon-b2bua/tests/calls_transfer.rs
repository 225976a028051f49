//! Blind transfer by REFER through the sans-IO switch: the bridged callee
//! (101) REFERs the caller (100) to 102. Checked: the 202, the NOTIFYs
//! (`message/sipfrag` 100 Trying, then the final status with
//! `Subscription-State: terminated`), the INVITE to the target with
//! `Referred-By`, the media unbridged then bridged to the target, the
//! referrer's BYE, the events; a target that is busy gives the caller
//! back to the referrer; a referrer that hung up before a failure takes
//! the caller down with it; a target that rings 30 s is cancelled (408);
//! `Replaces` and REFER outside a bridge are refused. Nothing is left
//! behind.

mod common;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::Switch;
use carillon_digest::Challenge;
use carillon_events::SwitchEvent;
use carillon_mediactl::MediaCommand;
use carillon_sip::{HeaderName, Message, Method};
use common::{response, switch_config, udp, user, Rig};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;

const SDP_A: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const SDP_B: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const SDP_C: &str = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 42000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// 100 (port 5080), 101 (5070) and 102 (5072) registered.
fn rig() -> Rig {
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        ..CallConfig::default()
    };
    let mut r = Rig::on(
        Switch::new(switch_config(
            vec![user("100"), user("101"), user("102")],
            7,
            calls,
        ))
        .unwrap(),
    );
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    r.register("102", udp(5072), "sip:102@127.0.0.1:5072", "");
    r.take();
    r
}

/// The requests of `method` the switch sent to `port` so far.
fn sent(r: &Rig, port: u16, method: &Method) -> Vec<Message> {
    r.wire
        .iter()
        .filter(|(p, m)| p.addr.port() == port && m.method() == Some(method))
        .map(|(_, m)| m.clone())
        .collect()
}

/// The responses the switch sent to `port` so far.
fn statuses_to(r: &Rig, port: u16) -> Vec<u16> {
    r.wire
        .iter()
        .filter(|(p, _)| p.addr.port() == port)
        .filter_map(|(_, m)| m.status())
        .collect()
}

/// 100 calls 101, 101 answers; returns the INVITE the switch sent to 101
/// (whose dialog the REFER goes in).
fn bridged_call(r: &mut Rig) -> Message {
    let inv = |auth: Option<String>, cseq: u32| {
        format!(
            "INVITE sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: callA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            SDP_A.len(),
        )
    };
    r.send(1.0, udp(5080), inv(None, 1));
    let ch = r
        .take()
        .iter()
        .find(|(_, m)| m.status() == Some(407))
        .map(|(_, m)| Challenge::parse(&m.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap())
        .expect("407");
    r.send(1.0, udp(5080), "ACK sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv1;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag=x\r\nCall-ID: callA\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n".into());
    let auth = carillon_digest::respond(
        &ch,
        "INVITE",
        "sip:101@127.0.0.1",
        "100",
        "changeme100",
        "c",
        1,
    );
    r.send(1.0, udp(5080), inv(Some(auth), 2));
    let b_inv = sent(r, 5070, &Method::Invite).pop().expect("INVITE to 101");
    r.send(
        1.5,
        udp(5070),
        response(&b_inv, 200, "sip:101@127.0.0.1:5070", "", Some(SDP_B)),
    );
    assert!(statuses_to(r, 5080).contains(&200), "caller answered");
    b_inv
}

/// A request from 101 in the dialog the switch's `b_inv` made.
fn from_b(b_inv: &Message, method: &str, cseq: u32, extra: &str) -> String {
    let from = b_inv.header(HeaderName::From).unwrap();
    let to = b_inv.header(HeaderName::To).unwrap();
    let call_id = b_inv.header(HeaderName::CallId).unwrap();
    format!("{method} sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb{method}{cseq};rport\r\nFrom: {to};tag=b1\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:101@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n")
}

fn refer(b_inv: &Message, cseq: u32, refer_to: &str) -> String {
    from_b(
        b_inv,
        "REFER",
        cseq,
        &format!("Refer-To: {refer_to}\r\nReferred-By: <sip:101@127.0.0.1>\r\n"),
    )
}

/// The sipfrag bodies of the NOTIFYs sent to 101 (retransmissions
/// counted once), with their Subscription-State.
fn notifies(r: &Rig) -> Vec<(String, String)> {
    let mut all = sent(r, 5070, &Method::Notify);
    let mut seen = std::collections::HashSet::new();
    all.retain(|m| seen.insert(m.header(HeaderName::CSeq).map(|c| c.into_owned())));
    all.iter()
        .map(|m| {
            assert_eq!(m.header(HeaderName::Event).as_deref(), Some("refer"));
            assert_eq!(
                m.header(HeaderName::ContentType).as_deref(),
                Some("message/sipfrag;version=2.0")
            );
            (
                String::from_utf8_lossy(m.body()).trim_end().to_owned(),
                m.header_named("Subscription-State")
                    .unwrap_or_default()
                    .into_owned(),
            )
        })
        .collect()
}

fn bridges(r: &Rig) -> Vec<(bool, [String; 2])> {
    r.events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Bridged { channels, .. } => Some((true, channels.clone())),
            SwitchEvent::Unbridged { channels, .. } => Some((false, channels.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn refer_from_the_callee_transfers_the_caller_to_the_target_and_releases_the_referrer() {
    let mut r = rig();
    let b_inv = bridged_call(&mut r);
    r.send(2.0, udp(5070), refer(&b_inv, 1, "<sip:102@127.0.0.1>"));
    assert!(statuses_to(&r, 5070).contains(&202), "REFER accepted");
    assert_eq!(
        notifies(&r),
        vec![("SIP/2.0 100 Trying".into(), "active;expires=60".into())]
    );
    let c_inv = sent(&r, 5072, &Method::Invite)
        .pop()
        .expect("INVITE to 102");
    assert_eq!(
        c_inv.header(HeaderName::ReferredBy).as_deref(),
        Some("<sip:101@127.0.0.1>")
    );
    assert!(r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::Unbridge { .. })));
    assert!(
        sent(&r, 5070, &Method::Bye).is_empty(),
        "referrer kept while 102 rings"
    );
    // 102 rings: the caller, answered long ago, hears nothing new.
    let before = statuses_to(&r, 5080).len();
    r.send(
        2.5,
        udp(5072),
        response(&c_inv, 180, "sip:102@127.0.0.1:5072", "", None),
    );
    assert_eq!(statuses_to(&r, 5080).len(), before, "no 180 to the caller");
    let bridges_before = r
        .media
        .iter()
        .filter(|m| matches!(m, MediaCommand::Bridge { .. }))
        .count();
    r.send(
        4.0,
        udp(5072),
        response(&c_inv, 200, "sip:102@127.0.0.1:5072", "", Some(SDP_C)),
    );
    assert_eq!(
        notifies(&r).last().cloned(),
        Some((
            "SIP/2.0 200 OK".into(),
            "terminated;reason=noresource".into()
        ))
    );
    assert_eq!(sent(&r, 5070, &Method::Bye).len(), 1, "referrer released");
    assert_eq!(sent(&r, 5072, &Method::Ack).len(), 1, "ACK to 102");
    assert_eq!(
        r.media
            .iter()
            .filter(|m| matches!(m, MediaCommand::Bridge { .. }))
            .count(),
        bridges_before + 1,
        "caller bridged with 102"
    );
    let b = bridges(&r);
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(b[0].0 && b[0].1[1].starts_with("SIP/101-"), "{b:?}");
    assert!(!b[1].0 && b[1].1[1].starts_with("SIP/101-"), "{b:?}");
    assert!(b[2].0 && b[2].1[1].starts_with("SIP/102-"), "{b:?}");
    assert!(
        b.iter().all(|(_, ch)| ch[0].starts_with("SIP/100-")),
        "{b:?}"
    );
    // 101 answers the NOTIFYs and the BYE.
    for m in sent(&r, 5070, &Method::Notify)
        .into_iter()
        .chain(sent(&r, 5070, &Method::Bye))
    {
        r.send(
            4.1,
            udp(5070),
            response(&m, 200, "sip:101@127.0.0.1:5070", "", None),
        );
    }
    assert_eq!(r.sw.call_counts().0, 1, "the caller talks to 102");
    // 102 hangs up: the caller gets the BYE and all is gone.
    let to = c_inv.header(HeaderName::To).unwrap();
    let bye = format!("BYE sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKcbye;rport\r\nFrom: {to};tag=b1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n", c_inv.header(HeaderName::From).unwrap(), c_inv.header(HeaderName::CallId).unwrap());
    r.send(10.0, udp(5072), bye);
    let a_bye = sent(&r, 5080, &Method::Bye)
        .pop()
        .expect("BYE to the caller");
    r.send(
        10.1,
        udp(5080),
        response(&a_bye, 200, "sip:100@127.0.0.1:5080", "", None),
    );
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0), "nothing left behind");
}

#[test]
fn a_busy_target_gives_the_caller_back_to_the_referrer() {
    let mut r = rig();
    let b_inv = bridged_call(&mut r);
    r.send(2.0, udp(5070), refer(&b_inv, 1, "<sip:102@127.0.0.1>"));
    let c_inv = sent(&r, 5072, &Method::Invite)
        .pop()
        .expect("INVITE to 102");
    r.send(
        2.5,
        udp(5072),
        response(&c_inv, 486, "sip:102@127.0.0.1:5072", "", None),
    );
    assert_eq!(
        notifies(&r).last().cloned(),
        Some((
            "SIP/2.0 486 Busy Here".into(),
            "terminated;reason=noresource".into()
        ))
    );
    assert!(sent(&r, 5070, &Method::Bye).is_empty(), "referrer kept");
    assert!(sent(&r, 5080, &Method::Bye).is_empty(), "caller kept");
    let b = bridges(&r);
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(
        b[2].0 && b[2].1[1].starts_with("SIP/101-"),
        "bridged again: {b:?}"
    );
    assert_eq!(r.sw.call_counts().0, 1);
    // The restored call ends normally when 101 hangs up.
    r.send(5.0, udp(5070), from_b(&b_inv, "BYE", 2, ""));
    assert_eq!(sent(&r, 5080, &Method::Bye).len(), 1, "caller released");
}

#[test]
fn an_unknown_target_fails_at_once_with_404() {
    let mut r = rig();
    let b_inv = bridged_call(&mut r);
    r.send(2.0, udp(5070), refer(&b_inv, 1, "<sip:999@127.0.0.1>"));
    assert!(statuses_to(&r, 5070).contains(&202));
    assert_eq!(
        notifies(&r).last().map(|n| n.0.clone()),
        Some("SIP/2.0 404 Not Found".into())
    );
    assert_eq!(bridges(&r).len(), 3, "unbridged then bridged back");
}

#[test]
fn a_referrer_that_hung_up_before_the_target_failed_takes_the_caller_down() {
    let mut r = rig();
    let b_inv = bridged_call(&mut r);
    r.send(2.0, udp(5070), refer(&b_inv, 1, "<sip:102@127.0.0.1>"));
    // 101 hangs up after the 202, as phones do.
    r.send(2.2, udp(5070), from_b(&b_inv, "BYE", 2, ""));
    assert!(
        sent(&r, 5080, &Method::Bye).is_empty(),
        "caller waits for 102"
    );
    let c_inv = sent(&r, 5072, &Method::Invite)
        .pop()
        .expect("INVITE to 102");
    r.send(
        3.0,
        udp(5072),
        response(&c_inv, 480, "sip:102@127.0.0.1:5072", "", None),
    );
    assert_eq!(sent(&r, 5080, &Method::Bye).len(), 1, "caller hung up");
}

#[test]
fn replaces_and_a_second_refer_are_refused() {
    let mut r = rig();
    let b_inv = bridged_call(&mut r);
    r.send(
        2.0,
        udp(5070),
        refer(
            &b_inv,
            1,
            "<sip:102@127.0.0.1?Replaces=x%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>",
        ),
    );
    assert_eq!(statuses_to(&r, 5070).last(), Some(&501));
    assert!(sent(&r, 5072, &Method::Invite).is_empty());
    r.send(2.1, udp(5070), refer(&b_inv, 2, "<sip:102@127.0.0.1>"));
    assert_eq!(statuses_to(&r, 5070).last(), Some(&202));
    r.send(2.2, udp(5070), refer(&b_inv, 3, "<sip:102@127.0.0.1>"));
    assert_eq!(statuses_to(&r, 5070).last(), Some(&403));
}

#[test]
fn a_target_that_does_not_answer_in_30_s_is_cancelled_and_the_caller_goes_back() {
    let mut r = rig();
    let b_inv = bridged_call(&mut r);
    r.send(2.0, udp(5070), refer(&b_inv, 1, "<sip:102@127.0.0.1>"));
    let c_inv = sent(&r, 5072, &Method::Invite)
        .pop()
        .expect("INVITE to 102");
    r.send(
        2.5,
        udp(5072),
        response(&c_inv, 180, "sip:102@127.0.0.1:5072", "", None),
    );
    r.tick(20.0);
    assert!(sent(&r, 5072, &Method::Cancel).is_empty(), "still ringing");
    assert_eq!(notifies(&r).len(), 1);
    r.tick(32.5);
    assert_eq!(sent(&r, 5072, &Method::Cancel).len(), 1, "target cancelled");
    assert_eq!(
        notifies(&r).last().map(|n| n.0.clone()),
        Some("SIP/2.0 408 Request Timeout".into())
    );
    let b = bridges(&r);
    assert!(
        b[2].0 && b[2].1[1].starts_with("SIP/101-"),
        "bridged back: {b:?}"
    );
    assert_eq!(r.sw.call_counts().0, 1, "the call goes on");
}
