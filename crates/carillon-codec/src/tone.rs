//! Test and signalling tones: a phase-continuous sine [`ToneGenerator`] and a
//! single-frequency [`Goertzel`] energy detector.
//!
//! Owns sample-level synthesis and measurement at a given sample rate
//! (8000 Hz by default, the G.711 rate). It does not own cadences (ring-back
//! on/off patterns), mixing or packetisation: callers fill 20 ms frames
//! (160 samples) one after another and the phase carries over between calls.
//! Math is `f64`; results are deterministic for a given input.

use crate::transcode::{self, Codec, CodecError};
use std::f64::consts::TAU;

/// Default sample rate (G.711 narrowband).
pub const SAMPLE_RATE: u32 = 8000;

/// A sine generator whose phase continues across calls.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneGenerator {
    /// Phase in cycles, kept in `[0, 1)`.
    phase: f64,
    /// Phase advance per sample, in cycles.
    step: f64,
    amplitude: f64,
}

impl ToneGenerator {
    /// A tone of `frequency_hz` with peak `amplitude` at 8000 Hz.
    pub fn new(frequency_hz: f64, amplitude: i16) -> Self {
        Self::with_sample_rate(frequency_hz, amplitude, SAMPLE_RATE)
    }

    /// A tone at an explicit sample rate (a zero rate yields silence).
    pub fn with_sample_rate(frequency_hz: f64, amplitude: i16, sample_rate: u32) -> Self {
        let step = if sample_rate == 0 {
            0.0
        } else {
            (frequency_hz / f64::from(sample_rate)).rem_euclid(1.0)
        };
        ToneGenerator {
            phase: 0.0,
            step,
            amplitude: f64::from(amplitude).abs(),
        }
    }

    /// The next sample.
    #[inline]
    pub fn next_sample(&mut self) -> i16 {
        let value = self.amplitude * (TAU * self.phase).sin();
        self.phase += self.step;
        if self.phase >= 1.0 {
            self.phase -= 1.0;
        }
        value
            .round()
            .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }

    /// Fills `out` with the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out.iter_mut() {
            *sample = self.next_sample();
        }
    }

    /// Fills an encoded payload (one byte per sample) with the next samples.
    pub fn fill_encoded(&mut self, codec: Codec, out: &mut [u8]) {
        for code in out.iter_mut() {
            *code = codec.encode_sample(self.next_sample());
        }
    }
}

/// Single-frequency energy detector (Goertzel algorithm).
///
/// Works for any target frequency, not only DFT bin centres; the result is
/// the DTFT of the block at that frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goertzel {
    coefficient: f64,
}

impl Goertzel {
    /// A detector for `frequency_hz` at `sample_rate` Hz.
    pub fn new(frequency_hz: f64, sample_rate: u32) -> Self {
        let omega = if sample_rate == 0 {
            0.0
        } else {
            TAU * frequency_hz / f64::from(sample_rate)
        };
        Goertzel {
            coefficient: 2.0 * omega.cos(),
        }
    }

    /// `|X(f)|²` of the block.
    pub fn magnitude_squared(&self, samples: &[i16]) -> f64 {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) + self.coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - self.coefficient * s1 * s2).max(0.0)
    }

    /// Estimated peak amplitude of the component at the target frequency
    /// (exact for a sine whose frequency fits a whole number of cycles in the block).
    pub fn amplitude(&self, samples: &[i16]) -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        2.0 * self.magnitude_squared(samples).sqrt() / samples.len() as f64
    }

    /// Share of the block's energy at the target frequency, about 1.0 for a
    /// pure tone at that frequency and near 0.0 for other tones or silence.
    pub fn relative_power(&self, samples: &[i16]) -> f64 {
        let n = samples.len() as f64;
        let total: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if total <= 0.0 {
            return 0.0;
        }
        // A sine of amplitude A has |X|² = (A·N/2)² and energy A²·N/2.
        2.0 * self.magnitude_squared(samples) / (n * total)
    }

    /// Decodes a G.711 payload into `scratch` and measures its relative power.
    pub fn relative_power_encoded(
        &self,
        codec: Codec,
        payload: &[u8],
        scratch: &mut [i16],
    ) -> Result<f64, CodecError> {
        let n = transcode::decode(codec, payload, scratch)?;
        Ok(self.relative_power(scratch.get(..n).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_phase_continuous() {
        let mut one = ToneGenerator::new(1000.0, 8000);
        let mut whole = [0i16; 320];
        one.fill(&mut whole);
        let mut two = ToneGenerator::new(1000.0, 8000);
        let mut a = [0i16; 160];
        let mut b = [0i16; 160];
        two.fill(&mut a);
        two.fill(&mut b);
        assert_eq!(&whole[..160], &a[..]);
        assert_eq!(&whole[160..], &b[..]);
    }

    #[test]
    fn generated_tone_reaches_its_amplitude() {
        let mut gen = ToneGenerator::new(1000.0, 10000);
        let mut buf = [0i16; 160];
        gen.fill(&mut buf);
        let peak = buf.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
        // 1000 Hz at 8000 Hz puts samples at 45° steps, so ±amplitude is hit.
        assert_eq!(peak, 10000);
    }

    #[test]
    fn goertzel_finds_the_generated_frequency_and_not_another() {
        let mut gen = ToneGenerator::new(1000.0, 8000);
        let mut buf = [0i16; 160];
        gen.fill(&mut buf);
        let at = Goertzel::new(1000.0, 8000);
        let off = Goertzel::new(1500.0, 8000);
        assert!(
            at.relative_power(&buf) > 0.95,
            "{}",
            at.relative_power(&buf)
        );
        assert!(
            off.relative_power(&buf) < 0.05,
            "{}",
            off.relative_power(&buf)
        );
        assert!((at.amplitude(&buf) - 8000.0).abs() < 10.0);
    }

    #[test]
    fn goertzel_reports_nothing_in_silence() {
        let g = Goertzel::new(440.0, 8000);
        assert_eq!(g.relative_power(&[0; 160]), 0.0);
        assert_eq!(g.amplitude(&[]), 0.0);
    }

    #[test]
    fn tone_survives_g711_encoding() {
        let mut gen = ToneGenerator::new(697.0, 6000);
        let mut payload = [0u8; 160];
        gen.fill_encoded(Codec::Pcma, &mut payload);
        let mut scratch = [0i16; 160];
        let g = Goertzel::new(697.0, 8000);
        let p = g.relative_power_encoded(Codec::Pcma, &payload, &mut scratch);
        assert!(p.is_ok_and(|p| p > 0.9));
    }
}
