//! The IVR through the sans-IO switch with a fake media plane: the
//! dialplan's Playback, Background, WaitExten and Read run as media
//! commands on the caller's leg (read from `Output::Media`), and the test
//! plays the media plane's part (`PlaybackDone`, `Dtmf`). Digits come by
//! RFC 4733 (media events) and by SIP INFO; the execution's timer is the
//! switch's. Every test ends with nothing left: no call, transaction or
//! port.

mod common;

use std::time::Duration;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::{Switch, User};
use carillon_digest::Challenge;
use carillon_events::SwitchEvent;
use carillon_mediactl::{
    DtmfSource, LegId, MediaCommand, MediaEvent, PlayItem, PlaybackEnd, PlaybackId, SessionId,
};
use carillon_sip::{HeaderName, Message, Method};
use common::{udp, user, Rig};

const SDP_A: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The sound files of the tests (the plan names prompts; the switch is
/// given paths). Nothing is read: the media plane is the test.
fn sounds_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("carillon-ivr-unit-sounds")
}

fn rig(plan: &str) -> Rig {
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", plan).unwrap()),
        ..CallConfig::default()
    };
    let users: Vec<User> = vec![user("100"), user("101")];
    Rig::on(Switch::new(common::switch_config(users, 5, calls)).unwrap())
}

/// 100 calls `exten` (challenged, then authenticated).
fn invite(r: &mut Rig, secs: f64, exten: &str) {
    let inv = |auth: Option<String>, cseq: u32| {
        format!(
            "INVITE sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{cseq};rport\r\nFrom: \"Caller\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>\r\nCall-ID: ivrA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            SDP_A.len(),
        )
    };
    r.send(secs, udp(5080), inv(None, 1));
    let out = r.take();
    let challenge = out
        .iter()
        .find(|(_, m)| m.status() == Some(407))
        .expect("407");
    let ch = Challenge::parse(&challenge.1.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap();
    r.send(secs, udp(5080), format!("ACK sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv1;rport\r\nFrom: \"Caller\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>;tag=x\r\nCall-ID: ivrA\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    let uri = format!("sip:{exten}@127.0.0.1");
    let auth = carillon_digest::respond(&ch, "INVITE", &uri, "100", "changeme100", "c", 1);
    r.send(secs, udp(5080), inv(Some(auth), 2));
}

/// A request from the caller in its dialog (`tag`: our To tag).
fn from_a(method: &str, cseq: u32, tag: &str, extra: &str, body: &str) -> String {
    format!("{method} sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK{method}{cseq};rport\r\nFrom: \"Caller\" <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:x@127.0.0.1>;tag={tag}\r\nCall-ID: ivrA\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len())
}

/// Our To tag towards the caller (from the last response with one).
fn a_tag(r: &Rig) -> String {
    r.wire
        .iter()
        .rev()
        .filter(|(p, m)| p.addr.port() == 5080 && m.status().is_some())
        .find_map(|(_, m)| m.tag(HeaderName::To))
        .expect("a response with a To tag")
        .to_string()
}

/// Statuses sent to the caller so far.
fn statuses_to_a(r: &Rig) -> Vec<u16> {
    r.wire
        .iter()
        .filter(|(p, _)| p.addr.port() == 5080)
        .filter_map(|(_, m)| m.status())
        .collect()
}

/// The caller's media session and leg (from its OpenLeg).
fn a_leg(r: &Rig) -> (SessionId, LegId) {
    r.media
        .iter()
        .find_map(|m| match m {
            MediaCommand::OpenLeg { session, leg, .. } => Some((*session, *leg)),
            _ => None,
        })
        .expect("OpenLeg of the caller")
}

/// The latest `Play` sent (its id and file names without directories).
fn last_play(r: &Rig) -> Option<(PlaybackId, Vec<String>)> {
    r.media.iter().rev().find_map(|m| match m {
        MediaCommand::Play {
            playback, items, ..
        } => Some((
            *playback,
            items
                .iter()
                .map(|i| match i {
                    PlayItem::File(p) => p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    other => format!("{other:?}"),
                })
                .collect(),
        )),
        _ => None,
    })
}

fn plays(r: &Rig) -> usize {
    r.media
        .iter()
        .filter(|m| matches!(m, MediaCommand::Play { .. }))
        .count()
}

fn stop_plays(r: &Rig) -> usize {
    r.media
        .iter()
        .filter(|m| matches!(m, MediaCommand::StopPlay { .. }))
        .count()
}

/// The media plane says the playback `id` ended.
fn playback_done(r: &mut Rig, secs: f64, id: PlaybackId, end: PlaybackEnd) {
    let (session, leg) = a_leg(r);
    let (now, ms) = r.at(secs);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::PlaybackDone {
            session,
            leg,
            playback: id,
            end,
            missing: Vec::new(),
        },
    );
    r.drain();
}

/// An RFC 4733 digit from the caller, as the media plane reports it.
fn rfc4733_digit(r: &mut Rig, secs: f64, digit: char) {
    let (session, leg) = a_leg(r);
    let (now, ms) = r.at(secs);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::Dtmf {
            session,
            leg,
            digit,
            duration: Duration::from_millis(100),
            source: DtmfSource::Rfc4733,
        },
    );
    r.drain();
}

/// A digit by SIP INFO (`application/dtmf-relay`) from the caller.
fn info_digit(r: &mut Rig, secs: f64, cseq: u32, digit: char) {
    let tag = a_tag(r);
    r.send(
        secs,
        udp(5080),
        from_a(
            "INFO",
            cseq,
            &tag,
            "Content-Type: application/dtmf-relay\r\n",
            &format!("Signal={digit}\r\nDuration=160\r\n"),
        ),
    );
}

/// The caller hangs up with BYE.
fn bye_from_a(r: &mut Rig, secs: f64, cseq: u32) {
    let tag = a_tag(r);
    r.send(secs, udp(5080), from_a("BYE", cseq, &tag, "", ""));
}

/// ACK of our 200 from the caller.
fn ack_from_a(r: &mut Rig, secs: f64) {
    let tag = a_tag(r);
    r.send(secs, udp(5080), from_a("ACK", 2, &tag, "", ""));
}

fn apps_started(r: &Rig) -> Vec<String> {
    r.events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::AppStarted { app, .. } => Some(app.clone()),
            _ => None,
        })
        .collect()
}

