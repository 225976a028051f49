//! DTMF through real calls, per `dtmf_mode` (issue 13): the binary with
//! the media engine, baresip phones driven over ctrl_tcp and a SIPp callee.
//!
//! - Two rfc4733 phones: a digit sent with baresip's `sndcode` reaches the
//!   other phone as RFC 4733 (its `CALL_DTMF_START` event).
//! - An `inband` phone (baresip whose microphone file holds DTMF tones, as
//!   a GSM gateway sends them) and an rfc4733 phone: the tones reach the
//!   rfc4733 phone as RFC 4733 events, and the rfc4733 phone's digit reaches
//!   the inband phone as tones in its audio (found in its recording by
//!   carillon-dtmf's detector).
//! - An rfc4733 phone and an `info` callee (SIPp): the phone's digits reach
//!   the callee as SIP INFO (application/dtmf-relay, in order), and the
//!   callee's INFO reaches the phone as RFC 4733.
//!
//! Each digit is also one `dtmf` switch event with its source.

mod callsupport;

use std::path::Path;
use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::*;
use carillon_dtmf::{Digit, DtmfDetector, DtmfEvent, DtmfGenerator};
use carillon_events::{DtmfSource, SwitchEvent};

/// users.toml with 100 and 101 in the given DTMF modes (and the example's
/// 8013 and 8014, which its dialplan dials).
fn users_with_modes(m100: &str, m101: &str) -> String {
    format!(
        "[defaults]\ncontext = \"internal\"\ncodecs = [\"ulaw\", \"alaw\"]\nmax_contacts = 3\n\n\
         [[user]]\nextension = \"100\"\npassword = \"changeme100\"\ndtmf_mode = \"{m100}\"\n\n\
         [[user]]\nextension = \"101\"\npassword = \"changeme101\"\ndtmf_mode = \"{m101}\"\n\n\
         [[user]]\nextension = \"8013\"\npassword = \"zoiper8013\"\n\n\
         [[user]]\nextension = \"8014\"\npassword = \"zoiper8014\"\n"
    )
}

fn env_with_modes(m100: &str, m101: &str) -> CallEnv {
    CallEnv::new(&Options {
        users_toml: Some(users_with_modes(m100, m101)),
        security: md5_only(),
        ..Options::default()
    })
}

/// A mono 16-bit 8 kHz WAV of `samples`.
fn write_wav(path: &Path, samples: &[i16]) {
    let data_len = u32::try_from(samples.len() * 2).expect("short file");
    let mut f = Vec::new();
    f.extend_from_slice(b"RIFF");
    f.extend_from_slice(&(36 + data_len).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt ");
    f.extend_from_slice(&16u32.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&8000u32.to_le_bytes());
    f.extend_from_slice(&16000u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&16u16.to_le_bytes());
    f.extend_from_slice(b"data");
    f.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        f.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, f).expect("write wav");
}

/// 30 s of audio: `lead` of silence, then each digit as 200 ms of its two
/// tones (-10 dBFS each) and 400 ms of silence, then silence.
fn digits_audio(lead: Duration, digits: &str) -> Vec<i16> {
    let mut out = vec![0i16; (lead.as_millis() * 8) as usize];
    for c in digits.chars() {
        let mut tone = vec![0i16; 1600];
        DtmfGenerator::new(Digit::from_char(c).expect("a digit"), -10.0, -10.0).fill(&mut tone);
        out.extend_from_slice(&tone);
        out.extend(std::iter::repeat_n(0i16, 3200));
    }
    out.resize(30 * 8000, 0);
    out
}

/// The digits in `samples` (each key press once), by carillon-dtmf's
/// detector.
fn detected_digits(samples: &[i16], rate: u32) -> String {
    let mut det = DtmfDetector::new(rate).expect("detector");
    det.push(samples);
    det.flush();
    let mut out = String::new();
    while let Some(ev) = det.poll_event() {
        if let DtmfEvent::Began { digit, .. } = ev {
            out.push(digit.as_char());
        }
    }
    out
}

