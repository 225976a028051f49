//! Channel control through the sans-IO switch with virtual time: a
//! bridged call lists its two channels (names, bridged-with, state), and
//! hanging one up by name ends the call: both phones get a BYE, the CDR
//! and the hangup events carry the cause, the switch holds nothing after;
//! an unknown name is `NotFound`.

mod common;

use carillon_b2bua::calls::chanctl::NotFound;
use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::Switch;
use carillon_events::SwitchEvent;
use carillon_sip::Method;
use common::{bridged_call, switch_config, user, Rig};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]
"#;

fn rig() -> Rig {
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        events: true,
        ..CallConfig::default()
    };
    Rig::on(Switch::new(switch_config(vec![user("100"), user("101")], 5, calls)).unwrap())
}

/// A re-INVITE from 100 with `direction`; returns the switch's answer.

#[test]
fn a_bridged_call_hung_up_by_channel_name_ends_with_bye_to_both_phones() {
    let mut r = rig();
    bridged_call(&mut r);
    let list = r.sw.channel_list();
    assert_eq!(list.len(), 2, "{list:?}");
    let a = list
        .iter()
        .find(|c| c.name.starts_with("SIP/100-"))
        .expect("caller channel");
    let b = list
        .iter()
        .find(|c| c.name.starts_with("SIP/101-"))
        .expect("callee channel");
    assert_eq!(a.state, "up");
    assert_eq!(b.state, "up");
    assert_eq!(a.bridged_with.as_deref(), Some(b.name.as_str()));
    assert_eq!(b.bridged_with.as_deref(), Some(a.name.as_str()));
    assert_eq!(a.linkedid, b.linkedid);
    assert_ne!(a.uniqueid, b.uniqueid);
    assert_eq!(a.exten, "101");
    assert_eq!(a.caller_num, "100");
    assert!(a.answer_ms.is_some());

    let (now, ms) = r.at(5.0);
    assert_eq!(
        r.sw.hangup_channel(now, ms, "SIP/999-00000001", 16),
        Err(NotFound("SIP/999-00000001".into()))
    );
    let b_name = b.name.clone();
    r.sw.hangup_channel(now, ms, &b_name, 17).expect("hung up");
    r.drain();
    let wire = r.take();
    let byes: Vec<u16> = wire
        .iter()
        .filter(|(_, m)| m.method() == Some(&Method::Bye))
        .map(|(p, _)| p.addr.port())
        .collect();
    assert!(
        byes.contains(&5080) && byes.contains(&5070),
        "BYEs to {byes:?}"
    );
    assert_eq!(r.sw.calls().active(), 0);
    assert_eq!(r.sw.calls().channels(), 0);
    assert_eq!(r.sw.calls().bridges(), 0);
    assert!(r.sw.channel_list().is_empty());
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].hangup_cause, 17, "{:?}", r.cdrs[0]);
    let causes: Vec<u16> = r
        .events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Hangup { cause, .. } => Some(*cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(causes.contains(&17), "{causes:?}");
    // Gone now.
    let (now, ms) = r.at(6.0);
    assert!(r.sw.hangup_channel(now, ms, &b_name, 16).is_err());
}
