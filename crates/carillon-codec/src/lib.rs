//! Carillon audio codecs: G.711 µ-law/A-law tables, payload transcoding,
//! tone generation and Goertzel tone detection.
//!
//! This crate is sans-IO and allocation free on the per-packet path: every
//! function works on caller-provided slices, and all G.711 tables are built
//! at compile time.
//!
//! * [`g711`]: the sample laws of ITU-T G.711 and its µ↔A conversion tables.
//! * [`transcode`]: the [`Codec`] enum (payload type, clock rate) and
//!   whole-payload decode, encode and transcode.
//! * [`tone`]: a phase-continuous sine generator and a Goertzel detector.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod g711;
pub mod tone;
pub mod transcode;

pub use g711::{alaw_decode, alaw_encode, alaw_to_ulaw, ulaw_decode, ulaw_encode, ulaw_to_alaw};
pub use tone::{Goertzel, ToneGenerator};
pub use transcode::{decode, encode, transcode, transcode_in_place, Codec, CodecError, Transcoder};
