//! `carillon-b2bua`: the switch core, sans-IO.
//!
//! Owns the SIP endpoint demux ([`endpoint`]: server transactions, response
//! routing with `received`/`rport`), the request policies that run before
//! any routing ([`policy`]: per-source rate limit and failed-auth bans), the
//! user directory ([`users`]) and the [`Switch`] that ties them to the
//! registrar and digest auth. Input is `(now, now_unix, peer, bytes)`;
//! output is drained with `poll_output()`; `poll_timeout()` gives the next
//! instant `handle_timeout()` must be called. No sockets, no clock reads,
//! randomness from a seed.
//!
//! Calls ([`calls`]) are modelled as Asterisk does underneath: a
//! `Channel` per SIP dialog leg (the caller's inbound one, outbound forks),
//! a `Bridge` of channels whose media is joined (members with roles, so a
//! mixer and supervisors fit), and a `Call` (the linkedid) holding them
//! with the call-level data ([`calls::model`]). The call code is split by
//! responsibility under `calls/`: intake, execution, dial, forks,
//! bridging, dialog requests, teardown, CDR, messages, streams, timeouts,
//! and the features (reliable provisionals, session timers, limits, DTMF,
//! hold, recording, events).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod calls;
pub mod conference;
mod deadlines;
pub mod endpoint;
mod header_text;
pub mod mwi;
pub mod policy;
pub mod switch;
pub mod users;

pub use endpoint::{Peer, Transport};
pub use policy::{PolicyConfig, Verdict};
pub use switch::{Output, Switch, SwitchConfig};
pub use users::{DtmfMode, NatMode, User, UserDirectory};
