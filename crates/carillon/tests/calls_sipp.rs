//! Calls through the real switch with SIPp on both sides: extension 100
//! (SIPp UAC, digest-authenticated INVITE) dials 101 (a SIPp UAS that
//! registered its socket first), the dialplan context `internal` routes it
//! to `user/101`, and the B2BUA bridges the two legs through its RTP relay.
//!
//! Covered: answered calls with a G.711 pcap played and echoed back (SIPp
//! counts and the relay's per-leg packet counts), RTP sent and received by
//! the test itself through the relay (raw count and the echoed tone),
//! CANCEL before answer (487, the callee sees the CANCEL, relay ports are
//! released), BYE from the callee, hold/resume by re-INVITE, early media
//! (183 with SDP, media relayed before the answer), 100rel/PRACK on both
//! legs, a session timer refreshed by the switch, one its refresher (the
//! caller) lets lapse (the switch hangs up a third of the interval early),
//! and a per-user `max_calls` limit (486), and the switch events of a basic
//! call (`[events] file`: channels created, ringing, up, bridged,
//! unbridged, hangups with cause 16, one linkedid). After each, the switch
//! must have logged `call ended` exactly once per call, and its `/metrics`
//! must show no call, RTP port or client transaction left.

mod callsupport;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callsupport::*;

/// Every `call ended` line; asserts their number (bounded wait).
fn calls_ended(sw: &Switch, expected: usize) -> Vec<LogLine> {
    let ended = sw.wait_lines("call ended", expected, Duration::from_secs(10));
    assert_eq!(
        ended.len(),
        expected,
        "expected {expected} `call ended` lines; log:\n{}",
        sw.log()
    );
    ended
}

/// After the switch stopped: still exactly `expected` `call ended` lines
/// (no call ended twice, none ended late).
fn assert_ended_once(sw: &mut Switch, expected: usize) {
    // Nothing left: no call, RTP port or client transaction, and the
    // API runtime's tasks back to their number before the calls.
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    let ended = sw.lines("call ended");
    assert_eq!(
        ended.len(),
        expected,
        "`call ended` must be logged once per call; log:\n{}",
        sw.log()
    );
    let mut ids: Vec<&str> = ended.iter().filter_map(|l| l.get("call")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), expected, "a call ended twice:\n{}", sw.log());
}

/// µ-law RTP packet `seq` of a 440 Hz tone.
fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80u8, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for k in 0..160u32 {
        let t = f64::from(u32::from(seq) * 160 + k) / 8000.0;
        let s = (8000.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16;
        p.push(carillon_codec::ulaw_encode(s));
    }
    p
}

