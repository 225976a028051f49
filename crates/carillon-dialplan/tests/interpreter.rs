//! The per-call interpreter driven through start / handle_* / poll_*.

use carillon_dialplan::{
    CallInfo, CallerId, Command, DialStatus, DialTarget, Dialplan, Event, ExecError, Execution,
    GotoError, HangupCause, RouteError,
};
use std::time::Duration;

/// The fixed base of every test's clock.
fn t0() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Fires the execution's timer, if it has one.
#[allow(dead_code)]
fn wait_done(exec: &mut Execution) {
    if let Some(due) = exec.poll_timeout() {
        exec.handle_timeout(due);
    }
}
use std::time::UNIX_EPOCH;

fn plan(text: &str) -> Dialplan {
    match Dialplan::load("test.toml", text) {
        Ok(plan) => plan,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("{}", lines.join("\n"));
        }
    }
}

fn call() -> CallInfo {
    CallInfo {
        caller_num: "100".into(),
        caller_name: "Alice".into(),
        uniqueid: "1700000000.1".into(),
        variables: vec![],
        language: None,
    }
}

fn start(plan: &Dialplan, context: &str, exten: &str) -> Execution {
    Execution::start(plan, context, exten, call(), t0(), UNIX_EPOCH).unwrap()
}

fn drain(exec: &mut Execution) -> (Vec<Command>, Vec<Event>) {
    let commands = std::iter::from_fn(|| exec.poll_command()).collect();
    let events = std::iter::from_fn(|| exec.poll_event()).collect();
    (commands, events)
}

fn dial_targets(command: &Command) -> Vec<String> {
    match command {
        Command::Dial { targets, .. } => targets.iter().map(DialTarget::to_string).collect(),
        other => panic!("expected Dial, got {other:?}"),
    }
}

const FLOWS: &str = r#"
[context.internal]
include = ["features"]
allow_trunks = ["twilio"]

[[context.internal.extension]]
match = "100"
steps = [
  { app = "Answer" },
  { app = "Dial", targets = ["user/100", "user/100b"], timeout = 20 },
  { app = "GotoIf", condition = "${DIALSTATUS} = BUSY", then = "busy", else = "other" },
  { app = "Hangup", cause = 17, label = "busy" },
  { app = "Goto", target = "vm,1", label = "other" },
]

[[context.internal.extension]]
match = "vm"
steps = [
  { app = "Set", var = "REASON", value = "${DIALSTATUS}/${HANGUPCAUSE}" },
  { app = "NoOp", text = "voicemail for ${REASON}" },
  { app = "Wait", seconds = 1.5 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "_9X."
steps = [
  { app = "Set", var = "CALLERID(num)", value = "+19863334949" },
  { app = "Set", var = "CALLERID(name)", value = "Carillon ${EXTEN:-4}" },
  { app = "Dial", targets = ["trunk/twilio/+${EXTEN:1}"], timeout = 60, continue = true },
  { app = "Set", var = "AFTER", value = "${DIALSTATUS}" },
]

[[context.internal.extension]]
match = "loop"
steps = [ { app = "NoOp" }, { app = "Goto", target = "1" } ]

[[context.internal.extension]]
match = "jump"
steps = [ { app = "Goto", target = "${GEXT},${GPRIO}" } ]

[[context.internal.extension]]
match = "jump3"
steps = [ { app = "Goto", target = "${GCTX},${GEXT},${GPRIO}" } ]

[[context.internal.extension]]
match = "_X."
steps = [ { app = "Dial", targets = ["user/${EXTEN}"] } ]

[context.features]
[[context.features.extension]]
match = "*97"
steps = [ { app = "Set", var = "WHERE", value = "${CONTEXT}" }, { app = "Goto", target = "100,1" } ]

[[context.features.extension]]
match = "100"
steps = [ { app = "Hangup", cause = 1 } ]
"#;

#[test]
fn dial_busy_continues_and_goto_if_jumps_to_the_busy_label() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "100");
    let (commands, events) = drain(&mut exec);
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[0], Command::Answer);
    assert_eq!(dial_targets(&commands[1]), ["user/100", "user/100b"]);
    match &commands[1] {
        Command::Dial {
            timeout, caller_id, ..
        } => {
            assert_eq!(*timeout, Some(Duration::from_secs(20)));
            assert_eq!(
                *caller_id,
                CallerId {
                    num: "100".into(),
                    name: "Alice".into()
                }
            );
        }
        _ => unreachable!(),
    }
    assert!(events.is_empty());
    exec.handle_dial_result(t0(), DialStatus::Busy);
    assert_eq!(exec.variable("DIALSTATUS").as_deref(), Some("BUSY"));
    assert_eq!(exec.variable("HANGUPCAUSE").as_deref(), Some("17"));
    let (commands, events) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::USER_BUSY
        }]
    );
    assert_eq!(
        events,
        [Event::Finished {
            cause: HangupCause::USER_BUSY
        }]
    );
    assert!(exec.is_finished());
}

