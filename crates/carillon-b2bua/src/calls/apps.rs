//! The dialplan applications that act on the caller's channel alone (the
//! IVR): how the switch carries out the interpreter's commands besides
//! `Answer`, `Dial`, `Hangup` and `SetCallerId` (those stay in `calls.rs`).
//!
//! Owns the mapping of each such [`Command`] to what the switch does:
//!
//! | command | switch |
//! |---|---|
//! | `Play` | `MediaCommand::Play` of the files on the caller's leg (early media first: a 183 with our SDP when the call is neither answered nor in early media); its `PlaybackDone` is fed back by [`super::execution`] |
//! | `StopPlay` | `MediaCommand::StopPlay` (the `PlaybackDone` that follows is fed back) |
//! | `PlayTones` | `MediaCommand::Play` of a tone item (not reported back) |
//! | `Progress` | 183 with our SDP (early media) |
//! | `Ringing` | 180 |
//! | `StoreCallback` | `Output::Callback` (the edge stores it with the CDRs) |
//! | `Webhook` | `Output::Webhook` (the edge sends it; the call never waits) |
//! | `Voicemail` | `Output::Voicemail` (the edge persists it), and `voicemail_left` / `voicemail_deleted` events |
//! | `Record`, `StopRecord`, `MixMonitor`, `StopMixMonitor` | carried out by [`super::recording`] |
//! | `ConfBridge` | carried out by [`super::conference`] |
//!
//! When the dialplan is done (the terminal event) or the caller is gone,
//! only the commands that need no channel are carried out
//! ([`Switch::drain_channelless`]).

use std::sync::Arc;
use std::time::Instant;

use carillon_dialplan::{Command, RecordOutcome, RecordStatus};
use carillon_events::ChannelState;
use carillon_mediactl::{MediaCommand, PlayItem};
use tracing::{debug, info, warn};

use super::CallState;
use crate::switch::{Output, Switch};

/// What `run_dialplan` does after an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Take the next command.
    Next,
    /// The execution waits for a result (playback, digit, timer).
    Wait,
}

impl Switch {
    /// Carries out an IVR command of call `key` (`step`: the dialplan step
    /// that gave it, for `app_started`).
    pub(super) fn run_app(&mut self, now: Instant, key: u64, cmd: Command, step: u32) -> Flow {
        match cmd {
            Command::Play { files, .. } => {
                let items = files.into_iter().map(PlayItem::File).collect();
                self.play_to_caller(now, key, items, true)
            }
            Command::StopPlay => {
                self.stop_caller_playback(key, false);
                Flow::Next
            }
            Command::PlayTones {
                kind,
                tone,
                duration,
            } => {
                debug!(call = key, tone = kind.as_str(), "tones to the caller");
                let items = vec![PlayItem::Tone {
                    tone: Arc::new(tone),
                    duration,
                }];
                self.play_to_caller(now, key, items, false);
                Flow::Next
            }
            Command::Progress => {
                self.emit_app_started(key, "Progress", step);
                self.early_media_to_caller(now, key);
                self.emit_app_finished(key, "Progress", "OK");
                Flow::Next
            }
            Command::Ringing => {
                self.emit_app_started(key, "Ringing", step);
                self.ringing_to_caller(now, key);
                self.emit_app_finished(key, "Ringing", "OK");
                Flow::Next
            }
            Command::Record {
                path,
                max_silence,
                max_duration,
                beep,
            } => self.record_app_start(now, key, &path, max_silence, max_duration, beep),
            Command::ConfBridge { room } => self.conf_join(now, key, &room, step),
            other => {
                self.channelless(key, other, step);
                Flow::Next
            }
        }
    }