#[test]
fn sipp_calls_through_the_relay_carry_echoed_rtp_on_both_legs() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 6);

    // Five calls at once, each playing 2 s of G.711 (100 packets) that the
    // UAS echoes back.
    let run = run_uac(&env, &sw, "uac-pcap", "uac_auth_pcap.xml", &[], 5, 5);
    let stats = sipp_stats(env.path(), "uac-pcap");
    eprintln!(
        "uac-pcap: {:?} in {:.1} s",
        run.status,
        run.elapsed.as_secs_f64()
    );
    assert!(
        run.ok() && sipp_count(&stats, "SuccessfulCall") == 5,
        "SIPp UAC: status {:?}, successful {}, failed {}\n{}",
        run.status,
        sipp_count(&stats, "SuccessfulCall"),
        sipp_count(&stats, "FailedCall"),
        describe(&env, &sw, &["uac-pcap", "uas"])
    );
    assert_eq!(sipp_count(&stats, "FailedCall"), 0);
    let ended = calls_ended(&sw, 5);
    assert!(
        ended
            .iter()
            .all(|l| l.get("disposition") == Some("ANSWERED")),
        "every call must end ANSWERED:\n{}",
        sw.log()
    );
    let legs = sw.wait_lines("media leg closed", 10, Duration::from_secs(5));
    assert_eq!(legs.len(), 10, "two media legs per call:\n{}", sw.log());
    for leg in &legs {
        let (i, o) = (
            leg.num("packets_in").unwrap_or(-1),
            leg.num("packets_out").unwrap_or(-1),
        );
        // 100 packets played; each leg receives them (caller's or the
        // echo) and sends them on. Loopback loses nothing in practice;
        // allow a little anyway.
        assert!(
            i >= 90 && o >= 90,
            "relay leg did not carry the call's RTP both ways: {}\nlog:\n{}",
            leg.raw,
            sw.log()
        );
    }

    // One more call whose media the test sends itself: the echo must come
    // back through the relay to the address in the caller's SDP, carrying
    // the tone that was sent.
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind RTP socket");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let (mut uac, relay_port) = start_echo_caller(&env, &sw, rtp_port);
    let relay = SocketAddr::from(([127, 0, 0, 1], relay_port));
    let receiver = rtp.try_clone().expect("clone socket");
    receiver
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let done = Arc::new(AtomicBool::new(false));
    let done2 = Arc::clone(&done);
    let reader = std::thread::spawn(move || {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut buf = [0u8; 2048];
        while !done2.load(Ordering::SeqCst) {
            if let Ok((n, _)) = receiver.recv_from(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    });
    let start = Instant::now();
    for seq in 0..100u16 {
        rtp.send_to(&rtp_packet(seq, 0x5eed_0001), relay)
            .expect("send RTP");
        let next = start + Duration::from_millis(20 * (u64::from(seq) + 1));
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::SeqCst);
    let got = reader.join().expect("reader thread");
    let run = uac.wait();
    assert!(
        run.ok(),
        "echo call failed: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-echo", "uas"])
    );
    let rtp_got: Vec<&Vec<u8>> = got
        .iter()
        .filter(|p| p.len() == 172 && p[0] >> 6 == 2 && p[1] & 0x7f == 0)
        .collect();
    eprintln!(
        "echo call: sent 100 RTP packets, {} came back ({} datagrams in all)",
        rtp_got.len(),
        got.len()
    );
    assert!(
        rtp_got.len() >= 90,
        "only {} of 100 RTP packets came back through the relay\n{}",
        rtp_got.len(),
        describe(&env, &sw, &["uac-echo", "uas"])
    );
    let samples: Vec<i16> = rtp_got
        .iter()
        .flat_map(|p| p[12..].iter().map(|b| carillon_codec::ulaw_decode(*b)))
        .collect();
    let wav = Wav {
        rate: 8000,
        channels: 1,
        samples,
    };
    let report = tone_report(&wav, 440.0, 1000.0);
    assert!(
        report.expected * 10 >= report.blocks * 9,
        "the echoed audio is not the 440 Hz tone that was sent: {report:?}"
    );

    let uas_run = uas.wait();
    assert!(
        uas_run.ok(),
        "SIPp UAS: {:?}\n{}",
        uas_run.status,
        describe(&env, &sw, &["uas"])
    );
    calls_ended(&sw, 6);
    assert_ended_once(&mut sw, 6);
}

/// The `m=audio` port of the first message in a SIPp trace that matches.
fn sdp_port(messages: &[String], needle: &str) -> Option<u16> {
    messages
        .iter()
        .filter(|m| m.contains(needle))
        .find_map(|m| {
            m.lines()
                .find_map(|l| l.trim().strip_prefix("m=audio "))
                .and_then(|rest| rest.split(' ').next())
                .and_then(|p| p.parse().ok())
        })
}

