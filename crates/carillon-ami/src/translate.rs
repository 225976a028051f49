//! Switch events → Asterisk's AMI events, and the table of live channels
//! they are built from.
//!
//! Owns [`Translator`]: fed every [`EventRecord`] of the switch in order,
//! it keeps the facts of each live channel (name, state, caller, dialplan
//! location, application, bridge; created at `channel_created`, removed
//! at its `hangup`) and turns each record into the AMI events Asterisk
//! would send, with Asterisk's names and fields (the standard channel
//! fields of `ast_manager_build_channel_state_string`). The same table is
//! the honest source of `CoreShowChannels`, `Status` and `core show
//! channels` ([`Translator::channels`]). It does not own sessions or
//! filtering by class (`session`), nor any I/O.
//!
//! | switch event | AMI events |
//! |---|---|
//! | `channel_created` | Newchannel (inbound: state 4 Ring; outbound: 0 Down), and for an outbound leg DialBegin |
//! | `channel_state` ringing / up | Newstate (5 Ringing / 6 Up); an outbound leg's up is also DialEnd `ANSWER` |
//! | `dtmf` | DTMFBegin and DTMFEnd (`Direction: Received`) |
//! | `bridged` / `unbridged` | BridgeCreate, BridgeEnter ×2 / BridgeLeave ×2, BridgeDestroy |
//! | `app_started` | Newexten (Application; `AppData` is empty: the switch does not report it) |
//! | `hold` / `unhold` | Hold / Unhold, MusicOnHoldStart / Stop on the bridged party |
//! | `hangup` | (DialEnd of an outbound leg never answered), Hangup with Cause and Cause-txt |
//!
//! Channel names: the switch's `SIP/100-0000002a` is Asterisk's
//! `PJSIP/100-0000002a`. `Priority` is the dialplan step of the latest
//! application. `CallerIDName` is `<unknown>` (the switch does not report
//! display names). Not produced (the switch has no data for them yet):
//! VarSet, NewCallerid, queue, agent, registration and CDR events.

use std::collections::HashMap;

use carillon_events::{ChannelState, Direction, EventRecord, SwitchEvent};

use crate::class::ClassMask;
use crate::codec::Packet;

/// One AMI event, ready for the sessions whose mask includes its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiEvent {
    pub class: ClassMask,
    /// Headers after `Event:` and `Privilege:`.
    pub packet: Packet,
    pub name: &'static str,
}

impl AmiEvent {
    fn new(name: &'static str, class: ClassMask, fields: Packet) -> AmiEvent {
        let mut packet = Packet::new()
            .with("Event", name)
            .with("Privilege", class.to_string());
        packet.extend(&fields);
        AmiEvent {
            class,
            packet,
            name,
        }
    }

    /// The wire form.
    pub fn to_wire(&self) -> String {
        self.packet.to_wire()
    }
}

/// Asterisk's `ast_channel_state` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AstState {
    Down = 0,
    Ring = 4,
    Ringing = 5,
    Up = 6,
}

impl AstState {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// `ChannelStateDesc`.
    pub fn desc(self) -> &'static str {
        match self {
            AstState::Down => "Down",
            AstState::Ring => "Ring",
            AstState::Ringing => "Ringing",
            AstState::Up => "Up",
        }
    }
}

/// What the table knows of one live channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFacts {
    /// Asterisk's form, `PJSIP/100-0000002a`.
    pub channel: String,
    pub uniqueid: String,
    pub linkedid: String,
    pub direction: Direction,
    pub state: AstState,
    pub caller_num: String,
    pub connected_num: String,
    pub context: String,
    pub exten: String,
    pub priority: u32,
    pub application: String,
    pub bridge: Option<String>,
    /// Wall-clock time of `channel_created` (Unix ms).
    pub created_ms: u64,
}

