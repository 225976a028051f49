//! The running dialplan execution of a call, as the switch sees it: its
//! one timer, the application it waits in, the digits it reads, the
//! playback it waits for, and the caller hanging up under it.
//!
//! Owns [`ExecMedia`] (per call: the playback running on the caller's leg,
//! the ids of the next ones, the application reported as started) and the
//! small entry points `calls.rs` reaches it through:
//!
//! * [`Switch::execution_resumed`] / [`Switch::execution_blocked`]: around
//!   every run of the execution's commands (`run_dialplan`). The
//!   application the execution left gets its `app_finished`, the one it
//!   now waits in (Playback, Background, WaitExten, Read, Say*, Wait…,
//!   from `Execution::waiting_in`) its `app_started`; and the execution's
//!   `poll_timeout()` is armed as the call's timer (one per execution; a
//!   stale one firing early is ignored, the execution's deadline decides);
//! * [`Switch::execution_timeout`]: that timer fired;
//! * [`Switch::digit_to_execution`]: a digit (RFC 4733 or in-band from the
//!   media plane, or a SIP INFO) on the caller's leg of a call that is not
//!   bridged goes to `handle_digit`; a bridged call's digits keep the
//!   bridge's behaviour (relayed by the media plane, or INFO);
//! * [`Switch::playback_done`]: `MediaEvent::PlaybackDone` for the playback
//!   the execution waits on goes to `handle_playback_done` (files the media
//!   plane could not read are named in a warning; a missing prompt never
//!   hangs the call up);
//! * [`Switch::execution_caller_gone`]: the caller hung up (BYE or CANCEL)
//!   while the execution runs: its playback is stopped and
//!   `handle_caller_hangup` runs the `h` extension, whose channel-less
//!   commands (callback, webhook) are carried out.
//!
//! Dispatching the execution's commands is [`super::apps`]'s.
//!
//! ```text
//!  run_dialplan ─► Play ─► MediaCommand::Play ─► PlaybackDone ─► handle_playback_done ─┐
//!       ▲          digit (caller, not bridged) ─► handle_digit ────────────────────────┤
//!       │          Timer::Call at poll_timeout ─► handle_timeout ──────────────────────┤
//!       └──────────────────────────────────────────────────────────────────────────────┘
//! ```

use std::path::PathBuf;
use std::time::Instant;

use carillon_dialplan::AppName;
use carillon_mediactl::{LegId, MediaCommand, PlaybackEnd, PlaybackId, SessionId};
use tracing::{debug, warn};

use carillon_dialplan::{Command, DialStatus, Event as PlanEvent};
use tracing::info;

use super::{apps, CallState, Timer};
use crate::switch::Switch;

/// The media side of a call's execution.
#[derive(Debug, Default)]
pub(super) struct ExecMedia {
    /// The playback running on the caller's leg (for `StopPlay` and to
    /// match `PlaybackDone`).
    pub(super) playing: Option<PlaybackId>,
    /// The last playback id given in this call's session.
    next_playback: u64,
    /// The application the execution waits in, as reported by
    /// `app_started` (with the step that ran it).
    waiting: Option<(AppName, u32)>,
}

impl ExecMedia {
    /// A fresh playback id of the call.
    pub(super) fn new_playback(&mut self) -> PlaybackId {
        self.next_playback += 1;
        PlaybackId(self.next_playback)
    }
}

/// Applications whose events the Dial code emits itself.
fn reported_elsewhere(app: AppName) -> bool {
    app == AppName::Dial
}

impl Switch {
    /// Before the execution of call `key` runs on after an input: if it
    /// no longer waits in the application reported as started, that one
    /// finished.
    pub(super) fn execution_resumed(&mut self, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some((app, step)) = call.exec_media.waiting else {
            return;
        };
        let Some(exec) = call.exec.as_ref() else {
            return;
        };
        let now_waiting = exec.waiting_in().map(|a| (a, exec.steps_run()));
        if now_waiting == Some((app, step)) {
            return;
        }
        call.exec_media.waiting = None;
        let result = if call.state == CallState::Ended || call.cancelled || call.a.state.is_ended()
        {
            "HANGUP".to_owned()
        } else {
            match app {
                AppName::Read => exec.variable("READSTATUS"),
                AppName::Record => exec.variable("RECORD_STATUS"),
                AppName::VoiceMail | AppName::VoiceMailMain => exec.variable("VMSTATUS"),
                AppName::ConfBridge => exec.variable("CONFBRIDGE_RESULT"),
                _ => None,
            }
            .unwrap_or_else(|| "OK".to_owned())
        };
        self.emit_app_finished(key, app.as_str(), &result);
    }

