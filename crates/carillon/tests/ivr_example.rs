//! The example call centre of `config/` (0777) through the real switch on
//! loopback ports, with real phones: baresip 100 (context `internal`) as
//! the caller, recording what it hears and pressing RFC 4733 digits;
//! baresip agents 201/202 (Arabic), 211/212 (English), 221/222 (French).
//! The example's office hours are overridden through its `[globals]`
//! (always open, or always closed). Assertions read the switch's events
//! (applications, DTMF, outbound channels, bridges, hangup causes), what
//! the caller heard (energy) and the callback rows in SQLite.

mod callsupport;

use std::collections::BTreeSet;
use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::ivr::*;
use callsupport::*;
use carillon_events::{Direction, SwitchEvent};

const TONE_100: f64 = 600.0;

/// The example configuration with the office open (`open`) or closed at
/// every hour of every day.
fn example_env(open: bool) -> CallEnv {
    let env = CallEnv::new(&Options {
        security: md5_only(),
        ..Options::default()
    });
    let path = env.config_dir().join("dialplan.toml");
    let plan = std::fs::read_to_string(&path).expect("read dialplan.toml");
    let hours = if open { "00:00-24:00" } else { "00:00-00:00" };
    let replaced = plan
        .replace(
            "OFFICE_HOURS = \"09:00-18:00\"",
            &format!("OFFICE_HOURS = \"{hours}\""),
        )
        .replace("OFFICE_DAYS = \"sun-thu\"", "OFFICE_DAYS = \"*\"");
    assert_ne!(replaced, plan, "the example's office hours were not found");
    std::fs::write(&path, replaced).expect("write dialplan.toml");
    env
}

fn caller(env: &CallEnv) -> Baresip {
    Baresip::start(
        env,
        &BaresipSpec {
            record: true,
            // Longer than the longest call here (baresip hangs up at the
            // end of its microphone file).
            tone_seconds: 120,
            ..BaresipSpec::new("100", PW100, TONE_100)
        },
    )
}

/// Agent `ext` (password `changeme<ext>`), answering at once or not at
/// all (`manual`).
fn agent(env: &CallEnv, ext: &str, password: &str, answermode: &str) -> Baresip {
    Baresip::start(
        env,
        &BaresipSpec {
            answermode,
            ..BaresipSpec::new(ext, password, 1000.0)
        },
    )
}

/// Outbound channels created so far, by agent extension (`SIP/201-…`
/// → `201`), per call in order of creation.
fn outbound_agents(sw: &Switch) -> Vec<String> {
    sw.events()
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::ChannelCreated {
                channel,
                direction: Direction::Outbound,
                ..
            } => channel
                .strip_prefix("SIP/")
                .and_then(|c| c.split('-').next())
                .map(str::to_owned),
            _ => None,
        })
        .collect()
}

const PASSWORDS: [(&str, &str); 6] = [
    ("201", "changeme201"),
    ("202", "changeme202"),
    ("211", "changeme211"),
    ("212", "changeme212"),
    ("221", "changeme221"),
    ("222", "changeme222"),
];

