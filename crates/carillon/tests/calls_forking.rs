//! Forking through the real switch (issue 12): several phones ring at
//! once, the first to answer gets the call, the others get CANCEL and
//! stop ringing, and the call leaves one CDR naming the party that
//! answered.
//!
//! - The example's `from-pstn` extension (`Dial` user/100 and user/101
//!   together) for a call from a trunk (SIPp on 127.0.0.2, identified by
//!   address): two baresip phones with manual answer both ring, 101 picks
//!   up, 100's ringing stops without it ever answering.
//! - A user with two registered contacts (two SIPp UASes as 101): one
//!   answers at once, the other rings and must get the CANCEL (its
//!   scenario fails without it).

mod callsupport;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use callsupport::baresip::{md5_only, require_baresip, Baresip, BaresipSpec};
use callsupport::*;
use carillon_cdr::{CallRecord, Disposition};

/// The carrier's "host".
const CARRIER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The example's `from-pstn` extension, and `internal` for the phones.
const DIALPLAN: &str = r#"
[context.internal]

[[context.internal.extension]]
match = "101"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 20 },
  { app = "Hangup" },
]

[context.from-pstn]

[[context.from-pstn.extension]]
match = "_!"
steps = [
  { app = "Dial", targets = ["user/100", "user/101"], timeout = 30 },
  { app = "Hangup" },
]
"#;

const TRUNKS: &str = r#"
[trunk.pstn]
kind = "carrier"
contacts = ["sip:127.0.0.2:5060"]
identify = ["127.0.0.2"]
context = "from-pstn"
"#;

fn forking_env(rust_log: Option<&str>) -> CallEnv {
    let env = CallEnv::new(&Options {
        // 100 and 101 as in the example, and 8013/8014 in `internal` (their
        // example context, from-internal, is not in DIALPLAN).
        users_toml: Some(users_with_codecs(&["ulaw", "alaw"], &["ulaw", "alaw"])),
        security: md5_only(),
        rust_log: rust_log.map(str::to_owned),
        ..Options::default()
    });
    std::fs::write(env.config_dir().join("dialplan.toml"), DIALPLAN).expect("write dialplan.toml");
    std::fs::write(env.config_dir().join("trunks.toml"), TRUNKS).expect("write trunks.toml");
    env
}

/// Stops the switch once the call since `since_ms` has its CDR (bounded
/// wait); that one CDR, which must say 101 answered.
fn the_cdr_answered_by_101(env: &CallEnv, sw: &mut Switch, since_ms: i64) -> CallRecord {
    let mut rows = wait_for_cdrs(&env.db_url, since_ms, 1, Duration::from_secs(10), |_| true);
    sw.assert_idle(Duration::from_secs(10));
    sw.stop();
    assert_eq!(
        rows.len(),
        1,
        "one CDR for the call: {rows:#?}\n{}",
        sw.log()
    );
    let r = rows.remove(0);
    assert_eq!(r.disposition, Disposition::Answered, "{r:#?}");
    assert!(
        r.dstchannel.starts_with("SIP/101-"),
        "the answering party is 101: {r:#?}"
    );
    r
}

fn phone(env: &CallEnv, user: &'static str, password: &'static str, tone_hz: f64) -> Baresip {
    Baresip::start(
        env,
        &BaresipSpec {
            answermode: "manual",
            ..BaresipSpec::new(user, password, tone_hz)
        },
    )
}

