//! Pushes N 20 ms frames (160 samples) through one in-band DTMF detector,
//! for instruction counting under callgrind:
//! `valgrind --tool=callgrind target/release/examples/dtmf_count quiet 10001`.
//! Arguments: `quiet|tones` `N`. The streams are those of the criterion
//! bench (`src/dtmf_streams.rs`), generated before the first frame. Prints
//! how many key presses were detected.

use std::hint::black_box;

#[path = "../src/dtmf_streams.rs"]
mod dtmf_streams;

use carillon_dtmf::DtmfDetector;
use dtmf_streams::{noise, tones, FRAME};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "quiet".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let frames = 100;
    let stream = match kind.as_str() {
        "tones" => tones(FRAME * frames),
        _ => noise(FRAME * frames),
    };
    let mut det = match DtmfDetector::new(8000) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let mut presses = 0u64;
    for frame in stream.chunks_exact(FRAME).cycle().take(n) {
        det.push(black_box(frame));
        while let Some(e) = det.poll_event() {
            presses += u64::from(matches!(e, carillon_dtmf::DtmfEvent::Began { .. }));
        }
    }
    println!("{kind}: {n} frames, {presses} presses");
}
