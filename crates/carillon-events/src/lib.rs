//! `carillon-events`: what the switch reports as it works, as plain data.
//!
//! Owns the event vocabulary ([`SwitchEvent`]) and its time-stamped record
//! ([`EventRecord`]), nothing else: no I/O, no clock. The switch core
//! (`carillon-b2bua`) emits them as `Output::Event`; the binary writes them
//! as JSON lines (`[events] file`); the end-to-end tests read that file
//! instead of matching log text; the management API, AMI and the dashboard
//! are meant to consume the same records.
//!
//! One record is one JSON object: `time_ms` (Unix wall clock in
//! milliseconds, from the switch's injected clock, the one CDR times come
//! from), `event` (the name below) and the variant's fields:
//!
//! | `event` | fields | when |
//! |---|---|---|
//! | `channel_created` | `channel`, `uniqueid`, `linkedid`, `direction` (`inbound`/`outbound`), `caller`, `exten`, `context` | an INVITE was accepted for routing (inbound) or an outbound leg was placed (outbound) |
//! | `channel_state` | `channel`, `uniqueid`, `state` (`ringing`/`progress`/`up`) | an outbound leg got 180 (ringing) or 183 (progress), or a leg was answered (up) |
//! | `dtmf` | `channel`, `uniqueid`, `digit`, `duration_ms`, `source` (`rfc4733`/`sip_info`/`inband`) | a digit arrived in a call, by RTP events, SIP INFO or tones in the audio |
//! | `bridged` | `linkedid`, `channels` (`[caller, callee]`) | the caller was bridged to the answering leg |
//! | `unbridged` | `linkedid`, `channels` | that bridge ended |
//! | `app_started` | `channel`, `app`, `step` | the switch began a dialplan application that acts on the channel (`Answer`, `Dial`, `Wait`, `Hangup`, `Playback`, `Background`, `WaitExten`, `Read`, `SayDigits`, `SayNumber`, `Progress`, `Ringing`, `Busy`/`Congestion` tones, `CallbackRequest`, `Webhook`) |
//! | `app_finished` | `channel`, `app`, `result` | it finished (`result`: e.g. `ANSWER`, `BUSY` for Dial, `OK`, `READSTATUS` for Read, `HANGUP` when the caller left during it, `QUEUED` for Webhook) |
//! | `hangup` | `channel`, `uniqueid`, `cause` (Q.850), `cause_text` | a leg ended |
//! | `recording_started` | `channel`, `linkedid`, `path`, `mix` (`mono`/`stereo`/`leg`) | the switch asked the media plane to record (MixMonitor: the call's two parties; Record: the caller alone) |
//! | `recording_finished` | `channel`, `linkedid`, `path`, `end` (`stopped`/`silence`/`max_duration`/`failed`), `duration_ms`, `frames_lost` | the media plane finalised that file (StopMixMonitor, the call ended, or Record's end) |
//! | `hold` | `channel`, `uniqueid`, `linkedid`, `moh_class` | that leg put its bridged party on hold (re-offer `sendonly`/`inactive`); the party hears music on hold from `moh_class` |
//! | `unhold` | `channel`, `uniqueid`, `linkedid` | the leg resumed (`sendrecv`/`recvonly`); the bridge relays again |
//! | `voicemail_left` | `channel`, `linkedid`, `mailbox`, `message_id`, `caller_num`, `path`, `duration_ms` | VoiceMail kept a message (one under a second is discarded and reported by nothing) |
//! | `voicemail_deleted` | `channel`, `mailbox`, `message_id` | the owner deleted a message in VoiceMailMain |
//!
//! Names: `channel` is the CDR's `channel`/`dstchannel` (`SIP/101-0000002a`),
//! `linkedid` the call's CDR `uniqueid`/`linkedid` (shared by all its legs);
//! a leg's `uniqueid` is the linkedid for the caller's leg and the linkedid
//! plus `.` and the switch's leg number for an outbound one. `app_started`
//! and `app_finished` name the caller's channel; a `Dial` the call ends
//! finishes `ANSWER` (it was bridged) or `CANCEL` (the caller gave up)
//! before the caller's `hangup`.

use serde::{Deserialize, Serialize};

/// Inbound (the caller's leg) or outbound (a leg the switch placed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A channel's state, as `channel_state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// 180 Ringing (or 181/182).
    Ringing,
    /// 183 Session Progress (early media).
    Progress,
    /// Answered.
    Up,
}

/// How a DTMF digit reached the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfSource {
    /// RFC 4733 telephone-event in RTP.
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// Tones in the audio (the media plane's in-band detector).
    Inband,
}

