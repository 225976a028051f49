//! Parses a fixture N times, for instruction counting under callgrind:
//! `valgrind --tool=callgrind target/release/examples/parse_count invite 10000`.
//! Arguments: `invite|register` `N` and optionally `rsip` to run rsip 0.4
//! instead of Carillon's parser. Prints how many messages yielded all keys.

use std::hint::black_box;

use bytes::Bytes;
use carillon_benches::{carillon_parse_keys, INVITE, REGISTER};
use rsip::prelude::*;

fn rsip_ok(buf: &[u8]) -> bool {
    let Ok(m) = rsip::SipMessage::try_from(buf) else {
        return false;
    };
    let branch = m
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .and_then(|v| v.branch().map(ToString::to_string));
    let tag = m
        .from_header()
        .ok()
        .and_then(|f| f.tag().ok().flatten())
        .map(|t| t.to_string());
    let call_id = m.call_id_header().ok().map(|c| c.value().to_owned());
    let cseq = m.cseq_header().ok().and_then(|c| c.seq().ok());
    branch.is_some() && tag.is_some() && call_id.is_some() && cseq.is_some()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let msg = match args.get(1).map(String::as_str) {
        Some("register") => REGISTER,
        _ => INVITE,
    };
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let use_rsip = args.get(3).is_some_and(|s| s == "rsip");
    let mut ok = 0usize;
    for _ in 0..n {
        let good = if use_rsip {
            rsip_ok(black_box(msg))
        } else {
            carillon_parse_keys(black_box(Bytes::from_static(msg))).is_some()
        };
        ok += usize::from(good);
    }
    println!("{ok}/{n} parsed");
}
