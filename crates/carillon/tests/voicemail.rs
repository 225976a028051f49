//! Voicemail through the real switch and a real phone (issue 14), with
//! the example configuration of `config/` (mailbox 600, VoiceMailMain at
//! 2000): baresip 100 plays a 600 Hz tone as its microphone, records what
//! it hears and presses RFC 4733 digits. Assertions read the switch's
//! events (`voicemail_left`, `voicemail_deleted`, `recording_*`,
//! `app_finished` with `VMSTATUS`), the WAV files under
//! `var/voicemail`, the `voicemail_messages` rows in SQLite, and the
//! energy of what the caller heard.

mod callsupport;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::ivr::*;
use callsupport::*;
use carillon_events::SwitchEvent;

const TONE_100: f64 = 600.0;
const GAP: Duration = Duration::from_millis(350);

fn example_env() -> CallEnv {
    CallEnv::new(&Options {
        security: md5_only(),
        ..Options::default()
    })
}

fn caller(env: &CallEnv) -> Baresip {
    Baresip::start(
        env,
        &BaresipSpec {
            record: true,
            ..BaresipSpec::new("100", PW100, TONE_100)
        },
    )
}

/// The rows of `voicemail_messages` (bounded wait for `n` of them).
fn wait_rows(url: &str, n: usize) -> Vec<carillon_voicemail::Message> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = block_on(async {
            let Ok(store) = carillon_store::Store::connect(url).await else {
                return Vec::new();
            };
            let rows = store.load_voicemail_messages().await.unwrap_or_default();
            store.close().await;
            rows
        });
        if rows.len() == n || std::time::Instant::now() >= deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (bounded) until `path` is gone.
