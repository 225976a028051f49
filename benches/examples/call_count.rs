//! Switch-only cost of one call through the B2BUA (no sockets, no media
//! plane): 100 calls 101 with digest (INVITE -> 407 -> ACK -> INVITE with
//! credentials), the switch forks to 101's binding, 101 answers 180 and
//! 200 with SDP, the caller ACKs, then hangs up with BYE. Counts what the
//! signalling core does per call, the machine-independent part of
//! `benches/call_load.sh MODE=cps`.
//!
//! ```sh
//! cargo build --release -p carillon-benches --example call_count
//! E=$CARGO_TARGET_DIR/release/examples/call_count
//! $E 5000                       # prints ns per call (in-process)
//! valgrind --tool=callgrind --toggle-collect='*Switch::handle_input*' \
//!     --toggle-collect='*Switch::poll_output*' --toggle-collect='*Switch::handle_timeout*' $E 2000
//! # instructions per call = Collected / 2000
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::switch::Output;
use carillon_b2bua::{Peer, PolicyConfig, Switch, SwitchConfig, Transport, User};
use carillon_digest::{Algorithm, Challenge};
use carillon_registrar::{Binding, RegistrarConfig};
use carillon_sip::{HeaderName, Message, Method};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;
const SDP_A: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";
const SDP_B: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n";

fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        conn: None,
    }
}

fn invite(call: u32, cseq: u32, auth: Option<&str>) -> Bytes {
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    Bytes::from(format!(
        "INVITE sip:101@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{call}-{cseq};rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1:5060>;tag=a{call}\r\nTo: <sip:101@127.0.0.1:5060>\r\nCall-ID: call-{call}@127.0.0.1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\nUser-Agent: bench\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
        SDP_A.len()
    ))
}

fn from_a(call: u32, method: &str, cseq: u32, branch: &str, to_tag: &str) -> Bytes {
    Bytes::from(format!(
        "{method} sip:101@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{branch};rport\r\nFrom: \"Agent\" <sip:100@127.0.0.1:5060>;tag=a{call}\r\nTo: <sip:101@127.0.0.1:5060>;tag={to_tag}\r\nCall-ID: call-{call}@127.0.0.1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// A response from 101 to a request the switch sent it.
fn from_b(req: &Message, status: u16, sdp: bool) -> Bytes {
    let mut s = format!("SIP/2.0 {status} X\r\n");
    for (name, raw, value) in req.headers() {
        match name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                s.push_str(&format!("{raw}: {value}\r\n"))
            }
            HeaderName::To if value.contains("tag=") => s.push_str(&format!("To: {value}\r\n")),
            HeaderName::To => s.push_str(&format!("To: {value};tag=b1\r\n")),
            _ => {}
        }
    }
    s.push_str("Contact: <sip:101@127.0.0.1:5070>\r\n");
    if sdp {
        s.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_B}",
            SDP_B.len()
        ));
    } else {
        s.push_str("Content-Length: 0\r\n\r\n");
    }
    Bytes::from(s)
}

struct Rig {
    sw: Switch,
    now: Instant,
    ms: u64,
    in_switch: Duration,
}

impl Rig {
    fn feed(&mut self, from: Peer, bytes: Bytes) -> Vec<(Peer, Message)> {
        let t = Instant::now();
        self.sw.handle_input(self.now, self.ms, from, bytes);
        let out: Vec<Output> = std::iter::from_fn(|| self.sw.poll_output()).collect();
        self.in_switch += t.elapsed();
        out.into_iter()
            .filter_map(|o| match o {
                Output::Transmit(t) => Message::parse(t.bytes).ok().map(|m| (t.to, m)),
                _ => None,
            })
            .collect()
    }
}