/// Everything observable about calls (see the module doc for the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SwitchEvent {
    ChannelCreated {
        channel: String,
        uniqueid: String,
        linkedid: String,
        direction: Direction,
        caller: String,
        exten: String,
        context: String,
    },
    ChannelState {
        channel: String,
        uniqueid: String,
        state: ChannelState,
    },
    Dtmf {
        channel: String,
        uniqueid: String,
        digit: char,
        /// 0 when the digit came without one (an `application/dtmf` INFO).
        duration_ms: u64,
        source: DtmfSource,
    },
    Bridged {
        linkedid: String,
        channels: [String; 2],
    },
    Unbridged {
        linkedid: String,
        channels: [String; 2],
    },
    AppStarted {
        channel: String,
        app: String,
        /// The dialplan step that ran the application, counted from 1
        /// over the call's walk through the dialplan (Gotos included).
        step: u32,
    },
    AppFinished {
        channel: String,
        app: String,
        result: String,
    },
    Hangup {
        channel: String,
        uniqueid: String,
        /// Q.850 cause (16: normal clearing).
        cause: u16,
        cause_text: String,
    },
    RecordingStarted {
        /// The caller's channel (the one MixMonitor or Record ran on).
        channel: String,
        linkedid: String,
        path: String,
        mix: RecordingMix,
    },
    RecordingFinished {
        channel: String,
        linkedid: String,
        path: String,
        end: RecordingEnd,
        /// Audio written to the file.
        duration_ms: u64,
        /// Frames dropped because the writer fell behind.
        frames_lost: u64,
    },
    Hold {
        /// The leg that put the other party on hold.
        channel: String,
        uniqueid: String,
        linkedid: String,
        /// The music-on-hold class played to the other party.
        moh_class: String,
    },
    Unhold {
        channel: String,
        uniqueid: String,
        linkedid: String,
    },
    /// A caller left a voicemail message (VoiceMail kept it).
    VoicemailLeft {
        channel: String,
        linkedid: String,
        mailbox: String,
        message_id: String,
        caller_num: String,
        path: String,
        duration_ms: u64,
    },
    /// The mailbox owner deleted a message (VoiceMailMain).
    VoicemailDeleted {
        channel: String,
        mailbox: String,
        message_id: String,
    },
    /// A caller joined a conference room (ConfBridge).
    ConfJoin {
        channel: String,
        linkedid: String,
        room: String,
        /// Members in the room after the join.
        members: u32,
    },
    /// A caller left a conference room (hung up).
    ConfLeave {
        channel: String,
        linkedid: String,
        room: String,
        /// Members still in the room.
        members: u32,
    },
}

/// What a recording captures, as `recording_started` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMix {
    /// Both parties mixed into one channel (MixMonitor).
    Mono,
    /// The caller left, the other party right (MixMonitor `D`).
    Stereo,
    /// One leg's audio only (the Record application).
    Leg,
}

/// Why a recording ended, as `recording_finished` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingEnd {
    /// Stopped (StopMixMonitor, a digit, a hangup, the call's end).
    Stopped,
    /// Record's silence limit.
    Silence,
    /// Record's duration limit.
    MaxDuration,
    /// The file could not be written.
    Failed,
}

impl SwitchEvent {
    /// The `event` name it is written with.
    pub fn name(&self) -> &'static str {
        match self {
            SwitchEvent::ChannelCreated { .. } => "channel_created",
            SwitchEvent::ChannelState { .. } => "channel_state",
            SwitchEvent::Dtmf { .. } => "dtmf",
            SwitchEvent::Bridged { .. } => "bridged",
            SwitchEvent::Unbridged { .. } => "unbridged",
            SwitchEvent::AppStarted { .. } => "app_started",
            SwitchEvent::AppFinished { .. } => "app_finished",
            SwitchEvent::Hangup { .. } => "hangup",
            SwitchEvent::RecordingStarted { .. } => "recording_started",
            SwitchEvent::RecordingFinished { .. } => "recording_finished",
            SwitchEvent::Hold { .. } => "hold",
            SwitchEvent::Unhold { .. } => "unhold",
            SwitchEvent::VoicemailLeft { .. } => "voicemail_left",
            SwitchEvent::VoicemailDeleted { .. } => "voicemail_deleted",
            SwitchEvent::ConfJoin { .. } => "conf_join",
            SwitchEvent::ConfLeave { .. } => "conf_leave",
        }
    }
}

/// An event with its time: one line of the event file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Unix time in milliseconds (the switch's wall clock).
    pub time_ms: u64,
    #[serde(flatten)]
    pub event: SwitchEvent,
}

