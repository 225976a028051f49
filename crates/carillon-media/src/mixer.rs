//! The mixer: a leg's output when it is a member of a mix
//! (`carillon-mediactl`'s `CreateMix`, `AddToMix`, `SetMixRole`,
//! `SetMixVolume`, `RemoveFromMix`, `DestroyMix`). Conferences and the
//! supervisor modes (listen, whisper, barge) are configurations of this one
//! mixer ([`MixRole`]), not separate mixers.
//!
//! Owns: every mix of one worker and its members (which leg slot, role,
//! volume), each member's input buffer (its received audio decoded to
//! linear PCM), the mixing round on the worker's own 20 ms grid, and each
//! member's generated output stream (its own SSRC, sequence numbers and
//! timestamps, mapped onto the leg's output by the leg's rewriter like a
//! player's, see [`crate::output`]). It does not own the legs (the engine
//! hands them in), the relay or the kernel flows (the engine keeps a
//! member's flows out of the kernel, [`crate::engine`]'s `mixing` hooks).
//!
//! ## Input: a small jitter-tolerant buffer per member
//!
//! Each received audio packet of a member (PCMU or PCMA, any ptime) is
//! decoded and appended to the member's buffer. The round takes
//! [`TICK_SAMPLES`] from it once the buffer is *primed* (it holds one
//! packet's worth, plus one tick when the packet length is not a multiple
//! of the tick, e.g. 30 ms). A buffer that runs short gives what it has
//! padded with silence and primes again, so a late or lost packet is
//! silence, never a stall, and the delay adapts to jitter; a buffer over
//! its bound (prime + two ticks) drops its oldest samples, so the delay
//! stays bounded.
//!
//! ```text
//!  empty ──packets──► priming ──≥ prime at a round──► primed ──round: take 160──► primed
//!                        ▲                              │ fewer than 160: pad with silence
//!                        └──────────────────────────────┘
//! ```
//!
//! ## The round (every [`TICK`])
//!
//! For a mix of `n` members, each member's 160 input samples are scaled by
//! its talk volume; `total` is the sum of those that speak to all. A member
//! that hears gets `total` minus its own voice (when it speaks to all) plus
//! the voices whispered to it, scaled by its listen volume, saturated to 16
//! bits, encoded in its codec and sent in packets of its ptime. A mix with a
//! single member sends nothing (the switch plays music to a lone member).
//! Members on hold, hearing nothing, or whose leg is playing a prompt or
//! sending a digit get no packet, but their stream's timestamps advance.
//! A late round catches up at most [`MAX_CATCH_UP`] rounds; older ones are
//! skipped (input consumed, nothing sent), so a stalled worker never bursts.
//!
//! ## Recording a mix
//!
//! `RecordMixer` taps the mix's output: each round's sum of the voices
//! spoken to all (saturated; whispers are private and not in it) goes to a
//! mono `carillon_recorder::Recording` (bounded channel, writer thread,
//! frames dropped and counted rather than waited for), stamped with the
//! round's due time. It ends with `StopRecord`, `DestroyMix` or its
//! `max_duration`, each with `RecordingDone`; stopping finalises the file
//! on the worker thread, like the leg recordings of [`crate::record`].
//!
//! ## Cost (`benches/README.md` §9)
//!
//! A round is O(members): one sum per room, then one subtraction,
//! encoding and packet per member (a whisper adds one pass per
//! whisperer). `cargo bench -p carillon-media --bench mix`: 0.72–0.74 µs
//! per member per 20 ms in the engine (rooms of 3 or 10, decoding the
//! member's packet included), ~27,000 members per core before socket I/O;
//! through the real runtime on loopback (`mix_load` example) ~10 µs per
//! member per 20 ms, ~1,800–2,100 members per core.

