//! Recording in calls: MixMonitor (the call's caller and whoever it is
//! bridged to, one mono file or stereo with the caller left and the
//! callee right, `options = "D"`), the Record application (the caller's
//! audio alone, `RecordMix::Leg`, ended by silence, its duration limit,
//! a digit or a hangup: `RECORD_STATUS`), the MixMonitor path written to
//! the CDR's `recording`, and the media plane's `RecordingDone` turned
//! into a log line, a `recording_finished` switch event and, for Record,
//! the execution's `handle_record_done`.
//!
//! ```text
//!  Off ──MixMonitor──► Armed{path} ──caller bridged──► Running{id, path}
//!  Armed/Running ──StopMixMonitor──► Off   (Running: StopRecord)
//!  Running ──bridge ends──► Off            (StopRecord before the leg closes)
//!  Running ──call ends──► StopRecord, then CloseSession
//! ```
//!
//! What is recorded: the bridged conversation. MixMonitor usually runs
//! before `Dial` (recording notice, MixMonitor, Dial); the switch then
//! arms it and starts the recording when the caller is bridged, since the
//! media plane's two-party mix ([`RecordMix::Mono`]/[`RecordMix::Stereo`])
//! needs both legs. Unlike Asterisk (which records from MixMonitor's start),
//! the prompts and ringback the caller hears before the answer are not in
//! the file, and its duration is the bridged time. One recording per
//! MixMonitor: a second bridge after a `Dial` that continued is not
//! recorded again unless MixMonitor runs again.
//!
//! Record: `MediaCommand::Record` of the caller's leg with the step's
//! `max_silence`/`max_duration` (and a 250 ms 1 kHz beep played to the
//! caller first when asked); a digit makes the interpreter queue
//! `StopRecord` (→ `DTMF`); the media plane's end maps to `RECORD_STATUS`:
//! silence → `SILENCE`, duration → `TIMEOUT`, a leg closed → `HANGUP`,
//! a write failure → `ERROR`.
//!
//! File name: `DIR/UNIQUEID.wav` from [`carillon_recorder::recording_path`]
//! under `CallConfig::recording_dir` (`[recording] dir`), or MixMonitor's
//! `file` (relative to that directory unless absolute). Writing the WAV
//! (bounded channel, writer thread, frames lost counted) is the media
//! plane's; this module owns only the per-call state and the commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carillon_dialplan::{RecordOutcome, RecordStatus};
use carillon_events::{RecordingMix, SwitchEvent};
use carillon_mediactl::{
    LegId, MediaCommand, PlayItem, RecordMix, RecordingEnd, RecordingId, SessionId, ToneSegment,
    ToneSpec,
};
use tracing::{debug, info, warn};

use super::apps::Flow;
use crate::switch::Switch;

/// MixMonitor's state in one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum MixMonitor {
    #[default]
    Off,
    /// Started before the bridge: records once the caller is bridged.
    Armed { path: PathBuf, stereo: bool },
    /// Recording the bridge.
    Running { id: RecordingId },
}

/// A recording the media plane has not reported done yet (kept after
/// its call ended: `RecordingDone` comes after `CloseSession`).
#[derive(Debug, Clone)]
pub(super) struct Pending {
    call: u64,
    channel: String,
    linkedid: String,
    /// The Record application's (its end is fed to the execution), not
    /// MixMonitor's.
    record_app: bool,
}

/// The file MixMonitor writes for call `uniqueid`: `file` when given
/// (relative to `dir` unless absolute), else `DIR/UNIQUEID.wav`.
pub(super) fn mixmonitor_path(
    dir: &Path,
    uniqueid: &str,
    file: Option<&str>,
) -> Result<PathBuf, carillon_recorder::RecorderError> {
    match file.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => {
            let p = Path::new(f);
            Ok(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            })
        }
        None => carillon_recorder::recording_path(dir, uniqueid),
    }
}

fn event_end(end: &RecordingEnd) -> carillon_events::RecordingEnd {
    match end {
        RecordingEnd::Stopped => carillon_events::RecordingEnd::Stopped,
        RecordingEnd::Silence => carillon_events::RecordingEnd::Silence,
        RecordingEnd::MaxDuration => carillon_events::RecordingEnd::MaxDuration,
        RecordingEnd::Failed(_) => carillon_events::RecordingEnd::Failed,
    }
}

