//! The shipped `config/dialplan.toml` loads and routes the numbers of the
//! deployments Carillon replaces.

use carillon_dialplan::{CallInfo, Command, DialTarget, Dialplan, Execution};
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

fn shipped() -> Dialplan {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/dialplan.toml");
    let text = std::fs::read_to_string(path).unwrap();
    match Dialplan::load("dialplan.toml", &text) {
        Ok(plan) => plan,
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!("shipped dialplan has problems:\n{}", lines.join("\n"));
        }
    }
}

/// The first command of a call, which must be a Dial: (targets, timeout, caller num).
fn first_dial(
    plan: &Dialplan,
    context: &str,
    exten: &str,
) -> (Vec<String>, Option<Duration>, String) {
    let call = CallInfo {
        caller_num: "100".into(),
        ..CallInfo::default()
    };
    let mut exec = Execution::start(plan, context, exten, call, t0(), UNIX_EPOCH).unwrap();
    loop {
        match exec.poll_command() {
            Some(Command::SetCallerId(_)) => continue,
            Some(Command::Dial {
                targets,
                timeout,
                caller_id,
            }) => {
                return (
                    targets.iter().map(DialTarget::to_string).collect(),
                    timeout,
                    caller_id.num,
                )
            }
            other => panic!("{context}/{exten}: expected Dial, got {other:?}"),
        }
    }
}

#[test]
fn shipped_dialplan_has_the_five_deployment_contexts() {
    let plan = shipped();
    let contexts: Vec<&str> = plan.contexts().collect();
    for name in [
        "internal",
        "from-twilio",
        "from-pstn",
        "from-internal",
        "from-voxlocus",
    ] {
        assert!(contexts.contains(&name), "missing context {name}");
    }
}

#[test]
fn internal_extensions_ring_each_other_for_thirty_seconds() {
    let plan = shipped();
    let (targets, timeout, _) = first_dial(&plan, "internal", "100");
    assert_eq!(targets, ["user/100"]);
    assert_eq!(timeout, Some(Duration::from_secs(30)));
    assert_eq!(first_dial(&plan, "internal", "101").0, ["user/101"]);
}

#[test]
fn internal_nine_prefix_goes_out_through_twilio_with_the_company_caller_id() {
    let plan = shipped();
    let (targets, timeout, caller) = first_dial(&plan, "internal", "92125551234");
    assert_eq!(targets, ["trunk/twilio/+12125551234"]);
    assert_eq!(timeout, Some(Duration::from_secs(60)));
    assert_eq!(caller, "+19863334949");
    let (targets, _, caller) = first_dial(&plan, "internal", "912125551234");
    assert_eq!(targets, ["trunk/twilio/+12125551234"]);
    assert_eq!(caller, "+19863334949");
    let (targets, _, _) = first_dial(&plan, "internal", "9442071234567");
    assert_eq!(targets, ["trunk/twilio/+442071234567"]);
}

#[test]
fn internal_cannot_reach_unknown_numbers_or_the_pakistani_trunk() {
    let plan = shipped();
    assert!(plan.route("internal", "102").is_err());
    assert!(plan.route("internal", "03001234567").is_err());
    let allowed: Vec<&str> = plan.allowed_trunks("internal").unwrap().collect();
    assert_eq!(allowed, ["twilio"]);
}

#[test]
fn twilio_did_and_any_us_number_ring_extension_100() {
    let plan = shipped();
    let route = plan.route("from-twilio", "+19863334949").unwrap();
    assert_eq!(route.extension, "+19863334949");
    assert_eq!(
        first_dial(&plan, "from-twilio", "+19863334949").0,
        ["user/100"]
    );
    assert_eq!(
        plan.route("from-twilio", "+12125550000").unwrap().extension,
        "_+1."
    );
    assert_eq!(
        first_dial(&plan, "from-twilio", "+12125550000").0,
        ["user/100"]
    );
    assert!(plan.route("from-twilio", "+442071234567").is_err());
}

#[test]
fn pstn_calls_ring_100_and_101_together() {
    let plan = shipped();
    assert_eq!(
        first_dial(&plan, "from-pstn", "s").0,
        ["user/100", "user/101"]
    );
    assert_eq!(
        first_dial(&plan, "from-pstn", "2125551234").0,
        ["user/100", "user/101"]
    );
}

#[test]
fn pakistan_office_rings_each_other_and_dials_out_through_voxlocus_in_e164() {
    let plan = shipped();
    let (targets, timeout, _) = first_dial(&plan, "from-internal", "8014");
    assert_eq!(targets, ["user/8014"]);
    assert_eq!(timeout, Some(Duration::from_secs(60)));
    assert_eq!(first_dial(&plan, "from-internal", "8013").0, ["user/8013"]);
    let (targets, timeout, _) = first_dial(&plan, "from-internal", "03001234567");
    assert_eq!(targets, ["trunk/voxlocus/+923001234567"]);
    assert_eq!(timeout, Some(Duration::from_secs(60)));
    assert_eq!(
        first_dial(&plan, "from-internal", "+923001234567").0,
        ["trunk/voxlocus/+923001234567"]
    );
    assert!(plan.route("from-internal", "100").is_err());
}

#[test]
fn voxlocus_inbound_calls_ring_8013() {
    let plan = shipped();
    assert_eq!(
        first_dial(&plan, "from-voxlocus", "+924235761234").0,
        ["user/8013"]
    );
    assert_eq!(first_dial(&plan, "from-voxlocus", "").0, ["user/8013"]);
}

#[test]
fn inbound_contexts_may_not_use_any_trunk() {
    let plan = shipped();
    for context in ["from-twilio", "from-pstn", "from-voxlocus"] {
        assert_eq!(
            plan.allowed_trunks(context).unwrap().count(),
            0,
            "{context}"
        );
    }
}