use crate::leg::{codec_of, Leg};
use crate::output::{write_generated, GeneratedQueue, GeneratedRtp, WriteOutcome};
use crate::player::frame_time;
use crate::tone::samples_in;
use carillon_mediactl::{
    LegId, MediaEvent, MixId, MixRole, RecordingEnd, RecordingId, SessionId, Speak,
};
use carillon_recorder::{Layout, RecorderOptions, Recording, Source};
use carillon_rtp::Ssrc;
use std::path::{Path, PathBuf};
// Keys are switch-chosen ids and slot numbers: a fast non-keyed hash is fine.
use foldhash::HashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The mixing period.
pub const TICK: Duration = Duration::from_millis(20);
/// Samples per round (20 ms at 8 kHz).
pub const TICK_SAMPLES: usize = 160;
/// Rounds a late tick may still run; older ones are skipped.
pub const MAX_CATCH_UP: u64 = 3;
/// Volume steps accepted (each 3 dB).
pub const VOLUME_STEPS: std::ops::RangeInclusive<i8> = -4..=4;
/// Gain of each volume step from -4 to +4, in 1/256 (3 dB steps).
const GAIN_Q8: [i32; 9] = [64, 91, 128, 181, 256, 362, 511, 721, 1019];
/// The longest packet a member's stream sends (60 ms at 8 kHz).
const MAX_PACKET_SAMPLES: usize = 480;

/// Why a mix command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("mix {mix:?} already exists")]
    Exists { mix: MixId },
    #[error("mix {mix:?} does not exist on this worker")]
    Unknown { mix: MixId },
    #[error("mix {mix:?} belongs to session {owner:?}, not {session:?}")]
    WrongSession {
        mix: MixId,
        owner: SessionId,
        session: SessionId,
    },
    #[error("leg {leg:?} is already a member of mix {mix:?}")]
    AlreadyMember { leg: LegId, mix: MixId },
    #[error("leg {leg:?} is not a member of mix {mix:?}")]
    NotMember { leg: LegId, mix: MixId },
    #[error("mix {mix:?} is already being recorded")]
    Recording { mix: MixId },
}

/// Why a `RecordMixer` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixRecordError {
    #[error(transparent)]
    Mix(#[from] MixError),
    /// The file or its writer could not be created.
    #[error("{0}")]
    Failed(String),
}

/// The gain (1/256) of a volume step, clamped to [`VOLUME_STEPS`].
pub fn gain_of(step: i8) -> i32 {
    let i = step.clamp(*VOLUME_STEPS.start(), *VOLUME_STEPS.end()) + 4;
    GAIN_Q8.get(i as usize).copied().unwrap_or(256)
}

/// A member's received audio, decoded (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct InputBuffer {
    samples: VecDeque<i16>,
    primed: bool,
    /// Samples needed before rounds take from the buffer.
    prime: usize,
    /// Rounds that found the buffer short (silence padded).
    pub underruns: u64,
    /// Samples dropped because the buffer was over its bound.
    pub dropped: u64,
}

