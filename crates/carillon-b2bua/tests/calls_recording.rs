//! Recording through the sans-IO switch with a fake media plane:
//! MixMonitor before Dial records the bridged conversation (mono, or
//! stereo with `D`) to the call's unique id under the recording
//! directory, StopMixMonitor or the call's end stops it before the media
//! session closes, the CDR names the file, and the media plane's
//! `RecordingDone` (even after the call ended) becomes
//! `recording_finished`. The Record application records the caller's leg
//! and its end sets `RECORD_STATUS` (digit → DTMF, silence → SILENCE).

mod common;

use std::path::PathBuf;

use carillon_b2bua::calls::CallConfig;
use carillon_b2bua::Switch;
use carillon_digest::Challenge;
use carillon_events::SwitchEvent;
use carillon_mediactl::{
    DtmfSource, LegId, MediaCommand, MediaEvent, RecordMix, RecordingEnd, RecordingId, SessionId,
};
use carillon_sip::{HeaderName, Message, Method};
use common::{response, switch_config, udp, user, Rig};

const PLAN: &str = r#"
[context.internal]
[[context.internal.extension]]
match = "101"
steps = [ { app = "MixMonitor" }, { app = "Dial", targets = ["user/101"], timeout = 20 }, { app = "Hangup" } ]

[[context.internal.extension]]
match = "201"
steps = [ { app = "MixMonitor", file = "sales/${CALLERID(num)}.wav", options = "D" }, { app = "Dial", targets = ["user/101"], timeout = 20, continue = true }, { app = "Hangup" } ]

[[context.internal.extension]]
match = "300"
steps = [
  { app = "Answer" },
  { app = "Record", file = "msg-${CALLERID(num)}.wav", max_silence = 3, max_duration = 60, options = "q" },
  { app = "GotoIf", condition = "${RECORD_STATUS} = DTMF", then = "dtmf" },
  { app = "Hangup", cause = 17 },
  { label = "dtmf", app = "Hangup" },
]
"#;

const SDP_A: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
const SDP_B: &str = "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn rig() -> Rig {
    let calls = CallConfig {
        dialplan: Some(carillon_dialplan::Dialplan::load("plan.toml", PLAN).unwrap()),
        events: true,
        recording_dir: PathBuf::from("/rec"),
        ..CallConfig::default()
    };
    Rig::on(Switch::new(switch_config(vec![user("100"), user("101")], 7, calls)).unwrap())
}

/// 100 calls `exten` (challenged, then authenticated).
fn invite(r: &mut Rig, secs: f64, exten: &str) {
    let inv = |auth: Option<String>, cseq: u32| {
        format!(
            "INVITE sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv{cseq};rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>\r\nCall-ID: callA\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
            auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            SDP_A.len(),
        )
    };
    r.send(secs, udp(5080), inv(None, 1));
    let ch = r
        .take()
        .into_iter()
        .find(|(_, m)| m.status() == Some(407))
        .map(|(_, m)| Challenge::parse(&m.header(HeaderName::ProxyAuthenticate).unwrap()).unwrap())
        .expect("407");
    r.send(secs, udp(5080), format!("ACK sip:{exten}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKinv1;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:{exten}@127.0.0.1>;tag=x\r\nCall-ID: callA\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    let uri = format!("sip:{exten}@127.0.0.1");
    let auth = carillon_digest::respond(&ch, "INVITE", &uri, "100", "changeme100", "c", 1);
    r.send(secs, udp(5080), inv(Some(auth), 2));
}

/// 101 answers the INVITE it got; 100 ACKs. Returns the switch's tag
/// towards 100.
fn answer_by_101(r: &mut Rig, secs: f64) -> String {
    let b_inv = r
        .wire
        .iter()
        .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Invite))
        .map(|(_, m)| m.clone())
        .expect("INVITE to 101");
    r.take();
    r.send(
        secs,
        udp(5070),
        response(&b_inv, 200, "sip:101@127.0.0.1:5070", "", Some(SDP_B)),
    );
    ack_200(r, secs)
}

