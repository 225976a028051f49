//! Criterion benchmarks of call recording (`carillon-recorder`): what one
//! 20 ms frame pair (caller µ-law + agent A-law, 160 samples each) costs the
//! audio side, through the sans-IO `Mixdown` alone and through a
//! `Recording` (mixdown + `try_send` to a writer thread that keeps up, so
//! each send hands a block over and wakes it), and what one
//! 20 ms block costs the writer thread in a real WAV file (hound, header
//! checkpoint every 50 blocks). Media time advances 20 ms per iteration, so
//! every iteration emits exactly one block.
//! Run: `cargo bench -p carillon-benches --bench recorder`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carillon_codec::{Codec, ToneGenerator};
use carillon_recorder::{
    BlockSink, Layout, Mixdown, RecorderError, RecorderOptions, Recording, Source, WavSink,
};
use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::short;

const FRAME_MS: u64 = 20;

fn payloads() -> ([u8; 160], [u8; 160]) {
    let mut caller = [0u8; 160];
    let mut agent = [0u8; 160];
    ToneGenerator::new(400.0, 8000).fill_encoded(Codec::Pcmu, &mut caller);
    ToneGenerator::new(1000.0, 8000).fill_encoded(Codec::Pcma, &mut agent);
    (caller, agent)
}

fn mixdown(c: &mut Criterion) {
    let (caller, agent) = payloads();
    let mut g = c.benchmark_group("recorder_mixdown_pair");
    for (name, layout) in [("mono", Layout::Mono), ("stereo", Layout::Stereo)] {
        g.bench_function(name, |b| {
            let base = Instant::now();
            let mut m = Mixdown::new(layout, base);
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                let now = base + Duration::from_millis(n * FRAME_MS);
                m.handle_encoded(now, Source::Caller, Codec::Pcmu, black_box(&caller));
                m.handle_encoded(now, Source::Agent, Codec::Pcma, black_box(&agent));
                while let Some(block) = m.poll_block() {
                    black_box(block);
                }
            })
        });
    }
    g.finish();

    // 20 ms µ-law caller against a 30 ms A-law agent: one iteration is a
    // 60 ms cycle (3 caller frames, 2 agent frames, 3 blocks out).
    let agent30 = {
        let mut p = [0u8; 240];
        ToneGenerator::new(1000.0, 8000).fill_encoded(Codec::Pcma, &mut p);
        p
    };
    let mut g = c.benchmark_group("recorder_mixdown_60ms_cycle");
    g.bench_function("stereo_20ms_vs_30ms", |b| {
        let base = Instant::now();
        let mut m = Mixdown::new(Layout::Stereo, base);
        let mut cycle = 0u64;
        b.iter(|| {
            let t0 = cycle * 60;
            cycle += 1;
            let at = |ms: u64| base + Duration::from_millis(t0 + ms);
            m.handle_encoded(at(20), Source::Caller, Codec::Pcmu, &caller);
            m.handle_encoded(at(30), Source::Agent, Codec::Pcma, &agent30);
            m.handle_encoded(at(40), Source::Caller, Codec::Pcmu, &caller);
            m.handle_encoded(at(60), Source::Caller, Codec::Pcmu, &caller);
            m.handle_encoded(at(60), Source::Agent, Codec::Pcma, &agent30);
            while let Some(block) = m.poll_block() {
                black_box(block);
            }
        })
    });
    g.finish();
}

/// A writer-thread sink that keeps nothing but a count: isolates the audio
/// side's cost and lets the bench wait for the writer between batches.
struct CountingSink(Arc<AtomicU64>);

impl BlockSink for CountingSink {
    fn write_block(&mut self, samples: &[i16]) -> Result<(), RecorderError> {
        black_box(samples);
        self.0.fetch_add(1, Ordering::Release);
        Ok(())
    }
    fn finish(self) -> Result<(), RecorderError> {
        Ok(())
    }
}

/// Pairs pushed per timed batch: fewer than the channel holds (50), and
/// the writer drains the channel (untimed) between batches, so every
/// `try_send` succeeds, as when audio comes at real-time pace.
const BATCH: u64 = 40;

fn recording(c: &mut Criterion) {
    let (caller, agent) = payloads();
    let mut g = c.benchmark_group("recorder_recording_pair");
    for (name, layout) in [("mono", Layout::Mono), ("stereo", Layout::Stereo)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let written = Arc::new(AtomicU64::new(0));
                let base = Instant::now();
                let sink = CountingSink(written.clone());
                let mut rec =
                    Recording::spawn(sink, layout, base, RecorderOptions::default()).unwrap();
                let mut timed = Duration::ZERO;
                let mut n = 0u64;
                while n < iters {
                    let batch = BATCH.min(iters - n);
                    let start = Instant::now();
                    for _ in 0..batch {
                        n += 1;
                        let now = base + Duration::from_millis(n * FRAME_MS);
                        rec.handle_encoded(now, Source::Caller, Codec::Pcmu, black_box(&caller));
                        rec.handle_encoded(now, Source::Agent, Codec::Pcma, black_box(&agent));
                    }
                    timed += start.elapsed();
                    // Untimed: let the writer catch up (bounded wait).
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while written.load(Ordering::Acquire) < n {
                        assert!(Instant::now() < deadline, "writer thread stalled");
                        std::thread::yield_now();
                    }
                }
                let summary = rec
                    .stop(base + Duration::from_millis(n * FRAME_MS))
                    .unwrap();
                assert_eq!(summary.frames_dropped, 0, "every try_send succeeded");
                timed
            })
        });
    }
    g.finish();
}

fn wav_writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let block: Vec<i16> = (0..320).map(|i| (i * 97 % 2000) as i16 - 1000).collect();
    let mut g = c.benchmark_group("recorder_wav_block");
    g.bench_function("stereo_write_block", |b| {
        b.iter_custom(|iters| {
            let path = dir.path().join("bench.wav");
            let mut sink = WavSink::create(&path, Layout::Stereo, 50).unwrap();
            let start = Instant::now();
            for _ in 0..iters {
                sink.write_block(black_box(&block)).unwrap();
            }
            let elapsed = start.elapsed();
            sink.finish().unwrap();
            std::fs::remove_file(&path).unwrap();
            elapsed
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = short();
    targets = mixdown, recording, wav_writer
}
criterion_main!(benches);
