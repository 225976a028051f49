//! The IVR applications driven through the interpreter: commands out,
//! handle_* in (playback done, digits, record done, timeouts, hangup),
//! on a fixed Instant base and a given wall clock.

use carillon_dialplan::{
    CallInfo, Command, DialStatus, DialTarget, Dialplan, Event, ExecError, Execution, HangupCause,
    RecordOutcome, RecordStatus, Sounds, ToneKind,
};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn t0() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(secs: f64) -> Instant {
    t0() + Duration::from_secs_f64(secs)
}

/// 2026-12-06 (a Sunday) at `hour:minute` UTC.
fn sunday_utc(hour: u64, minute: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_083_200 + 5 * 86_400 + hour * 3600 + minute * 60)
}

fn plan(text: &str) -> Dialplan {
    match Dialplan::load_with_sounds("t.toml", text, Sounds::unscanned("/s")) {
        Ok(plan) => plan,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("{}", lines.join("\n"));
        }
    }
}

fn problems(text: &str) -> Vec<String> {
    Dialplan::load_with_sounds("t.toml", text, Sounds::unscanned("/s"))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn info() -> CallInfo {
    CallInfo {
        caller_num: "0300555".into(),
        caller_name: "Caller".into(),
        uniqueid: "1765000000.7".into(),
        variables: vec![],
        language: None,
    }
}

fn start(plan: &Dialplan, exten: &str) -> Execution {
    Execution::start(plan, "c", exten, info(), t0(), sunday_utc(5, 0)).unwrap()
}

fn cmds(exec: &mut Execution) -> Vec<Command> {
    std::iter::from_fn(|| exec.poll_command()).collect()
}

fn events(exec: &mut Execution) -> Vec<Event> {
    std::iter::from_fn(|| exec.poll_event()).collect()
}

fn play(files: &[&str], interruptible: bool) -> Command {
    Command::Play {
        files: files.iter().map(PathBuf::from).collect(),
        interruptible,
    }
}

fn hangup(code: u8) -> Command {
    Command::Hangup {
        cause: HangupCause::new(code).unwrap(),
    }
}

fn one_ext(steps: &str) -> String {
    format!("[context.c]\n[[context.c.extension]]\nmatch = \"s\"\nsteps = [\n{steps}\n]\n")
}

#[test]
fn playback_answers_plays_the_resolved_files_and_continues_when_done() {
    let p = plan(&one_ext(
        r#"{ app = "Playback", file = ["hello", "digits/1"] }, { app = "Hangup", cause = 21 }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [
            Command::Answer,
            play(&["/s/en/hello.wav", "/s/en/digits/1.wav"], false)
        ]
    );
    // Playback is not interruptible: a digit changes nothing.
    e.handle_digit(at(1.0), '5');
    assert!(cmds(&mut e).is_empty());
    assert_eq!(e.poll_timeout(), None);
    e.handle_playback_done(at(2.0));
    assert_eq!(cmds(&mut e), [hangup(21)]);
    assert!(e.is_finished());
}

#[test]
fn playback_options_noanswer_plays_without_answering_and_skip_skips_an_unanswered_channel() {
    let p = plan(&one_ext(
        r#"{ app = "Playback", file = "a", options = "skip" },
           { app = "Playback", file = "b", options = "noanswer" },
           { app = "Playback", file = "c" },
           { app = "Playback", file = "d", options = "skip" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(cmds(&mut e), [play(&["/s/en/b.wav"], false)]);
    e.handle_playback_done(at(1.0));
    assert_eq!(
        cmds(&mut e),
        [Command::Answer, play(&["/s/en/c.wav"], false)]
    );
    e.handle_playback_done(at(2.0));
    assert_eq!(cmds(&mut e), [play(&["/s/en/d.wav"], false)]);
}

#[test]
fn the_channel_language_picks_the_prompt_directory_and_is_readable() {
    let p = plan(&one_ext(
        r#"{ app = "Set", var = "CHANNEL(language)", value = "ar" },
           { app = "Set", var = "L", value = "${CHANNEL(language)}" },
           { app = "Set", var = "CHANNEL(language)", value = "../x" },
           { app = "Playback", file = "goodbye" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [Command::Answer, play(&["/s/ar/goodbye.wav"], false)]
    );
    assert_eq!(e.variable("L").as_deref(), Some("ar"));
    // A value that is not a language code is ignored.
    assert_eq!(e.language(), "ar");
}

#[test]
fn prompts_fall_back_to_english_when_the_language_lacks_them() {
    let sounds = Sounds::scan(&PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sounds"
    )))
    .unwrap();
    let dir = sounds.dir().to_path_buf();
    assert_eq!(
        sounds.resolve("goodbye", "fr"),
        Some(dir.join("fr/goodbye.wav"))
    );
    assert_eq!(
        sounds.resolve("goodbye", "de"),
        Some(dir.join("en/goodbye.wav"))
    );
    assert!(sounds.exists_in_any("digits/7"));
    assert!(!sounds.exists_in_any("no-such-prompt"));
}

const MENU: &str = r#"
[context.c]
[[context.c.extension]]
match = "s"
steps = [
  { app = "Background", file = "menu" },
  { app = "WaitExten", seconds = 5 },
]
[[context.c.extension]]
match = "1"
steps = [ { app = "Playback", file = "one" } ]
[[context.c.extension]]
match = "12"
steps = [ { app = "Playback", file = "twelve" } ]
[[context.c.extension]]
match = "2"
steps = [ { app = "Playback", file = "two" } ]
[[context.c.extension]]
match = "i"
steps = [ { app = "Playback", file = "invalid" } ]
[[context.c.extension]]
match = "t"
steps = [ { app = "Playback", file = "timeout" } ]
"#;

#[test]
fn background_stops_at_the_first_digit_which_selects_an_extension() {
    let p = plan(MENU);
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [Command::Answer, play(&["/s/en/menu.wav"], true)]
    );
    e.handle_digit(at(1.0), '2');
    assert_eq!(cmds(&mut e), [Command::StopPlay]);
    e.handle_digit(at(1.1), '3');
    assert!(cmds(&mut e).is_empty(), "one StopPlay only");
    e.handle_playback_done(at(1.2));
    // "23" matches nothing and cannot grow: i.
    assert_eq!(cmds(&mut e), [play(&["/s/en/invalid.wav"], false)]);
    assert_eq!(e.variable("INVALID_EXTEN").as_deref(), Some("23"));

    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_digit(at(1.0), '2');
    e.handle_playback_done(at(1.1));
    assert_eq!(
        cmds(&mut e),
        [Command::StopPlay, play(&["/s/en/two.wav"], false)]
    );
    assert_eq!(e.exten(), "2");
}

#[test]
fn a_digit_string_that_can_grow_waits_in_waitexten_for_more_or_its_timeout() {
    let p = plan(MENU);
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_digit(at(1.0), '1');
    e.handle_playback_done(at(1.1));
    // "1" exists but "12" too: WaitExten waits.
    assert_eq!(cmds(&mut e), [Command::StopPlay]);
    assert_eq!(e.poll_timeout(), Some(at(1.1) + Duration::from_secs(5)));
    e.handle_digit(at(2.0), '2');
    assert_eq!(cmds(&mut e), [play(&["/s/en/twelve.wav"], false)]);
    assert_eq!(e.exten(), "12");

    // The same "1" and then silence: the exact match is taken at the timeout.
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_digit(at(1.0), '1');
    e.handle_playback_done(at(1.1));
    e.handle_timeout(at(3.0));
    assert_eq!(cmds(&mut e), [Command::StopPlay], "not due yet");
    e.handle_timeout(at(6.1));
    assert_eq!(cmds(&mut e), [play(&["/s/en/one.wav"], false)]);
}

#[test]
fn waitexten_timeout_goes_to_t_and_an_unknown_digit_to_i() {
    let p = plan(MENU);
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_playback_done(at(3.0));
    assert_eq!(e.poll_timeout(), Some(at(8.0)));
    e.handle_timeout(at(8.0));
    assert_eq!(cmds(&mut e), [play(&["/s/en/timeout.wav"], false)]);
    assert_eq!(e.exten(), "t");

    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_playback_done(at(3.0));
    e.handle_digit(at(4.0), '9');
    assert_eq!(cmds(&mut e), [play(&["/s/en/invalid.wav"], false)]);
    assert_eq!(e.exten(), "i");
}

#[test]
fn without_t_or_i_extensions_waitexten_hangs_up_like_asterisk() {
    let p = plan(&one_ext(r#"{ app = "WaitExten", seconds = 2 }"#));
    let mut e = start(&p, "s");
    assert!(cmds(&mut e).is_empty());
    e.handle_timeout(at(2.0));
    assert_eq!(cmds(&mut e), [hangup(16)]);
    assert!(e.is_finished());
    let mut e = start(&p, "s");
    e.handle_digit(at(1.0), '4');
    assert_eq!(cmds(&mut e), [hangup(16)]);
}

const READ: &str = r#"{ app = "Read", var = "NUM", file = "enter", max_digits = 4, timeout = 3 },
  { app = "NoOp" }"#;

#[test]
fn read_collects_digits_until_hash_and_sets_readstatus_ok() {
    let p = plan(&one_ext(READ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [Command::Answer, play(&["/s/en/enter.wav"], true)]
    );
    e.handle_digit(at(1.0), '4');
    assert_eq!(cmds(&mut e), [Command::StopPlay]);
    e.handle_playback_done(at(1.1));
    assert_eq!(e.poll_timeout(), Some(at(4.1)));
    e.handle_digit(at(2.0), '2');
    assert_eq!(
        e.poll_timeout(),
        Some(at(5.0)),
        "each digit restarts the timeout"
    );
    e.handle_digit(at(2.5), '#');
    assert_eq!(e.variable("NUM").as_deref(), Some("42"));
    assert_eq!(e.variable("READSTATUS").as_deref(), Some("OK"));
    assert_eq!(cmds(&mut e), [hangup(16)]);
}

#[test]
fn read_ends_at_max_digits_and_times_out_with_nothing() {
    let p = plan(&one_ext(READ));
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_playback_done(at(2.0));
    for (i, d) in "98765".chars().enumerate() {
        e.handle_digit(at(3.0 + i as f64 * 0.1), d);
    }
    assert_eq!(e.variable("NUM").as_deref(), Some("9876"));
    assert_eq!(e.variable("READSTATUS").as_deref(), Some("OK"));

    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_playback_done(at(2.0));
    e.handle_timeout(at(5.0));
    assert_eq!(e.variable("NUM").as_deref(), Some(""));
    assert_eq!(e.variable("READSTATUS").as_deref(), Some("TIMEOUT"));
    assert_eq!(cmds(&mut e), [hangup(16)]);
}

#[test]
fn read_ended_by_hash_during_its_prompt_waits_for_the_stopped_prompt() {
    let p = plan(&one_ext(READ));
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_digit(at(1.0), '7');
    e.handle_digit(at(1.1), '#');
    assert_eq!(cmds(&mut e), [Command::StopPlay]);
    assert_eq!(e.variable("NUM"), None, "not before the prompt stopped");
    e.handle_playback_done(at(1.2));
    assert_eq!(e.variable("NUM").as_deref(), Some("7"));
}

#[test]
fn saydigits_and_saynumber_play_digit_prompts_in_the_channel_language() {
    let p = plan(&one_ext(
        r#"{ app = "SayDigits", digits = "${CALLERID(num):0:3}" },
           { app = "Set", var = "CHANNEL(language)", value = "fr" },
           { app = "SayNumber", number = 71 },
           { app = "SayNumber", number = "abc" },
           { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [play(
            &[
                "/s/en/digits/0.wav",
                "/s/en/digits/3.wav",
                "/s/en/digits/0.wav"
            ],
            false
        )]
    );
    e.handle_playback_done(at(1.0));
    assert_eq!(
        cmds(&mut e),
        [play(
            &[
                "/s/fr/digits/60.wav",
                "/s/fr/digits/et.wav",
                "/s/fr/digits/11.wav"
            ],
            false
        )]
    );
    e.handle_playback_done(at(2.0));
    // Not a number: nothing said.
    assert_eq!(cmds(&mut e), [hangup(16)]);
}

#[test]
fn sayalpha_spells_letters_digits_and_keys_and_saydigits_says_star_and_hash() {
    let p = plan(&one_ext(
        r#"{ app = "Set", var = "CODE", value = "Ab-1*#" },
           { app = "SayAlpha", text = "${CODE}" },
           { app = "Set", var = "CHANNEL(language)", value = "ar" },
           { app = "SayDigits", digits = "12*#x" },
           { app = "SayAlpha", text = "-- +" },
           { app = "SayAlpha", text = 42 },
           { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    // Like SayDigits: plays without answering, letters in lower case,
    // `-` skipped.
    assert_eq!(
        cmds(&mut e),
        [play(
            &[
                "/s/en/letters/a.wav",
                "/s/en/letters/b.wav",
                "/s/en/digits/1.wav",
                "/s/en/digits/star.wav",
                "/s/en/digits/pound.wav"
            ],
            false
        )]
    );
    assert_eq!(e.poll_timeout(), None, "waits for the playback");
    e.handle_playback_done(at(1.0));
    assert_eq!(
        cmds(&mut e),
        [play(
            &[
                "/s/ar/digits/1.wav",
                "/s/ar/digits/2.wav",
                "/s/ar/digits/star.wav",
                "/s/ar/digits/pound.wav"
            ],
            false
        )]
    );
    e.handle_playback_done(at(2.0));
    // Nothing to say in "-- +": straight on to the next step.
    assert_eq!(
        cmds(&mut e),
        [play(&["/s/ar/digits/4.wav", "/s/ar/digits/2.wav"], false)]
    );
    e.handle_playback_done(at(3.0));
    assert_eq!(cmds(&mut e), [hangup(16)]);
}

#[test]
fn sayalpha_falls_back_to_english_letters_for_a_language_without_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sounds");
    let sounds = Sounds::scan(&dir).expect("the repository's sounds/");
    let p = Dialplan::load_with_sounds(
        "t.toml",
        &one_ext(
            r#"{ app = "Set", var = "CHANNEL(language)", value = "de" },
               { app = "SayAlpha", text = "Z" },
               { app = "Set", var = "CHANNEL(language)", value = "ur" },
               { app = "SayAlpha", text = "z" }"#,
        ),
        sounds.clone(),
    )
    .map_err(|p| p[0].to_string())
    .expect("plan");
    let mut e = start(&p, "s");
    let en = sounds.dir().join("en/letters/z.wav");
    assert_eq!(
        cmds(&mut e),
        [Command::Play {
            files: vec![en],
            interruptible: false
        }]
    );
    e.handle_playback_done(at(1.0));
    let ur = sounds.dir().join("ur/letters/z.wav");
    assert!(ur.is_file());
    assert_eq!(
        cmds(&mut e),
        [Command::Play {
            files: vec![ur],
            interruptible: false
        }]
    );
}

const RECORD: &str = r#"{ app = "Record", file = "/var/rec/${UNIQUEID}.wav", max_silence = 3, max_duration = 60 },
  { app = "NoOp" }"#;

#[test]
fn record_answers_records_and_hash_stops_it_with_record_status_dtmf() {
    let p = plan(&one_ext(RECORD));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [
            Command::Answer,
            Command::Record {
                path: PathBuf::from("/var/rec/1765000000.7.wav"),
                max_silence: Some(Duration::from_secs(3)),
                max_duration: Some(Duration::from_secs(60)),
                beep: true,
            }
        ]
    );
    e.handle_digit(at(5.0), '#');
    assert_eq!(cmds(&mut e), [Command::StopRecord]);
    e.handle_record_done(
        at(5.1),
        RecordOutcome {
            status: RecordStatus::Error,
            duration_ms: None,
        },
    );
    assert_eq!(e.variable("RECORD_STATUS").as_deref(), Some("DTMF"));
    assert_eq!(cmds(&mut e), [hangup(16)]);
}

#[test]
fn record_status_follows_the_media_outcome_and_a_hangup() {
    let p = plan(&one_ext(RECORD));
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_record_done(
        at(9.0),
        RecordOutcome {
            status: RecordStatus::Silence,
            duration_ms: None,
        },
    );
    assert_eq!(e.variable("RECORD_STATUS").as_deref(), Some("SILENCE"));

    let p = plan(&format!(
        "{}[[context.c.extension]]\nmatch = \"h\"\nsteps = [ {{ app = \"Set\", var = \"SEEN\", value = \"${{RECORD_STATUS}}\" }} ]\n",
        one_ext(RECORD)
    ));
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_caller_hangup(at(4.0));
    assert_eq!(e.variable("SEEN").as_deref(), Some("HANGUP"));
    assert!(cmds(&mut e).is_empty());
    assert!(e.is_finished());
}

#[test]
fn progress_and_ringing_are_commands_that_do_not_block() {
    let p = plan(&one_ext(
        r#"{ app = "Progress" }, { app = "Ringing" }, { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [Command::Progress, Command::Ringing, hangup(16)]
    );
}

#[test]
fn busy_and_congestion_hang_up_an_unanswered_call_with_17_and_34() {
    let p = plan(&one_ext(r#"{ app = "Busy" }"#));
    let mut e = start(&p, "s");
    assert_eq!(cmds(&mut e), [hangup(17)]);
    let p = plan(&one_ext(r#"{ app = "Congestion" }"#));
    let mut e = start(&p, "s");
    assert_eq!(cmds(&mut e), [hangup(34)]);
}

#[test]
fn congestion_on_an_answered_call_plays_its_tone_for_a_bounded_time_then_hangs_up() {
    let p = plan(&one_ext(
        r#"{ app = "Answer" }, { app = "Congestion", timeout = 4 }"#,
    ));
    let mut e = start(&p, "s");
    let c = cmds(&mut e);
    assert_eq!(c.len(), 2, "{c:?}");
    match &c[1] {
        Command::PlayTones {
            kind,
            tone,
            duration,
        } => {
            assert_eq!(*kind, ToneKind::Congestion);
            assert_eq!(*duration, None);
            // Pakistan by default: 400 Hz, 250 ms on / 250 ms off.
            assert_eq!(tone.segments[0].freqs, [Some(400), None]);
            assert_eq!(tone.segments[0].duration, Duration::from_millis(250));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.poll_timeout(), Some(at(4.0)));
    e.handle_timeout(at(4.0));
    assert_eq!(cmds(&mut e), [hangup(34)]);
}

#[test]
fn playtones_uses_the_step_country_else_tonezone_else_pakistan() {
    let text = format!(
        "[globals]\nTONEZONE = \"uk\"\n{}",
        one_ext(
            r#"{ app = "Playtones", tone = "busy" },
               { app = "Playtones", tone = "ring", country = "us" },
               { app = "StopPlaytones" }"#
        )
    );
    let p = plan(&text);
    let mut e = start(&p, "s");
    let c = cmds(&mut e);
    let Command::PlayTones { kind, tone, .. } = &c[0] else {
        panic!("{c:?}")
    };
    assert_eq!(*kind, ToneKind::Busy);
    assert_eq!(
        tone.segments[0].duration,
        Duration::from_millis(375),
        "uk busy"
    );
    let Command::PlayTones { tone, .. } = &c[1] else {
        panic!("{c:?}")
    };
    assert_eq!(tone.segments[0].freqs, [Some(440), Some(480)], "us ring");
    assert_eq!(c[2], Command::StopPlay);
    assert!(
        problems(&one_ext(r#"{ app = "Playtones", tone = "beep" }"#))[0]
            .contains("unknown tone 'beep'")
    );
    assert!(problems(&one_ext(
        r#"{ app = "Playtones", tone = "ring", country = "zz" }"#
    ))[0]
        .contains("no tones for country 'zz'"));
}

#[test]
fn mixmonitor_names_its_file_or_leaves_it_to_the_host_and_d_means_stereo() {
    let p = plan(&one_ext(
        r#"{ app = "MixMonitor", file = "${UNIQUEID}-${CALLERID(num)}.wav", options = "D" },
           { app = "MixMonitor" },
           { app = "StopMixMonitor" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e)[..3],
        [
            Command::MixMonitor {
                file: Some("1765000000.7-0300555.wav".into()),
                stereo: true
            },
            Command::MixMonitor {
                file: None,
                stereo: false
            },
            Command::StopMixMonitor,
        ]
    );
    assert!(
        problems(&one_ext(r#"{ app = "MixMonitor", options = "b" }"#))[0]
            .contains("unsupported MixMonitor option 'b'")
    );
}

const HOURS: &str = r#"
[globals]
HOURS = "09:00-18:00"
[context.c]
[[context.c.extension]]
match = "s"
steps = [
  { app = "GotoIfTime", times = "${HOURS}", weekdays = "sun-thu", timezone = "Asia/Karachi", then = "open,1", else = "closed,1" },
]
[[context.c.extension]]
match = "open"
steps = [ { app = "Hangup", cause = 16 } ]
[[context.c.extension]]
match = "closed"
steps = [ { app = "Hangup", cause = 21 } ]
"#;

#[test]
fn gotoiftime_takes_then_inside_the_hours_in_their_time_zone_and_else_outside() {
    let p = plan(HOURS);
    let at_wall = |wall: SystemTime| {
        let mut e = Execution::start(&p, "c", "s", info(), t0(), wall).unwrap();
        cmds(&mut e)
    };
    // Sunday 05:00Z = 10:00 in Karachi: open.
    assert_eq!(at_wall(sunday_utc(5, 0)), [hangup(16)]);
    // Sunday 13:30Z = 18:30 in Karachi: closed.
    assert_eq!(at_wall(sunday_utc(13, 30)), [hangup(21)]);
    // Saturday 10:00 Karachi: closed.
    assert_eq!(
        at_wall(sunday_utc(5, 0) - Duration::from_secs(86_400)),
        [hangup(21)]
    );
}

#[test]
fn gotoiftime_uses_the_wall_clock_advanced_by_the_execution_time() {
    let text = HOURS.replace(
        "steps = [\n  { app = \"GotoIfTime\"",
        "steps = [\n  { app = \"Wait\", seconds = 3600 },\n  { app = \"GotoIfTime\"",
    );
    let p = plan(&text);
    // 12:30Z = 17:30 Karachi; after the hour's Wait it is 18:30: closed.
    let mut e = Execution::start(&p, "c", "s", info(), t0(), sunday_utc(12, 30)).unwrap();
    assert!(cmds(&mut e).is_empty());
    e.handle_timeout(at(3600.0));
    assert_eq!(cmds(&mut e), [hangup(21)]);
}

#[test]
fn a_bad_time_condition_is_a_load_error_even_through_a_global() {
    let found = problems(&HOURS.replace("\"09:00-18:00\"", "\"9-18\""));
    assert!(
        found[0].contains("steps[0].times: bad time range '9-18'"),
        "{found:?}"
    );
    let found = problems(&HOURS.replace("Asia/Karachi", "Asia/Nowhere"));
    assert!(
        found[0].contains("unknown time zone 'Asia/Nowhere'"),
        "{found:?}"
    );
}

#[test]
fn gosub_returns_to_the_step_after_it_and_return_without_gosub_fails() {
    let p = plan(
        r#"
[context.c]
[[context.c.extension]]
match = "s"
steps = [
  { app = "Gosub", target = "sub,1" },
  { app = "Hangup", cause = "${X}" },
]
[[context.c.extension]]
match = "sub"
steps = [ { app = "Set", var = "X", value = "1" }, { app = "Return" } ]
[[context.c.extension]]
match = "r"
steps = [ { app = "Return" } ]
"#
        .replace("cause = \"${X}\"", "cause = 18")
        .as_str(),
    );
    let mut e = start(&p, "s");
    assert_eq!(cmds(&mut e), [hangup(18)]);
    assert_eq!(e.variable("X").as_deref(), Some("1"));
    assert_eq!(e.exten(), "s");
    let mut e = start(&p, "r");
    assert_eq!(cmds(&mut e), [hangup(41)]);
    assert_eq!(
        events(&mut e),
        [Event::Failed(ExecError::ReturnWithoutGosub)]
    );
}

#[test]
fn execif_runs_its_then_or_else_step_inline() {
    let p = plan(&one_ext(
        r#"{ app = "ExecIf", condition = "${CALLERID(num)} = 0300555", then = { app = "Set", var = "A", value = "yes" }, else = { app = "Set", var = "A", value = "no" } },
           { app = "ExecIf", condition = "1 = 2", then = { app = "Hangup", cause = 21 } },
           { app = "ExecIf", condition = "1 = 1", then = { app = "Playback", file = "x" } },
           { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [Command::Answer, play(&["/s/en/x.wav"], false)]
    );
    assert_eq!(e.variable("A").as_deref(), Some("yes"));
    e.handle_playback_done(at(1.0));
    assert_eq!(cmds(&mut e), [hangup(16)]);
    assert!(problems(&one_ext(
        r#"{ app = "ExecIf", condition = "1", then = { app = "Nope" } }"#
    ))[0]
        .contains("unknown application 'Nope'"));
}

#[test]
fn callbackrequest_stores_the_numbers_with_caller_id_language_and_unique_id() {
    let p = plan(&one_ext(
        r#"{ app = "Set", var = "CB", value = "03001234567" },
           { app = "Set", var = "CHANNEL(language)", value = "fr" },
           { app = "CallbackRequest", number = "${CB}", alt_number = "042${CB:3:4}" },
           { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [
            Command::StoreCallback {
                uniqueid: "1765000000.7".into(),
                caller_num: "0300555".into(),
                number: "03001234567".into(),
                alt_number: "0420123".into(),
                language: "fr".into(),
            },
            hangup(16)
        ]
    );
}

#[test]
fn webhook_posts_the_chosen_variables_as_json_without_waiting() {
    let p = plan(&one_ext(
        r#"{ app = "Set", var = "NOTE", value = "say \"hi\"" },
           { app = "Webhook", url = "http://127.0.0.1:9/hook/${UNIQUEID}", vars = ["UNIQUEID", "CALLERID(num)", "NOTE", "UNSET"] },
           { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    assert_eq!(
        cmds(&mut e),
        [
            Command::Webhook {
                url: "http://127.0.0.1:9/hook/1765000000.7".into(),
                body: r#"{"UNIQUEID":"1765000000.7","CALLERID(num)":"0300555","NOTE":"say \"hi\"","UNSET":""}"#.into(),
                timeout: Duration::from_secs(5),
                retries: 3,
            },
            hangup(16)
        ]
    );
    assert!(
        problems(&one_ext(r#"{ app = "Webhook", url = "ftp://x" }"#))[0]
            .contains("must start with http:// or https://")
    );
}

#[test]
fn a_caller_hangup_runs_h_with_its_non_media_applications_only() {
    let p = plan(
        r#"
[context.c]
[[context.c.extension]]
match = "s"
steps = [ { app = "Playback", file = "long" } ]
[[context.c.extension]]
match = "h"
steps = [
  { app = "Playback", file = "never" },
  { app = "Set", var = "DONE", value = "yes" },
  { app = "CallbackRequest", number = "${CALLERID(num)}" },
  { app = "Hangup" },
]
"#,
    );
    let mut e = start(&p, "s");
    cmds(&mut e);
    e.handle_caller_hangup(at(2.0));
    assert_eq!(
        cmds(&mut e),
        [Command::StoreCallback {
            uniqueid: "1765000000.7".into(),
            caller_num: "0300555".into(),
            number: "0300555".into(),
            alt_number: String::new(),
            language: "en".into(),
        }],
        "no Play, no Hangup"
    );
    assert_eq!(e.variable("DONE").as_deref(), Some("yes"));
    assert_eq!(
        events(&mut e),
        [Event::Finished {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    // Late inputs change nothing.
    e.handle_playback_done(at(3.0));
    e.handle_caller_hangup(at(3.0));
    assert!(cmds(&mut e).is_empty());
}

#[test]
fn wait_is_the_executions_own_timer_and_early_timeouts_are_ignored() {
    let p = plan(&one_ext(
        r#"{ app = "Wait", seconds = 2.5 }, { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    assert!(cmds(&mut e).is_empty());
    assert_eq!(e.poll_timeout(), Some(at(2.5)));
    e.handle_timeout(at(1.0));
    assert!(cmds(&mut e).is_empty());
    assert_eq!(e.poll_timeout(), Some(at(2.5)));
    e.handle_timeout(at(2.5));
    assert_eq!(cmds(&mut e), [hangup(16)]);
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn bad_ivr_arguments_are_load_errors_at_their_keys() {
    let found = problems(&one_ext(
        r#"{ app = "Playback", file = "a", options = "loud" },
           { app = "Read", var = "EXTEN", file = "x" },
           { app = "Record", file = "../x.wav" },
           { app = "Playback", file = [] },
           { app = "Webhook", url = "http://127.0.0.1/", retries = 50 }"#,
    ));
    let joined = found.join("\n");
    assert!(
        joined.contains("steps[0].options: unknown option 'loud'"),
        "{joined}"
    );
    assert!(
        joined.contains("steps[1].var: EXTEN is read-only"),
        "{joined}"
    );
    assert!(
        joined.contains("steps[2].file: '../x.wav' is not a recording file name"),
        "{joined}"
    );
    assert!(
        joined.contains("steps[3].file: at least one prompt is needed"),
        "{joined}"
    );
    assert!(joined.contains("steps[4].retries"), "{joined}");
}

#[test]
fn a_prompt_missing_from_every_language_is_a_load_error_when_sounds_are_scanned() {
    let sounds = Sounds::scan(&PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sounds"
    )))
    .unwrap();
    let text = one_ext(
        r#"{ app = "Playback", file = ["goodbye", "no-such-prompt"] },
           { app = "Background", file = "${NOT_CHECKED}" }"#,
    );
    let found: Vec<String> = Dialplan::load_with_sounds("dialplan.toml", &text, sounds)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "dialplan.toml:5: context.c.extension[0].steps[0].file[1]: prompt 'no-such-prompt' not found: no "
        ) && found[0].ends_with("/<lang>/no-such-prompt.wav for any language (ar, en, fr, ur)"),
        "{found:?}"
    );
}

#[test]
fn dial_targets_and_results_still_work_with_the_new_clock() {
    let p = plan(&one_ext(
        r#"{ app = "Dial", targets = ["user/${CALLERID(num)}"], timeout = 10 }, { app = "Hangup" }"#,
    ));
    let mut e = start(&p, "s");
    let c = cmds(&mut e);
    let Command::Dial { targets, .. } = &c[0] else {
        panic!("{c:?}")
    };
    assert_eq!(
        targets,
        &[DialTarget::User {
            name: "0300555".into()
        }]
    );
    e.handle_dial_result(at(10.0), DialStatus::Cancel);
    assert!(cmds(&mut e).is_empty());
    assert!(e.is_finished());
}

#[test]
fn a_catch_all_pattern_is_not_taken_for_the_h_extension() {
    let p = plan(
        r#"
[context.c]
[[context.c.extension]]
match = "_!"
steps = [ { app = "Set", var = "RAN", value = "${EXTEN}" }, { app = "Playback", file = "x" } ]
"#,
    );
    let mut e = start(&p, "s");
    assert_eq!(e.variable("RAN").as_deref(), Some("s"));
    cmds(&mut e);
    e.handle_caller_hangup(at(1.0));
    assert_eq!(e.variable("RAN").as_deref(), Some("s"), "h was not run");
    assert!(cmds(&mut e).is_empty());
    assert!(e.is_finished());
}