fn apps_finished(r: &Rig) -> Vec<(String, String)> {
    r.events
        .iter()
        .filter_map(|e| match &e.event {
            SwitchEvent::AppFinished { app, result, .. } => Some((app.clone(), result.clone())),
            _ => None,
        })
        .collect()
}

/// Nothing is left once every transaction has timed out.
fn assert_all_released(r: &mut Rig, secs: f64) {
    r.tick(secs + 40.0);
    r.tick(secs + 80.0);
    assert_eq!(
        r.sw.call_counts(),
        (0, 0, 0),
        "no call, client transaction or port left"
    );
}

fn bye_to(r: &Rig, port: u16) -> bool {
    r.wire
        .iter()
        .any(|(p, m)| p.addr.port() == port && m.method() == Some(&Method::Bye))
}

#[allow(dead_code)]
fn message_to_a(r: &Rig, status: u16) -> Option<Message> {
    r.wire
        .iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(status))
        .map(|(_, m)| m.clone())
}

/// 500: a menu (Background + WaitExten 5 s): 1 plays a prompt, 2 rings
/// 101, anything else goes to `i`, silence to `t`. 600: two Reads said
/// back with SayDigits. 700: a long Playback; `h` stores a callback.
const PLAN: &str = r#"
[context.internal]

[[context.internal.extension]]
match = "500"
steps = [
  { app = "Answer" },
  { app = "Background", file = "menu" },
  { app = "WaitExten", seconds = 5 },
]

