//! ConfBridge in the interpreter: it answers, hands the room to the host,
//! waits in the room, and goes on with `${CONFBRIDGE_RESULT}` set when the
//! host reports the application returned (a full room); a caller hanging up
//! in the room ends the execution.

use carillon_dialplan::{CallInfo, Command, Dialplan, Execution};
use std::time::{Duration, Instant, SystemTime};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "800"
steps = [
  { app = "ConfBridge", room = "${EXTEN}" },
  { app = "Set", var = "R", value = "${CONFBRIDGE_RESULT}" },
  { app = "Hangup" },
]
"#;

fn start(now: Instant) -> Execution {
    let plan = Dialplan::load("dialplan.toml", PLAN).unwrap();
    Execution::start(
        &plan,
        "internal",
        "800",
        CallInfo::default(),
        now,
        SystemTime::UNIX_EPOCH,
    )
    .unwrap()
}

fn commands(exec: &mut Execution) -> Vec<Command> {
    std::iter::from_fn(|| exec.poll_command()).collect()
}

#[test]
fn confbridge_answers_and_joins_the_room() {
    let now = Instant::now();
    let mut exec = start(now);
    let cmds = commands(&mut exec);
    assert!(matches!(cmds[0], Command::Answer), "{cmds:?}");
    assert!(
        matches!(&cmds[1], Command::ConfBridge { room } if room == "800"),
        "{cmds:?}"
    );
    assert_eq!(cmds.len(), 2);
    // In the room: digits and timers do nothing.
    exec.handle_digit(now + Duration::from_secs(1), '1');
    assert!(commands(&mut exec).is_empty());
    assert!(!exec.is_finished());
}

#[test]
fn a_failed_confbridge_sets_the_result_and_continues() {
    let now = Instant::now();
    let mut exec = start(now);
    commands(&mut exec);
    exec.handle_conference_done(now + Duration::from_secs(1), "FAILED");
    assert_eq!(exec.variable("R").as_deref(), Some("FAILED"));
    let cmds = commands(&mut exec);
    assert!(
        matches!(cmds.last(), Some(Command::Hangup { .. })),
        "{cmds:?}"
    );
}

#[test]
fn hanging_up_in_the_room_finishes() {
    let now = Instant::now();
    let mut exec = start(now);
    commands(&mut exec);
    exec.handle_caller_hangup(now + Duration::from_secs(5));
    assert!(exec.is_finished());
    // A late report is ignored.
    exec.handle_conference_done(now + Duration::from_secs(6), "LEFT");
    assert!(exec.variable("R").is_none());
}
