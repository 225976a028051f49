//! The recording handle and its blocking WAV writer thread.
//!
//! [`Recording`] is what the media side holds for one recording: it owns a
//! [`Mixdown`] and the sending end of a BOUNDED channel (`sync_channel`) to a
//! writer thread of its own. Every `handle_*` call mixes, then hands finished
//! 20 ms blocks over with `try_send`, which never blocks: when the channel is
//! full (the disk is slow) the block is counted as dropped
//! ([`Recording::frames_dropped`]) and the audio goes on. The writer fills a
//! dropped block's place with silence, so the file's duration still follows
//! media time.
//!
//! The writer thread owns a [`BlockSink`]; the real one is [`WavSink`]
//! (hound, 16-bit PCM at 8 kHz, mono or stereo). `WavSink` makes the WAV
//! header consistent with the data on disk after the first block and then
//! every [`RecorderOptions::checkpoint_every`] blocks (hound's `flush`), so a
//! file is never left at a bare 44-byte header once audio flowed, and a crash
//! loses at most the data since the last checkpoint's header update (which
//! [`crate::repair`](mod@crate::repair) recovers). [`Recording::stop`] ends the mixdown, sends
//! the rest, waits for the writer, finalises the header and returns a
//! [`RecordingSummary`].
//!
//! [`recording_path`] names a call's file `DIR/UNIQUEID.wav`, refusing ids
//! that are not plain file names. A `Recording` dropped without `stop` still
//! gets a finalised header: its writer sees the channel close and finalises
//! (without filling a dropped tail).
//!
//! No tokio here: std threads and `std::sync::mpsc` only. Not owned: which
//! directory is configured, and the CDR.
//!
//! ```text
//!  audio side                      writer thread
//!  handle_frame ─► Mixdown ─► try_send ──(bounded)──► write_block ─► WAV
//!                                │ full: frames_dropped += 1   (silence for gaps)
//!  stop ─► finish ─► send rest + End ──────────────► fill to End, finalize
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use carillon_codec::Codec;

use crate::mixdown::{Block, Layout, Mixdown, Source, BLOCK_SAMPLES, DEFAULT_LATENCY, SAMPLE_RATE};

/// Errors of a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The WAV file could not be created.
    #[error("cannot create recording {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    /// Writing or finalising the WAV file failed (disk full, I/O error).
    #[error("writing recording {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the recording writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The writer thread panicked (a bug); the file may be unfinalised.
    #[error("the recording writer thread panicked")]
    WriterPanicked,
    /// A call's unique id cannot be used as a file name.
    #[error("unique id {unique_id:?} cannot name a recording: {reason}")]
    FileName {
        unique_id: String,
        reason: &'static str,
    },
}

/// The file for the recording of the call `unique_id` in `dir`:
/// `DIR/UNIQUEID.wav`. The id must be a plain file name (ASCII letters,
/// digits, `.`, `_`, `-`; not starting with `.`; at most 200 characters), so
/// an id taken from a header or a variable can never point outside `dir`.
pub fn recording_path(dir: &Path, unique_id: &str) -> Result<PathBuf, RecorderError> {
    let refuse = |reason| RecorderError::FileName {
        unique_id: unique_id.chars().take(64).collect(),
        reason,
    };
    if unique_id.is_empty() {
        return Err(refuse("empty"));
    }
    if unique_id.len() > 200 {
        return Err(refuse("longer than 200 characters"));
    }
    if unique_id.starts_with('.') {
        return Err(refuse("starts with '.'"));
    }
    if !unique_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(refuse(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(dir.join(format!("{unique_id}.wav")))
}

/// Where the writer thread puts blocks.
pub trait BlockSink: Send + 'static {
    /// Writes one block (mono or interleaved stereo samples).
    fn write_block(&mut self, samples: &[i16]) -> Result<(), RecorderError>;
    /// Finishes the output (finalises the WAV header).
    fn finish(self) -> Result<(), RecorderError>;
}

/// Tuning of a [`Recording`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderOptions {
    /// Blocks the channel to the writer holds (default 50 = 1 s of audio).
    pub capacity: usize,
    /// How long a quiet party is waited for before silence is written.
    pub latency: Duration,
    /// Blocks between WAV header updates (default 50 = 1 s of audio).
    pub checkpoint_every: u64,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            capacity: 50,
            latency: DEFAULT_LATENCY,
            checkpoint_every: 50,
        }
    }
}

