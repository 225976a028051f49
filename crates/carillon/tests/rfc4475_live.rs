//! RFC 4475 torture messages sent over UDP to the running switch. The top
//! Via is rewritten to point at the test socket (so nothing is ever sent
//! toward the RFC's documentation addresses); everything else is sent
//! byte-identical. Expectations follow the parser table of
//! `carillon-sip/tests/rfc4475_parser.rs`: the exact status where the table
//! owes one, silence for responses, a non-400 answer for acceptable
//! requests; and the switch must still answer OPTIONS afterwards.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{unique, Conn, Env, Options, SipMsg};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A request that parses and passes the checks: any answer but 400.
    Accept,
    /// A request owed exactly this status.
    Status(u16),
    /// A response: the switch must stay silent.
    Silent,
}

/// The expectations of `tests/rfc4475/EXPECTED.tsv` (shared with the
/// other RFC 4475 test), column `live`.
fn table() -> Vec<(String, Expect)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../carillon-sip/tests/rfc4475/EXPECTED.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let v = cols[2];
            let want = match v {
                "accept" => Expect::Accept,
                "silent" => Expect::Silent,
                code => Expect::Status(
                    code.parse()
                        .unwrap_or_else(|_| panic!("bad expectation {code} in {l}")),
                ),
            };
            (cols[0].to_owned(), want)
        })
        .collect()
}

fn corpus_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../carillon-sip/tests/rfc4475")
}

fn is_via_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let name = String::from_utf8_lossy(&line[..colon]);
    let name = name.trim_end_matches([' ', '\t']);
    name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")
}

