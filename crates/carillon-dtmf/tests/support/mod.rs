//! Shared helpers for the detector's tests: signal synthesis (tones, noise,
//! chords) with seeded randomness, and a driver that pushes a signal in
//! frames of a chosen size and collects every event.
#![allow(dead_code)]

use carillon_codec::Codec;
use carillon_dtmf::generator::amplitude;
use carillon_dtmf::{Digit, DtmfDetector, DtmfEvent, DtmfGenerator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const RATE: usize = 8000;

pub fn ms(n: usize) -> usize {
    n * RATE / 1000
}

/// `duration_ms` of `digit` with the given per-tone levels and frequency scale.
pub fn tone(digit: Digit, low_dbfs: f64, high_dbfs: f64, scale: f64, samples: usize) -> Vec<i16> {
    let mut out = vec![0; samples];
    DtmfGenerator::with_options(digit, low_dbfs, high_dbfs, scale, RATE as u32).fill(&mut out);
    out
}

pub fn silence(samples: usize) -> Vec<i16> {
    vec![0; samples]
}

/// Adds uniform white noise of RMS `rms_dbfs` (relative to a full-scale sine's RMS).
pub fn add_noise(signal: &mut [i16], rms_dbfs: f64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Uniform on [-a, a] has RMS a/sqrt(3); a full-scale sine has RMS 32767/sqrt(2).
    let rms = f64::from(amplitude(rms_dbfs)) / 2f64.sqrt();
    let a = rms * 3f64.sqrt();
    for s in signal.iter_mut() {
        let v = f64::from(*s) + rng.gen_range(-a..=a);
        *s = v.round().clamp(-32768.0, 32767.0) as i16;
    }
}

/// Sum of sines `(hz, dbfs)` for `samples` samples.
pub fn sines(parts: &[(f64, f64)], samples: usize, phase_from: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            let t = (n + phase_from) as f64 / RATE as f64;
            let v: f64 = parts
                .iter()
                .map(|&(hz, db)| f64::from(amplitude(db)) * (std::f64::consts::TAU * hz * t).sin())
                .sum();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Pushes `signal` in frames of `frame` samples, then flushes; returns all events.
pub fn detect(signal: &[i16], frame: usize) -> Vec<DtmfEvent> {
    let mut d = DtmfDetector::new(RATE as u32).expect("8 kHz is supported");
    let mut events = Vec::new();
    for chunk in signal.chunks(frame) {
        d.push(chunk);
        while let Some(e) = d.poll_event() {
            events.push(e);
        }
    }
    d.flush();
    while let Some(e) = d.poll_event() {
        events.push(e);
    }
    events
}

/// Encodes `signal` with `codec` and pushes it in 20 ms packets (160
/// bytes), without a flush, as a call that goes on; returns the events.
pub fn detect_g711(codec: Codec, signal: &[i16]) -> Vec<DtmfEvent> {
    let payload: Vec<u8> = signal.iter().map(|&x| codec.encode_sample(x)).collect();
    let mut d = DtmfDetector::new(RATE as u32).expect("8 kHz is supported");
    let mut events = Vec::new();
    for packet in payload.chunks(160) {
        d.push_g711(codec, packet);
        events.extend(std::iter::from_fn(|| d.poll_event()));
    }
    events
}

/// The digits of the `Began` events, in order.
pub fn began(events: &[DtmfEvent]) -> String {
    digits(events, |e| matches!(e, DtmfEvent::Began { .. }))
}

/// The digits of the `Ended` events, in order.
pub fn ended(events: &[DtmfEvent]) -> String {
    digits(events, |e| matches!(e, DtmfEvent::Ended { .. }))
}

fn digits(events: &[DtmfEvent], keep: impl Fn(&DtmfEvent) -> bool) -> String {
    events
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.digit().as_char())
        .collect()
}

/// Silence, `tone`, silence.
pub fn padded(lead: usize, body: &[i16], trail: usize) -> Vec<i16> {
    let mut v = silence(lead);
    v.extend_from_slice(body);
    v.extend(silence(trail));
    v
}

/// Reads a mono 16-bit PCM WAV (RIFF) into samples; returns (rate, samples).
pub fn read_wav(bytes: &[u8]) -> (u32, Vec<i16>) {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut pos = 12;
    let mut rate = 0;
    let mut samples = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            let format = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            assert!(format == 1 || format == 0xFFFE, "PCM expected");
            assert_eq!((channels, bits), (1, 16), "mono 16-bit expected");
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            samples = Some(
                body.chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            );
        }
        pos += 8 + len + (len & 1);
    }
    (rate, samples.expect("a data chunk"))
}
