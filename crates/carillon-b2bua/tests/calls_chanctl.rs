//! Channel control through the sans-IO switch with virtual time: a
//! bridged call lists its two channels (names, bridged-with, state), and
//! hanging one up by name ends the call: both phones get a BYE, the CDR
//! and the hangup events carry the cause, the switch holds nothing after;
//! an unknown name is `NotFound`.

mod common;

use carillon_b2bua::calls::chanctl::NotFound;
use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::Switch;
use carillon_digest::Challenge;
use carillon_events::SwitchEvent;
use carillon_sip::{HeaderName, Message, Method};
use common::{response, switch_config, udp, user, Rig};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;
fn sdp(owner: &str, port: u16, version: u32, direction: &str) -> String {
    format!("v=0\r\no={owner} 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n")
}

fn rig() -> Rig {
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        events: true,
        ..CallConfig::default()
    };
    Rig::on(Switch::new(switch_config(vec![user("100"), user("101")], 5, calls)).unwrap())
}

/// 100 (at :5080) calls 101 (at :5070), which answers; returns the
/// switch's To tag towards 100 and the INVITE 101 got.
fn bridged_call(r: &mut Rig) -> (String, Message) {
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    let offer = sdp("a", 40000, 1, "sendrecv");
    let inv = |auth: Option<String>, cseq: u32| {
        format!(
            "INVITE sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: callA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            offer.len(),
        )
    };
    r.send(1.0, udp(5080), inv(None, 1));
    let ch = r
        .take()
        .into_iter()
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
    let b_inv = r
        .take()
        .into_iter()
        .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Invite))
        .map(|(_, m)| m)
        .expect("INVITE to 101");
    let answer = sdp("b", 41000, 1, "sendrecv");
    r.send(
        1.5,
        udp(5070),
        response(&b_inv, 200, "sip:101@127.0.0.1:5070", "", Some(&answer)),
    );
    let ok = r
        .take()
        .into_iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
        .map(|(_, m)| m)
        .expect("200 to 100");
    let tag = ok.tag(HeaderName::To).unwrap();
    r.send(1.5, udp(5080), format!("ACK sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"));
    r.take();
    (tag, b_inv)
}

/// A re-INVITE from 100 with `direction`; returns the switch's answer.

#[test]
fn a_bridged_call_hung_up_by_channel_name_ends_with_bye_to_both_phones() {
    let mut r = rig();
    bridged_call(&mut r);
    let list = r.sw.channel_list();
    assert_eq!(list.len(), 2, "{list:?}");
    let a = list
        .iter()
        .find(|c| c.name.starts_with("SIP/100-"))
        .expect("caller channel");
    let b = list
        .iter()
        .find(|c| c.name.starts_with("SIP/101-"))
        .expect("callee channel");
    assert_eq!(a.state, "up");
    assert_eq!(b.state, "up");
    assert_eq!(a.bridged_with.as_deref(), Some(b.name.as_str()));
    assert_eq!(b.bridged_with.as_deref(), Some(a.name.as_str()));
    assert_eq!(a.linkedid, b.linkedid);
    assert_ne!(a.uniqueid, b.uniqueid);
    assert_eq!(a.exten, "101");
    assert_eq!(a.caller_num, "100");
    assert!(a.answer_ms.is_some());

    let (now, ms) = r.at(5.0);
    assert_eq!(
        r.sw.hangup_channel(now, ms, "SIP/999-00000001", 16),
        Err(NotFound("SIP/999-00000001".into()))
    );
    let b_name = b.name.clone();
    r.sw.hangup_channel(now, ms, &b_name, 17).expect("hung up");
    r.drain();
    let wire = r.take();
    let byes: Vec<u16> = wire
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Bye))
        .map(|(p, _)| p.addr.port())
        .collect();
    assert!(
        byes.contains(&5080) && byes.contains(&5070),
        "BYEs to {byes:?}"
    );
    assert_eq!(r.sw.calls().active(), 0);
    assert_eq!(r.sw.calls().channels(), 0);
    assert_eq!(r.sw.calls().bridges(), 0);
    assert!(r.sw.channel_list().is_empty());
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].hangup_cause, 17, "{:?}", r.cdrs[0]);
    let causes: Vec<u16> = r
        .events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Hangup { cause, .. } => Some(*cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes.contains(&17), "{causes:?}");
    // Gone now.
    let (now, ms) = r.at(6.0);
    assert!(r.sw.hangup_channel(now, ms, &b_name, 16).is_err());
}
