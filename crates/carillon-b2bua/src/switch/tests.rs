//! Switch tests: REGISTER with digest auth end to end through the sans-IO
//! core, identical challenges for unknown users, bans, retransmissions.

use super::*;
use crate::endpoint::Transport;
use carillon_digest::Challenge;
use std::net::SocketAddr;

fn config() -> SwitchConfig {
    SwitchConfig {
        realm: "carillon".into(),
        user_agent: "Carillon-test".into(),
        users: vec![User {
            extension: "100".into(),
            password: "changeme100".into(),
            context: "internal".into(),
            codecs: vec![],
            max_contacts: 2,
            max_calls: None,
            max_cps: None,
            nat: Default::default(),
            dtmf_mode: Default::default(),
        }],
        registrar: RegistrarConfig::default(),
        policy: PolicyConfig {
            max_auth_failures: 3,
            ..PolicyConfig::default()
        },
        digest_algorithms: vec![Algorithm::Md5],
        nonce_lifetime: Duration::from_secs(300),
        rng_seed: [7; 32],
        timers: TimerConfig::default(),
        calls: crate::calls::CallConfig::default(),
    }
}

fn peer(ip: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: format!("{ip}:5062").parse::<SocketAddr>().unwrap(),
        conn: None,
    }
}

fn register(user: &str, cseq: u32, branch: &str, auth: Option<String>) -> Bytes {
    let mut s = format!("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK{branch};rport\r\nFrom: <sip:{user}@127.0.0.1>;tag=f1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:5062>\r\nExpires: 600\r\nMax-Forwards: 70\r\n");
    if let Some(a) = auth {
        s.push_str(&format!("Authorization: {a}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(s)
}

fn drain(sw: &mut Switch) -> (Vec<Message>, Vec<BindingChange>) {
    let mut msgs = Vec::new();
    let mut changes = Vec::new();
    while let Some(o) = sw.poll_output() {
        match o {
            Output::Transmit(t) => msgs.push(Message::parse(t.bytes).unwrap()),
            Output::Binding(c) => changes.push(c),
            Output::Media(_)
            | Output::Cdr(_)
            | Output::Event(_)
            | Output::Callback(_)
            | Output::Voicemail(_)
            | Output::Webhook { .. } => {}
        }
    }
    (msgs, changes)
}

fn challenge_of(m: &Message) -> Challenge {
    Challenge::parse(&m.header(HeaderName::WwwAuthenticate).unwrap()).unwrap()
}

/// Credentials for user 100 with `password`, answering the 401 `m`.
fn answer(m: &Message, password: &str) -> String {
    carillon_digest::respond(
        &challenge_of(m),
        "REGISTER",
        "sip:127.0.0.1",
        "100",
        password,
        "cn",
        1,
    )
}

#[test]
fn register_with_digest_auth_binds_the_contact_and_reports_the_change() {
    let mut sw = Switch::new(config()).unwrap();
    let now = Instant::now();
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.1"),
        register("100", 1, "a", None),
    );
    let (msgs, _) = drain(&mut sw);
    assert_eq!(msgs[0].status(), Some(401));
    let auth = answer(&msgs[0], "changeme100");
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.1"),
        register("100", 2, "b", Some(auth)),
    );
    let (msgs, changes) = drain(&mut sw);
    assert_eq!(msgs[0].status(), Some(200));
    assert!(msgs[0]
        .header(HeaderName::Contact)
        .unwrap()
        .contains("expires=600"));
    assert!(msgs[0].top_via_str().unwrap().contains("rport=5062"));
    assert_eq!(changes.len(), 1);
    assert_eq!(sw.registrar().lookup("100", 1000).len(), 1);
    assert_eq!(
        &*sw.registrar().lookup("100", 1000)[0].source,
        "udp:127.0.0.1:5062"
    );
}

#[test]
fn unknown_and_known_users_get_the_same_challenge_shape() {
    let mut sw = Switch::new(config()).unwrap();
    let now = Instant::now();
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.1"),
        register("100", 1, "a", None),
    );
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.1"),
        register("999", 1, "b", None),
    );
    let (msgs, _) = drain(&mut sw);
    assert_eq!(msgs[0].status(), msgs[1].status());
    let (a, b) = (challenge_of(&msgs[0]), challenge_of(&msgs[1]));
    assert_eq!(
        (a.realm, a.algorithm, a.qop_auth, a.stale),
        (b.realm, b.algorithm, b.qop_auth, b.stale)
    );
    assert_eq!(msgs[0].reason(), msgs[1].reason());
}