    /// The execution of call `key` waits (or ended): the application it
    /// waits in is reported as started and its timer armed.
    pub(super) fn execution_blocked(&mut self, key: u64) {
        // An application left on the way (e.g. the call ended) finishes.
        self.execution_resumed(key);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(exec) = call.live_execution() else {
            return;
        };
        let due = exec.poll_timeout();
        let waiting = exec.waiting_in().map(|app| (app, exec.steps_run()));
        let arm = due.filter(|d| call.wait_deadline != Some(*d));
        let start =
            waiting.filter(|w| call.exec_media.waiting != Some(*w) && !reported_elsewhere(w.0));
        if let Some(due) = arm {
            call.wait_deadline = Some(due);
        }
        if start.is_some() {
            call.exec_media.waiting = start;
        }
        if let Some(due) = arm {
            self.calls.schedule(due, Timer::Call(key));
        }
        if let Some((app, step)) = start {
            self.emit_app_started(key, app.as_str(), step);
        }
    }

    /// The execution's timer of call `key` fired (`wait_deadline` passed).
    pub(super) fn execution_timeout(&mut self, now: Instant, now_ms: u64, key: u64) {
        let Some(exec) = self.calls.live(key).and_then(|c| c.exec.as_mut()) else {
            return;
        };
        // Ignored by the execution when its deadline moved later.
        exec.handle_timeout(now);
        self.run_dialplan(now, now_ms, key);
    }

    /// A digit arrived on leg `leg` of call `key`: to the execution when
    /// it is the caller's leg of a call that is not bridged (nor hearing a
    /// callee's early media). True when the execution took it.
    pub(super) fn digit_to_execution(&mut self, key: u64, leg: LegId, digit: char) -> bool {
        let (Some(now), now_ms) = (self.last_now, self.now_ms) else {
            return false;
        };
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return false;
        };
        if call.a.id != leg || call.bridge.is_some() || call.early_leg.is_some() {
            return false;
        }
        let Some(exec) = call.live_execution() else {
            return false;
        };
        exec.handle_digit(now, digit);
        self.run_dialplan(now, now_ms, key);
        true
    }

    /// `MediaEvent::PlaybackDone` for leg `leg` of `session`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn playback_done(
        &mut self,
        now: Instant,
        now_ms: u64,
        session: SessionId,
        leg: LegId,
        playback: PlaybackId,
        end: PlaybackEnd,
        missing: Vec<PathBuf>,
    ) {
        let Some(&key) = self.calls.by_session.get(&session) else {
            debug!(
                session = session.0,
                playback = playback.0,
                "playback done of no call"
            );
            return;
        };
        if !missing.is_empty() {
            let files: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
            warn!(
                call = key,
                files = %files.join(", "),
                "prompt files missing or unreadable: skipped"
            );
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.exec_media.playing != Some(playback) || call.a.id != leg {
            // An older playback, replaced by a newer one (or a tone).
            return;
        }
        call.exec_media.playing = None;
        if call.state == CallState::Ended {
            return;
        }
        debug!(call = key, playback = playback.0, end = ?end, "playback done");
        if let Some(exec) = call.exec.as_mut() {
            exec.handle_playback_done(now);
        }
        self.run_dialplan(now, now_ms, key);
    }

    /// Stops the playback (or tone) on the caller's leg of call `key`;
    /// its `PlaybackDone` is still awaited, unless `forget` (the call is
    /// ending).
    pub(super) fn stop_caller_playback(&mut self, key: u64, forget: bool) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if !call.a.media_open {
            return;
        }
        if forget {
            call.exec_media.playing = None;
        }
        let (session, leg) = (call.session, call.a.id);
        self.media(MediaCommand::StopPlay { session, leg });
    }

    /// The caller of call `key` hung up or cancelled: the playback stops,
    /// the application it waited in finishes (`HANGUP`) and the execution
    /// runs its `h` extension, whose channel-less commands are carried out.
    pub(super) fn execution_caller_gone(&mut self, now: Instant, key: u64) {
        if self
            .calls
            .calls
            .get(&key)
            .is_some_and(|c| c.exec_media.playing.is_some())
        {
            self.stop_caller_playback(key, true);
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(exec) = call.exec.as_mut().filter(|e| !e.is_finished()) else {
            return;
        };
        exec.handle_caller_hangup(now);
        self.execution_resumed(key);
        self.drain_channelless(now, key);
    }
}