#[test]
fn dial_no_answer_takes_the_else_branch_to_another_extension() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "100");
    drain(&mut exec);
    exec.handle_dial_result(t0(), DialStatus::NoAnswer);
    let (commands, events) = drain(&mut exec);
    assert!(commands.is_empty());
    assert_eq!(
        exec.poll_timeout(),
        Some(t0() + Duration::from_millis(1500))
    );
    assert!(events.is_empty());
    assert_eq!(exec.exten(), "vm");
    assert_eq!(exec.variable("REASON").as_deref(), Some("NOANSWER/19"));
    assert_eq!(exec.variable("PRIORITY").as_deref(), Some("4"));
    wait_done(&mut exec);
    let (commands, events) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    assert_eq!(
        events,
        [Event::Finished {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
}

#[test]
fn dial_answered_without_continue_ends_the_call() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "100");
    drain(&mut exec);
    exec.handle_dial_result(t0(), DialStatus::Answer);
    let (commands, events) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    assert_eq!(events.len(), 1);
    assert!(exec.is_finished());
    // Late results change nothing.
    exec.handle_dial_result(t0(), DialStatus::Busy);
    wait_done(&mut exec);
    assert_eq!(drain(&mut exec), (vec![], vec![]));
}

#[test]
fn dial_with_continue_goes_on_after_an_answered_call_with_dialstatus_set() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "912125551234");
    let (commands, _) = drain(&mut exec);
    let expected_id = CallerId {
        num: "+19863334949".into(),
        name: "Carillon 1234".into(),
    };
    assert_eq!(
        commands[0],
        Command::SetCallerId(CallerId {
            num: "+19863334949".into(),
            name: "Alice".into()
        })
    );
    assert_eq!(commands[1], Command::SetCallerId(expected_id.clone()));
    assert_eq!(dial_targets(&commands[2]), ["trunk/twilio/+12125551234"]);
    match &commands[2] {
        Command::Dial { caller_id, .. } => assert_eq!(*caller_id, expected_id),
        _ => unreachable!(),
    }
    exec.handle_dial_result(t0(), DialStatus::Answer);
    assert_eq!(exec.variable("AFTER").as_deref(), Some("ANSWER"));
    let (commands, events) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
    assert_eq!(
        events,
        [Event::Finished {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
}

#[test]
fn falling_off_the_end_after_congestion_hangs_up_with_a_matching_cause() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "912125551234");
    drain(&mut exec);
    exec.handle_dial_result(t0(), DialStatus::Congestion);
    let (commands, _) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::NORMAL_CIRCUIT_CONGESTION
        }]
    );
}

#[test]
fn caller_cancel_during_dial_ends_without_a_hangup_command() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "100");
    drain(&mut exec);
    exec.handle_dial_result(t0(), DialStatus::Cancel);
    let (commands, events) = drain(&mut exec);
    assert!(commands.is_empty());
    assert_eq!(
        events,
        [Event::Finished {
            cause: HangupCause::NORMAL_CLEARING
        }]
    );
}