[[context.internal.extension]]
match = "1"
steps = [
  { app = "Playback", file = "one" },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "2"
steps = [
  { app = "Dial", targets = ["user/101"], timeout = 20 },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "i"
steps = [ { app = "Hangup", cause = 28 } ]

[[context.internal.extension]]
match = "t"
steps = [ { app = "Hangup", cause = 19 } ]

[[context.internal.extension]]
match = "600"
steps = [
  { app = "Answer" },
  { app = "Read", var = "NUM", file = "enter", max_digits = 10, timeout = 3 },
  { app = "SayDigits", digits = "${NUM}" },
  { app = "Read", var = "ALT", file = "enter", timeout = 3 },
  { app = "SayDigits", digits = "${ALT}" },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "700"
steps = [
  { app = "Answer" },
  { app = "Playback", file = "long" },
  { app = "Hangup" },
]

[[context.internal.extension]]
match = "h"
steps = [
  { app = "Playback", file = "never" },
  { app = "CallbackRequest", number = "${CALLERID(num)}" },
  { app = "Webhook", url = "http://127.0.0.1:9/hangup", vars = ["UNIQUEID", "CALLERID(num)"] },
]
"#;

/// The caller dials `exten`, is answered and ACKs; the Background or
/// Playback prompt is under way.
fn answered_call(r: &mut Rig, exten: &str) {
    invite(r, 1.0, exten);
    assert!(
        statuses_to_a(r).contains(&200),
        "answered: {:?}",
        statuses_to_a(r)
    );
    ack_from_a(r, 1.1);
}

#[test]
fn a_background_menu_takes_an_rfc4733_digit_to_its_extension_and_dials_from_there() {
    let mut r = rig(PLAN);
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    answered_call(&mut r, "500");
    let (menu, files) = last_play(&r).expect("the menu is played");
    assert_eq!(files, ["menu"]);
    assert_eq!(apps_started(&r), ["Answer", "Background"]);
    // The caller presses 2 during the menu: the prompt stops.
    rfc4733_digit(&mut r, 2.0, '2');
    assert_eq!(stop_plays(&r), 1, "the digit stops the menu");
    playback_done(&mut r, 2.02, menu, PlaybackEnd::Stopped);
    // Extension 2 rings 101.
    assert!(
        r.wire
            .iter()
            .any(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Invite)),
        "101 rung"
    );
    assert!(r.events.iter().any(|e| matches!(
        &e.event,
        SwitchEvent::Dtmf {
            digit: '2',
            source: carillon_events::DtmfSource::Rfc4733,
            ..
        }
    )));
    assert!(apps_finished(&r).contains(&("Background".into(), "OK".into())));
    assert!(apps_started(&r).contains(&"Dial".to_string()));
    bye_from_a(&mut r, 3.0, 3);
    assert_eq!(r.cdrs.len(), 1);
    assert_all_released(&mut r, 3.0);
}

#[test]
fn a_sip_info_digit_after_the_menu_selects_an_extension_during_waitexten() {
    let mut r = rig(PLAN);
    answered_call(&mut r, "500");
    let (menu, _) = last_play(&r).unwrap();
    playback_done(&mut r, 4.0, menu, PlaybackEnd::Finished);
    assert!(apps_started(&r).contains(&"WaitExten".to_string()));
    assert_eq!(plays(&r), 1, "nothing else played while waiting");
    info_digit(&mut r, 5.0, 3, '1');
    let (one, files) = last_play(&r).expect("extension 1's prompt");
    assert_eq!(files, ["one"]);
    assert!(r.events.iter().any(|e| matches!(
        &e.event,
        SwitchEvent::Dtmf {
            digit: '1',
            source: carillon_events::DtmfSource::SipInfo,
            ..
        }
    )));
    playback_done(&mut r, 6.0, one, PlaybackEnd::Finished);
    assert!(bye_to(&r, 5080), "extension 1 hangs up after its prompt");
    assert_eq!(
        apps_finished(&r),
        [
            ("Answer".to_string(), "OK".to_string()),
            ("Background".into(), "OK".into()),
            ("WaitExten".into(), "OK".into()),
            ("Playback".into(), "OK".into()),
        ]
    );
    assert_all_released(&mut r, 6.0);
}

#[test]
fn waitexten_without_a_digit_times_out_to_t_and_an_unknown_digit_goes_to_i() {
    // Silence: `t` after the WaitExten's 5 s (cause 19).
    let mut r = rig(PLAN);
    answered_call(&mut r, "500");
    let (menu, _) = last_play(&r).unwrap();
    playback_done(&mut r, 4.0, menu, PlaybackEnd::Finished);
    r.tick(8.9);
    assert!(!bye_to(&r, 5080), "not before the timeout");
    r.tick(9.1);
    assert!(bye_to(&r, 5080), "the t extension hangs up");
    assert_eq!(r.cdrs[0].hangup_cause, 19);
    assert_all_released(&mut r, 10.0);

    // 9 selects nothing (no extension starts with it): `i` (cause 28).
    let mut r = rig(PLAN);
    answered_call(&mut r, "500");
    let (menu, _) = last_play(&r).unwrap();
    rfc4733_digit(&mut r, 2.0, '9');
    playback_done(&mut r, 2.02, menu, PlaybackEnd::Stopped);
    assert!(bye_to(&r, 5080), "the i extension hangs up");
    assert_eq!(r.cdrs[0].hangup_cause, 28);
    assert_all_released(&mut r, 3.0);
}

#[test]
fn read_collects_digits_until_hash_or_its_timeout_and_saydigits_says_them() {
    let mut r = rig(PLAN);
    answered_call(&mut r, "600");
    let (prompt, files) = last_play(&r).unwrap();
    assert_eq!(files, ["enter"]);
    // Digits while the prompt plays stop it and count.
    rfc4733_digit(&mut r, 2.0, '4');
    assert_eq!(stop_plays(&r), 1);
    playback_done(&mut r, 2.02, prompt, PlaybackEnd::Stopped);
    info_digit(&mut r, 2.5, 3, '0');
    rfc4733_digit(&mut r, 3.0, '7');
    rfc4733_digit(&mut r, 3.5, '#');
    let (said, files) = last_play(&r).expect("SayDigits");
    assert_eq!(files, ["4", "0", "7"], "exactly the digits before #");
    assert!(apps_finished(&r).contains(&("Read".into(), "OK".into())));
    playback_done(&mut r, 5.0, said, PlaybackEnd::Finished);
    // The second Read ends by its 3 s timeout after the last digit.
    let (prompt2, _) = last_play(&r).unwrap();
    playback_done(&mut r, 6.0, prompt2, PlaybackEnd::Finished);
    rfc4733_digit(&mut r, 7.0, '9');
    rfc4733_digit(&mut r, 8.0, '8');
    r.tick(10.9);
    assert_eq!(plays(&r), 3, "still reading 2.9 s after the last digit");
    r.tick(11.1);
    let (said2, files) = last_play(&r).expect("the second SayDigits");
    assert_eq!(files, ["9", "8"]);
    playback_done(&mut r, 12.0, said2, PlaybackEnd::Finished);
    assert!(bye_to(&r, 5080));
    assert_eq!(r.cdrs.len(), 1);
    assert_all_released(&mut r, 12.0);
}

#[test]
fn a_caller_hanging_up_during_playback_stops_it_runs_h_and_releases_everything() {
    let mut r = rig(PLAN);
    answered_call(&mut r, "700");
    let (long, files) = last_play(&r).unwrap();
    assert_eq!(files, ["long"]);
    bye_from_a(&mut r, 3.0, 3);
    assert!(
        r.wire.iter().any(|(p, m)| p.addr.port() == 5080
            && m.status() == Some(200)
            && m.cseq().unwrap().method == Method::Bye),
        "200 for the BYE"
    );
    assert_eq!(stop_plays(&r), 1, "the playback is stopped");
    assert!(r
        .media
        .iter()
        .any(|m| matches!(m, MediaCommand::CloseSession { .. })));
    // `h` ran: its Playback skipped (no channel), its CallbackRequest run.
    assert_eq!(plays(&r), 1, "nothing played after the hangup");
    assert!(apps_started(&r).contains(&"CallbackRequest".to_string()));
    assert_eq!(r.callbacks.len(), 1, "h stored the callback request");
    assert_eq!(r.callbacks[0].number, "100");
    assert_eq!(r.callbacks[0].caller_num, "100");
    assert_eq!(r.callbacks[0].uniqueid, r.cdrs[0].uniqueid);
    assert_eq!(r.webhooks.len(), 1, "h queued the webhook");
    assert_eq!(r.webhooks[0].0, "http://127.0.0.1:9/hangup");
    assert!(r.webhooks[0].1.contains("\"100\""), "{}", r.webhooks[0].1);
    assert!(apps_finished(&r).contains(&("Playback".into(), "HANGUP".into())));
    // The media plane's late PlaybackDone of a call that is gone is
    // ignored.
    playback_done(&mut r, 3.01, long, PlaybackEnd::Stopped);
    assert_eq!(r.cdrs.len(), 1);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(&e.event, SwitchEvent::Hangup { .. })));
    assert_all_released(&mut r, 3.0);
}

