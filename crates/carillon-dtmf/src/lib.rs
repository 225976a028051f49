//! Carillon in-band DTMF (ITU-T Q.23 tones): a sans-IO detector for tones
//! carried in the audio itself, and a generator of such tones.
//!
//! Why a crate of its own rather than a module of `carillon-media`: the
//! detector is pure signal processing with no notion of legs, sessions or
//! RTP, it is needed by more than one consumer (the media engine's taps, a
//! future IVR/recording analyser, benchmarks and tests that synthesise key
//! presses), and keeping it out of the media crate lets it be built, tested
//! and benchmarked on its own while the media engine changes elsewhere. It
//! depends only on `carillon-codec` (G.711 decoding and the sine generator),
//! never on tokio/sqlx/axum (`tests/layering.sh` checks it).
//!
//! * [`digit`]: the 16 DTMF keys and their row/column frequencies.
//! * [`detector`]: [`DtmfDetector`], a Goertzel bank over 12.75 ms blocks
//!   with level, twist, relative-peak, signal-to-total-energy, steadiness,
//!   second-harmonic and (phase-measured) frequency checks, reporting each
//!   key press once.
//! * [`generator`]: [`DtmfGenerator`], phase-continuous two-tone synthesis at
//!   a chosen level per tone (twist) and frequency offset.
//!
//! Everything is sans-IO: callers push samples (or G.711 payloads) and drain
//! events; time is counted in samples, never read from a clock.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod detector;
pub mod digit;
pub mod generator;

pub use detector::{DtmfDetector, DtmfError, DtmfEvent};
pub use digit::Digit;
pub use generator::DtmfGenerator;
