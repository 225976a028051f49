//! `carillon-sip`: Carillon's own SIP message layer (RFC 3261 §7, §19, §20, §25).
//!
//! Owns the message model ([`Message`]), a zero-copy parser that keeps the
//! received bytes and hands out `&str` slices into them, typed views of the
//! headers that matter to a switch (URIs, name-addrs, Via, CSeq), a builder
//! that serializes requests and responses, and the stateless request checks
//! that decide which error response (400, 416, 420, 501, 505…) a malformed
//! or unsupported request is owed. Transactions live in
//! `carillon-transaction` and digest auth in `carillon-digest`; this crate
//! does no I/O and reads no clock.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod builder;
pub mod header;
pub mod message;
pub mod method;
pub mod syntax;
pub mod uri;
pub mod validate;

pub use builder::{MessageBuilder, MessageWriter, ResponseBuilder};
pub use header::HeaderName;
pub use message::{Message, ParseError, StartLine};
pub use method::Method;
pub use syntax::{CSeq, NameAddr, Params, Via};
pub use uri::{Scheme, Uri};
pub use validate::{
    response_parts, validate_request, validate_request_parts, Rejection, RequestParts,
    ResponseParts,
};
