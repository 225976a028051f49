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
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod calls;
mod deadlines;
pub mod endpoint;
mod header_text;
pub mod policy;
pub mod switch;
pub mod users;

pub use endpoint::{Peer, Transport};
pub use policy::{PolicyConfig, Verdict};
pub use switch::{Output, Switch, SwitchConfig};
pub use users::{DtmfMode, NatMode, User, UserDirectory};
