//! Carillon call recording (MixMonitor's building block): two parties'
//! audio to a WAV file, off the relay path.
//!
//! * [`mixdown`]: sans-IO alignment of the caller's and the agent's frames
//!   (any frame size, µ-law, A-law or linear) into 20 ms blocks, mono mix or
//!   stereo with one party per channel, gaps filled with silence by media time.
//! * [`writer`]: the [`Recording`] handle: blocks go over a bounded channel to
//!   a blocking writer thread (hound); a full channel drops and counts frames,
//!   never waits; `stop` finalises the header and returns a summary;
//!   [`recording_path`] names a call's file after its unique id.
//! * [`repair`](mod@repair): fixes the header of a WAV left unfinished by a crash, one
//!   file or a whole recordings directory at startup.
//!
//! No tokio: std threads and `std::sync::mpsc` only. Not owned here: the
//! configured directory, CDR fields, wiring into the media engine.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod mixdown;
pub mod repair;
pub mod writer;

pub use mixdown::{Block, Layout, Mixdown, Source, BLOCK_SAMPLES, SAMPLE_RATE};
pub use repair::{repair, repair_dir, DirEntryRepair, RepairError, RepairOutcome};
pub use writer::{
    recording_path, wav_spec, BlockSink, RecorderError, RecorderOptions, Recording,
    RecordingSummary, WavSink,
};
