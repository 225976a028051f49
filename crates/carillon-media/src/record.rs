//! Recording taps: `Record` / `StopRecord` / `RecordingDone` of
//! `carillon-mediactl`, on top of `carillon-recorder`.
//!
//! Owns every running recording of one worker: which legs each one taps
//! (one leg's received audio for [`RecordMix::Leg`], both directions of a
//! bridged pair for `Mono` and `Stereo`, the caller left and the callee
//! right), the decoding of each tapped packet to linear PCM, the recording
//! clock, the end conditions (`max_duration`, `max_silence` by an energy
//! threshold) and the [`MediaEvent::RecordingDone`] it ends with. It does
//! not own the WAV file or its thread (`carillon_recorder::Recording`: a
//! bounded channel to a writer thread; a full channel drops the frame and
//! counts it, the audio path never waits) nor the decision which flows the
//! kernel forwards (the engine asks [`Recorders::taps`]: a tapped flow stays
//! in userspace).
//!
//! The recording clock is media time: the engine feeds each received
//! frame with its arrival instant, and its timer calls [`Recorders::tick`]
//! every [`TICK`] while a recording runs, so a silent party, a party on
//! hold or one that sends nothing still yields a file whose length is the
//! wall-clock length of the recording (the gaps are silence). The ticks of
//! all recordings of a worker fall on one grid (multiples of [`TICK`] from
//! the first recording's start), so a thousand recordings cost the worker
//! one timer wake-up per tick, not a thousand.
//!
//! Frames are decoded on arrival but handed to the recording (its mixdown
//! and writer channel) on the tick, with their arrival instants, so the
//! file is the same as if they were handed over one by one, while the
//! writer thread is woken once per tick with about five blocks instead of
//! once per 20 ms block (the wake-up, a futex system call, was the larger
//! part of a recording's cost on the relay thread). The blocks a tick
//! completes are held ([`Recording::hold_frame`]) and sent in one burst at
//! its end: sent as each was completed, the writer (awake on the other
//! core) took them one by one and was woken for nearly every block.
//!
//! ```text
//!  Record ──► running ──frames (tapped legs), tick──► running
//!               │ StopRecord / a tapped leg closed ──► RecordingDone{Stopped}
//!               │ max_duration reached ─────────────► RecordingDone{MaxDuration}
//!               │ max_silence of quiet (Leg mix) ───► RecordingDone{Silence}
//!               └ the writer failed ────────────────► RecordingDone{Failed}
//! ```
//!
//! Stopping finalises the file on the calling thread (it waits for the
//! writer thread to drain at most its channel, one second of audio by
//! default, and rewrite the header).

use carillon_codec::Codec;
use carillon_mediactl::{LegId, MediaEvent, RecordMix, RecordingEnd, RecordingId, SessionId};
use carillon_recorder::{Layout, RecorderOptions, Recording, Source};
// Keys are switch-chosen ids, so a fast non-keyed hash is safe here.
use foldhash::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a running recording's clock is advanced without packets.
pub const TICK: Duration = Duration::from_millis(100);

/// Mean square (of 16-bit samples) above which a frame counts as sound for
/// `max_silence`: an RMS of 256, about −42 dBFS (G.711 idle noise and
/// comfort-noise levels stay well below it; speech is far above).
pub const SILENCE_MEAN_SQUARE: i64 = 256 * 256;

/// Largest frame decoded at once (60 ms at 8 kHz); longer payloads are fed
/// in pieces.
const MAX_FRAME: usize = 480;

/// Decoded samples held for a recording before they are handed over even
/// without a tick (a bound, should the timer be late).
const MAX_PENDING: usize = 4000;

/// Why a `Record` command was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("recording {recording:?} is already running")]
    Exists { recording: RecordingId },
    #[error("recording {recording:?} is not running")]
    Unknown { recording: RecordingId },
    #[error("a recording cannot tap leg {leg:?} as both parties")]
    SameLeg { leg: LegId },
    #[error("cannot create the directory of {path}: {reason}")]
    Directory { path: PathBuf, reason: String },
    #[error(transparent)]
    Recorder(#[from] carillon_recorder::RecorderError),
}

