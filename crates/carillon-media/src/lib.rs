//! Carillon media plane, sans-IO: what happens to an RTP or RTCP datagram
//! between the moment a worker reads it from a leg's socket and the moment
//! it writes it out of the bridged leg's socket.
//!
//! The [`MediaEngine`] owns every session, leg and port of one media worker.
//! It takes [`carillon_mediactl::MediaCommand`]s from the switch, datagrams
//! from the edge (`carillon-rtpnet`), and the time; it never opens a socket
//! or reads a clock (ARCHITECTURE.md principles 1–3):
//!
//! ```text
//!  switch ──MediaCommand──► handle_command ─┐           ┌─► poll_event ──► switch
//!  socket ──datagram──────► handle_packet ──┤  engine   ├─► Transmit (in place) ──► socket
//!  clock  ──now───────────► handle_timeout ─┘           ├─► poll_socket_request (bind/release)
//!                                                       └─► poll_timeout
//! ```
//!
//! * [`engine`]: the engine, the command handling and the per-packet relay
//!   path (RFC 3550 §7 translator behaviour, RFC 4733 carriage).
//! * [`leg`]: per-leg media state (destination, counters, receive
//!   statistics, DTMF detector, output stream rewriter, inactivity timer).
//! * [`latch`]: symmetric RTP (RFC 4961 / "comedia") source learning with a
//!   stray-packet rule.
//! * [`config`]: engine configuration (timeouts, latch rule, RNG seed,
//!   kernel fast path).
//! * [`record`]: recording taps (`Record`, `StopRecord`, `RecordingDone`)
//!   on `carillon-recorder`.
//! * [`dtmf_tap`]: a leg's DTMF mode, in-band detector (`carillon-dtmf`)
//!   and the digit being sent to it (RFC 4733 events or in-band tones).
//! * [`offload`]: which flows the kernel may forward (`carillon-kernelpath`) and
//!   the accounting of what it forwarded.
//!
//! * [`player`]: a leg's output when it is not the relay: prompts, music on
//!   hold, tones and silence, paced by the worker's tick ([`tone`] makes
//!   the tones, [`sounds`] holds the shared audio, [`output`] writes the
//!   generated packets through the leg's output stream).
//!
//! * [`mixer`]: mixes (conferences, supervisor listen / whisper / barge):
//!   each member hears what its role lets it hear of the others, never
//!   itself, in its own codec and ptime, on the worker's 20 ms tick.
//!
//! Not here yet: RTP/RTCP multiplexing (RFC 5761); packets for it are
//! dropped and counted.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod dtmf_tap;
pub mod engine;
pub mod latch;
pub mod leg;
pub mod mixer;
pub mod offload;
pub mod output;
pub mod player;
pub mod record;
pub mod sounds;
pub mod tone;

pub use config::MediaConfig;
pub use engine::{CommandError, EngineCounters, MediaEngine, SocketRequest, Transmit};
pub use latch::{Latch, LatchVerdict};
pub use offload::{G711Map, OffloadFlow, OffloadProgress, OffloadRequest};
pub use output::Generated;
pub use sounds::{MohClass, Sound, SoundCache, SoundError, Sounds};
