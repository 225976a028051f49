//! The AMI-compatible interface (issue 16) through real AMI client
//! libraries and a raw socket, against the real binary and a real call.
//!
//! - panoramisk (PyPI) and asterisk-manager (npm), both connected at once:
//!   a wrong secret is refused, plain login (and with panoramisk the MD5
//!   challenge) is accepted, Ping pongs; while two baresip phones call each
//!   other (100 → 101) and 100 sends an RFC 4733 digit, both receive
//!   Newchannel, Newstate, DialBegin/End, BridgeEnter, DTMFBegin/End and
//!   Hangup with the channel names, Uniqueid and Linkedid of the switch's
//!   own events (the event file), each channel's events in order, and
//!   CoreShowChannels during the call lists both channels.
//! - A raw client sending bare LF, as VICIdial's scripts do: banner, login,
//!   an action the switch does not offer yet is refused with Asterisk's
//!   error (never a fake success), garbage is answered and the session
//!   goes on; 20 connections in a row each log in, ping and log off.
//!
//! The client libraries are installed by `tests/run.sh`
//! (`tests/ami/install-clients.sh`, under `target/ami-clients/`).

mod callsupport;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::*;
use carillon_events::{Direction, SwitchEvent};
use serde_json::Value;

/// Where `tests/ami/install-clients.sh` put the client libraries.
fn clients_dir() -> PathBuf {
    std::env::var_os("CARILLON_AMI_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/ami-clients"))
}

/// The venv's python with panoramisk and the node_modules with
/// asterisk-manager, or the reason they are missing (a failure under
/// `tests/run.sh`, a reported skip otherwise).
fn clients() -> Option<(PathBuf, PathBuf)> {
    let dir = clients_dir();
    let python = dir.join("venv/bin/python");
    let modules = dir.join("node/node_modules");
    let ok = python.exists() && modules.join("asterisk-manager").exists() && have("node");
    if ok {
        return Some((python, modules));
    }
    let why = format!(
        "AMI client libraries not installed in {} (run tests/ami/install-clients.sh)",
        dir.display()
    );
    assert!(!peers_required(), "{why}");
    report_skip("ami (panoramisk, asterisk-manager)", &why);
    None
}

/// The JSON lines a client script printed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn find<'a>(out: &'a [Value], kind: &str) -> &'a Value {
    out.iter()
        .find(|v| v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind:?} line in {out:#?}"))
}

