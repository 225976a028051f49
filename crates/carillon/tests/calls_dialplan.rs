//! Dialplan applications through the real switch (issue 12), SIPp as the
//! phones over UDP and the CDRs read back from SQLite:
//!
//! - a call answered by the dialplan itself (`Answer`, `Wait` 3 s,
//!   `Hangup`) is `ANSWERED`, with an answer time and billsec ≈ 3;
//! - `Dial` with `continue = true` (Asterisk's `g` option): when the
//!   callee hangs up, the caller stays up and the dialplan goes on with
//!   `${DIALSTATUS}` = `ANSWER` (a `GotoIf` on it sends the call to a
//!   second `Dial`, which reaches another phone); without `continue` the
//!   callee's hangup still hangs the caller up.

mod callsupport;

use std::time::{Duration, Instant};

use callsupport::*;
use carillon_cdr::{CallRecord, Disposition};

/// 100, 101 and 102 in context `internal`.
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

/// 500 is answered by the dialplan itself; 600 rings 101 and goes on after
/// it (continue), to 601 when the Dial was answered (602 otherwise); 700
/// rings 101 without continue.
const DIALPLAN: &str = r#"
[context.internal]

[[context.internal.extension]]
match = "500"
steps = [
  { app = "Answer" },
  { app = "Wait", seconds = 3 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "600"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 10, continue = true },
  { app = "GotoIf", condition = "${DIALSTATUS} = ANSWER", then = "601,1", else = "602,1" },
]

[[context.internal.extension]]
match = "601"
steps = [
  { app = "Dial", targets = ["user/102"], timeout = 10 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "602"
steps = [
  { app = "Hangup", cause = 21 },
]

[[context.internal.extension]]
match = "700"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 10 },
  { app = "Answer" },
  { app = "Wait", seconds = 30 },
  { app = "Hangup" },
]
"#;

fn dialplan_env() -> CallEnv {
    let env = CallEnv::new(&Options {
        users_toml: Some(USERS.to_owned()),
        ..Options::default()
    });
    std::fs::write(env.config_dir().join("dialplan.toml"), DIALPLAN).expect("write dialplan.toml");
    // This dialplan has none of the example trunks' contexts, and
    // check-config refuses trunks whose context does not exist.
    std::fs::write(env.config_dir().join("trunks.toml"), "# no trunks\n")
        .expect("write trunks.toml");
    env
}

/// SIPp as phone 100 dialling `number` with `scenario_file` (fields: 100,
/// credentials, number), in the foreground.
fn phone_100_dials(
    env: &CallEnv,
    sw: &Switch,
    name: &str,
    scenario_file: &str,
    number: &str,
) -> ToolRun {
    sipp_100_dials(
        env,
        sw,
        name,
        scenario_file,
        number,
        Duration::from_secs(30),
    )
    .wait()
}

/// Waits (bounded) for `n` CDRs of calls dialled to `dst`.
fn wait_cdrs(env: &CallEnv, since_ms: i64, dst: &str, n: usize) -> Vec<CallRecord> {
    wait_for_cdrs(&env.db_url, since_ms, n, Duration::from_secs(10), |r| {
        r.dst == dst
    })
}

#[test]
fn a_call_answered_by_the_dialplan_is_stored_answered_with_its_billsec() {
    require_sipp();
    let mut env = dialplan_env();
    let since = unix_ms() - 1000;
    let mut sw = env.start();
    let started = Instant::now();
    // The caller waits for the switch's BYE (sent by the Hangup step).
    let run = phone_100_dials(&env, &sw, "uac-500", "calls_uac_wait_bye.xml", "500");
    let took = started.elapsed();
    assert!(
        run.ok(),
        "caller of 500 failed: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["uac-500"])
    );
    assert!(
        took >= Duration::from_secs(3),
        "the Wait of 3 s was not kept: the call took {took:?}"
    );
    let rows = wait_cdrs(&env, since, "500", 1);
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    assert_eq!(rows.len(), 1, "one CDR expected: {rows:#?}\n{}", sw.log());
    let r = &rows[0];
    assert_eq!(r.disposition, Disposition::Answered, "{r:#?}");
    let answer = r.answer_ms.expect("an answer time");
    assert!(
        r.start_ms <= answer && answer <= r.end_ms,
        "answer time outside the call: {r:#?}"
    );
    assert!(
        (2..=4).contains(&r.billsec()),
        "Answer, Wait 3 s, Hangup: billsec {} in {r:#?}",
        r.billsec()
    );
    assert_eq!(r.src, "100", "{r:#?}");
    assert_eq!(r.hangup_cause, 16, "{r:#?}");
}

