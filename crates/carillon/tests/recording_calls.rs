//! Recorded calls through the real binary with real peers (SIPp): the
//! dialplan runs MixMonitor before Dial; 100 (SIPp UAC) plays one tone,
//! 101 (SIPp UAS) another. The WAV under `var/recordings` (named after the
//! call's unique id, as the CDR's `recording` says) is valid (hound opens
//! it), as long as the bridged call within 0.5 s, and holds each tone
//! (stereo: the caller's on the left, the callee's on the right; mono:
//! both); the same with an A-law callee. The switch SIGKILLed mid-call
//! leaves a file that the next start checks (and repairs if its header is
//! stale) into a valid WAV holding the audio written until the kill.

mod callsupport;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use callsupport::*;
use carillon_events::SwitchEvent;

const CALLER_HZ: f64 = 600.0;
const CALLEE_HZ: f64 = 1400.0;

/// Appends extension `exten` (MixMonitor with `options`, then Dial 101)
/// to the `internal` context of the test's dialplan.
fn add_recorded_extension(env: &CallEnv, exten: &str, options: &str) {
    let path = env.config_dir().join("dialplan.toml");
    let text = fs::read_to_string(&path).expect("read dialplan.toml");
    let first = "[[context.internal.extension]]";
    let at = text
        .find(&format!("\n{first}"))
        .expect("an internal extension")
        + 1;
    let options = if options.is_empty() {
        String::new()
    } else {
        format!(", options = \"{options}\"")
    };
    let ext = format!(
        "{first}\nmatch = \"{exten}\"\nsteps = [ {{ app = \"MixMonitor\"{options} }}, {{ app = \"Dial\", targets = [\"user/101\"], timeout = 20 }}, {{ app = \"Hangup\" }} ]\n\n"
    );
    let text = format!("{}{ext}{}", &text[..at], &text[at..]);
    fs::write(&path, text).expect("write dialplan.toml");
}

/// A pcap of G.711 RTP (`pt` 0 µ-law or 8 A-law, 20 ms packets) carrying
/// a `hz` sine for `seconds`, for SIPp's `play_pcap_audio`.
fn write_g711_pcap(path: &Path, seconds: u32, hz: f64, pt: u8) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..seconds * 50 {
        let mut rtp = vec![0x80u8, pt];
        rtp.extend_from_slice(&((i & 0xffff) as u16).to_be_bytes());
        rtp.extend_from_slice(&(i * 160).to_be_bytes());
        rtp.extend_from_slice(&0x5678u32.to_be_bytes());
        for k in 0..160u32 {
            let t = f64::from(i * 160 + k) / 8000.0;
            let s = (8000.0 * (std::f64::consts::TAU * hz * t).sin()) as i16;
            rtp.push(if pt == 8 {
                carillon_codec::alaw_encode(s)
            } else {
                carillon_codec::ulaw_encode(s)
            });
        }
        let udp_len = (8 + rtp.len()) as u16;
        let mut udp = Vec::new();
        udp.extend_from_slice(&6000u16.to_be_bytes());
        udp.extend_from_slice(&6002u16.to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&0u16.to_be_bytes());
        udp.extend_from_slice(&rtp);
        let mut ip = vec![0x45u8, 0];
        ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        ip.extend_from_slice(&udp);
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let ms = i * 20;
        f.extend_from_slice(&(ms / 1000).to_le_bytes());
        f.extend_from_slice(&((ms % 1000) * 1000).to_le_bytes());
        let len = eth.len() as u32;
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(&eth);
    }
    fs::write(path, f).expect("write pcap");
}

/// A SIPp callee scenario: answers with `codec` (PCMU or PCMA), plays
/// `callee.pcap` after the ACK, then waits for the caller's BYE.
fn write_uas_scenario(dir: &Path, codec: &str) -> PathBuf {
    let pt = if codec == "PCMA" { 8 } else { 0 };
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="recorded_uas">
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
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {pt}
      a=rtpmap:{pt} {codec}/8000

    ]]>
  </send>
  <recv request="ACK"/>
  <nop><action><exec play_pcap_audio="callee.pcap"/></action></nop>
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
    let path = dir.join(format!("recorded_uas_{codec}.xml"));
    fs::write(&path, xml).expect("write scenario");
    path
}