/// Waits (bounded) until a client printed `{"kind": "ready"}`.
fn wait_ready(client: &Bg, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.stdout().contains("\"kind\": \"ready\"")
        && !client.stdout().contains("\"kind\":\"ready\"")
    {
        assert!(
            Instant::now() < deadline,
            "{name} not ready; stdout:\n{}\nstderr:\n{}",
            client.stdout(),
            client.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The events (headers) a client received, with the header names as
/// that library gives them (`key` is matched case-insensitively).
fn events(out: &[Value]) -> Vec<&serde_json::Map<String, Value>> {
    out.iter()
        .filter(|v| v["kind"] == "event")
        .filter_map(|v| v["headers"].as_object())
        .collect()
}

fn get<'a>(h: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// What the switch itself reported of the call: each channel's name
/// (Asterisk's form), uniqueid and linkedid.
struct Leg {
    channel: String,
    uniqueid: String,
    linkedid: String,
}

fn legs(sw: &Switch) -> (Leg, Leg) {
    let created = sw.wait_events(2, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::ChannelCreated { .. })
    });
    let leg = |want: Direction| {
        created
            .iter()
            .find_map(|r| match &r.event {
                SwitchEvent::ChannelCreated {
                    channel,
                    uniqueid,
                    linkedid,
                    direction,
                    ..
                } if *direction == want => Some(Leg {
                    channel: channel.replacen("SIP/", "PJSIP/", 1),
                    uniqueid: uniqueid.clone(),
                    linkedid: linkedid.clone(),
                }),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {want:?} channel_created in {created:?}"))
    };
    (leg(Direction::Inbound), leg(Direction::Outbound))
}

/// Checks one client's view of the call against the switch's.
fn check_call(name: &str, out: &[Value], a: &Leg, b: &Leg) {
    let evs = events(out);
    let of = |leg: &Leg| -> Vec<&str> {
        evs.iter()
            .filter(|h| get(h, "Channel") == leg.channel)
            .map(|h| get(h, "Event"))
            .collect()
    };
    for leg in [a, b] {
        let seen: Vec<_> = evs
            .iter()
            .filter(|h| get(h, "Channel") == leg.channel)
            .collect();
        assert!(
            !seen.is_empty(),
            "{name}: no event of {}: {evs:#?}",
            leg.channel
        );
        for h in &seen {
            assert_eq!(get(h, "Uniqueid"), leg.uniqueid, "{name}: {h:?}");
            assert_eq!(get(h, "Linkedid"), leg.linkedid, "{name}: {h:?}");
        }
    }
    assert_eq!(a.linkedid, b.linkedid);
    // Each channel's events in the order Asterisk sends them.
    let order = |names: &[&str], want: &[&str]| {
        let mut at = 0;
        for w in want {
            match names[at..].iter().position(|n| n == w) {
                Some(i) => at += i + 1,
                None => panic!("{name}: {w} missing or out of order in {names:?}"),
            }
        }
    };
    let a_names = of(a);
    order(
        &a_names,
        &[
            "Newchannel",
            "Newexten",
            "DialBegin",
            "DialEnd",
            "BridgeEnter",
            "DTMFBegin",
            "DTMFEnd",
            "Hangup",
        ],
    );
    order(&a_names, &["Newchannel", "Newstate", "Hangup"]);
    let b_names = of(b);
    order(
        &b_names,
        &["Newchannel", "Newstate", "BridgeEnter", "Hangup"],
    );
    let newchannel_a = evs
        .iter()
        .find(|h| get(h, "Event") == "Newchannel" && get(h, "Channel") == a.channel)
        .unwrap();
    assert_eq!(get(newchannel_a, "CallerIDNum"), "100", "{name}");
    assert_eq!(get(newchannel_a, "Exten"), "101", "{name}");
    assert_eq!(get(newchannel_a, "Context"), "internal", "{name}");
    assert_eq!(get(newchannel_a, "ChannelStateDesc"), "Ring", "{name}");
    let up_b = evs
        .iter()
        .find(|h| get(h, "Event") == "Newstate" && get(h, "Channel") == b.channel)
        .unwrap();
    assert!(
        ["Ringing", "Up"].contains(&get(up_b, "ChannelStateDesc")),
        "{name}: {up_b:?}"
    );
    let dial_end = evs.iter().find(|h| get(h, "Event") == "DialEnd").unwrap();
    assert_eq!(get(dial_end, "DestChannel"), b.channel, "{name}");
    assert_eq!(get(dial_end, "DialStatus"), "ANSWER", "{name}");
    let dtmf_end = evs.iter().find(|h| get(h, "Event") == "DTMFEnd").unwrap();
    assert_eq!(get(dtmf_end, "Digit"), "5", "{name}");
    assert_eq!(get(dtmf_end, "Direction"), "Received", "{name}");
    assert!(
        get(dtmf_end, "DurationMs").parse::<u64>().is_ok(),
        "{name}: {dtmf_end:?}"
    );
    let hangups: Vec<_> = evs.iter().filter(|h| get(h, "Event") == "Hangup").collect();
    assert_eq!(hangups.len(), 2, "{name}");
    for h in hangups {
        assert_eq!(get(h, "Cause"), "16", "{name}: {h:?}");
        assert_eq!(get(h, "Cause-txt"), "Normal Clearing", "{name}: {h:?}");
    }
    // CoreShowChannels while the call was up: both channels, one list.
    let list = find(out, "list")["packets"]
        .as_array()
        .expect("list packets")
        .iter()
        .filter_map(Value::as_object)
        .collect::<Vec<_>>();
    let items: Vec<_> = list
        .iter()
        .filter(|p| get(p, "Event") == "CoreShowChannel")
        .collect();
    let mut listed: Vec<&str> = items.iter().map(|p| get(p, "Channel")).collect();
    listed.sort_unstable();
    let mut want = vec![a.channel.as_str(), b.channel.as_str()];
    want.sort_unstable();
    assert_eq!(listed, want, "{name}: {list:#?}");
    let complete = list
        .iter()
        .find(|p| get(p, "Event") == "CoreShowChannelsComplete")
        .unwrap_or_else(|| panic!("{name}: no CoreShowChannelsComplete in {list:#?}"));
    assert_eq!(get(complete, "EventList"), "Complete", "{name}");
    assert_eq!(get(complete, "ListItems"), "2", "{name}");
    let ids: Vec<&str> = list.iter().map(|p| get(p, "ActionID")).collect();
    assert!(
        !ids[0].is_empty() && ids.iter().all(|i| *i == ids[0]),
        "{name}: every list packet carries the ActionID: {ids:?}"
    );
}

#[test]
fn ami_client_libraries_log_in_and_follow_a_real_call_with_asterisk_events() {
    require_baresip();
    let Some((python, node_modules)) = clients() else {
        return;
    };
    let mut env = CallEnv::new(&Options {
        security: md5_only(),
        ..Options::default()
    });
    let mut sw = env.start();
    assert!(
        sw.log().contains("AMI listener ready"),
        "no AMI listener:\n{}",
        sw.log()
    );
    let port = env.ami_port.to_string();
    let scripts = repo_root().join("tests/ami");
    let mut py = Command::new(&python);
    py.arg(scripts.join("panoramisk_client.py"))
        .args(["127.0.0.1", &port, "60"]);
    let mut py = Bg::spawn(py, env.path(), "panoramisk", Duration::from_secs(90));
    let mut js = Command::new("node");
    js.arg(scripts.join("asterisk_manager_client.js"))
        .args(["127.0.0.1", &port, "60"])
        .env("NODE_PATH", &node_modules);
    let mut js = Bg::spawn(js, env.path(), "asterisk-manager", Duration::from_secs(90));
    wait_ready(&py, "panoramisk");
    wait_ready(&js, "asterisk-manager");

    // A real call: 100 → 101, a digit, hang up.
    let mut p100 = Baresip::start(&env, &BaresipSpec::new("100", "changeme100", 600.0));
    let mut p101 = Baresip::start(&env, &BaresipSpec::new("101", "changeme101", 1400.0));
    p100.command("dial", &format!("sip:101@127.0.0.1:{}", env.port));
    assert!(
        p100.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15))
            && p101.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(5)),
        "call 100 → 101 not established\nswitch log:\n{}",
        sw.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    p100.command("sndcode", "5");
    assert_eq!(
        sw.wait_dtmf(1, Duration::from_secs(10)).len(),
        1,
        "no digit reached the switch:\n{}",
        sw.log()
    );
    // Both clients listed the channels while the call was up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(py.stdout().contains("\"kind\": \"list\"") && js.stdout().contains("\"kind\":\"list\""))
    {
        assert!(
            Instant::now() < deadline,
            "CoreShowChannels not answered during the call\npanoramisk:\n{}\n{}\nasterisk-manager:\n{}\n{}",
            py.stdout(),
            py.stderr(),
            js.stdout(),
            js.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p100.command("hangup", "");
    assert!(p100.wait_event("CALL_CLOSED", 1, Duration::from_secs(10)));
    assert!(p101.wait_event("CALL_CLOSED", 1, Duration::from_secs(10)));
    let py_run = py.wait();
    let js_run = js.wait();
    p100.stop();
    p101.stop();
    let (a, b) = legs(&sw);
    // CARILLON_AMI_DUMP=DIR keeps what both clients printed (debugging).
    if let Some(dir) = std::env::var_os("CARILLON_AMI_DUMP") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::write(dir.join("panoramisk.jsonl"), &py_run.stdout);
        let _ = std::fs::write(dir.join("asterisk-manager.jsonl"), &js_run.stdout);
    }

    // panoramisk.
    let out = lines(&py_run.stdout);
    assert!(
        py_run.ok(),
        "panoramisk client failed:\n{}\n{}",
        py_run.stdout,
        py_run.stderr
    );
    assert!(!out.iter().any(|v| v["kind"] == "timeout"), "{out:#?}");
    let wrong = find(&out, "wrong_login");
    assert_eq!(wrong["authenticated"], false);
    assert_eq!(wrong["response"]["Response"], "Error");
    assert_eq!(wrong["response"]["Message"], "Authentication failed");
    let md5 = find(&out, "md5_login");
    assert!(md5["challenge"]["Challenge"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert_eq!(md5["response"]["Response"], "Success", "{md5}");
    let login = find(&out, "login");
    assert_eq!(login["authenticated"], true, "{login}");
    let ping = find(&out, "ping");
    assert_eq!(ping["response"]["Ping"], "Pong", "{ping}");
    assert!(ping["response"]["Timestamp"]
        .as_str()
        .is_some_and(|t| t.contains('.')));
    check_call("panoramisk", &out, &a, &b);

    // asterisk-manager.
    let out = lines(&js_run.stdout);
    assert!(
        js_run.ok(),
        "asterisk-manager client failed:\n{}\n{}",
        js_run.stdout,
        js_run.stderr
    );
    assert!(!out.iter().any(|v| v["kind"] == "timeout"), "{out:#?}");
    let wrong = find(&out, "wrong_login");
    assert_eq!(wrong["err"]["message"], "Authentication failed", "{wrong}");
    assert_eq!(find(&out, "login")["err"], Value::Null);
    assert_eq!(find(&out, "ping")["response"]["ping"], "Pong");
    assert_eq!(
        find(&out, "unknown")["response"]["message"],
        "Invalid/unknown command: Originate. Use Action: ListCommands to show available commands."
    );
    check_call("asterisk-manager", &out, &a, &b);

    // Secrets never reach the log; failed logins do (with the user name).
    let log = sw.log();
    assert!(!log.contains("changeme-ami"), "secret logged:\n{log}");
    assert!(log.contains("AMI login failed"), "{log}");
    sw.stop();
}

/// Reads packets (blank-line terminated) until `n` have arrived or
/// `timeout`; the text read.
fn read_packets(s: &mut TcpStream, n: usize, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("\r\n\r\n").count() < n && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => text.push_str(&String::from_utf8_lossy(&buf[..k])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    text
}

#[test]
fn a_raw_bare_lf_client_logs_in_gets_errors_for_unknown_actions_and_garbage_and_may_connect_per_action(
) {
    let mut env = CallEnv::new(&Options::default());
    let mut sw = env.start();
    let mut s = TcpStream::connect(("127.0.0.1", env.ami_port)).expect("connect to AMI");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut banner = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut banner)
        .expect("banner");
    let version = banner
        .trim_end()
        .strip_prefix("Asterisk Call Manager/")
        .unwrap_or_else(|| panic!("banner {banner:?}"));
    assert!(
        version.split('.').next().is_some_and(|m| m.len() == 1),
        "single-digit major version: {banner:?}"
    );
    s.write_all(
        b"Action: Login\nActionID: 1\nUsername: dialer\nSecret: changeme-ami\nEvents: off\n\n",
    )
    .unwrap();
    let text = read_packets(&mut s, 1, Duration::from_secs(5));
    assert!(
        text.starts_with(
            "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n"
        ),
        "{text:?}"
    );
    s.write_all(b"Action: Redirect\nActionID: 2\nChannel: PJSIP/100-00000001\nExtraChannel: PJSIP/101-00000002\n\n")
        .unwrap();
    let text = read_packets(&mut s, 1, Duration::from_secs(5));
    assert!(
        text.starts_with(
            "Response: Error\r\nActionID: 2\r\nMessage: Invalid/unknown command: Redirect."
        ),
        "{text:?}"
    );
    let mut junk = vec![b'z'; 3000];
    junk.extend_from_slice(b"\n\n\x00\xff\xfe: \n\nAction: Ping\nActionID: 3\n\n");
    s.write_all(&junk).unwrap();
    let text = read_packets(&mut s, 3, Duration::from_secs(5));
    assert!(text.contains("Message: line too long"), "{text:?}");
    assert!(text.contains("Ping: Pong"), "{text:?}");
    s.write_all(b"Action: Logoff\n\n").unwrap();
    let text = read_packets(&mut s, 1, Duration::from_secs(5));
    assert!(text.starts_with("Response: Goodbye"), "{text:?}");
    // A dialer that opens a connection per action (VICIdial): 20 in a row,
    // each logs in, pings and logs off.
    for i in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", env.ami_port)).expect("connect to AMI");
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        c.write_all(
            format!("Action: Login\nUsername: dialer\nSecret: changeme-ami\nEvents: off\n\nAction: Ping\nActionID: burst-{i}\n\nAction: Logoff\n\n")
                .as_bytes(),
        )
        .unwrap();
        let text = read_packets(&mut c, 3, Duration::from_secs(5));
        assert!(
            text.contains("Message: Authentication accepted")
                && text.contains(&format!("ActionID: burst-{i}\r\nPing: Pong"))
                && text.contains("Response: Goodbye"),
            "connection {i}: {text:?}"
        );
    }
    // The switch closed the connection.
    let mut rest = [0u8; 16];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match s.read(&mut rest) {
            Ok(0) => break,
            _ if Instant::now() >= deadline => panic!("connection not closed after Logoff"),
            _ => {}
        }
    }
    sw.stop();
}

/// A SIPp call 100 → 101 hung up with the AMI `Hangup` action from the
/// raw client (channel in Asterisk's `PJSIP/` form, `Cause: 17`): Asterisk's
/// `Channel Hungup` answer, both SIPp phones get their BYE, the hangup
/// events carry the cause, the switch is idle; the same action again gets
/// `No such channel`.
#[test]
fn the_hangup_action_ends_a_real_call_with_its_cause() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let sw = env.start();
    let (uas_sip, uas_media) = (free_port_span(1), free_port_span(3));
    sipp_register(&sw, env.path(), "101", PW101, uas_sip);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 1);
    let mut uac = sipp_100_dials(
        &env,
        &sw,
        "uac",
        "calls_uac_wait_bye.xml",
        "101",
        Duration::from_secs(20),
    );
    // The callee's channel, once both are up (from the API's list).
    let deadline = Instant::now() + Duration::from_secs(10);
    let callee = loop {
        let r = callsupport::http::http(
            sw.api,
            "GET",
            "/api/v1/channels",
            Some(callsupport::http::API_TOKEN),
            &[],
        )
        .unwrap();
        let v = r.json();
        let chans = v["channels"].as_array().unwrap().clone();
        if chans.len() == 2 && chans.iter().all(|c| c["state"] == "up") {
            break chans
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .find(|n| n.starts_with("SIP/101-"))
                .expect("callee channel");
        }
        assert!(
            Instant::now() < deadline,
            "channels never both up: {v}\n{}",
            describe(&env, &sw, &["uac", "uas"])
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ami_name = callee.replacen("SIP/", "PJSIP/", 1);

    let mut s = TcpStream::connect(("127.0.0.1", env.ami_port)).expect("connect to AMI");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"Action: Login\nUsername: dialer\nSecret: changeme-ami\nEvents: off\n\n")
        .unwrap();
    let text = read_packets(&mut s, 1, Duration::from_secs(5));
    assert!(text.contains("Authentication accepted"), "{text:?}");
    s.write_all(
        format!("Action: Hangup\nActionID: h1\nChannel: {ami_name}\nCause: 17\n\n").as_bytes(),
    )
    .unwrap();
    let text = read_packets(&mut s, 1, Duration::from_secs(5));
    assert!(
        text.starts_with("Response: Success\r\nActionID: h1\r\nMessage: Channel Hungup\r\n"),
        "{text:?}"
    );
    let (run_uac, run_uas) = (uac.wait(), uas.wait());
    assert!(
        run_uac.ok() && run_uas.ok(),
        "uac {:?} uas {:?}\n{}",
        run_uac.status,
        run_uas.status,
        describe(&env, &sw, &["uac", "uas"])
    );
    let hangups = sw.wait_events(2, Duration::from_secs(5), |e| {
        matches!(e, SwitchEvent::Hangup { .. })
    });
    assert_eq!(hangups.len(), 2, "{hangups:?}");
    assert!(
        hangups
            .iter()
            .any(|e| matches!(&e.event, SwitchEvent::Hangup { cause: 17, .. })),
        "{hangups:?}"
    );
    s.write_all(format!("Action: Hangup\nActionID: h2\nChannel: {ami_name}\n\n").as_bytes())
        .unwrap();
    let text = read_packets(&mut s, 1, Duration::from_secs(5));
    assert!(
        text.starts_with("Response: Error\r\nActionID: h2\r\nMessage: No such channel\r\n"),
        "{text:?}"
    );
    // The connection closed first: it is one of the switch's tasks.
    drop(s);
    sw.assert_idle(Duration::from_secs(10));
}
