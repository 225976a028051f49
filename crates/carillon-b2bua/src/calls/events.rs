//! Switch events of calls: the [`carillon_events::SwitchEvent`]s the call
//! logic emits (as `Output::Event`, stamped with the wall clock of the
//! latest input) when a channel is created, rings or answers, is bridged
//! or unbridged, gets a DTMF digit, runs a dialplan application, or hangs
//! up, unless `CallConfig::events` is off (no events file configured:
//! nothing is built). Only building and queueing the records lives here; where they are
//! emitted is in the call logic (`calls.rs`).

use carillon_events::{
    ChannelState, Direction, DtmfSource, EventRecord, RecordingMix, SwitchEvent,
};
use carillon_mediactl::LegId;

use super::{Call, Channel, DigitSource};
use crate::switch::{Output, Switch};

/// A leg's `uniqueid`: the call's for the caller's leg, the call's plus
/// `.` and the leg number for an outbound one.
pub(super) fn leg_uniqueid(call: &Call, leg: &Channel) -> String {
    if leg.id == call.a.id {
        call.uniqueid.clone()
    } else {
        format!("{}.{}", call.uniqueid, leg.id.0)
    }
}

/// Q.850 cause of an outbound leg's final SIP status (RFC 3398 §7.2.4.1,
/// as Asterisk maps them).
pub(super) fn cause_of_status(status: u16) -> u16 {
    match status {
        400 | 405 | 406 | 415 | 420 | 421 | 423 | 505 | 513 => 127,
        401 | 402 | 403 | 407 | 603 => 21,
        404 | 604 => 1,
        408 => 102,
        410 => 22,
        414 | 416 => 28,
        480 => 18,
        483 => 25,
        484 => 28,
        485 => 1,
        486 | 600 => 17,
        487 => 127,
        488 | 606 => 65,
        500 => 41,
        501 => 79,
        502 => 38,
        503 => 34,
        504 => 102,
        _ => 31,
    }
}

impl Switch {
    /// Queues the events `build` makes of call `key`, stamped with the
    /// latest wall-clock time; nothing is built when events are off
    /// (`CallConfig::events`) or the call is gone.
    pub(super) fn emit_of_call<const N: usize>(
        &mut self,
        key: u64,
        build: impl FnOnce(&Call) -> [Option<SwitchEvent>; N],
    ) {
        if !self.calls.config.events {
            return;
        }
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let time_ms = self.now_ms;
        for event in build(call).into_iter().flatten() {
            self.outputs
                .push_back(Output::Event(EventRecord { time_ms, event }));
        }
    }

    /// Queues the event `build` makes of leg `leg_id` (the caller's or a
    /// fork) of call `key`.
    fn emit_of_leg(
        &mut self,
        key: u64,
        leg_id: LegId,
        build: impl FnOnce(&Call, &Channel) -> SwitchEvent,
    ) {
        self.emit_of_call(key, |call| {
            [call.channel(leg_id).map(|leg| build(call, leg))]
        });
    }

