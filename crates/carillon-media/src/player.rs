//! Players: the output of a leg when it is not the relay from its bridged
//! leg (`MediaCommand::Play`). A player turns a playlist (prompt files,
//! music-on-hold classes, tones, silence) into RTP frames at the leg's
//! ptime and codec, paced by the worker's tick.
//!
//! Owns: resolving a playlist against [`Sounds`] (missing files and
//! unknown classes are skipped and named), the position in it, the
//! generated stream's own SSRC / sequence / timestamp (mapped onto the
//! leg's output stream by its rewriter, see [`crate::output`]), and the
//! per-tick frame production with bounded catch-up. It does not own the
//! leg (the engine hands the leg's state in) nor the schedule of players
//! (the engine keeps their next due times).
//!
//! ```text
//!  Play ──► resolve items ──► due = now ──tick(now ≥ due)──► frame(s) ──► due += ptime ─┐
//!              (missing)            ▲                                                   │
//!                                   └───────────────────────────────────────────────────┘
//!          last item played: PlaybackDone{Finished}; StopPlay / Play / close: {Stopped}
//! ```
//!
//! Pacing: frame `k` is due at `start + k × ptime`. A tick that finds a
//! player late sends at most [`MAX_CATCH_UP`] frames; frames further
//! behind are skipped (position and RTP timestamp advance, nothing is
//! sent), so a stalled worker never bursts seconds of audio.
//!
//! A leg that is not `send` (hold) or has no destination hears nothing,
//! but its playback advances in time and finishes.

use crate::leg::{codec_of, LegMedia};
use crate::output::{write_generated, GeneratedQueue, GeneratedRtp, WriteOutcome};
use crate::sounds::{MohClass, Sound, Sounds};
use crate::tone::{samples_in, ToneSource};
use carillon_mediactl::{AudioCodec, LegParams, PlayItem, PlaybackId};
use carillon_rtp::Ssrc;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames a late tick may still send for one player; older ones are skipped.
pub const MAX_CATCH_UP: u64 = 3;
/// The longest frame a player makes (60 ms at 8 kHz).
const MAX_FRAME_SAMPLES: usize = 480;

/// The frame duration for a leg's ptime: whole milliseconds in 10..=60,
/// 20 ms when unset.
pub fn frame_time(ptime: Duration) -> Duration {
    let ms = ptime.as_millis();
    if ms == 0 {
        Duration::from_millis(20)
    } else {
        Duration::from_millis(ms.clamp(10, 60) as u64)
    }
}

/// One resolved playlist item.
#[derive(Debug, Clone)]
enum Source {
    File { sound: Arc<Sound>, position: usize },
    Moh(Arc<MohClass>),
    Tone(ToneSource),
    Silence { remaining: u64 },
}

/// The name under which an unknown music-on-hold class is reported in
/// `PlaybackDone::missing`.
pub fn moh_missing_name(class: &str) -> PathBuf {
    PathBuf::from(format!("moh:{class}"))
}

/// What one `Play` left to play, and its generated stream.
#[derive(Debug, Clone)]
pub struct Player {
    pub playback: PlaybackId,
    /// Identifies this player in the engine's schedule.
    pub token: u64,
    items: VecDeque<Source>,
    /// Files (and `moh:<class>` names) that could not be played.
    pub missing: Vec<PathBuf>,
    ssrc: Ssrc,
    seq: u16,
    timestamp: u32,
    first: bool,
    /// Frames sent, and frames played while the leg could not hear them.
    pub frames_sent: u64,
    pub frames_unheard: u64,
    /// Frames skipped because the tick came too late.
    pub frames_skipped: u64,
}

/// Scratch space of one worker's players.
#[derive(Debug, Clone)]
pub struct FrameScratch {
    pcm: [i16; MAX_FRAME_SAMPLES],
    payload: [u8; MAX_FRAME_SAMPLES],
}

impl Default for FrameScratch {
    fn default() -> Self {
        FrameScratch {
            pcm: [0; MAX_FRAME_SAMPLES],
            payload: [0; MAX_FRAME_SAMPLES],
        }
    }
}

/// What a tick did to a player.
#[derive(Debug)]
pub enum Tick {
    /// Still playing; next frame due then.
    Next(Instant),
    /// Every item played.
    Finished(Box<Player>),
    /// The leg has no player (stopped since it was scheduled).
    Idle,
}

impl Player {
    /// A player for `items`, files read through `sounds`' cache. `random`
    /// gives the generated stream's SSRC and initial sequence/timestamp.
    pub fn new(
        sounds: &Sounds,
        playback: PlaybackId,
        token: u64,
        items: Vec<PlayItem>,
        random: u64,
    ) -> Player {
        let mut missing = Vec::new();
        let mut resolved = VecDeque::with_capacity(items.len());
        for item in items {
            match item {
                PlayItem::File(path) => match sounds.cache.get(&path) {
                    Ok(sound) => resolved.push_back(Source::File { sound, position: 0 }),
                    Err(_) => missing.push(path),
                },
                PlayItem::Moh { class } => match sounds.moh(&class) {
                    Some(c) => resolved.push_back(Source::Moh(c.clone())),
                    None => missing.push(moh_missing_name(&class)),
                },
                PlayItem::Tone { tone, duration } => {
                    resolved.push_back(Source::Tone(ToneSource::new(tone, duration)));
                }
                PlayItem::Silence(d) => resolved.push_back(Source::Silence {
                    remaining: samples_in(d),
                }),
            }
        }
        Player {
            playback,
            token,
            items: resolved,
            missing,
            ssrc: Ssrc(random as u32),
            seq: (random >> 32) as u16,
            timestamp: (random >> 48) as u32 * 0x1_0001,
            first: true,
            frames_sent: 0,
            frames_unheard: 0,
            frames_skipped: 0,
        }
    }

