//! The switch half of ConfBridge: a call's caller leg joining and leaving a
//! conference room.
//!
//! Owns [`Switch::conf_join`] (the dialplan's `Command::ConfBridge`: the
//! room registry of [`crate::conference`] decides, its media commands go
//! out, `conf_join` is emitted and the execution waits in the room; a
//! refusal — unknown or full room, another media worker, no media leg —
//! returns the application at once with `CONFBRIDGE_RESULT=FAILED`) and
//! [`Switch::conf_leave`] (the call ends: its leg is removed from the mix
//! before the session closes, the last member destroys the mix,
//! `conf_leave` is emitted). Music for a member alone is a `Play` of the
//! room's MoH class on its leg with a playback id the execution does not
//! await, so its `PlaybackDone` is ignored.

use std::time::Instant;

use carillon_events::SwitchEvent;
use carillon_mediactl::{MediaCommand, PlayItem};
use tracing::{info, warn};

use super::apps::Flow;
use crate::conference::{Member, RoomAction};
use crate::switch::Switch;

impl Switch {
    /// ConfBridge of call `key` into `room`.
    pub(super) fn conf_join(&mut self, now: Instant, key: u64, room: &str, step: u32) -> Flow {
        let Some(call) = self.calls.calls.get(&key) else {
            return Flow::Wait;
        };
        let member = Member {
            call: key,
            session: call.session,
            leg: call.a.id,
        };
        let joined = if call.a.media_open {
            self.calls
                .rooms
                .join(room, member)
                .map_err(|e| e.to_string())
        } else {
            Err("the caller has no media leg".to_owned())
        };
        match joined {
            Ok(actions) => {
                self.conf_actions(actions);
                let members = self.calls.rooms.members(room);
                info!(call = key, room = %room, members, "conference: joined");
                self.emit_conf(key, room, members, true);
                Flow::Wait
            }
            Err(e) => {
                warn!(call = key, room = %room, error = %e, "ConfBridge: not joined");
                // It returns at once: never reported as waiting.
                self.emit_app_started(key, "ConfBridge", step);
                self.emit_app_finished(key, "ConfBridge", "FAILED");
                if let Some(exec) = self.calls.calls.get_mut(&key).and_then(|c| c.exec.as_mut()) {
                    exec.handle_conference_done(now, "FAILED");
                }
                Flow::Next
            }
        }
    }

    /// Call `key` ends: out of its room, if it is in one.
    pub(super) fn conf_leave(&mut self, key: u64) {
        let Some(left) = self.calls.rooms.leave(key) else {
            return;
        };
        info!(call = key, room = %left.room, members = left.remaining, "conference: left");
        self.emit_conf(key, &left.room, left.remaining, false);
        self.conf_actions(left.actions);
    }

    fn conf_actions(&mut self, actions: Vec<RoomAction>) {
        for action in actions {
            match action {
                RoomAction::Media(cmd) => self.media(cmd),
                RoomAction::StartMoh {
                    session,
                    leg,
                    class,
                } => {
                    let Some(key) = self.calls.by_session.get(&session).copied() else {
                        continue;
                    };
                    let Some(call) = self.calls.calls.get_mut(&key) else {
                        continue;
                    };
                    let playback = call.exec_media.new_playback();
                    self.media(MediaCommand::Play {
                        session,
                        leg,
                        playback,
                        items: vec![PlayItem::Moh { class }],
                    });
                }
            }
        }
    }

    fn emit_conf(&mut self, key: u64, room: &str, members: usize, join: bool) {
        let members = u32::try_from(members).unwrap_or(u32::MAX);
        self.emit_of_call(key, |call| {
            let (channel, linkedid, room) = (
                call.a.channel.clone(),
                call.uniqueid.clone(),
                room.to_owned(),
            );
            [Some(if join {
                SwitchEvent::ConfJoin {
                    channel,
                    linkedid,
                    room,
                    members,
                }
            } else {
                SwitchEvent::ConfLeave {
                    channel,
                    linkedid,
                    room,
                    members,
                }
            })]
        });
    }
}
