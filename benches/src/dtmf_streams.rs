//! The two 8 kHz test streams of the in-band DTMF benchmarks, shared by
//! `benches/dtmf_detect.rs` (criterion) and `examples/dtmf_count.rs`
//! (callgrind) through `#[path]`: deterministic noise without tones, and key
//! presses of 100 ms with 60 ms pauses at -10 dBFS per tone.

use carillon_dtmf::{Digit, DtmfGenerator};

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// Deterministic pseudo-random noise (xorshift), about -20 dBFS.
pub fn noise(samples: usize) -> Vec<i16> {
    let mut x: u32 = 0x1234_5678;
    (0..samples)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((x >> 16) as i16) / 8
        })
        .collect()
}

/// Key presses of 100 ms with 60 ms pauses at -10 dBFS per tone.
pub fn tones(samples: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(samples);
    let mut keys = Digit::ALL.iter().cycle();
    while out.len() < samples {
        let mut on = vec![0i16; 800];
        if let Some(&d) = keys.next() {
            DtmfGenerator::new(d, -10.0, -10.0).fill(&mut on);
        }
        out.extend(on);
        out.extend_from_slice(&[0; 480]);
    }
    out.truncate(samples);
    out
}