fn wait_gone(path: &Path) -> bool {
    for _ in 0..100 {
        if !path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The `app_finished` result of `app` (the last one).
fn finished(sw: &Switch, app: &str) -> Option<String> {
    apps_finished(sw)
        .into_iter()
        .rev()
        .find(|(a, _)| a == app)
        .map(|(_, r)| r)
}

/// Seconds (100 ms blocks) in which `hz` carries most of the energy.
fn tone_seconds(wav: &Wav, hz: f64) -> f64 {
    let block = usize::try_from(wav.rate / 10).unwrap_or(800);
    let blocks = wav
        .samples
        .chunks_exact(block)
        .filter(|c| {
            let total: f64 = c.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            if total / (c.len() as f64) < 300.0 * 300.0 {
                return false;
            }
            // Goertzel power at `hz`, normalised to the block's energy.
            let w = 2.0 * std::f64::consts::PI * hz / f64::from(wav.rate);
            let (mut s1, mut s2) = (0.0, 0.0);
            for &x in c.iter() {
                let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
            power / (total * c.len() as f64 / 2.0) > 0.5
        })
        .count();
    blocks as f64 / 10.0
}

/// 100 dials 600, speaks (its tone) for `speak`, presses `#`; the
/// `voicemail_left` event, if one came, and the recording's path.
fn leave_message(
    env: &CallEnv,
    sw: &Switch,
    p: &mut Baresip,
    nth_call: usize,
    speak: Duration,
) -> (Option<SwitchEvent>, PathBuf) {
    if nth_call == 1 {
        dial(env, sw, p, "600");
    } else {
        dial_again(env, sw, p, "600");
    }
    let started = sw.wait_events(nth_call, Duration::from_secs(20), |e| {
        matches!(e, SwitchEvent::RecordingStarted { .. })
    });
    assert!(
        started.len() >= nth_call,
        "VoiceMail never recorded: {:#?}\n{}",
        sw.events(),
        sw.log()
    );
    let SwitchEvent::RecordingStarted { path, .. } = &started[nth_call - 1].event else {
        unreachable!()
    };
    std::thread::sleep(speak);
    p.command("sndcode", "#");
    let done = sw.wait_events(nth_call, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::RecordingFinished { .. })
    });
    assert!(
        done.len() >= nth_call,
        "the recording never finished\n{}",
        sw.log()
    );
    wait_closed_n(sw, p, nth_call);
    let left = sw
        .events()
        .into_iter()
        .filter_map(|e| match e.event {
            e @ SwitchEvent::VoicemailLeft { .. } => Some(e),
            _ => None,
        })
        .nth(nth_call - 1);
    (left, PathBuf::from(path))
}

fn wait_closed_n(sw: &Switch, p: &mut Baresip, n: usize) {
    assert!(
        p.wait_event("CALL_CLOSED", n, Duration::from_secs(20)),
        "call {n} not closed; events:\n{}\nswitch log:\n{}",
        p.events,
        sw.log()
    );
}

#[test]
fn a_message_left_at_600_is_stored_then_heard_and_deleted_through_2000() {
    require_baresip();
    let mut env = example_env();
    let mut sw = env.start();
    let mut p100 = caller(&env);

    // 1. Leave ~3 s at 600, ended by '#'.
    let (left, path) = leave_message(&env, &sw, &mut p100, 1, Duration::from_secs(3));
    let Some(SwitchEvent::VoicemailLeft {
        mailbox,
        caller_num,
        duration_ms,
        path: left_path,
        message_id,
        ..
    }) = left
    else {
        panic!("no voicemail_left: {:#?}\n{}", sw.events(), sw.log());
    };
    assert_eq!((mailbox.as_str(), caller_num.as_str()), ("600", "100"));
    assert_eq!(PathBuf::from(&left_path), path);
    assert!(
        path.starts_with(env.path().join("var/voicemail/600")),
        "{}",
        path.display()
    );
    assert!(
        (2_500..=4_500).contains(&duration_ms),
        "message of {duration_ms} ms for ~3 s spoken"
    );
    let wav = read_wav(&path).unwrap();
    assert_eq!((wav.rate, wav.channels), (8000, 1));
    let wav_ms = wav.samples.len() as u64 * 1000 / 8000;
    assert!(
        wav_ms.abs_diff(duration_ms) <= 100,
        "file holds {wav_ms} ms, the event says {duration_ms} ms"
    );
    let toned = tone_seconds(&wav, TONE_100);
    assert!(
        toned >= 2.0,
        "the caller's tone is in {toned:.1} s of the message"
    );
    let rows = wait_rows(&env.db_url, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].id.as_str(),
            rows[0].mailbox.as_str(),
            rows[0].caller_num.as_str(),
            rows[0].duration_ms,
            rows[0].read,
            rows[0].folder
        ),
        (
            message_id.as_str(),
            "600",
            "100",
            duration_ms,
            false,
            carillon_voicemail::Folder::Inbox
        )
    );
    assert_eq!(finished(&sw, "VoiceMail").as_deref(), Some("SUCCESS"));

    // 2. 2000: mailbox 600, PIN 6000, 1 plays it, 7 deletes it, # leaves.
    dial_again(&env, &sw, &mut p100, "2000");
    std::thread::sleep(Duration::from_millis(800));
    send_digits(&mut p100, "600#", GAP);
    std::thread::sleep(Duration::from_millis(800));
    send_digits(&mut p100, "6000#", GAP);
    // The counts ("you have 1 new message, 0 old messages", ~5 s) then the
    // menu; 1 stops it and plays the message (~3 s) and its menu.
    std::thread::sleep(Duration::from_secs(2));
    send_digits(&mut p100, "1", GAP);
    std::thread::sleep(Duration::from_secs(5));
    send_digits(&mut p100, "7", GAP);
    let deleted = sw.wait_events(1, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::VoicemailDeleted { .. })
    });
    assert_eq!(deleted.len(), 1, "no voicemail_deleted\n{}", sw.log());
    std::thread::sleep(Duration::from_secs(2));
    send_digits(&mut p100, "#", GAP);
    wait_closed_n(&sw, &mut p100, 2);
    assert_eq!(finished(&sw, "VoiceMailMain").as_deref(), Some("SUCCESS"));
    assert!(wait_gone(&path), "{} not deleted", path.display());
    assert!(
        wait_rows(&env.db_url, 0).is_empty(),
        "the row is still there"
    );

    let log = p100.stop();
    let heard = p100.received_all().unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(heard.len(), 2, "two calls recorded");
    let replayed = tone_seconds(&heard[1], TONE_100);
    assert!(
        replayed >= 2.0,
        "100 heard its own message's tone for {replayed:.1} s through 2000\n{}",
        sw.log()
    );
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn a_message_under_a_second_is_discarded_with_its_file() {
    require_baresip();
    let mut env = example_env();
    let mut sw = env.start();
    let mut p100 = caller(&env);
    let (left, path) = leave_message(&env, &sw, &mut p100, 1, Duration::from_millis(200));
    assert!(left.is_none(), "a short message was kept: {left:?}");
    let recorded = sw.events().into_iter().find_map(|e| match e.event {
        SwitchEvent::RecordingFinished { duration_ms, .. } => Some(duration_ms),
        _ => None,
    });
    assert!(
        recorded.is_some_and(|ms| ms < 1000),
        "recorded {recorded:?} ms"
    );
    assert!(wait_gone(&path), "{} was kept", path.display());
    assert!(wait_rows(&env.db_url, 0).is_empty());
    assert_eq!(finished(&sw, "VoiceMail").as_deref(), Some("FAILED"));
    p100.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn three_wrong_pins_at_2000_say_goodbye_and_hang_up() {
    require_baresip();
    let mut env = example_env();
    let mut sw = env.start();
    let mut p100 = caller(&env);
    dial(&env, &sw, &mut p100, "2000");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(800));
        send_digits(&mut p100, "600#", GAP);
        std::thread::sleep(Duration::from_millis(800));
        send_digits(&mut p100, "1111#", GAP);
        // "Login incorrect" (~1.5 s) plays before the next try.
        std::thread::sleep(Duration::from_millis(1800));
    }
    wait_closed(&sw, &mut p100, Duration::from_secs(15));
    assert_eq!(finished(&sw, "VoiceMailMain").as_deref(), Some("USEREXIT"));
    assert_eq!(caller_hangup_cause(&sw, 1), 16);
    assert_eq!(digits_from_100(&sw), "600#1111#".repeat(3));
    p100.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn a_caller_hanging_up_while_recording_still_leaves_the_message() {
    require_baresip();
    let mut env = example_env();
    let mut sw = env.start();
    let mut p100 = caller(&env);
    dial(&env, &sw, &mut p100, "600");
    let started = sw.wait_events(1, Duration::from_secs(20), |e| {
        matches!(e, SwitchEvent::RecordingStarted { .. })
    });
    assert_eq!(started.len(), 1, "VoiceMail never recorded\n{}", sw.log());
    std::thread::sleep(Duration::from_secs(3));
    p100.command("hangup", "");
    wait_closed(&sw, &mut p100, Duration::from_secs(10));
    let left = sw.wait_events(1, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::VoicemailLeft { .. })
    });
    let Some(SwitchEvent::VoicemailLeft {
        duration_ms, path, ..
    }) = left.first().map(|e| e.event.clone())
    else {
        panic!("no voicemail_left after the hangup\n{}", sw.log());
    };
    assert!(
        (2_500..=4_500).contains(&duration_ms),
        "message of {duration_ms} ms for ~3 s spoken"
    );
    assert!(read_wav(Path::new(&path)).is_ok(), "{path}");
    let rows = wait_rows(&env.db_url, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].duration_ms, duration_ms);
    p100.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

