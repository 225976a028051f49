//! The example call centre of config/dialplan.toml (0777), driven through
//! the interpreter with the repository's sounds: the menu, each language
//! choice, the timeout and invalid paths, closed hours, and the callback
//! capture with a re-entry, asserting every command.

use carillon_dialplan::{
    CallInfo, Command, DialStatus, DialTarget, Dialplan, Execution, HangupCause, Sounds,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn t0() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sounds() -> Sounds {
    Sounds::scan(&repo().join("sounds")).unwrap()
}

fn shipped() -> Dialplan {
    shipped_with(|text| text.to_owned())
}

/// The shipped dialplan after `edit` (a test's change to the globals).
fn shipped_with(edit: impl Fn(&str) -> String) -> Dialplan {
    let text = std::fs::read_to_string(repo().join("config/dialplan.toml")).unwrap();
    match Dialplan::load_with_sounds("dialplan.toml", &edit(&text), sounds()) {
        Ok(plan) => plan,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("{}", lines.join("\n"));
        }
    }
}

/// Sunday 2026-12-06 10:00 in Karachi (05:00Z): office hours.
fn sunday_morning() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_083_200 + 5 * 86_400 + 5 * 3600)
}

/// One call: the execution, its clock (seconds after t0) and what it said.
struct Call {
    exec: Execution,
    now: f64,
}

impl Call {
    fn start(plan: &Dialplan, context: &str, exten: &str, wall: SystemTime) -> Call {
        let info = CallInfo {
            caller_num: "03005551234".into(),
            caller_name: "Caller".into(),
            uniqueid: "1765000000.42".into(),
            variables: vec![],
            language: None,
        };
        Call {
            exec: Execution::start(plan, context, exten, info, t0(), wall).unwrap(),
            now: 0.0,
        }
    }

    fn instant(&self) -> Instant {
        t0() + Duration::from_secs_f64(self.now)
    }

    fn commands(&mut self) -> Vec<Command> {
        std::iter::from_fn(|| self.exec.poll_command()).collect()
    }

    fn advance(&mut self, secs: f64) {
        self.now += secs;
    }

    fn done(&mut self) -> Vec<Command> {
        self.advance(1.0);
        self.exec.handle_playback_done(self.instant());
        self.commands()
    }

    fn digits(&mut self, digits: &str) -> Vec<Command> {
        let mut out = Vec::new();
        for d in digits.chars() {
            self.advance(0.3);
            self.exec.handle_digit(self.instant(), d);
            out.extend(self.commands());
        }
        out
    }

    /// Lets the execution's timer fire.
    fn time_out(&mut self) -> Vec<Command> {
        let due = self.exec.poll_timeout().expect("a timer runs");
        self.now = due.duration_since(t0()).as_secs_f64();
        self.exec.handle_timeout(due);
        self.commands()
    }

    fn dial_result(&mut self, status: DialStatus) -> Vec<Command> {
        self.advance(10.0);
        self.exec.handle_dial_result(self.instant(), status);
        self.commands()
    }
}

fn prompt(lang: &str, name: &str) -> PathBuf {
    sounds().dir().join(lang).join(format!("{name}.wav"))
}

fn play(lang: &str, names: &[&str], interruptible: bool) -> Command {
    Command::Play {
        files: names.iter().map(|n| prompt(lang, n)).collect(),
        interruptible,
    }
}

