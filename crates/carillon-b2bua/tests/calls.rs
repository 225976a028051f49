//! Call flows through the sans-IO switch with virtual time: a registered
//! callee, an authenticated caller, the B2BUA in between. Every test checks
//! what went on the wire, what the media plane was told, the CDR, and that
//! no call, transaction or RTP port is left behind.

mod common;

use std::time::Duration;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{Peer, Switch, User};
use carillon_cdr::Disposition;
use carillon_digest::Challenge;
use carillon_mediactl::MediaCommand;
use carillon_sip::{HeaderName, Message, Method};
use common::{response, switch_config, udp, user, Rig};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;

impl Rig {
    fn new() -> Rig {
        Rig::with(vec![user("100"), user("101")], PLAN)
    }

    fn with(users: Vec<User>, plan: &str) -> Rig {
        Rig::with_trunks(users, plan, None)
    }

    fn with_trunks(users: Vec<User>, plan: &str, trunks: Option<&str>) -> Rig {
        let calls = CallConfig {
            dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", plan).unwrap()),
            trunks: trunks.map(|t| carillon_trunk::Trunks::load("trunks.toml", t).unwrap()),
            ..CallConfig::default()
        };
        Rig::on(Switch::new(switch_config(users, 3, calls)).unwrap())
    }

    fn register_101(&mut self) {
        self.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    }

    /// 100 calls 101: challenge, authenticated INVITE; returns A's Call-ID.
    fn invite_from_100(&mut self, secs: f64) {
        let inv = |auth: Option<String>, cseq: u32| {
            format!(
                "INVITE sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{cseq};rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: callA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
                auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
                SDP_PCMU.len(),
                SDP_PCMU
            )
        };
        self.send(secs, udp(5080), inv(None, 1));
        let out = self.take();
        let challenge = out
            .iter()
            .find(|(_, m)| m.status() == Some(407))
            .expect("407");
        assert!(
            !out.iter().any(|(_, m)| m.status() == Some(100)),
            "a challenged INVITE is answered 407 alone, no 100 Trying"
        );
        let ch =
            Challenge::parse(&challenge.1.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap();
        self.send(secs, udp(5080), "ACK sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv1;rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag=x\r\nCall-ID: callA\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n".into());
        let auth = carillon_digest::respond(
            &ch,
            "INVITE",
            "sip:101@127.0.0.1",
            "100",
            "changeme100",
            "c",
            1,
        );
        self.send(secs, udp(5080), inv(Some(auth), 2));
    }

    /// The INVITE the switch sent to 101.
    fn b_invite(&self) -> Message {
        self.wire
            .iter()
            .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Invite))
            .map(|(_, m)| m.clone())
            .expect("INVITE to 101")
    }
}

const SDP_PCMU: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
const SDP_B: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn response_from_b(inv: &Message, status: u16, with_sdp: bool) -> String {
    let mut s = format!("SIP/2.0 {status} X\r\n");
    for (name, raw, value) in inv.headers() {
        match name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                s.push_str(&format!("{raw}: {value}\r\n"))
            }
            HeaderName::To => s.push_str(&format!("To: {value};tag=b1\r\n")),
            _ => {}
        }
    }
    s.push_str("Contact: <sip:101@127.0.0.1:5070>\r\n");
    if with_sdp {
        s.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_B}",
            SDP_B.len()
        ));
    } else {
        s.push_str("Content-Length: 0\r\n\r\n");
    }
    s
}

fn in_dialog_from_a(method: &str, cseq: u32, branch: &str) -> String {
    format!("{method} sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch={branch};rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag=TAG\r\nCall-ID: callA\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn an_answered_call_is_bridged_and_cleaned_up_after_bye_with_an_answered_cdr() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    // The offer to B carries the switch's relay address, not A's.
    assert!(!String::from_utf8_lossy(b_inv.body()).contains("40000"));
    r.take();
    r.send(1.1, udp(5070), response_from_b(&b_inv, 180, false));
    let out = r.take();
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5080 && m.status() == Some(180)),
        "180 relayed to A"
    );
    r.send(2.0, udp(5070), response_from_b(&b_inv, 200, true));
    let out = r.take();
    let ok = out
        .iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
        .expect("200 to A");
    let a_sdp = String::from_utf8_lossy(ok.1.body()).into_owned();
    assert!(
        a_sdp.contains("m=audio ") && !a_sdp.contains("41000"),
        "A sees the relay, not B: {a_sdp}"
    );
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Ack)),
        "ACK to B"
    );
    assert_eq!(
        r.media
            .iter()
            .filter(|m| matches!(m, MediaCommand::OpenLeg { .. }))
            .count(),
        2
    );
    assert!(r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { .. })));
    let tag = ok.1.tag(HeaderName::To).unwrap();
    r.send(
        2.1,
        udp(5080),
        in_dialog_from_a("ACK", 2, "z9hG4bKack2").replace("TAG", &tag),
    );
    r.send(
        12.0,
        udp(5080),
        in_dialog_from_a("BYE", 3, "z9hG4bKbye").replace("TAG", &tag),
    );
    let out = r.take();
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200)),
        "200 for A's BYE"
    );
    let bye = out
        .iter()
        .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Bye))
        .expect("BYE to B")
        .1
        .clone();
    r.send(12.1, udp(5070), response_from_b(&bye, 200, false));
    assert!(r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::CloseSession { .. })));
    assert_eq!(r.cdrs.len(), 1);
    let cdr = &r.cdrs[0];
    assert_eq!(cdr.disposition, Disposition::Answered);
    assert_eq!(cdr.billsec(), 10);
    assert_eq!(cdr.duration(), 11);
    assert_eq!((cdr.src.as_str(), cdr.dst.as_str()), ("100", "101"));
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(
        r.sw.call_counts(),
        (0, 0, 0),
        "no call, client transaction or port left"
    );
}

/// Channels, bridges, calls, client transactions and ports of the
/// switch: (active, channels, bridges, client transactions, ports).
fn counters(r: &Rig) -> (usize, usize, usize, usize, usize) {
    let c = r.sw.calls();
    (
        c.active(),
        c.channels(),
        c.bridges(),
        c.client_transactions(),
        c.ports_in_use(),
    )
}

#[test]
fn the_counters_follow_a_call_and_every_one_is_back_to_zero_when_it_ends() {
    let mut r = Rig::new();
    r.register_101();
    assert_eq!(counters(&r), (0, 0, 0, 0, 0), "nothing before the call");
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.take();
    let (active, channels, bridges, clients, ports) = counters(&r);
    assert_eq!(
        (active, channels, bridges),
        (1, 2, 0),
        "ringing: one call, the caller's channel and the callee's, no bridge"
    );
    assert_eq!(clients, 1, "the INVITE to the callee");
    assert_eq!(ports, 2, "one port per channel");
    r.send(2.0, udp(5070), response_from_b(&b_inv, 200, true));
    let out = r.take();
    let ok = out
        .iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
        .expect("200 to A")
        .1
        .clone();
    let (active, channels, bridges, _, ports) = counters(&r);
    assert_eq!(
        (active, channels, bridges, ports),
        (1, 2, 1, 2),
        "answered: the two channels in one bridge"
    );
    let tag = ok.tag(HeaderName::To).unwrap();
    r.send(
        2.1,
        udp(5080),
        in_dialog_from_a("ACK", 2, "z9hG4bKack2").replace("TAG", &tag),
    );
    r.send(
        5.0,
        udp(5080),
        in_dialog_from_a("BYE", 3, "z9hG4bKbye").replace("TAG", &tag),
    );
    let out = r.take();
    let bye = out
        .iter()
        .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Bye))
        .expect("BYE to B")
        .1
        .clone();
    r.send(5.1, udp(5070), response_from_b(&bye, 200, false));
    assert_eq!(r.cdrs.len(), 1, "the call ended");
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(
        counters(&r),
        (0, 0, 0, 0, 0),
        "no call, channel, bridge, client transaction or port left"
    );
}