/// A 16-bit PCM WAV file at 8 kHz written with hound.
pub struct WavSink {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    blocks: u64,
    since_checkpoint: u64,
    checkpoint_every: u64,
}

impl WavSink {
    /// Creates (or truncates) `path` and writes its header.
    pub fn create(
        path: &Path,
        layout: Layout,
        checkpoint_every: u64,
    ) -> Result<WavSink, RecorderError> {
        let writer = hound::WavWriter::create(path, wav_spec(layout)).map_err(|source| {
            RecorderError::Create {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer,
            blocks: 0,
            since_checkpoint: 0,
            checkpoint_every: checkpoint_every.max(1),
        })
    }

    fn write_error(&self, source: hound::Error) -> RecorderError {
        RecorderError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("blocks", &self.blocks)
            .finish_non_exhaustive()
    }
}

impl BlockSink for WavSink {
    fn write_block(&mut self, samples: &[i16]) -> Result<(), RecorderError> {
        let mut w = self.writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w.write_sample(s);
        }
        w.flush().map_err(|e| self.write_error(e))?;
        self.blocks += 1;
        self.since_checkpoint += 1;
        // The first block and then every `checkpoint_every`: header sizes
        // match the data, and the data is on disk (not in the BufWriter).
        let periodic = self.since_checkpoint >= self.checkpoint_every;
        if periodic {
            self.since_checkpoint = 0;
        }
        if periodic || self.blocks == 1 {
            self.writer.flush().map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), RecorderError> {
        let path = self.path;
        self.writer
            .finalize()
            .map_err(|source| RecorderError::Write { path, source })
    }
}

/// The hound spec of a recording.
pub fn wav_spec(layout: Layout) -> hound::WavSpec {
    hound::WavSpec {
        channels: layout.channels(),
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// What the writer thread did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WriterReport {
    blocks_written: u64,
}

enum Message {
    Block(Block),
    /// Blocks handed over at once ([`Recording::send_held`]): one wake-up
    /// of the writer for all of them.
    Blocks(Vec<Block>),
    /// The recording is `blocks` long: fill any dropped tail, then finish.
    End {
        blocks: u64,
    },
}

/// The outcome of a finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// The file, when the recording went to a WAV file.
    pub path: Option<PathBuf>,
    /// Mono or stereo.
    pub layout: Layout,
    /// Length of the file's audio.
    pub duration: Duration,
    /// 20 ms frames in the file, including silence written for dropped ones.
    pub frames_written: u64,
    /// 20 ms frames dropped because the writer's channel was full (their
    /// place in the file is silence).
    pub frames_dropped: u64,
    /// Samples a party sent faster than real time beyond the mixdown's bound.
    pub overrun_samples: u64,
}

/// One running recording: the mixdown plus the channel to its writer thread.
#[derive(Debug)]
pub struct Recording {
    mixdown: Mixdown,
    tx: SyncSender<Message>,
    thread: JoinHandle<Result<WriterReport, RecorderError>>,
    path: Option<PathBuf>,
    frames_dropped: u64,
    /// Blocks sent and not yet taken by the writer: the channel's bound in
    /// blocks, whether they go one per message or in bursts.
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl Recording {
    /// Starts recording to a new WAV file at `path` (created now, on the
    /// calling thread, so a bad directory is reported here), media time
    /// counted from `start`.
    pub fn start(
        path: &Path,
        layout: Layout,
        start: Instant,
        options: RecorderOptions,
    ) -> Result<Recording, RecorderError> {
        let sink = WavSink::create(path, layout, options.checkpoint_every)?;
        let mut rec = Recording::spawn(sink, layout, start, options)?;
        rec.path = Some(path.to_path_buf());
        Ok(rec)
    }

    /// Starts recording into any sink on a writer thread of its own.
    pub fn spawn<S: BlockSink>(
        sink: S,
        layout: Layout,
        start: Instant,
        options: RecorderOptions,
    ) -> Result<Recording, RecorderError> {
        let (tx, rx) = mpsc::sync_channel(options.capacity);
        let silence_len = BLOCK_SAMPLES * usize::from(layout.channels());
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        let thread = std::thread::Builder::new()
            .name("carillon-recorder".into())
            .spawn(move || run_writer(sink, rx, silence_len, &taken))
            .map_err(RecorderError::Spawn)?;
        Ok(Recording {
            mixdown: Mixdown::with_latency(layout, start, options.latency),
            tx,
            thread,
            path: None,
            frames_dropped: 0,
            queued,
            capacity: options.capacity,
        })
    }

    /// A frame of linear samples from `source` arrived at `now`. Never blocks.
    pub fn handle_frame(&mut self, now: Instant, source: Source, samples: &[i16]) {
        self.mixdown.handle_frame(now, source, samples);
        self.send_ready();
    }

    /// As [`Recording::handle_frame`], but the blocks it completes are held
    /// here until [`Recording::send_held`], the next `handle_*` or `stop`.
    /// A caller that hands over several frames at once (the media worker's
    /// tick) then wakes the writer thread once for all of them instead of
    /// once per block (each wake-up is a futex call on the caller's thread
    /// and a context switch). The caller bounds what it holds.
    pub fn hold_frame(&mut self, now: Instant, source: Source, samples: &[i16]) {
        self.mixdown.handle_frame(now, source, samples);
    }

    /// Hands the blocks held by [`Recording::hold_frame`] to the writer, in
    /// one burst. Never blocks.
    pub fn send_held(&mut self) {
        let mut blocks: Vec<Block> = std::iter::from_fn(|| self.mixdown.poll_block()).collect();
        if blocks.len() <= 1 {
            return self.send_blocks(blocks.pop());
        }
        // What the channel still has room for (in blocks) goes in one
        // message; the rest is dropped, as single blocks would have been.
        let room = self
            .capacity
            .saturating_sub(self.queued.load(Ordering::Acquire));
        if blocks.len() > room {
            self.frames_dropped += (blocks.len() - room) as u64;
            blocks.truncate(room);
        }
        let n = blocks.len();
        if n == 0 {
            return;
        }
        self.queued.fetch_add(n, Ordering::AcqRel);
        if self.tx.try_send(Message::Blocks(blocks)).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.frames_dropped += n as u64;
        }
    }