/// One running recording.
#[derive(Debug)]
struct Running {
    mix: RecordMix,
    path: PathBuf,
    recording: Recording,
    max_silence: Option<Duration>,
    max_duration: Option<Duration>,
    started: Instant,
    last_sound: Instant,
    next_tick: Instant,
    /// Frames decoded since the last tick: (arrival, party, length).
    pending: Vec<(Instant, Source, usize)>,
    /// Their samples, in order.
    pending_samples: Vec<i16>,
}

impl Running {
    /// Hands the frames received since the last tick to the recording's
    /// mixdown; the blocks they complete are held until the caller sends
    /// them (`handle_timeout`, `send_held`, `stop`) in one burst, so the
    /// writer thread wakes once per tick, not once per block.
    fn flush(&mut self) {
        let mut at = 0;
        for &(now, source, len) in &self.pending {
            if let Some(frame) = self.pending_samples.get(at..at + len) {
                self.recording.hold_frame(now, source, frame);
            }
            at += len;
        }
        self.pending.clear();
        self.pending_samples.clear();
    }

    /// Which party `leg`'s received audio is, if this recording taps it.
    fn source_of(&self, leg: LegId) -> Option<Source> {
        match self.mix {
            RecordMix::Leg(l) if l == leg => Some(Source::Caller),
            RecordMix::Mono { caller, callee } | RecordMix::Stereo { caller, callee } => {
                if caller == leg {
                    Some(Source::Caller)
                } else if callee == leg {
                    Some(Source::Agent)
                } else {
                    None
                }
            }
            RecordMix::Leg(_) => None,
        }
    }

    fn due_end(&self, now: Instant) -> Option<RecordingEnd> {
        if self
            .max_duration
            .is_some_and(|d| now.saturating_duration_since(self.started) >= d)
        {
            return Some(RecordingEnd::MaxDuration);
        }
        if self
            .max_silence
            .is_some_and(|d| now.saturating_duration_since(self.last_sound) >= d)
        {
            return Some(RecordingEnd::Silence);
        }
        None
    }

    fn deadline(&self) -> Instant {
        let mut at = self.next_tick;
        if let Some(d) = self.max_duration {
            at = at.min(self.started + d);
        }
        if let Some(d) = self.max_silence {
            at = at.min(self.last_sound + d);
        }
        at
    }
}

/// The legs a mix taps.
pub fn legs_of(mix: RecordMix) -> Vec<LegId> {
    match mix {
        RecordMix::Leg(leg) => vec![leg],
        RecordMix::Mono { caller, callee } | RecordMix::Stereo { caller, callee } => {
            vec![caller, callee]
        }
    }
}

/// Every running recording of a worker. See the module documentation.
#[derive(Debug, Default)]
pub struct Recorders {
    running: HashMap<(SessionId, RecordingId), Running>,
    /// Recordings tapping each leg (so a packet finds its recordings
    /// without a scan of the worker's).
    taps: HashMap<LegId, Vec<(SessionId, RecordingId)>>,
    options: RecorderOptions,
    /// Origin of the tick grid.
    epoch: Option<Instant>,
}

impl Recorders {
    /// No recordings; new ones use `options` (channel capacity, latency).
    pub fn new(options: RecorderOptions) -> Self {
        Recorders {
            running: HashMap::default(),
            taps: HashMap::default(),
            options,
            epoch: None,
        }
    }

    /// Options of the recordings started from now on.
    pub fn set_options(&mut self, options: RecorderOptions) {
        self.options = options;
    }

    /// The options new recordings get (mix recordings use them too).
    pub fn options(&self) -> RecorderOptions {
        self.options
    }

    /// How many recordings tap `leg`'s received audio.
    pub fn taps(&self, leg: LegId) -> usize {
        if self.running.is_empty() {
            return 0;
        }
        self.taps.get(&leg).map_or(0, Vec::len)
    }