#[test]
fn dial_with_continue_goes_on_with_dialstatus_answer_after_the_callee_hangs_up() {
    require_sipp();
    let mut env = dialplan_env();
    let since = unix_ms() - 1000;
    let mut sw = env.start();
    // 101 and 102 answer and hang up themselves after 2 s.
    let mut uas_101 = registered_uas(&env, &sw, "uas-101", "101", PW101, "calls_uas_bye.xml");
    let mut uas_102 = registered_uas(&env, &sw, "uas-102", "102", PW102, "calls_uas_bye.xml");
    let run = phone_100_dials(&env, &sw, "uac-600", "calls_uac_wait_bye.xml", "600");
    let run_101 = uas_101.wait();
    let run_102 = uas_102.wait();
    let names = ["uac-600", "uas-101", "uas-102"];
    assert!(
        run_101.ok(),
        "101 was not called, or its BYE was not answered: {:?}\n{}",
        run_101.status,
        describe(&env, &sw, &names)
    );
    assert!(
        run_102.ok(),
        "the dialplan did not go on to Dial 102 after 101 hung up: {:?}\n{}",
        run_102.status,
        describe(&env, &sw, &names)
    );
    assert!(
        run.ok(),
        "the caller was not kept up and then hung up by the dialplan: {:?}\n{}",
        run.status,
        describe(&env, &sw, &names)
    );
    // The caller got exactly one BYE (at the end), none when 101 hung up.
    let byes = sipp_messages(env.path(), "uac-600")
        .iter()
        .filter(|m| m.contains("received") && m.lines().any(|l| l.trim().starts_with("BYE ")))
        .count();
    assert_eq!(byes, 1, "{}", describe(&env, &sw, &["uac-600"]));

    let rows = wait_cdrs(&env, since, "600", 1);
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    assert_eq!(rows.len(), 1, "one CDR expected: {rows:#?}\n{}", sw.log());
    let r = &rows[0];
    assert_eq!(r.disposition, Disposition::Answered, "{r:#?}");
    assert!(
        r.dstchannel.starts_with("SIP/102-"),
        "the last party that answered was 102: {r:#?}"
    );
    // Two calls of 2 s each, one after the other.
    assert!(
        (3..=7).contains(&r.billsec()),
        "billsec {} in {r:#?}",
        r.billsec()
    );
    let hangups = sw.lines("hangup");
    assert_eq!(
        hangups
            .iter()
            .filter(|l| l.get("side") == Some("callee"))
            .count(),
        2,
        "{}",
        sw.log()
    );
}

#[test]
fn without_continue_the_callee_hanging_up_hangs_the_caller_up() {
    require_sipp();
    let mut env = dialplan_env();
    let since = unix_ms() - 1000;
    let mut sw = env.start();
    let mut uas_101 = registered_uas(&env, &sw, "uas-101", "101", PW101, "calls_uas_bye.xml");
    let started = Instant::now();
    let run = phone_100_dials(&env, &sw, "uac-700", "calls_uac_wait_bye.xml", "700");
    let took = started.elapsed();
    let run_101 = uas_101.wait();
    let names = ["uac-700", "uas-101"];
    assert!(run_101.ok(), "{}", describe(&env, &sw, &names));
    assert!(run.ok(), "{}", describe(&env, &sw, &names));
    // The steps after the Dial (Wait 30 s) never ran.
    assert!(
        took < Duration::from_secs(15),
        "the caller was kept after the callee hung up ({took:?})"
    );
    let rows = wait_cdrs(&env, since, "700", 1);
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].disposition, Disposition::Answered, "{:#?}", rows[0]);
    assert!(rows[0].dstchannel.starts_with("SIP/101-"), "{:#?}", rows[0]);
}
