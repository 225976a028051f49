//! Switch-only cost of one authenticated registration (REGISTER -> 401 ->
//! REGISTER with credentials -> 200), through the sans-IO core with no
//! sockets: what `benches/register_load.sh` measures minus the kernel.
//!
//! ```sh
//! cargo build --release -p carillon-benches --example register_count
//! E=$CARGO_TARGET_DIR/release/examples/register_count
//! $E 10000                      # prints ns per registration (wall, in-process)
//! valgrind --tool=callgrind --toggle-collect='*Switch::handle_input*' \
//!     --toggle-collect='*Switch::poll_output*' $E 10000
//! # instructions per registration = Collected / 10000
//! ```
//!
//! Client work (building the requests, answering the challenge) is outside
//! the timed and collected region.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_b2bua::switch::Output;
use carillon_b2bua::{Peer, PolicyConfig, Switch, SwitchConfig, Transport, User};
use carillon_digest::{Algorithm, Challenge};
use carillon_registrar::RegistrarConfig;
use carillon_sip::{HeaderName, Message};

/// A REGISTER shaped like SIPp's `register_auth.xml` sends.
fn register(ext: u32, cseq: u32, auth: Option<&str>) -> Bytes {
    let mut s = format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{ext}-{cseq}-0;rport\r\n\
         From: <sip:{ext}@127.0.0.1:5060>;tag={ext}SIPpTag00{cseq}\r\n\
         To: <sip:{ext}@127.0.0.1:5060>\r\n\
         Call-ID: {ext}-{cseq}@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{ext}@127.0.0.1:5070>\r\n\
         Max-Forwards: 70\r\n\
         Expires: 3600\r\n\
         User-Agent: SIPp\r\n"
    );
    if let Some(a) = auth {
        s.push_str("Authorization: ");
        s.push_str(a);
        s.push_str("\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(s)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let users = (0..n).map(|i| User {
        extension: (100_000 + i).to_string(),
        password: format!("pw{}", 100_000 + i),
        context: "internal".into(),
        max_contacts: 3,
        ..Default::default()
    });
    let mut sw = match Switch::new(SwitchConfig {
        realm: "carillon".into(),
        user_agent: "Carillon".into(),
        users: users.collect(),
        registrar: RegistrarConfig::default(),
        policy: PolicyConfig {
            exempt: vec!["127.0.0.1".parse().expect("ip")],
            ..PolicyConfig::default()
        },
        digest_algorithms: vec![Algorithm::Md5],
        nonce_lifetime: Duration::from_secs(300),
        rng_seed: [9; 32],
        timers: Default::default(),
        calls: Default::default(),
    }) {
        Ok(sw) => sw,
        Err(e) => {
            eprintln!("switch: {e}");
            std::process::exit(2);
        }
    };
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse::<SocketAddr>().expect("addr"),
        conn: None,
    };
    let now = Instant::now();
    let unix_ms = 1_800_000_000_000;
    let mut in_switch = Duration::ZERO;
    let mut ok = 0u32;
    for i in 0..n {
        let ext = 100_000 + i;
        let first = register(ext, 1, None);
        let t = Instant::now();
        sw.handle_input(now, unix_ms, peer, first);
        let out: Vec<Output> = std::iter::from_fn(|| sw.poll_output()).collect();
        in_switch += t.elapsed();
        let Some(challenge) = out.iter().find_map(|o| match o {
            Output::Transmit(t) => Message::parse(t.bytes.clone())
                .ok()
                .and_then(|m| m.header(HeaderName::WwwAuthenticate).map(|h| h.to_string()))
                .and_then(|h| Challenge::parse(&h).ok()),
            _ => None,
        }) else {
            eprintln!("no challenge for {ext}");
            std::process::exit(1);
        };
        let auth = carillon_digest::respond(
            &challenge,
            "REGISTER",
            "sip:127.0.0.1:5060",
            &ext.to_string(),
            &format!("pw{ext}"),
            "0a4f113b",
            1,
        );
        let second = register(ext, 2, Some(&auth));
        let t = Instant::now();
        sw.handle_input(now, unix_ms, peer, second);
        let out: Vec<Output> = std::iter::from_fn(|| sw.poll_output()).collect();
        in_switch += t.elapsed();
        ok += u32::from(out.iter().any(|o| match o {
            Output::Transmit(t) => t.bytes.starts_with(b"SIP/2.0 200"),
            _ => false,
        }));
    }
    println!(
        "registrations={n} ok={ok} switch_ns_per_registration={:.0}",
        in_switch.as_nanos() as f64 / f64::from(n.max(1))
    );
    if ok != n {
        std::process::exit(1);
    }
}
