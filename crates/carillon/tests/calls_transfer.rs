//! Blind transfer by REFER through the real binary, with SIPp phones: 100
//! calls 101; 101 (a SIPp UAS, `calls_uas_refer.xml`) REFERs the call to
//! 8013 (another SIPp UAS, registered, `calls_uas_bye.xml`). Checked: 101
//! gets 202, the NOTIFY with `SIP/2.0 100 Trying` and the final one with
//! `SIP/2.0 200 OK` and `Subscription-State: terminated` (checked by the
//! scenario and in its message trace), then the switch's BYE; 8013's
//! INVITE carries `Referred-By`; the switch's events show the caller
//! unbridged from 101 and bridged with 8013, 101 hung up; when 8013 hangs
//! up the caller gets its BYE and nothing is left behind.

mod callsupport;

use std::time::Duration;

use callsupport::ivr::assert_nothing_left;
use callsupport::*;
use carillon_events::SwitchEvent;

#[test]
fn a_refer_from_the_callee_transfers_the_caller_to_8013() {
    require_sipp();
    let mut env = CallEnv::new(&Options::default());
    let (sw, uas_sip, uas_media) = switch_with_101(&mut env);
    let mut target = registered_uas(
        &env,
        &sw,
        "uas-8013",
        "8013",
        "zoiper8013",
        "calls_uas_bye.xml",
    );
    let mut referrer = start_uas(
        &env,
        "uas-101",
        Some("calls_uas_refer.xml"),
        uas_sip,
        uas_media,
        1,
    );
    let names = ["uac-wait", "uas-101", "uas-8013"];
    let caller = run_uac(&env, &sw, "uac-wait", "calls_uac_wait_bye.xml", &[], 1, 1);
    let referrer_run = referrer.wait();
    let target_run = target.wait();
    assert!(
        referrer_run.ok(),
        "101's REFER, NOTIFYs or BYE went wrong: {:?}\n{}",
        referrer_run.status,
        describe(&env, &sw, &names)
    );
    assert!(
        target_run.ok(),
        "8013 was not called and answered: {:?}\n{}",
        target_run.status,
        describe(&env, &sw, &names)
    );
    assert!(
        caller.ok(),
        "the caller did not get its BYE after 8013 hung up: {:?}\n{}",
        caller.status,
        describe(&env, &sw, &names)
    );
    // The NOTIFY bodies 101 received, in order.
    let frags: Vec<String> = sipp_messages(env.path(), "uas-101")
        .iter()
        .filter(|m| m.contains("received") && m.contains("NOTIFY sip:"))
        .filter_map(|m| {
            m.lines()
                .find(|l| l.trim().starts_with("SIP/2.0 "))
                .map(|l| l.trim().to_owned())
        })
        .collect();
    assert_eq!(
        frags,
        ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"],
        "{}",
        describe(&env, &sw, &names)
    );
    let invite_8013 = sipp_messages(env.path(), "uas-8013")
        .into_iter()
        .find(|m| m.contains("received") && m.contains("INVITE sip:"))
        .unwrap_or_default();
    assert!(
        invite_8013.contains("Referred-By: <sip:101@"),
        "{invite_8013}"
    );
    // The events: the caller left 101's bridge and joined 8013's.
    let bridges: Vec<(bool, [String; 2])> = sw
        .wait_events(3, Duration::from_secs(5), |e| {
            matches!(
                e,
                SwitchEvent::Bridged { .. } | SwitchEvent::Unbridged { .. }
            )
        })
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::Bridged { channels, .. } => Some((true, channels)),
            SwitchEvent::Unbridged { channels, .. } => Some((false, channels)),
            _ => None,
        })
        .collect();
    let kinds: Vec<(bool, &str)> = bridges
        .iter()
        .map(|(b, ch)| (*b, ch[1].split('-').next().unwrap_or_default()))
        .collect();
    assert_eq!(
        &kinds[..3],
        [(true, "SIP/101"), (false, "SIP/101"), (true, "SIP/8013")],
        "{bridges:?}"
    );
    assert!(bridges.iter().all(|(_, ch)| ch[0].starts_with("SIP/100-")));
    let hangups: Vec<String> = sw
        .wait_events(3, Duration::from_secs(5), |e| {
            matches!(e, SwitchEvent::Hangup { .. })
        })
        .into_iter()
        .filter_map(|e| match e.event {
            SwitchEvent::Hangup { channel, .. } => Some(channel),
            _ => None,
        })
        .collect();
    assert!(
        hangups[0].starts_with("SIP/101-"),
        "the referrer leaves first: {hangups:?}"
    );
    assert_eq!(hangups.len(), 3, "{hangups:?}");
    assert_nothing_left(&sw, Duration::from_secs(5));
}