fn say_digits(lang: &str, digits: &str) -> Command {
    let names: Vec<String> = digits.chars().map(|d| format!("digits/{d}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    play(lang, &names, false)
}

fn hangup() -> Command {
    Command::Hangup {
        cause: HangupCause::NORMAL_CLEARING,
    }
}

fn menu() -> Vec<Command> {
    vec![Command::Answer, play("en", &["lang-menu"], true)]
}

/// Enters `number` at a callback prompt (already playing) and hears it back.
fn enter_number(call: &mut Call, lang: &str, number: &str) {
    assert_eq!(call.done(), [], "the prompt ended: waiting for digits");
    assert_eq!(
        call.digits(&format!("{number}#")),
        [play(lang, &["callback-you-entered"], false)]
    );
    assert_eq!(call.done(), [say_digits(lang, number)]);
    assert_eq!(call.done(), [play(lang, &["callback-confirm"], true)]);
}

#[test]
fn the_menu_answers_0777_in_office_hours_from_internal_agents_and_the_company_did() {
    let plan = shipped();
    for (context, exten) in [
        ("internal", "0777"),
        ("agents", "0777"),
        ("from-pstn", "+924235550777"),
    ] {
        let mut call = Call::start(&plan, context, exten, sunday_morning());
        assert_eq!(call.commands(), menu(), "{context}/{exten}");
    }
    // Other PSTN numbers still ring 100 and 101.
    let mut call = Call::start(&plan, "from-pstn", "2125551234", sunday_morning());
    assert!(matches!(&call.commands()[..], [Command::Dial { .. }]));
}

#[test]
fn each_choice_sets_the_language_plays_the_notice_records_and_rings_its_two_agents() {
    let plan = shipped();
    for (digit, lang, agents) in [
        ('1', "ar", ["201", "202"]),
        ('2', "en", ["211", "212"]),
        ('3', "fr", ["221", "222"]),
    ] {
        let mut call = Call::start(&plan, "internal", "0777", sunday_morning());
        call.commands();
        // The digit interrupts the menu; the choice runs once it stopped.
        assert_eq!(call.digits(&digit.to_string()), [Command::StopPlay]);
        assert_eq!(
            call.done(),
            [play(lang, &["call-recorded"], false)],
            "{digit}"
        );
        assert_eq!(call.exec.language(), lang);
        let commands = call.done();
        assert_eq!(
            commands[0],
            Command::MixMonitor {
                file: None,
                stereo: false
            }
        );
        match &commands[1] {
            Command::Dial {
                targets, timeout, ..
            } => {
                let names: Vec<DialTarget> = agents
                    .iter()
                    .map(|a| DialTarget::User { name: (*a).into() })
                    .collect();
                assert_eq!(targets, &names);
                assert_eq!(*timeout, Some(Duration::from_secs(10)));
            }
            other => panic!("expected Dial, got {other:?}"),
        }
        assert_eq!(commands.len(), 2);
        // An agent answers: when the call ends, the dialplan is done.
        assert_eq!(call.dial_result(DialStatus::Answer), [hangup()]);
        assert!(call.exec.is_finished());
    }
}

#[test]
fn no_answer_captures_a_callback_number_with_a_re_entry_and_an_alternative() {
    let plan = shipped();
    let mut call = Call::start(&plan, "internal", "0777", sunday_morning());
    call.commands();
    call.digits("2");
    call.done();
    call.done();
    assert_eq!(
        call.dial_result(DialStatus::NoAnswer),
        [play("en", &["callback-enter-number"], true)]
    );
    // Too short (3 digits): asked again.
    assert_eq!(call.done(), []);
    assert_eq!(
        call.digits("123#"),
        [play("en", &["callback-enter-number"], true)]
    );
    // A number typed over the prompt, read back, then 2: re-enter.
    assert_eq!(call.digits("0"), [Command::StopPlay]);
    assert_eq!(call.done(), []);
    assert_eq!(
        call.digits("3001112222#"),
        [play("en", &["callback-you-entered"], false)]
    );
    assert_eq!(call.done(), [say_digits("en", "03001112222")]);
    assert_eq!(call.done(), [play("en", &["callback-confirm"], true)]);
    assert_eq!(call.done(), []);
    assert_eq!(
        call.digits("2"),
        [play("en", &["callback-enter-number"], true)]
    );
    // The number that counts, confirmed with 1.
    enter_number(&mut call, "en", "03009876543");
    assert_eq!(call.done(), []);
    assert_eq!(
        call.digits("1"),
        [play("en", &["callback-enter-alternative"], true)]
    );
    enter_number(&mut call, "en", "0421234567");
    assert_eq!(call.done(), []);
    assert_eq!(
        call.digits("1"),
        [
            Command::StoreCallback {
                uniqueid: "1765000000.42".into(),
                caller_num: "03005551234".into(),
                number: "03009876543".into(),
                alt_number: "0421234567".into(),
                language: "en".into(),
            },
            play("en", &["callback-thanks"], false)
        ]
    );
    assert_eq!(call.done(), [play("en", &["goodbye"], false)]);
    assert_eq!(call.done(), [hangup()]);
    assert!(call.exec.is_finished());
}

#[test]
fn the_callback_prompts_speak_the_chosen_language() {
    let plan = shipped();
    let mut call = Call::start(&plan, "internal", "0777", sunday_morning());
    call.commands();
    call.digits("3");
    call.done();
    call.done();
    assert_eq!(
        call.dial_result(DialStatus::Busy),
        [play("fr", &["callback-enter-number"], true)]
    );
    enter_number(&mut call, "fr", "0612345678");
}

#[test]
fn a_timeout_replays_the_menu_once_then_says_goodbye() {
    let plan = shipped();
    let mut call = Call::start(&plan, "internal", "0777", sunday_morning());
    call.commands();
    assert_eq!(call.done(), []);
    assert_eq!(
        call.exec.poll_timeout(),
        Some(call.instant() + Duration::from_secs(10))
    );
    assert_eq!(call.time_out(), [play("en", &["lang-menu"], true)]);
    assert_eq!(call.done(), []);
    assert_eq!(call.time_out(), [play("en", &["goodbye"], false)]);
    assert_eq!(call.done(), [hangup()]);
}

#[test]
fn an_invalid_digit_says_so_and_replays_the_menu_once_then_says_goodbye() {
    let plan = shipped();
    let mut call = Call::start(&plan, "internal", "0777", sunday_morning());
    call.commands();
    assert_eq!(call.done(), []);
    assert_eq!(call.digits("9"), [play("en", &["invalid"], false)]);
    assert_eq!(call.done(), [play("en", &["lang-menu"], true)]);
    assert_eq!(call.digits("7"), [Command::StopPlay]);
    assert_eq!(call.done(), [play("en", &["invalid"], false)]);
    assert_eq!(call.done(), [play("en", &["goodbye"], false)]);
    assert_eq!(call.done(), [hangup()]);
}

#[test]
fn outside_office_hours_the_closed_message_plays_in_the_three_languages() {
    let plan = shipped();
    // Friday 2026-12-04 noon in Karachi.
    let friday = sunday_morning() - Duration::from_secs(2 * 86_400) + Duration::from_secs(2 * 3600);
    let mut call = Call::start(&plan, "internal", "0777", friday);
    assert_eq!(
        call.commands(),
        [Command::Answer, play("ar", &["office-closed"], false)]
    );
    assert_eq!(call.done(), [play("en", &["office-closed"], false)]);
    assert_eq!(call.done(), [play("fr", &["office-closed"], false)]);
    assert_eq!(call.done(), [hangup()]);
}

#[test]
fn the_office_hours_are_globals_a_test_can_override_without_the_clock() {
    let always_closed = shipped_with(|t| {
        t.replace(
            "OFFICE_HOURS = \"09:00-18:00\"",
            "OFFICE_HOURS = \"00:00-00:00\"",
        )
    });
    let mut call = Call::start(&always_closed, "internal", "0777", sunday_morning());
    assert_eq!(
        call.commands(),
        [Command::Answer, play("ar", &["office-closed"], false)]
    );
    let always_open = shipped_with(|t| {
        t.replace(
            "OFFICE_HOURS = \"09:00-18:00\"",
            "OFFICE_HOURS = \"00:00-24:00\"",
        )
        .replace("OFFICE_DAYS = \"sun-thu\"", "OFFICE_DAYS = \"*\"")
    });
    let friday_night =
        sunday_morning() - Duration::from_secs(2 * 86_400) + Duration::from_secs(17 * 3600);
    let mut call = Call::start(&always_open, "internal", "0777", friday_night);
    assert_eq!(call.commands(), menu());
}

#[test]
fn agents_call_each_other() {
    let plan = shipped();
    for agent in ["201", "202", "211", "212", "221", "222"] {
        let mut call = Call::start(&plan, "agents", agent, sunday_morning());
        match &call.commands()[..] {
            [Command::Dial { targets, .. }] => {
                assert_eq!(targets, &[DialTarget::User { name: agent.into() }]);
            }
            other => panic!("{agent}: {other:?}"),
        }
    }
}

#[test]
fn saynumber_saydigits_and_sayalpha_only_name_prompts_every_language_has() {
    let sounds = sounds();
    let mut numbers: Vec<u64> = (0..=1200).collect();
    numbers.extend([
        1999, 2024, 10_000, 99_999, 100_000, 250_000, 1_000_000, 12_345_678,
    ]);
    for lang in ["en", "ar", "fr", "ur"] {
        for &n in &numbers {
            for name in carillon_dialplan::sounds::number_prompts(n, lang) {
                assert!(
                    sounds
                        .dir()
                        .join(lang)
                        .join(format!("{name}.wav"))
                        .is_file(),
                    "{lang} {n}: no {name}"
                );
            }
        }
        let keys = carillon_dialplan::sounds::digit_prompts("0123456789*#");
        assert_eq!(keys.len(), 12);
        let letters = carillon_dialplan::sounds::alpha_prompts("abcdefghijklmnopqrstuvwxyz");
        assert_eq!(letters.len(), 26);
        for name in keys.iter().chain(&letters) {
            assert!(
                sounds
                    .dir()
                    .join(lang)
                    .join(format!("{name}.wav"))
                    .is_file(),
                "{lang}: no {name}"
            );
        }
    }
}

/// One input a host could give, in any order.
#[derive(Debug, Clone)]
enum Input {
    Digit(char),
    PlaybackDone,
    Timeout,
    Dial(DialStatus),
    RecordDone,
    Hangup,
    Advance(u8),
}

fn input() -> impl proptest::strategy::Strategy<Value = Input> {
    use proptest::prelude::*;
    prop_oneof![
        4 => prop::sample::select(vec!['0', '1', '2', '3', '9', '#', '*']).prop_map(Input::Digit),
        3 => Just(Input::PlaybackDone),
        2 => Just(Input::Timeout),
        1 => prop::sample::select(vec![
            DialStatus::Answer,
            DialStatus::NoAnswer,
            DialStatus::Busy,
            DialStatus::Cancel
        ])
        .prop_map(Input::Dial),
        1 => Just(Input::RecordDone),
        1 => Just(Input::Hangup),
        2 => any::<u8>().prop_map(Input::Advance),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever the host feeds, in whatever order, the call centre never
    /// panics, produces at most one terminal event, and says nothing after it.
    #[test]
    fn any_sequence_of_inputs_ends_cleanly(inputs in proptest::collection::vec(input(), 0..80)) {
        let plan = shipped();
        let mut call = Call::start(&plan, "internal", "0777", sunday_morning());
        let mut terminal = 0;
        for input in inputs {
            let finished_before = call.exec.is_finished();
            let now = call.instant();
            match input {
                Input::Digit(d) => call.exec.handle_digit(now, d),
                Input::PlaybackDone => call.exec.handle_playback_done(now),
                Input::Timeout => {
                    if let Some(due) = call.exec.poll_timeout() {
                        proptest::prop_assert!(due >= t0());
                        call.now = due.duration_since(t0()).as_secs_f64();
                        call.exec.handle_timeout(due);
                    }
                }
                Input::Dial(status) => call.exec.handle_dial_result(now, status),
                Input::RecordDone => call.exec.handle_record_done(
                    now,
                    carillon_dialplan::RecordOutcome { status: carillon_dialplan::RecordStatus::Silence, duration_ms: None },
                ),
                Input::Hangup => call.exec.handle_caller_hangup(now),
                Input::Advance(s) => call.advance(f64::from(s) / 10.0),
            }
            let commands = call.commands();
            if finished_before {
                proptest::prop_assert!(commands.is_empty(), "{:?}", commands);
            }
            terminal += std::iter::from_fn(|| call.exec.poll_event()).count();
            proptest::prop_assert!(terminal <= 1);
            if call.exec.is_finished() {
                proptest::prop_assert_eq!(call.exec.poll_timeout(), None);
            }
        }
    }
}