#[test]
fn caller_hangup_while_waiting_ends_the_execution() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "100");
    drain(&mut exec);
    exec.handle_dial_result(t0(), DialStatus::NoAnswer);
    drain(&mut exec);
    exec.handle_caller_hangup(t0());
    let (commands, events) = drain(&mut exec);
    assert!(commands.is_empty());
    assert_eq!(events.len(), 1);
    wait_done(&mut exec);
    assert_eq!(drain(&mut exec), (vec![], vec![]));
}

#[test]
fn an_infinite_goto_loop_fails_at_the_step_limit_instead_of_hanging() {
    let plan = plan(&format!("max_steps = 50\n{FLOWS}"));
    let mut exec = start(&plan, "internal", "loop");
    let (commands, events) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::TEMPORARY_FAILURE
        }]
    );
    assert_eq!(events, [Event::Failed(ExecError::StepLimit { limit: 50 })]);
    assert_eq!(exec.steps_run(), 50);
}

#[test]
fn the_default_step_limit_also_stops_a_loop() {
    let plan = plan(FLOWS);
    let mut exec = start(&plan, "internal", "loop");
    let (_, events) = drain(&mut exec);
    assert_eq!(
        events,
        [Event::Failed(ExecError::StepLimit {
            limit: carillon_dialplan::DEFAULT_MAX_STEPS
        })]
    );
}

#[test]
fn included_contexts_are_searched_after_own_extensions() {
    let plan = plan(FLOWS);
    // `100` exists in both; the context's own extension wins.
    assert_eq!(plan.route("internal", "100").unwrap().context, "internal");
    // `*97` is only in the included context.
    let route = plan.route("internal", "*97").unwrap();
    assert_eq!(route.context, "features");
    assert_eq!(route.extension, "*97");
    // CONTEXT stays the caller's context, and a two-part Goto from an
    // included extension resolves there.
    let mut exec = start(&plan, "internal", "*97");
    let (commands, _) = drain(&mut exec);
    assert_eq!(exec.variable("WHERE").as_deref(), Some("internal"));
    assert_eq!(commands[0], Command::Answer);
}

#[test]
fn pattern_order_picks_the_most_specific_extension() {
    let plan = plan(FLOWS);
    assert_eq!(plan.route("internal", "912").unwrap().extension, "_9X.");
    assert_eq!(plan.route("internal", "812").unwrap().extension, "_X.");
    assert_eq!(plan.route("internal", "100").unwrap().extension, "100");
}

#[test]
fn unknown_extension_or_context_at_start_is_a_route_error() {
    let plan = plan(FLOWS);
    assert_eq!(
        Execution::start(&plan, "internal", "abc", call(), t0(), UNIX_EPOCH).unwrap_err(),
        RouteError::NoRoute {
            context: "internal".into(),
            exten: "abc".into()
        }
    );
    assert_eq!(
        Execution::start(&plan, "nope", "100", call(), t0(), UNIX_EPOCH).unwrap_err(),
        RouteError::UnknownContext {
            context: "nope".into()
        }
    );
}

#[test]
fn goto_built_from_variables_reports_no_route_or_failure_at_run_time() {
    let plan = plan(FLOWS);
    let with = |exten: &str, vars: &[(&str, &str)]| {
        let info = CallInfo {
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..call()
        };
        let mut exec = Execution::start(&plan, "internal", exten, info, t0(), UNIX_EPOCH).unwrap();
        drain(&mut exec)
    };
    let (commands, events) = with("jump", &[("GEXT", "nowhere"), ("GPRIO", "1")]);
    assert!(commands.is_empty());
    assert_eq!(
        events,
        [Event::NoRoute {
            context: "internal".into(),
            exten: "nowhere".into()
        }]
    );
    let (_, events) = with(
        "jump3",
        &[("GCTX", "missing"), ("GEXT", "100"), ("GPRIO", "1")],
    );
    assert_eq!(
        events,
        [Event::Failed(ExecError::Goto(GotoError::UnknownContext {
            context: "missing".into()
        }))]
    );
    let (_, events) = with("jump", &[("GEXT", "vm"), ("GPRIO", "9")]);
    assert!(matches!(
        events.as_slice(),
        [Event::Failed(ExecError::Goto(
            GotoError::NoSuchPriority { .. }
        ))]
    ));
    let (_, events) = with(
        "jump3",
        &[("GCTX", "features"), ("GEXT", "100"), ("GPRIO", "1")],
    );
    assert_eq!(
        events,
        [Event::Finished {
            cause: HangupCause::UNALLOCATED_NUMBER
        }]
    );
    // A value cannot add Goto components: "features,100" is one extension name.
    let (_, events) = with("jump", &[("GEXT", "features,100"), ("GPRIO", "1")]);
    assert!(matches!(events.as_slice(), [Event::NoRoute { .. }]));
}