/// 101 registered from a SIPp UAS running [`write_uas_scenario`] for one
/// call (no RTP echo: it plays its own tone).
fn start_tone_uas(env: &CallEnv, sw: &Switch, codec: &str) -> Bg {
    let scenario = write_uas_scenario(env.path(), codec);
    let (sip, media) = (free_port_span(1), free_port_span(3));
    sipp_register(sw, env.path(), "101", PW101, sip);
    let mut cmd = sipp_cmd(env.path(), "uas", sip);
    cmd.args(["-sf", &scenario.display().to_string()])
        .args(["-mp", &media.to_string()])
        .args(["-m", "1", "-timeout", "40s"]);
    let bg = Bg::spawn(cmd, env.path(), "uas", Duration::from_secs(45));
    std::thread::sleep(Duration::from_millis(300));
    bg
}

/// Relative power of `hz` in `samples` (Goertzel against total energy):
/// near 1 for a pure tone at `hz`.
fn tone_share(samples: &[i16], hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let g = carillon_codec::Goertzel::new(hz, 8000);
    let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * g.magnitude_squared(samples) / (samples.len() as f64 * energy)
}

struct Recorded {
    spec: hound::WavSpec,
    /// Per channel.
    channels: Vec<Vec<i16>>,
}

fn open_recording(path: &Path) -> Recorded {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a valid WAV: {e}", path.display()));
    let spec = reader.spec();
    let all: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = usize::from(spec.channels);
    let channels = (0..n)
        .map(|c| all.iter().skip(c).step_by(n).copied().collect())
        .collect();
    Recorded { spec, channels }
}

/// The middle second of a channel (both tones play through it).
fn middle(samples: &[i16]) -> &[i16] {
    let mid = samples.len() / 2;
    &samples[mid.saturating_sub(4000)..(mid + 4000).min(samples.len())]
}

/// The bridged time of the call (from `bridged` to `unbridged`), in ms.
fn bridged_ms(sw: &Switch) -> i64 {
    let events = sw.events();
    let at = |f: &dyn Fn(&SwitchEvent) -> bool| {
        events
            .iter()
            .find(|e| f(&e.event))
            .map(|e| e.time_ms as i64)
    };
    let start = at(&|e| matches!(e, SwitchEvent::Bridged { .. })).expect("bridged event");
    let end = at(&|e| matches!(e, SwitchEvent::Unbridged { .. })).expect("unbridged event");
    end - start
}

/// One recorded call 100 → `exten` with a callee speaking `codec`;
/// returns the switch, the CDR's recording path and the finished event.
fn recorded_call(options: &str, codec: &str) -> Option<(CallEnv, Switch, PathBuf, SwitchEvent)> {
    if !have("sipp") {
        report_skip("recording_calls", "sipp is not installed");
        assert!(!peers_required(), "sipp is required");
        return None;
    }
    let mut env = CallEnv::new(&Options::default());
    add_recorded_extension(&env, "7101", options);
    let since = unix_ms();
    let sw = env.start();
    write_g711_pcap(&env.path().join("tone.pcap"), 3, CALLER_HZ, 0);
    let callee_pt = if codec == "PCMA" { 8 } else { 0 };
    write_g711_pcap(&env.path().join("callee.pcap"), 3, CALLEE_HZ, callee_pt);
    let mut uas = start_tone_uas(&env, &sw, codec);
    let mut uac = sipp_100_dials(
        &env,
        &sw,
        "uac",
        "uac_auth_pcap.xml",
        "7101",
        Duration::from_secs(30),
    );
    let run = uac.wait();
    let _ = uas.wait();
    assert!(
        run.ok(),
        "caller: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac", "uas"])
    );
    let done = sw.wait_events(1, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::RecordingFinished { .. })
    });
    assert_eq!(done.len(), 1, "recording_finished:\n{}", sw.log());
    let cdrs = wait_for_cdrs(&env.db_url, since, 1, Duration::from_secs(10), |r| {
        r.dst == "7101"
    });
    assert_eq!(cdrs.len(), 1, "{}", sw.log());
    let path = PathBuf::from(
        cdrs[0]
            .recording
            .clone()
            .expect("the CDR names the recording"),
    );
    let path = if path.is_absolute() {
        path
    } else {
        env.path().join(path)
    };
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some(format!("{}.wav", cdrs[0].uniqueid).as_str()),
        "named after the call's unique id"
    );
    sw.assert_idle(Duration::from_secs(10));
    Some((env, sw, path, done[0].event.clone()))
}

fn assert_duration_matches_the_bridge(sw: &Switch, rec: &Recorded, path: &Path) {
    let secs = rec.channels[0].len() as f64 / 8000.0;
    let bridged = bridged_ms(sw) as f64 / 1000.0;
    assert!(
        (secs - bridged).abs() <= 0.5,
        "{}: {secs:.2} s of audio for {bridged:.2} s bridged",
        path.display()
    );
}

