//! Cost of the in-band DTMF detector (`carillon_dtmf::DtmfDetector`) per
//! 20 ms frame per channel: one `push` of 160 samples at 8 kHz plus draining
//! its events, on a stream without tones (speech-like noise, the common
//! case: only the 8-filter Goertzel bank and the block checks run) and on a
//! stream of key presses (the second-harmonic check also runs on blocks that
//! pass the others). The streams are 2 s loops prepared outside the timed
//! part; each iteration pushes the next frame, so state carries across
//! frames as in a call. Target (issue 13): at most 1 µs per frame.
//! Run: `cargo bench -p carillon-benches --bench dtmf_detect`.

use std::hint::black_box;
use std::time::Duration;

use carillon_dtmf::DtmfDetector;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../src/dtmf_streams.rs"]
mod dtmf_streams;
use dtmf_streams::{noise, tones, FRAME};

/// Frames in each looped stream (2 s).
const FRAMES: usize = 100;

fn bench_stream(c: &mut Criterion, name: &str, stream: &[i16]) {
    let mut group = c.benchmark_group("dtmf_detect");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        let mut det = DtmfDetector::new(8000).unwrap_or_else(|e| panic!("{e}"));
        let mut frames = stream.chunks_exact(FRAME).cycle();
        let mut digits = 0u64;
        b.iter(|| {
            if let Some(frame) = frames.next() {
                det.push(black_box(frame));
            }
            while let Some(e) = det.poll_event() {
                digits += u64::from(black_box(e).digit().as_char() as u8 > 0);
            }
        });
        black_box(digits);
    });
    group.finish();
}

fn dtmf(c: &mut Criterion) {
    let quiet = noise(FRAME * FRAMES);
    let keyed = tones(FRAME * FRAMES);
    // Sanity (outside the timing): the keyed stream is detected, the noise is not.
    let count = |s: &[i16]| {
        let mut d = DtmfDetector::new(8000).unwrap_or_else(|e| panic!("{e}"));
        d.push(s);
        std::iter::from_fn(|| d.poll_event()).count()
    };
    assert_eq!(count(&quiet), 0, "noise must give no digit");
    assert!(count(&keyed) >= 2 * 12, "tones must be detected");
    bench_stream(c, "20ms_frame_no_tones", &quiet);
    bench_stream(c, "20ms_frame_with_tones", &keyed);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = dtmf
}
criterion_main!(benches);