    /// Whether any recording runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Starts a recording to a new WAV file at `path` (its directories are
    /// created). The caller checked that the legs belong to the session.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        now: Instant,
        session: SessionId,
        id: RecordingId,
        mix: RecordMix,
        path: &Path,
        max_silence: Option<Duration>,
        max_duration: Option<Duration>,
    ) -> Result<(), RecordError> {
        self.check(session, id, mix)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| RecordError::Directory {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let recording = Recording::start(path, layout_of(mix), now, self.options)?;
        self.insert(
            now,
            session,
            id,
            mix,
            path,
            recording,
            (max_silence, max_duration),
        );
        Ok(())
    }

    fn check(
        &self,
        session: SessionId,
        id: RecordingId,
        mix: RecordMix,
    ) -> Result<(), RecordError> {
        if self.running.contains_key(&(session, id)) {
            return Err(RecordError::Exists { recording: id });
        }
        match mix {
            RecordMix::Mono { caller, callee } | RecordMix::Stereo { caller, callee }
                if caller == callee =>
            {
                Err(RecordError::SameLeg { leg: caller })
            }
            _ => Ok(()),
        }
    }

    /// Adds a recording already started (on any sink).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        now: Instant,
        session: SessionId,
        id: RecordingId,
        mix: RecordMix,
        path: &Path,
        recording: Recording,
        (max_silence, max_duration): (Option<Duration>, Option<Duration>),
    ) {
        for leg in legs_of(mix) {
            self.taps.entry(leg).or_default().push((session, id));
        }
        let next_tick = grid_after(*self.epoch.get_or_insert(now), now);
        self.running.insert(
            (session, id),
            Running {
                mix,
                path: path.to_path_buf(),
                recording,
                max_silence,
                max_duration,
                started: now,
                last_sound: now,
                next_tick,
                pending: Vec::with_capacity(16),
                pending_samples: Vec::with_capacity(2 * 800),
            },
        );
    }

    /// A G.711 audio payload received on `leg` at `now` (before any
    /// transcoding for the bridged leg).
    pub fn handle_audio(&mut self, now: Instant, leg: LegId, codec: Codec, payload: &[u8]) {
        let Some(keys) = self.taps.get(&leg) else {
            return;
        };
        for key in keys {
            let Some(rec) = self.running.get_mut(key) else {
                continue;
            };
            let Some(source) = rec.source_of(leg) else {
                continue;
            };
            let mut loud = false;
            for chunk in payload.chunks(MAX_FRAME) {
                let from = rec.pending_samples.len();
                rec.pending_samples
                    .extend(chunk.iter().map(|&code| codec.decode_sample(code)));
                rec.pending.push((now, source, chunk.len()));
                if rec.max_silence.is_some() {
                    let frame = rec.pending_samples.get(from..).unwrap_or_default();
                    let energy: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
                    loud |= energy > SILENCE_MEAN_SQUARE * chunk.len() as i64;
                }
            }
            if loud {
                rec.last_sound = now;
            }
            if rec.pending_samples.len() >= MAX_PENDING {
                rec.flush();
                rec.recording.send_held();
            }
        }
    }

    /// Advances every recording's clock to `now` and ends those whose
    /// `max_duration` or `max_silence` is reached.
    pub fn tick(&mut self, now: Instant, events: &mut impl Extend<MediaEvent>) {
        let epoch = *self.epoch.get_or_insert(now);
        let mut ended = Vec::new();
        for (key, rec) in self.running.iter_mut() {
            if let Some(end) = rec.due_end(now) {
                ended.push((*key, end));
                continue;
            }
            if rec.next_tick <= now {
                rec.flush();
                rec.recording.handle_timeout(now);
                rec.next_tick = grid_after(epoch, now);
            }
        }
        for ((session, id), end) in ended {
            let at = self.end_instant(session, id, now, &end);
            if let Some(event) = self.stop(at, session, id, end) {
                events.extend([event]);
            }
        }
    }

    /// Where a recording ending for `end` at `now` really ends (a
    /// `max_duration` recording is exactly that long).
    fn end_instant(
        &self,
        session: SessionId,
        id: RecordingId,
        now: Instant,
        end: &RecordingEnd,
    ) -> Instant {
        match (self.running.get(&(session, id)), end) {
            (Some(rec), RecordingEnd::MaxDuration) => {
                rec.max_duration.map_or(now, |d| now.min(rec.started + d))
            }
            _ => now,
        }
    }

    /// The earliest instant a recording needs [`Recorders::tick`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.running.values().map(Running::deadline).min()
    }

    /// Stops a recording: its file is finalised; the event says how it went.
    pub fn stop(
        &mut self,
        now: Instant,
        session: SessionId,
        id: RecordingId,
        end: RecordingEnd,
    ) -> Option<MediaEvent> {
        let mut rec = self.running.remove(&(session, id))?;
        rec.flush();
        for leg in legs_of(rec.mix) {
            if let Some(keys) = self.taps.get_mut(&leg) {
                keys.retain(|k| *k != (session, id));
                if keys.is_empty() {
                    self.taps.remove(&leg);
                }
            }
        }
        let dropped = rec.recording.frames_dropped();
        let event = match rec.recording.stop(now) {
            Ok(summary) => MediaEvent::RecordingDone {
                session,
                recording: id,
                path: rec.path,
                end,
                duration_ms: summary.duration.as_millis() as u64,
                frames_lost: summary.frames_dropped,
            },
            Err(e) => MediaEvent::RecordingDone {
                session,
                recording: id,
                path: rec.path,
                end: RecordingEnd::Failed(e.to_string()),
                duration_ms: 0,
                frames_lost: dropped,
            },
        };
        Some(event)
    }

    /// Stops every recording of `session` that taps `leg` (the leg closes).
    pub fn stop_leg(&mut self, now: Instant, session: SessionId, leg: LegId) -> Vec<MediaEvent> {
        let ids: Vec<RecordingId> = self
            .taps
            .get(&leg)
            .into_iter()
            .flatten()
            .filter(|(s, _)| *s == session)
            .map(|(_, id)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.stop(now, session, id, RecordingEnd::Stopped))
            .collect()
    }
}