    /// Fills `payload[..samples]` with the next frame encoded in `codec`
    /// (the frame starting at `due`, which places music on hold); false when
    /// every item has played.
    fn fill(
        &mut self,
        codec: AudioCodec,
        samples: usize,
        due: Instant,
        scratch: &mut FrameScratch,
    ) -> bool {
        let silence = codec_of(codec).silence();
        let (Some(pcm), Some(payload)) = (
            scratch.pcm.get_mut(..samples),
            scratch.payload.get_mut(..samples),
        ) else {
            return false;
        };
        while let Some(item) = self.items.front_mut() {
            match item {
                Source::File { sound, position } => {
                    let encoded = sound.encoded(codec);
                    let rest = encoded.get(*position..).unwrap_or_default();
                    if rest.is_empty() {
                        self.items.pop_front();
                        continue;
                    }
                    let n = rest.len().min(samples);
                    let (head, tail) = payload.split_at_mut(n);
                    head.copy_from_slice(rest.get(..n).unwrap_or_default());
                    tail.fill(silence);
                    *position += n;
                    return true;
                }
                Source::Moh(class) => {
                    let encoded = class.sound().encoded(codec);
                    let mut at = class.position_at(due, samples);
                    let mut filled = 0;
                    while filled < samples && !encoded.is_empty() {
                        let rest = encoded.get(at..).unwrap_or_default();
                        let n = rest.len().min(samples - filled);
                        if let (Some(out), Some(src)) =
                            (payload.get_mut(filled..filled + n), rest.get(..n))
                        {
                            out.copy_from_slice(src);
                        }
                        filled += n;
                        at = 0;
                    }
                    return true;
                }
                Source::Tone(tone) => {
                    let n = tone.fill(pcm);
                    if n == 0 {
                        self.items.pop_front();
                        continue;
                    }
                    let codec = codec_of(codec);
                    for (out, &s) in payload.iter_mut().zip(pcm.iter().take(n)) {
                        *out = codec.encode_sample(s);
                    }
                    if let Some(tail) = payload.get_mut(n..) {
                        tail.fill(silence);
                    }
                    return true;
                }
                Source::Silence { remaining } => {
                    if *remaining == 0 {
                        self.items.pop_front();
                        continue;
                    }
                    *remaining = remaining.saturating_sub(samples as u64);
                    payload.fill(silence);
                    return true;
                }
            }
        }
        false
    }
}

/// Produces the frames of `media`'s player due by `now` (the first one due
/// at `due`), queueing the packets; says when it is due next.
pub fn tick(
    now: Instant,
    mut due: Instant,
    params: &LegParams,
    local_port: u16,
    media: &mut LegMedia,
    scratch: &mut FrameScratch,
    queue: &mut GeneratedQueue,
) -> Tick {
    let Some(mut player) = media.player.take() else {
        return Tick::Idle;
    };
    let frame = frame_time(params.ptime);
    let samples = samples_in(frame) as usize;
    let behind = now.saturating_duration_since(due).as_nanos() / frame.as_nanos().max(1);
    let due_frames = u64::try_from(behind).unwrap_or(u64::MAX).saturating_add(1);
    let skip = due_frames.saturating_sub(MAX_CATCH_UP);
    for k in 0..due_frames {
        if !player.fill(params.codec, samples, due, scratch) {
            return Tick::Finished(player);
        }
        due += frame;
        if k < skip {
            player.frames_skipped += 1;
        } else {
            let rtp = GeneratedRtp {
                ssrc: player.ssrc,
                seq: player.seq,
                timestamp: player.timestamp,
                marker: player.first,
                payload_type: None,
                payload: scratch.payload.get(..samples).unwrap_or_default(),
            };
            match write_generated(now, params, local_port, media, rtp, queue) {
                WriteOutcome::Queued => {
                    player.first = false;
                    player.seq = player.seq.wrapping_add(1);
                    player.frames_sent += 1;
                }
                WriteOutcome::NotSending | WriteOutcome::Malformed => player.frames_unheard += 1,
            }
        }
        player.timestamp = player.timestamp.wrapping_add(samples as u32);
    }
    media.player = Some(player);
    Tick::Next(due)
}

/// The players of one engine: the shared sounds, the schedule of next
/// frames, the generated packets waiting for the edge.
#[derive(Debug, Default)]
pub struct Playout {
    pub sounds: Arc<Sounds>,
    /// (due, leg slot, player token), earliest first; entries of stopped
    /// players are skipped when they come up.
    schedule: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, usize, u64)>>,
    next_token: u64,
    pub generated: GeneratedQueue,
    pub scratch: FrameScratch,
    /// Players running.
    pub active: usize,
}

impl Playout {
    /// A fresh token for a new player.
    pub fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Schedules the player `token` of `slot` at `due`.
    pub fn schedule(&mut self, due: Instant, slot: usize, token: u64) {
        self.schedule.push(std::cmp::Reverse((due, slot, token)));
    }

    /// When the earliest player is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.schedule.peek().map(|e| e.0 .0)
    }

    /// The next (slot, token, due) due by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64, Instant)> {
        match self.schedule.peek() {
            Some(e) if e.0 .0 <= now => {
                let (due, slot, token) = self.schedule.pop()?.0;
                Some((slot, token, due))
            }
            _ => None,
        }
    }
}
