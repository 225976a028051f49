//! Carillon SDP: the Session Description Protocol (RFC 8866, formerly
//! RFC 4566) and the RFC 3264 offer/answer model, sans-IO.
//!
//! This crate owns:
//! - the SDP data model ([`SessionDescription`], [`MediaDescription`],
//!   [`Attribute`], ...) with a tolerant parser ([`SessionDescription::parse`])
//!   and a canonical CRLF serializer (`Display` / [`SessionDescription::to_bytes`]);
//! - the codec vocabulary ([`CodecName`], static payload types of RFC 3551);
//! - media direction ([`Direction`]) and hold detection;
//! - offer/answer: [`answer`] for the answering side, [`offer`] and
//!   [`apply_answer`] for the offering side, each producing a [`MediaPlan`]
//!   that the B2BUA hands to the media plane.
//!
//! It does not own sockets, port allocation, RTP or SRTP keying: the caller
//! supplies the relay address and port it allocated, and the media plane
//! consumes the resulting [`MediaPlan`].
//!
//! ```
//! use carillon_sdp::{answer, AnswerPolicy, CodecName, SessionDescription};
//!
//! let offer: SessionDescription = "v=0\r\n\
//!     o=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
//!     m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
//!     .parse()?;
//! let policy = AnswerPolicy {
//!     allowed: vec!["ulaw".parse()?, "alaw".parse()?],
//!     prefer_offerer_order: false,
//!     local_address: "203.0.113.7".parse()?,
//!     local_port: 30000,
//!     telephone_event: true,
//!     ptime: Some(20),
//!     session_id: 1,
//!     session_version: 1,
//!     username: "carillon".into(),
//! };
//! let (reply, plan) = answer(&offer, &policy)?;
//! assert_eq!(plan.codec, CodecName::Pcmu);
//! assert_eq!(plan.telephone_event_pt, Some(101));
//! assert!(reply.to_string().contains("m=audio 30000 RTP/AVP 0 8 101\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod codec;
mod direction;
mod error;
mod negotiate;
mod parse;
mod serialize;
mod session;

pub use codec::{static_payload, CodecName, CodecNameError, StaticPayload};
pub use direction::Direction;
pub use error::{NegotiationError, ParseError};
pub use negotiate::{answer, apply_answer, offer, AnswerPolicy, MediaPlan, OfferPolicy};
pub use serialize::{ip_text, push_ip, push_u64};
pub use session::{
    AddrType, Attribute, Bandwidth, Connection, Fmtp, MediaDescription, MediaType, Origin, Rtcp,
    RtpMap, SessionDescription, Timing, UnknownLine,
};