#[test]
fn cancel_before_answer_gives_487_cancels_the_fork_and_a_cancel_cdr() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.send(1.1, udp(5070), response_from_b(&b_inv, 180, false));
    r.take();
    r.send(
        3.0,
        udp(5080),
        in_dialog_from_a("CANCEL", 2, "z9hG4bKinv2").replace(";tag=TAG", ""),
    );
    let out = r.take();
    assert!(out.iter().any(|(p, m)| p.addr.port() == 5080
        && m.status() == Some(200)
        && m.cseq().unwrap().method == Method::Cancel));
    assert!(out
        .iter()
        .any(|(p, m)| p.addr.port() == 5080 && m.status() == Some(487)));
    let cancel = out
        .iter()
        .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Cancel))
        .expect("CANCEL to B")
        .1
        .clone();
    assert_eq!(
        cancel.top_via_str(),
        b_inv.top_via_str(),
        "CANCEL reuses the INVITE's branch"
    );
    r.send(3.1, udp(5070), response_from_b(&cancel, 200, false));
    r.send(3.1, udp(5070), response_from_b(&b_inv, 487, false));
    let out = r.take();
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Ack)),
        "487 is ACKed"
    );
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].disposition, Disposition::Cancel);
    // The caller gave up: the Dial finishes CANCEL; nothing was bridged.
    assert!(r.events.iter().any(|e| matches!(&e.event,
        carillon_events::SwitchEvent::AppFinished { app, result, .. } if app == "Dial" && result == "CANCEL")));
    assert!(!event_names(&r).contains(&"bridged"));
    assert_eq!(
        event_names(&r).iter().filter(|n| **n == "hangup").count(),
        2
    );
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_busy_callee_gives_486_to_the_caller_and_a_busy_cdr() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.take();
    r.send(1.5, udp(5070), response_from_b(&b_inv, 486, false));
    let out = r.take();
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5080 && m.status() == Some(486)),
        "{:?}",
        out.iter().map(|(_, m)| m.status()).collect::<Vec<_>>()
    );
    assert_eq!(r.cdrs[0].disposition, Disposition::Busy);
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn no_answer_within_the_dial_timeout_cancels_and_answers_480() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.send(1.1, udp(5070), response_from_b(&b_inv, 180, false));
    r.take();
    r.tick(21.5);
    let out = r.take();
    assert!(out
        .iter()
        .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Cancel)));
    assert!(out
        .iter()
        .any(|(p, m)| p.addr.port() == 5080 && m.status() == Some(480)));
    assert_eq!(r.cdrs[0].disposition, Disposition::NoAnswer);
}

#[test]
fn a_caller_that_never_acks_the_200_is_hung_up() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.send(2.0, udp(5070), response_from_b(&b_inv, 200, true));
    r.take();
    for s in 3..40 {
        r.tick(f64::from(s));
    }
    let out = r.take();
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Bye)),
        "callee released"
    );
    assert_eq!(r.cdrs.len(), 1);
    r.tick(120.0);
    r.tick(200.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

// ---------------------------------------------------------------------------
// Early media, 100rel/PRACK, session timers, per-user limits
// ---------------------------------------------------------------------------

const SDP_B2: &str = "v=0\r\no=b 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 42000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// A response to `req` as its recipient would send it: the dialog headers
/// copied, a To tag added when the request had none.
fn response_to(req: &Message, status: u16, extra: &str, sdp: Option<&str>) -> String {
    response(req, status, "sip:101@127.0.0.1:5070", extra, sdp)
}

/// An in-dialog request from A (tag `a1`) to the switch (tag `tag`).
fn a_request(
    method: &str,
    cseq: u32,
    branch: &str,
    tag: &str,
    extra: &str,
    sdp: Option<&str>,
) -> String {
    let body = sdp.unwrap_or("");
    let ct = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!("{method} sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch={branch};rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: {cseq} {method}\r\nContact: <sip:100@127.0.0.1:5080>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}", body.len())
}

fn sent_to(out: &[(Peer, Message)], port: u16) -> Vec<Message> {
    out.iter()
        .filter(|(p, _)| p.addr.port() == port)
        .map(|(_, m)| m.clone())
        .collect()
}

fn statuses(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().filter_map(Message::status).collect()
}

fn requests<'a>(msgs: &'a [Message], method: &Method) -> Vec<&'a Message> {
    msgs.iter().filter(|m| m.method() == Some(method)).collect()
}

