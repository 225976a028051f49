//! Phones registered over TCP receive calls (issue 12; RFC 5626 §5 / RFC
//! 5923 style connection reuse):
//!
//! - baresip registers 101 with `;transport=tcp`; SIPp (UDP) as 100 calls
//!   it twice. The INVITE reaches baresip over the connection its REGISTER
//!   came on; in the first call baresip hangs up (its BYE comes to the
//!   switch over TCP, the caller gets a BYE), in the second the caller
//!   hangs up (the switch's BYE reaches baresip over TCP).
//! - A phone that registered over TCP and whose connection is gone (SIPp
//!   registered with `-t t1` and exited) is called at its Contact: the
//!   switch opens a new TCP connection to the Contact's address, where a
//!   SIPp UAS listening on TCP answers and later hangs up.
//! - When nothing listens at that Contact, the failed connection fails the
//!   INVITE at once (a transport error, RFC 3261 §8.1.3.1): the caller
//!   gets 503 within seconds, not after Timer B (32 s).

mod callsupport;

use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::*;

/// SIPp as phone 100 (UDP) dialling `number` with `scenario_file`
/// (fields: 100, credentials, number), in the background.
fn phone_100_dials(
    env: &CallEnv,
    sw: &Switch,
    name: &str,
    scenario_file: &str,
    number: &str,
) -> Bg {
    sipp_100_dials(
        env,
        sw,
        name,
        scenario_file,
        number,
        Duration::from_secs(30),
    )
}

/// The messages in a baresip SIP trace (`-s`): (transport, from, to,
/// start line) of each.
fn traced_messages(trace: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let mut lines = trace.lines();
    while let Some(line) = lines.next() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [t @ ("TCP" | "UDP"), from, "->", to] = parts.as_slice() {
            let start = lines
                .by_ref()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default();
            out.push((
                t.to_string(),
                from.to_string(),
                to.to_string(),
                start.to_owned(),
            ));
        }
    }
    out
}

/// The switch's `request` debug lines for `method`: their sources.
fn request_sources(sw: &Switch, method: &str) -> Vec<String> {
    sw.lines("request")
        .into_iter()
        .filter(|l| l.get("method") == Some(method))
        .filter_map(|l| l.get("source").map(str::to_owned))
        .collect()
}

#[test]
fn a_phone_registered_over_tcp_is_called_over_its_connection_and_byes_flow_over_tcp() {
    require_sipp();
    require_baresip();
    let mut env = CallEnv::new(&Options {
        security: md5_only(),
        rust_log: Some("info,carillon_b2bua=debug".into()),
        ..Options::default()
    });
    let mut sw = env.start();
    let mut p101 = Baresip::start(
        &env,
        &BaresipSpec {
            transport: "tcp",
            sip_trace: true,
            ..BaresipSpec::new("101", PW101, 1400.0)
        },
    );
    let registers = request_sources(&sw, "REGISTER");
    assert!(
        !registers.is_empty() && registers.iter().all(|s| s.starts_with("tcp:")),
        "baresip did not register over TCP: {registers:?}\n{}",
        sw.log()
    );
    let reg_source = registers.last().cloned().unwrap_or_default();

    // Call 1: 101 answers, then hangs up itself.
    let mut uac = phone_100_dials(&env, &sw, "uac-1", "calls_uac_wait_bye.xml", "101");
    let up = p101.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15));
    assert!(
        up,
        "baresip registered over TCP was not reached\nevents:\n{}\nbaresip:\n{}\n{}",
        p101.events,
        p101.log(),
        describe(&env, &sw, &["uac-1"])
    );
    std::thread::sleep(Duration::from_secs(2));
    p101.command("hangup", "");
    let run = uac.wait();
    assert!(
        run.ok(),
        "the caller did not get 101's hangup: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-1"])
    );
    assert!(p101.wait_event("CALL_CLOSED", 1, Duration::from_secs(5)));
    // 101's BYE came over TCP, from the connection it registered on.
    let byes = request_sources(&sw, "BYE");
    assert!(
        byes.iter().any(|s| s == &reg_source),
        "101's BYE did not come over its TCP connection {reg_source}: {byes:?}\n{}",
        sw.log()
    );

    // Call 2: the caller hangs up after 3 s; the switch's BYE goes to 101.
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let run = run_uac(&env, &sw, "uac-2", "uac_auth_pcap.xml", &[], 1, 1);
    assert!(
        run.ok(),
        "second call failed: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-2"])
    );
    let closed = p101.wait_event("CALL_CLOSED", 2, Duration::from_secs(10));
    assert!(
        closed && p101.count("CALL_ESTABLISHED") == 2,
        "101 did not get the second call and its BYE\nevents:\n{}\n{}",
        p101.events,
        sw.log()
    );
    let trace = p101.stop();
    // baresip's SIP trace: every message it sent or received, each after a
    // `TCP from -> to` (or `UDP …`) line.
    let messages = traced_messages(&trace);
    let switch = sw.addr().to_string();
    let phone = reg_source.trim_start_matches("tcp:");
    let over = |start: &str, from: &str, to: &str| {
        messages
            .iter()
            .filter(|(t, f, d, line)| t == "TCP" && f == from && d == to && line.starts_with(start))
            .count()
    };
    let why = || format!("{messages:#?}\n{}", sw.log());
    assert_eq!(
        over("INVITE ", &switch, phone),
        2,
        "both INVITEs must reach 101 over its registration connection; {}",
        why()
    );
    assert_eq!(
        over("BYE ", phone, &switch),
        1,
        "101's BYE over TCP; {}",
        why()
    );
    assert_eq!(
        over("BYE ", &switch, phone),
        1,
        "the switch's BYE over 101's connection; {}",
        why()
    );
    assert!(
        messages.iter().all(|(t, ..)| t == "TCP"),
        "baresip sent or received SIP over UDP; {}",
        why()
    );
    assert_calls_answered(&sw, 2);
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
}

