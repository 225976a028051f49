//! Call handling of issue 12 through the sans-IO switch with virtual time:
//! a call answered by the dialplan's `Answer` gets an answer time and an
//! `ANSWERED` CDR; `Dial` with `continue = true` goes on with the caller
//! (`${DIALSTATUS}` = `ANSWER`) when the callee hangs up; a phone
//! registered over TCP is sent its INVITE over the connection its
//! REGISTER came on, at its Contact once that connection is closed, and a
//! connection that fails fails the INVITE at once.

mod common;

use std::net::SocketAddr;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{Peer, Switch, Transport};
use carillon_cdr::Disposition;
use carillon_digest::Challenge;
use carillon_sip::{HeaderName, Message, Method};
use common::{peer, response, switch_config, udp, user, Rig, T0_MS};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "500"
steps = [ { app = "Answer" }, { app = "Wait", seconds = 3 }, { app = "Hangup" } ]

[[context.internal.extension]]
match = "600"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 20, continue = true },
  { app = "GotoIf", condition = "${DIALSTATUS} = ANSWER", then = "next" },
  { app = "Hangup", cause = 21 },
  { app = "Dial", targets = ["user/102"], timeout = 20, label = "next" },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;

const SDP_A: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const SDP_B: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The caller, 100, over UDP.
const A_PORT: u16 = 5080;

impl Rig {
    fn new() -> Rig {
        let calls = CallConfig {
            dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
            ..CallConfig::default()
        };
        let users = vec![user("100"), user("101"), user("102")];
        let mut sw = Switch::new(switch_config(users, 5, calls)).unwrap();
        sw.set_tcp_addr(SocketAddr::from(([127, 0, 0, 1], 5061)));
        Rig::on(sw)
    }