#[test]
fn a_playback_before_an_answer_is_early_media_and_a_missing_file_only_warns() {
    let plan = r#"
[context.internal]
[[context.internal.extension]]
match = "800"
steps = [
  { app = "Progress" },
  { app = "Playback", file = ["gone", "closed"], options = "noanswer" },
  { app = "Busy" },
]
"#;
    let mut r = rig(plan);
    invite(&mut r, 1.0, "800");
    assert!(statuses_to_a(&r).contains(&183), "{:?}", statuses_to_a(&r));
    let ok183 = message_to_a(&r, 183).unwrap();
    assert!(
        String::from_utf8_lossy(ok183.body()).contains("m=audio "),
        "183 with our SDP"
    );
    assert!(!statuses_to_a(&r).contains(&200), "noanswer: not answered");
    let (id, files) = last_play(&r).unwrap();
    assert_eq!(files, ["gone", "closed"]);
    let (session, leg) = a_leg(&r);
    let (now, ms) = r.at(3.0);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::PlaybackDone {
            session,
            leg,
            playback: id,
            end: PlaybackEnd::Finished,
            missing: vec![sounds_dir().join("en/gone.wav")],
        },
    );
    r.drain();
    // Busy on an unanswered call: 486.
    assert!(statuses_to_a(&r).contains(&486), "{:?}", statuses_to_a(&r));
    assert_eq!(r.cdrs.len(), 1);
    assert!(r.events.iter().any(|e| matches!(
        &e.event,
        SwitchEvent::ChannelState {
            state: carillon_events::ChannelState::Progress,
            ..
        }
    )));
    assert_all_released(&mut r, 3.0);
}