    /// Sends one block, if any (dropped and counted when there is no room).
    fn send_blocks(&mut self, block: Option<Block>) {
        let Some(block) = block else {
            return;
        };
        if self.queued.load(Ordering::Acquire) >= self.capacity {
            self.frames_dropped += 1;
            return;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(Message::Block(block)).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.frames_dropped += 1;
        }
    }

    /// A G.711 payload from `source` arrived at `now`. Never blocks.
    pub fn handle_encoded(&mut self, now: Instant, source: Source, codec: Codec, payload: &[u8]) {
        self.mixdown.handle_encoded(now, source, codec, payload);
        self.send_ready();
    }

    /// Media time advanced to `now` (the media worker's tick): the blocks
    /// ready, held ones included, go to the writer in one burst
    /// ([`Recording::send_held`]). Never blocks.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.mixdown.handle_timeout(now);
        self.send_held();
    }

    /// 20 ms frames dropped so far because the writer fell behind.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped
    }

    /// The file being written, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Ends the recording at `now`: the rest of the audio is written, the
    /// WAV header finalised. Blocks until the writer thread is done, so call
    /// it off the relay path.
    pub fn stop(mut self, now: Instant) -> Result<RecordingSummary, RecorderError> {
        self.mixdown.finish(now);
        let blocks = self.mixdown.blocks_emitted();
        while let Some(block) = self.mixdown.poll_block() {
            // A blocking send: the writer is draining and we wait for it anyway.
            self.queued.fetch_add(1, Ordering::AcqRel);
            if self.tx.send(Message::Block(block)).is_err() {
                self.frames_dropped += 1;
            }
        }
        // If the writer already stopped on an error, the join reports it.
        let _ = self.tx.send(Message::End { blocks });
        drop(self.tx);
        let report = self
            .thread
            .join()
            .map_err(|_| RecorderError::WriterPanicked)??;
        let layout = self.mixdown.layout();
        Ok(RecordingSummary {
            path: self.path,
            layout,
            duration: Duration::from_millis(report.blocks_written * 20),
            frames_written: report.blocks_written,
            frames_dropped: self.frames_dropped,
            overrun_samples: self.mixdown.overrun_samples(),
        })
    }

    fn send_ready(&mut self) {
        while let Some(block) = self.mixdown.poll_block() {
            self.send_blocks(Some(block));
        }
    }
}