fn ack_200(r: &mut Rig, secs: f64) -> String {
    let ok: Message = r
        .take()
        .into_iter()
        .find(|(p, m)| p.addr.port() == 5080 && m.status() == Some(200))
        .map(|(_, m)| m)
        .expect("200 to 100");
    let tag = ok.tag(HeaderName::To).unwrap();
    r.send(secs, udp(5080), format!("ACK sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKack;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n"));
    tag
}

/// 100 hangs up; 101's BYE is answered.
fn bye_from_100(r: &mut Rig, secs: f64, tag: &str) {
    r.send(secs, udp(5080), format!("BYE sip:carillon@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye;rport\r\nFrom: <sip:100@127.0.0.1>;tag=a1\r\nTo: <sip:101@127.0.0.1>;tag={tag}\r\nCall-ID: callA\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"));
    let out = r.take();
    if let Some((_, bye)) = out
        .iter()
        .find(|(p, m)| p.addr.port() == 5070 && m.method() == Some(&Method::Bye))
    {
        r.send(
            secs,
            udp(5070),
            response(bye, 200, "sip:101@127.0.0.1:5070", "", None),
        );
    }
}

/// The `Record` commands so far: (session, id, mix, path, max_silence).
fn records(r: &Rig) -> Vec<(SessionId, RecordingId, RecordMix, PathBuf)> {
    r.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Record {
                session,
                recording,
                mix,
                path,
                ..
            } => Some((*session, *recording, *mix, path.clone())),
            _ => None,
        })
        .collect()
}

fn position(r: &Rig, f: impl Fn(&MediaCommand) -> bool) -> Option<usize> {
    r.media.iter().position(f)
}

#[test]
fn mixmonitor_before_dial_records_the_bridge_mono_until_the_call_ends_and_the_cdr_names_the_file() {
    let mut r = rig();
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    invite(&mut r, 1.0, "101");
    assert!(
        records(&r).is_empty(),
        "nothing is recorded before the bridge (MixMonitor is armed)"
    );
    let tag = answer_by_101(&mut r, 2.0);
    let recs = records(&r);
    assert_eq!(recs.len(), 1, "{:?}", r.media);
    let (session, id, mix, path) = recs[0].clone();
    let (a, b) = r
        .media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Bridge { a, b, .. } => Some((*a, *b)),
            _ => None,
        })
        .expect("bridge");
    assert_eq!(
        mix,
        RecordMix::Mono {
            caller: a,
            callee: b
        }
    );
    assert!(
        path.starts_with("/rec") && path.extension().is_some_and(|e| e == "wav"),
        "{path:?}"
    );
    bye_from_100(&mut r, 12.0, &tag);
    let stop = position(
        &r,
        |m| matches!(m, MediaCommand::StopRecord { recording, .. } if *recording == id),
    )
    .expect("StopRecord at the call's end");
    let close = position(&r, |m| {
        matches!(m, MediaCommand::CloseSession { .. })
            || matches!(m, MediaCommand::CloseLeg { leg, .. } if *leg == b)
    })
    .expect("close");
    assert!(
        stop < close,
        "the file is finalised before the session closes"
    );
    assert_eq!(r.cdrs.len(), 1);
    let cdr = &r.cdrs[0];
    assert_eq!(
        cdr.recording.as_deref(),
        Some(path.display().to_string().as_str())
    );
    assert_eq!(
        path,
        PathBuf::from(format!("/rec/{}.wav", cdr.uniqueid)),
        "the file is named after the call's unique id"
    );
    assert!(r.events.iter().any(|e| matches!(&e.event,
        SwitchEvent::RecordingStarted { path: p, mix: carillon_events::RecordingMix::Mono, .. } if *p == path.display().to_string())));
    // The media plane reports the file after the call is gone.
    assert_eq!(r.sw.recordings_pending(), 1);
    let (now, ms) = r.at(12.5);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::RecordingDone {
            session,
            recording: id,
            path: path.clone(),
            end: RecordingEnd::Stopped,
            duration_ms: 10_020,
            frames_lost: 0,
        },
    );
    r.drain();
    assert_eq!(r.sw.recordings_pending(), 0);
    assert!(r.events.iter().any(|e| matches!(
        &e.event,
        SwitchEvent::RecordingFinished {
            duration_ms: 10_020,
            frames_lost: 0,
            end: carillon_events::RecordingEnd::Stopped,
            ..
        }
    )));
    r.tick(80.0);
    r.tick(160.0);
    assert_eq!(r.sw.call_counts(), (0, 0, 0));
}