/// Replaces the first Via header field (with its continuation lines) by
/// `via`; with `all`, every other Via field is removed too. The body and
/// every other octet stay as they were.
fn rewrite_via(msg: &[u8], via: &str, all: bool) -> Vec<u8> {
    // The header section ends at the first empty line.
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg.len(), |i| i + 2);
    let (head, rest) = msg.split_at(head_end);
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    while start < head.len() {
        let end = head[start..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |i| start + i + 2);
        lines.push(&head[start..end]);
        start = end;
    }
    let mut out = Vec::with_capacity(msg.len() + via.len());
    let mut replaced = false;
    let mut dropping = false;
    for (i, line) in lines.iter().enumerate() {
        let continuation = i > 0 && matches!(line.first(), Some(b' ' | b'\t'));
        if continuation {
            if !dropping {
                out.extend_from_slice(line);
            }
            continue;
        }
        dropping = false;
        if i > 0 && is_via_line(line) {
            if !replaced {
                out.extend_from_slice(format!("Via: {via}\r\n").as_bytes());
                replaced = true;
                dropping = true;
                continue;
            }
            if all {
                dropping = true;
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(rest);
    out
}

#[test]
fn via_rewrite_replaces_only_the_via_fields() {
    let m = b"INVITE sip:a@b SIP/2.0\r\nVia  : SIP / 2.0\r\n /UDP x\r\nTo: <sip:a@b>\r\nv: SIP/2.0/TCP y ;\r\n branch=z\r\nContent-Length: 2\r\n\r\nv=";
    let one = rewrite_via(m, "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq;rport", false);
    assert_eq!(
        String::from_utf8(one).unwrap(),
        "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq;rport\r\nTo: <sip:a@b>\r\nv: SIP/2.0/TCP y ;\r\n branch=z\r\nContent-Length: 2\r\n\r\nv="
    );
    let all = rewrite_via(m, "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq;rport", true);
    assert_eq!(
        String::from_utf8(all).unwrap(),
        "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq;rport\r\nTo: <sip:a@b>\r\nContent-Length: 2\r\n\r\nv="
    );
}

#[test]
fn every_rfc4475_message_gets_the_answer_rfc_4475_requires_from_the_live_switch() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    // One socket per message so a late answer cannot be blamed on the next.
    for (name, want) in table() {
        let raw = std::fs::read(corpus_dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut conn = Conn::udp(sw.addr());
        let via = format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
            conn.local(),
            unique()
        );
        let msg = rewrite_via(&raw, &via, name == "wsinv.dat");
        conn.send(&msg);
        let wait = match want {
            Expect::Silent => Duration::from_secs(1),
            _ => Duration::from_secs(2),
        };
        let got: Option<SipMsg> = conn.recv_final(wait);
        let status = got.as_ref().and_then(SipMsg::status);
        seen.push(format!(
            "{name}: {}",
            status.map_or("no reply".into(), |s| s.to_string())
        ));
        let ok = match want {
            Expect::Silent => got.is_none(),
            Expect::Status(code) => status == Some(code),
            Expect::Accept => matches!(status, Some(s) if s != 400),
        };
        if !ok {
            failures.push(format!(
                "{name}: want {want:?}, got {}",
                got.map_or("no reply".into(), |m| m.start)
            ));
        }
    }
    eprintln!("live RFC 4475 outcomes:\n{}", seen.join("\n"));
    let mut probe = Conn::udp(sw.addr());
    let options = probe.options();
    assert_eq!(
        options.as_ref().and_then(SipMsg::status),
        Some(200),
        "the switch no longer answers OPTIONS after the torture run; log:\n{}",
        sw.log()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What each acceptable request gets from this switch, method by method:
/// REGISTERs are challenged (401), new INVITEs are challenged (407),
/// OPTIONS are answered (200), MESSAGE is not allowed (405), and the
/// INVITE of wsinv carries a To tag of a dialog that does not exist, so
/// RFC 3261 §12.2.2 owes 481.
const METHOD_ANSWERS: &[(&str, u16)] = &[
    ("wsinv.dat", 481),
    ("esc01.dat", 407),
    ("escnull.dat", 401),
    ("lwsdisp.dat", 200),
    ("longreq.dat", 407),
    ("dblreq.dat", 401),
    ("semiuri.dat", 200),
    ("transports.dat", 200),
    ("mpart01.dat", 405),
    ("baddate.dat", 407),
    ("badbranch.dat", 200),
    ("regaut01.dat", 401),
    ("zeromf.dat", 200),
    ("cparam01.dat", 401),
    ("cparam02.dat", 401),
    ("regescrt.dat", 401),
    ("inv2543.dat", 407),
];

#[test]
fn acceptable_requests_get_their_method_specific_answer() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    let mut failures = Vec::new();
    for (name, want) in METHOD_ANSWERS {
        let raw = std::fs::read(corpus_dir().join(name)).unwrap();
        let mut conn = Conn::udp(sw.addr());
        let via = format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
            conn.local(),
            unique()
        );
        conn.send(&rewrite_via(&raw, &via, *name == "wsinv.dat"));
        let got = conn.recv_final(Duration::from_secs(2));
        let status = got.as_ref().and_then(SipMsg::status);
        if status != Some(*want) {
            failures.push(format!("{name}: want {want}, got {status:?}"));
            continue;
        }
        let Some(m) = got else { continue };
        let challenge = match want {
            401 => m.header("www-authenticate"),
            407 => m.header("proxy-authenticate"),
            _ => continue,
        };
        let challenge = challenge.unwrap_or_default();
        match carillon_digest::Challenge::parse(challenge) {
            Ok(c) if c.qop_auth => {}
            other => failures.push(format!(
                "{name}: unusable challenge {challenge:?}: {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn baddn_with_its_empty_line_restored_is_answered_400() {
    // The corpus copy of baddn.dat ends without the empty line that closes
    // the header section; with it, the unquoted display names must still
    // get 400 (RFC 4475 §3.1.2.15).
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    let mut raw = std::fs::read(corpus_dir().join("baddn.dat")).unwrap();
    assert!(!raw.ends_with(b"\r\n\r\n"));
    raw.extend_from_slice(b"\r\n");
    let mut conn = Conn::udp(sw.addr());
    let via = format!(
        "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
        conn.local(),
        unique()
    );
    conn.send(&rewrite_via(&raw, &via, false));
    let got = conn.recv_final(Duration::from_secs(2));
    assert_eq!(got.as_ref().and_then(SipMsg::status), Some(400), "{got:?}");
}