impl Rig {
    /// `user` (from 127.0.0.1:`port`) calls `exten`, authenticating after
    /// the 407; returns what the switch sent after the second INVITE.
    fn call(
        &mut self,
        secs: f64,
        user: &str,
        port: u16,
        exten: &str,
        call_id: &str,
        extra: &str,
    ) -> Vec<(Peer, Message)> {
        let inv = |auth: Option<String>, cseq: u32| {
            format!(
                "INVITE sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{cseq};rport\r\nFrom: <sip:{user}@127.0.0.1>;tag=t{call_id}\r\nTo: <sip:{exten}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{extra}{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
                auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
                SDP_PCMU.len(),
                SDP_PCMU
            )
        };
        self.send(secs, udp(port), inv(None, 1));
        let out = self.take();
        let ch = out
            .iter()
            .find(|(_, m)| m.status() == Some(407))
            .map(|(_, m)| {
                Challenge::parse(&m.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap()
            })
            .expect("407");
        self.send(secs, udp(port), format!("ACK sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}1;rport\r\nFrom: <sip:{user}@127.0.0.1>;tag=t{call_id}\r\nTo: <sip:{exten}@127.0.0.1>;tag=x\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
        let auth = carillon_digest::respond(
            &ch,
            "INVITE",
            &format!("sip:{exten}@127.0.0.1"),
            user,
            &format!("changeme{user}"),
            "c",
            1,
        );
        self.send(secs, udp(port), inv(Some(auth), 2));
        self.wire.clone()
    }

    fn media_count(&self, f: impl Fn(&MediaCommand) -> bool) -> usize {
        self.media.iter().filter(|m| f(m)).count()
    }

    /// A hangs up (BYE) and B's BYE is answered; then time runs out every
    /// transaction.
    fn hang_up_from_a(&mut self, secs: f64, tag: &str, cseq: u32) {
        self.send(
            secs,
            udp(5080),
            a_request("BYE", cseq, "z9hG4bKbyeA", tag, "", None),
        );
        let out = self.take();
        assert!(
            statuses(&sent_to(&out, 5080)).contains(&200),
            "BYE answered"
        );
        let to_b = sent_to(&out, 5070);
        let bye = requests(&to_b, &Method::Bye);
        assert_eq!(bye.len(), 1, "BYE to B");
        self.send(secs, udp(5070), response_to(bye[0], 200, "", None));
        self.tick(secs + 60.0);
        self.tick(secs + 120.0);
    }
}

fn rseq_of(m: &Message) -> Option<u32> {
    m.header(HeaderName::RSeq)
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_183_with_sdp_is_relayed_as_183_with_the_relay_sdp_and_bridged_before_the_answer() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.take();
    let before = r.media.len();
    r.send(1.1, udp(5070), response_to(&b_inv, 183, "", Some(SDP_B)));
    let to_a = sent_to(&r.take(), 5080);
    assert_eq!(statuses(&to_a), vec![183], "A gets a 183 and no 180");
    let early_sdp = String::from_utf8_lossy(to_a[0].body()).into_owned();
    assert!(
        early_sdp.contains("m=audio ")
            && !early_sdp.contains("41000")
            && !early_sdp.contains("40000"),
        "A hears the relay: {early_sdp}"
    );
    let early: Vec<&MediaCommand> = r.media[before..].iter().collect();
    assert!(
        matches!(early.as_slice(), [MediaCommand::OpenLeg { params, .. }, MediaCommand::Bridge { .. }]
            if params.remote.map(|a| a.port()) == Some(41000)),
        "B's leg opened towards its early SDP and bridged before the 200: {early:?}"
    );
    // A 180 after the early media does not make A play its own ringback.
    r.send(1.2, udp(5070), response_to(&b_inv, 180, "", None));
    assert!(sent_to(&r.take(), 5080).is_empty());
    // The 200 with the same SDP: nothing new on the media plane.
    let media_before_200 = r.media.len();
    r.send(3.0, udp(5070), response_to(&b_inv, 200, "", Some(SDP_B)));
    let out = r.take();
    let ok = sent_to(&out, 5080);
    assert_eq!(statuses(&ok), vec![200]);
    assert_eq!(
        String::from_utf8_lossy(ok[0].body()),
        early_sdp,
        "the 200 repeats the early answer"
    );
    assert_eq!(
        r.media.len(),
        media_before_200,
        "{:?}",
        &r.media[media_before_200..]
    );
    assert_eq!(requests(&sent_to(&out, 5070), &Method::Ack).len(), 1);
    let tag = ok[0].tag(HeaderName::To).unwrap();
    r.send(
        3.1,
        udp(5080),
        a_request("ACK", 2, "z9hG4bKack", &tag, "", None),
    );
    r.hang_up_from_a(10.0, &tag, 3);
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].disposition, Disposition::Answered);
    assert_eq!(r.cdrs[0].billsec(), 7, "billed from the 200, not the 183");
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_200_whose_sdp_differs_from_the_early_sdp_updates_the_callee_leg() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.send(1.1, udp(5070), response_to(&b_inv, 183, "", Some(SDP_B)));
    r.take();
    let before = r.media.len();
    r.send(2.0, udp(5070), response_to(&b_inv, 200, "", Some(SDP_B2)));
    let out = r.take();
    assert_eq!(statuses(&sent_to(&out, 5080)), vec![200]);
    let after: Vec<&MediaCommand> = r.media[before..].iter().collect();
    assert!(
        matches!(after.as_slice(), [MediaCommand::UpdateLeg { params, .. }]
            if params.remote.map(|a| a.port()) == Some(42000)),
        "B's leg moved to the 200's SDP: {after:?}"
    );
    assert_eq!(
        r.media_count(|m| matches!(m, MediaCommand::OpenLeg { .. })),
        2
    );
    let tag = sent_to(&out, 5080)[0].tag(HeaderName::To).unwrap();
    r.send(
        2.1,
        udp(5080),
        a_request("ACK", 2, "z9hG4bKack", &tag, "", None),
    );
    r.hang_up_from_a(5.0, &tag, 3);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_callee_failing_after_early_media_closes_its_leg_and_the_caller_gets_the_failure() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.send(1.1, udp(5070), response_to(&b_inv, 183, "", Some(SDP_B)));
    r.take();
    r.send(4.0, udp(5070), response_to(&b_inv, 486, "", None));
    let out = r.take();
    assert_eq!(statuses(&sent_to(&out, 5080)), vec![486]);
    assert!(r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::CloseLeg { .. })));
    assert_eq!(r.cdrs[0].disposition, Disposition::Busy);
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_caller_with_100rel_gets_a_reliable_183_retransmitted_until_its_prack_and_the_200_after() {
    let mut r = Rig::new();
    r.register_101();
    r.call(
        1.0,
        "100",
        5080,
        "101",
        "callA",
        "Supported: 100rel, timer\r\n",
    );
    let b_inv = r.b_invite();
    assert!(
        b_inv
            .header(HeaderName::Supported)
            .is_some_and(|s| s.contains("100rel")),
        "we advertise 100rel to the callee"
    );
    r.take();
    r.send(1.1, udp(5070), response_to(&b_inv, 183, "", Some(SDP_B)));
    let to_a = sent_to(&r.take(), 5080);
    assert_eq!(statuses(&to_a), vec![183]);
    assert_eq!(
        to_a[0].header(HeaderName::Require).as_deref(),
        Some("100rel")
    );
    let rseq = rseq_of(&to_a[0]).expect("RSeq");
    assert!((1..1 << 31).contains(&rseq));
    // Not PRACKed: retransmitted after T1 and 2·T1 with the same RSeq.
    r.tick(1.6);
    r.tick(2.6);
    let again = sent_to(&r.take(), 5080);
    assert_eq!(statuses(&again), vec![183, 183]);
    assert!(again.iter().all(|m| rseq_of(m) == Some(rseq)));
    // The callee answers: the 200 waits for the PRACK.
    r.send(2.7, udp(5070), response_to(&b_inv, 200, "", Some(SDP_B)));
    let out = r.take();
    assert!(
        statuses(&sent_to(&out, 5080)).is_empty(),
        "no 200 before the PRACK"
    );
    assert_eq!(requests(&sent_to(&out, 5070), &Method::Ack).len(), 1);
    let tag = to_a[0].tag(HeaderName::To).unwrap();
    // A PRACK for another RSeq matches nothing.
    r.send(
        2.8,
        udp(5080),
        a_request(
            "PRACK",
            3,
            "z9hG4bKpr0",
            &tag,
            &format!("RAck: {} 2 INVITE\r\n", rseq + 1),
            None,
        ),
    );
    assert_eq!(statuses(&sent_to(&r.take(), 5080)), vec![481]);
    r.send(
        2.9,
        udp(5080),
        a_request(
            "PRACK",
            4,
            "z9hG4bKpr1",
            &tag,
            &format!("RAck: {rseq} 2 INVITE\r\n"),
            None,
        ),
    );
    let out = sent_to(&r.take(), 5080);
    assert_eq!(
        statuses(&out),
        vec![200, 200],
        "PRACK answered, then the INVITE"
    );
    assert_eq!(out[0].cseq().unwrap().method, Method::Prack);
    assert_eq!(out[1].cseq().unwrap().method, Method::Invite);
    // No more retransmissions of the 183.
    r.tick(5.0);
    r.tick(9.0);
    assert!(statuses(&sent_to(&r.take(), 5080))
        .iter()
        .all(|s| *s == 200));
    r.send(
        9.1,
        udp(5080),
        a_request("ACK", 2, "z9hG4bKack", &tag, "", None),
    );
    r.hang_up_from_a(12.0, &tag, 5);
    assert_eq!(r.cdrs[0].disposition, Disposition::Answered);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_caller_that_never_pracks_is_rejected_after_64_t1_and_the_callee_released() {
    // Rings longer than 64·T1 (32 s).
    let mut r = Rig::with(
        vec![user("100"), user("101")],
        &PLAN.replace("timeout = 20", "timeout = 60"),
    );
    r.register_101();
    r.call(1.0, "100", 5080, "101", "callA", "Require: 100rel\r\n");
    let b_inv = r.b_invite();
    r.send(1.1, udp(5070), response_to(&b_inv, 183, "", Some(SDP_B)));
    r.take();
    for s in 2..=34 {
        r.tick(f64::from(s));
    }
    let out = r.take();
    let finals: Vec<u16> = statuses(&sent_to(&out, 5080))
        .into_iter()
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!((500..600).contains(&finals[0]), "{finals:?}");
    assert_eq!(requests(&sent_to(&out, 5070), &Method::Cancel).len(), 1);
    let cancel = requests(&sent_to(&out, 5070), &Method::Cancel)[0].clone();
    r.send(34.1, udp(5070), response_to(&cancel, 200, "", None));
    r.send(34.1, udp(5070), response_to(&b_inv, 487, "", None));
    r.tick(100.0);
    r.tick(200.0);
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_reliable_183_from_the_callee_is_pracked_once_in_its_early_dialog() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.take();
    let rel = "Require: 100rel\r\nRSeq: 77\r\n";
    let mut p183 = response_to(&b_inv, 183, rel, Some(SDP_B));
    p183 = p183.replace(
        "Contact: <sip:101@127.0.0.1:5070>",
        "Contact: <sip:101@127.0.0.1:5070;early>",
    );
    r.send(1.1, udp(5070), p183.clone());
    let out = r.take();
    let to_b = sent_to(&out, 5070);
    let prack = requests(&to_b, &Method::Prack);
    assert_eq!(prack.len(), 1);
    let prack = prack[0].clone();
    assert_eq!(
        prack.header(HeaderName::RAck).as_deref(),
        Some("77 1 INVITE")
    );
    assert_eq!(
        prack.request_uri_str(),
        Some("sip:101@127.0.0.1:5070;early"),
        "early dialog's remote target"
    );
    assert_eq!(prack.tag(HeaderName::To).as_deref(), Some("b1"));
    assert_eq!(prack.cseq().unwrap().seq, 2);
    assert_eq!(statuses(&sent_to(&out, 5080)), vec![183]);
    // A retransmission is neither PRACKed again nor relayed again.
    r.send(1.6, udp(5070), p183);
    let out = r.take();
    assert!(
        out.is_empty(),
        "{:?}",
        out.iter().map(|(_, m)| m.status()).collect::<Vec<_>>()
    );
    r.send(1.7, udp(5070), response_to(&prack, 200, "", None));
    r.send(2.0, udp(5070), response_to(&b_inv, 200, "", Some(SDP_B)));
    let out = r.take();
    let ok = sent_to(&out, 5080);
    assert_eq!(statuses(&ok), vec![200]);
    let tag = ok[0].tag(HeaderName::To).unwrap();
    r.send(
        2.1,
        udp(5080),
        a_request("ACK", 2, "z9hG4bKack", &tag, "", None),
    );
    r.hang_up_from_a(5.0, &tag, 3);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_session_expires_below_90_s_is_refused_422_with_min_se() {
    let mut r = Rig::new();
    r.register_101();
    let out = r.call(
        1.0,
        "100",
        5080,
        "101",
        "callA",
        "Session-Expires: 60\r\nSupported: timer\r\n",
    );
    let to_a = sent_to(&out, 5080);
    let refusal = to_a.iter().find(|m| m.status() == Some(422)).expect("422");
    assert_eq!(refusal.header(HeaderName::MinSe).as_deref(), Some("90"));
    assert!(
        !out.iter().any(|(p, _)| p.addr.port() == 5070),
        "nobody was called"
    );
    r.tick(60.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

/// Answers the call that `call()` started (B answers with `b_extra`);
/// returns A's 200 and the INVITE B got.
fn answer(r: &mut Rig, secs: f64, b_extra: &str) -> (Message, Message) {
    let b_inv = r.b_invite();
    r.take();
    r.send(
        secs,
        udp(5070),
        response_to(&b_inv, 200, b_extra, Some(SDP_B)),
    );
    let out = r.take();
    let ok = sent_to(&out, 5080)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("200 to A");
    let tag = ok.tag(HeaderName::To).unwrap();
    r.send(
        secs,
        udp(5080),
        a_request("ACK", 2, "z9hG4bKack", &tag, "", None),
    );
    (ok, b_inv)
}

#[test]
fn as_the_callers_refresher_the_switch_refreshes_at_half_the_interval_and_keeps_the_call() {
    let mut r = Rig::new();
    r.register_101();
    // No `Supported: timer`: the caller cannot refresh, so we must.
    r.call(1.0, "100", 5080, "101", "callA", "Session-Expires: 90\r\n");
    let (ok, b_inv) = answer(&mut r, 2.0, "");
    assert_eq!(
        ok.header(HeaderName::SessionExpires).as_deref(),
        Some("90;refresher=uas")
    );
    assert!(
        ok.header(HeaderName::Require).is_none(),
        "no Require: timer for a caller without timers"
    );
    assert_eq!(
        b_inv.header(HeaderName::SessionExpires).as_deref(),
        Some("90"),
        "the callee is asked for the same interval"
    );
    let tag = ok.tag(HeaderName::To).unwrap();
    r.tick(46.9);
    assert!(
        requests(&sent_to(&r.take(), 5080), &Method::Invite).is_empty(),
        "not before 45 s"
    );
    r.tick(47.0);
    let out = r.take();
    let reinv = requests(&sent_to(&out, 5080), &Method::Invite)
        .first()
        .map(|m| (*m).clone())
        .expect("refresh re-INVITE to A at 2 + 45 s (A does not allow UPDATE)");
    assert_eq!(
        reinv.header(HeaderName::SessionExpires).as_deref(),
        Some("90;refresher=uac")
    );
    assert_eq!(
        String::from_utf8_lossy(reinv.body()),
        String::from_utf8_lossy(ok.body()),
        "the same SDP (no renegotiation)"
    );
    r.send(
        47.1,
        udp(5080),
        response_to(
            &reinv,
            200,
            "Session-Expires: 90;refresher=uac\r\n",
            Some(SDP_PCMU),
        ),
    );
    let acks = requests(&sent_to(&r.take(), 5080), &Method::Ack).len();
    assert_eq!(acks, 1, "the refresh's 200 is ACKed");
    // Refreshed again at 47.1 + 45, and never torn down.
    r.tick(80.0);
    assert!(r.cdrs.is_empty());
    r.tick(92.1);
    let out = r.take();
    let reinv2 = requests(&sent_to(&out, 5080), &Method::Invite)
        .first()
        .map(|m| (*m).clone())
        .expect("second refresh");
    r.send(
        92.1,
        udp(5080),
        response_to(&reinv2, 200, "", Some(SDP_PCMU)),
    );
    r.take();
    assert!(r.cdrs.is_empty(), "call alive");
    r.hang_up_from_a(100.0, &tag, 3);
    assert_eq!(r.cdrs[0].hangup_cause, 16);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn when_the_caller_stops_refreshing_both_legs_get_a_bye_and_the_cdr_says_timer_expiry() {
    let mut r = Rig::new();
    r.register_101();
    r.call(
        1.0,
        "100",
        5080,
        "101",
        "callA",
        "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
    );
    let (ok, _) = answer(&mut r, 2.0, "");
    assert_eq!(
        ok.header(HeaderName::SessionExpires).as_deref(),
        Some("90;refresher=uac")
    );
    assert_eq!(ok.header(HeaderName::Require).as_deref(), Some("timer"));
    let tag = ok.tag(HeaderName::To).unwrap();
    // One refresh at 45 s keeps the call up past the first expiry.
    r.send(
        47.0,
        udp(5080),
        a_request(
            "UPDATE",
            3,
            "z9hG4bKupd",
            &tag,
            "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
            None,
        ),
    );
    let up = sent_to(&r.take(), 5080);
    assert_eq!(statuses(&up), vec![200]);
    assert_eq!(
        up[0].header(HeaderName::SessionExpires).as_deref(),
        Some("90;refresher=uac")
    );
    assert!(up[0].body().is_empty(), "no SDP for an UPDATE without one");
    r.tick(100.0);
    assert!(r.cdrs.is_empty(), "refreshed at 47 s: alive at 100 s");
    // No more refreshes: gone 90 − 30 s after the last one.
    r.tick(106.0);
    assert!(r.cdrs.is_empty());
    r.tick(107.0);
    let out = r.take();
    assert_eq!(
        requests(&sent_to(&out, 5080), &Method::Bye).len(),
        1,
        "BYE to the caller"
    );
    let to_b = sent_to(&out, 5070);
    let bye_b = requests(&to_b, &Method::Bye);
    assert_eq!(bye_b.len(), 1, "BYE to the callee");
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].disposition, Disposition::Answered);
    assert_eq!(r.cdrs[0].hangup_cause, 102, "recovery on timer expiry");
    let bye_b = bye_b[0].clone();
    r.send(107.1, udp(5070), response_to(&bye_b, 200, "", None));
    r.tick(200.0);
    r.tick(300.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_callee_that_makes_us_refresher_gets_updates_and_a_481_ends_the_call() {
    let mut r = Rig::new();
    r.register_101();
    r.call(1.0, "100", 5080, "101", "callA", "");
    let (ok, _) = answer(
        &mut r,
        2.0,
        "Session-Expires: 120;refresher=uac\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n",
    );
    assert!(
        ok.header(HeaderName::SessionExpires).is_none(),
        "A asked for no timer"
    );
    r.tick(62.0);
    let out = r.take();
    let to_b = sent_to(&out, 5070);
    let update = requests(&to_b, &Method::Update);
    assert_eq!(update.len(), 1, "UPDATE to B at half of 120 s");
    let update = update[0].clone();
    assert_eq!(
        update.header(HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uac")
    );
    assert!(update.body().is_empty());
    r.send(
        62.1,
        udp(5070),
        response_to(&update, 200, "Session-Expires: 120;refresher=uac\r\n", None),
    );
    r.tick(122.1);
    let update2 = requests(&sent_to(&r.take(), 5070), &Method::Update)
        .first()
        .map(|m| (*m).clone())
        .expect("second UPDATE at 62.1 + 60 s");
    r.send(122.1, udp(5070), response_to(&update2, 481, "", None));
    let out = r.take();
    assert_eq!(
        requests(&sent_to(&out, 5080), &Method::Bye).len(),
        1,
        "the caller is hung up"
    );
    assert_eq!(r.cdrs[0].hangup_cause, 102);
    let bye_a = requests(&sent_to(&out, 5080), &Method::Bye)[0].clone();
    r.send(122.2, udp(5080), response_to(&bye_a, 200, "", None));
    for m in requests(&sent_to(&out, 5070), &Method::Bye) {
        r.send(122.2, udp(5070), response_to(m, 200, "", None));
    }
    r.tick(200.0);
    r.tick(300.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_caller_at_max_calls_gets_486_busy_here_and_a_busy_cdr() {
    let mut u100 = user("100");
    u100.max_calls = Some(1);
    let mut r = Rig::with(vec![u100, user("101")], PLAN);
    r.register_101();
    r.call(1.0, "100", 5080, "101", "first", "");
    let b_inv = r.b_invite();
    r.send(1.1, udp(5070), response_to(&b_inv, 180, "", None));
    r.take();
    let out = r.call(2.0, "100", 5080, "101", "second", "");
    let refused = sent_to(&out, 5080);
    let busy = refused
        .iter()
        .find(|m| m.status() == Some(486))
        .expect("486 for the second call");
    let reason = busy
        .headers()
        .find(|(_, raw, _)| raw.eq_ignore_ascii_case("Reason"))
        .map(|(_, _, v)| v.into_owned());
    assert!(reason.is_some_and(|v| v.contains("cause=17")));
    assert!(
        !out.iter().any(|(p, _)| p.addr.port() == 5070),
        "the second call rang nobody"
    );
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].disposition, Disposition::Busy);
    assert_eq!(r.cdrs[0].hangup_cause, 17);
    assert_eq!(r.cdrs[0].userfield.as_deref(), Some("limit:max_calls"));
    assert_eq!(r.sw.call_counts().0, 1, "the first call goes on");
    // Once the first call is over, 100 may call again.
    r.send(3.0, udp(5070), response_to(&b_inv, 486, "", None));
    r.take();
    r.call(4.0, "100", 5080, "101", "third", "");
    assert!(r
        .wire
        .iter()
        .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Invite)));
}

#[test]
fn a_caller_over_max_cps_gets_503_with_retry_after_until_the_second_is_over() {
    let mut u100 = user("100");
    u100.max_cps = Some(1);
    let mut r = Rig::with(vec![u100, user("101")], PLAN);
    r.register_101();
    let first = r.call(1.0, "100", 5080, "101", "c1", "");
    assert!(!sent_to(&first, 5080)
        .iter()
        .any(|m| m.status() == Some(503)));
    let second = r.call(1.5, "100", 5080, "101", "c2", "");
    let refused = sent_to(&second, 5080);
    let m = refused
        .iter()
        .find(|m| m.status() == Some(503))
        .expect("503");
    assert_eq!(m.header(HeaderName::RetryAfter).as_deref(), Some("1"));
    assert_eq!(
        r.cdrs.last().unwrap().userfield.as_deref(),
        Some("limit:max_cps")
    );
    assert_eq!(r.cdrs.last().unwrap().disposition, Disposition::Failed);
    let third = r.call(2.0, "100", 5080, "101", "c3", "");
    assert!(!sent_to(&third, 5080)
        .iter()
        .any(|m| m.status() == Some(503)));
}

const LIMIT_PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 20 },
  { app = "GotoIf", condition = "${DIALSTATUS} = BUSY", then = "busy" },
  { app = "Hangup", cause = 21 },
  { app = "Hangup", cause = 34, label = "busy" },
]
"#;

#[test]
fn a_dial_to_a_callee_at_max_calls_does_not_ring_it_and_gives_dialstatus_busy() {
    let mut u101 = user("101");
    u101.max_calls = Some(1);
    let mut r = Rig::with(vec![user("100"), u101, user("102")], LIMIT_PLAN);
    r.register_101();
    r.call(1.0, "100", 5080, "101", "first", "");
    let invites = requests(&sent_to(&r.take(), 5070), &Method::Invite).len();
    assert_eq!(invites, 1, "the first call rings 101");
    assert_eq!(r.sw.call_counts().0, 1);
    let out = r.call(2.0, "102", 5090, "101", "second", "");
    assert!(
        !out.iter()
            .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Invite)),
        "101 is at its limit: not rung"
    );
    // DIALSTATUS=BUSY took the `busy` branch: cause 34 → 503.
    assert!(
        statuses(&sent_to(&out, 5090)).contains(&503),
        "{:?}",
        statuses(&sent_to(&out, 5090))
    );
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].disposition, Disposition::Busy);
    assert_eq!(r.cdrs[0].src, "102");
}