impl ChannelFacts {
    /// The standard channel fields, in Asterisk's order, with `prefix`
    /// (`Dest` for the called channel of Dial events).
    pub fn fields(&self, prefix: &str) -> Packet {
        let unknown = |s: &str| {
            if s.is_empty() {
                "<unknown>".to_owned()
            } else {
                s.to_owned()
            }
        };
        let k = |name: &str| format!("{prefix}{name}");
        Packet::new()
            .with(&k("Channel"), self.channel.clone())
            .with(&k("ChannelState"), self.state.code().to_string())
            .with(&k("ChannelStateDesc"), self.state.desc())
            .with(&k("CallerIDNum"), unknown(&self.caller_num))
            .with(&k("CallerIDName"), "<unknown>")
            .with(&k("ConnectedLineNum"), unknown(&self.connected_num))
            .with(&k("ConnectedLineName"), "<unknown>")
            .with(&k("Language"), "en")
            .with(&k("AccountCode"), "")
            .with(&k("Context"), self.context.clone())
            .with(&k("Exten"), self.exten.clone())
            .with(&k("Priority"), self.priority.to_string())
            .with(&k("Uniqueid"), self.uniqueid.clone())
            .with(&k("Linkedid"), self.linkedid.clone())
    }

    /// Seconds since the channel was created, as `HH:MM:SS`.
    pub fn duration(&self, now_ms: u64) -> String {
        let s = now_ms.saturating_sub(self.created_ms) / 1000;
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

/// Asterisk's name of a switch channel (`SIP/…` → `PJSIP/…`).
pub fn ami_channel_name(switch_name: &str) -> String {
    match switch_name.strip_prefix("SIP/") {
        Some(rest) => format!("PJSIP/{rest}"),
        None => switch_name.to_owned(),
    }
}

/// The switch's name of an Asterisk channel name (`PJSIP/…` → `SIP/…`).
pub fn switch_channel_name(ami_name: &str) -> String {
    match ami_name.strip_prefix("PJSIP/") {
        Some(rest) => format!("SIP/{rest}"),
        None => ami_name.to_owned(),
    }
}

/// The live channel table and the event translation (see the module doc).
#[derive(Debug, Default)]
pub struct Translator {
    /// By Asterisk channel name.
    channels: HashMap<String, ChannelFacts>,
    /// Channel names in creation order (stable listings).
    order: Vec<String>,
}

impl Translator {
    pub fn new() -> Translator {
        Translator::default()
    }

    /// Live channels, oldest first.
    pub fn channels(&self) -> Vec<ChannelFacts> {
        self.order
            .iter()
            .filter_map(|n| self.channels.get(n).cloned())
            .collect()
    }

    /// Applies one switch record; the AMI events it makes, in order.
    pub fn handle_record(&mut self, record: &EventRecord) -> Vec<AmiEvent> {
        let mut out = Vec::new();
        match &record.event {
            SwitchEvent::ChannelCreated {
                channel,
                uniqueid,
                linkedid,
                direction,
                caller,
                exten,
                context,
            } => {
                let name = ami_channel_name(channel);
                let inbound = *direction == Direction::Inbound;
                let facts = ChannelFacts {
                    channel: name.clone(),
                    uniqueid: uniqueid.clone(),
                    linkedid: linkedid.clone(),
                    direction: *direction,
                    state: if inbound {
                        AstState::Ring
                    } else {
                        AstState::Down
                    },
                    // An outbound leg shows the number it calls; its
                    // connected line is the caller.
                    caller_num: if inbound { caller } else { exten }.clone(),
                    connected_num: if inbound { "" } else { caller }.to_owned(),
                    context: context.clone(),
                    exten: exten.clone(),
                    priority: 1,
                    application: if inbound { "" } else { "AppDial" }.to_owned(),
                    bridge: None,
                    created_ms: record.time_ms,
                };
                out.push(AmiEvent::new(
                    "Newchannel",
                    ClassMask::CALL,
                    facts.fields(""),
                ));
                if !inbound {
                    if let Some(caller_leg) = self.caller_of(linkedid) {
                        let mut f = caller_leg.fields("");
                        f.extend(&facts.fields("Dest"));
                        f.push("DialString", exten.clone());
                        out.push(AmiEvent::new("DialBegin", ClassMask::CALL, f));
                    }
                }
                if !self.channels.contains_key(&name) {
                    self.order.push(name.clone());
                }
                self.channels.insert(name, facts);
            }
            SwitchEvent::ChannelState { channel, state, .. } => {
                let name = ami_channel_name(channel);
                let new = match state {
                    ChannelState::Ringing => AstState::Ringing,
                    ChannelState::Up => AstState::Up,
                    // 183 does not change an Asterisk channel's state.
                    ChannelState::Progress => return out,
                };
                let Some(facts) = self.channels.get_mut(&name) else {
                    return out;
                };
                if facts.state == new {
                    return out;
                }
                facts.state = new;
                let facts = facts.clone();
                out.push(AmiEvent::new("Newstate", ClassMask::CALL, facts.fields("")));
                if new == AstState::Up && facts.direction == Direction::Outbound {
                    out.extend(self.dial_end(&facts, "ANSWER"));
                }
            }
            SwitchEvent::Dtmf {
                channel,
                digit,
                duration_ms,
                ..
            } => {
                let Some(facts) = self.channels.get(&ami_channel_name(channel)) else {
                    return out;
                };
                let mut begin = facts.fields("");
                begin.push("Digit", digit.to_string());
                begin.push("Direction", "Received");
                let mut end = begin.clone();
                end.push("DurationMs", duration_ms.to_string());
                out.push(AmiEvent::new("DTMFBegin", ClassMask::DTMF, begin));
                out.push(AmiEvent::new("DTMFEnd", ClassMask::DTMF, end));
            }
            SwitchEvent::Bridged { linkedid, channels } => {
                let bridge = bridge_id(linkedid);
                let names = channels.clone().map(|c| ami_channel_name(&c));
                let nums: Vec<String> = names
                    .iter()
                    .map(|n| {
                        self.channels
                            .get(n)
                            .map(|f| f.caller_num.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                out.push(AmiEvent::new(
                    "BridgeCreate",
                    ClassMask::CALL,
                    bridge_fields(&bridge, 0),
                ));
                for (i, name) in names.iter().enumerate() {
                    let Some(facts) = self.channels.get_mut(name) else {
                        continue;
                    };
                    facts.bridge = Some(bridge.clone());
                    if let Some(peer) = nums.get(1 - i) {
                        if !peer.is_empty() {
                            facts.connected_num = peer.clone();
                        }
                    }
                    let mut f = bridge_fields(&bridge, i + 1);
                    f.extend(&facts.fields(""));
                    out.push(AmiEvent::new("BridgeEnter", ClassMask::CALL, f));
                }
            }
            SwitchEvent::Unbridged { linkedid, channels } => {
                let bridge = bridge_id(linkedid);
                let mut left = 0;
                for name in channels.clone().map(|c| ami_channel_name(&c)) {
                    let Some(facts) = self.channels.get_mut(&name) else {
                        continue;
                    };
                    facts.bridge = None;
                    left += 1;
                    let mut f = bridge_fields(&bridge, 2 - left);
                    f.extend(&facts.fields(""));
                    out.push(AmiEvent::new("BridgeLeave", ClassMask::CALL, f));
                }
                out.push(AmiEvent::new(
                    "BridgeDestroy",
                    ClassMask::CALL,
                    bridge_fields(&bridge, 0),
                ));
            }
            SwitchEvent::AppStarted { channel, app, step } => {
                let Some(facts) = self.channels.get_mut(&ami_channel_name(channel)) else {
                    return out;
                };
                facts.priority = *step;
                facts.application = app.clone();
                let mut f = facts.fields("");
                f.push("Extension", facts.exten.clone());
                f.push("Application", app.clone());
                f.push("AppData", "");
                out.push(AmiEvent::new("Newexten", ClassMask::DIALPLAN, f));
            }
            SwitchEvent::Hold {
                channel, moh_class, ..
            } => {
                let name = ami_channel_name(channel);
                let Some(facts) = self.channels.get(&name) else {
                    return out;
                };
                let mut f = facts.fields("");
                f.push("MusicClass", moh_class.clone());
                out.push(AmiEvent::new("Hold", ClassMask::CALL, f));
                if let Some(peer) = self.bridge_peer(&name) {
                    let mut f = peer.fields("");
                    f.push("Class", moh_class.clone());
                    out.push(AmiEvent::new("MusicOnHoldStart", ClassMask::CALL, f));
                }
            }
            SwitchEvent::ConfJoin { channel, room, .. }
            | SwitchEvent::ConfLeave { channel, room, .. } => {
                let name = ami_channel_name(channel);
                let Some(facts) = self.channels.get(&name) else {
                    return out;
                };
                let mut f = facts.fields("");
                f.push("Conference", room.clone());
                let what = if matches!(record.event, SwitchEvent::ConfJoin { .. }) {
                    "ConfbridgeJoin"
                } else {
                    "ConfbridgeLeave"
                };
                out.push(AmiEvent::new(what, ClassMask::CALL, f));
            }
            SwitchEvent::Unhold { channel, .. } => {
                let name = ami_channel_name(channel);
                let Some(facts) = self.channels.get(&name) else {
                    return out;
                };
                out.push(AmiEvent::new("Unhold", ClassMask::CALL, facts.fields("")));
                if let Some(peer) = self.bridge_peer(&name) {
                    out.push(AmiEvent::new(
                        "MusicOnHoldStop",
                        ClassMask::CALL,
                        peer.fields(""),
                    ));
                }
            }
            SwitchEvent::Hangup {
                channel,
                cause,
                cause_text,
                ..
            } => {
                let name = ami_channel_name(channel);
                let Some(facts) = self.channels.remove(&name) else {
                    return out;
                };
                self.order.retain(|n| *n != name);
                if facts.direction == Direction::Outbound && facts.state != AstState::Up {
                    out.extend(self.dial_end(&facts, dial_status(*cause)));
                }
                let mut f = facts.fields("");
                f.push("Cause", cause.to_string());
                f.push("Cause-txt", cause_text.clone());
                out.push(AmiEvent::new("Hangup", ClassMask::CALL, f));
            }
            // No AMI event yet: Asterisk's MessageWaiting needs the
            // mailbox's new/old counts, which these events don't carry.
            SwitchEvent::AppFinished { .. }
            | SwitchEvent::RecordingStarted { .. }
            | SwitchEvent::RecordingFinished { .. }
            | SwitchEvent::VoicemailLeft { .. }
            | SwitchEvent::VoicemailDeleted { .. } => {}
        }
        out
    }

    /// The inbound channel of call `linkedid`.
    fn caller_of(&self, linkedid: &str) -> Option<&ChannelFacts> {
        self.channels
            .values()
            .find(|f| f.linkedid == linkedid && f.direction == Direction::Inbound)
    }

    /// The other channel in `name`'s bridge.
    fn bridge_peer(&self, name: &str) -> Option<&ChannelFacts> {
        let bridge = self.channels.get(name)?.bridge.as_ref()?;
        self.channels
            .values()
            .find(|f| f.channel != name && f.bridge.as_ref() == Some(bridge))
    }

    fn dial_end(&self, dest: &ChannelFacts, status: &str) -> Option<AmiEvent> {
        let caller = self.caller_of(&dest.linkedid)?;
        let mut f = caller.fields("");
        f.extend(&dest.fields("Dest"));
        f.push("DialStatus", status);
        Some(AmiEvent::new("DialEnd", ClassMask::CALL, f))
    }
}

/// The bridge of call `linkedid` (one two-party bridge per call today).
fn bridge_id(linkedid: &str) -> String {
    format!("{linkedid}-bridge")
}

fn bridge_fields(bridge: &str, members: usize) -> Packet {
    Packet::new()
        .with("BridgeUniqueid", bridge)
        .with("BridgeType", "basic")
        .with("BridgeTechnology", "simple_bridge")
        .with("BridgeCreator", "<unknown>")
        .with("BridgeName", "<unknown>")
        .with("BridgeNumChannels", members.to_string())
        .with("BridgeVideoSourceMode", "none")
}

/// Dial's `DIALSTATUS` for an outbound leg that ended unanswered.
fn dial_status(cause: u16) -> &'static str {
    match cause {
        17 => "BUSY",
        18 | 19 => "NOANSWER",
        34 | 38 | 41 | 42 => "CONGESTION",
        1 | 3 | 20 | 27 | 28 => "CHANUNAVAIL",
        _ => "CANCEL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time_ms: u64, event: SwitchEvent) -> EventRecord {
        EventRecord { time_ms, event }
    }

    fn created(ch: &str, uid: &str, dir: Direction) -> SwitchEvent {
        SwitchEvent::ChannelCreated {
            channel: ch.into(),
            uniqueid: uid.into(),
            linkedid: "L1".into(),
            direction: dir,
            caller: "100".into(),
            exten: "101".into(),
            context: "internal".into(),
        }
    }

    fn names(events: &[AmiEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.name).collect()
    }

    #[test]
    fn conference_joins_and_leaves_become_confbridge_events() {
        let mut t = Translator::new();
        let a = "SIP/100-0000002a";
        t.handle_record(&rec(1_000, created(a, "L1", Direction::Inbound)));
        let join = t.handle_record(&rec(
            2_000,
            SwitchEvent::ConfJoin {
                channel: a.into(),
                linkedid: "L1".into(),
                room: "800".into(),
                members: 1,
            },
        ));
        assert_eq!(names(&join), ["ConfbridgeJoin"]);
        assert_eq!(join[0].packet.get("Conference"), Some("800"));
        assert_eq!(join[0].packet.get("Channel"), Some("PJSIP/100-0000002a"));
        let leave = t.handle_record(&rec(
            3_000,
            SwitchEvent::ConfLeave {
                channel: a.into(),
                linkedid: "L1".into(),
                room: "800".into(),
                members: 0,
            },
        ));
        assert_eq!(names(&leave), ["ConfbridgeLeave"]);
    }

    #[test]
    fn a_call_life_becomes_asterisk_events_with_channel_fields_and_the_table_follows() {
        let mut t = Translator::new();
        let a = "SIP/100-0000002a";
        let b = "SIP/101-0000002b";
        let ev = t.handle_record(&rec(1_000, created(a, "L1", Direction::Inbound)));
        assert_eq!(names(&ev), ["Newchannel"]);
        let p = &ev[0].packet;
        assert_eq!(p.get("Channel"), Some("PJSIP/100-0000002a"));
        assert_eq!(p.get("ChannelState"), Some("4"));
        assert_eq!(p.get("ChannelStateDesc"), Some("Ring"));
        assert_eq!(p.get("CallerIDNum"), Some("100"));
        assert_eq!(p.get("ConnectedLineNum"), Some("<unknown>"));
        assert_eq!(p.get("Exten"), Some("101"));
        assert_eq!(p.get("Uniqueid"), Some("L1"));
        assert_eq!(p.get("Linkedid"), Some("L1"));
        assert_eq!(p.get("Privilege"), Some("call,all"));
        let ev = t.handle_record(&rec(
            1_100,
            SwitchEvent::AppStarted {
                channel: a.into(),
                app: "Dial".into(),
                step: 2,
            },
        ));
        assert_eq!(names(&ev), ["Newexten"]);
        assert_eq!(ev[0].packet.get("Priority"), Some("2"));
        assert_eq!(ev[0].packet.get("Application"), Some("Dial"));
        assert_eq!(ev[0].class, ClassMask::DIALPLAN);
        let ev = t.handle_record(&rec(1_200, created(b, "L1.1", Direction::Outbound)));
        assert_eq!(names(&ev), ["Newchannel", "DialBegin"]);
        assert_eq!(ev[0].packet.get("ChannelState"), Some("0"));
        assert_eq!(ev[1].packet.get("Channel"), Some("PJSIP/100-0000002a"));
        assert_eq!(ev[1].packet.get("DestChannel"), Some("PJSIP/101-0000002b"));
        assert_eq!(ev[1].packet.get("DestConnectedLineNum"), Some("100"));
        let ev = t.handle_record(&rec(
            1_300,
            SwitchEvent::ChannelState {
                channel: b.into(),
                uniqueid: "L1.1".into(),
                state: ChannelState::Ringing,
            },
        ));
        assert_eq!(names(&ev), ["Newstate"]);
        assert_eq!(ev[0].packet.get("ChannelStateDesc"), Some("Ringing"));
        let ev = t.handle_record(&rec(
            2_000,
            SwitchEvent::ChannelState {
                channel: b.into(),
                uniqueid: "L1.1".into(),
                state: ChannelState::Up,
            },
        ));
        assert_eq!(names(&ev), ["Newstate", "DialEnd"]);
        assert_eq!(ev[1].packet.get("DialStatus"), Some("ANSWER"));
        let ev = t.handle_record(&rec(
            2_000,
            SwitchEvent::Bridged {
                linkedid: "L1".into(),
                channels: [a.into(), b.into()],
            },
        ));
        assert_eq!(names(&ev), ["BridgeCreate", "BridgeEnter", "BridgeEnter"]);
        assert_eq!(ev[0].packet.get("BridgeType"), Some("basic"));
        assert_eq!(ev[0].packet.get("BridgeTechnology"), Some("simple_bridge"));
        assert_eq!(ev[1].packet.get("ConnectedLineNum"), Some("101"));
        let ev = t.handle_record(&rec(
            2_500,
            SwitchEvent::Dtmf {
                channel: a.into(),
                uniqueid: "L1".into(),
                digit: '5',
                duration_ms: 120,
                source: carillon_events::DtmfSource::Rfc4733,
            },
        ));
        assert_eq!(names(&ev), ["DTMFBegin", "DTMFEnd"]);
        assert_eq!(ev[1].packet.get("Digit"), Some("5"));
        assert_eq!(ev[1].packet.get("DurationMs"), Some("120"));
        assert_eq!(ev[1].packet.get("Direction"), Some("Received"));
        assert_eq!(ev[1].class, ClassMask::DTMF);
        let ev = t.handle_record(&rec(
            2_600,
            SwitchEvent::Hold {
                channel: a.into(),
                uniqueid: "L1".into(),
                linkedid: "L1".into(),
                moh_class: "default".into(),
            },
        ));
        assert_eq!(names(&ev), ["Hold", "MusicOnHoldStart"]);
        assert_eq!(ev[1].packet.get("Channel"), Some("PJSIP/101-0000002b"));
        let listed = t.channels();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].state, AstState::Ring);
        assert_eq!(listed[1].state, AstState::Up);
        assert_eq!(listed[0].duration(62_000), "00:01:01");
        let ev = t.handle_record(&rec(
            3_000,
            SwitchEvent::Unbridged {
                linkedid: "L1".into(),
                channels: [a.into(), b.into()],
            },
        ));
        assert_eq!(names(&ev), ["BridgeLeave", "BridgeLeave", "BridgeDestroy"]);
        let ev = t.handle_record(&rec(
            3_000,
            SwitchEvent::Hangup {
                channel: b.into(),
                uniqueid: "L1.1".into(),
                cause: 16,
                cause_text: "Normal Clearing".into(),
            },
        ));
        assert_eq!(names(&ev), ["Hangup"]);
        assert_eq!(ev[0].packet.get("Cause"), Some("16"));
        assert_eq!(ev[0].packet.get("Cause-txt"), Some("Normal Clearing"));
        assert_eq!(t.channels().len(), 1);
    }

    #[test]
    fn an_unanswered_outbound_leg_ends_its_dial_with_the_status_of_its_cause() {
        let mut t = Translator::new();
        t.handle_record(&rec(0, created("SIP/100-1", "L1", Direction::Inbound)));
        t.handle_record(&rec(0, created("SIP/101-2", "L1.1", Direction::Outbound)));
        let ev = t.handle_record(&rec(
            0,
            SwitchEvent::Hangup {
                channel: "SIP/101-2".into(),
                uniqueid: "L1.1".into(),
                cause: 17,
                cause_text: "User busy".into(),
            },
        ));
        assert_eq!(names(&ev), ["DialEnd", "Hangup"]);
        assert_eq!(ev[0].packet.get("DialStatus"), Some("BUSY"));
    }

    #[test]
    fn events_of_unknown_channels_make_nothing() {
        let mut t = Translator::new();
        let ev = t.handle_record(&rec(
            0,
            SwitchEvent::Hangup {
                channel: "SIP/x-1".into(),
                uniqueid: "u".into(),
                cause: 16,
                cause_text: "Normal Clearing".into(),
            },
        ));
        assert!(ev.is_empty());
        assert!(t.channels().is_empty());
    }
}
