//! Hold through the sans-IO switch with virtual time: in a bridged call,
//! a re-INVITE `sendonly` (or `inactive`) from one phone makes the switch
//! play music on hold to the other party, and the resume (`sendrecv`)
//! stops it so the relay carries the phone again; `hold`/`unhold` events
//! name the phone that held. Works the same from the caller and the callee.

mod common;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{Peer, Switch};
use carillon_events::SwitchEvent;
use carillon_mediactl::{LegId, MediaCommand, PlayItem};
use carillon_sip::{HeaderName, Message};
use common::{bridged_call, sdp, switch_config, udp, user, Rig};

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
fn reinvite_from_a(r: &mut Rig, secs: f64, tag: &str, cseq: u32, direction: &str) -> Message {
    let body = sdp("a", 40000, cseq, direction);
    r.send(secs, udp(5080), format!("INVITE sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKre{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    let ok = r
        .take()
        .into_iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
        .map(|(_, m)| m)
        .expect("200 to the re-INVITE");
    r.send(secs, udp(5080), format!("ACK sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKreack{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"));
    ok
}

/// The legs of the bridge the switch set up: (caller's, callee's).
fn bridge(r: &Rig) -> (LegId, LegId) {
    r.media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Bridge { a, b, .. } => Some((*a, *b)),
            _ => None,
        })
        .expect("a bridge")
}

/// The legs given music on hold (class `default`) so far.
fn moh_plays(r: &Rig) -> Vec<LegId> {
    r.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Play { leg, items, .. }
                if items
                    == &[PlayItem::Moh {
                        class: "default".into(),
                    }] =>
            {
                Some(*leg)
            }
            _ => None,
        })
        .collect()
}

fn stop_plays(r: &Rig) -> Vec<LegId> {
    r.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::StopPlay { leg, .. } => Some(*leg),
            _ => None,
        })
        .collect()
}

fn hold_events(r: &Rig) -> Vec<(&'static str, String)> {
    r.events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::Hold { channel, .. } => Some(("hold", channel.clone())),
            SwitchEvent::Unhold { channel, .. } => Some(("unhold", channel.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_caller_holding_gives_the_callee_music_on_hold_until_it_resumes() {
    let mut r = rig();
    let (tag, _) = bridged_call(&mut r);
    let (a, b) = bridge(&r);
    assert!(moh_plays(&r).is_empty(), "no music before any hold");

    let ok = reinvite_from_a(&mut r, 3.0, &tag, 3, "sendonly");
    assert!(
        String::from_utf8_lossy(ok.body()).contains("a=recvonly"),
        "the hold is answered recvonly"
    );
    assert_eq!(moh_plays(&r), [b], "the callee hears music on hold");
    assert!(stop_plays(&r).is_empty());
    // A second re-INVITE still on hold (a refresh) starts nothing new.
    reinvite_from_a(&mut r, 4.0, &tag, 4, "sendonly");
    assert_eq!(moh_plays(&r), [b]);

    reinvite_from_a(&mut r, 6.0, &tag, 5, "sendrecv");
    assert_eq!(stop_plays(&r), [b], "resume stops the music for the callee");
    assert!(
        !r.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Unbridge { .. })),
        "the bridge stays: the relay carries the caller again"
    );
    let events = hold_events(&r);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "hold");
    assert_eq!(events[1].0, "unhold");
    assert!(
        events[0].1.starts_with("SIP/100-"),
        "the caller held: {events:?}"
    );
    // Holding with inactive works the same; a resume with recvonly too.
    reinvite_from_a(&mut r, 7.0, &tag, 6, "inactive");
    assert_eq!(moh_plays(&r), [b, b]);
    reinvite_from_a(&mut r, 8.0, &tag, 7, "recvonly");
    assert_eq!(stop_plays(&r), [b, b]);
    assert_ne!(a, b);
}

#[test]
fn the_callee_holding_gives_the_caller_music_on_hold() {
    let mut r = rig();
    let (_, b_inv) = bridged_call(&mut r);
    let (a, _) = bridge(&r);
    // 101 sends a re-INVITE sendonly in its dialog with the switch.
    let from = b_inv.header(HeaderName::From).unwrap().to_string();
    let to = b_inv.header(HeaderName::To).unwrap().to_string();
    let call_id = b_inv.header(HeaderName::CallId).unwrap().to_string();
    let body = sdp("b", 41000, 2, "sendonly");
    r.send(3.0, udp(5070), format!("INVITE sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbhold;rport\r\nFrom: {to};tag=b1\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: 10 INVITE\r\nContact: <sip:101@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    let out: Vec<(Peer, Message)> = r.take();
    assert!(
        out.iter()
            .any(|(p, m)| p.addr.port() == 5070 && m.status() == Some(200)),
        "{out:?}"
    );
    assert_eq!(moh_plays(&r), [a], "the caller hears music on hold");
    let events = hold_events(&r);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].1.starts_with("SIP/101-"), "{events:?}");
}
