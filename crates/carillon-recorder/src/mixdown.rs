//! Sans-IO alignment of two parties' audio into 20 ms recording blocks.
//!
//! [`Mixdown`] owns the timing of a recording: it receives frames of linear
//! PCM (8 kHz, i16) from the caller ([`Source::Caller`], channel 0, Asterisk's
//! "read" direction) and the agent ([`Source::Agent`], channel 1, "write"),
//! each with its own frame size (160 samples for 20 ms, 240 for 30 ms, or any
//! other) and its own arrival timing, and produces aligned [`Block`]s of
//! [`BLOCK_SAMPLES`] per channel, either mixed to mono (sum with saturation)
//! or interleaved stereo (caller left, agent right; Asterisk's `D` option).
//! G.711 payloads (µ-law or A-law) can be pushed directly; they are decoded
//! through `carillon-codec`.
//!
//! It does not own files, threads or clocks: time is the `now` argument
//! (media time of the frame's arrival), and blocks are drained with
//! [`Mixdown::poll_block`]. [`crate::writer`] moves them to a file.
//!
//! Timing model, per source, on a shared sample clock that starts at the
//! `start` instant given to [`Mixdown::new`]:
//!
//! ```text
//!  frame of n samples arriving at now ──► nominal start = pos(now) − n
//!  nominal start ≤ cursor + JITTER_TOLERANCE ──► appended at the cursor
//!                                               (jitter absorbed, no gap)
//!  nominal start > cursor + JITTER_TOLERANCE ──► silence up to the nominal
//!                                               start, then the frame
//!                                               (hold, loss, late start)
//!  source already written as silence (underrun) and nominal start > cursor
//!                                           ──► the same: audio at its time
//! ```
//!
//! A block is emitted as soon as both sources have audio for it, or when the
//! media time is [`Mixdown::latency`] past its end (the missing part of a
//! quiet source is silence). So a file's duration follows media time, not
//! packet counts, and mixed ptimes (20 ms against 30 ms) line up.
//! A source that runs more than [`MAX_AHEAD_SAMPLES`] ahead of the written
//! blocks has its excess samples discarded and counted
//! ([`Mixdown::overrun_samples`]), so memory is bounded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use carillon_codec::Codec;

/// Sample rate of every recording: 8 kHz, the G.711 clock.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per channel in one [`Block`]: 20 ms at 8 kHz.
pub const BLOCK_SAMPLES: usize = 160;
/// How far behind a source's cursor a frame's nominal start may be and still
/// be appended without a silence gap (40 ms): jitter, not a gap.
pub const JITTER_TOLERANCE_SAMPLES: u64 = 320;
/// How far ahead of the written blocks one source may buffer (1 s).
pub const MAX_AHEAD_SAMPLES: usize = 8000;
/// Default wait for a quiet source before its part of a block is silence.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(60);

/// Which party a frame comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The calling party: channel 0 (left) in stereo.
    Caller,
    /// The called party (agent): channel 1 (right) in stereo.
    Agent,
}

impl Source {
    fn index(self) -> usize {
        match self {
            Source::Caller => 0,
            Source::Agent => 1,
        }
    }
}

/// How the two parties are laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Both parties summed (with saturation) into one channel.
    Mono,
    /// Caller on channel 0, agent on channel 1 (Asterisk's `D` option).
    Stereo,
}

impl Layout {
    /// Channels in the file.
    pub const fn channels(self) -> u16 {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
        }
    }
}

/// One 20 ms block ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Position of the block in the recording (0, 1, 2…): block `i` covers
    /// media time `[i·20 ms, (i+1)·20 ms)`. A writer that sees an index jump
    /// knows blocks were lost and can fill the gap with silence.
    pub index: u64,
    /// [`BLOCK_SAMPLES`] samples (mono) or `2 × BLOCK_SAMPLES` interleaved
    /// caller/agent samples (stereo).
    pub samples: Vec<i16>,
}

/// Per-source buffer: `buf[0]` is the sample at the mixdown's `emitted` position.
#[derive(Debug, Default)]
struct Lane {
    buf: VecDeque<i16>,
    /// A block was emitted with silence padding for this source: its next
    /// frame goes at its nominal time, not at the cursor.
    underrun: bool,
}

/// The two-party aligner and mixer; see the module documentation.
#[derive(Debug)]
pub struct Mixdown {
    layout: Layout,
    start: Instant,
    latency_samples: u64,
    /// Sample position (per channel) up to which blocks have been emitted.
    emitted: u64,
    lanes: [Lane; 2],
    ready: VecDeque<Block>,
    overrun_samples: u64,
    scratch: Vec<i16>,
}

