//! The IVR through the real switch and real phones (issue 13): baresip as
//! the caller (recording what it hears, sending RFC 4733 digits with
//! `sndcode`), baresip phones as the agents (auto-answer), a dialplan of
//! the test's own and the prompts of `sounds/`. The tests assert on the
//! switch's events (`app_started`/`app_finished`, `dtmf`, `bridged`,
//! `hangup` with its cause), on what the caller received (energy: the
//! prompt was audible) and on the callback rows stored in SQLite.

mod callsupport;

use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::ivr::*;
use callsupport::*;
use carillon_events::SwitchEvent;

/// 100 calls; 101 and 102 are agents.
const USERS: &str = r#"
[defaults]
context = "internal"
codecs = ["ulaw", "alaw"]
max_contacts = 3

[[user]]
extension = "100"
password = "changeme100"

[[user]]
extension = "101"
password = "changeme101"

[[user]]
extension = "102"
password = "changeme102"
"#;

const PW102: &str = "changeme102";

const TONE_100: f64 = 600.0;

/// A test switch with `USERS`, `plan` as its dialplan (prompts from the
/// repository's `sounds/`) and no trunks.
fn ivr_env(plan: &str) -> CallEnv {
    let env = CallEnv::new(&Options {
        users_toml: Some(USERS.to_owned()),
        security: md5_only(),
        ..Options::default()
    });
    // Prompts: `[sounds] dir` finds the repository's sounds/ linked into
    // the test directory by the harness.
    std::fs::write(env.config_dir().join("dialplan.toml"), plan).expect("write dialplan.toml");
    // This dialplan has none of the example trunks' contexts.
    std::fs::write(env.config_dir().join("trunks.toml"), "# no trunks\n")
        .expect("write trunks.toml");
    env
}

/// Phone 100, recording what it receives.
fn caller(env: &CallEnv) -> Baresip {
    Baresip::start(
        env,
        &BaresipSpec {
            record: true,
            ..BaresipSpec::new("100", PW100, TONE_100)
        },
    )
}

/// An agent phone answering at once.
fn agent(env: &CallEnv, user: &str, password: &str, tone_hz: f64) -> Baresip {
    Baresip::start(env, &BaresipSpec::new(user, password, tone_hz))
}

/// 800: two prompts, then hang up. 810: the menu (Background + WaitExten
/// 3 s): 1 rings 101, 2 rings 102, `i` and `t` say so and hang up with
/// their own causes. 820: a callback number read, said back, confirmed
/// (1) or entered again (2), stored.
const PLAN: &str = r#"
[context.internal]