/// Running the execution's commands.
impl Switch {
    /// Runs dialplan commands until it waits for something; the
    /// application it left and the one it waits in are reported and its
    /// timer armed ([`execution`]).
    pub(super) fn run_dialplan(&mut self, now: Instant, now_ms: u64, key: u64) {
        self.execution_resumed(key);
        self.run_dialplan_commands(now, now_ms, key);
        self.execution_blocked(key);
    }

    pub(super) fn run_dialplan_commands(&mut self, now: Instant, now_ms: u64, key: u64) {
        loop {
            let Some(call) = self.calls.live(key) else {
                return;
            };
            let Some(exec) = call.exec.as_mut() else {
                return;
            };
            if let Some(ev) = exec.poll_event() {
                match ev {
                    PlanEvent::Finished { cause } => {
                        // A Hangup step ends the plan with its command
                        // queued behind this event (after any channel-less
                        // ones, e.g. the `h` extension's).
                        self.drain_channelless(now, key);
                        self.end_call(now, now_ms, key, cause.code());
                        return;
                    }
                    PlanEvent::NoRoute { context, exten } => {
                        info!(call = key, context = %context, exten = %exten, "dialplan: no route");
                        self.end_call(now, now_ms, key, 1);
                        return;
                    }
                    PlanEvent::TrunkRefused { context, trunk } => {
                        warn!(call = key, context = %context, trunk = %trunk, "toll-fraud protection: trunk not allowed from this context");
                        continue;
                    }
                    PlanEvent::Failed(e) => {
                        warn!(call = key, error = %e, "dialplan failed");
                        self.end_call(now, now_ms, key, 41);
                        return;
                    }
                }
            }
            let Some((cmd, step)) = exec.poll_command_step() else {
                // The execution keeps its own timer (Wait, WaitExten, Read):
                // armed by `execution_blocked`.
                return;
            };
            match cmd {
                // The Answer application answers the call: its time is
                // the CDR's answer time (ANSWERED, billsec from here).
                Command::Answer => {
                    self.emit_app_started(key, "Answer", step);
                    self.answer_a(now, key, Some(now_ms));
                    self.emit_app_finished(key, "Answer", "OK");
                }
                Command::SetCallerId(cid) => {
                    call.caller_num = cid.num;
                    call.caller_name = cid.name;
                }
                Command::Hangup { cause } => {
                    self.emit_app_started(key, "Hangup", step);
                    self.end_call(now, now_ms, key, cause.code());
                    return;
                }
                Command::Dial {
                    targets,
                    timeout,
                    caller_id,
                } => {
                    call.caller_num = caller_id.num.clone();
                    call.caller_name = caller_id.name.clone();
                    self.emit_app_started(key, "Dial", step);
                    let (started, callee_busy) = self.dial(now, now_ms, key, &targets);
                    if started == 0 {
                        // A callee at its call limit reads as busy.
                        let status = if callee_busy {
                            DialStatus::Busy
                        } else {
                            DialStatus::ChanUnavail
                        };
                        if let Some(exec) =
                            self.calls.calls.get_mut(&key).and_then(|c| c.exec.as_mut())
                        {
                            exec.handle_dial_result(now, status);
                        }
                        self.dial_returned(key, status);
                        continue;
                    }
                    if let Some(call) = self.calls.calls.get_mut(&key) {
                        call.dial_open = true;
                        call.state = CallState::Dialing;
                        if let Some(t) = timeout {
                            call.dial_deadline = Some(now + t);
                            self.calls.schedule(now + t, Timer::Call(key));
                        }
                    }
                    return;
                }
                // The applications of the caller's channel alone (IVR).
                other => {
                    if self.run_app(now, key, other, step) == apps::Flow::Wait {
                        return;
                    }
                }
            }
        }
    }
}