impl EventRecord {
    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        // Plain strings, numbers and enums: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one line of the event file.
    pub fn from_json(line: &str) -> Result<EventRecord, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// The usual text of a Q.850 cause (Asterisk's `cause_text` names).
pub fn cause_text(cause: u16) -> &'static str {
    match cause {
        1 => "Unallocated (unassigned) number",
        3 => "No route to destination",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        21 => "Call Rejected",
        27 => "Destination out of order",
        28 => "Invalid number format",
        31 => "Normal, unspecified",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        47 => "Resource unavailable, unspecified",
        58 => "Bearer capability not available",
        65 => "Bearer capability not implemented",
        79 => "Service or option not implemented, unspecified",
        88 => "Incompatible destination",
        102 => "Recovery on timer expiry",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_flat_json_object_that_reads_back() {
        let r = EventRecord {
            time_ms: 1_700_000_000_123,
            event: SwitchEvent::Hangup {
                channel: "SIP/101-0000002a".into(),
                uniqueid: "1700000000.42-deadbeef".into(),
                cause: 16,
                cause_text: cause_text(16).into(),
            },
        };
        let line = r.to_json();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "hangup");
        assert_eq!(v["time_ms"], 1_700_000_000_123u64);
        assert_eq!(v["cause"], 16);
        assert_eq!(v["cause_text"], "Normal Clearing");
        assert_eq!(EventRecord::from_json(&line).unwrap(), r);
    }

    #[test]
    fn enum_fields_are_snake_case_and_names_match_the_tag() {
        let e = SwitchEvent::Dtmf {
            channel: "SIP/101-1".into(),
            uniqueid: "u".into(),
            digit: '#',
            duration_ms: 160,
            source: DtmfSource::SipInfo,
        };
        let line = EventRecord {
            time_ms: 1,
            event: e.clone(),
        }
        .to_json();
        assert!(line.contains(r#""event":"dtmf""#), "{line}");
        assert!(line.contains(r#""source":"sip_info""#), "{line}");
        assert!(line.contains(r##""digit":"#""##), "{line}");
        assert_eq!(e.name(), "dtmf");
        let created = SwitchEvent::ChannelCreated {
            channel: "c".into(),
            uniqueid: "u".into(),
            linkedid: "u".into(),
            direction: Direction::Outbound,
            caller: "101".into(),
            exten: "102".into(),
            context: "internal".into(),
        };
        let line = EventRecord {
            time_ms: 1,
            event: created,
        }
        .to_json();
        assert!(line.contains(r#""event":"channel_created""#), "{line}");
        assert!(line.contains(r#""direction":"outbound""#), "{line}");
    }

    #[test]
    fn recording_and_hold_events_carry_their_names_and_snake_case_fields() {
        let finished = SwitchEvent::RecordingFinished {
            channel: "SIP/101-1".into(),
            linkedid: "u".into(),
            path: "var/recordings/u.wav".into(),
            end: RecordingEnd::MaxDuration,
            duration_ms: 12_340,
            frames_lost: 0,
        };
        let line = EventRecord {
            time_ms: 1,
            event: finished.clone(),
        }
        .to_json();
        assert!(line.contains(r#""event":"recording_finished""#), "{line}");
        assert!(line.contains(r#""end":"max_duration""#), "{line}");
        assert_eq!(EventRecord::from_json(&line).unwrap().event, finished);
        let started = SwitchEvent::RecordingStarted {
            channel: "c".into(),
            linkedid: "u".into(),
            path: "p".into(),
            mix: RecordingMix::Stereo,
        };
        assert_eq!(started.name(), "recording_started");
        let line = EventRecord {
            time_ms: 1,
            event: started,
        }
        .to_json();
        assert!(line.contains(r#""mix":"stereo""#), "{line}");
        let hold = SwitchEvent::Hold {
            channel: "c".into(),
            uniqueid: "u".into(),
            linkedid: "u".into(),
            moh_class: "default".into(),
        };
        assert_eq!(hold.name(), "hold");
        let unhold = SwitchEvent::Unhold {
            channel: "c".into(),
            uniqueid: "u".into(),
            linkedid: "u".into(),
        };
        let line = EventRecord {
            time_ms: 1,
            event: unhold,
        }
        .to_json();
        assert!(line.contains(r#""event":"unhold""#), "{line}");
    }

    #[test]
    fn an_unknown_event_name_is_an_error_not_a_panic() {
        assert!(EventRecord::from_json(r#"{"time_ms":1,"event":"nope"}"#).is_err());
        assert!(EventRecord::from_json("not json").is_err());
    }
}