impl Mixdown {
    /// A mixdown whose sample clock starts at `start`, with [`DEFAULT_LATENCY`].
    pub fn new(layout: Layout, start: Instant) -> Self {
        Self::with_latency(layout, start, DEFAULT_LATENCY)
    }

    /// A mixdown that waits `latency` for a quiet source before writing
    /// silence in its place.
    pub fn with_latency(layout: Layout, start: Instant, latency: Duration) -> Self {
        Mixdown {
            layout,
            start,
            latency_samples: duration_to_samples(latency),
            emitted: 0,
            lanes: [Lane::default(), Lane::default()],
            ready: VecDeque::new(),
            overrun_samples: 0,
            scratch: Vec::with_capacity(BLOCK_SAMPLES * 2),
        }
    }

    /// The layout blocks are produced in.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// How long a quiet source is waited for.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_samples * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    /// Samples discarded because a source ran more than
    /// [`MAX_AHEAD_SAMPLES`] ahead of the written blocks.
    pub fn overrun_samples(&self) -> u64 {
        self.overrun_samples
    }

    /// Blocks emitted so far (drained or not).
    pub fn blocks_emitted(&self) -> u64 {
        self.emitted / BLOCK_SAMPLES as u64
    }

    /// A frame of linear samples from `source` that arrived at `now`.
    pub fn handle_frame(&mut self, now: Instant, source: Source, samples: &[i16]) {
        let arrival = self.position(now);
        let horizon = arrival.saturating_sub(self.latency_samples);
        // Media time first: blocks past the latency go out (silence where a
        // source is quiet) before this frame is placed.
        self.emit(horizon);
        let lane = &mut self.lanes[source.index()];
        let cursor = self.emitted + lane.buf.len() as u64;
        let nominal_start = arrival.saturating_sub(samples.len() as u64);
        let gap = nominal_start.saturating_sub(cursor);
        if gap > JITTER_TOLERANCE_SAMPLES || (lane.underrun && gap > 0) {
            // A gap (hold, loss, a party that starts late, or one whose
            // place was already written as silence): silence up to the
            // frame's nominal start, within the lane's bound.
            let gap = gap as usize;
            let room = MAX_AHEAD_SAMPLES.saturating_sub(lane.buf.len());
            let fill = gap.min(room);
            lane.buf.resize(lane.buf.len() + fill, 0);
            self.overrun_samples += (gap - fill) as u64;
        }
        lane.underrun = false;
        let room = MAX_AHEAD_SAMPLES.saturating_sub(lane.buf.len());
        let take = samples.len().min(room);
        lane.buf.extend(samples.iter().take(take).copied());
        self.overrun_samples += (samples.len() - take) as u64;
        self.emit(horizon);
    }

    /// A G.711 payload (one byte per sample) from `source` that arrived at `now`.
    pub fn handle_encoded(&mut self, now: Instant, source: Source, codec: Codec, payload: &[u8]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(payload.iter().map(|&code| codec.decode_sample(code)));
        self.handle_frame(now, source, &scratch);
        self.scratch = scratch;
    }

