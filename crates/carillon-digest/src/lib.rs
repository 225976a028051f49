//! SIP HTTP-Digest authentication, server and client side, sans-IO.
//!
//! This crate owns everything about the Digest scheme that does not need the
//! SIP message model: parsing and writing `WWW-Authenticate` /
//! `Proxy-Authenticate` challenges and `Authorization` /
//! `Proxy-Authorization` credentials (header *values*, given as `&str`),
//! computing and verifying `response` hashes, stateless server nonces and
//! nonce-count replay protection.
//!
//! It does not own: looking users up, counting failures, choosing 401 vs 407,
//! or comparing the credentials' `uri` with the Request-URI; the registrar,
//! the B2BUA and the trunks do that.
//!
//! Standards: RFC 3261 §22 (Digest in SIP), RFC 2617 (Digest, qop=auth,
//! RFC 2069 compatibility without qop), RFC 7616 (SHA-256) and RFC 8760
//! (SHA-256 in SIP, several challenges in preference order).
//!
//! Time is given as Unix seconds and randomness as caller-provided numbers:
//! nothing here reads a clock or an OS RNG.
//!
//! ```text
//! server                                   client (trunk / phone)
//!   challenges(now, random, stale) ──401──►  Challenge::parse
//!   Credentials::parse + verify   ◄──REG───  respond(challenge, …)
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod algorithm;
mod challenge;
mod client;
mod credentials;
mod error;
mod nonce;
mod params;
mod response;
mod server;

pub use algorithm::Algorithm;
pub use challenge::Challenge;
pub use client::respond;
pub use credentials::{Credentials, Qop};
pub use error::DigestError;
pub use nonce::{NcVerdict, NonceCounter, NonceSecret, NonceStatus};
pub use response::{ha1, response, verify_response, QopAuth};
pub use server::{AuthResult, ConfigError, DigestConfig, DigestServer, Secret};
