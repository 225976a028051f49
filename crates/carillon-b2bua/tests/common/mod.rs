//! The sans-IO rig shared by the switch's call tests (`calls.rs`,
//! `calls_dialplan_streams.rs`): a `Switch` driven with virtual time, what
//! it put on the wire, told the media plane and recorded as CDRs, the
//! test users and peers, a user's digest-authenticated REGISTER, and a
//! callee's response to a request the switch sent it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{Output, Peer, PolicyConfig, Switch, SwitchConfig, Transport, User};
use carillon_cdr::CallRecord;
use carillon_digest::{Algorithm, Challenge};
use carillon_mediactl::MediaCommand;
use carillon_registrar::RegistrarConfig;
use carillon_sip::{HeaderName, Message, Method};
use carillon_transaction::TimerConfig;

/// The wall clock (ms since the epoch) at virtual time 0.
pub const T0_MS: u64 = 1_800_000_000_000;

/// A switch and everything it has output so far.
pub struct Rig {
    pub sw: Switch,
    pub t0: Instant,
    pub wire: Vec<(Peer, Message)>,
    pub media: Vec<MediaCommand>,
    pub cdrs: Vec<CallRecord>,
    /// Switch events, in order.
    pub events: Vec<carillon_events::EventRecord>,
    /// Callback requests to store, in order.
    pub callbacks: Vec<carillon_cdr::CallbackRequest>,
    /// Webhooks to send (url, JSON body), in order.
    pub webhooks: Vec<(String, String)>,
}

/// A peer on 127.0.0.1:`port`, on the stream connection `conn` if any.
pub fn peer(transport: Transport, port: u16, conn: Option<u64>) -> Peer {
    Peer {
        transport,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        conn,
    }
}

pub fn udp(port: u16) -> Peer {
    peer(Transport::Udp, port, None)
}

/// User `e` with password `changeme<e>` in the context `internal`.
pub fn user(e: &str) -> User {
    User {
        extension: e.into(),
        password: format!("changeme{e}"),
        context: "internal".into(),
        codecs: vec![],
        max_contacts: 3,
        max_calls: None,
        max_cps: None,
        nat: Default::default(),
        dtmf_mode: Default::default(),
    }
}

/// The switch of the tests: realm `carillon`, MD5 challenges, `users`,
/// the RNG seeded with `seed`, and `calls`.
pub fn switch_config(users: Vec<User>, seed: u8, calls: CallConfig) -> SwitchConfig {
    SwitchConfig {
        realm: "carillon".into(),
        user_agent: "test".into(),
        users,
        registrar: RegistrarConfig::default(),
        policy: PolicyConfig::default(),
        digest_algorithms: vec![Algorithm::Md5],
        nonce_lifetime: Duration::from_secs(300),
        rng_seed: [seed; 32],
        timers: TimerConfig::default(),
        calls,
    }
}

/// The callee's `status` response to `req` (the switch's request): its
/// Via, From, Call-ID and CSeq, its To with the tag `b1` added when it has
/// none, a Contact of `contact`, the header lines `extra`, and `sdp` as
/// body if any.
pub fn response(
    req: &Message,
    status: u16,
    contact: &str,
    extra: &str,
    sdp: Option<&str>,
) -> String {
    let mut s = format!("SIP/2.0 {status} X\r\n");
    for (name, raw, value) in req.headers() {
        match name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                s.push_str(&format!("{raw}: {value}\r\n"))
            }
            HeaderName::To if value.contains(";tag=") => s.push_str(&format!("To: {value}\r\n")),
            HeaderName::To => s.push_str(&format!("To: {value};tag=b1\r\n")),
            _ => {}
        }
    }
    s.push_str(&format!("Contact: <{contact}>\r\n"));
    s.push_str(extra);
    match sdp {
        Some(b) => s.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s
}