    /// Media time advanced to `now` without a frame (e.g. both parties on
    /// hold): blocks older than the latency are emitted, silence where a
    /// source sent nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let horizon = self.position(now).saturating_sub(self.latency_samples);
        self.emit(horizon);
    }

    /// The recording ends at `now`: every block up to `now` and every
    /// buffered sample is emitted, the last block padded with silence.
    pub fn finish(&mut self, now: Instant) {
        let buffered = self.lanes.iter().map(|l| l.buf.len()).max().unwrap_or(0) as u64;
        let end = self.position(now).max(self.emitted + buffered);
        let end = end.div_ceil(BLOCK_SAMPLES as u64) * BLOCK_SAMPLES as u64;
        self.emit(end);
    }

    /// The next block to write, oldest first.
    pub fn poll_block(&mut self) -> Option<Block> {
        self.ready.pop_front()
    }

    fn position(&self, now: Instant) -> u64 {
        duration_to_samples(now.saturating_duration_since(self.start))
    }

    /// Emits every block that ends at or before `horizon`, and any further
    /// block both sources already have audio for.
    fn emit(&mut self, horizon: u64) {
        loop {
            let block_end = self.emitted + BLOCK_SAMPLES as u64;
            let both_have_it = self.lanes.iter().all(|l| l.buf.len() >= BLOCK_SAMPLES);
            if block_end > horizon && !both_have_it {
                break;
            }
            let block = self.take_block();
            self.ready.push_back(block);
        }
    }

    fn take_block(&mut self) -> Block {
        let index = self.emitted / BLOCK_SAMPLES as u64;
        self.emitted += BLOCK_SAMPLES as u64;
        let mut caller = [0i16; BLOCK_SAMPLES];
        let mut agent = [0i16; BLOCK_SAMPLES];
        let [caller_lane, agent_lane] = &mut self.lanes;
        caller_lane.take_into(&mut caller);
        agent_lane.take_into(&mut agent);
        let samples = match self.layout {
            Layout::Mono => caller
                .iter()
                .zip(&agent)
                .map(|(&c, &a)| c.saturating_add(a))
                .collect(),
            Layout::Stereo => {
                let mut out = vec![0i16; BLOCK_SAMPLES * 2];
                for ((pair, &c), &a) in out.chunks_exact_mut(2).zip(&caller).zip(&agent) {
                    pair[0] = c;
                    pair[1] = a;
                }
                out
            }
        };
        Block { index, samples }
    }
}

impl Lane {
    /// Moves up to one block of samples into `out`, silence after them;
    /// marks an underrun when the lane had less than a block.
    fn take_into(&mut self, out: &mut [i16; BLOCK_SAMPLES]) {
        let n = self.buf.len().min(BLOCK_SAMPLES);
        let (front, back) = self.buf.as_slices();
        let from_front = front.len().min(n);
        out[..from_front].copy_from_slice(&front[..from_front]);
        out[from_front..n].copy_from_slice(&back[..n - from_front]);
        self.buf.drain(..n);
        self.underrun |= n < BLOCK_SAMPLES;
    }
}