#[test]
fn busy_on_an_answered_call_plays_the_busy_tone_then_hangs_up_with_17() {
    let plan = r#"
[context.internal]
[[context.internal.extension]]
match = "900"
steps = [
  { app = "Answer" },
  { app = "Busy", timeout = 2 },
]
"#;
    let mut r = rig(plan);
    answered_call(&mut r, "900");
    let tone = r.media.iter().find_map(|m| match m {
        MediaCommand::Play { items, .. } => items.first().cloned(),
        _ => None,
    });
    assert!(
        matches!(tone, Some(PlayItem::Tone { .. })),
        "the busy tone is played: {tone:?}"
    );
    r.tick(2.9);
    assert!(!bye_to(&r, 5080), "tones for the Busy timeout first");
    r.tick(3.1);
    assert!(bye_to(&r, 5080), "then the call is hung up");
    assert_eq!(r.cdrs[0].hangup_cause, 17);
    assert_all_released(&mut r, 3.1);
}

#[test]
fn ringing_then_congestion_on_an_unanswered_call_gives_180_then_503() {
    let plan = r#"
[context.internal]
[[context.internal.extension]]
match = "910"
steps = [
  { app = "Ringing" },
  { app = "Wait", seconds = 1 },
  { app = "Congestion" },
]
"#;
    let mut r = rig(plan);
    invite(&mut r, 1.0, "910");
    assert!(statuses_to_a(&r).contains(&180), "{:?}", statuses_to_a(&r));
    assert!(!statuses_to_a(&r).contains(&503), "not before the Wait");
    r.tick(2.1);
    assert!(statuses_to_a(&r).contains(&503), "{:?}", statuses_to_a(&r));
    assert!(r.events.iter().any(|e| matches!(
        &e.event,
        SwitchEvent::ChannelState {
            state: carillon_events::ChannelState::Ringing,
            ..
        }
    )));
    assert_eq!(
        apps_finished(&r),
        [
            ("Ringing".to_string(), "OK".to_string()),
            ("Wait".into(), "OK".into())
        ]
    );
    assert_eq!(r.cdrs[0].hangup_cause, 34);
    assert_all_released(&mut r, 2.1);
}