fn run_writer<S: BlockSink>(
    mut sink: S,
    rx: Receiver<Message>,
    silence_len: usize,
    queued: &AtomicUsize,
) -> Result<WriterReport, RecorderError> {
    let silence = vec![0i16; silence_len];
    let mut next = 0u64;
    for message in rx.iter() {
        match message {
            Message::Block(block) => {
                queued.fetch_sub(1, Ordering::AcqRel);
                write_block(&mut sink, &silence, &mut next, block)?;
            }
            Message::Blocks(blocks) => {
                queued.fetch_sub(blocks.len(), Ordering::AcqRel);
                for block in blocks {
                    write_block(&mut sink, &silence, &mut next, block)?;
                }
            }
            Message::End { blocks } => {
                while next < blocks {
                    sink.write_block(&silence)?;
                    next += 1;
                }
                break;
            }
        }
    }
    sink.finish()?;
    Ok(WriterReport {
        blocks_written: next,
    })
}

/// Writes `block` at its index (silence for the dropped blocks before it;
/// a block older than `next` is ignored).
fn write_block<S: BlockSink>(
    sink: &mut S,
    silence: &[i16],
    next: &mut u64,
    block: Block,
) -> Result<(), RecorderError> {
    if block.index < *next {
        return Ok(());
    }
    while *next < block.index {
        sink.write_block(silence)?;
        *next += 1;
    }
    sink.write_block(&block.samples)?;
    *next += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_codec::{Goertzel, ToneGenerator};
    use std::sync::Mutex;

    fn ms(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    /// A recording whose channel holds all a test pushes at once (faster
    /// than real time), so no block is dropped and the outcome is
    /// deterministic.
    fn start_roomy(path: &Path, layout: Layout, base: Instant) -> Recording {
        let options = RecorderOptions {
            capacity: 256,
            ..RecorderOptions::default()
        };
        Recording::start(path, layout, base, options).unwrap()
    }

    /// A sink that stops in its first write until the test opens the gate.
    struct GatedSink {
        entered: mpsc::Sender<()>,
        gate: Receiver<()>,
        held: bool,
        written: Arc<Mutex<Vec<Vec<i16>>>>,
        finished: Arc<Mutex<bool>>,
    }

    impl BlockSink for GatedSink {
        fn write_block(&mut self, samples: &[i16]) -> Result<(), RecorderError> {
            if self.held {
                self.held = false;
                let _ = self.entered.send(());
                let _ = self.gate.recv_timeout(Duration::from_secs(30));
            }
            self.written.lock().unwrap().push(samples.to_vec());
            Ok(())
        }
        fn finish(self) -> Result<(), RecorderError> {
            *self.finished.lock().unwrap() = true;
            Ok(())
        }
    }

    #[test]
    fn a_full_channel_counts_dropped_frames_instead_of_blocking() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let finished = Arc::new(Mutex::new(false));
        let sink = GatedSink {
            entered: entered_tx,
            gate: gate_rx,
            held: true,
            written: written.clone(),
            finished: finished.clone(),
        };
        let base = Instant::now();
        let options = RecorderOptions {
            capacity: 2,
            ..RecorderOptions::default()
        };
        let mut rec = Recording::spawn(sink, Layout::Mono, base, options).unwrap();
        let frame = [100i16; 160];
        rec.handle_frame(ms(base, 20), Source::Caller, &frame);
        rec.handle_frame(ms(base, 20), Source::Agent, &frame);
        // The writer took block 0 and is stuck writing it.
        entered_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        for t in (2..=10u64).map(|i| i * 20) {
            rec.handle_frame(ms(base, t), Source::Caller, &frame);
            rec.handle_frame(ms(base, t), Source::Agent, &frame);
        }
        // Blocks 1 and 2 fit in the channel; blocks 3..=9 were dropped.
        assert_eq!(rec.frames_dropped(), 7);
        gate_tx.send(()).unwrap();
        let summary = rec.stop(ms(base, 200)).unwrap();
        assert_eq!(summary.frames_dropped, 7);
        assert_eq!(summary.frames_written, 10);
        assert_eq!(summary.duration, Duration::from_millis(200));
        assert!(*finished.lock().unwrap());
        let written = written.lock().unwrap();
        assert_eq!(written.len(), 10);
        for (i, block) in written.iter().enumerate() {
            let expected = if i < 3 { 200 } else { 0 };
            assert!(
                block.iter().all(|&s| s == expected),
                "block {i}: dropped blocks are silence, kept ones are audio"
            );
        }
    }

    #[test]
    fn a_stereo_file_from_ulaw_and_alaw_parties_reads_back_with_each_on_its_channel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1700000000.42.wav");
        let base = Instant::now();
        let mut rec = start_roomy(&path, Layout::Stereo, base);
        let mut caller = ToneGenerator::new(400.0, 8000);
        let mut agent = ToneGenerator::new(1000.0, 8000);
        let (mut tc, mut ta) = (20u64, 30u64);
        while tc <= 2400 || ta <= 2400 {
            if tc <= ta {
                let mut p = [0u8; 160];
                caller.fill_encoded(Codec::Pcmu, &mut p);
                rec.handle_encoded(ms(base, tc), Source::Caller, Codec::Pcmu, &p);
                tc += 20;
            } else {
                let mut p = [0u8; 240];
                agent.fill_encoded(Codec::Pcma, &mut p);
                rec.handle_encoded(ms(base, ta), Source::Agent, Codec::Pcma, &p);
                ta += 30;
            }
        }
        let summary = rec.stop(ms(base, 2400)).unwrap();
        assert_eq!(summary.path.as_deref(), Some(path.as_path()));
        assert_eq!(summary.frames_written, 120);
        assert_eq!(summary.frames_dropped, 0);
        assert_eq!(summary.duration, Duration::from_millis(2400));

        let mut reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(reader.duration(), 19200);
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        assert!(Goertzel::new(400.0, 8000).relative_power(&left) > 0.9);
        assert!(Goertzel::new(1000.0, 8000).relative_power(&left) < 0.01);
        assert!(Goertzel::new(1000.0, 8000).relative_power(&right) > 0.9);
        assert!(Goertzel::new(400.0, 8000).relative_power(&right) < 0.01);
    }

    #[test]
    fn a_mono_file_holds_the_mix_and_its_size_matches_the_audio() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mono.wav");
        let base = Instant::now();
        let mut rec = start_roomy(&path, Layout::Mono, base);
        let mut caller = ToneGenerator::new(400.0, 8000);
        let mut agent = ToneGenerator::new(1000.0, 8000);
        for t in (1..=50u64).map(|i| i * 20) {
            let mut f = [0i16; 160];
            caller.fill(&mut f);
            rec.handle_frame(ms(base, t), Source::Caller, &f);
            agent.fill(&mut f);
            rec.handle_frame(ms(base, t), Source::Agent, &f);
        }
        rec.stop(ms(base, 1000)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 8000 * 2);
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 1);
        let mono: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert!(Goertzel::new(400.0, 8000).relative_power(&mono) > 0.3);
        assert!(Goertzel::new(1000.0, 8000).relative_power(&mono) > 0.3);
    }

    #[test]
    fn a_file_that_received_one_frame_is_readable_without_finalize() {
        // A crash right after the first block: the writer is never finalised
        // (forgotten, so hound's Drop does not finalise either).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.wav");
        let mut sink = WavSink::create(&path, Layout::Mono, 50).unwrap();
        sink.write_block(&[7i16; 160]).unwrap();
        std::mem::forget(sink);
        assert!(std::fs::metadata(&path).unwrap().len() > 44);
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.duration(), 160);
        assert!(reader.samples::<i16>().all(|s| s.unwrap() == 7));
    }

    #[test]
    fn a_short_burst_of_audio_is_never_a_header_only_file() {
        // Less than one block of audio, then stop: the partial block is
        // padded and written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.wav");
        let base = Instant::now();
        let mut rec =
            Recording::start(&path, Layout::Stereo, base, RecorderOptions::default()).unwrap();
        rec.handle_frame(ms(base, 10), Source::Caller, &[5i16; 80]);
        let summary = rec.stop(ms(base, 10)).unwrap();
        assert_eq!(summary.frames_written, 1);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 44 + 160 * 2 * 2);
        let mut reader = hound::WavReader::open(&path).unwrap();
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(samples.iter().filter(|&&s| s == 5).count(), 80);
    }

    /// A sink whose disk is full from the second block on.
    struct FailingSink {
        path: PathBuf,
        writes: u32,
    }

    impl BlockSink for FailingSink {
        fn write_block(&mut self, _samples: &[i16]) -> Result<(), RecorderError> {
            self.writes += 1;
            if self.writes >= 2 {
                return Err(RecorderError::Write {
                    path: self.path.clone(),
                    source: hound::Error::IoError(std::io::Error::other("disk full")),
                });
            }
            Ok(())
        }
        fn finish(self) -> Result<(), RecorderError> {
            Ok(())
        }
    }

    #[test]
    fn held_blocks_reach_the_writer_only_when_sent_and_then_in_one_burst() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = GatedSink {
            entered: entered_tx,
            gate: gate_rx,
            held: true,
            written: written.clone(),
            finished: Arc::new(Mutex::new(false)),
        };
        let base = Instant::now();
        let options = RecorderOptions {
            capacity: 2,
            ..RecorderOptions::default()
        };
        let mut rec = Recording::spawn(sink, Layout::Mono, base, options).unwrap();
        // Ten blocks' worth of frames, held: nothing reaches the channel,
        // so nothing can be dropped however small it is.
        for t in (1..=10u64).map(|i| i * 20) {
            rec.hold_frame(ms(base, t), Source::Caller, &[100i16; 160]);
            rec.hold_frame(ms(base, t), Source::Agent, &[100i16; 160]);
        }
        assert_eq!(rec.frames_dropped(), 0);
        assert!(entered_rx.try_recv().is_err(), "the writer got nothing");
        // Sent at once: the writer takes one and is stuck in it, the
        // channel holds two, the other seven are dropped.
        rec.send_held();
        entered_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(rec.frames_dropped() >= 7, "{}", rec.frames_dropped());
        gate_tx.send(()).unwrap();
        let summary = rec.stop(ms(base, 200)).unwrap();
        assert_eq!(summary.frames_written, 10);
        assert_eq!(written.lock().unwrap().len(), 10);
    }

    #[test]
    fn a_writer_that_fails_is_reported_at_stop_and_audio_goes_on() {
        let base = Instant::now();
        let sink = FailingSink {
            path: PathBuf::from("/recordings/full.wav"),
            writes: 0,
        };
        let mut rec =
            Recording::spawn(sink, Layout::Mono, base, RecorderOptions::default()).unwrap();
        // Far more blocks than the channel holds: once the writer has
        // stopped on its error, each one is dropped, none blocks.
        for t in (1..=200u64).map(|i| i * 20) {
            rec.handle_frame(ms(base, t), Source::Caller, &[3i16; 160]);
            rec.handle_frame(ms(base, t), Source::Agent, &[3i16; 160]);
        }
        assert!(rec.frames_dropped() >= 200 - 50 - 2);
        let err = rec.stop(ms(base, 4000)).unwrap_err();
        assert!(matches!(err, RecorderError::Write { .. }), "{err}");
        assert!(err.to_string().contains("/recordings/full.wav"));
        assert!(err.to_string().contains("disk full"));
    }

    #[test]
    fn the_file_is_named_after_the_calls_unique_id_inside_the_directory() {
        let dir = Path::new("/var/spool/carillon/monitor");
        assert_eq!(
            recording_path(dir, "1700000000.42").unwrap(),
            dir.join("1700000000.42.wav")
        );
        assert_eq!(
            recording_path(dir, "carillon-1700000000_7").unwrap(),
            dir.join("carillon-1700000000_7.wav")
        );
        for bad in ["", "../etc/passwd", "a/b", ".hidden", "x\\y", "a b", "é"] {
            let err = recording_path(dir, bad).unwrap_err();
            assert!(matches!(err, RecorderError::FileName { .. }), "{bad:?}");
        }
        assert!(recording_path(dir, &"9".repeat(201)).is_err());
    }

    #[test]
    fn a_recording_in_a_missing_directory_is_a_create_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/x.wav");
        let err = Recording::start(
            &path,
            Layout::Mono,
            Instant::now(),
            RecorderOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, RecorderError::Create { .. }), "{err}");
        assert!(err.to_string().contains("no/such/dir/x.wav"));
    }
}