/// 101 registers over TCP (SIPp `-t t1`) from one port, naming
/// `contact_port` in its Contact, and goes away (SIPp exits: the
/// connection closes).
fn register_101_over_tcp_and_leave(env: &CallEnv, sw: &Switch, contact_port: u16) {
    let reg_port = free_port_span(1);
    let csv = write_csv(
        env.path(),
        "reg-tcp.csv",
        &[auth_line("101", PW101, &[&contact_port.to_string()])],
    );
    let mut cmd = sipp_cmd(env.path(), "reg-tcp", reg_port);
    cmd.arg(sw.addr().to_string())
        .args(["-t", "t1", "-sf", &scenario("calls_register_tcp.xml")])
        .args(["-inf", &csv, "-m", "1", "-timeout", "10s"]);
    let run = run_tool(cmd, env.path(), "reg-tcp", Duration::from_secs(15));
    assert!(
        run.ok(),
        "SIPp could not register 101 over TCP: {:?}\n{}",
        run.status,
        describe(env, sw, &["reg-tcp"])
    );
}

#[test]
fn when_the_registration_connection_is_gone_the_switch_connects_to_the_contact() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let mut sw = env.start();
    let contact_port = free_port_span(1);
    register_101_over_tcp_and_leave(&env, &sw, contact_port);
    // The phone at its Contact: a SIPp UAS listening on TCP.
    let media = free_port_span(3);
    let mut cmd = sipp_cmd(env.path(), "uas-tcp", contact_port);
    cmd.args(["-t", "t1", "-sf", &scenario("calls_uas_bye.xml")])
        .args(["-mp", &media.to_string(), "-rtp_echo"])
        .args(["-m", "1", "-timeout", "30s"]);
    let mut uas = Bg::spawn(cmd, env.path(), "uas-tcp", Duration::from_secs(35));
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = phone_100_dials(&env, &sw, "uac", "calls_uac_wait_bye.xml", "101");
    let uac_run = uac.wait();
    let uas_run = uas.wait();
    let names = ["reg-tcp", "uas-tcp", "uac"];
    assert!(
        uas_run.ok(),
        "the phone was not called at its Contact over TCP: {:?}\n{}",
        uas_run.status,
        describe(&env, &sw, &names)
    );
    assert!(
        uac_run.ok(),
        "the caller did not get the callee's BYE: {:?}\n{}",
        uac_run.status,
        describe(&env, &sw, &names)
    );
    // The UAS got the INVITE over TCP (it has no other transport).
    let msgs = sipp_messages(env.path(), "uas-tcp");
    assert!(
        msgs.iter()
            .any(|m| m.contains("TCP message received") && m.contains("INVITE sip:")),
        "{}",
        describe(&env, &sw, &names)
    );
    assert_calls_answered(&sw, 1);
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
}

#[test]
fn a_contact_that_refuses_the_connection_fails_the_call_at_once() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let mut sw = env.start();
    // Nothing listens at the Contact (a port bound, then released).
    let contact_port = free_port_span(1);
    register_101_over_tcp_and_leave(&env, &sw, contact_port);
    let started = std::time::Instant::now();
    let mut uac = phone_100_dials(&env, &sw, "uac", "calls_uac_unreachable.xml", "101");
    let run = uac.wait();
    let took = started.elapsed();
    assert!(
        run.ok(),
        "the caller was not refused 503: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["reg-tcp", "uac"])
    );
    assert!(
        took < Duration::from_secs(10),
        "the refused connection did not fail the INVITE at once ({took:?})"
    );
    let ended = sw.wait_calls_ended(1, Duration::from_secs(5));
    let bridged = sw.bridged();
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    assert_eq!(ended.len(), 1, "{:#?}\n{}", sw.events(), sw.log());
    assert!(
        bridged.is_empty(),
        "the call was not answered: {:#?}",
        sw.events()
    );
}