#[test]
fn a_pstn_call_rings_both_baresip_phones_and_the_one_that_answers_gets_it() {
    require_sipp();
    require_baresip();
    let mut env = forking_env(None);
    let since = unix_ms() - 1000;
    let mut sw = env.start();
    let mut p100 = phone(&env, "100", PW100, 600.0);
    let mut p101 = phone(&env, "101", PW101, 1400.0);

    // The carrier's call (no credentials, identified by its address): it
    // plays a tone and hangs up 3 s after the answer.
    write_tone_pcap(&env.path().join("tone.pcap"), 2, 440.0);
    let mut carrier = sipp_carrier_calls(
        &env,
        &sw,
        CARRIER_IP,
        "+15550001111",
        "+15557654321",
        Duration::from_secs(30),
    );

    let ringing_100 = p100.wait_event("CALL_INCOMING", 1, Duration::from_secs(10));
    let ringing_101 = p101.wait_event("CALL_INCOMING", 1, Duration::from_secs(10));
    assert!(
        ringing_100 && ringing_101,
        "both phones must ring (100: {ringing_100}, 101: {ringing_101})\n100:\n{}\n101:\n{}\n{}",
        p100.events,
        p101.events,
        describe(&env, &sw, &["carrier"])
    );
    p101.command("accept", "");
    assert!(
        p101.wait_event("CALL_ESTABLISHED", 1, Duration::from_secs(10)),
        "101 accepted but the call was not established\n{}\n{}",
        p101.events,
        sw.log()
    );
    // 100 stops ringing (the switch CANCELs its INVITE) and never answers.
    assert!(
        p100.wait_event("CALL_CLOSED", 1, Duration::from_secs(10)),
        "100 kept ringing after 101 answered\n{}\n{}",
        p100.events,
        sw.log()
    );
    let run = carrier.wait();
    assert!(
        run.ok(),
        "the carrier's call failed: {:?}\n{}",
        run.status,
        describe(&env, &sw, &["carrier"])
    );
    assert!(
        p101.wait_event("CALL_CLOSED", 1, Duration::from_secs(10)),
        "101 did not get the carrier's hangup\n{}",
        p101.events
    );
    p100.settle(Duration::from_millis(500));
    assert_eq!(p100.count("CALL_ESTABLISHED"), 0, "{}", p100.events);
    p100.stop();
    p101.stop();

    let r = the_cdr_answered_by_101(&env, &mut sw, since);
    assert_eq!(r.dcontext, "from-pstn", "{r:#?}");
    assert_eq!(r.trunk.as_deref(), Some("pstn"), "{r:#?}");
    assert!(
        (2..=5).contains(&r.billsec()),
        "billsec {} in {r:#?}",
        r.billsec()
    );
}

#[test]
fn a_user_with_two_contacts_rings_both_and_the_other_gets_cancel_when_one_answers() {
    require_sipp();
    let mut env = forking_env(None);
    let since = unix_ms() - 1000;
    let mut sw = env.start();
    // 101 registered twice: one contact rings until cancelled, the other
    // answers and hangs up after 2 s.
    let mut ringer = registered_uas(&env, &sw, "uas-ring", "101", PW101, "calls_uas_cancel.xml");
    let mut answerer = registered_uas(&env, &sw, "uas-answer", "101", PW101, "calls_uas_bye.xml");
    let run = run_uac(&env, &sw, "uac", "calls_uac_wait_bye.xml", &[], 1, 1);
    let answer_run = answerer.wait();
    let ring_run = ringer.wait();
    let names = ["uac", "uas-answer", "uas-ring"];
    assert!(
        answer_run.ok() && run.ok(),
        "the answered fork failed (caller {:?}, answerer {:?})\n{}",
        run.status,
        answer_run.status,
        describe(&env, &sw, &names)
    );
    assert!(
        ring_run.ok(),
        "the contact still ringing did not get CANCEL (and the ACK of its 487): {:?}\n{}",
        ring_run.status,
        describe(&env, &sw, &names)
    );
    let r = the_cdr_answered_by_101(&env, &mut sw, since);
    assert_eq!((r.src.as_str(), r.dst.as_str()), ("100", "101"), "{r:#?}");
    assert_eq!(
        sw.calls_ended().len(),
        1,
        "{:#?}\n{}",
        sw.events(),
        sw.log()
    );
}
