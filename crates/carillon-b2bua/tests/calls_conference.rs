//! ConfBridge through the sans-IO switch with a fake media plane: callers
//! dialling room 800 are answered and joined to one mix (the first creates
//! it, the others are added), a member alone hears music until a second
//! joins, a caller finding the room full gets `CONFBRIDGE_RESULT=FAILED`
//! and the dialplan goes on (here: hangs up), hangups remove members and
//! the last one destroys the mix; `conf_join`/`conf_leave` events. Ends
//! with nothing left.

mod common;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::conference::{ConferenceConfig, RoomConfig};
use carillon_b2bua::{Switch, User};
use carillon_digest::Challenge;
use carillon_events::SwitchEvent;
use carillon_mediactl::{LegId, MediaCommand, MixId, PlayItem, SessionId};
use carillon_sip::{HeaderName, Method};
use common::{udp, user, Rig};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "800"
steps = [
  { app = "ConfBridge", room = "800" },
  { app = "Hangup" },
]
"#;

fn sdp(port: u16) -> String {
    format!("v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
}

fn rig() -> Rig {
    let mut rooms = std::collections::BTreeMap::new();
    rooms.insert(
        "800".to_owned(),
        RoomConfig {
            max_members: Some(2),
            moh: Some("default".into()),
        },
    );
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        conferences: ConferenceConfig { rooms },
        events: true,
        ..CallConfig::default()
    };
    let users: Vec<User> = vec![user("100"), user("101"), user("102")];
    Rig::on(Switch::new(common::switch_config(users, 5, calls)).unwrap())
}

/// `ext` (at `port`) calls 800 with Call-ID `cid`, authenticates and ACKs
/// the 200; returns our To tag.
fn join(r: &mut Rig, secs: f64, ext: &str, port: u16, cid: &str) -> String {
    let body = sdp(port + 1000);
    let inv = |auth: Option<String>, cseq: u32| {
        format!(
            "INVITE sip:800@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{cid}{cseq};rport\r\nFrom: <sip:{ext}@127.0.0.1>;tag=t{ext}\r\nTo: <sip:800@127.0.0.1>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{ext}@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            body.len(),
        )
    };
    r.send(secs, udp(port), inv(None, 1));
    let ch = r
        .take()
        .into_iter()
        .find(|(_, m)| m.status() == Some(407))
        .map(|(_, m)| Challenge::parse(&m.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap())
        .expect("407");
    r.send(secs, udp(port), format!("ACK sip:800@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{cid}1;rport\r\nFrom: <sip:{ext}@127.0.0.1>;tag=t{ext}\r\nTo: <sip:800@127.0.0.1>;tag=x\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    let auth = carillon_digest::respond(
        &ch,
        "INVITE",
        "sip:800@127.0.0.1",
        ext,
        &format!("changeme{ext}"),
        "c",
        1,
    );
    r.send(secs, udp(port), inv(Some(auth), 2));
    let out = r.take();
    let ok = out
        .iter()
        .find(|(p, m)| p.addr.port() == port && m.status() == Some(200))
        .map(|(_, m)| m.clone())
        .expect("200 to the caller");
    // What else was sent (a BYE of a refused caller) stays for the test.
    r.wire.extend(out);
    let tag = ok.tag(HeaderName::To).unwrap().to_string();
    r.send(secs, udp(port), format!("ACK sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{cid}ack;rport\r\nFrom: <sip:{ext}@127.0.0.1>;tag=t{ext}\r\nTo: <sip:800@127.0.0.1>;tag={tag}\r\nCall-ID: {cid}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"));
    tag
}

fn bye(r: &mut Rig, secs: f64, ext: &str, port: u16, cid: &str, tag: &str) {
    r.send(secs, udp(port), format!("BYE sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{cid}bye;rport\r\nFrom: <sip:{ext}@127.0.0.1>;tag=t{ext}\r\nTo: <sip:800@127.0.0.1>;tag={tag}\r\nCall-ID: {cid}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"));
}

/// The caller legs opened so far, in order.
fn legs(r: &Rig) -> Vec<(SessionId, LegId)> {
    r.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::OpenLeg { session, leg, .. } => Some((*session, *leg)),
            _ => None,
        })
        .collect()
}