#[test]
fn cancel_before_answer_gets_487_reaches_the_callee_and_releases_the_call() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    let mut uas = start_uas(
        &env,
        "uas-cancel",
        Some("calls_uas_cancel.xml"),
        uas_sip,
        uas_media,
        1,
    );
    let run = run_uac(&env, &sw, "uac-cancel", "calls_uac_cancel.xml", &[], 1, 1);
    let uas_run = uas.wait();
    // Everything is checked before failing, so that one report shows all
    // that went wrong.
    let mut problems: Vec<String> = Vec::new();
    if !run.ok() {
        problems.push(format!(
            "the caller's CANCEL did not end in 200 + 487 (or the 487 was retransmitted after its ACK): SIPp {:?}",
            run.status
        ));
    }
    let uas_msgs = sipp_messages(env.path(), "uas-cancel");
    let got = |start: &str| {
        uas_msgs
            .iter()
            .any(|m| m.contains("received") && m.lines().any(|l| l.trim().starts_with(start)))
    };
    if !got("CANCEL ") {
        problems.push("the callee never got a CANCEL".into());
    }
    if !got("ACK ") {
        let sent_487 = uas_msgs
            .iter()
            .filter(|m| m.contains("sent") && m.contains("SIP/2.0 487"))
            .count();
        problems.push(format!(
            "the switch never ACKed the callee's 487, sent {sent_487} times (RFC 3261 §17.1.1.3: the INVITE client transaction ACKs every non-2xx final)"
        ));
    }
    if !uas_run.ok() && problems.is_empty() {
        problems.push(format!("SIPp UAS failed: {:?}", uas_run.status));
    }
    let ended = calls_ended(&sw, 1);
    if ended[0].get("disposition") != Some("CANCEL") || ended[0].num("billsec") != Some(0) {
        problems.push(format!(
            "expected disposition=CANCEL billsec=0: {}",
            ended[0].raw
        ));
    }

    // The relay ports of the call (the callee leg's from the INVITE the
    // UAS got, the caller leg's if a response carried SDP) are free again.
    let mut ports = Vec::new();
    match sdp_port(&uas_msgs, "INVITE sip:") {
        Some(p) if (env.rtp.0..=env.rtp.1).contains(&p) => ports.push(p),
        Some(p) => problems.push(format!(
            "the callee leg's SDP port {p} is not from the relay range {:?}",
            env.rtp
        )),
        None => problems.push("the UAS got no INVITE with SDP".into()),
    }
    let uac_msgs = sipp_messages(env.path(), "uac-cancel");
    if let Some(a_port) = sdp_port(&uac_msgs, "SIP/2.0 18") {
        ports.push(a_port);
    }
    // RTP on the even port, RTCP on the next one.
    for p in ports.into_iter().flat_map(|p| [p, p + 1]) {
        if !udp_port_released(p, Duration::from_secs(5)) {
            problems.push(format!(
                "relay port {p} is still bound 5 s after the cancelled call ended"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "CANCEL before answer:\n- {}\n{}",
        problems.join("\n- "),
        describe(&env, &sw, &["uac-cancel", "uas-cancel"])
    );
    assert_ended_once(&mut sw, 1);
}

#[test]
fn bye_from_the_callee_ends_both_legs() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    let mut uas = start_uas(
        &env,
        "uas-bye",
        Some("calls_uas_bye.xml"),
        uas_sip,
        uas_media,
        1,
    );
    let run = run_uac(&env, &sw, "uac-wait", "calls_uac_wait_bye.xml", &[], 1, 1);
    let uas_run = uas.wait();
    assert!(
        uas_run.ok(),
        "the callee's BYE was not answered 200: {:?}\n{}",
        uas_run.status,
        describe(&env, &sw, &["uac-wait", "uas-bye"])
    );
    assert!(
        run.ok(),
        "the caller did not get a BYE after the callee hung up: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-wait", "uas-bye"])
    );
    let ended = calls_ended(&sw, 1);
    assert_eq!(
        ended[0].get("disposition"),
        Some("ANSWERED"),
        "{}",
        ended[0].raw
    );
    let hangups = sw.lines("hangup");
    assert!(
        hangups.iter().any(|l| l.get("side") == Some("callee")),
        "the switch did not log the callee's hangup:\n{}",
        sw.log()
    );
    assert_ended_once(&mut sw, 1);
}