#[test]
fn each_language_choice_rings_that_languages_two_agents_and_one_answers() {
    require_baresip();
    let mut env = example_env(true);
    let mut sw = env.start();
    let mut agents: Vec<Baresip> = PASSWORDS
        .iter()
        .map(|(ext, pw)| agent(&env, ext, pw, "auto"))
        .collect();
    let mut p100 = caller(&env);
    let choices = [
        ('1', ["201", "202"]),
        ('2', ["211", "212"]),
        ('3', ["221", "222"]),
    ];
    let mut rung_before = 0;
    for (n, (digit, pair)) in choices.iter().enumerate() {
        let n = n + 1;
        p100.command("dial", &format!("sip:0777@127.0.0.1:{}", env.port));
        assert!(
            p100.wait_event("CALL_ESTABLISHED", n, Duration::from_secs(15)),
            "call {n} to 0777 not answered\n{}",
            sw.log()
        );
        wait_app_started(&sw, "Background", n, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1500));
        p100.command("sndcode", &digit.to_string());
        let bridged = sw.wait_events(n, Duration::from_secs(20), |e| {
            matches!(e, SwitchEvent::Bridged { .. })
        });
        assert_eq!(
            bridged.len(),
            n,
            "choice {digit} reached no agent: {:#?}\n{}",
            sw.events(),
            sw.log()
        );
        let SwitchEvent::Bridged { channels, .. } = &bridged[n - 1].event else {
            unreachable!()
        };
        assert!(
            pair.iter()
                .any(|a| channels[1].starts_with(&format!("SIP/{a}-"))),
            "choice {digit} bridged to {channels:?}, not one of {pair:?}"
        );
        let rung: BTreeSet<String> = outbound_agents(&sw)[rung_before..]
            .iter()
            .cloned()
            .collect();
        rung_before = outbound_agents(&sw).len();
        assert_eq!(
            rung,
            pair.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            "choice {digit} must ring exactly its language's two agents"
        );
        std::thread::sleep(Duration::from_secs(1));
        p100.command("hangup", "");
        assert!(
            p100.wait_event("CALL_CLOSED", n, Duration::from_secs(10)),
            "call {n} not closed\n{}",
            sw.log()
        );
        let ended = sw.wait_calls_ended(n, Duration::from_secs(10));
        assert_eq!(ended.len(), n, "{}", sw.log());
    }
    let log = p100.stop();
    for a in &mut agents {
        a.stop();
    }
    assert_eq!(digits_from_100(&sw), "123");
    // The recording notice, in each language, after the menu: audible.
    let heard = p100.received_all().unwrap_or_else(|e| panic!("{e}\n{log}"));
    for (i, wav) in heard.iter().enumerate() {
        let voiced = voiced_seconds(wav);
        eprintln!("call {}: the caller heard {voiced:.1} s of sound", i + 1);
        assert!(voiced >= 1.0, "call {}: prompts not audible", i + 1);
    }
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn the_menu_is_replayed_once_after_a_timeout_or_an_invalid_digit_then_goodbye() {
    require_baresip();
    let mut env = example_env(true);
    let mut sw = env.start();
    let mut p100 = caller(&env);
    // An invalid digit twice: invalid, the menu again, invalid, goodbye.
    dial(&env, &sw, &mut p100, "0777");
    wait_app_started(&sw, "Background", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1000));
    p100.command("sndcode", "9");
    wait_app_started(&sw, "Background", 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    p100.command("sndcode", "8");
    wait_closed(&sw, &mut p100, Duration::from_secs(20));
    assert_eq!(caller_hangup_cause(&sw, 1), 16);
    assert_eq!(
        apps_started(&sw),
        [
            "Answer",
            "Background",
            "Playback",
            "Background",
            "Playback",
            "Playback",
            "Hangup"
        ],
        "Playback: invalid, invalid, goodbye"
    );
    // Silence: the menu and 10 s, the menu again and 10 s, goodbye.
    let before = apps_started(&sw).len();
    dial_again(&env, &sw, &mut p100, "0777");
    assert!(
        p100.wait_event("CALL_CLOSED", 2, Duration::from_secs(50)),
        "the timeouts did not end the call\n{}",
        sw.log()
    );
    assert_eq!(caller_hangup_cause(&sw, 2), 16);
    assert_eq!(
        apps_started(&sw)[before..],
        [
            "Answer",
            "Background",
            "WaitExten",
            "Background",
            "WaitExten",
            "Playback",
            "Hangup"
        ]
    );
    assert_eq!(digits_from_100(&sw), "98");
    p100.stop();
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn nobody_answering_asks_for_a_callback_number_and_stores_the_confirmed_digits() {
    require_baresip();
    let mut env = example_env(true);
    let mut sw = env.start();
    let since = unix_ms();
    // English agents that ring but never answer.
    let mut a211 = agent(&env, "211", "changeme211", "manual");
    let mut a212 = agent(&env, "212", "changeme212", "manual");
    let mut p100 = caller(&env);
    let gap = Duration::from_millis(400);
    dial(&env, &sw, &mut p100, "0777");
    wait_app_started(&sw, "Background", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1000));
    p100.command("sndcode", "2");
    assert!(a211.wait_event("CALL_INCOMING", 1, Duration::from_secs(10)));
    assert!(a212.wait_event("CALL_INCOMING", 1, Duration::from_secs(5)));
    // After 10 s of ringing: the callback number. A first number, heard
    // back, is entered again (2).
    wait_app_started(&sw, "Read", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1000));
    send_digits(&mut p100, "1234567#", gap);
    wait_app_started(&sw, "Read", 2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "2", gap);
    wait_app_started(&sw, "Read", 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "03001234567#", gap);
    wait_app_started(&sw, "Read", 4, Duration::from_secs(25));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "1", gap);
    // The alternative number, confirmed.
    wait_app_started(&sw, "Read", 5, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "0421234567#", gap);
    wait_app_started(&sw, "Read", 6, Duration::from_secs(25));
    std::thread::sleep(Duration::from_millis(500));
    send_digits(&mut p100, "1", gap);
    wait_closed(&sw, &mut p100, Duration::from_secs(30));
    p100.stop();
    a211.stop();
    a212.stop();
    let rows = wait_callbacks(&env.db_url, since, 1);
    assert_eq!(rows.len(), 1, "{rows:#?}\n{}", sw.log());
    let r = &rows[0].request;
    assert_eq!(r.number, "03001234567", "exactly the re-entered digits");
    assert_eq!(r.alt_number.as_deref(), Some("0421234567"));
    assert_eq!(r.caller_num, "100");
    assert_eq!(r.language, "en");
    assert!(apps_finished(&sw).contains(&("Dial".into(), "NOANSWER".into())));
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}

#[test]
fn outside_office_hours_the_caller_hears_the_closed_message_in_three_languages() {
    require_baresip();
    let mut env = example_env(false);
    let mut sw = env.start();
    let mut p100 = caller(&env);
    dial(&env, &sw, &mut p100, "0777");
    wait_closed(&sw, &mut p100, Duration::from_secs(40));
    let log = p100.stop();
    assert_eq!(
        apps_started(&sw),
        ["Answer", "Playback", "Playback", "Playback", "Hangup"]
    );
    let heard = p100.received().unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        voiced_seconds(&heard) >= 5.0,
        "the closed message was audible"
    );
    assert_nothing_left(&sw, Duration::from_secs(10));
    sw.stop();
}
