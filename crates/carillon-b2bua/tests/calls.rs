//! Call flows through the sans-IO switch with virtual time: a registered
//! callee, an authenticated caller, the B2BUA in between. Every test checks
//! what went on the wire, what the media plane was told, the CDR, and that
//! no call, transaction or RTP port is left behind.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{Output, Peer, PolicyConfig, Switch, SwitchConfig, Transport, User};
use carillon_cdr::{CallRecord, Disposition};
use carillon_digest::{Algorithm, Challenge};
use carillon_mediactl::MediaCommand;
use carillon_registrar::RegistrarConfig;
use carillon_sip::{HeaderName, Message, Method};
use carillon_transaction::TimerConfig;

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;

const T0_MS: u64 = 1_800_000_000_000;

struct Rig {
    sw: Switch,
    t0: Instant,
    wire: Vec<(Peer, Message)>,
    media: Vec<MediaCommand>,
    cdrs: Vec<CallRecord>,
}

fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        conn: None,
    }
}

impl Rig {
    fn new() -> Rig {
        let users = ["100", "101"]
            .iter()
            .map(|e| User {
                extension: (*e).into(),
                password: format!("changeme{e}"),
                context: "internal".into(),
                codecs: vec![],
                max_contacts: 3,
            })
            .collect();
        let sw = Switch::new(SwitchConfig {
            realm: "carillon".into(),
            user_agent: "test".into(),
            users,
            registrar: RegistrarConfig::default(),
            policy: PolicyConfig::default(),
            digest_algorithms: vec![Algorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            rng_seed: [3; 32],
            timers: TimerConfig::default(),
            calls: CallConfig {
                dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
                ..CallConfig::default()
            },
        })
        .unwrap();
        Rig {
            sw,
            t0: Instant::now(),
            wire: Vec::new(),
            media: Vec::new(),
            cdrs: Vec::new(),
        }
    }

    fn at(&self, secs: f64) -> (Instant, u64) {
        (
            self.t0 + Duration::from_secs_f64(secs),
            T0_MS + (secs * 1000.0) as u64,
        )
    }

    fn send(&mut self, secs: f64, from: Peer, text: String) {
        let (now, ms) = self.at(secs);
        self.sw.handle_input(now, ms, from, Bytes::from(text));
        self.drain();
    }

    fn tick(&mut self, secs: f64) {
        let (now, ms) = self.at(secs);
        self.sw.handle_timeout(now, ms);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(o) = self.sw.poll_output() {
            match o {
                Output::Transmit(t) => self.wire.push((t.to, Message::parse(t.bytes).unwrap())),
                Output::Media(m) => self.media.push(m),
                Output::Cdr(c) => self.cdrs.push(c),
                Output::Binding(_) => {}
            }
        }
    }

    /// Takes the messages sent so far.
    fn take(&mut self) -> Vec<(Peer, Message)> {
        std::mem::take(&mut self.wire)
    }

    fn register_101(&mut self) {
        let reg = |auth: Option<String>, cseq: u32| {
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKreg{cseq};rport\r\nFrom: <sip:101@127.0.0.1>;tag=r1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: reg101\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:101@127.0.0.1:5070>\r\nExpires: 3600\r\n{}Content-Length: 0\r\n\r\n",
                auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default()
            )
        };
        self.send(0.0, udp(5070), reg(None, 1));
        let ch = Challenge::parse(
            &self.take()[0]
                .1
                .header(HeaderName::WwwAuthenticate)
                .unwrap(),
        )
        .unwrap();
        let auth = carillon_digest::respond(
            &ch,
            "REGISTER",
            "sip:127.0.0.1",
            "101",
            "changeme101",
            "c",
            1,
        );
        self.send(0.0, udp(5070), reg(Some(auth), 2));
        assert_eq!(self.take()[0].1.status(), Some(200));
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