    /// `channel_created` for leg `leg_id` (the caller's or an outbound
    /// one) of call `key`.
    pub(super) fn emit_channel_created(&mut self, key: u64, leg_id: LegId) {
        self.emit_of_leg(key, leg_id, |call, leg| SwitchEvent::ChannelCreated {
            channel: leg.channel.clone(),
            uniqueid: leg_uniqueid(call, leg),
            linkedid: call.uniqueid.clone(),
            direction: if leg.id == call.a.id {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            caller: call.caller_num.clone(),
            exten: call.exten.clone(),
            context: call.context.clone(),
        });
    }

    /// `channel_state` for leg `leg_id` (the caller's or a fork) of call
    /// `key`.
    pub(super) fn emit_state(&mut self, key: u64, leg_id: LegId, state: ChannelState) {
        self.emit_of_leg(key, leg_id, |call, leg| SwitchEvent::ChannelState {
            channel: leg.channel.clone(),
            uniqueid: leg_uniqueid(call, leg),
            state,
        });
    }

    /// `bridged` (or `unbridged`) of the caller and fork `leg_id`.
    pub(super) fn emit_bridge(&mut self, key: u64, leg_id: LegId, bridged: bool) {
        self.emit_of_call(key, |call| {
            [call.forks.iter().find(|l| l.id == leg_id).map(|leg| {
                let linkedid = call.uniqueid.clone();
                let channels = [call.a.channel.clone(), leg.channel.clone()];
                if bridged {
                    SwitchEvent::Bridged { linkedid, channels }
                } else {
                    SwitchEvent::Unbridged { linkedid, channels }
                }
            })]
        });
    }

    /// The events of an outbound leg that leaves call `key`: `unbridged`
    /// when it was the bridged one (`was_bridged`), then its `hangup`
    /// (cause from its final status, else the call's cause).
    pub(super) fn emit_fork_gone(&mut self, key: u64, leg: &Channel, was_bridged: bool) {
        self.emit_of_call(key, |call| {
            let cause = match leg.state.final_status() {
                Some(s) if s >= 300 => cause_of_status(s),
                _ => call.hangup_cause,
            };
            [
                was_bridged.then(|| SwitchEvent::Unbridged {
                    linkedid: call.uniqueid.clone(),
                    channels: [call.a.channel.clone(), leg.channel.clone()],
                }),
                Some(hangup(leg.channel.clone(), leg_uniqueid(call, leg), cause)),
            ]
        });
    }

    /// `hangup` of the caller's leg (the call's cause) of a call already
    /// taken out of the table.
    pub(super) fn emit_caller_gone(&mut self, call: &Call) {
        if !self.calls.config.events {
            return;
        }
        let event = hangup(
            call.a.channel.clone(),
            call.uniqueid.clone(),
            call.hangup_cause,
        );
        self.outputs.push_back(Output::Event(EventRecord {
            time_ms: self.now_ms,
            event,
        }));
    }

    /// `dtmf` of a digit on leg `leg_id` of call `key`.
    pub(super) fn emit_dtmf(
        &mut self,
        key: u64,
        leg_id: LegId,
        digit: char,
        duration_ms: u64,
        source: DigitSource,
    ) {
        self.emit_of_leg(key, leg_id, |call, leg| SwitchEvent::Dtmf {
            channel: leg.channel.clone(),
            uniqueid: leg_uniqueid(call, leg),
            digit,
            duration_ms,
            source: match source {
                DigitSource::Rfc4733 => DtmfSource::Rfc4733,
                DigitSource::SipInfo => DtmfSource::SipInfo,
                DigitSource::Inband => DtmfSource::Inband,
            },
        });
    }

    /// `app_started` of the caller's channel; `step` is the dialplan step
    /// that gave the application.
    pub(super) fn emit_app_started(&mut self, key: u64, app: &str, step: u32) {
        self.emit_of_call(key, |call| {
            [Some(SwitchEvent::AppStarted {
                channel: call.a.channel.clone(),
                app: app.to_owned(),
                step,
            })]
        });
    }

    /// `app_finished` of the caller's channel.
    pub(super) fn emit_app_finished(&mut self, key: u64, app: &str, result: &str) {
        self.emit_of_call(key, |call| {
            [Some(SwitchEvent::AppFinished {
                channel: call.a.channel.clone(),
                app: app.to_owned(),
                result: result.to_owned(),
            })]
        });
    }

    /// `hold` (or `unhold`) by leg `leg_id` of call `key`.
    pub(super) fn emit_hold(&mut self, key: u64, leg_id: LegId, hold: bool) {
        self.emit_of_leg(key, leg_id, |call, leg| {
            let (channel, uniqueid, linkedid) = (
                leg.channel.clone(),
                leg_uniqueid(call, leg),
                call.uniqueid.clone(),
            );
            if hold {
                SwitchEvent::Hold {
                    channel,
                    uniqueid,
                    linkedid,
                    moh_class: super::hold::DEFAULT_MOH_CLASS.to_owned(),
                }
            } else {
                SwitchEvent::Unhold {
                    channel,
                    uniqueid,
                    linkedid,
                }
            }
        });
    }

    /// `recording_started` of call `key` (named after the caller's
    /// channel).
    pub(super) fn emit_recording_started(&mut self, key: u64, path: &str, mix: RecordingMix) {
        self.emit_of_call(key, |call| {
            [Some(SwitchEvent::RecordingStarted {
                channel: call.a.channel.clone(),
                linkedid: call.uniqueid.clone(),
                path: path.to_owned(),
                mix,
            })]
        });
    }

    /// Queues an event of no (or no longer a) call, e.g. a recording
    /// finalised after its call ended.
    pub(super) fn emit_detached(&mut self, event: SwitchEvent) {
        if !self.calls.config.events {
            return;
        }
        self.outputs.push_back(Output::Event(EventRecord {
            time_ms: self.now_ms,
            event,
        }));
    }
}

/// A `hangup` event with its cause's text.
fn hangup(channel: String, uniqueid: String, cause: u16) -> SwitchEvent {
    SwitchEvent::Hangup {
        channel,
        uniqueid,
        cause,
        cause_text: carillon_events::cause_text(cause).to_owned(),
    }
}