#[test]
fn a_stereo_recorded_call_has_the_callers_tone_left_and_the_callees_right() {
    let Some((_env, sw, path, done)) = recorded_call("D", "PCMU") else {
        return;
    };
    let rec = open_recording(&path);
    assert_eq!((rec.spec.channels, rec.spec.sample_rate), (2, 8000));
    assert_duration_matches_the_bridge(&sw, &rec, &path);
    let (left, right) = (middle(&rec.channels[0]), middle(&rec.channels[1]));
    let shares = (
        tone_share(left, CALLER_HZ),
        tone_share(left, CALLEE_HZ),
        tone_share(right, CALLEE_HZ),
        tone_share(right, CALLER_HZ),
    );
    assert!(
        shares.0 > 0.5 && shares.1 < 0.1 && shares.2 > 0.5 && shares.3 < 0.1,
        "left: caller {:.2} callee {:.2}; right: callee {:.2} caller {:.2}",
        shares.0,
        shares.1,
        shares.2,
        shares.3
    );
    match done {
        SwitchEvent::RecordingFinished { frames_lost, .. } => assert_eq!(frames_lost, 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_mono_recorded_call_with_an_alaw_callee_has_both_tones() {
    let Some((_env, sw, path, _)) = recorded_call("", "PCMA") else {
        return;
    };
    let rec = open_recording(&path);
    assert_eq!((rec.spec.channels, rec.spec.sample_rate), (1, 8000));
    assert_duration_matches_the_bridge(&sw, &rec, &path);
    let mid = middle(&rec.channels[0]);
    let (caller, callee) = (tone_share(mid, CALLER_HZ), tone_share(mid, CALLEE_HZ));
    assert!(
        caller > 0.2 && callee > 0.2,
        "both tones in the mix: caller {caller:.2}, callee {callee:.2}"
    );
}

#[test]
fn a_recording_cut_by_sigkill_is_a_valid_wav_with_its_audio_after_the_next_start() {
    if !have("sipp") {
        report_skip("recording_calls", "sipp is not installed");
        assert!(!peers_required(), "sipp is required");
        return;
    }
    let mut env = CallEnv::new(&Options::default());
    add_recorded_extension(&env, "7101", "D");
    let mut sw = env.start();
    // Long tones: the call is still up when the switch is killed.
    write_g711_pcap(&env.path().join("tone.pcap"), 12, CALLER_HZ, 0);
    write_g711_pcap(&env.path().join("callee.pcap"), 12, CALLEE_HZ, 0);
    let mut uas = start_tone_uas(&env, &sw, "PCMU");
    let mut uac = sipp_100_dials(
        &env,
        &sw,
        "uac",
        "uac_auth_pcap.xml",
        "7101",
        Duration::from_secs(20),
    );
    let started = sw.wait_events(1, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::RecordingStarted { .. })
    });
    assert_eq!(started.len(), 1, "{}", sw.log());
    let SwitchEvent::RecordingStarted { path, .. } = &started[0].event else {
        unreachable!()
    };
    let path = env.path().join(path);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let status = Command::new("kill")
        .args(["-KILL", &sw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let killed_after = t0.elapsed().as_secs_f64();
    assert!(sw.wait_exit(Duration::from_secs(5)).is_some());
    let _ = uac.terminate(Duration::from_secs(1));
    let _ = uas.terminate(Duration::from_secs(1));
    assert!(
        path.exists(),
        "{} left by the killed switch",
        path.display()
    );

    let sw = env.start();
    let repaired = sw.wait_lines("recordings checked", 1, Duration::from_secs(5));
    assert_eq!(repaired.len(), 1, "{}", sw.log());
    // The writer keeps the header current at its checkpoints, so the cut
    // file may need no repair; either way it is checked and none fails.
    assert_eq!(repaired[0].num("files"), Some(1), "{}", sw.log());
    assert_eq!(repaired[0].num("failed"), Some(0), "{}", sw.log());
    eprintln!(
        "repaired at start: {:?} (0: the header was current at the kill)",
        repaired[0].num("repaired")
    );
    let rec = open_recording(&path);
    assert_eq!(rec.spec.channels, 2);
    let secs = rec.channels[0].len() as f64 / 8000.0;
    // The writer flushes in blocks: all but the last moments before the
    // kill are on disk.
    assert!(
        secs >= killed_after - 1.5 && secs <= killed_after + 0.5,
        "{secs:.2} s repaired of about {killed_after:.2} s recorded"
    );
    let left = middle(&rec.channels[0]);
    assert!(
        tone_share(left, CALLER_HZ) > 0.5,
        "the caller's tone is in the repaired file"
    );
}
