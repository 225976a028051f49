//! Shared helpers for the integration tests: a local address, loading
//! inline configs, and a scripted far end that answers our requests.
#![allow(dead_code)]

use std::time::Instant;

use bytes::Bytes;
use carillon_sip::{Message, ResponseBuilder};
use carillon_transaction::TimerConfig;
use carillon_trunk::{LocalConfig, Transmit, Transport, TrunkSet, Trunks};

pub fn local() -> LocalConfig {
    LocalConfig {
        host: "203.0.113.10".into(),
        port: 5060,
        transport: Transport::Udp,
        user_agent: Some("Carillon".into()),
        rng_seed: [42; 32],
        timers: TimerConfig::default(),
    }
}

pub fn set(text: &str) -> TrunkSet {
    match Trunks::load("test.toml", text) {
        Ok(set) => set,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("config problems:\n{}", lines.join("\n"));
        }
    }
}

pub fn start(text: &str, now: Instant) -> Trunks {
    Trunks::new(set(text), local(), now)
}

pub fn drain(trunks: &mut Trunks) -> Vec<(Transmit, Message)> {
    std::iter::from_fn(|| trunks.poll_transmit())
        .map(|t| {
            let m = Message::parse(t.bytes.clone()).unwrap();
            (t, m)
        })
        .collect()
}

pub fn respond(request: &Message, status: u16, headers: &[(&str, &str)]) -> Message {
    let mut b = ResponseBuilder::new(request, status).to_tag("far");
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    Message::parse(b.build()).unwrap()
}

pub fn raw(bytes: &Bytes) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
