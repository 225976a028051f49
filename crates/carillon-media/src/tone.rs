//! Cadenced call-progress tones (ringback, busy, congestion, Playtones)
//! generated frame by frame from a [`ToneSpec`]: up to two frequencies
//! summed at a level in dBm0, segments played in order and repeated.
//!
//! Owns the cadence position and the oscillators; the phase of each
//! frequency carries over from one frame to the next (no click at frame
//! boundaries). It does not own packetisation (see [`crate::player`]).

use carillon_codec::tone::ToneGenerator;
use carillon_mediactl::ToneSpec;
use std::sync::Arc;
use std::time::Duration;

/// Peak amplitude (16-bit linear) of a 0 dBm0 sine: G.711's full scale
/// (+3.17 dBm0) is 32,124.
const ZERO_DBM0_PEAK: f64 = 22_300.0;

/// Samples at 8 kHz in `d`.
pub fn samples_in(d: Duration) -> u64 {
    (d.as_nanos() * 8000 / 1_000_000_000) as u64
}

/// One playing tone.
#[derive(Debug, Clone)]
pub struct ToneSource {
    spec: Arc<ToneSpec>,
    segment: usize,
    /// Samples played of the current segment.
    in_segment: u64,
    generators: [Option<ToneGenerator>; 2],
    /// Samples left to play (`None`: until stopped).
    remaining: Option<u64>,
}

impl ToneSource {
    /// `spec` for `duration` (or until stopped).
    pub fn new(spec: Arc<ToneSpec>, duration: Option<Duration>) -> Self {
        let mut tone = ToneSource {
            spec,
            segment: 0,
            in_segment: 0,
            generators: [None, None],
            remaining: duration.map(samples_in),
        };
        tone.start_segment();
        tone
    }

    fn segment_len(&self) -> u64 {
        self.spec
            .segments
            .get(self.segment)
            .map_or(0, |s| samples_in(s.duration))
    }

    fn start_segment(&mut self) {
        self.in_segment = 0;
        let Some(segment) = self.spec.segments.get(self.segment) else {
            self.generators = [None, None];
            return;
        };
        let peak = ZERO_DBM0_PEAK * 10f64.powf(f64::from(segment.level_dbm0) / 20.0);
        let amplitude = peak.clamp(0.0, f64::from(i16::MAX)) as i16;
        self.generators = segment.freqs.map(|f| {
            f.filter(|&f| f > 0)
                .map(|f| ToneGenerator::new(f64::from(f), amplitude))
        });
    }

    /// Moves to the next segment with samples (none at all: stays silent).
    fn next_segment(&mut self) {
        let count = self.spec.segments.len();
        for _ in 0..count {
            self.segment = (self.segment + 1) % count;
            if self.segment_len() > 0 {
                break;
            }
        }
        self.start_segment();
    }

    /// Fills the front of `out` with the next samples; returns how many
    /// (fewer than `out.len()` only when the duration ends).
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = match self.remaining {
            Some(left) => out.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => out.len(),
        };
        let all_silent = self
            .spec
            .segments
            .iter()
            .all(|s| samples_in(s.duration) == 0);
        for sample in out.iter_mut().take(n) {
            if !all_silent && self.in_segment >= self.segment_len() {
                self.next_segment();
            }
            let mut value = 0i32;
            for g in self.generators.iter_mut().flatten() {
                value += i32::from(g.next_sample());
            }
            *sample = value.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            self.in_segment += 1;
        }
        if all_silent {
            self.generators = [None, None];
        }
        if let Some(left) = self.remaining.as_mut() {
            *left -= n as u64;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_codec::tone::Goertzel;
    use carillon_mediactl::ToneSegment;

    fn spec(segments: Vec<ToneSegment>) -> Arc<ToneSpec> {
        Arc::new(ToneSpec { segments })
    }

    fn seg(freqs: [Option<u16>; 2], ms: u64) -> ToneSegment {
        ToneSegment {
            freqs,
            level_dbm0: -13,
            duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn a_dual_tone_has_energy_at_both_frequencies_and_not_elsewhere() {
        let mut t = ToneSource::new(spec(vec![seg([Some(350), Some(440)], 1000)]), None);
        let mut buf = vec![0i16; 400];
        assert_eq!(t.fill(&mut buf), 400);
        let power = |f| Goertzel::new(f, 8000).relative_power(&buf);
        assert!(power(350.0) > 0.2, "{}", power(350.0));
        assert!(power(440.0) > 0.2, "{}", power(440.0));
        assert!(power(1000.0) < 0.01, "{}", power(1000.0));
    }

    #[test]
    fn the_cadence_alternates_tone_and_silence_and_ends_after_its_duration() {
        let cadence = spec(vec![seg([Some(425), None], 40), seg([None, None], 40)]);
        let mut t = ToneSource::new(cadence, Some(Duration::from_millis(100)));
        let mut buf = vec![0i16; 320];
        assert_eq!(t.fill(&mut buf[..320]), 320);
        assert!(buf[..320].iter().any(|&s| s != 0));
        let mut second = vec![0i16; 320];
        assert_eq!(t.fill(&mut second), 320);
        assert!(second.iter().all(|&s| s == 0), "the off segment is silent");
        let mut third = vec![0i16; 320];
        assert_eq!(t.fill(&mut third), 160, "100 ms in all");
        assert!(third[..160].iter().any(|&s| s != 0));
    }

    #[test]
    fn the_phase_carries_over_between_frames() {
        let s = spec(vec![seg([Some(440), None], 1000)]);
        let mut whole = ToneSource::new(s.clone(), None);
        let mut framed = ToneSource::new(s, None);
        let mut a = vec![0i16; 480];
        whole.fill(&mut a);
        let mut b = vec![0i16; 480];
        for chunk in b.chunks_mut(160) {
            framed.fill(chunk);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn a_spec_without_segments_is_silence() {
        let mut t = ToneSource::new(spec(Vec::new()), Some(Duration::from_millis(20)));
        let mut buf = vec![1i16; 160];
        assert_eq!(t.fill(&mut buf), 160);
        assert!(buf.iter().all(|&s| s == 0));
    }
}