#[test]
fn repeated_wrong_passwords_ban_the_source_but_not_others() {
    let mut sw = Switch::new(config()).unwrap();
    let now = Instant::now();
    for i in 0..3 {
        sw.handle_input(
            now,
            1_000_000,
            peer("127.0.0.2"),
            register("100", 1 + 2 * i, &format!("x{i}"), None),
        );
        let (msgs, _) = drain(&mut sw);
        let ch = challenge_of(&msgs[0]);
        let auth =
            carillon_digest::respond(&ch, "REGISTER", "sip:127.0.0.1", "100", "wrong", "cn", 1);
        sw.handle_input(
            now,
            1_000_000,
            peer("127.0.0.2"),
            register("100", 2 + 2 * i, &format!("y{i}"), Some(auth)),
        );
        let (msgs, _) = drain(&mut sw);
        assert_eq!(msgs[0].status(), Some(401));
    }
    assert_eq!(sw.stats().bans, 1);
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.2"),
        register("100", 50, "z", None),
    );
    assert!(drain(&mut sw).0.is_empty(), "banned source must be ignored");
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.3"),
        register("100", 1, "w", None),
    );
    assert_eq!(drain(&mut sw).0.len(), 1);
}

/// Sends REGISTER (branch `a`), answers its challenge with the right
/// password (branch `b`); returns the request with credentials.
fn authenticated_register(sw: &mut Switch, now: Instant) -> Bytes {
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.1"),
        register("100", 1, "a", None),
    );
    let (msgs, _) = drain(sw);
    register("100", 2, "b", Some(answer(&msgs[0], "changeme100")))
}

#[test]
fn a_retransmitted_register_gets_the_same_response_without_reprocessing() {
    let mut sw = Switch::new(config()).unwrap();
    let now = Instant::now();
    let req = authenticated_register(&mut sw, now);
    sw.handle_input(now, 1_000_000, peer("127.0.0.1"), req.clone());
    let (first, changes) = drain(&mut sw);
    assert_eq!(first[0].status(), Some(200));
    assert_eq!(changes.len(), 1);
    // Processed again, the same nonce count would be refused as a replay;
    // the transaction answers with the stored 200 instead.
    sw.handle_input(
        now + Duration::from_millis(500),
        1_000_000,
        peer("127.0.0.1"),
        req,
    );
    let (second, changes) = drain(&mut sw);
    assert_eq!(first[0].to_bytes(), second[0].to_bytes());
    assert!(changes.is_empty(), "a retransmission changes no binding");
    assert_eq!(sw.stats().retransmissions, 1);
    // Timer J ends the transaction after 64*T1, and not before.
    assert_eq!(sw.open_transactions(), 1);
    sw.handle_timeout(now + Duration::from_secs(31), 1_031_000);
    assert_eq!(sw.open_transactions(), 1);
    sw.handle_timeout(now + Duration::from_secs(33), 1_033_000);
    assert_eq!(sw.open_transactions(), 0);
}

#[test]
fn a_register_challenge_is_stateless_and_its_retransmission_gets_a_fresh_one() {
    let mut sw = Switch::new(config()).unwrap();
    let now = Instant::now();
    let send = |sw: &mut Switch| {
        sw.handle_input(
            now,
            1_000_000,
            peer("127.0.0.1"),
            register("100", 1, "a", None),
        );
        drain(sw).0
    };
    let first = send(&mut sw);
    assert_eq!(first[0].status(), Some(401));
    assert_eq!(sw.open_transactions(), 0, "no transaction kept for a 401");
    assert!(first[0].top_via_str().unwrap().contains("rport=5062"));
    let second = send(&mut sw);
    assert_eq!(second[0].status(), Some(401));
    assert_ne!(
        challenge_of(&first[0]).nonce,
        challenge_of(&second[0]).nonce
    );
    assert_eq!(sw.stats().retransmissions, 0);
    // Either challenge can be answered.
    let auth = answer(&first[0], "changeme100");
    sw.handle_input(
        now,
        1_000_000,
        peer("127.0.0.1"),
        register("100", 2, "b", Some(auth)),
    );
    assert_eq!(drain(&mut sw).0[0].status(), Some(200));
}

#[test]
fn options_is_answered_with_capabilities() {
    let mut sw = Switch::new(config()).unwrap();
    let req = Bytes::from_static(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKo\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    sw.handle_input(Instant::now(), 1_000_000, peer("127.0.0.1"), req);
    let (msgs, _) = drain(&mut sw);
    assert_eq!(msgs[0].status(), Some(200));
    assert!(msgs[0]
        .header(HeaderName::Allow)
        .unwrap()
        .contains("REGISTER"));
    assert!(msgs[0].header(HeaderName::Supported).is_some());
    assert!(msgs[0].tag(HeaderName::To).is_some());
}

#[test]
fn malformed_requests_get_400_and_responses_are_dropped() {
    let mut sw = Switch::new(config()).unwrap();
    let bad = Bytes::from_static(b"INVITE  sip:a@b  SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKm\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: m1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    sw.handle_input(Instant::now(), 1_000_000, peer("127.0.0.1"), bad);
    let (msgs, _) = drain(&mut sw);
    assert_eq!(msgs[0].status(), Some(400));
    let resp = Bytes::from_static(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKq\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: r1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    sw.handle_input(Instant::now(), 1_000_000, peer("127.0.0.1"), resp);
    assert!(drain(&mut sw).0.is_empty());
}