[[context.internal.extension]]
match = "800"
steps = [
  { app = "Answer" },
  { app = "Playback", file = ["please-hold", "thank-you"] },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "810"
steps = [
  { app = "Answer" },
  { app = "Background", file = "lang-menu" },
  { app = "WaitExten", seconds = 3 },
]

[[context.internal.extension]]
match = "1"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 15 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "2"
steps = [
  { app = "Dial", targets = ["user/102"], timeout = 15 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "i"
steps = [
  { app = "Playback", file = "invalid" },
  { app = "Hangup", cause = 28 },
]

[[context.internal.extension]]
match = "t"
steps = [
  { app = "Playback", file = "goodbye" },
  { app = "Hangup", cause = 19 },
]

[[context.internal.extension]]
match = "820"
steps = [
  { app = "Answer" },
  { app = "Read", var = "NUM", file = "callback-enter-number", max_digits = 12, timeout = 6 },
  { app = "Playback", file = "callback-you-entered" },
  { app = "SayDigits", digits = "${NUM}" },
  { app = "Read", var = "CONFIRM", file = "callback-confirm", max_digits = 1, timeout = 6 },
  { app = "GotoIf", condition = "${CONFIRM} = 2", then = "820,2" },
  { app = "CallbackRequest", number = "${NUM}" },
  { app = "Playback", file = "thank-you" },
  { app = "Hangup" },
]
"#;

#[test]
fn a_caller_hears_the_playback_prompts_and_the_dialplan_hangs_up() {
    require_baresip();
    let mut env = ivr_env(PLAN);
    let mut sw = env.start();
    let mut p100 = caller(&env);
    dial(&env, &sw, &mut p100, "800");
    wait_closed(&sw, &mut p100, Duration::from_secs(20));
    let log = p100.stop();
    let heard = p100.received().unwrap_or_else(|e| panic!("{e}\n{log}"));
    let voiced = voiced_seconds(&heard);
    eprintln!("100 heard {voiced:.1} s of sound");
    // please-hold (1.1 s) and thank-you (0.9 s).
    assert!(
        voiced >= 1.2,
        "the caller heard {voiced:.1} s of prompts\n{}",
        sw.log()
    );
    assert_eq!(caller_hangup_cause(&sw, 1), 16);
    assert!(apps_finished(&sw).contains(&("Playback".into(), "OK".into())));
    assert_eq!(apps_started(&sw), ["Answer", "Playback", "Hangup"]);
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn a_menu_digit_from_a_real_phone_reaches_the_chosen_agent_after_an_audible_prompt() {
    require_baresip();
    let mut env = ivr_env(PLAN);
    let mut sw = env.start();
    let mut a101 = agent(&env, "101", PW101, 1000.0);
    let mut a102 = agent(&env, "102", PW102, 1400.0);
    let mut p100 = caller(&env);
    dial(&env, &sw, &mut p100, "810");
    wait_app_started(&sw, "Background", 1, Duration::from_secs(5));
    // Part of the menu is heard, then 2 is pressed.
    std::thread::sleep(Duration::from_millis(2500));
    p100.command("sndcode", "2");
    assert!(
        a102.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(10)),
        "102 did not answer the menu's choice; 102 events:\n{}\nswitch log:\n{}",
        a102.events,
        sw.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    p100.command("hangup", "");
    wait_closed(&sw, &mut p100, Duration::from_secs(10));
    wait_closed(&sw, &mut a102, Duration::from_secs(10));
    a101.settle(Duration::from_millis(200));
    assert_eq!(a101.count("CALL_INCOMING"), 0, "101 must not ring");
    let log = p100.stop();
    a101.stop();
    a102.stop();
    assert_eq!(digits_from_100(&sw), "2");
    let bridged = sw.bridged();
    assert!(
        matches!(bridged.as_slice(), [SwitchEvent::Bridged { channels, .. }]
            if channels[0].starts_with("SIP/100-") && channels[1].starts_with("SIP/102-")),
        "{bridged:#?}"
    );
    assert!(apps_finished(&sw).contains(&("Background".into(), "OK".into())));
    let heard = p100.received().unwrap_or_else(|e| panic!("{e}\n{log}"));
    let voiced = voiced_seconds(&heard);
    let agent = tone_report(&heard, 1400.0, TONE_100);
    eprintln!("100 heard {voiced:.1} s of sound; agent tone {agent:?}");
    assert!(voiced >= 1.5, "the menu was not audible before the digit");
    assert!(
        agent.expected >= 5,
        "the agent's tone was not heard: {agent:?}"
    );
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn the_menu_times_out_to_t_and_an_invalid_digit_goes_to_i() {
    require_baresip();
    let mut env = ivr_env(PLAN);
    let mut sw = env.start();
    let mut p100 = caller(&env);
    // No digit: the menu (7.7 s), WaitExten 3 s, then `t`.
    dial(&env, &sw, &mut p100, "810");
    wait_closed(&sw, &mut p100, Duration::from_secs(30));
    assert_eq!(caller_hangup_cause(&sw, 1), 19, "t hangs up with 19");
    // 9 selects nothing: `i`.
    dial_again(&env, &sw, &mut p100, "810");
    wait_app_started(&sw, "Background", 2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1000));
    p100.command("sndcode", "9");
    assert!(
        p100.wait_event("CALL_CLOSED", 2, Duration::from_secs(15)),
        "the i extension did not hang up; switch log:\n{}",
        sw.log()
    );
    assert_eq!(caller_hangup_cause(&sw, 2), 28, "i hangs up with 28");
    assert_eq!(digits_from_100(&sw), "9");
    p100.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn read_and_saydigits_store_exactly_the_confirmed_callback_number_after_a_reentry() {
    require_baresip();
    let mut env = ivr_env(PLAN);
    let mut sw = env.start();
    let since = unix_ms();
    let mut p100 = caller(&env);
    let gap = Duration::from_millis(400);
    dial(&env, &sw, &mut p100, "820");
    wait_app_started(&sw, "Read", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1000));
    send_digits(&mut p100, "1234#", gap);
    // Said back, then the confirmation: 2 enters it again.
    wait_app_started(&sw, "SayDigits", 1, Duration::from_secs(10));
    wait_app_started(&sw, "Read", 2, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "2", gap);
    wait_app_started(&sw, "Read", 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "5551234#", gap);
    wait_app_started(&sw, "Read", 4, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "1", gap);
    wait_closed(&sw, &mut p100, Duration::from_secs(20));
    let log = p100.stop();
    assert_eq!(digits_from_100(&sw), "1234#25551234#1");
    let rows = wait_callbacks(&env.db_url, since, 1);
    assert_eq!(rows.len(), 1, "{rows:#?}\n{}", sw.log());
    let r = &rows[0].request;
    assert_eq!(r.number, "5551234", "the re-entered number, exactly");
    assert_eq!(r.caller_num, "100");
    assert_eq!(r.language, "en");
    let heard = p100.received().unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(voiced_seconds(&heard) >= 3.0, "prompts were audible");
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}