impl Rig {
    /// A rig around `sw`, at virtual time 0.
    pub fn on(sw: Switch) -> Rig {
        Rig {
            sw,
            t0: Instant::now(),
            wire: Vec::new(),
            media: Vec::new(),
            cdrs: Vec::new(),
            events: Vec::new(),
            callbacks: Vec::new(),
            webhooks: Vec::new(),
        }
    }

    /// The monotonic and wall time `secs` into the test.
    pub fn at(&self, secs: f64) -> (Instant, u64) {
        (
            self.t0 + Duration::from_secs_f64(secs),
            T0_MS + (secs * 1000.0) as u64,
        )
    }

    pub fn send(&mut self, secs: f64, from: Peer, text: String) {
        let (now, ms) = self.at(secs);
        self.sw.handle_input(now, ms, from, Bytes::from(text));
        self.drain();
    }

    pub fn tick(&mut self, secs: f64) {
        let (now, ms) = self.at(secs);
        self.sw.handle_timeout(now, ms);
        self.drain();
    }

    /// The stream connection `conn` to 127.0.0.1:`port` closed (or could
    /// not be opened).
    pub fn closed(&mut self, secs: f64, conn: u64, port: u16) {
        let (now, ms) = self.at(secs);
        self.sw
            .handle_stream_closed(now, ms, conn, SocketAddr::from(([127, 0, 0, 1], port)));
        self.drain();
    }

    pub fn drain(&mut self) {
        while let Some(o) = self.sw.poll_output() {
            match o {
                Output::Transmit(t) => self.wire.push((t.to, Message::parse(t.bytes).unwrap())),
                Output::Media(m) => self.media.push(m),
                Output::Cdr(c) => self.cdrs.push(c),
                Output::Binding(_) => {}
                Output::Callback(c) => self.callbacks.push(c),
                Output::Webhook { url, body, .. } => self.webhooks.push((url, body)),
                Output::Event(e) => self.events.push(e),
                Output::Voicemail(_) => {}
            }
        }
    }

    /// Takes the messages sent so far.
    pub fn take(&mut self) -> Vec<(Peer, Message)> {
        std::mem::take(&mut self.wire)
    }

    /// `ext` registers from `from` with `contact` and the header lines
    /// `extra` (challenged, then authenticated with `changeme<ext>`);
    /// asserts the 200 and returns it.
    pub fn register(&mut self, ext: &str, from: Peer, contact: &str, extra: &str) -> Message {
        let via = from.transport.via_token();
        let port = from.addr.port();
        let reg = |auth: Option<String>, cseq: u32| {
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{via} 127.0.0.1:{port};branch=z9hG4bKreg{ext}{cseq};rport\r\nFrom: <sip:{ext}@127.0.0.1>;tag=r1\r\nTo: <sip:{ext}@127.0.0.1>\r\nCall-ID: reg{ext}\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\n{extra}Expires: 3600\r\n{}Content-Length: 0\r\n\r\n",
                auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default()
            )
        };
        self.send(0.0, from, reg(None, 1));
        let ch = Challenge::parse(
            &self.take()[0]
                .1
                .header(HeaderName::WwwAuthenticate)
                .unwrap(),
        )
        .unwrap();
        let password = format!("changeme{ext}");
        let auth =
            carillon_digest::respond(&ch, "REGISTER", "sip:127.0.0.1", ext, &password, "c", 1);
        self.send(0.0, from, reg(Some(auth), 2));
        let ok = self.take().remove(0).1;
        assert_eq!(ok.status(), Some(200));
        ok
    }
}

/// A one-stream PCMU SDP from 127.0.0.1:`port` with `a=direction`.
pub fn sdp(owner: &str, port: u16, version: u32, direction: &str) -> String {
    format!("v=0\r\no={owner} 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n")
}

/// 100 (at :5080) calls 101 (at :5070), which answers; returns the
/// switch's To tag towards 100 and the INVITE 101 got.
pub fn bridged_call(r: &mut Rig) -> (String, Message) {
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