#[test]
fn a_callee_answering_422_gets_the_invite_again_once_with_its_min_se() {
    let mut r = Rig::new();
    r.register_101();
    r.call(1.0, "100", 5080, "101", "callA", "Session-Expires: 90\r\n");
    let first = r.b_invite();
    assert_eq!(
        first.header(HeaderName::SessionExpires).as_deref(),
        Some("90")
    );
    r.take();
    r.send(
        1.5,
        udp(5070),
        response_to(&first, 422, "Min-SE: 1800\r\n", None),
    );
    let out = sent_to(&r.take(), 5070);
    assert_eq!(
        requests(&out, &Method::Ack).len(),
        1,
        "the 422 is ACKed by its transaction"
    );
    let again = requests(&out, &Method::Invite)
        .first()
        .map(|m| (*m).clone())
        .expect("the INVITE is sent again");
    assert_eq!(
        again.header(HeaderName::SessionExpires).as_deref(),
        Some("1800")
    );
    assert_eq!(again.header(HeaderName::MinSe).as_deref(), Some("1800"));
    assert_eq!(again.call_id(), first.call_id(), "same dialog identifiers");
    assert_eq!(again.tag(HeaderName::From), first.tag(HeaderName::From));
    assert_eq!(
        again.cseq().map(|c| c.seq),
        first.cseq().map(|c| c.seq + 1),
        "next CSeq"
    );
    assert_ne!(
        again.header(HeaderName::Via),
        first.header(HeaderName::Via),
        "new transaction (branch)"
    );
    assert!(
        sent_to(&r.wire, 5080)
            .iter()
            .all(|m| m.status() != Some(422)),
        "the caller never sees the 422"
    );
    // A second 422 is not retried: the caller gets the failure.
    r.send(
        1.6,
        udp(5070),
        response_to(&again, 422, "Min-SE: 3600\r\n", None),
    );
    let out = r.take();
    assert!(requests(&sent_to(&out, 5070), &Method::Invite).is_empty());
    assert!(
        sent_to(&out, 5080)
            .iter()
            .any(|m| m.status().is_some_and(|s| s >= 400)),
        "the caller gets a failure after the second 422"
    );
}

