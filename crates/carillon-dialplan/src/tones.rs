//! Call-progress tones per country for Playtones, Busy and Congestion.
//!
//! Owns [`ToneKind`] and the cadence table ([`tone_spec`]), which produces
//! the media protocol's own [`ToneSpec`]. Values follow ITU-T E.180 and
//! Asterisk's `indications.conf` (read as a reference): frequencies in Hz,
//! `on/off` in milliseconds, repeated. Levels are -13 dBm0 for a single
//! frequency and -16 dBm0 for each of two.
//!
//! | country | dial | ring | busy | congestion |
//! |---|---|---|---|---|
//! | `pk` Pakistan | 400 | 400 1000/2000 | 400 750/750 | 400 250/250 |
//! | `us` | 350+440 | 440+480 2000/4000 | 480+620 500/500 | 480+620 250/250 |
//! | `uk` | 350+440 | 400+450 400/200/400/2000 | 400 375/375 | 400 400/350/225/525 |
//! | `ae` UAE | 350+440 | 400+450 400/200/400/2000 | 400 375/375 | 400 375/375 |
//! | `sa` Saudi Arabia | 425 | 425 1200/4600 | 425 500/500 | 425 250/250 |
//! | `fr` | 440 | 440 1500/3500 | 440 500/500 | 440 250/250 |

use carillon_mediactl::{ToneSegment, ToneSpec};
use std::fmt;
use std::time::Duration;

/// The countries [`tone_spec`] knows.
pub const COUNTRIES: [&str; 6] = ["pk", "us", "uk", "ae", "sa", "fr"];

/// The country used when none is given (`${TONEZONE}` unset).
pub const DEFAULT_COUNTRY: &str = "pk";

/// A call-progress tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToneKind {
    Dial,
    Ring,
    Busy,
    Congestion,
}

impl ToneKind {
    /// Parses `dial`, `ring`, `busy`, `congestion` (any case).
    pub fn parse(text: &str) -> Option<ToneKind> {
        [
            ToneKind::Dial,
            ToneKind::Ring,
            ToneKind::Busy,
            ToneKind::Congestion,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(text.trim()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ToneKind::Dial => "dial",
            ToneKind::Ring => "ring",
            ToneKind::Busy => "busy",
            ToneKind::Congestion => "congestion",
        }
    }
}

impl fmt::Display for ToneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `(freq1, freq2, on ms)` followed by `(0, 0, off ms)` segments.
type Cadence = &'static [(u16, u16, u64)];

fn cadence(kind: ToneKind, country: &str) -> Option<Cadence> {
    use ToneKind::*;
    let table: Cadence = match (country, kind) {
        ("pk", Dial) => &[(400, 0, 1000)],
        ("pk", Ring) => &[(400, 0, 1000), (0, 0, 2000)],
        ("pk", Busy) => &[(400, 0, 750), (0, 0, 750)],
        ("pk", Congestion) => &[(400, 0, 250), (0, 0, 250)],
        ("us", Dial) => &[(350, 440, 1000)],
        ("us", Ring) => &[(440, 480, 2000), (0, 0, 4000)],
        ("us", Busy) => &[(480, 620, 500), (0, 0, 500)],
        ("us", Congestion) => &[(480, 620, 250), (0, 0, 250)],
        ("uk" | "ae", Dial) => &[(350, 440, 1000)],
        ("uk" | "ae", Ring) => &[(400, 450, 400), (0, 0, 200), (400, 450, 400), (0, 0, 2000)],
        ("uk" | "ae", Busy) => &[(400, 0, 375), (0, 0, 375)],
        ("uk", Congestion) => &[(400, 0, 400), (0, 0, 350), (400, 0, 225), (0, 0, 525)],
        ("ae", Congestion) => &[(400, 0, 375), (0, 0, 375)],
        ("sa", Dial) => &[(425, 0, 1000)],
        ("sa", Ring) => &[(425, 0, 1200), (0, 0, 4600)],
        ("sa", Busy) => &[(425, 0, 500), (0, 0, 500)],
        ("sa", Congestion) => &[(425, 0, 250), (0, 0, 250)],
        ("fr", Dial) => &[(440, 0, 1000)],
        ("fr", Ring) => &[(440, 0, 1500), (0, 0, 3500)],
        ("fr", Busy) => &[(440, 0, 500), (0, 0, 500)],
        ("fr", Congestion) => &[(440, 0, 250), (0, 0, 250)],
        _ => return None,
    };
    Some(table)
}

/// The tone for `kind` in `country` (lower-case ISO 3166 code), or `None`
/// for a country not in the table.
pub fn tone_spec(kind: ToneKind, country: &str) -> Option<ToneSpec> {
    let country = country.trim().to_ascii_lowercase();
    let segments = cadence(kind, &country)?
        .iter()
        .map(|&(f1, f2, ms)| {
            let freqs = [(f1 != 0).then_some(f1), (f2 != 0).then_some(f2)];
            ToneSegment {
                freqs,
                level_dbm0: if f2 != 0 { -16 } else { -13 },
                duration: Duration::from_millis(ms),
            }
        })
        .collect();
    Some(ToneSpec { segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_country_has_every_tone() {
        for country in COUNTRIES {
            for kind in [
                ToneKind::Dial,
                ToneKind::Ring,
                ToneKind::Busy,
                ToneKind::Congestion,
            ] {
                assert!(tone_spec(kind, country).is_some(), "{country} {kind}");
            }
        }
        assert!(tone_spec(ToneKind::Ring, "xx").is_none());
    }

    #[test]
    fn us_ringback_is_440_plus_480_two_seconds_on_four_off() {
        let spec = tone_spec(ToneKind::Ring, "US").unwrap();
        assert_eq!(spec.segments.len(), 2);
        assert_eq!(spec.segments[0].freqs, [Some(440), Some(480)]);
        assert_eq!(spec.segments[0].duration, Duration::from_secs(2));
        assert_eq!(spec.segments[1].freqs, [None, None]);
        assert_eq!(spec.segments[1].duration, Duration::from_secs(4));
    }
}
