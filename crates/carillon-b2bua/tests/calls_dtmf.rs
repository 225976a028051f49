//! DTMF modes per user and trunk through the sans-IO switch (fake media):
//! what each leg's SDP offers or answers, the `SetDtmfMode` the media plane
//! gets when a leg's media opens, and digits crossing a bridge in the form
//! the other leg wants (SIP INFO one at a time, or `SendDtmf`).

mod common;

use std::time::Duration;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{DtmfMode, Switch, User};
use carillon_digest::Challenge;
use carillon_mediactl::{DtmfSource, LegId, MediaCommand, MediaEvent, SessionId};
use carillon_sip::{HeaderName, Message, Method};
use common::{response, switch_config, udp, user, Rig};

const PLAN: &str = r#"
[context.internal]
allow_trunks = ["carrier"]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
[[context.internal.extension]]
match = "102"
steps = [ { app = "Dial", targets = ["trunk/carrier/+15551234567"], timeout = 20 }, { app = "Hangup" } ]
"#;

/// The caller's offer, with telephone-event.
const SDP_A: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
/// The callee's answer, with telephone-event.
const SDP_B: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn user_in(e: &str, mode: DtmfMode) -> User {
    User {
        dtmf_mode: mode,
        ..user(e)
    }
}

/// A switch with 100 and 101 in the given modes and the carrier trunk
/// (contact 127.0.0.1:6001) in `trunk_mode`.
fn rig(a: DtmfMode, b: DtmfMode, trunk_mode: &str) -> Rig {
    let trunks = format!(
        "[trunk.carrier]\nkind = \"carrier\"\ncontacts = [\"sip:127.0.0.1:6001\"]\ndtmf_mode = \"{trunk_mode}\"\n"
    );
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        trunks: Some(carillon_trunk::Trunks::load("trunks.toml", &trunks).unwrap()),
        ..CallConfig::default()
    };
    let mut r = Rig::on(
        Switch::new(switch_config(
            vec![user_in("100", a), user_in("101", b)],
            5,
            calls,
        ))
        .unwrap(),
    );
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    r.tick(0.5); // starts the trunks
    r.take();
    r
}

/// 100 (from port 5080) calls `exten`, authenticating after the 407.
fn call(r: &mut Rig, secs: f64, exten: &str) {
    let inv = |auth: Option<String>, cseq: u32| {
        format!(
            "INVITE sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>\r\nCall-ID: callA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            SDP_A.len(),
        )
    };
    r.send(secs, udp(5080), inv(None, 1));
    let out = r.take();
    let ch = out
        .iter()
        .find(|(_, m)| m.status() == Some(407))
        .map(|(_, m)| Challenge::parse(&m.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap())
        .expect("407");
    r.send(secs, udp(5080), format!("ACK sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv1;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>;tag=x\r\nCall-ID: callA\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    let auth = carillon_digest::respond(
        &ch,
        "INVITE",
        &format!("sip:{exten}@127.0.0.1"),
        "100",
        "changeme100",
        "c",
        1,
    );
    r.send(secs, udp(5080), inv(Some(auth), 2));
}

/// The requests of `method` the switch sent to `port` so far.
fn sent(r: &Rig, port: u16, method: &Method) -> Vec<Message> {
    r.wire
        .iter()
        .filter(|(p, m)| p.addr.port() == port && m.method() == Some(method))
        .map(|(_, m)| m.clone())
        .collect()
}

/// The call 100 → 101 answered by 101 and ACKed by 100: A's 200, and the
/// switch's tag towards A.
fn answered(r: &mut Rig) -> (Message, String) {
    call(r, 1.0, "101");
    let inv = sent(r, 5070, &Method::Invite).remove(0);
    r.send(
        1.5,
        udp(5070),
        response(&inv, 200, "sip:101@127.0.0.1:5070", "", Some(SDP_B)),
    );
    let ok = r
        .wire
        .iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
        .map(|(_, m)| m.clone())
        .expect("200 to A");
    let tag = ok.tag(HeaderName::To).unwrap();
    r.send(1.5, udp(5080), format!("ACK sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"));
    (ok, tag)
}

/// The session and the legs A and B of the bridged call.
fn bridged(r: &Rig) -> (SessionId, LegId, LegId) {
    r.media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Bridge { session, a, b } => Some((*session, *a, *b)),
            _ => None,
        })
        .expect("a bridge")
}