#[test]
fn mixmonitor_with_d_records_stereo_to_the_given_file_under_the_directory() {
    let mut r = rig();
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    invite(&mut r, 1.0, "201");
    let tag = answer_by_101(&mut r, 2.0);
    let recs = records(&r);
    assert_eq!(recs.len(), 1);
    assert!(matches!(recs[0].2, RecordMix::Stereo { .. }), "{recs:?}");
    assert_eq!(recs[0].3, PathBuf::from("/rec/sales/100.wav"));
    bye_from_100(&mut r, 5.0, &tag);
    assert_eq!(r.cdrs[0].recording.as_deref(), Some("/rec/sales/100.wav"));
}

#[test]
fn record_ends_on_silence_with_record_status_silence_and_is_not_the_cdrs_recording() {
    let mut r = rig();
    r.register("101", udp(5070), "sip:101@127.0.0.1:5070", "");
    // 300 records with Record (the caller's leg), not MixMonitor.
    invite(&mut r, 1.0, "300");
    ack_200(&mut r, 1.0);
    let recs = records(&r);
    assert_eq!(recs.len(), 1);
    let (session, id, mix, path) = recs[0].clone();
    assert!(matches!(mix, RecordMix::Leg(LegId(_))), "{mix:?}");
    assert_eq!(path, PathBuf::from("/rec/msg-100.wav"));
    // Silence ends it: RECORD_STATUS=SILENCE, so the plan hangs up 17.
    let (now, ms) = r.at(5.0);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::RecordingDone {
            session,
            recording: id,
            path,
            end: RecordingEnd::Silence,
            duration_ms: 4_000,
            frames_lost: 0,
        },
    );
    r.drain();
    assert_eq!(r.cdrs.len(), 1, "the plan went on and hung up");
    assert_eq!(r.cdrs[0].hangup_cause, 17, "RECORD_STATUS was SILENCE");
    assert_eq!(
        r.cdrs[0].recording, None,
        "Record is not the call's recording"
    );
    assert!(r.events.iter().any(|e| matches!(&e.event,
        SwitchEvent::AppFinished { app, result, .. } if app == "Record" && result == "SILENCE")));
}

#[test]
fn a_digit_during_record_stops_it_and_gives_record_status_dtmf() {
    let mut r = rig();
    invite(&mut r, 1.0, "300");
    ack_200(&mut r, 1.0);
    let (session, id, mix, path) = records(&r)[0].clone();
    let RecordMix::Leg(a) = mix else {
        panic!("{mix:?}")
    };
    let (now, ms) = r.at(3.0);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::Dtmf {
            session,
            leg: a,
            digit: '#',
            duration: std::time::Duration::from_millis(100),
            source: DtmfSource::Rfc4733,
        },
    );
    r.drain();
    assert!(
        r.media
            .iter()
            .any(|m| matches!(m, MediaCommand::StopRecord { recording, .. } if *recording == id)),
        "# stops the recording"
    );
    let (now, ms) = r.at(3.1);
    r.sw.handle_media_event(
        now,
        ms,
        MediaEvent::RecordingDone {
            session,
            recording: id,
            path,
            end: RecordingEnd::Stopped,
            duration_ms: 2_000,
            frames_lost: 0,
        },
    );
    r.drain();
    assert_eq!(r.cdrs.len(), 1);
    assert_eq!(r.cdrs[0].hangup_cause, 16, "RECORD_STATUS was DTMF");
    assert_eq!(r.sw.recordings_pending(), 0);
}