#[test]
fn provisionals_without_sdp_reach_the_caller_as_what_they_are_once_per_change() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.take();
    // A 183 without SDP (progress, no early media) stays a 183, with no body.
    r.send(1.1, udp(5070), response_to(&b_inv, 183, "", None));
    let to_a = sent_to(&r.take(), 5080);
    assert_eq!(statuses(&to_a), vec![183]);
    assert!(to_a[0].body().is_empty(), "no SDP was offered to relay");
    assert!(
        r.media
            .iter()
            .all(|c| !matches!(c, MediaCommand::Bridge { .. })),
        "nothing to bridge yet"
    );
    // Then ringing: a 180, once however often the callee repeats it.
    r.send(1.2, udp(5070), response_to(&b_inv, 180, "", None));
    r.send(1.3, udp(5070), response_to(&b_inv, 180, "", None));
    assert_eq!(statuses(&sent_to(&r.take(), 5080)), vec![180]);
    // A 182 (queued) is relayed as 182.
    r.send(1.4, udp(5070), response_to(&b_inv, 182, "", None));
    assert_eq!(statuses(&sent_to(&r.take(), 5080)), vec![182]);
    // Early media afterwards still gets its 183 with the relay's SDP.
    r.send(1.5, udp(5070), response_to(&b_inv, 183, "", Some(SDP_B)));
    let to_a = sent_to(&r.take(), 5080);
    assert_eq!(statuses(&to_a), vec![183]);
    assert!(String::from_utf8_lossy(to_a[0].body()).contains("m=audio "));
}

/// 101 is a number out through a carrier with two contacts (no qualify).
const PLAN_TRUNK: &str = r#"
[context.internal]
allow_trunks = ["carrier"]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["trunk/carrier/+15551234567"], timeout = 20 }, { app = "Hangup" } ]
"#;
const TRUNKS: &str = r#"
[trunk.carrier]
kind = "carrier"
contacts = ["sip:127.0.0.1:6001", "sip:127.0.0.1:6002"]
"#;

/// The INVITEs in `out` sent to `port`.
fn invites_to(out: &[(Peer, Message)], port: u16) -> Vec<Message> {
    requests(&sent_to(out, port), &Method::Invite)
        .into_iter()
        .cloned()
        .collect()
}

/// The statuses the switch sent the caller (100, on port 5080) in `out`.
fn caller_statuses(out: &[(Peer, Message)]) -> Vec<u16> {
    statuses(&sent_to(out, 5080))
}