impl InputBuffer {
    /// Appends a packet's decoded samples.
    pub fn push(&mut self, samples: impl ExactSizeIterator<Item = i16>) {
        let len = samples.len();
        self.prime = if len.is_multiple_of(TICK_SAMPLES) {
            len.max(TICK_SAMPLES)
        } else {
            len + TICK_SAMPLES
        };
        self.samples.extend(samples);
        let bound = self.prime + 2 * TICK_SAMPLES;
        if self.samples.len() > bound {
            let excess = self.samples.len() - bound;
            self.samples.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Fills `out` with the next round's samples (silence while priming or
    /// where the buffer runs short).
    pub fn take(&mut self, out: &mut [i16]) {
        if !self.primed && self.prime > 0 && self.samples.len() >= self.prime {
            self.primed = true;
        }
        if !self.primed {
            out.fill(0);
            return;
        }
        let n = out.len().min(self.samples.len());
        for (o, s) in out.iter_mut().zip(self.samples.drain(..n)) {
            *o = s;
        }
        if let Some(rest) = out.get_mut(n..) {
            if !rest.is_empty() {
                rest.fill(0);
                self.primed = false;
                self.underruns += 1;
            }
        }
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// A member's generated stream towards its leg.
#[derive(Debug, Clone)]
struct OutputStream {
    ssrc: Ssrc,
    seq: u16,
    /// Timestamp of the first sample of `pending`.
    timestamp: u32,
    first: bool,
    /// Encoded samples not yet sent (less than one packet).
    pending: Vec<u8>,
}

/// One member of a mix.
#[derive(Debug, Clone)]
pub struct Member {
    pub leg: LegId,
    /// The leg's slot in the engine.
    pub slot: usize,
    pub role: MixRole,
    talk_gain: i32,
    listen_gain: i32,
    pub input: InputBuffer,
    out: OutputStream,
    /// Packets sent, and rounds the member could not hear.
    pub packets_sent: u64,
    pub rounds_unheard: u64,
}

/// One mix.
#[derive(Debug)]
pub struct Mix {
    pub session: SessionId,
    pub members: Vec<Member>,
    recording: Option<MixRecording>,
}

/// The recording of a mix's output.
#[derive(Debug)]
struct MixRecording {
    id: RecordingId,
    path: PathBuf,
    recording: Recording,
    started: Instant,
    max_duration: Option<Duration>,
}

impl MixRecording {
    /// Finalises the file; the event says how it went.
    fn stop(self, session: SessionId, now: Instant, end: RecordingEnd) -> MediaEvent {
        let dropped = self.recording.frames_dropped();
        match self.recording.stop(now) {
            Ok(summary) => MediaEvent::RecordingDone {
                session,
                recording: self.id,
                path: self.path,
                end,
                duration_ms: summary.duration.as_millis() as u64,
                frames_lost: summary.frames_dropped,
            },
            Err(e) => MediaEvent::RecordingDone {
                session,
                recording: self.id,
                path: self.path,
                end: RecordingEnd::Failed(e.to_string()),
                duration_ms: 0,
                frames_lost: dropped,
            },
        }
    }
}

/// Working memory of a round (reused, no allocation per round once grown).
#[derive(Debug, Default)]
struct Scratch {
    /// Every member's round input, scaled by its talk volume.
    inputs: Vec<i32>,
    total: Vec<i32>,
    pcm: Vec<i16>,
    whisperers: Vec<usize>,
}

/// Every mix of one worker.
#[derive(Debug, Default)]
pub struct Mixer {
    mixes: HashMap<MixId, Mix>,
    /// Member leg slot → its mix.
    by_slot: HashMap<usize, MixId>,
    next_round: Option<Instant>,
    scratch: Scratch,
    /// Rounds run and skipped (late worker).
    pub rounds: u64,
    pub rounds_skipped: u64,
}

impl Mixer {
    /// True when no leg is a member of any mix (the relay path skips every
    /// mix check then).
    pub fn is_empty(&self) -> bool {
        self.by_slot.is_empty()
    }

    /// The mix the leg in `slot` is a member of.
    pub fn mix_of(&self, slot: usize) -> Option<MixId> {
        self.by_slot.get(&slot).copied()
    }

    /// A mix, for inspection.
    pub fn mix(&self, mix: MixId) -> Option<&Mix> {
        self.mixes.get(&mix)
    }

    /// Mixes on this worker.
    pub fn mix_count(&self) -> usize {
        self.mixes.len()
    }

    /// When the next round is due (none while no mix has members).
    pub fn next_due(&self) -> Option<Instant> {
        self.next_round
    }

    /// `CreateMix`.
    pub fn create(&mut self, session: SessionId, mix: MixId) -> Result<(), MixError> {
        if self.mixes.contains_key(&mix) {
            return Err(MixError::Exists { mix });
        }
        self.mixes.insert(
            mix,
            Mix {
                session,
                members: Vec::new(),
                recording: None,
            },
        );
        Ok(())
    }

    /// The mix, checked to belong to `session`.
    fn owned(&mut self, session: SessionId, mix: MixId) -> Result<&mut Mix, MixError> {
        let m = self.mixes.get_mut(&mix).ok_or(MixError::Unknown { mix })?;
        if m.session != session {
            return Err(MixError::WrongSession {
                mix,
                owner: m.session,
                session,
            });
        }
        Ok(m)
    }

    /// `DestroyMix`: the mix is gone (its recording stopped, its event in
    /// `events`); returns its members' slots (their outputs must be
    /// restored).
    pub fn destroy(
        &mut self,
        now: Instant,
        session: SessionId,
        mix: MixId,
        events: &mut impl Extend<MediaEvent>,
    ) -> Result<Vec<usize>, MixError> {
        self.owned(session, mix)?;
        let mut slots = Vec::new();
        if let Some(m) = self.mixes.remove(&mix) {
            slots.extend(m.members.iter().map(|x| x.slot));
            if let Some(rec) = m.recording {
                events.extend([rec.stop(session, now, RecordingEnd::Stopped)]);
            }
        }
        for slot in &slots {
            self.by_slot.remove(slot);
        }
        self.reschedule(now);
        Ok(slots)
    }

    /// `AddToMix` of the leg `leg` in `slot`; `random` seeds its output
    /// stream.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        now: Instant,
        session: SessionId,
        mix: MixId,
        leg: LegId,
        slot: usize,
        role: MixRole,
        random: u64,
    ) -> Result<(), MixError> {
        if let Some(&other) = self.by_slot.get(&slot) {
            return Err(MixError::AlreadyMember { leg, mix: other });
        }
        let m = self.owned(session, mix)?;
        m.members.push(Member {
            leg,
            slot,
            role,
            talk_gain: 256,
            listen_gain: 256,
            input: InputBuffer::default(),
            out: OutputStream {
                ssrc: Ssrc(random as u32),
                seq: (random >> 32) as u16,
                timestamp: (random >> 48) as u32 * 0x1_0001,
                first: true,
                pending: Vec::with_capacity(MAX_PACKET_SAMPLES),
            },
            packets_sent: 0,
            rounds_unheard: 0,
        });
        self.by_slot.insert(slot, mix);
        self.reschedule(now);
        Ok(())
    }

    fn member_mut(
        &mut self,
        session: SessionId,
        mix: MixId,
        leg: LegId,
    ) -> Result<&mut Member, MixError> {
        self.owned(session, mix)?
            .members
            .iter_mut()
            .find(|m| m.leg == leg)
            .ok_or(MixError::NotMember { leg, mix })
    }

    /// `SetMixRole`.
    pub fn set_role(
        &mut self,
        session: SessionId,
        mix: MixId,
        leg: LegId,
        role: MixRole,
    ) -> Result<(), MixError> {
        self.member_mut(session, mix, leg)?.role = role;
        Ok(())
    }

    /// `SetMixVolume` (steps clamped to [`VOLUME_STEPS`]).
    pub fn set_volume(
        &mut self,
        session: SessionId,
        mix: MixId,
        leg: LegId,
        talk: i8,
        listen: i8,
    ) -> Result<(), MixError> {
        let m = self.member_mut(session, mix, leg)?;
        m.talk_gain = gain_of(talk);
        m.listen_gain = gain_of(listen);
        Ok(())
    }

    /// `RemoveFromMix`: returns the member's slot.
    pub fn remove(
        &mut self,
        now: Instant,
        session: SessionId,
        mix: MixId,
        leg: LegId,
    ) -> Result<usize, MixError> {
        let m = self.owned(session, mix)?;
        let i = m
            .members
            .iter()
            .position(|x| x.leg == leg)
            .ok_or(MixError::NotMember { leg, mix })?;
        let member = m.members.remove(i);
        self.by_slot.remove(&member.slot);
        self.reschedule(now);
        Ok(member.slot)
    }

    /// `RecordMixer`: starts recording the mix's output to a new mono WAV
    /// file at `path` (its directories are created).
    #[allow(clippy::too_many_arguments)]
    pub fn start_recording(
        &mut self,
        now: Instant,
        session: SessionId,
        mix: MixId,
        id: RecordingId,
        path: &Path,
        max_duration: Option<Duration>,
        options: RecorderOptions,
    ) -> Result<(), MixRecordError> {
        let m = self.owned(session, mix)?;
        if m.recording.is_some() {
            return Err(MixError::Recording { mix }.into());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| MixRecordError::Failed(e.to_string()))?;
        }
        let recording = Recording::start(path, Layout::Mono, now, options)
            .map_err(|e| MixRecordError::Failed(e.to_string()))?;
        m.recording = Some(MixRecording {
            id,
            path: path.to_path_buf(),
            recording,
            started: now,
            max_duration,
        });
        self.reschedule(now);
        Ok(())
    }

    /// `StopRecord` of a mix recording of `session`; `None` when no mix of
    /// the session records under that id.
    pub fn stop_recording(
        &mut self,
        now: Instant,
        session: SessionId,
        id: RecordingId,
    ) -> Option<MediaEvent> {
        let m = self
            .mixes
            .values_mut()
            .find(|m| m.session == session && m.recording.as_ref().is_some_and(|r| r.id == id))?;
        let rec = m.recording.take()?;
        let event = rec.stop(session, now, RecordingEnd::Stopped);
        self.reschedule(now);
        Some(event)
    }

    /// The leg in `slot` is closing: it leaves its mix, if any.
    pub fn forget_slot(&mut self, slot: usize) {
        let Some(mix) = self.by_slot.remove(&slot) else {
            return;
        };
        if let Some(m) = self.mixes.get_mut(&mix) {
            m.members.retain(|x| x.slot != slot);
        }
        if !self.busy() {
            self.next_round = None;
        }
    }

    /// Starts the round grid with the first member, stops it with the last.
    /// (A recording mix keeps the grid running too: its file's clock.)
    fn reschedule(&mut self, now: Instant) {
        if !self.busy() {
            self.next_round = None;
        } else if self.next_round.is_none() {
            self.next_round = Some(now + TICK);
        }
    }

    /// Whether rounds are needed: a member somewhere, or a recording.
    fn busy(&self) -> bool {
        !self.by_slot.is_empty() || self.mixes.values().any(|m| m.recording.is_some())
    }

    /// An audio payload received from the member in `slot` (in `codec`).
    pub fn feed(&mut self, slot: usize, codec: carillon_codec::Codec, payload: &[u8]) {
        let Some(mix) = self.by_slot.get(&slot) else {
            return;
        };
        let Some(member) = self
            .mixes
            .get_mut(mix)
            .and_then(|m| m.members.iter_mut().find(|x| x.slot == slot))
        else {
            return;
        };
        member
            .input
            .push(payload.iter().map(|&c| codec.decode_sample(c)));
    }

    /// Runs the rounds due by `now`, writing the members' packets through
    /// their legs (`legs`, by slot) to `queue`; recordings that reach
    /// their `max_duration` end (their events in `events`).
    pub fn tick(
        &mut self,
        now: Instant,
        legs: &mut [Option<Leg>],
        queue: &mut GeneratedQueue,
        events: &mut impl Extend<MediaEvent>,
    ) {
        let Some(mut due) = self.next_round else {
            return;
        };
        if due > now {
            return;
        }
        let behind = now.saturating_duration_since(due).as_nanos() / TICK.as_nanos();
        let rounds = u64::try_from(behind).unwrap_or(u64::MAX).saturating_add(1);
        let skip = rounds.saturating_sub(MAX_CATCH_UP);
        for k in 0..rounds.min(skip + MAX_CATCH_UP) {
            let send = k >= skip;
            for mix in self.mixes.values_mut() {
                let ended = mix.recording.as_ref().and_then(|r| {
                    let end = r.started + r.max_duration?;
                    (end < due).then_some(end)
                });
                if let Some(end) = ended {
                    if let Some(rec) = mix.recording.take() {
                        events.extend([rec.stop(mix.session, end, RecordingEnd::MaxDuration)]);
                    }
                }
                round(now, due, mix, legs, queue, &mut self.scratch, send);
            }
            if !self.busy() {
                self.next_round = None;
                return;
            }
            if send {
                self.rounds += 1;
            } else {
                self.rounds_skipped += 1;
            }
            due += TICK;
        }
        self.next_round = Some(due);
    }
}

/// One round of one mix (see the module documentation), due at `due`;
/// with `send` false the input is consumed and the output streams advance
/// without packets.
fn round(
    now: Instant,
    due: Instant,
    mix: &mut Mix,
    legs: &mut [Option<Leg>],
    queue: &mut GeneratedQueue,
    scratch: &mut Scratch,
    send: bool,
) {
    let n = mix.members.len();
    if n == 0 {
        return;
    }
    scratch.inputs.clear();
    scratch.inputs.resize(n * TICK_SAMPLES, 0);
    scratch.total.clear();
    scratch.total.resize(TICK_SAMPLES, 0);
    scratch.pcm.clear();
    scratch.pcm.resize(TICK_SAMPLES, 0);
    scratch.whisperers.clear();
    for (i, member) in mix.members.iter_mut().enumerate() {
        member.input.take(&mut scratch.pcm);
        let Some(input) = scratch
            .inputs
            .get_mut(i * TICK_SAMPLES..(i + 1) * TICK_SAMPLES)
        else {
            continue;
        };
        let gain = member.talk_gain;
        for (x, &s) in input.iter_mut().zip(scratch.pcm.iter()) {
            *x = if gain == 256 {
                i32::from(s)
            } else {
                (i32::from(s) * gain) >> 8
            };
        }
        match &member.role.speaks {
            Speak::All => {
                for (t, &x) in scratch.total.iter_mut().zip(input.iter()) {
                    *t += x;
                }
            }
            Speak::To(_) => scratch.whisperers.push(i),
            Speak::None => {}
        }
    }
    if let Some(rec) = mix.recording.as_mut() {
        for (p, &t) in scratch.pcm.iter_mut().zip(scratch.total.iter()) {
            *p = t.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        // The round's frame is the 20 ms up to `due`.
        rec.recording
            .handle_frame(due, Source::Caller, &scratch.pcm);
    }
    let alone = n < 2;
    for i in 0..n {
        let Some(member) = mix.members.get(i) else {
            continue;
        };
        let hears = send && !alone && member.role.hears;
        if hears {
            let own = matches!(member.role.speaks, Speak::All);
            let leg = member.leg;
            let listen_gain = member.listen_gain;
            let own_input = scratch
                .inputs
                .get(i * TICK_SAMPLES..(i + 1) * TICK_SAMPLES)
                .unwrap_or_default();
            for (k, (p, &t)) in scratch.pcm.iter_mut().zip(scratch.total.iter()).enumerate() {
                let mut v = t;
                if own {
                    v -= own_input.get(k).copied().unwrap_or(0);
                }
                for &w in &scratch.whisperers {
                    let to_me = w != i
                        && mix.members.get(w).is_some_and(
                            |m| matches!(&m.role.speaks, Speak::To(to) if to.contains(&leg)),
                        );
                    if to_me {
                        v += scratch
                            .inputs
                            .get(w * TICK_SAMPLES + k)
                            .copied()
                            .unwrap_or(0);
                    }
                }
                if listen_gain != 256 {
                    v = (v * listen_gain) >> 8;
                }
                *p = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
        }
        if let Some(member) = mix.members.get_mut(i) {
            emit(now, member, hears, &scratch.pcm, legs, queue);
        }
    }
}

/// Encodes a member's round into its stream and writes the packets that
/// are complete; a member that does not hear (or whose leg is held by a
/// player or a digit) only advances its timestamps.
fn emit(
    now: Instant,
    member: &mut Member,
    hears: bool,
    pcm: &[i16],
    legs: &mut [Option<Leg>],
    queue: &mut GeneratedQueue,
) {
    let Some(leg) = legs.get_mut(member.slot).and_then(Option::as_mut) else {
        return;
    };
    let params = leg.params;
    let local_port = leg.local_port;
    let sending_digit = leg.dtmf_tap.is_sending();
    let Some(media) = leg.media_mut() else {
        return;
    };
    let out = &mut member.out;
    if !hears || sending_digit || media.player.is_some() {
        // Silence in time: the far end sees the gap in timestamps.
        let skipped = out.pending.len() + TICK_SAMPLES;
        out.timestamp = out.timestamp.wrapping_add(skipped as u32);
        out.pending.clear();
        member.rounds_unheard += 1;
        return;
    }
    let codec = codec_of(params.codec);
    out.pending
        .extend(pcm.iter().map(|&s| codec.encode_sample(s)));
    let packet = (samples_in(frame_time(params.ptime)) as usize).clamp(1, MAX_PACKET_SAMPLES);
    while out.pending.len() >= packet {
        let rtp = GeneratedRtp {
            ssrc: out.ssrc,
            seq: out.seq,
            timestamp: out.timestamp,
            marker: out.first,
            payload_type: None,
            payload: out.pending.get(..packet).unwrap_or_default(),
        };
        match write_generated(now, &params, local_port, media, rtp, queue) {
            WriteOutcome::Queued => {
                out.first = false;
                out.seq = out.seq.wrapping_add(1);
                member.packets_sent += 1;
            }
            WriteOutcome::NotSending | WriteOutcome::Malformed => member.rounds_unheard += 1,
        }
        out.timestamp = out.timestamp.wrapping_add(packet as u32);
        out.pending.drain(..packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_gives_silence_until_primed_then_whole_frames() {
        let mut b = InputBuffer::default();
        let mut out = [7i16; TICK_SAMPLES];
        b.take(&mut out);
        assert!(out.iter().all(|&s| s == 0), "empty: silence");
        b.push((0..160).map(|i| i as i16 + 1));
        b.take(&mut out);
        assert_eq!(out[0], 1);
        assert_eq!(out[159], 160);
        assert!(b.is_empty());
    }

    #[test]
    fn a_late_frame_is_silence_and_the_buffer_primes_again() {
        let mut b = InputBuffer::default();
        let mut out = [0i16; TICK_SAMPLES];
        b.push(std::iter::repeat_n(100, 160));
        b.take(&mut out);
        // The next packet is late: the round gets silence, no stall.
        b.take(&mut out);
        assert!(out.iter().all(|&s| s == 0));
        assert_eq!(b.underruns, 1);
        b.push(std::iter::repeat_n(200, 160));
        b.take(&mut out);
        assert!(out.iter().all(|&s| s == 200));
    }

    #[test]
    fn thirty_ms_packets_feed_twenty_ms_rounds_without_gaps_once_primed() {
        let mut b = InputBuffer::default();
        let mut out = [0i16; TICK_SAMPLES];
        let mut heard = 0;
        // 30 ms packets at 0, 30, 60 ms…; rounds at 10, 30 (after the
        // packet), 50, … ms, over 1.2 s.
        for ms in (0..1200).step_by(10) {
            if ms % 30 == 0 {
                b.push(std::iter::repeat_n(500, 240));
            }
            if ms % 20 == 10 {
                b.take(&mut out);
                if out.iter().all(|&s| s == 500) {
                    heard += 1;
                }
            }
        }
        assert_eq!(b.underruns, 0);
        assert!(heard >= 57, "{heard} of 60 rounds");
    }

    #[test]
    fn a_buffer_over_its_bound_drops_its_oldest_samples() {
        let mut b = InputBuffer::default();
        for i in 0..10 {
            b.push(std::iter::repeat_n(i, 160));
        }
        assert_eq!(b.len(), 480);
        assert_eq!(b.dropped, 7 * 160);
        let mut out = [0i16; TICK_SAMPLES];
        b.take(&mut out);
        assert_eq!(out[0], 7, "the oldest kept is the eighth packet");
    }

    #[test]
    fn volume_steps_are_three_db_apart_and_clamped() {
        assert_eq!(gain_of(0), 256);
        assert_eq!(gain_of(2), 511);
        assert_eq!(gain_of(-2), 128);
        assert_eq!(gain_of(100), gain_of(4));
        assert_eq!(gain_of(-100), gain_of(-4));
    }
}