/// The SDP body of the 200 answering the INVITE with `cseq`.
fn answer_to(messages: &[String], cseq: u32) -> Option<String> {
    let want = format!("CSeq: {cseq} INVITE");
    messages
        .iter()
        .filter(|m| m.contains("received"))
        .find(|m| {
            m.lines().any(|l| l.trim().starts_with("SIP/2.0 200"))
                && m.lines().any(|l| l.trim() == want)
        })
        .map(|m| {
            m.lines()
                .skip_while(|l| !l.trim().starts_with("v=0"))
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
}

fn direction(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| match l.trim() {
        "a=sendrecv" => Some("sendrecv"),
        "a=sendonly" => Some("sendonly"),
        "a=recvonly" => Some("recvonly"),
        "a=inactive" => Some("inactive"),
        _ => None,
    })
}

#[test]
fn hold_and_resume_by_reinvite_are_answered_recvonly_then_sendrecv() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    let mut uas = start_uas(&env, "uas-hold", None, uas_sip, uas_media, 1);
    let run = run_uac(&env, &sw, "uac-hold", "calls_uac_hold.xml", &[], 1, 1);
    let uas_run = uas.wait();
    let why = || describe(&env, &sw, &["uac-hold", "uas-hold"]);
    assert!(
        run.ok(),
        "hold/resume call failed: {:?}\n{}",
        run.status,
        why()
    );
    assert!(uas_run.ok(), "SIPp UAS: {:?}\n{}", uas_run.status, why());
    let msgs = sipp_messages(env.path(), "uac-hold");
    let hold = answer_to(&msgs, 3)
        .unwrap_or_else(|| panic!("no 200 with SDP for the hold re-INVITE\n{}", why()));
    let resume = answer_to(&msgs, 4)
        .unwrap_or_else(|| panic!("no 200 with SDP for the resume re-INVITE\n{}", why()));
    assert_eq!(
        direction(&hold),
        Some("recvonly"),
        "a=sendonly (hold) must be answered a=recvonly:\n{hold}"
    );
    let resumed = direction(&resume);
    assert!(
        resumed == Some("sendrecv") || resumed.is_none(),
        "a=sendrecv (resume) must be answered sendrecv:\n{resume}"
    );
    if resumed.is_none() {
        eprintln!("note: the resume answer has no direction attribute (sendrecv by default)");
    }
    // The answers keep the relay's port and bump the SDP version.
    let first = answer_to(&msgs, 2).expect("200 to the first INVITE");
    let port = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split(' ').next().map(str::to_owned))
    };
    assert_eq!(port(&first), port(&hold), "hold moved the relay port");
    assert_eq!(port(&first), port(&resume), "resume moved the relay port");
    let reoffers = sw.lines("re-offer on a leg");
    assert_eq!(reoffers.len(), 2, "two re-offers expected:\n{}", sw.log());
    let ended = calls_ended(&sw, 1);
    assert_eq!(ended[0].get("disposition"), Some("ANSWERED"));
    assert_ended_once(&mut sw, 1);
}

/// A SIPp UAS (echoing RTP) and a SIPp UAC from 100 to 101 with their
/// own scenarios and a global timeout of `secs`; returns both runs.
fn uac_uas(
    env: &CallEnv,
    sw: &Switch,
    (uas_sip, uas_media): (u16, u16),
    (uac_name, uac_file): (&str, &str),
    (uas_name, uas_file): (&str, Option<&str>),
    secs: u64,
) -> (ToolRun, ToolRun) {
    let mut cmd = sipp_cmd(env.path(), uas_name, uas_sip);
    match uas_file {
        Some(f) => cmd.args(["-sf", &scenario(f)]),
        None => cmd.args(["-sn", "uas"]),
    };
    cmd.args(["-mp", &uas_media.to_string(), "-rtp_echo"])
        .args(["-m", "1", "-timeout", &format!("{secs}s")]);
    let mut uas = Bg::spawn(cmd, env.path(), uas_name, Duration::from_secs(secs + 5));
    std::thread::sleep(Duration::from_millis(300));
    let csv = write_csv(
        env.path(),
        &format!("{uac_name}.csv"),
        &[auth_line("100", PW100, &["101"])],
    );
    let mut cmd = sipp_cmd(env.path(), uac_name, free_port_span(1));
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario(uac_file)])
        .args(["-inf", &csv])
        .args(["-mp", &free_port_span(3).to_string()])
        .args(["-m", "1", "-timeout", &format!("{secs}s")]);
    let uac = run_tool(cmd, env.path(), uac_name, Duration::from_secs(secs + 5));
    (uac, uas.wait())
}

/// The `m=audio` port of the first received response with `status`.
fn response_sdp_port(messages: &[String], status: u16) -> Option<u16> {
    let start = format!("SIP/2.0 {status}");
    messages
        .iter()
        .filter(|m| m.contains("received") && m.lines().any(|l| l.trim().starts_with(&start)))
        .find_map(|m| {
            m.lines()
                .find_map(|l| l.trim().strip_prefix("m=audio "))
                .and_then(|rest| rest.split(' ').next())
                .and_then(|p| p.parse().ok())
        })
}

