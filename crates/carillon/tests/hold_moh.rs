//! Hold from a real phone through the real binary: 100 (SIPp) plays a
//! 600 Hz tone to 101, puts 101 on hold (re-INVITE `a=sendonly`) and
//! resumes (`a=sendrecv`). 101's media is a socket of the test, so the
//! test hears what the switch sends it: the caller's tone, then music on
//! hold (`[moh.default]`, the example's class: energy, not the caller's
//! tone), then the caller's tone again; `hold` and `unhold` events mark
//! the times.

mod callsupport;

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callsupport::*;
use carillon_events::SwitchEvent;

const CALLER_HZ: f64 = 600.0;

/// The example hold scenario with the caller playing `tone.pcap` from the
/// start and 3 s in each state (talking, held, resumed).
fn write_caller_scenario(dir: &Path) -> String {
    let text = fs::read_to_string(repo_root().join("tests/sipp/calls_uac_hold.xml"))
        .expect("calls_uac_hold.xml");
    let ack_end = text.find("CSeq: 2 ACK").expect("the first ACK");
    let after = ack_end + text[ack_end..].find("</send>").expect("its end") + "</send>".len();
    let text = format!(
        "{}\n  <nop><action><exec play_pcap_audio=\"tone.pcap\"/></action></nop>{}",
        &text[..after],
        &text[after..]
    )
    .replace(
        "<pause milliseconds=\"1000\"/>",
        "<pause milliseconds=\"3000\"/>",
    );
    let path = dir.join("uac_hold_tone.xml");
    fs::write(&path, text).expect("write scenario");
    path.display().to_string()
}

/// A callee whose SDP sends the switch's RTP to `rtp_port` (the test's
/// socket); it answers and waits for the BYE.
fn write_callee_scenario(dir: &Path, rtp_port: u16) -> String {
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="callee_socket">
  <recv request="INVITE" crlf="true" rrs="true"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio {rtp_port} RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    );
    let path = dir.join("callee_socket.xml");
    fs::write(&path, xml).expect("write scenario");
    path.display().to_string()
}

/// Relative power of `hz` (Goertzel against total energy).
fn tone_share(samples: &[i16], hz: f64) -> f64 {
    let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    if samples.is_empty() || energy == 0.0 {
        return 0.0;
    }
    let g = carillon_codec::Goertzel::new(hz, 8000);
    2.0 * g.magnitude_squared(samples) / (samples.len() as f64 * energy)
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

#[test]
fn the_held_party_hears_music_on_hold_and_then_the_phone_again() {
    if !have("sipp") {
        report_skip("hold_moh", "sipp is not installed");
        assert!(!peers_required(), "sipp is required");
        return;
    }
    let mut env = CallEnv::new(&Options::default());
    let sw = env.start();
    // 101's media: a socket of the test.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let rtp_port = sock.local_addr().expect("addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let received = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(40);
            let mut got: Vec<(i64, Vec<i16>)> = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(n) = sock.recv(&mut buf) {
                    if n > 12 && buf[1] & 0x7f == 0 {
                        let pcm = buf[12..n]
                            .iter()
                            .map(|&b| carillon_codec::ulaw_decode(b))
                            .collect();
                        got.push((unix_ms(), pcm));
                    }
                }
            }
            got
        })
    };
    let callee = write_callee_scenario(env.path(), rtp_port);
    let (sip, media) = (free_port_span(1), free_port_span(3));
    sipp_register(&sw, env.path(), "101", PW101, sip);
    let mut cmd = sipp_cmd(env.path(), "uas", sip);
    cmd.args(["-sf", &callee])
        .args(["-mp", &media.to_string()])
        .args(["-m", "1", "-timeout", "40s"]);
    let mut uas = Bg::spawn(cmd, env.path(), "uas", Duration::from_secs(45));
    std::thread::sleep(Duration::from_millis(300));
    write_tone_pcap(&env.path().join("tone.pcap"), 12, CALLER_HZ);
    let caller = write_caller_scenario(env.path());
    let run = run_uac(&env, &sw, "uac-hold", &caller, &[], 1, 1);
    let _ = uas.wait();
    stop.store(true, Ordering::Relaxed);
    let packets = received.join().expect("receiver");
    assert!(
        run.ok(),
        "caller: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-hold", "uas"])
    );
    let events = sw.events();
    let time_of = |f: &dyn Fn(&SwitchEvent) -> bool| {
        events
            .iter()
            .find(|e| f(&e.event))
            .map(|e| e.time_ms as i64)
            .unwrap_or_else(|| panic!("event missing:\n{}", sw.log()))
    };
    let bridged = time_of(&|e| matches!(e, SwitchEvent::Bridged { .. }));
    let held =
        time_of(&|e| matches!(e, SwitchEvent::Hold { moh_class, .. } if moh_class == "default"));
    let resumed = time_of(&|e| matches!(e, SwitchEvent::Unhold { .. }));
    let window = |from: i64, to: i64| -> Vec<i16> {
        packets
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .flat_map(|(_, p)| p.iter().copied())
            .collect()
    };
    let talking = window(bridged + 500, held - 200);
    let on_hold = window(held + 500, resumed - 200);
    let after = window(resumed + 500, resumed + 2500);
    let report = format!(
        "talking: {} samples, 600 Hz share {:.2}; on hold: {} samples, rms {:.0}, 600 Hz share {:.2}; after: {} samples, 600 Hz share {:.2}\n{}",
        talking.len(),
        tone_share(&talking, CALLER_HZ),
        on_hold.len(),
        rms(&on_hold),
        tone_share(&on_hold, CALLER_HZ),
        after.len(),
        tone_share(&after, CALLER_HZ),
        sw.log()
    );
    assert!(
        talking.len() > 8000 && tone_share(&talking, CALLER_HZ) > 0.5,
        "the callee hears the caller before the hold: {report}"
    );
    assert!(
        on_hold.len() > 8000 && rms(&on_hold) > 200.0 && tone_share(&on_hold, CALLER_HZ) < 0.2,
        "the held callee hears music on hold, not the caller: {report}"
    );
    assert!(
        after.len() > 8000 && tone_share(&after, CALLER_HZ) > 0.5,
        "after the resume the callee hears the caller again: {report}"
    );
    sw.assert_idle(Duration::from_secs(10));
}