fn fail(what: &str, call: u32) -> ! {
    eprintln!("call {call}: {what}");
    std::process::exit(1);
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let user = |e: &str| User {
        extension: e.into(),
        password: format!("changeme{e}"),
        context: "internal".into(),
        max_contacts: 3,
        ..Default::default()
    };
    let dialplan = match carillon_dialplan::Dialplan::load("bench.toml", PLAN) {
        Ok(d) => d,
        Err(e) => fail(&format!("dialplan: {e:?}"), 0),
    };
    let sw = match Switch::new(SwitchConfig {
        realm: "carillon".into(),
        user_agent: "Carillon".into(),
        users: vec![user("100"), user("101")],
        registrar: RegistrarConfig::default(),
        policy: PolicyConfig {
            exempt: vec![[127, 0, 0, 1].into()],
            ..PolicyConfig::default()
        },
        digest_algorithms: vec![Algorithm::Md5],
        nonce_lifetime: Duration::from_secs(300),
        rng_seed: [5; 32],
        timers: Default::default(),
        calls: CallConfig {
            dialplan: Some(dialplan),
            // As the binary runs without an `[events] file`.
            events: false,
            ..CallConfig::default()
        },
    }) {
        Ok(sw) => sw,
        Err(e) => fail(&format!("switch: {e}"), 0),
    };
    let unix_s = 1_800_000_000u64;
    let mut rig = Rig {
        sw,
        now: Instant::now(),
        ms: unix_s * 1000,
        in_switch: Duration::ZERO,
    };
    rig.sw.restore_bindings(
        vec![Binding {
            aor: "101".into(),
            contact: "sip:101@127.0.0.1:5070".into(),
            source: "udp:127.0.0.1:5070".into(),
            instance: None,
            reg_id: None,
            path: vec![],
            call_id: "reg".into(),
            cseq: 1,
            expires_at: unix_s + 3600,
            q: None,
            user_agent: None,
        }],
        unix_s,
    );
    let a = udp(5080);
    let b = udp(5070);
    let mut answered = 0u32;
    for call in 0..n {
        let out = rig.feed(a, invite(call, 1, None));
        let Some(ch) = out
            .iter()
            .find_map(|(_, m)| m.header(HeaderName::ProxyAuthenticate))
            .and_then(|h| Challenge::parse(&h).ok())
        else {
            fail("no 407", call)
        };
        rig.feed(a, from_a(call, "ACK", 1, &format!("{call}-1"), "x"));
        let auth = carillon_digest::respond(
            &ch,
            "INVITE",
            "sip:101@127.0.0.1:5060",
            "100",
            "changeme100",
            "c0ffee",
            1,
        );
        let out = rig.feed(a, invite(call, 2, Some(&auth)));
        let Some(b_inv) = out
            .into_iter()
            .find(|(p, m)| *p == b && m.method() == Some(&Method::Invite))
            .map(|(_, m)| m)
        else {
            fail("no INVITE to 101", call)
        };
        rig.feed(b, from_b(&b_inv, 180, false));
        let out = rig.feed(b, from_b(&b_inv, 200, true));
        let Some(to_tag) = out
            .iter()
            .find(|(p, m)| *p == a && m.status() == Some(200))
            .and_then(|(_, m)| m.tag(HeaderName::To).map(|t| t.to_string()))
        else {
            fail("no 200 to 100", call)
        };
        answered += 1;
        rig.feed(a, from_a(call, "ACK", 2, &format!("{call}-ack"), &to_tag));
        let out = rig.feed(a, from_a(call, "BYE", 3, &format!("{call}-bye"), &to_tag));
        let Some(b_bye) = out
            .into_iter()
            .find(|(p, m)| *p == b && m.method() == Some(&Method::Bye))
            .map(|(_, m)| m)
        else {
            fail("no BYE to 101", call)
        };
        rig.feed(b, from_b(&b_bye, 200, false));
    }
    // Let every transaction finish (Timer J/K etc.) and count it too.
    rig.now += Duration::from_secs(64);
    rig.ms += 64_000;
    let t = Instant::now();
    rig.sw.handle_timeout(rig.now, rig.ms);
    while rig.sw.poll_output().is_some() {}
    rig.in_switch += t.elapsed();
    let (calls, txns, ports) = rig.sw.call_counts();
    println!(
        "calls={n} answered={answered} switch_ns_per_call={:.0} left: calls={calls} client_txns={txns} rtp_ports={ports}",
        rig.in_switch.as_nanos() as f64 / f64::from(n.max(1))
    );
    if answered != n || calls != 0 {
        std::process::exit(1);
    }
}