/// The first instant of the tick grid from `epoch` after `now`.
fn grid_after(epoch: Instant, now: Instant) -> Instant {
    let tick = TICK.as_nanos();
    let ticks = now.saturating_duration_since(epoch).as_nanos() / tick + 1;
    epoch + Duration::from_nanos((ticks * tick).min(u128::from(u64::MAX)) as u64)
}

/// The file layout of a mix: stereo only for [`RecordMix::Stereo`].
pub fn layout_of(mix: RecordMix) -> Layout {
    match mix {
        RecordMix::Stereo { .. } => Layout::Stereo,
        RecordMix::Leg(_) | RecordMix::Mono { .. } => Layout::Mono,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_recorder::{BlockSink, RecorderError};
    use std::sync::mpsc;

    const S: SessionId = SessionId(1);
    const A: LegId = LegId(1);

    /// A sink that writes nothing until the test lets it go.
    struct Blocked(mpsc::Receiver<()>);

    impl BlockSink for Blocked {
        fn write_block(&mut self, _: &[i16]) -> Result<(), RecorderError> {
            let _ = self.0.recv();
            Ok(())
        }
        fn finish(self) -> Result<(), RecorderError> {
            Ok(())
        }
    }

    #[test]
    fn frames_the_writer_cannot_take_are_counted_as_lost_and_the_audio_goes_on() {
        let t0 = Instant::now();
        let (release, rx) = mpsc::channel();
        let options = RecorderOptions {
            capacity: 1,
            ..RecorderOptions::default()
        };
        let recording = Recording::spawn(Blocked(rx), Layout::Mono, t0, options).unwrap();
        let mut r = Recorders::new(options);
        r.insert(
            t0,
            S,
            RecordingId(1),
            RecordMix::Leg(A),
            Path::new("blocked.wav"),
            recording,
            (None, None),
        );
        // 2 s of audio while the writer takes nothing: it holds one block
        // in hand and one in the channel; the rest cannot wait.
        for i in 1..=100u64 {
            let at = t0 + Duration::from_millis(20 * i);
            r.handle_audio(at, A, Codec::Pcmu, &[0x7F; 160]);
        }
        for _ in 0..200 {
            let _ = release.send(());
        }
        let end = t0 + Duration::from_secs(2);
        let Some(MediaEvent::RecordingDone {
            frames_lost,
            duration_ms,
            end: how,
            ..
        }) = r.stop(end, S, RecordingId(1), RecordingEnd::Stopped)
        else {
            panic!("no RecordingDone");
        };
        assert_eq!(how, RecordingEnd::Stopped);
        assert!(frames_lost >= 80, "lost {frames_lost}");
        assert_eq!(duration_ms, 2000, "lost frames are silence in the file");
        assert_eq!(r.taps(A), 0);
    }

    #[test]
    fn a_pair_cannot_be_recorded_with_the_same_leg_twice() {
        let mut r = Recorders::default();
        let dir = std::env::temp_dir();
        let err = r
            .start(
                Instant::now(),
                S,
                RecordingId(1),
                RecordMix::Stereo {
                    caller: A,
                    callee: A,
                },
                &dir.join("never.wav"),
                None,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, RecordError::SameLeg { leg } if leg == A));
    }
}