/// The keys of the `CALL_DTMF_START` events a phone reported, in order.
fn dtmf_keys(phone: &Baresip) -> String {
    let mut keys = String::new();
    let mut rest = phone.events.as_str();
    while let Some((len, tail)) = rest.split_once(':') {
        let Ok(len) = len.trim().parse::<usize>() else {
            break;
        };
        let Some(json) = tail.get(..len) else {
            break;
        };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
            if v["type"] == "CALL_DTMF_START" {
                keys.push_str(v["param"].as_str().unwrap_or("?"));
            }
        }
        rest = tail.get(len + 1..).unwrap_or("");
    }
    keys
}

/// The switch's `dtmf` events: digit and source, in order.
fn switch_digits(sw: &Switch, n: usize) -> Vec<(char, DtmfSource)> {
    sw.wait_dtmf(n, Duration::from_secs(10))
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Dtmf { digit, source, .. } => Some((*digit, *source)),
            _ => None,
        })
        .collect()
}

/// 100 dials 101 and both report the call established.
fn establish(env: &CallEnv, sw: &Switch, p100: &mut Baresip, p101: &mut Baresip) {
    p100.command("dial", &format!("sip:101@127.0.0.1:{}", env.port));
    let up_100 = p100.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15));
    let up_101 = p101.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(5));
    assert!(
        up_100 && up_101,
        "call 100 → 101 not established (100: {up_100}, 101: {up_101})\n100 events:\n{}\n101 events:\n{}\nswitch log:\n{}",
        p100.events,
        p101.events,
        sw.log()
    );
}

fn hang_up(sw: &Switch, p100: &mut Baresip, p101: &mut Baresip) {
    p100.command("hangup", "");
    let down_100 = p100.wait_event("CALL_CLOSED", 1, Duration::from_secs(10));
    let down_101 = p101.wait_event("CALL_CLOSED", 1, Duration::from_secs(10));
    assert!(
        down_100 && down_101,
        "hangup did not close the call on both phones\nswitch log:\n{}",
        sw.log()
    );
    sw.assert_idle(Duration::from_secs(10));
}

#[test]
fn an_rfc4733_digit_from_a_phone_reaches_an_rfc4733_phone_as_rfc4733() {
    require_baresip();
    let mut env = env_with_modes("rfc4733", "rfc4733");
    let mut sw = env.start();
    let mut p100 = Baresip::start(&env, &BaresipSpec::new("100", PW100, 600.0));
    let mut p101 = Baresip::start(&env, &BaresipSpec::new("101", PW101, 1400.0));
    establish(&env, &sw, &mut p100, &mut p101);
    std::thread::sleep(Duration::from_millis(500));
    p100.command("sndcode", "5");
    let got = p101.wait_event("CALL_DTMF_START", 1, Duration::from_secs(5));
    assert!(
        got,
        "101 got no RFC 4733 digit; events:\n{}\nswitch log:\n{}",
        p101.events,
        sw.log()
    );
    assert_eq!(dtmf_keys(&p101), "5", "{}", p101.events);
    assert_eq!(switch_digits(&sw, 1), [('5', DtmfSource::Rfc4733)]);
    hang_up(&sw, &mut p100, &mut p101);
    p100.stop();
    p101.stop();
    assert_calls_answered(&sw, 1);
    sw.stop();
}

