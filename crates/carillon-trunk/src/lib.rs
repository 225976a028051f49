//! `carillon-trunk`: carrier and GSM-gateway trunks for Carillon's switch,
//! sans-IO.
//!
//! Owns: the `trunks.toml` schema and loader ([`Trunks::load`] →
//! [`TrunkSet`], or every [`ConfigProblem`] as `file:line: key: message`);
//! identifying inbound requests by source IP ([`TrunkSet::identify`],
//! longest CIDR prefix); choosing where an outbound call goes
//! ([`Trunks::outbound_target`]: contact failover by OPTIONS qualify state,
//! and [`Trunks::failover_target`] for a call whose INVITE failed; GSM port rotation with cooldown and per-port limits, per-trunk
//! concurrency and calls-per-second limits); answering 401/407 on
//! outbound requests ([`Trunks::authorize`], RFC 3261 §22.2); OPTIONS
//! qualify ([`Qualifier`], RFC 3261 §11) and outbound registration
//! ([`Registration`], RFC 3261 §10.2); replacing the configuration of a
//! running set ([`Trunks::reload`]: added, changed and removed trunks).
//!
//! Does not own: sockets, DNS (RFC 3263), INVITEs and dialogs (the B2BUA),
//! number rewriting (`numbering` names a dialplan rule set, carried as a
//! string) or inbound authentication. Time comes in as `Instant`s and every
//! identifier from a seeded RNG ([`LocalConfig::rng_seed`]).
//!
//! Driving it, like every Carillon state owner:
//!
//! ```text
//! let set = Trunks::load("trunks.toml", &text)?;
//! let mut trunks = Trunks::new(set, local, now);
//! loop {
//!     while let Some(t) = trunks.poll_transmit() { send(t.destination, t.bytes) }
//!     while let Some(e) = trunks.poll_event() { log(e) }
//!     select! { response => trunks.handle_response(now, &msg),
//!               sleep_until(trunks.poll_timeout()) => trunks.handle_timeout(now) }
//! }
//! ```
//!
//! # `trunks.toml`
//!
//! One `[trunk.NAME]` table per trunk (NAME: letters, digits, `_-.+`).
//! Unknown keys are errors. An enabled trunk that still holds a
//! `CHANGE-ME` value or an `.example` host loads, with a warning
//! ([`TrunkSet::warnings`]).
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `enabled` | bool | default true; a disabled trunk is validated but never resolved, qualified, registered, identified or dialled (a call to it is refused with [`UnavailableReason::Disabled`]) |
//! | `kind` | `"carrier"` \| `"gsm_gateway"` | required |
//! | `contacts` | array of SIP URIs | the peer(s), in failover order; required for a carrier and for prefix ports |
//! | `identify` | array of `IP` / `IP/len` (v4, v6) | inbound source addresses of this trunk; each network belongs to one trunk; host bits must be zero |
//! | `username`, `password` | strings | outbound digest credentials (401/407); both or neither |
//! | `from_user`, `from_domain` | strings | From user part (instead of the caller) and host (instead of the contact's) |
//! | `send_pai` | bool | add P-Asserted-Identity with the caller (default false) |
//! | `register` | bool | keep an outbound registration (needs credentials and `registrar`) |
//! | `registrar` | SIP URI | where REGISTER goes; its host is the AOR domain |
//! | `expiry` | integer 60..=604800 | requested registration expiry (default 3600) |
//! | `qualify_secs` | integer 0..=86400 | OPTIONS interval per contact, 0/absent = off |
//! | `qualify_timeout_secs` | integer 1..=64 | no answer within this → Down (default 2; shorter than `qualify_secs`) |
//! | `max_calls` | integer ≥ 1 | concurrent outbound calls (absent = no limit) |
//! | `max_cps` | integer ≥ 1 | outbound call attempts per second, bursts up to the same number |
//! | `context` | string | dialplan context for inbound calls from this trunk |
//! | `allow` | array of `ulaw`, `alaw` | codecs, in preference order (default `["ulaw","alaw"]`); `g722`, `g729`, `opus` are known names but not available yet (load error) |
//! | `numbering` | string | name of a dialplan `[numbering.NAME]` rule set; the switch normalises the caller number of inbound calls from this trunk with it (e.g. `03001234567` → `+923001234567`) |
//! | `dtmf_mode` | `"rfc4733"` \| `"info"` \| `"inband"` \| `"auto"` | how the trunk's peer sends and expects DTMF (default rfc4733; `info` and `inband` legs are offered no telephone-event; see `carillon_mediactl::DtmfMode`) |
//! | `ports` | array of inline tables | gsm_gateway only, see below |
//! | `port_strategy` | `"round_robin"` \| `"least_used"` | gsm_gateway only (default round_robin) |
//! | `port_cooldown_secs` | integer 0..=86400 | a failed port is skipped this long (default 60) |
//!
//! ## GSM gateway ports
//!
//! Each port is `{ name = "sim1", contact = "sip:…", max_calls = 1 }` or
//! `{ name = "sim1", prefix = "01#", max_calls = 1 }` (`max_calls` 1..=64,
//! default 1):
//!
//! - **`contact`**: the port is its own SIP peer (many gateways expose one
//!   SIP account/port per SIM, e.g. `sip:192.168.1.50:5061`, `:5062`…).
//!   The call goes to that URI; it is qualified like any contact.
//! - **`prefix`** (Dinstar style): the gateway is one SIP peer (the
//!   trunk's `contacts`) and its routing table picks the port group from a
//!   prefix of the called number. The call goes to the trunk's first live
//!   contact with the prefix in front of the number
//!   ([`OutboundTarget::request_uri`]); configure the gateway's "IP→Tel"
//!   routing to strip it (e.g. `01#` → port 1).
//!
//! `round_robin` takes the next usable port after the one used last;
//! `least_used` the usable port with the fewest calls up, then the fewest
//! calls placed (spreading use across SIMs), then config order. A port is
//! usable when not cooling down after `call_failed`, its contact is not
//! qualified Down, and it is below its `max_calls`.
//!
//! ## Errors owed to the caller
//!
//! See [`TrunkError::status`]: all usable ports busy → 486; trunk
//! `max_calls` reached, `max_cps` exceeded (with `Retry-After`), contacts
//! down → 503.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod cidr;
pub mod config;
pub mod error;
pub mod event;
pub mod limit;
pub mod model;
pub mod qualify;
pub mod registration;
pub mod request;
pub mod trunks;

pub use auth::{AuthError, DigestClient};
pub use cidr::{CidrError, IpNet};
pub use config::ConfigProblem;
pub use error::{BusyReason, TrunkError, UnavailableReason};
pub use event::{ContactState, RegistrationState, Transmit, TrunkEvent};
pub use model::{
    Codec, Credentials, GatewayConfig, PortConfig, PortName, PortRoute, PortStrategy,
    QualifyConfig, RegistrationConfig, TrunkConfig, TrunkKind, TrunkName, TrunkSet,
};
pub use qualify::Qualifier;
pub use registration::Registration;
pub use request::{LocalConfig, Transport};
pub use trunks::{OutboundTarget, ReloadReport, Trunks};
