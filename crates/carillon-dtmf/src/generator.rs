//! DTMF tone synthesis: two phase-continuous sines (via
//! `carillon_codec::ToneGenerator`) summed with saturation.
//!
//! Owns the level of each tone (dBFS, where 0 dBFS is a full-scale sine of
//! peak 32767), hence the twist, and an optional frequency scale to
//! synthesise off-nominal tones. It does not own cadence (tone/pause
//! lengths): callers fill as many samples as they want a key held. Used by
//! the detector's tests and benchmark, and available to anything that must
//! send in-band digits.

use crate::digit::Digit;
use carillon_codec::ToneGenerator;

/// A two-tone DTMF source whose phase continues across `fill` calls.
#[derive(Debug, Clone, PartialEq)]
pub struct DtmfGenerator {
    low: ToneGenerator,
    high: ToneGenerator,
}

/// Peak amplitude of a sine at `dbfs` (0 dBFS = 32767), clamped to i16.
pub fn amplitude(dbfs: f64) -> i16 {
    (32767.0 * 10f64.powf(dbfs / 20.0))
        .round()
        .clamp(0.0, 32767.0) as i16
}

impl DtmfGenerator {
    /// `digit` at 8000 Hz with the low (row) tone at `low_dbfs` and the high
    /// (column) tone at `high_dbfs`; twist is `high_dbfs - low_dbfs`.
    pub fn new(digit: Digit, low_dbfs: f64, high_dbfs: f64) -> Self {
        Self::with_options(digit, low_dbfs, high_dbfs, 1.0, 8000)
    }

    /// As [`DtmfGenerator::new`], with both frequencies multiplied by
    /// `frequency_scale` (1.015 = +1.5 %) and an explicit sample rate.
    pub fn with_options(
        digit: Digit,
        low_dbfs: f64,
        high_dbfs: f64,
        frequency_scale: f64,
        sample_rate: u32,
    ) -> Self {
        let (low, high) = digit.frequencies();
        DtmfGenerator {
            low: ToneGenerator::with_sample_rate(
                low * frequency_scale,
                amplitude(low_dbfs),
                sample_rate,
            ),
            high: ToneGenerator::with_sample_rate(
                high * frequency_scale,
                amplitude(high_dbfs),
                sample_rate,
            ),
        }
    }

    /// Fills `out` with the next samples (the sum saturates at i16 limits).
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            let sum = i32::from(self.low.next_sample()) + i32::from(self.high.next_sample());
            *s = sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
    }
}