fn conf_events(r: &Rig) -> Vec<(bool, String, u32)> {
    r.events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::ConfJoin { room, members, .. } => Some((true, room.clone(), *members)),
            SwitchEvent::ConfLeave { room, members, .. } => Some((false, room.clone(), *members)),
            _ => None,
        })
        .collect()
}

#[test]
fn members_join_one_mix_the_full_room_refuses_and_the_last_destroys_it() {
    let mut r = rig();
    let tag_a = join(&mut r, 1.0, "100", 5080, "confA");
    let (sa, la) = legs(&r)[0];
    let mix = r
        .media
        .iter()
        .find_map(|m| match m {
            MediaCommand::CreateMix { session, mix } => Some((*session, *mix)),
            _ => None,
        })
        .expect("the first member creates the mix");
    assert_eq!(mix.0, sa);
    let mix: MixId = mix.1;
    assert!(r.media.iter().any(|m| matches!(m,
        MediaCommand::AddToMix { mix: x, leg, .. } if *x == mix && *leg == la)));
    assert!(
        r.media.iter().any(|m| matches!(m,
            MediaCommand::Play { leg, items, .. } if *leg == la
                && items == &vec![PlayItem::Moh { class: "default".into() }])),
        "alone: music"
    );

    let tag_b = join(&mut r, 2.0, "101", 5090, "confB");
    let (_, lb) = legs(&r)[1];
    assert!(r.media.iter().any(|m| matches!(m,
        MediaCommand::AddToMix { session, mix: x, leg, .. } if *session == sa && *x == mix && *leg == lb)));
    assert!(
        r.media
            .iter()
            .any(|m| matches!(m, MediaCommand::StopPlay { leg, .. } if *leg == la)),
        "the music stops when a second joins"
    );
    assert_eq!(
        r.media
            .iter()
            .filter(|m| matches!(m, MediaCommand::CreateMix { .. }))
            .count(),
        1
    );

    // The room holds two: the third caller's ConfBridge fails and the
    // dialplan goes on to its Hangup (a BYE).
    join(&mut r, 3.0, "102", 5100, "confC");
    let (_, lc) = legs(&r)[2];
    assert!(!r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::AddToMix { leg, .. } if *leg == lc)));
    assert!(
        r.events.iter().any(|e| matches!(&e.event,
        SwitchEvent::AppFinished { app, result, .. } if app == "ConfBridge" && result == "FAILED"))
    );
    let bye_c = r
        .wire
        .iter()
        .find(|(p, m)| p.addr.port() == 5100 && m.method() == Some(&Method::Bye))
        .map(|(_, m)| m.clone())
        .expect("BYE to the caller refused");
    r.send(
        3.0,
        udp(5100),
        common::response(&bye_c, 200, "sip:102@127.0.0.1:5100", "", None),
    );

    r.media.clear();
    bye(&mut r, 4.0, "100", 5080, "confA", &tag_a);
    assert!(r.media.iter().any(|m| matches!(m,
        MediaCommand::RemoveFromMix { mix: x, leg, .. } if *x == mix && *leg == la)));
    assert!(!r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::DestroyMix { .. })));
    assert!(
        r.media.iter().any(|m| matches!(m,
            MediaCommand::Play { leg, items, .. } if *leg == lb
                && items == &vec![PlayItem::Moh { class: "default".into() }])),
        "alone again: music"
    );
    // The leg leaves the mix before its session closes.
    let removed = r
        .media
        .iter()
        .position(|m| matches!(m, MediaCommand::RemoveFromMix { .. }))
        .unwrap();
    let closed = r
        .media
        .iter()
        .position(|m| matches!(m, MediaCommand::CloseSession { session } if *session == sa))
        .unwrap();
    assert!(removed < closed);

    bye(&mut r, 5.0, "101", 5090, "confB", &tag_b);
    assert!(r.media.iter().any(|m| matches!(m,
        MediaCommand::RemoveFromMix { mix: x, leg, .. } if *x == mix && *leg == lb)));
    assert!(r.media.iter().any(|m| matches!(m,
        MediaCommand::DestroyMix { session, mix: x } if *session == sa && *x == mix)));

    assert_eq!(
        conf_events(&r),
        vec![
            (true, "800".to_owned(), 1),
            (true, "800".to_owned(), 2),
            (false, "800".to_owned(), 1),
            (false, "800".to_owned(), 0),
        ]
    );
    r.tick(60.0);
    assert_eq!(r.sw.call_counts().0, 0, "no call left");
}