#[test]
fn inband_digits_reach_an_rfc4733_phone_as_rfc4733_and_its_digit_comes_back_as_tones() {
    require_baresip();
    let mut env = env_with_modes("inband", "rfc4733");
    let mut sw = env.start();
    let mut p100 = Baresip::start(
        &env,
        &BaresipSpec {
            record: true,
            ..BaresipSpec::new("100", PW100, 600.0)
        },
    );
    // 100's microphone: the tones of 1, 5 and 9 after 2 s (aufile opens its
    // file when the call's audio starts).
    write_wav(
        &p100.dir.join("tone.wav"),
        &digits_audio(Duration::from_secs(2), "159"),
    );
    let mut p101 = Baresip::start(&env, &BaresipSpec::new("101", PW101, 1400.0));
    establish(&env, &sw, &mut p100, &mut p101);
    let got = p101.wait_event("CALL_DTMF_START", 3, Duration::from_secs(10));
    assert!(
        got,
        "101 did not get the three in-band digits as RFC 4733: {:?}\n101 events:\n{}\nswitch log:\n{}",
        dtmf_keys(&p101),
        p101.events,
        sw.log()
    );
    assert_eq!(dtmf_keys(&p101), "159");
    // The reverse: 101's RFC 4733 digit reaches 100 as tones.
    p101.command("sndcode", "7");
    let digits = switch_digits(&sw, 4);
    std::thread::sleep(Duration::from_secs(2));
    hang_up(&sw, &mut p100, &mut p101);
    let log_100 = p100.stop();
    p101.stop();
    assert_eq!(
        digits,
        [
            ('1', DtmfSource::Inband),
            ('5', DtmfSource::Inband),
            ('9', DtmfSource::Inband),
            ('7', DtmfSource::Rfc4733),
        ],
        "switch log:\n{}",
        sw.log()
    );
    let heard = p100.received().unwrap_or_else(|e| panic!("{e}\n{log_100}"));
    let found = detected_digits(&heard.samples, heard.rate);
    assert_eq!(
        found, "7",
        "100 (inband) must hear 101's digit as tones, and only it"
    );
    assert_calls_answered(&sw, 1);
    sw.stop();
}

#[test]
fn digits_reach_an_info_callee_as_sip_info_in_order_and_its_info_reaches_the_phone_as_rfc4733() {
    require_baresip();
    require_sipp();
    let mut env = env_with_modes("rfc4733", "info");
    let mut sw = env.start();
    let mut uas = registered_uas(
        &env,
        &sw,
        "uas-101",
        "101",
        PW101,
        "calls_uas_dtmf_info.xml",
    );
    let mut p100 = Baresip::start(&env, &BaresipSpec::new("100", PW100, 600.0));
    p100.command("dial", &format!("sip:101@127.0.0.1:{}", env.port));
    let up = p100.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15));
    assert!(
        up,
        "call not established\n{}",
        describe(&env, &sw, &["uas-101"])
    );
    std::thread::sleep(Duration::from_millis(500));
    p100.command("sndcode", "5");
    std::thread::sleep(Duration::from_millis(600));
    p100.command("sndcode", "6");
    // The callee's INFO (digit 8) reaches 100 as RFC 4733.
    let got = p100.wait_event("CALL_DTMF_START", 1, Duration::from_secs(10));
    let keys = dtmf_keys(&p100);
    p100.command("hangup", "");
    let run = uas.wait();
    p100.stop();
    assert!(
        run.ok(),
        "the info callee did not get INFO 5 then INFO 6 (or its own INFO was not answered): {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uas-101"])
    );
    assert!(got, "100 got no RFC 4733 digit from the callee's INFO");
    assert_eq!(keys, "8");
    let infos: Vec<String> = sipp_messages(env.path(), "uas-101")
        .into_iter()
        .filter(|m| m.contains("received") && m.lines().any(|l| l.trim().starts_with("INFO ")))
        .collect();
    assert_eq!(infos.len(), 2, "{infos:#?}");
    assert!(
        infos[0].contains("Signal=5") && infos[1].contains("Signal=6"),
        "{infos:#?}"
    );
    assert_eq!(
        switch_digits(&sw, 3),
        [
            ('5', DtmfSource::Rfc4733),
            ('6', DtmfSource::Rfc4733),
            ('8', DtmfSource::SipInfo),
        ]
    );
    sw.stop();
}
