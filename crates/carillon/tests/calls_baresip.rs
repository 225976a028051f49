//! Calls between two real softphones through the switch: baresip
//! instances registered as 100 and 101 (driven over ctrl_tcp), each
//! playing its own tone as microphone (aufile: 100 plays 600 Hz, 101 plays
//! 1400 Hz) and recording what it receives (sndfile, `dump-*-dec.wav`).
//! 100 dials 101 (auto-answer), the call is held about 5 s, 100 hangs up;
//! each recording must be dominated by the OTHER side's tone.
//!
//! Then the same with 100 restricted to PCMU and 101 to PCMA (in baresip
//! and in users.toml), so that the relay must transcode; each side's SDP
//! must have negotiated its own codec.

mod callsupport;

use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::*;

const TONE_100: f64 = 600.0;
const TONE_101: f64 = 1400.0;

/// A phone of these tests: auto-answer over UDP, recording what it hears.
fn phone(env: &CallEnv, user: &str, password: &str, tone_hz: f64, codecs: &str) -> Baresip {
    Baresip::start(
        env,
        &BaresipSpec {
            codecs,
            record: true,
            ..BaresipSpec::new(user, password, tone_hz)
        },
    )
}

/// What one call between the two phones showed.
struct Outcome {
    log_100: String,
    log_101: String,
    heard_by_100: Wav,
    heard_by_101: Wav,
}

fn call_between_phones(
    env: &mut CallEnv,
    sw: &Switch,
    codecs_100: &str,
    codecs_101: &str,
) -> Outcome {
    let mut p100 = phone(env, "100", PW100, TONE_100, codecs_100);
    let mut p101 = phone(env, "101", PW101, TONE_101, codecs_101);
    p100.command("dial", &format!("sip:101@127.0.0.1:{}", env.port));
    let up_100 = p100.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(15));
    let up_101 = p101.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(5));
    assert!(
        up_100 && up_101,
        "call 100 → 101 not established (100: {up_100}, 101: {up_101})\n100 events:\n{}\n101 events:\n{}\n100 log:\n{}\n101 log:\n{}\nswitch log:\n{}",
        p100.events,
        p101.events,
        p100.log(),
        p101.log(),
        sw.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    p100.command("hangup", "");
    let down_100 = p100.wait_event("CALL_CLOSED", 1, Duration::from_secs(10));
    let down_101 = p101.wait_event("CALL_CLOSED", 1, Duration::from_secs(10));
    assert!(
        down_100 && down_101,
        "hangup by 100 did not close the call on both phones (100: {down_100}, 101: {down_101})\n101 events:\n{}\nswitch log:\n{}",
        p101.events,
        sw.log()
    );
    let log_100 = p100.stop();
    let log_101 = p101.stop();
    let heard_by_100 = p100.received().unwrap_or_else(|e| panic!("{e}\n{log_100}"));
    let heard_by_101 = p101.received().unwrap_or_else(|e| panic!("{e}\n{log_101}"));
    Outcome {
        log_100,
        log_101,
        heard_by_100,
        heard_by_101,
    }
}

/// The recording must hold at least 2 s of sound, most of it `expected_hz`
/// and almost none of the listener's own tone.
fn assert_heard(who: &str, wav: &Wav, expected_hz: f64, own_hz: f64) {
    let r = tone_report(wav, expected_hz, own_hz);
    eprintln!(
        "{who}: {:.1} s recorded at {} Hz, {r:?}",
        wav.samples.len() as f64 / f64::from(wav.rate.max(1)),
        wav.rate
    );
    assert!(
        r.voiced >= 20,
        "{who} received less than 2 s of sound: {r:?}"
    );
    assert!(
        r.expected * 10 >= r.voiced * 8,
        "{who}: the other side's {expected_hz} Hz dominates only {} of {} voiced 100 ms blocks: {r:?}",
        r.expected,
        r.voiced
    );
    assert!(
        r.other * 10 <= r.voiced,
        "{who} hears its own {own_hz} Hz tone in {} of {} blocks: {r:?}",
        r.other,
        r.voiced
    );
}

fn check_switch(sw: &mut Switch) {
    assert_calls_answered(sw, 1);
    let legs = sw.wait_lines("media leg closed", 2, Duration::from_secs(5));
    assert_eq!(legs.len(), 2, "log:\n{}", sw.log());
    for l in &legs {
        assert!(
            l.num("packets_in").unwrap_or(0) > 100 && l.num("packets_out").unwrap_or(0) > 100,
            "a relay leg carried too little RTP for a 5 s call: {}",
            l.raw
        );
    }
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    assert_eq!(sw.lines("call ended").len(), 1, "log:\n{}", sw.log());
}

/// The switch offers MD5 alone (see [`md5_only`]).
fn baresip_options() -> Options {
    Options {
        security: md5_only(),
        ..Options::default()
    }
}

#[test]
fn two_baresip_phones_hear_each_others_tone_through_the_switch() {
    require_baresip();
    let mut env = CallEnv::new(&baresip_options());
    let mut sw = env.start();
    let out = call_between_phones(&mut env, &sw, "PCMU,PCMA", "PCMU,PCMA");
    assert_heard("100", &out.heard_by_100, TONE_101, TONE_100);
    assert_heard("101", &out.heard_by_101, TONE_100, TONE_101);
    let _ = (&out.log_100, &out.log_101);
    check_switch(&mut sw);
}

/// The codec a baresip log says its audio stream sends with.
fn negotiated(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("audio") && (l.contains("PCMU") || l.contains("PCMA")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn pcmu_phone_and_pcma_phone_hear_each_other_through_transcoding() {
    require_baresip();
    let mut env = CallEnv::new(&Options {
        users_toml: Some(users_with_codecs(&["ulaw"], &["alaw"])),
        rust_log: Some("info,carillon_b2bua=debug".into()),
        ..baresip_options()
    });
    let mut sw = env.start();
    let out = call_between_phones(&mut env, &sw, "PCMU", "PCMA");
    let n100 = negotiated(&out.log_100);
    let n101 = negotiated(&out.log_101);
    eprintln!("100 codec lines: {n100:#?}\n101 codec lines: {n101:#?}");
    assert!(
        !n100.is_empty()
            && n100
                .iter()
                .all(|l| l.contains("PCMU") && !l.contains("PCMA")),
        "100 (PCMU only) did not negotiate PCMU alone:\n{}",
        out.log_100
    );
    assert!(
        !n101.is_empty()
            && n101
                .iter()
                .all(|l| l.contains("PCMA") && !l.contains("PCMU")),
        "101 (PCMA only) did not negotiate PCMA alone:\n{}",
        out.log_101
    );
    assert_heard("100", &out.heard_by_100, TONE_101, TONE_100);
    assert_heard("101", &out.heard_by_101, TONE_100, TONE_101);
    check_switch(&mut sw);
}