    /// 100 dials `exten` (challenged, then authenticated); Call-ID `call_id`.
    fn invite_from_100(&mut self, secs: f64, exten: &str, call_id: &str) {
        let inv = |auth: Option<String>, cseq: u32| {
            format!(
                "INVITE sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{A_PORT};branch=z9hG4bK{call_id}{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:{A_PORT}>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
                auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
                SDP_A.len(),
            )
        };
        self.send(secs, udp(A_PORT), inv(None, 1));
        let out = self.take();
        let challenge = out
            .iter()
            .find(|(_, m)| m.status() == Some(407))
            .expect("407");
        let ch =
            Challenge::parse(&challenge.1.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap();
        self.send(secs, udp(A_PORT), format!("ACK sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{A_PORT};branch=z9hG4bK{call_id}1;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>;tag=x\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
        let uri = format!("sip:{exten}@127.0.0.1");
        let auth = carillon_digest::respond(&ch, "INVITE", &uri, "100", "changeme100", "c", 1);
        self.send(secs, udp(A_PORT), inv(Some(auth), 2));
    }

    /// A request of A's dialog (`TAG` is the switch's To tag).
    fn caller_sends(&mut self, secs: f64, method: &str, cseq: u32, call_id: &str, tag: &str) {
        let text = format!("{method} sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{A_PORT};branch=z9hG4bK{method}{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:600@127.0.0.1>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n");
        self.send(secs, udp(A_PORT), text);
    }
}

/// Messages sent to `port`.
fn sent_to(out: &[(Peer, Message)], port: u16) -> Vec<(Peer, Message)> {
    out.iter()
        .filter(|(p, _)| p.addr.port() == port)
        .cloned()
        .collect()
}

fn find_request(out: &[(Peer, Message)], port: u16, method: &Method) -> Option<(Peer, Message)> {
    sent_to(out, port)
        .into_iter()
        .find(|(_, m)| m.method() == Some(method))
}

fn find_status(out: &[(Peer, Message)], port: u16, status: u16) -> Option<Message> {
    sent_to(out, port)
        .into_iter()
        .map(|(_, m)| m)
        .find(|m| m.status() == Some(status))
}

/// The callee's answer to `req` (To tag `b1`), with SDP for an INVITE.
fn response_to(req: &Message, status: u16, contact_port: u16) -> String {
    let sdp = (req.method() == Some(&Method::Invite) && status == 200).then_some(SDP_B);
    let contact = format!("sip:x@127.0.0.1:{contact_port}");
    response(req, status, &contact, "", sdp)
}

/// The callee of `inv` (which answered with To tag `b1`) hangs up.
fn bye_from_callee(inv: &Message, via_port: u16) -> String {
    let ours = inv.header(HeaderName::From).unwrap();
    let theirs = inv.header(HeaderName::To).unwrap();
    let call_id = inv.call_id().unwrap();
    format!("BYE sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bKbye{via_port};rport\r\nFrom: {theirs};tag=b1\r\nTo: {ours}\r\nCall-ID: {call_id}\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn a_call_answered_by_the_dialplan_has_an_answer_time_and_an_answered_cdr() {
    let mut r = Rig::new();
    r.invite_from_100(1.0, "500", "call500");
    let out = r.take();
    let ok = find_status(&out, A_PORT, 200).expect("Answer sends 200 to the caller");
    let tag = ok.tag(HeaderName::To).unwrap();
    r.caller_sends(1.1, "ACK", 2, "call500", &tag);
    r.tick(2.0);
    assert!(
        find_request(&r.take(), A_PORT, &Method::Bye).is_none(),
        "Wait is 3 s"
    );
    r.tick(4.0);
    let out = r.take();
    let (_, bye) = find_request(&out, A_PORT, &Method::Bye).expect("Hangup sends BYE");
    r.send(4.1, udp(A_PORT), response_to(&bye, 200, A_PORT));
    assert_eq!(r.cdrs.len(), 1);
    let cdr = &r.cdrs[0];
    assert_eq!(cdr.disposition, Disposition::Answered, "{cdr:#?}");
    assert_eq!(cdr.answer_ms, Some(T0_MS as i64 + 1000), "{cdr:#?}");
    assert_eq!(cdr.billsec(), 3, "{cdr:#?}");
}

#[test]
fn dial_with_continue_keeps_the_caller_and_runs_the_next_steps_with_dialstatus_answer() {
    let mut r = Rig::new();
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    r.register("102", udp(5090), "sip:102@127.0.0.1:5090", "");
    r.invite_from_100(1.0, "600", "call600");
    let (_, inv_101) = find_request(&r.take(), 5070, &Method::Invite).expect("INVITE to 101");
    r.send(2.0, udp(5070), response_to(&inv_101, 200, 5070));
    let out = r.take();
    let ok = find_status(&out, A_PORT, 200).expect("200 to the caller");
    let tag = ok.tag(HeaderName::To).unwrap();
    r.caller_sends(2.1, "ACK", 2, "call600", &tag);
    // 101 hangs up: its BYE is answered, the caller is kept, and the
    // dialplan (DIALSTATUS = ANSWER) dials 102.
    r.send(5.0, udp(5070), bye_from_callee(&inv_101, 5070));
    let out = r.take();
    assert!(find_status(&out, 5070, 200).is_some(), "101's BYE answered");
    assert!(
        find_request(&out, A_PORT, &Method::Bye).is_none(),
        "the caller must stay up: {out:#?}"
    );
    let (_, inv_102) = find_request(&out, 5090, &Method::Invite)
        .expect("the steps after the Dial ran (GotoIf on DIALSTATUS, Dial 102)");
    r.send(5.5, udp(5090), response_to(&inv_102, 200, 5090));
    let out = r.take();
    assert!(
        find_request(&out, 5090, &Method::Ack).is_some(),
        "102's 200 ACKed"
    );
    assert!(
        find_status(&out, A_PORT, 200).is_none(),
        "the caller is answered once"
    );
    // 102 hangs up: that Dial has no continue, so the caller is hung up.
    r.send(8.0, udp(5090), bye_from_callee(&inv_102, 5090));
    let out = r.take();
    let (_, bye) = find_request(&out, A_PORT, &Method::Bye).expect("BYE to the caller");
    r.send(8.1, udp(A_PORT), response_to(&bye, 200, A_PORT));
    assert_eq!(r.cdrs.len(), 1);
    let cdr = &r.cdrs[0];
    assert_eq!(cdr.disposition, Disposition::Answered, "{cdr:#?}");
    assert_eq!(
        cdr.billsec(),
        6,
        "answered at 2 s, hung up at 8 s: {cdr:#?}"
    );
    assert!(cdr.dstchannel.starts_with("SIP/102-"), "{cdr:#?}");
    r.tick(60.0);
    r.tick(120.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn a_phone_registered_over_tcp_gets_its_invite_over_that_connection_then_at_its_contact() {
    let mut r = Rig::new();
    // 101's REGISTER came on connection 7 from port 40001; its Contact is
    // its listening port 5070.
    let conn_peer = peer(Transport::Tcp, 40001, Some(7));
    r.register("101", conn_peer, "sip:101@127.0.0.1:5070;transport=tcp", "");
    r.invite_from_100(1.0, "101", "callT1");
    let out = r.take();
    let (to, inv) = find_request(&out, 40001, &Method::Invite).expect("INVITE on the connection");
    assert_eq!(to, conn_peer);
    let via = inv.header(HeaderName::Via).unwrap().into_owned();
    assert!(via.starts_with("SIP/2.0/TCP 127.0.0.1:5061"), "{via}");
    let contact = inv.header(HeaderName::Contact).unwrap().into_owned();
    assert!(
        contact.contains(";transport=tcp") && contact.contains(":5061"),
        "{contact}"
    );
    // The caller gives up; the fork is cancelled over the same connection.
    r.send(1.5, udp(A_PORT), format!("CANCEL sip:101@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{A_PORT};branch=z9hG4bKcallT12;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: callT1\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"));
    let out = r.take();
    assert!(
        find_request(&out, 40001, &Method::Cancel).is_some(),
        "{out:#?}"
    );

    // The connection closes: the next call goes to the Contact, by
    // address (the edge opens a connection).
    r.closed(2.0, 7, 40001);
    r.invite_from_100(3.0, "101", "callT2");
    let out = r.take();
    let (to, _) = find_request(&out, 5070, &Method::Invite).expect("INVITE to the Contact");
    assert_eq!(to, peer(Transport::Tcp, 5070, None));
    // That connection cannot be opened: the INVITE fails at once and the
    // caller gets 503 (Dial → CONGESTION), long before Timer B.
    r.closed(3.1, 99, 5070);
    let out = r.take();
    assert!(find_status(&out, A_PORT, 503).is_some(), "{out:#?}");
}
