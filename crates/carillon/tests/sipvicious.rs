//! sipvicious against the switch: `svwar` must not tell existing
//! extensions from non-existent ones, and `svcrack` must be banned (after
//! `max_auth_failures` wrong answers) long before it reaches the right
//! password. Our own probes check the same two properties directly.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{have, run_tool, unique, Conn, Env, Options, Phone, SipMsg};

const EXISTING: &[&str] = &["100", "101", "8013"];

/// Extensions svwar reports, with the rest of their table row
/// (`| 100 | reqauth |`), from its stdout and stderr.
fn reported(output: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in output.lines() {
        let cells: Vec<&str> = line
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if let Some((first, rest)) = cells.split_first() {
            if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
                out.insert((*first).to_owned(), rest.join("|"));
            }
        }
    }
    out
}

#[test]
fn svwar_table_parsing_reads_extension_rows() {
    let table = "+-----------+----------------+\n| Extension | Authentication |\n+===========+================+\n| 100       | reqauth        |\n| 5000      | reqauth        |\n+-----------+----------------+\n";
    let r = reported(table);
    assert_eq!(r.len(), 2);
    assert_eq!(r.get("100").map(String::as_str), Some("reqauth"));
}

fn svwar(env: &Env, port: u16, method: &str, ranges: &str) -> String {
    let mut cmd = Command::new("svwar");
    cmd.current_dir(env.path())
        .args(["--force", "-v", "-x", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", method, "-e", ranges, "--maximumtime", "5"])
        .arg("127.0.0.1");
    let run = run_tool(
        cmd,
        env.path(),
        &format!("svwar-{method}"),
        Duration::from_secs(60),
    );
    assert!(run.status.is_some(), "svwar did not finish within 60 s");
    format!("{}\n{}", run.stdout, run.stderr)
}

#[test]
fn svwar_cannot_tell_existing_extensions_from_unknown_ones() {
    assert!(have("svwar"), "svwar is not installed (Debian sipvicious)");
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    // 100..=130 and 8000..=8020 hold 3 real extensions among 52.
    let ranges = "100-130,8000-8020";
    let all: Vec<String> = (100..=130)
        .chain(8000..=8020)
        .map(|n| n.to_string())
        .collect();
    for method in ["REGISTER", "INVITE"] {
        let output = svwar(&env, sw.port, method, ranges);
        eprintln!("svwar -m {method} printed:\n{output}");
        // It did reach the switch (otherwise "found nothing" means nothing).
        assert!(
            output.contains("Ok SIP device found"),
            "svwar -m {method} never talked to the switch:\n{output}"
        );
        let found = reported(&output);
        let existing: BTreeMap<_, _> = found
            .iter()
            .filter(|(e, _)| EXISTING.contains(&e.as_str()))
            .collect();
        let unknown: BTreeMap<_, _> = found
            .iter()
            .filter(|(e, _)| !EXISTING.contains(&e.as_str()))
            .collect();
        if found.is_empty() {
            continue;
        }
        // Reported at all: then every extension scanned, identically.
        let kinds: std::collections::BTreeSet<&String> = found.values().collect();
        assert!(
            found.len() == all.len() && kinds.len() == 1,
            "svwar -m {method} tells extensions apart: existing {existing:?}, unknown {unknown:?}"
        );
    }
}

/// A REGISTER (or INVITE) for `user` from a fresh socket: the response.
fn probe(server: SocketAddr, method: &str, user: &str, auth: Option<&str>) -> SipMsg {
    let mut conn = Conn::udp(server);
    let mut m = String::new();
    let _ = write!(
        m,
        "{method} sip:{to} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag={tag}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {cid}\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@{local}>\r\n",
        to = if method == "REGISTER" { "127.0.0.1".to_owned() } else { "999@127.0.0.1".to_owned() },
        via = conn.via(),
        tag = unique(),
        cid = unique(),
        local = conn.local(),
    );
    if let Some(a) = auth {
        let name = if method == "REGISTER" {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        let _ = write!(m, "{name}: {a}\r\n");
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    conn.request(&m)
        .unwrap_or_else(|| panic!("no answer to {method} for {user}"))
}

/// Status line and header names with their values, nonce, tags and
/// Call-ID blanked: what may differ between two identical challenges.
fn shape(m: &SipMsg) -> Vec<String> {
    let mut v = vec![m.start.clone()];
    for (n, val) in &m.headers {
        let val = match n.as_str() {
            "www-authenticate" | "proxy-authenticate" => val
                .split(',')
                .map(|p| {
                    if p.trim().starts_with("nonce=") {
                        "nonce=*".to_owned()
                    } else {
                        p.trim().to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            "via" | "from" | "to" | "call-id" | "contact" => "*".to_owned(),
            _ => val.clone(),
        };
        v.push(format!("{n}: {val}"));
    }
    v
}

#[test]
fn challenges_for_existing_and_unknown_users_have_the_same_shape() {
    let mut env = Env::new(&Options::default());
    let sw = env.start();
    for method in ["REGISTER", "INVITE"] {
        let known = probe(sw.addr(), method, "100", None);
        let unknown = probe(sw.addr(), method, "5555", None);
        assert_eq!(
            shape(&known),
            shape(&unknown),
            "{method} without credentials"
        );
        // A wrong answer to a real challenge: the same again.
        let status = known.status();
        assert!(matches!(status, Some(401 | 407)), "{}", known.raw);
        let header = if status == Some(401) {
            "www-authenticate"
        } else {
            "proxy-authenticate"
        };
        let ch = carillon_digest::Challenge::parse(known.header(header).unwrap()).unwrap();
        let uri = if method == "REGISTER" {
            "sip:127.0.0.1"
        } else {
            "sip:999@127.0.0.1"
        };
        let bad_known =
            carillon_digest::respond(&ch, method, uri, "100", "wrong-password", "abc", 1);
        let bad_unknown =
            carillon_digest::respond(&ch, method, uri, "5555", "wrong-password", "abc", 1);
        let a = probe(sw.addr(), method, "100", Some(&bad_known));
        let b = probe(sw.addr(), method, "5555", Some(&bad_unknown));
        assert_eq!(shape(&a), shape(&b), "{method} with wrong credentials");
    }
}

#[test]
fn svcrack_is_banned_before_it_finds_the_password() {
    assert!(
        have("svcrack"),
        "svcrack is not installed (Debian sipvicious)"
    );
    let mut env = Env::new(&Options::default().security("max_auth_failures", "5"));
    let sw = env.start();
    let mut words = String::new();
    for i in 0..40 {
        let _ = writeln!(words, "wrong{i:02}pass");
    }
    words.push_str("changeme100\n");
    let wordlist = env.path().join("words.txt");
    std::fs::write(&wordlist, words).unwrap();

    let mut cmd = Command::new("svcrack");
    cmd.current_dir(env.path())
        .args(["-x", "127.0.0.1", "-p", &sw.port.to_string()])
        .args(["-u", "100", "-d", &wordlist.display().to_string()])
        .args(["--maximumtime", "5"])
        .arg("127.0.0.1");
    let run = run_tool(cmd, env.path(), "svcrack", Duration::from_secs(90));
    eprintln!(
        "svcrack ({:?}, {:.1} s) printed:\n{}\n{}",
        run.status,
        run.elapsed.as_secs_f64(),
        run.stdout,
        run.stderr
    );
    assert!(run.status.is_some(), "svcrack did not finish within 90 s");
    let output = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        !output.contains("changeme100"),
        "svcrack found the password:\n{output}"
    );
    let log = sw.log();
    let failures = log.matches("authentication failed").count();
    assert!(
        failures >= 5,
        "svcrack never really tried passwords ({failures} failed authentications logged):\n{log}"
    );
    assert!(
        sw.wait_log(
            "source banned after failed authentications",
            Duration::from_secs(2)
        ),
        "no ban line in the log:\n{log}"
    );
    // The ban holds for 127.0.0.1 and nobody else: a phone on 127.0.0.2
    // still registers with the right password.
    let mut banned = Conn::udp(sw.addr());
    assert!(banned.options().is_none(), "banned source still answered");
    let mut other = Conn::udp_from("127.0.0.2:0".parse().unwrap(), sw.addr());
    let mut phone = Phone::new("100", "changeme100");
    let contact = format!("<sip:100@{}>", other.local());
    let ok = phone
        .register(&mut other, Some(&contact), Some(600))
        .expect("register from 127.0.0.2");
    assert_eq!(ok.status(), Some(200), "{}", ok.raw);
}