/// 100 dials 101, which goes out through the carrier: the rig, and the
/// INVITE the first contact got (the only one sent).
fn trunk_call() -> (Rig, Message) {
    let mut r = Rig::with_trunks(vec![user("100")], PLAN_TRUNK, Some(TRUNKS));
    r.tick(0.5); // starts the trunks
    r.invite_from_100(1.0);
    let out = r.take();
    assert!(invites_to(&out, 6002).is_empty(), "one contact at a time");
    let mut first = invites_to(&out, 6001);
    assert_eq!(first.len(), 1, "the first contact gets the INVITE");
    (r, first.remove(0))
}

#[test]
fn a_carrier_contact_answering_503_before_ringing_passes_the_call_to_the_next_contact() {
    let (mut r, first) = trunk_call();
    r.send(1.1, udp(6001), response_from_b(&first, 100, false));
    r.send(1.2, udp(6001), response_from_b(&first, 503, false));
    let out = r.take();
    assert!(
        !caller_statuses(&out).contains(&503),
        "the caller must not see the 503"
    );
    let second = invites_to(&out, 6002);
    assert_eq!(second.len(), 1, "the next contact gets the call");
    assert_eq!(
        second[0].request_uri().unwrap().to_string(),
        "sip:+15551234567@127.0.0.1:6002"
    );
    assert_ne!(
        second[0].header(HeaderName::CallId),
        first.header(HeaderName::CallId),
        "a new outbound leg"
    );
    r.send(1.5, udp(6002), response_from_b(&second[0], 200, true));
    assert!(
        caller_statuses(&r.take()).contains(&200),
        "answered through the second contact"
    );
    assert_eq!(r.sw.call_counts().0, 1);
}

#[test]
fn a_carrier_failure_after_ringing_is_the_callees_and_is_not_retried() {
    let (mut r, first) = trunk_call();
    r.send(1.1, udp(6001), response_from_b(&first, 180, false));
    r.send(1.2, udp(6001), response_from_b(&first, 503, false));
    let out = r.take();
    assert!(invites_to(&out, 6002).is_empty(), "no second attempt");
    let to_caller = caller_statuses(&out);
    assert!(
        to_caller.iter().any(|&s| s >= 500),
        "the caller gets the failure: {to_caller:?}"
    );
}

#[test]
fn when_every_contact_fails_the_caller_gets_the_failure() {
    let (mut r, first) = trunk_call();
    r.send(1.1, udp(6001), response_from_b(&first, 500, false));
    let second = invites_to(&r.take(), 6002);
    assert_eq!(second.len(), 1);
    r.send(1.2, udp(6002), response_from_b(&second[0], 503, false));
    let out = r.take();
    assert!(invites_to(&out, 6001).is_empty() && invites_to(&out, 6002).is_empty());
    let to_caller = caller_statuses(&out);
    assert!(to_caller.iter().any(|&s| s >= 500), "{to_caller:?}");
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_silent_callee_makes_the_switch_send_100_trying_once_after_100_ms() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let out = r.take();
    assert_eq!(invites_to(&out, 5070).len(), 1, "101 is rung");
    assert_eq!(caller_statuses(&out), Vec::<u16>::new(), "no 100 at once");
    r.tick(1.09);
    assert_eq!(caller_statuses(&r.take()), Vec::<u16>::new());
    r.tick(1.1);
    assert_eq!(caller_statuses(&r.take()), [100]);
    r.tick(1.6);
    assert_eq!(caller_statuses(&r.take()), Vec::<u16>::new(), "only once");
}

#[test]
fn a_callee_ringing_within_100_ms_makes_100_trying_unnecessary() {
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = invites_to(&r.take(), 5070).remove(0);
    r.send(1.02, udp(5070), response_from_b(&b_inv, 180, false));
    r.tick(1.2);
    r.tick(2.0);
    assert_eq!(caller_statuses(&r.take()), [180], "the 180 alone");
}

// ---------------------------------------------------------------------------
// What the switch advertises, requests it does not act on, DTMF by INFO,
// per-user `nat`, Path.
// ---------------------------------------------------------------------------