const AGENTS: &str = r#"
[context.agents]
[[context.agents.extension]]
match = "_X."
steps = [
  { app = "Set", var = "TECH", value = "trunk/twilio" },
  { app = "Dial", targets = ["${TECH}/${EXTEN}"] },
]
[[context.agents.extension]]
match = "_*X."
steps = [ { app = "Dial", targets = ["${DEST}"] } ]

[context.sales]
allow_trunks = ["twilio"]
[[context.sales.extension]]
match = "_X."
steps = [ { app = "Dial", targets = ["${DEST}"] } ]
"#;

#[test]
fn a_trunk_target_built_from_variables_is_refused_in_a_context_without_it() {
    let plan = plan(AGENTS);
    let mut exec = start(&plan, "agents", "0044123");
    let (commands, events) = drain(&mut exec);
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::CALL_REJECTED
        }]
    );
    assert_eq!(
        events,
        [
            Event::TrunkRefused {
                context: "agents".into(),
                trunk: "twilio".into()
            },
            Event::Finished {
                cause: HangupCause::CALL_REJECTED
            },
        ]
    );
}

#[test]
fn gateways_are_guarded_like_trunks() {
    let plan = plan(AGENTS);
    let info = CallInfo {
        variables: vec![("DEST".into(), "gateway/gsm1/03001234567".into())],
        language: None,
        ..call()
    };
    let mut exec = Execution::start(&plan, "agents", "*55", info, t0(), UNIX_EPOCH).unwrap();
    let (_, events) = drain(&mut exec);
    assert!(matches!(events.first(), Some(Event::TrunkRefused { trunk, .. }) if trunk == "gsm1"));
}

#[test]
fn an_allowed_context_may_dial_the_trunk_but_injected_targets_are_dropped() {
    let plan = plan(AGENTS);
    let with = |dest: &str| {
        let info = CallInfo {
            variables: vec![("DEST".into(), dest.into())],
            language: None,
            ..call()
        };
        let mut exec = Execution::start(&plan, "sales", "55", info, t0(), UNIX_EPOCH).unwrap();
        let out = drain(&mut exec);
        (exec, out)
    };
    let (_, (commands, _)) = with("trunk/twilio/+12125551234");
    assert_eq!(dial_targets(&commands[0]), ["trunk/twilio/+12125551234"]);
    // A URI smuggled into the number is not a number: nothing is dialled.
    let (exec, (commands, _)) = with("trunk/twilio/1@evil.example");
    assert_eq!(exec.variable("DIALSTATUS").as_deref(), Some("CHANUNAVAIL"));
    assert_eq!(
        commands,
        [Command::Hangup {
            cause: HangupCause::NORMAL_CIRCUIT_CONGESTION
        }]
    );
    let (_, (_, events)) = with("trunk/other/123");
    assert!(matches!(events.first(), Some(Event::TrunkRefused { trunk, .. }) if trunk == "other"));
}

#[test]
fn a_literal_trunk_in_a_context_without_allow_trunks_fails_to_load() {
    let text = r#"
[context.agents]
[[context.agents.extension]]
match = "_X."
steps = [ { app = "Dial", targets = ["trunk/twilio/+${EXTEN}"] } ]
"#;
    let problems = Dialplan::load("t.toml", text).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 5);
    assert!(problems[0].message.contains("toll-fraud"));
}