#[test]
fn early_media_from_the_callee_reaches_the_caller_before_the_answer() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    // The callee answers 3 s after its 183; the caller plays its 2 s of
    // tone as soon as the 183 arrives, so everything the relay carries
    // (and the callee echoes back) flows before the answer.
    let (uac, uas) = uac_uas(
        &env,
        &sw,
        (uas_sip, uas_media),
        ("uac-early", "calls_uac_early_media.xml"),
        ("uas-early", Some("calls_uas_early_media.xml")),
        30,
    );
    let why = || describe(&env, &sw, &["uac-early", "uas-early"]);
    assert!(uac.ok(), "caller: {:?}\n{}", uac.status, why());
    assert!(uas.ok(), "callee: {:?}\n{}", uas.status, why());
    let msgs = sipp_messages(env.path(), "uac-early");
    let early =
        response_sdp_port(&msgs, 183).unwrap_or_else(|| panic!("no 183 with SDP\n{}", why()));
    assert!(
        (env.rtp.0..=env.rtp.1).contains(&early),
        "the 183's SDP is the relay's ({early} not in {:?})",
        env.rtp
    );
    assert_eq!(
        response_sdp_port(&msgs, 200),
        Some(early),
        "the 200 repeats the early answer"
    );
    assert_eq!(
        sw.wait_lines(
            "early media from the callee bridged",
            1,
            Duration::from_secs(5)
        )
        .len(),
        1,
        "{}",
        sw.log()
    );
    let ended = calls_ended(&sw, 1);
    assert_eq!(ended[0].get("disposition"), Some("ANSWERED"));
    let legs = sw.wait_lines("media leg closed", 2, Duration::from_secs(5));
    assert_eq!(legs.len(), 2, "{}", sw.log());
    for leg in &legs {
        let (i, o) = (
            leg.num("packets_in").unwrap_or(-1),
            leg.num("packets_out").unwrap_or(-1),
        );
        assert!(
            i >= 90 && o >= 90,
            "early media did not flow both ways through the relay: {}\n{}",
            leg.raw,
            sw.log()
        );
    }
    assert_ended_once(&mut sw, 1);
}

#[test]
fn reliable_provisionals_are_pracked_on_both_legs() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    // The callee sends a reliable 183 (the switch must PRACK it with
    // RAck: 1 1 INVITE); the caller said Supported: 100rel, so its 183 is
    // reliable too and it PRACKs it; its 200 comes only after that.
    let (uac, uas) = uac_uas(
        &env,
        &sw,
        (uas_sip, uas_media),
        ("uac-prack", "calls_uac_prack.xml"),
        ("uas-prack", Some("calls_uas_prack.xml")),
        30,
    );
    let why = || describe(&env, &sw, &["uac-prack", "uas-prack"]);
    assert!(
        uas.ok(),
        "callee (PRACK from the switch): {:?}\n{}",
        uas.status,
        why()
    );
    assert!(
        uac.ok(),
        "caller (reliable 183, PRACK, 200): {:?}\n{}",
        uac.status,
        why()
    );
    let ended = calls_ended(&sw, 1);
    assert_eq!(ended[0].get("disposition"), Some("ANSWERED"));
    assert_eq!(
        sw.lines("PRACK sent to the callee").len(),
        1,
        "{}",
        sw.log()
    );
    assert_ended_once(&mut sw, 1);
}

/// The example switch without the RTP inactivity hangup, for calls that
/// stay up without media for longer than its timeout.
fn env_without_rtp_timeout() -> CallEnv {
    let env = CallEnv::new(&Options::default());
    let main = env.config_dir().join("carillon.toml");
    let text = std::fs::read_to_string(&main).expect("read carillon.toml");
    std::fs::write(
        &main,
        set_keys(&text, "rtp", &[("timeout_secs", "0".into())]),
    )
    .expect("write carillon.toml");
    env
}

#[test]
fn the_switch_refreshes_a_session_timer_it_was_made_refresher_of() {
    require_sipp();
    // Neither SIPp sends RTP for 47 s.
    let mut env = env_without_rtp_timeout();
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    // Session-Expires: 90 from a caller without timer support: the switch
    // refreshes at 45 s (UPDATE, which the caller allows). About 47 s.
    let (uac, uas) = uac_uas(
        &env,
        &sw,
        (uas_sip, uas_media),
        ("uac-timer", "calls_uac_session_timer.xml"),
        ("uas-timer", None),
        70,
    );
    let why = || describe(&env, &sw, &["uac-timer", "uas-timer"]);
    assert!(
        uac.ok(),
        "caller: no UPDATE refresh within 60 s? {:?}\n{}",
        uac.status,
        why()
    );
    assert!(uas.ok(), "callee: {:?}\n{}", uas.status, why());
    let refreshes = sw.lines("session refresh sent");
    assert_eq!(refreshes.len(), 1, "{}", sw.log());
    assert_eq!(refreshes[0].get("method"), Some("UPDATE"));
    let ended = calls_ended(&sw, 1);
    assert_eq!(ended[0].get("disposition"), Some("ANSWERED"));
    assert_eq!(
        ended[0].num("cause"),
        Some(16),
        "ended by the BYE, not the timer"
    );
    assert_ended_once(&mut sw, 1);
}