/// A one-mail SMTP sink on 127.0.0.1 (its own thread, every read bounded):
/// its address and the transcript of what the client sent.
fn smtp_sink() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return format!("no connection: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut seen = String::new();
        let _ = w.write_all(b"220 sink\r\n");
        let mut in_data = false;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            seen.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    let _ = w.write_all(b"250 queued\r\n");
                }
                continue;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("") {
                "DATA" => {
                    in_data = true;
                    b"354 go\r\n"
                }
                "QUIT" => {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                }
                _ => b"250 ok\r\n",
            };
            let _ = w.write_all(reply);
        }
        seen
    });
    (addr, handle)
}

#[test]
fn a_new_message_is_mailed_with_its_wav_through_the_configured_relay() {
    use base64::Engine;
    require_baresip();
    let mut env = example_env();
    let (relay, sink) = smtp_sink();
    let path = env.config_dir().join("voicemail.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replacen(
            "[voicemail]\n",
            &format!("[voicemail]\nsmtp = \"{relay}\"\n"),
            1,
        )
        .replacen(
            "[mailbox.600]\n",
            "[mailbox.600]\nemail = \"quality@example.com\"\n",
            1,
        );
    std::fs::write(&path, text).unwrap();
    let mut sw = env.start();
    let mut p100 = caller(&env);
    let (left, wav_path) = leave_message(&env, &sw, &mut p100, 1, Duration::from_secs(2));
    assert!(left.is_some(), "no message left\n{}", sw.log());
    let seen = sink.join().unwrap();
    assert!(
        seen.contains("RCPT TO:<quality@example.com>\r\n"),
        "{seen}\n{}",
        sw.log()
    );
    assert!(
        seen.contains("Subject: New voicemail in mailbox 600 from 100"),
        "{seen}"
    );
    let b64: String = seen
        .split("Content-Disposition: attachment;")
        .nth(1)
        .and_then(|s| s.split("\r\n\r\n").nth(1))
        .and_then(|s| s.split("--carillon-").next())
        .unwrap_or_default()
        .lines()
        .collect();
    let attached = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        attached,
        std::fs::read(&wav_path).unwrap(),
        "the attachment is the WAV"
    );
    p100.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn in_the_example_101_not_answering_sends_the_caller_to_its_voicemail() {
    require_baresip();
    let mut env = example_env();
    let mut sw = env.start();
    // 101 rings but never answers (manual answer mode).
    let mut p101 = Baresip::start(
        &env,
        &BaresipSpec {
            answermode: "manual",
            ..BaresipSpec::new("101", PW101, 1000.0)
        },
    );
    assert!(
        p101.wait_event("REGISTER_OK", 1, Duration::from_secs(10)),
        "101 did not register\n{}",
        p101.events
    );
    let mut p100 = caller(&env);
    p100.command("dial", &format!("sip:101@127.0.0.1:{}", env.port));
    // The example's Dial rings 101 for 30 s, then VoiceMail answers.
    assert!(
        p100.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(45)),
        "the caller was never answered by voicemail\n{}",
        sw.log()
    );
    let started = sw.wait_events(1, Duration::from_secs(40), |e| {
        matches!(e, SwitchEvent::RecordingStarted { .. })
    });
    assert_eq!(started.len(), 1, "VoiceMail never recorded\n{}", sw.log());
    std::thread::sleep(Duration::from_secs(2));
    p100.command("sndcode", "#");
    wait_closed(&sw, &mut p100, Duration::from_secs(15));
    assert!(apps_finished(&sw).contains(&("Dial".into(), "NOANSWER".into())));
    let left = sw.wait_events(1, Duration::from_secs(10), |e| {
        matches!(e, SwitchEvent::VoicemailLeft { .. })
    });
    assert!(
        matches!(
            left.first().map(|e| &e.event),
            Some(SwitchEvent::VoicemailLeft { mailbox, caller_num, .. })
                if mailbox == "101" && caller_num == "100"
        ),
        "{left:?}\n{}",
        sw.log()
    );
    assert_eq!(wait_rows(&env.db_url, 1).len(), 1);
    p100.stop();
    p101.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}
