//! Calls through the real switch with SIPp on both sides: extension 100
//! (SIPp UAC, digest-authenticated INVITE) dials 101 (a SIPp UAS that
//! registered its socket first), the dialplan context `internal` routes it
//! to `user/101`, and the B2BUA bridges the two legs through its RTP relay.
//!
//! Covered: answered calls with a G.711 pcap played and echoed back (SIPp
//! counts and the relay's per-leg packet counts), RTP sent and received by
//! the test itself through the relay (raw count and the echoed tone),
//! CANCEL before answer (487, the callee sees the CANCEL, relay ports are
//! released), BYE from the callee, and hold/resume by re-INVITE. After
//! each, the switch must have logged `call ended` exactly once per call.

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
    let dir = env.path().to_owned();
    let sw_addr = sw.addr();
    let csv = write_csv(
        &dir,
        "uac-echo.csv",
        &[auth_line("100", PW100, &["101", &rtp_port.to_string()])],
    );
    let sip = free_port_span(1);
    let mut cmd = sipp_cmd(&dir, "uac-echo", sip);
    cmd.arg(sw_addr.to_string())
        .args(["-sf", &scenario("calls_uac_echo.xml")])
        .args(["-inf", &csv, "-m", "1", "-timeout", "30s"]);
    let mut uac = Bg::spawn(cmd, &dir, "uac-echo", Duration::from_secs(35));
    let port_file = dir.join("relayport-1.txt");
    let deadline = Instant::now() + Duration::from_secs(10);
    let relay_port: u16 = loop {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the echo call was not answered within 10 s\n{}",
            describe(&env, &sw, &["uac-echo", "uas"])
        );
        std::thread::sleep(Duration::from_millis(20));
    };
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