#[test]
fn a_session_its_refresher_never_refreshes_is_hung_up_before_it_expires() {
    require_sipp();
    // Nobody sends RTP for the minute.
    let mut env = env_without_rtp_timeout();
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    // Session-Expires: 90;refresher=uac from a caller with timer support,
    // which then never refreshes: the switch hangs up both legs at 60 s
    // (the scenario fails on anything from the switch before 55 s, and on
    // no BYE by 75 s). About 61 s.
    let (uac, uas) = uac_uas(
        &env,
        &sw,
        (uas_sip, uas_media),
        ("uac-expiry", "calls_uac_timer_expiry.xml"),
        ("uas-expiry", None),
        85,
    );
    let why = || describe(&env, &sw, &["uac-expiry", "uas-expiry"]);
    assert!(
        uac.ok(),
        "caller: no BYE between 55 and 75 s? {:?}\n{}",
        uac.status,
        why()
    );
    assert!(
        uas.ok(),
        "callee did not get its BYE: {:?}\n{}",
        uas.status,
        why()
    );
    assert!(
        sw.lines("session refresh sent").is_empty(),
        "the switch refreshed a session the caller was to refresh\n{}",
        sw.log()
    );
    let expired = sw.lines("session expired without a refresh: hanging up");
    assert_eq!(expired.len(), 1, "{}", sw.log());
    assert_eq!(expired[0].get("interval"), Some("90"));
    let ended = calls_ended(&sw, 1);
    assert_eq!(ended[0].get("disposition"), Some("ANSWERED"));
    assert_eq!(
        ended[0].num("cause"),
        Some(102),
        "ended by the session timer (cause 102, recovery on timer expiry)"
    );
    assert_ended_once(&mut sw, 1);
}

#[test]
fn a_caller_at_its_max_calls_is_refused_486_while_its_first_call_goes_on() {
    require_sipp();
    let users = users_with_codecs(&["ulaw", "alaw"], &["ulaw", "alaw"]).replace(
        "password = \"changeme100\"\n",
        "password = \"changeme100\"\nmax_calls = 1\n",
    );
    assert!(users.contains("max_calls = 1"));
    let mut env = CallEnv::new(&Options {
        users_toml: Some(users),
        ..Options::default()
    });
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    // The first call is answered and lasts 2 s (the callee hangs up).
    let mut uas = start_uas(
        &env,
        "uas-first",
        Some("calls_uas_bye.xml"),
        uas_sip,
        uas_media,
        1,
    );
    let csv = write_csv(
        env.path(),
        "uac-first.csv",
        &[auth_line("100", PW100, &["101"])],
    );
    let mut cmd = sipp_cmd(env.path(), "uac-first", free_port_span(1));
    cmd.arg(sw.addr().to_string())
        .args(["-sf", &scenario("calls_uac_wait_bye.xml")])
        .args(["-inf", &csv])
        .args(["-mp", &free_port_span(3).to_string()])
        .args(["-m", "1", "-timeout", "30s"]);
    let mut first = Bg::spawn(cmd, env.path(), "uac-first", Duration::from_secs(35));
    let answered = sw.wait_lines("call answered", 1, Duration::from_secs(10));
    assert_eq!(
        answered.len(),
        1,
        "the first call was not answered\n{}",
        sw.log()
    );
    // The second, while the first is up: 486 with Reason cause=17.
    let second = run_uac(&env, &sw, "uac-second", "calls_uac_busy.xml", &[], 1, 1);
    let first = first.wait();
    let uas = uas.wait();
    let why = || describe(&env, &sw, &["uac-first", "uac-second", "uas-first"]);
    assert!(
        second.ok(),
        "the second call was not refused 486: {:?}\n{}",
        second.status,
        why()
    );
    assert!(
        first.ok(),
        "the first call suffered: {:?}\n{}",
        first.status,
        why()
    );
    assert!(uas.ok(), "callee: {:?}\n{}", uas.status, why());
    assert_eq!(sw.lines("call limit reached").len(), 1, "{}", sw.log());
    let ended = calls_ended(&sw, 2);
    let mut dispositions: Vec<&str> = ended.iter().filter_map(|l| l.get("disposition")).collect();
    dispositions.sort_unstable();
    assert_eq!(dispositions, vec!["ANSWERED", "BUSY"], "{}", sw.log());
    assert_ended_once(&mut sw, 2);
}