#[test]
fn context_numbering_normalises_trunk_numbers_but_not_users() {
    let text = r#"
[numbering.pk]
rules = [ { prefix = "03", length = 11, strip = 1, add = "+92" } ]
[context.office]
allow_trunks = ["voxlocus"]
numbering = "pk"
[[context.office.extension]]
match = "_0X."
steps = [ { app = "Dial", targets = ["trunk/voxlocus/${EXTEN}", "user/${EXTEN}"], timeout = 60 } ]
"#;
    let plan = plan(text);
    let mut exec = start(&plan, "office", "03001234567");
    let (commands, _) = drain(&mut exec);
    assert_eq!(
        dial_targets(&commands[0]),
        ["trunk/voxlocus/+923001234567", "user/03001234567"]
    );
}

#[test]
fn variables_expand_with_substrings_and_builtins() {
    let text = r#"
[context.c]
[[context.c.extension]]
match = "_X."
steps = [
  { app = "Set", var = "A", value = "${EXTEN:1}|${EXTEN:-4}|${EXTEN:1:3}|${CONTEXT}|${UNIQUEID}|${CALLERID(num)}|${CALLERID(name)}|${NOPE}" },
  { app = "Wait", seconds = 0 },
]
"#;
    let plan = plan(text);
    let exec = start(&plan, "c", "919865551234");
    assert_eq!(
        exec.variable("A").as_deref(),
        Some("19865551234|1234|198|c|1700000000.1|100|Alice|")
    );
}

#[test]
fn running_calls_keep_their_plan_when_a_new_one_is_loaded() {
    let old = plan(FLOWS);
    let mut exec = start(&old, "internal", "100");
    drain(&mut exec);
    drop(old);
    exec.handle_dial_result(t0(), DialStatus::Busy);
    let (commands, _) = drain(&mut exec);
    assert_eq!(commands.len(), 1);
}

#[test]
fn a_comma_in_a_dialled_number_cannot_redirect_a_goto_into_another_context() {
    let text = r#"
[context.internal]
allow_trunks = ["twilio"]
[[context.internal.extension]]
match = "_9X."
steps = [ { app = "Dial", targets = ["trunk/twilio/+${EXTEN:1}"] } ]

[context.pstn]
[[context.pstn.extension]]
match = "_*."
steps = [ { app = "Goto", target = "${EXTEN:1},1" } ]
"#;
    let plan = plan(text);
    let mut exec = start(&plan, "pstn", "*internal,9011442071234567");
    let (commands, events) = drain(&mut exec);
    assert!(commands.is_empty(), "{commands:?}");
    assert_eq!(
        events,
        [Event::NoRoute {
            context: "pstn".into(),
            exten: "internal,9011442071234567".into()
        }]
    );
}

#[test]
fn each_command_comes_with_the_step_that_gave_it_though_the_interpreter_runs_ahead() {
    let p = plan(
        r#"
[context.internal]
[[context.internal.extension]]
match = "200"
steps = [
  { app = "Set", var = "X", value = "1" },
  { app = "Answer" },
  { app = "Set", var = "Y", value = "2" },
  { app = "Wait", seconds = 1 },
  { app = "Hangup" },
]
"#,
    );
    let mut exec = start(&p, "internal", "200");
    // Start ran up to the Wait: Answer (step 2) and Wait (step 4) queued.
    assert_eq!(exec.poll_command_step(), Some((Command::Answer, 2)));
    assert_eq!(exec.poll_timeout(), Some(t0() + Duration::from_secs(1)));
    assert_eq!(exec.poll_command_step(), None);
    wait_done(&mut exec);
    assert_eq!(
        exec.poll_command_step(),
        Some((
            Command::Hangup {
                cause: HangupCause::NORMAL_CLEARING
            },
            5
        ))
    );
}