fn media_digit(r: &mut Rig, secs: f64, session: SessionId, leg: LegId, digit: char) {
    let (now, ms) = r.at(secs);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::Dtmf {
            session,
            leg,
            digit,
            duration: Duration::from_millis(100),
            source: DtmfSource::Rfc4733,
        },
    );
    r.drain();
}

fn send_dtmfs(r: &Rig) -> Vec<(LegId, char, Duration)> {
    r.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::SendDtmf {
                leg,
                digit,
                duration,
                ..
            } => Some((*leg, *digit, *duration)),
            _ => None,
        })
        .collect()
}

fn body(m: &Message) -> String {
    String::from_utf8(m.body().to_vec()).unwrap()
}

fn has_telephone_event(m: &Message) -> bool {
    body(m).contains("telephone-event")
}

#[test]
fn an_info_digit_from_the_caller_reaches_an_rfc4733_callee_as_send_dtmf() {
    let mut r = rig(DtmfMode::Rfc4733, DtmfMode::Rfc4733, "rfc4733");
    let (_, tag) = answered(&mut r);
    let (session, a, b) = bridged(&r);
    r.take();
    let info = |cseq: u32, ct: &str, body: &str| {
        format!("INFO sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinfo{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: {cseq} INFO\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    };
    r.send(
        2.0,
        udp(5080),
        info(10, "application/dtmf-relay", "Signal=5\r\nDuration=250\r\n"),
    );
    r.send(2.1, udp(5080), info(11, "application/dtmf", "#"));
    assert_eq!(
        send_dtmfs(&r),
        [
            (b, '5', Duration::from_millis(250)),
            (b, '#', Duration::from_millis(160)),
        ],
        "INFO digits go to the callee's leg in its mode, a digit without a duration as 160 ms"
    );
    assert!(
        sent(&r, 5070, &Method::Info).is_empty(),
        "an rfc4733 callee gets no INFO"
    );
    // An RFC 4733 digit between two rfc4733 legs is the media plane's to
    // relay: the switch adds nothing.
    media_digit(&mut r, 2.2, session, a, '7');
    assert_eq!(send_dtmfs(&r).len(), 2);
    assert!(sent(&r, 5070, &Method::Info).is_empty());
    assert_eq!(r.sw.stats().dtmf_digits, 3);
    assert!(
        !r.media
            .iter()
            .any(|m| matches!(m, MediaCommand::SetDtmfMode { .. })),
        "rfc4733 is the media plane's default: no SetDtmfMode"
    );
}

#[test]
fn rfc4733_digits_to_an_info_callee_go_out_as_info_one_at_a_time_in_order() {
    let mut r = rig(DtmfMode::Rfc4733, DtmfMode::Info, "rfc4733");
    answered(&mut r);
    let (session, a, _) = bridged(&r);
    r.take();
    media_digit(&mut r, 2.0, session, a, '1');
    media_digit(&mut r, 2.1, session, a, '2');
    media_digit(&mut r, 2.2, session, a, '3');
    let infos = sent(&r, 5070, &Method::Info);
    assert_eq!(
        infos.len(),
        1,
        "the second digit waits for the first INFO's answer"
    );
    let first = infos[0].clone();
    assert_eq!(
        first.header(HeaderName::ContentType).as_deref(),
        Some("application/dtmf-relay")
    );
    assert_eq!(body(&first), "Signal=1\r\nDuration=100\r\n");
    assert_eq!(
        first.tag(HeaderName::To).as_deref(),
        Some("b1"),
        "in B's dialog"
    );
    assert!(
        send_dtmfs(&r).is_empty(),
        "the media plane sends nothing to an info leg"
    );
    // A retransmission of the request is no new digit; its 200 releases the next.
    r.take();
    r.send(
        2.3,
        udp(5070),
        response(&first, 200, "sip:101@127.0.0.1:5070", "", None),
    );
    let infos = sent(&r, 5070, &Method::Info);
    assert_eq!(infos.len(), 1, "{infos:?}");
    let second = infos[0].clone();
    assert_eq!(body(&second), "Signal=2\r\nDuration=100\r\n");
    let cseq = |m: &Message| m.header(HeaderName::CSeq).unwrap().to_string();
    assert_ne!(cseq(&first), cseq(&second));
    // A refused INFO also lets the next one go.
    r.take();
    r.send(
        2.4,
        udp(5070),
        response(&second, 415, "sip:101@127.0.0.1:5070", "", None),
    );
    let infos = sent(&r, 5070, &Method::Info);
    assert_eq!(infos.len(), 1, "{infos:?}");
    let third = infos[0].clone();
    assert_eq!(body(&third), "Signal=3\r\nDuration=100\r\n");
    // A fourth digit while the third is unanswered waits until the third
    // times out (Timer F, 64 T1), then goes.
    r.take();
    media_digit(&mut r, 2.5, session, a, '4');
    r.tick(20.0);
    assert!(
        sent(&r, 5070, &Method::Info)
            .iter()
            .all(|m| body(m).starts_with("Signal=3")),
        "only retransmissions of the third INFO"
    );
    r.tick(2.4 + 32.5);
    let fourth: Vec<Message> = sent(&r, 5070, &Method::Info)
        .into_iter()
        .filter(|m| body(m).starts_with("Signal=4"))
        .collect();
    assert_eq!(fourth.len(), 1, "the fourth INFO after the third timed out");
    assert_eq!(r.sw.stats().dtmf_digits, 4, "each digit is one dtmf event");
}

#[test]
fn an_info_caller_gets_info_for_digits_from_the_callee() {
    let mut r = rig(DtmfMode::Info, DtmfMode::Rfc4733, "rfc4733");
    answered(&mut r);
    let (session, _, b) = bridged(&r);
    r.take();
    media_digit(&mut r, 2.0, session, b, '9');
    let infos = sent(&r, 5080, &Method::Info);
    assert_eq!(infos.len(), 1);
    assert_eq!(body(&infos[0]), "Signal=9\r\nDuration=100\r\n");
    assert_eq!(
        infos[0].header(HeaderName::CallId).as_deref(),
        Some("callA")
    );
}

#[test]
fn set_dtmf_mode_goes_to_the_media_plane_when_each_legs_media_opens() {
    let mut r = rig(DtmfMode::Inband, DtmfMode::Auto, "rfc4733");
    answered(&mut r);
    let (_, a, b) = bridged(&r);
    let order: Vec<String> = r
        .media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::OpenLeg { leg, .. } => Some(format!("open {}", leg.0)),
            MediaCommand::SetDtmfMode { leg, mode, .. } => Some(format!("{mode:?} {}", leg.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            format!("open {}", a.0),
            format!("Inband {}", a.0),
            format!("open {}", b.0),
            format!("Auto {}", b.0),
        ]
    );
}

#[test]
fn the_sdp_of_inband_and_info_legs_has_no_telephone_event_and_rfc4733_and_auto_legs_have_it() {
    for (mode, want) in [
        (DtmfMode::Rfc4733, true),
        (DtmfMode::Auto, true),
        (DtmfMode::Inband, false),
        (DtmfMode::Info, false),
    ] {
        // The caller in `mode`: our answer to its offer (which has
        // telephone-event); the callee in `mode`: our offer.
        let mut r = rig(mode, mode, "rfc4733");
        let (ok, _) = answered(&mut r);
        assert_eq!(
            has_telephone_event(&ok),
            want,
            "answer to a {mode:?} caller"
        );
        let inv = sent(&r, 5070, &Method::Invite).remove(0);
        assert_eq!(
            has_telephone_event(&inv),
            want,
            "offer to a {mode:?} callee"
        );
    }
}

#[test]
fn a_trunks_dtmf_mode_decides_its_offer_and_its_media_mode() {
    for (mode, te, set) in [
        ("inband", false, Some(DtmfMode::Inband)),
        ("info", false, Some(DtmfMode::Info)),
        ("auto", true, Some(DtmfMode::Auto)),
        ("rfc4733", true, None),
    ] {
        let mut r = rig(DtmfMode::Rfc4733, DtmfMode::Rfc4733, mode);
        call(&mut r, 1.0, "102");
        let inv = sent(&r, 6001, &Method::Invite).remove(0);
        assert_eq!(has_telephone_event(&inv), te, "offer to a {mode} trunk");
        r.send(
            1.5,
            udp(6001),
            response(&inv, 200, "sip:127.0.0.1:6001", "", Some(SDP_B)),
        );
        let (_, _, b) = bridged(&r);
        let got = r.media.iter().find_map(|m| match m {
            MediaCommand::SetDtmfMode { leg, mode, .. } if *leg == b => Some(*mode),
            _ => None,
        });
        assert_eq!(got, set, "{mode}");
    }
}