impl Switch {
    /// MixMonitor on call `key`: arms the recording (to `file`, or the
    /// call's unique id under the recording directory), and starts it at
    /// once if the caller is already bridged. Returns the path, or why
    /// there is none (the call is gone, or its id cannot name a file).
    pub(super) fn mixmonitor_start(
        &mut self,
        key: u64,
        file: Option<&str>,
        stereo: bool,
    ) -> Result<PathBuf, String> {
        let dir = self.calls.config.recording_dir.clone();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return Err("no such call".into());
        };
        if let MixMonitor::Running { .. } = call.mixmonitor {
            return Err("MixMonitor already recording this call".into());
        }
        let path = mixmonitor_path(&dir, &call.uniqueid, file).map_err(|e| e.to_string())?;
        info!(call = key, file = %path.display(), stereo, "MixMonitor armed");
        call.mixmonitor = MixMonitor::Armed {
            path: path.clone(),
            stereo,
        };
        self.mixmonitor_bridged(key);
        Ok(path)
    }

    /// The caller of call `key` is bridged: an armed MixMonitor starts
    /// recording the caller and the bridged leg.
    pub(super) fn mixmonitor_bridged(&mut self, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let (MixMonitor::Armed { .. }, Some(callee)) = (&call.mixmonitor, call.bridged()) else {
            return;
        };
        let MixMonitor::Armed { path, stereo } = std::mem::take(&mut call.mixmonitor) else {
            return;
        };
        let id = RecordingId(self.calls.next_id());
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let caller = call.a.id;
        let (mix, event_mix) = if stereo {
            (RecordMix::Stereo { caller, callee }, RecordingMix::Stereo)
        } else {
            (RecordMix::Mono { caller, callee }, RecordingMix::Mono)
        };
        call.mixmonitor = MixMonitor::Running { id };
        let shown = path.display().to_string();
        call.recording = Some(shown.clone());
        let session = call.session;
        let pending = Pending {
            call: key,
            channel: call.a.channel.clone(),
            linkedid: call.uniqueid.clone(),
            record_app: false,
        };
        self.calls.recordings.insert((session, id), pending);
        info!(call = key, recording = id.0, file = %shown, stereo, "recording started");
        self.media(MediaCommand::Record {
            session,
            recording: id,
            mix,
            path,
            max_silence: None,
            max_duration: None,
        });
        self.emit_recording_started(key, &shown, event_mix);
    }

    /// StopMixMonitor on call `key` (or the call ending): a running
    /// recording is stopped and finalised, an armed one dropped.
    pub(super) fn mixmonitor_stop(&mut self, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        match std::mem::take(&mut call.mixmonitor) {
            MixMonitor::Running { id } => {
                let session = call.session;
                info!(call = key, recording = id.0, "recording stopped");
                self.media(MediaCommand::StopRecord {
                    session,
                    recording: id,
                });
            }
            MixMonitor::Armed { .. } => info!(call = key, "MixMonitor disarmed before the bridge"),
            MixMonitor::Off => {}
        }
    }

    /// The bridge of call `key` ended (its other leg `_gone` left, before
    /// its media leg closes): a running recording is stopped, so the file
    /// is finalised with the conversation; it stays the CDR's recording.
    pub(super) fn mixmonitor_bridge_ended(&mut self, key: u64, _gone: LegId) {
        if self
            .calls
            .calls
            .get(&key)
            .is_some_and(|c| matches!(c.mixmonitor, MixMonitor::Running { .. }))
        {
            self.mixmonitor_stop(key);
        }
    }

    /// The media plane finalised a recording: logged, and a
    /// `recording_finished` event (also for a call already ended).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn recording_done(
        &mut self,
        now: Instant,
        now_ms: u64,
        session: SessionId,
        recording: RecordingId,
        path: &Path,
        end: &RecordingEnd,
        duration_ms: u64,
        frames_lost: u64,
    ) {
        let Some(pending) = self.calls.recordings.remove(&(session, recording)) else {
            warn!(
                session = session.0,
                recording = recording.0,
                "recording done of no known recording"
            );
            return;
        };
        if let Some(call) = self.calls.calls.get_mut(&pending.call) {
            if call.mixmonitor == (MixMonitor::Running { id: recording }) {
                call.mixmonitor = MixMonitor::Off;
            }
            if call.record_app == Some(recording) {
                call.record_app = None;
            }
        }
        match end {
            RecordingEnd::Failed(reason) => warn!(
                call = pending.call,
                file = %path.display(),
                reason = %reason,
                duration_ms,
                "recording failed"
            ),
            _ => info!(
                call = pending.call,
                file = %path.display(),
                end = ?end,
                duration_ms,
                frames_lost,
                "recording finished"
            ),
        }
        let names = (pending.channel.clone(), pending.linkedid.clone());
        self.emit_detached(SwitchEvent::RecordingFinished {
            channel: pending.channel,
            linkedid: pending.linkedid,
            path: path.display().to_string(),
            end: event_end(end),
            duration_ms,
            frames_lost,
        });
        if pending.record_app {
            self.voicemail_recording_done(
                pending.call,
                names.0,
                names.1,
                path,
                matches!(end, RecordingEnd::Failed(_)),
                duration_ms,
            );
            self.record_app_done(now, now_ms, pending.call, end, duration_ms);
        }
    }

    /// The Record application on call `key`: records the caller's audio
    /// to `path` (relative to the recording directory unless absolute);
    /// the execution waits for its end. Without a media leg it ends at
    /// once with `ERROR`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_app_start(
        &mut self,
        now: Instant,
        key: u64,
        path: &Path,
        max_silence: Option<Duration>,
        max_duration: Option<Duration>,
        beep: bool,
    ) -> Flow {
        let dir = self.calls.config.recording_dir.clone();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return Flow::Wait;
        };
        if !call.a.media_open || call.record_app.is_some() {
            warn!(
                call = key,
                "Record: the caller has no media leg (or records already): RECORD_STATUS=ERROR"
            );
            if let Some(exec) = call.exec.as_mut() {
                exec.handle_record_done(
                    now,
                    RecordOutcome {
                        status: RecordStatus::Error,
                        duration_ms: None,
                    },
                );
            }
            return Flow::Next;
        }
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        let (session, leg) = (call.session, call.a.id);
        let id = RecordingId(self.calls.next_id());
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return Flow::Wait;
        };
        call.record_app = Some(id);
        let pending = Pending {
            call: key,
            channel: call.a.channel.clone(),
            linkedid: call.uniqueid.clone(),
            record_app: true,
        };
        let playback = beep.then(|| call.exec_media.new_playback());
        self.calls.recordings.insert((session, id), pending);
        if let Some(playback) = playback {
            self.media(MediaCommand::Play {
                session,
                leg,
                playback,
                items: vec![PlayItem::Tone {
                    tone: Arc::new(beep_tone()),
                    duration: Some(BEEP),
                }],
            });
        }
        let shown = path.display().to_string();
        info!(call = key, recording = id.0, file = %shown, ?max_silence, ?max_duration, "Record started");
        self.media(MediaCommand::Record {
            session,
            recording: id,
            mix: RecordMix::Leg(leg),
            path,
            max_silence,
            max_duration,
        });
        self.emit_recording_started(key, &shown, RecordingMix::Leg);
        Flow::Wait
    }

    /// StopRecord (a digit ended the Record application, or the call
    /// ends): the media plane finalises the file and reports it done.
    pub(super) fn record_app_stop(&mut self, key: u64) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let Some(id) = call.record_app else {
            debug!(call = key, "StopRecord without a Record running");
            return;
        };
        let session = call.session;
        self.media(MediaCommand::StopRecord {
            session,
            recording: id,
        });
    }

    /// The Record application's file is done: `RECORD_STATUS` and the
    /// execution goes on (unless the call has ended).
    fn record_app_done(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        end: &RecordingEnd,
        duration_ms: u64,
    ) {
        let Some(call) = self.calls.live(key) else {
            return;
        };
        let status = match end {
            // A digit's StopRecord reads as DTMF in the interpreter; any
            // other stop is a leg of it closing: the caller hung up.
            RecordingEnd::Stopped => RecordStatus::Hangup,
            RecordingEnd::Silence => RecordStatus::Silence,
            RecordingEnd::MaxDuration => RecordStatus::Timeout,
            RecordingEnd::Failed(_) => RecordStatus::Error,
        };
        let Some(exec) = call.exec.as_mut() else {
            return;
        };
        exec.handle_record_done(
            now,
            RecordOutcome {
                status,
                duration_ms: Some(duration_ms),
            },
        );
        self.run_dialplan(now, now_ms, key);
    }

    /// Stops what records call `key` as it ends (MixMonitor, Record), so
    /// the files are finalised before its media session closes.
    pub(super) fn recordings_call_ending(&mut self, key: u64) {
        self.mixmonitor_stop(key);
        self.record_app_stop(key);
    }

    /// Recordings the media plane has not finalised yet.
    pub fn recordings_pending(&self) -> usize {
        self.calls.recordings.len()
    }
}

/// The Record application's beep: 250 ms of 1 kHz.
const BEEP: Duration = Duration::from_millis(250);

fn beep_tone() -> ToneSpec {
    ToneSpec {
        segments: vec![ToneSegment {
            freqs: [Some(1000), None],
            level_dbm0: -13,
            duration: BEEP,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_is_the_unique_id_under_the_directory_and_a_given_one_is_relative_to_it() {
        let dir = Path::new("var/recordings");
        assert_eq!(
            mixmonitor_path(dir, "1800000000.7-0badcafe", None).unwrap(),
            Path::new("var/recordings/1800000000.7-0badcafe.wav")
        );
        assert_eq!(
            mixmonitor_path(dir, "u", Some("sales/call.wav")).unwrap(),
            Path::new("var/recordings/sales/call.wav")
        );
        assert_eq!(
            mixmonitor_path(dir, "u", Some("/srv/rec/x.wav")).unwrap(),
            Path::new("/srv/rec/x.wav")
        );
        assert_eq!(
            mixmonitor_path(dir, "u", Some("  ")).unwrap(),
            Path::new("var/recordings/u.wav"),
            "an empty file option is the default name"
        );
        assert!(mixmonitor_path(dir, "../etc/passwd", None).is_err());
    }
}