    /// The commands that need no channel (callback requests, webhooks,
    /// MixMonitor bookkeeping); any other command reaching here has no
    /// channel left to act on and is dropped (logged at debug).
    fn channelless(&mut self, key: u64, cmd: Command, step: u32) {
        match cmd {
            Command::StoreCallback {
                uniqueid,
                caller_num,
                number,
                alt_number,
                language,
            } => {
                self.emit_app_started(key, "CallbackRequest", step);
                let (context, exten) = self
                    .calls
                    .calls
                    .get(&key)
                    .and_then(|c| c.exec.as_ref())
                    .map(|e| (e.context().to_owned(), e.exten().to_owned()))
                    .unzip();
                info!(call = key, number = %number, alt_number = %alt_number, language = %language, "callback request");
                let request = carillon_cdr::CallbackRequest {
                    uniqueid,
                    caller_num,
                    number,
                    alt_number: Some(alt_number).filter(|n| !n.is_empty()),
                    language,
                    requested_at: i64::try_from(self.now_ms).unwrap_or(i64::MAX),
                    context,
                    exten,
                };
                self.outputs.push_back(Output::Callback(request));
                self.emit_app_finished(key, "CallbackRequest", "OK");
            }
            Command::Webhook {
                url,
                body,
                timeout,
                retries,
            } => {
                // Fire and forget: the edge sends it off the call's path.
                self.emit_app_started(key, "Webhook", step);
                debug!(call = key, url = %url, "webhook queued");
                self.outputs.push_back(Output::Webhook {
                    url,
                    body,
                    timeout,
                    retries,
                });
                self.emit_app_finished(key, "Webhook", "QUEUED");
            }
            Command::MixMonitor { file, stereo } => {
                self.emit_app_started(key, "MixMonitor", step);
                let result = match self.mixmonitor_start(key, file.as_deref(), stereo) {
                    Ok(_) => "OK",
                    Err(e) => {
                        warn!(call = key, error = %e, "MixMonitor: not recording");
                        "FAILED"
                    }
                };
                self.emit_app_finished(key, "MixMonitor", result);
            }
            Command::StopMixMonitor => {
                self.emit_app_started(key, "StopMixMonitor", step);
                self.mixmonitor_stop(key);
                self.emit_app_finished(key, "StopMixMonitor", "OK");
            }
            Command::StopRecord => self.record_app_stop(key),
            Command::Voicemail(persist) => self.voicemail_persist(key, persist),
            other => {
                debug!(call = key, step, command = ?other, "no channel: not carried out");
            }
        }
    }

    /// A Record application's file is done: if it is a voicemail message
    /// whose caller hung up while recording (its call is gone), the
    /// voicemail keeps it (or discards it when too short) now.
    pub(super) fn voicemail_recording_done(
        &mut self,
        key: u64,
        channel: String,
        linkedid: String,
        path: &std::path::Path,
        failed: bool,
        duration_ms: u64,
    ) {
        let found = self
            .calls
            .config
            .dialplan
            .as_ref()
            .and_then(|d| d.voicemail())
            .and_then(|vm| vm.orphan_recording_done(path, duration_ms, failed));
        if let Some(persist) = found {
            self.voicemail_change(key, channel, linkedid, persist);
        }
    }

    /// A voicemail change of call `key`: handed to the edge, with an event
    /// for a message left or deleted.
    fn voicemail_persist(&mut self, key: u64, persist: carillon_dialplan::voicemail::Persist) {
        let (channel, linkedid) = self
            .calls
            .calls
            .get(&key)
            .map(|c| (c.a.channel.clone(), c.uniqueid.clone()))
            .unwrap_or_default();
        self.voicemail_change(key, channel, linkedid, persist);
    }

