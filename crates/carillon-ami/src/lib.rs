//! `carillon-ami`: an Asterisk Manager Interface (AMI) compatible
//! protocol, sans-IO, so that AMI dialers and tools (VICIdial's scripts,
//! panoramisk, asterisk-manager, starpy) talk to Carillon unchanged.
//!
//! Owns the wire framing ([`codec`]), the permission classes ([`class`]),
//! one connection's login and actions ([`session`]), and the translation
//! of the switch's events into Asterisk's events with the table of live
//! channels built from them ([`translate`]). It never opens a socket nor
//! reads the clock or an RNG: the binary's AMI listener feeds it bytes,
//! time, a challenge number and the switch's event records, and writes
//! what it returns.
//!
//! Of the actions that act on channels only Hangup exists (the session
//! hands it to the edge as a [`SwitchRequest`]); Originate, Redirect,
//! Setvar… are not offered yet: they answer Asterisk's `Invalid/unknown
//! command` error until the switch has the channel control they need.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod class;
pub mod codec;
pub mod session;
pub mod translate;

pub use class::{ClassMask, UnknownClass};
pub use codec::{Decoder, FrameError, Packet};
pub use session::{
    md5_key, AmiUser, Session, SessionConfig, SessionEvent, SwitchRequest, AMI_VERSION,
};
pub use translate::{
    ami_channel_name, switch_channel_name, AmiEvent, AstState, ChannelFacts, Translator,
};