fn duration_to_samples(d: Duration) -> u64 {
    (d.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_codec::{Goertzel, ToneGenerator};

    fn ms(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn drain(m: &mut Mixdown) -> Vec<Block> {
        std::iter::from_fn(|| m.poll_block()).collect()
    }

    /// Caller plays `caller_hz` in `caller_frame`-sample frames, agent
    /// `agent_hz` in `agent_frame`-sample frames, both for `total_ms`,
    /// each frame arriving when its last sample was captured.
    fn two_tones(
        layout: Layout,
        caller: (f64, usize),
        agent: (f64, usize),
        total_ms: u64,
    ) -> (Vec<Block>, Mixdown) {
        let base = Instant::now();
        let mut m = Mixdown::new(layout, base);
        let mut gens = [
            ToneGenerator::new(caller.0, 8000),
            ToneGenerator::new(agent.0, 8000),
        ];
        let frames = [caller.1, agent.1];
        let mut next = [frames[0] as u64 / 8, frames[1] as u64 / 8];
        let mut blocks = Vec::new();
        // Deliver in arrival order.
        while next.iter().any(|&t| t <= total_ms) {
            let s = if next[0] <= next[1] { 0 } else { 1 };
            let mut frame = vec![0i16; frames[s]];
            gens[s].fill(&mut frame);
            let source = if s == 0 {
                Source::Caller
            } else {
                Source::Agent
            };
            m.handle_frame(ms(base, next[s]), source, &frame);
            blocks.extend(drain(&mut m));
            next[s] += frames[s] as u64 / 8;
        }
        m.finish(ms(base, total_ms));
        blocks.extend(drain(&mut m));
        (blocks, m)
    }

    fn channel(blocks: &[Block], channels: usize, ch: usize) -> Vec<i16> {
        blocks
            .iter()
            .flat_map(|b| b.samples.iter().skip(ch).step_by(channels).copied())
            .collect()
    }

    #[test]
    fn mono_mixdown_of_two_tones_contains_both_frequencies() {
        let (blocks, _) = two_tones(Layout::Mono, (400.0, 160), (1000.0, 160), 2000);
        assert_eq!(blocks.len(), 100);
        let mono = channel(&blocks, 1, 0);
        let p400 = Goertzel::new(400.0, 8000).relative_power(&mono);
        let p1000 = Goertzel::new(1000.0, 8000).relative_power(&mono);
        let p700 = Goertzel::new(700.0, 8000).relative_power(&mono);
        assert!(p400 > 0.3, "400 Hz share {p400}");
        assert!(p1000 > 0.3, "1000 Hz share {p1000}");
        assert!(p700 < 0.01, "700 Hz share {p700}");
    }

    #[test]
    fn stereo_puts_the_caller_left_and_the_agent_right() {
        let (blocks, _) = two_tones(Layout::Stereo, (400.0, 160), (1000.0, 160), 2000);
        assert!(blocks.iter().all(|b| b.samples.len() == 2 * BLOCK_SAMPLES));
        let left = channel(&blocks, 2, 0);
        let right = channel(&blocks, 2, 1);
        let g400 = Goertzel::new(400.0, 8000);
        let g1000 = Goertzel::new(1000.0, 8000);
        assert!(g400.relative_power(&left) > 0.9);
        assert!(g1000.relative_power(&left) < 0.01);
        assert!(g1000.relative_power(&right) > 0.9);
        assert!(g400.relative_power(&right) < 0.01);
    }

    #[test]
    fn twenty_against_thirty_ms_frames_give_the_media_duration() {
        let (blocks, m) = two_tones(Layout::Stereo, (400.0, 160), (1000.0, 240), 3000);
        // 3 s of media = 150 blocks of 20 ms, indices contiguous.
        assert_eq!(blocks.len(), 150);
        assert!(blocks.iter().enumerate().all(|(i, b)| b.index == i as u64));
        assert_eq!(m.overrun_samples(), 0);
        let left = channel(&blocks, 2, 0);
        let right = channel(&blocks, 2, 1);
        // Every caller and agent sample made it, in order, none doubled or
        // shifted: each channel is exactly the tone its party sent.
        let mut expect_left = vec![0i16; 24000];
        ToneGenerator::new(400.0, 8000).fill(&mut expect_left);
        let mut expect_right = vec![0i16; 24000];
        ToneGenerator::new(1000.0, 8000).fill(&mut expect_right);
        assert!(
            left == expect_left,
            "caller channel differs from the tone sent"
        );
        assert!(
            right == expect_right,
            "agent channel differs from the tone sent"
        );
        // The 30 ms agent's tone stays continuous across block edges: each
        // block of the right channel carries the tone.
        for b in &blocks {
            let right: Vec<i16> = b.samples.iter().skip(1).step_by(2).copied().collect();
            assert!(Goertzel::new(1000.0, 8000).relative_power(&right) > 0.5);
        }
    }

    #[test]
    fn ulaw_caller_and_alaw_agent_are_decoded_and_aligned() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Stereo, base);
        let mut caller = ToneGenerator::new(400.0, 8000);
        let mut agent = ToneGenerator::new(1000.0, 8000);
        let mut blocks = Vec::new();
        let (mut tc, mut ta) = (20u64, 30u64);
        while tc <= 1200 || ta <= 1200 {
            if tc <= ta {
                let mut p = [0u8; 160];
                caller.fill_encoded(Codec::Pcmu, &mut p);
                m.handle_encoded(ms(base, tc), Source::Caller, Codec::Pcmu, &p);
                tc += 20;
            } else {
                let mut p = [0u8; 240];
                agent.fill_encoded(Codec::Pcma, &mut p);
                m.handle_encoded(ms(base, ta), Source::Agent, Codec::Pcma, &p);
                ta += 30;
            }
            blocks.extend(drain(&mut m));
        }
        m.finish(ms(base, 1200));
        blocks.extend(drain(&mut m));
        assert_eq!(blocks.len(), 60);
        let left = channel(&blocks, 2, 0);
        let right = channel(&blocks, 2, 1);
        assert!(Goertzel::new(400.0, 8000).relative_power(&left) > 0.9);
        assert!(Goertzel::new(1000.0, 8000).relative_power(&right) > 0.9);
        // Amplitude survives decoding (the generator's amplitude is 8000).
        let peak = left.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((7000..=9000).contains(&peak), "peak {peak}");
    }

    #[test]
    fn a_gap_becomes_silence_and_the_duration_follows_media_time() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Stereo, base);
        let frame = [1000i16; 160];
        // Caller talks 0–1 s, goes quiet (hold) 1–3 s, talks 3–4 s; the agent
        // never sends anything. Time still advances through the hold.
        let mut blocks = Vec::new();
        for t in (1..=50u64).chain(151..=200).map(|i| i * 20) {
            m.handle_frame(ms(base, t), Source::Caller, &frame);
            blocks.extend(drain(&mut m));
        }
        // The hold: no frames, only ticks in the real engine. Here we skip
        // the ticks on purpose: the next frame alone must open the gap.
        m.finish(ms(base, 4000));
        blocks.extend(drain(&mut m));
        assert_eq!(blocks.len(), 200, "4 s = 200 blocks");
        let left = channel(&blocks, 2, 0);
        let right = channel(&blocks, 2, 1);
        assert!(right.iter().all(|&s| s == 0), "the silent agent is silence");
        // 1 s of audio, 2 s of silence, 1 s of audio.
        assert!(left[..8000].iter().all(|&s| s == 1000));
        assert!(left[8000..24000].iter().all(|&s| s == 0));
        assert!(left[24000..].iter().all(|&s| s == 1000));
    }

    #[test]
    fn ticks_alone_emit_silence_while_nobody_sends() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Mono, base);
        for t in (20..=1000).step_by(20) {
            m.handle_timeout(ms(base, t));
        }
        let blocks = drain(&mut m);
        // Everything older than the 60 ms latency is out, all of it silence.
        assert_eq!(blocks.len(), (1000 - 60) / 20);
        assert!(blocks.iter().all(|b| b.samples.iter().all(|&s| s == 0)));
    }

    #[test]
    fn jittered_arrivals_are_not_gaps() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Mono, base);
        let frame = [500i16; 160];
        // Arrival times wobble by up to ±15 ms around the nominal 20 ms grid.
        let wobble = [0i64, 15, -10, 5, -15, 10, 0, 12, -8, 3];
        let mut blocks = Vec::new();
        for i in 1..=100i64 {
            let t = (i * 20 + wobble[(i % 10) as usize]) as u64;
            m.handle_frame(ms(base, t), Source::Caller, &frame);
            blocks.extend(drain(&mut m));
        }
        m.finish(ms(base, 2000));
        blocks.extend(drain(&mut m));
        let mono = channel(&blocks, 1, 0);
        assert_eq!(mono.len(), 16000);
        assert!(
            mono.iter().all(|&s| s == 500),
            "no silence inserted by jitter"
        );
    }

    #[test]
    fn a_frame_later_than_the_latency_lands_at_its_own_time() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Stereo, base);
        let mut blocks = Vec::new();
        // The agent talks steadily; the caller's frames for 0–20 ms arrive on
        // time, then nothing until the frame for 200–220 ms (a 180 ms hole,
        // longer than the 60 ms latency: that part was written as silence).
        for t in (1..=15u64).map(|i| i * 20) {
            m.handle_frame(ms(base, t), Source::Agent, &[1i16; 160]);
            if t == 20 || t == 220 {
                m.handle_frame(ms(base, t), Source::Caller, &[9i16; 160]);
            }
            blocks.extend(drain(&mut m));
        }
        m.finish(ms(base, 300));
        blocks.extend(drain(&mut m));
        assert_eq!(blocks.len(), 15);
        let left = channel(&blocks, 2, 0);
        assert!(left[..160].iter().all(|&s| s == 9));
        assert!(left[160..1600].iter().all(|&s| s == 0));
        assert!(left[1600..1760].iter().all(|&s| s == 9), "at 200–220 ms");
        assert!(left[1760..].iter().all(|&s| s == 0));
        assert!(channel(&blocks, 2, 1).iter().all(|&s| s == 1));
    }

    #[test]
    fn mono_sum_saturates_instead_of_wrapping() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Mono, base);
        m.handle_frame(ms(base, 20), Source::Caller, &[30000i16; 160]);
        m.handle_frame(ms(base, 20), Source::Agent, &[30000i16; 160]);
        m.handle_frame(ms(base, 40), Source::Caller, &[-30000i16; 160]);
        m.handle_frame(ms(base, 40), Source::Agent, &[-30000i16; 160]);
        let blocks = drain(&mut m);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].samples.iter().all(|&s| s == i16::MAX));
        assert!(blocks[1].samples.iter().all(|&s| s == i16::MIN));
    }

    #[test]
    fn a_source_far_ahead_of_media_time_is_bounded_and_counted() {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Mono, base);
        // 2 s of caller audio delivered at once at t = 20 ms, agent silent.
        for _ in 0..100 {
            m.handle_frame(ms(base, 20), Source::Caller, &[1i16; 160]);
        }
        assert_eq!(m.overrun_samples(), 16000 - MAX_AHEAD_SAMPLES as u64);
        m.finish(ms(base, 20));
        assert_eq!(drain(&mut m).len(), MAX_AHEAD_SAMPLES / BLOCK_SAMPLES);
    }
}