/// An in-dialog INFO from A with a body of type `ct`.
fn a_info(cseq: u32, tag: &str, ct: &str, body: &str) -> String {
    format!("INFO sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinfo{cseq};rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: {cseq} INFO\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// The one response A got to what was just sent.
fn answer_to_a(r: &mut Rig) -> Message {
    let mut got = sent_to(&r.take(), 5080);
    assert_eq!(got.len(), 1, "one response to A: {got:?}");
    got.remove(0)
}

/// A call from 100 to 101, answered; returns the switch's tag towards A.
fn answered_call(r: &mut Rig) -> String {
    r.register_101();
    r.call(1.0, "100", 5080, "101", "callA", "");
    let (ok, _) = answer(r, 1.5, "");
    r.take();
    ok.tag(HeaderName::To).unwrap()
}

fn allow_of(m: &Message) -> String {
    m.header(HeaderName::Allow).unwrap_or_default().to_string()
}

#[test]
fn info_with_a_dtmf_digit_is_answered_200_and_becomes_a_digit_like_rfc_4733() {
    let mut r = Rig::new();
    let tag = answered_call(&mut r);
    assert_eq!(r.sw.stats().dtmf_digits, 0);
    r.send(
        2.0,
        udp(5080),
        a_info(
            10,
            &tag,
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        ),
    );
    assert_eq!(answer_to_a(&mut r).status(), Some(200));
    assert_eq!(r.sw.stats().dtmf_digits, 1);
    r.send(2.1, udp(5080), a_info(11, &tag, "application/dtmf", "#"));
    assert_eq!(answer_to_a(&mut r).status(), Some(200));
    assert_eq!(r.sw.stats().dtmf_digits, 2);
    // A digit from the media plane goes the same way.
    let session = r
        .media
        .iter()
        .find_map(|m| match m {
            MediaCommand::OpenLeg { session, .. } => Some(*session),
            _ => None,
        })
        .expect("a media session");
    let (now, ms) = r.at(2.2);
    r.sw.handle_media_event(
        now,
        ms,
        carillon_mediactl::MediaEvent::Dtmf {
            session,
            leg: carillon_mediactl::LegId(0),
            digit: '7',
            duration: Duration::from_millis(100),
            source: carillon_mediactl::DtmfSource::Rfc4733,
        },
    );
    assert_eq!(r.sw.stats().dtmf_digits, 3);
    // A retransmitted INFO gets the stored 200 and is no second digit.
    r.send(2.3, udp(5080), a_info(11, &tag, "application/dtmf", "#"));
    assert_eq!(answer_to_a(&mut r).status(), Some(200));
    assert_eq!(r.sw.stats().dtmf_digits, 3);
}

#[test]
fn info_with_another_body_gets_415_with_accept_and_a_malformed_digit_400() {
    let mut r = Rig::new();
    let tag = answered_call(&mut r);
    r.send(2.0, udp(5080), a_info(10, &tag, "text/plain", "hello"));
    let m = answer_to_a(&mut r);
    assert_eq!(m.status(), Some(415));
    assert_eq!(
        m.header(HeaderName::Accept).as_deref(),
        Some("application/dtmf-relay, application/dtmf")
    );
    r.send(
        2.1,
        udp(5080),
        a_info(
            11,
            &tag,
            "application/dtmf-relay",
            "Signal=X\r\nDuration=160\r\n",
        ),
    );
    assert_eq!(answer_to_a(&mut r).status(), Some(400));
    r.send(2.2, udp(5080), a_info(12, &tag, "application/dtmf", "12"));
    assert_eq!(answer_to_a(&mut r).status(), Some(400));
    assert_eq!(r.sw.stats().dtmf_digits, 0, "nothing was a digit");
    // The call is untouched.
    assert_eq!(r.sw.call_counts().0, 1);
}

#[test]
fn refer_from_the_caller_and_message_in_a_dialog_are_refused_never_200() {
    let mut r = Rig::new();
    let tag = answered_call(&mut r);
    let refer = a_request(
        "REFER",
        10,
        "z9hG4bKrefer",
        &tag,
        "Refer-To: <sip:102@127.0.0.1>\r\n",
        None,
    );
    r.send(2.0, udp(5080), refer);
    let m = answer_to_a(&mut r);
    // Only the bridged callee can transfer (calls/transfer.rs).
    assert_eq!(m.status(), Some(501));
    assert_eq!(m.reason(), Some("Transfer By The Caller Not Implemented"));
    assert_eq!(allow_of(&m), carillon_sip::validate::ALLOW);
    r.send(
        2.1,
        udp(5080),
        a_request("MESSAGE", 11, "z9hG4bKmsg", &tag, "", None),
    );
    let m = answer_to_a(&mut r);
    assert_eq!(m.status(), Some(405));
    assert_eq!(allow_of(&m), carillon_sip::validate::ALLOW);
    // OPTIONS in the dialog lists the same capabilities.
    r.send(
        2.2,
        udp(5080),
        a_request("OPTIONS", 12, "z9hG4bKopt", &tag, "", None),
    );
    let m = answer_to_a(&mut r);
    assert_eq!(m.status(), Some(200));
    assert_eq!(allow_of(&m), carillon_sip::validate::ALLOW);
    assert_eq!(r.sw.call_counts().0, 1, "the call goes on");
}

#[test]
fn out_of_dialog_requests_get_answers_consistent_with_allow_and_supported() {
    let mut r = Rig::new();
    let req = |method: &str, n: u32, extra: &str| {
        format!("{method} sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKood{n};rport\r\nFrom: <sip:100@127.0.0.1>;tag=o{n}\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: ood{n}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n")
    };
    let mut answer = |method: &str, n: u32, extra: &str| {
        r.send(0.5, udp(5090), req(method, n, extra));
        let mut got = sent_to(&r.take(), 5090);
        assert_eq!(got.len(), 1, "{method}: {got:?}");
        got.remove(0)
    };
    let ok = answer("OPTIONS", 1, "");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        allow_of(&ok),
        "INVITE, ACK, BYE, CANCEL, REGISTER, OPTIONS, INFO, UPDATE, PRACK, REFER"
    );
    assert_eq!(
        ok.header(HeaderName::Supported).as_deref(),
        Some("100rel, timer, path")
    );
    for (method, status) in [
        ("MESSAGE", 405),
        ("SUBSCRIBE", 405),
        ("NOTIFY", 405),
        ("REFER", 403),
        ("BYE", 481),
        ("INFO", 481),
    ] {
        let n = 10 + u32::from(status) + method.len() as u32;
        let m = answer(method, n, "");
        assert_eq!(m.status(), Some(status), "{method}");
        if status != 481 {
            assert_eq!(allow_of(&m), carillon_sip::validate::ALLOW, "{method}");
        }
    }
    for (n, tag) in [(100, "replaces"), (101, "outbound")] {
        let m = answer("OPTIONS", n, &format!("Require: {tag}\r\n"));
        assert_eq!(m.status(), Some(420), "{tag}");
        assert_eq!(m.header(HeaderName::Unsupported).as_deref(), Some(tag));
    }
}

impl Rig {
    /// 101 registers from 127.0.0.1:5070 with a Contact naming
    /// `contact_port` and an optional Path.
    fn register_101_contact(&mut self, contact_port: u16, path: Option<&str>) {
        let path_line = path.map(|p| format!("Path: {p}\r\n")).unwrap_or_default();
        let ok = self.register(
            "101",
            udp(5070),
            &format!("sip:101@127.0.0.1:{contact_port}"),
            &format!("{path_line}Supported: path\r\n"),
        );
        // The UA said `Supported: path`: the stored Path comes back.
        if let Some(p) = path {
            assert_eq!(ok.header(HeaderName::Path).as_deref(), Some(p));
        }
    }
}

#[test]
fn the_path_goes_back_in_the_200_only_to_a_ua_that_supports_path() {
    let mut r = Rig::new();
    let ok = r.register(
        "101",
        udp(5070),
        "sip:101@127.0.0.1:5070",
        "Path: <sip:127.0.0.1:5091;lr>\r\n",
    );
    assert!(ok.header(HeaderName::Path).is_none(), "no Supported: path");
    // It is still stored and used.
    let out = r.call(1.0, "100", 5080, "101", "callA", "");
    let (_, inv) = invite_to_101(&out);
    assert_eq!(
        inv.header(HeaderName::Route).as_deref(),
        Some("<sip:127.0.0.1:5091;lr>")
    );
}

/// Where the INVITE to 101 went, and the INVITE.
fn invite_to_101(out: &[(Peer, Message)]) -> (u16, Message) {
    let invites: Vec<_> = out
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Invite))
        .collect();
    assert_eq!(invites.len(), 1, "one INVITE to 101: {out:?}");
    (invites[0].0.addr.port(), invites[0].1.clone())
}

fn user_with_nat(e: &str, nat: carillon_b2bua::NatMode) -> User {
    User { nat, ..user(e) }
}

#[test]
fn with_nat_true_the_invite_goes_to_the_registering_socket_and_with_false_to_the_contact() {
    use carillon_b2bua::NatMode;
    for (nat, want) in [
        (NatMode::SourceAddress, 5070),
        (NatMode::AsRegistered, 5071),
    ] {
        let mut r = Rig::with(vec![user("100"), user_with_nat("101", nat)], PLAN);
        r.register_101_contact(5071, None);
        let out = r.call(1.0, "100", 5080, "101", "callA", "");
        let (port, inv) = invite_to_101(&out);
        assert_eq!(port, want, "{nat:?}");
        assert_eq!(inv.request_uri_str(), Some("sip:101@127.0.0.1:5071"));
        assert!(inv.header(HeaderName::Route).is_none());
    }
}

#[test]
fn a_registered_path_is_the_route_set_of_the_invite_its_cancel_and_its_ack() {
    use carillon_b2bua::NatMode;
    let path = "<sip:127.0.0.1:5091;lr>";
    for (nat, want) in [
        (NatMode::SourceAddress, 5070),
        (NatMode::AsRegistered, 5091),
    ] {
        let mut r = Rig::with(vec![user("100"), user_with_nat("101", nat)], PLAN);
        r.register_101_contact(5071, Some(path));
        let out = r.call(1.0, "100", 5080, "101", "callA", "");
        let (port, inv) = invite_to_101(&out);
        assert_eq!(port, want, "{nat:?}");
        assert_eq!(inv.header(HeaderName::Route).as_deref(), Some(path));
        r.take();
        // A failure is ACKed with the same Route (hop by hop).
        r.send(1.1, udp(port), response_to(&inv, 486, "", None));
        let out = r.take();
        let ack = out
            .iter()
            .find(|(_, m)| m.method() == Some(&Method::Ack))
            .expect("ACK for the 486");
        assert_eq!(ack.0.addr.port(), want);
        assert_eq!(ack.1.header(HeaderName::Route).as_deref(), Some(path));
    }
    // A CANCEL repeats the INVITE's Route.
    let mut r = Rig::new();
    r.register_101_contact(5070, Some(path));
    let out = r.call(1.0, "100", 5080, "101", "callA", "");
    let (_, inv) = invite_to_101(&out);
    r.send(1.1, udp(5070), response_from_b(&inv, 180, false));
    r.take();
    r.send(
        1.2,
        udp(5080),
        "CANCEL sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKcallA2;rport\r\nFrom: <sip:100@127.0.0.1>;tag=tcallA\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: callA\r\nCSeq: 2 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".into(),
    );
    let out = r.take();
    let cancel = out
        .iter()
        .find(|(_, m)| m.method() == Some(&Method::Cancel))
        .expect("CANCEL to 101");
    assert_eq!(cancel.1.header(HeaderName::Route).as_deref(), Some(path));
}

/// The names of the switch events of `r`, in order.
fn event_names(r: &Rig) -> Vec<&'static str> {
    r.events.iter().map(|e| e.event.name()).collect()
}

impl Rig {
    /// 100 calls the registered 101, which rings (180 at 1.1 s) and
    /// answers (2 s); 100 ACKs and hangs up at 12 s.
    fn ringing_answered_then_hung_up_by_100(&mut self) {
        self.register_101();
        self.invite_from_100(1.0);
        let b_inv = self.b_invite();
        self.take();
        self.send(1.1, udp(5070), response_from_b(&b_inv, 180, false));
        self.send(2.0, udp(5070), response_from_b(&b_inv, 200, true));
        let out = self.take();
        let ok = out
            .iter()
            .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
            .expect("200 to A");
        let tag = ok.1.tag(HeaderName::To).unwrap();
        self.send(
            2.1,
            udp(5080),
            in_dialog_from_a("ACK", 2, "z9hG4bKack2").replace("TAG", &tag),
        );
        self.send(
            12.0,
            udp(5080),
            in_dialog_from_a("BYE", 3, "z9hG4bKbye").replace("TAG", &tag),
        );
    }
}