    fn voicemail_change(
        &mut self,
        key: u64,
        channel: String,
        linkedid: String,
        persist: carillon_dialplan::voicemail::Persist,
    ) {
        use carillon_dialplan::voicemail::Persist;
        match &persist {
            Persist::Store(m) => {
                info!(call = key, mailbox = %m.mailbox, message = %m.id, duration_ms = m.duration_ms, "voicemail left");
                self.emit_detached(carillon_events::SwitchEvent::VoicemailLeft {
                    channel,
                    linkedid,
                    mailbox: m.mailbox.clone(),
                    message_id: m.id.clone(),
                    caller_num: m.caller_num.clone(),
                    path: m.path.display().to_string(),
                    duration_ms: m.duration_ms,
                });
            }
            Persist::Delete { mailbox, id, .. } => {
                info!(call = key, mailbox = %mailbox, message = %id, "voicemail deleted");
                self.emit_detached(carillon_events::SwitchEvent::VoicemailDeleted {
                    channel,
                    mailbox: mailbox.clone(),
                    message_id: id.clone(),
                });
            }
            _ => debug!(call = key, change = ?persist, "voicemail change"),
        }
        self.outputs.push_back(Output::Voicemail(persist));
    }

    /// Plays `items` to the caller: early media first when the call is
    /// neither answered nor in early media. With `reported`, the
    /// execution waits for the playback's end.
    fn play_to_caller(
        &mut self,
        now: Instant,
        key: u64,
        items: Vec<PlayItem>,
        reported: bool,
    ) -> Flow {
        self.early_media_to_caller(now, key);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return Flow::Wait;
        };
        if !call.a.media_open {
            warn!(
                call = key,
                "the caller has no media leg: nothing can be played"
            );
            if reported {
                if let Some(exec) = call.exec.as_mut() {
                    exec.handle_playback_done(now);
                }
            }
            return Flow::Next;
        }
        // A playback still running is replaced: its PlaybackDone (Stopped)
        // is then an older one's and ignored. Tones are not reported, so
        // they leave the awaited playback as it is.
        let playback = call.exec_media.new_playback();
        if reported {
            call.exec_media.playing = Some(playback);
        }
        let (session, leg) = (call.session, call.a.id);
        self.media(MediaCommand::Play {
            session,
            leg,
            playback,
            items,
        });
        if reported {
            Flow::Wait
        } else {
            Flow::Next
        }
    }

    /// 183 with our SDP to the caller (early media), once, unless answered.
    fn early_media_to_caller(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.inbound.answered || call.inbound.early_sent || call.state == CallState::Ended {
            return;
        }
        call.inbound.early_sent = true;
        let a_id = call.a.id;
        self.emit_state(key, a_id, ChannelState::Progress);
        self.provisional_a(now, key, 183, true);
    }

    /// 180 to the caller, once, unless answered or in early media.
    fn ringing_to_caller(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.inbound.answered
            || call.inbound.early_sent
            || call.inbound.provisional_sent == 180
            || call.state == CallState::Ended
        {
            return;
        }
        call.inbound.provisional_sent = 180;
        let a_id = call.a.id;
        self.emit_state(key, a_id, ChannelState::Ringing);
        self.provisional_a(now, key, 180, false);
    }

    /// The commands the execution of call `key` still has once it is done
    /// or its caller is gone (the `h` extension's, or those queued before
    /// the terminal event): the channel-less ones are carried out, a
    /// `Hangup` is reported, the rest dropped; a `Play` or `Record` the
    /// execution would wait on is answered at once.
    pub(super) fn drain_channelless(&mut self, now: Instant, key: u64) {
        // Bounded: the interpreter's step limit ends any loop; this too.
        for _ in 0..10_000 {
            let Some(exec) = self.calls.calls.get_mut(&key).and_then(|c| c.exec.as_mut()) else {
                return;
            };
            let Some((cmd, step)) = exec.poll_command_step() else {
                return;
            };
            match cmd {
                Command::Play { .. } => exec.handle_playback_done(now),
                Command::Record { .. } => exec.handle_record_done(
                    now,
                    RecordOutcome {
                        status: RecordStatus::Hangup,
                        duration_ms: None,
                    },
                ),
                Command::Hangup { .. } => self.emit_app_started(key, "Hangup", step),
                other => self.channelless(key, other, step),
            }
        }
        info!(call = key, "the dialplan left too many commands: stopped");
    }
}