#[test]
fn a_basic_call_is_told_by_switch_events_in_order_with_one_linkedid() {
    use carillon_events::{Direction, SwitchEvent};
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (mut sw, uas_sip, uas_media) = switch_with_101(&mut env);
    write_tone_pcap(&env.path().join("tone.pcap"), 1, 440.0);
    let mut uas = start_uas(&env, "uas", None, uas_sip, uas_media, 1);
    let run = run_uac(&env, &sw, "uac-pcap", "uac_auth_pcap.xml", &[], 1, 1);
    let uas_run = uas.wait();
    assert!(
        run.ok() && uas_run.ok(),
        "call: {:?} {:?}\n{}",
        run.status,
        uas_run.status,
        describe(&env, &sw, &["uac-pcap", "uas"])
    );
    // The caller hung up: both legs' hangups end the event stream.
    let hangups = sw.wait_events(2, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::Hangup { .. })
    });
    assert_eq!(hangups.len(), 2, "events: {:#?}", sw.events());
    let events = sw.events();
    // The call's events without the dialplan applications (checked
    // apart), as (name, channel) pairs.
    let mut a_chan = String::new();
    let mut b_chan = String::new();
    let mut linked = Vec::new();
    let mut seen = Vec::new();
    for e in &events {
        match &e.event {
            SwitchEvent::ChannelCreated {
                channel,
                linkedid,
                direction,
                caller,
                exten,
                context,
                ..
            } => {
                match direction {
                    Direction::Inbound => a_chan = channel.clone(),
                    Direction::Outbound => b_chan = channel.clone(),
                }
                assert_eq!((caller.as_str(), exten.as_str()), ("100", "101"), "{e:?}");
                assert_eq!(context, "internal", "{e:?}");
                linked.push(linkedid.clone());
                seen.push(format!("created:{direction:?}"));
            }
            SwitchEvent::ChannelState { channel, state, .. } => {
                let who = if *channel == a_chan { "a" } else { "b" };
                seen.push(format!("{who}:{state:?}"));
            }
            SwitchEvent::Bridged { linkedid, channels } => {
                assert_eq!(channels, &[a_chan.clone(), b_chan.clone()]);
                linked.push(linkedid.clone());
                seen.push("bridged".into());
            }
            SwitchEvent::Unbridged { linkedid, channels } => {
                assert_eq!(channels, &[a_chan.clone(), b_chan.clone()]);
                linked.push(linkedid.clone());
                seen.push("unbridged".into());
            }
            SwitchEvent::Hangup {
                channel,
                cause,
                cause_text,
                ..
            } => {
                assert_eq!(*cause, 16, "normal clearing: {e:?}");
                assert_eq!(cause_text, "Normal Clearing");
                let who = if *channel == a_chan { "a" } else { "b" };
                seen.push(format!("hangup:{who}"));
            }
            // Applications, digits, recordings, hold: not in this call.
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "created:Inbound",
            "created:Outbound",
            "b:Ringing",
            "b:Up",
            "a:Up",
            "bridged",
            "unbridged",
            "hangup:b",
            "hangup:a",
        ],
        "events: {events:#?}"
    );
    assert!(linked.iter().all(|l| *l == linked[0]), "{linked:?}");
    // The same names as the call's CDR.
    let ended = calls_ended(&sw, 1);
    assert_eq!(ended[0].get("disposition"), Some("ANSWERED"));
    assert!(a_chan.starts_with("SIP/100-"), "{a_chan}");
    assert!(b_chan.starts_with("SIP/101-"), "{b_chan}");
    // Stamped with the wall clock, in order.
    assert!(
        events.windows(2).all(|w| w[0].time_ms <= w[1].time_ms),
        "{events:#?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(&e.event, SwitchEvent::AppStarted { app, channel, .. } if app == "Dial" && *channel == a_chan)));
    assert_ended_once(&mut sw, 1);
}