#[test]
fn with_events_off_a_whole_call_builds_no_event() {
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        events: false,
        ..CallConfig::default()
    };
    let mut r =
        Rig::on(Switch::new(switch_config(vec![user("100"), user("101")], 3, calls)).unwrap());
    r.ringing_answered_then_hung_up_by_100();
    assert_eq!(r.cdrs.len(), 1, "the call took place");
    assert!(event_names(&r).is_empty(), "{:?}", event_names(&r));
}

#[test]
fn a_basic_call_emits_created_ringing_up_bridged_unbridged_and_hangups_in_order() {
    use carillon_events::{ChannelState, Direction, SwitchEvent};
    let mut r = Rig::new();
    r.ringing_answered_then_hung_up_by_100();
    assert_eq!(
        event_names(&r),
        [
            "channel_created",
            "app_started",
            "channel_created",
            "channel_state",
            "channel_state",
            "channel_state",
            "bridged",
            "unbridged",
            "hangup",
            "app_finished",
            "hangup",
        ]
    );
    let cdr = &r.cdrs[0];
    let ev: Vec<&SwitchEvent> = r.events.iter().map(|e| &e.event).collect();
    let SwitchEvent::ChannelCreated {
        channel: a_chan,
        uniqueid: a_uid,
        linkedid,
        direction: Direction::Inbound,
        caller,
        exten,
        context,
    } = ev[0]
    else {
        panic!("inbound channel first: {:?}", ev[0]);
    };
    assert_eq!(
        (a_chan, a_uid, linkedid),
        (&cdr.channel, &cdr.uniqueid, &cdr.linkedid)
    );
    assert_eq!(
        (caller.as_str(), exten.as_str(), context.as_str()),
        ("100", "101", "internal")
    );
    assert!(
        matches!(ev[1], SwitchEvent::AppStarted { app, channel, .. } if app == "Dial" && channel == a_chan)
    );
    let SwitchEvent::ChannelCreated {
        channel: b_chan,
        linkedid: b_linked,
        direction: Direction::Outbound,
        ..
    } = ev[2]
    else {
        panic!("outbound channel: {:?}", ev[2]);
    };
    assert_eq!((b_chan, b_linked), (&cdr.dstchannel, linkedid));
    assert!(
        matches!(ev[3], SwitchEvent::ChannelState { channel, state: ChannelState::Ringing, .. } if channel == b_chan)
    );
    assert!(
        matches!(ev[4], SwitchEvent::ChannelState { channel, state: ChannelState::Up, .. } if channel == b_chan)
    );
    assert!(
        matches!(ev[5], SwitchEvent::ChannelState { channel, state: ChannelState::Up, .. } if channel == a_chan)
    );
    let both = [a_chan.clone(), b_chan.clone()];
    assert_eq!(
        ev[6],
        &SwitchEvent::Bridged {
            linkedid: linkedid.clone(),
            channels: both.clone()
        }
    );
    assert_eq!(
        ev[7],
        &SwitchEvent::Unbridged {
            linkedid: linkedid.clone(),
            channels: both
        }
    );
    // A hung up: the callee's leg goes first, then the caller's; both
    // normal clearing.
    assert!(
        matches!(ev[8], SwitchEvent::Hangup { channel, cause: 16, cause_text, .. } if channel == b_chan && cause_text == "Normal Clearing")
    );
    // The Dial returns (bridged: ANSWER) before the caller's leg goes.
    assert!(
        matches!(ev[9], SwitchEvent::AppFinished { app, result, .. } if app == "Dial" && result == "ANSWER")
    );
    assert!(
        matches!(ev[10], SwitchEvent::Hangup { channel, uniqueid, cause: 16, .. } if channel == a_chan && uniqueid == a_uid)
    );
    // Stamped with the switch's wall clock: the INVITE at 1 s, the
    // ringing at 1.1 s, the BYE at 12 s.
    assert_eq!(r.events[0].time_ms, common::T0_MS + 1000);
    assert_eq!(r.events[3].time_ms, common::T0_MS + 1100);
    assert_eq!(r.events[10].time_ms, common::T0_MS + 12_000);
}

#[test]
fn a_busy_callee_hangs_up_with_cause_17_and_the_dial_finishes_busy() {
    use carillon_events::SwitchEvent;
    let mut r = Rig::new();
    r.register_101();
    r.invite_from_100(1.0);
    let b_inv = r.b_invite();
    r.send(1.5, udp(5070), response_from_b(&b_inv, 486, false));
    let ev: Vec<&SwitchEvent> = r.events.iter().map(|e| &e.event).collect();
    assert_eq!(
        event_names(&r),
        [
            "channel_created",
            "app_started",
            "channel_created",
            "hangup",
            "app_finished",
            "app_started",
            "hangup",
        ]
    );
    assert!(
        matches!(ev[3], SwitchEvent::Hangup { cause: 17, .. }),
        "{:?}",
        ev[3]
    );
    assert!(
        matches!(ev[4], SwitchEvent::AppFinished { app, result, .. } if app == "Dial" && result == "BUSY")
    );
    assert!(matches!(ev[5], SwitchEvent::AppStarted { app, .. } if app == "Hangup"));
    assert!(
        matches!(ev[6], SwitchEvent::Hangup { cause: 17, .. }),
        "{:?}",
        ev[6]
    );
}

#[test]
fn dtmf_digits_by_info_and_rtp_are_one_event_kind_with_their_source() {
    use carillon_events::{DtmfSource, SwitchEvent};
    let mut r = Rig::new();
    let tag = answered_call(&mut r);
    r.send(
        2.0,
        udp(5080),
        a_info(
            10,
            &tag,
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        ),
    );
    let (session, leg) = r
        .media
        .iter()
        .find_map(|m| match m {
            MediaCommand::OpenLeg { session, leg, .. } => Some((*session, *leg)),
            _ => None,
        })
        .expect("a media session");
    let (now, ms) = r.at(2.2);
    r.sw.handle_media_event(
        now,
        ms,
        carillon_mediactl::MediaEvent::Dtmf {
            session,
            leg,
            digit: '7',
            duration: Duration::from_millis(100),
            source: carillon_mediactl::DtmfSource::Rfc4733,
        },
    );
    r.drain();
    let digits: Vec<(char, u64, DtmfSource, u64)> = r
        .events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Dtmf {
                digit,
                duration_ms,
                source,
                ..
            } => Some((*digit, *duration_ms, *source, e.time_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(
        digits,
        [
            ('5', 160, DtmfSource::SipInfo, common::T0_MS + 2000),
            ('7', 100, DtmfSource::Rfc4733, common::T0_MS + 2200)
        ]
    );
}

#[test]
fn dialplan_applications_are_started_and_finished_events_of_the_callers_channel() {
    use carillon_events::SwitchEvent;
    let plan = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Answer" }, { app = "Wait", seconds = 3 }, { app = "Hangup" } ]
"#;
    let mut r = Rig::with(vec![user("100"), user("101")], plan);
    r.invite_from_100(1.0);
    r.tick(2.0);
    r.tick(4.5);
    let apps: Vec<(String, String, u64)> = r
        .events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::AppStarted { app, step, .. } => {
                Some((format!("start {app}"), step.to_string(), e.time_ms))
            }
            SwitchEvent::AppFinished { app, result, .. } => {
                Some((format!("end {app}"), result.clone(), e.time_ms))
            }
            _ => None,
        })
        .collect();
    let t = |s: f64| common::T0_MS + (s * 1000.0) as u64;
    assert_eq!(
        apps,
        [
            ("start Answer".into(), "1".into(), t(1.0)),
            ("end Answer".into(), "OK".into(), t(1.0)),
            ("start Wait".into(), "2".into(), t(1.0)),
            ("end Wait".into(), "OK".into(), t(4.5)),
            ("start Hangup".into(), "3".into(), t(4.5)),
        ]
    );
    let channel = &r.cdrs[0].channel;
    assert!(r.events.iter().all(|e| match &e.event {
        SwitchEvent::AppStarted { channel: c, .. }
        | SwitchEvent::AppFinished { channel: c, .. } => c == channel,
        _ => true,
    }));
    assert!(matches!(
        r.events.last().map(|e| &e.event),
        Some(SwitchEvent::Hangup { cause: 16, .. })
    ));
}
