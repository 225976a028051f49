//! The SDP data model (RFC 8866 §5): a [`SessionDescription`] with its
//! session-level fields and a list of [`MediaDescription`]s, plus typed
//! [`Attribute`]s for the ones the switch acts on (`rtpmap`, `fmtp`,
//! `ptime`, `maxptime`, direction, `rtcp` (RFC 3605), `rtcp-mux`
//! (RFC 5761)); every other attribute and every unknown line is kept
//! verbatim so a description survives parse → serialize.
//!
//! It also owns the queries over the model: effective direction and
//! connection of a media section, hold detection (RFC 3264 §8.4, including
//! the RFC 2543 `c=0.0.0.0` form) and the origin version bump for
//! re-offers (RFC 3264 §8). Parsing lives in `parse`, writing in
//! `serialize`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codec::{static_payload, CodecName};
use crate::direction::Direction;

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (empty when written as `s= `).
    pub session_name: String,
    /// `i=`.
    pub information: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines. Written as `t=0 0` when empty.
    pub times: Vec<Timing>,
    /// `z=`, verbatim.
    pub time_zones: Option<String>,
    /// `k=`, verbatim (obsolete in RFC 8866).
    pub encryption_key: Option<String>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Lines with a type letter this crate does not know, in order.
    pub unknown: Vec<UnknownLine>,
    /// `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username, `-` when none.
    pub username: String,
    /// Session id, kept as written (an opaque numeric string).
    pub session_id: String,
    /// Session version, incremented for every changed re-offer.
    pub session_version: u64,
    /// Network type, `IN`.
    pub net_type: String,
    /// Address type.
    pub addr_type: AddrType,
    /// Unicast address or host name of the originator.
    pub address: String,
}

/// Address type of `o=` and `c=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
    /// Anything else, as written.
    Other(String),
}

impl AddrType {
    /// The address type of an IP address.
    #[must_use]
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ip4,
            IpAddr::V6(_) => Self::Ip6,
        }
    }

    /// As written in SDP.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ip4 => "IP4",
            Self::Ip6 => "IP6",
            Self::Other(s) => s,
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("IP4") {
            Self::Ip4
        } else if s.eq_ignore_ascii_case("IP6") {
            Self::Ip6
        } else {
            Self::Other(s.to_owned())
        }
    }
}

/// `c=<nettype> <addrtype> <connection-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type, `IN`.
    pub net_type: String,
    /// Address type.
    pub addr_type: AddrType,
    /// Address as written, possibly with a multicast `/ttl[/count]` suffix.
    pub address: String,
}

impl Connection {
    /// `c=IN IP4 <ip>` or `c=IN IP6 <ip>`.
    #[must_use]
    pub fn from_ip(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".to_owned(),
            addr_type: AddrType::of(ip),
            address: crate::serialize::ip_text(ip),
        }
    }

    /// The IP address, when the address is an IP literal of the stated
    /// type (ignoring any multicast suffix).
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        let literal = self.address.split('/').next().unwrap_or_default();
        match self.addr_type {
            AddrType::Ip4 => literal.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            AddrType::Ip6 => literal.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            AddrType::Other(_) => None,
        }
    }

    /// Whether this is the RFC 2543 hold address `0.0.0.0` (or `::`).
    #[must_use]
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `CT`, `AS`, `TIAS`, ...
    pub bwtype: String,
    /// Value (kbit/s for CT and AS, bit/s for TIAS).
    pub value: u64,
}

/// `t=<start> <stop>` and its `r=` lines (verbatim).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timing {
    /// NTP start time, 0 for unbounded.
    pub start: u64,
    /// NTP stop time, 0 for unbounded.
    pub stop: u64,
    /// `r=` values, verbatim.
    pub repeats: Vec<String>,
}

/// A line whose type letter is not one RFC 8866 defines for its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLine {
    /// The type letter.
    pub kind: char,
    /// Everything after `=`.
    pub value: String,
}

/// The media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `text`.
    Text,
    /// `application`.
    Application,
    /// `message`.
    Message,
    /// `image` (T.38 fax).
    Image,
    /// Anything else, as written.
    Other(String),
}

impl MediaType {
    /// As written in SDP.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Text => "text",
            Self::Application => "application",
            Self::Message => "message",
            Self::Image => "image",
            Self::Other(s) => s,
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        [
            Self::Audio,
            Self::Video,
            Self::Text,
            Self::Application,
            Self::Message,
            Self::Image,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .unwrap_or_else(|| Self::Other(s.to_owned()))
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type.
    pub media: MediaType,
    /// Transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The `/<count>` after the port, if written.
    pub port_count: Option<u16>,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, ...).
    pub proto: String,
    /// Media formats: payload type numbers for RTP.
    pub formats: Vec<String>,
    /// `i=`.
    pub title: Option<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=`, verbatim.
    pub encryption_key: Option<String>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Lines with an unknown type letter, in order.
    pub unknown: Vec<UnknownLine>,
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels, when written.
    pub channels: Option<u16>,
}

impl RtpMap {
    /// The codec this mapping names.
    #[must_use]
    pub fn codec(&self) -> CodecName {
        CodecName::from_encoding_name(&self.encoding)
    }
}

/// `a=fmtp:<pt> <parameters>` (RFC 8866 §6.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub payload_type: u8,
    /// Format parameters, verbatim.
    pub params: String,
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when written.
    pub connection: Option<Connection>,
}

/// One `a=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `a=rtpmap`.
    RtpMap(RtpMap),
    /// `a=fmtp`.
    Fmtp(Fmtp),
    /// `a=ptime:<ms>`.
    Ptime(u32),
    /// `a=maxptime:<ms>`.
    MaxPtime(u32),
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive`.
    Direction(Direction),
    /// `a=rtcp`.
    Rtcp(Rtcp),
    /// `a=rtcp-mux`.
    RtcpMux,
    /// Any other attribute, or a known one whose value did not parse,
    /// verbatim.
    Other {
        /// Name (before `:`).
        name: String,
        /// Value (after `:`), if there was a colon.
        value: Option<String>,
    },
}

fn direction_in(attributes: &[Attribute]) -> Option<Direction> {
    attributes.iter().find_map(|a| match a {
        Attribute::Direction(d) => Some(*d),
        _ => None,
    })
}

impl MediaDescription {
    /// A media section with no lines but `m=`.
    #[must_use]
    pub fn new(media: MediaType, port: u16, proto: &str, formats: Vec<String>) -> Self {
        Self {
            media,
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats,
            title: None,
            connection: None,
            bandwidths: Vec::new(),
            encryption_key: None,
            attributes: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Whether the port is 0 (rejected in an answer, disabled in an offer).
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// Whether the transport is plain RTP (`RTP/AVP` or `RTP/AVPF`), the
    /// only ones the switch relays without keying.
    #[must_use]
    pub fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// The direction attribute written in this section, if any.
    #[must_use]
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// Replaces any direction attribute with `direction`.
    pub fn set_direction(&mut self, direction: Direction) {
        if let Some(slot) = self
            .attributes
            .iter_mut()
            .find(|a| matches!(a, Attribute::Direction(_)))
        {
            *slot = Attribute::Direction(direction);
        } else {
            self.attributes.push(Attribute::Direction(direction));
        }
        self.attributes.retain({
            let mut seen = false;
            move |a| {
                if matches!(a, Attribute::Direction(_)) {
                    let keep = !seen;
                    seen = true;
                    keep
                } else {
                    true
                }
            }
        });
    }

    /// Hold as seen from this section alone: `sendonly`, `inactive` or a
    /// `c=0.0.0.0` (RFC 3264 §8.4).
    #[must_use]
    pub fn is_hold(&self) -> bool {
        matches!(
            self.direction(),
            Some(Direction::SendOnly | Direction::Inactive)
        ) || self.connection.as_ref().is_some_and(Connection::is_hold)
    }

    /// The formats that are payload type numbers (0..=127).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }

    /// The `a=rtpmap` for a payload type, if written.
    #[must_use]
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::RtpMap(m) if m.payload_type == payload_type => Some(m),
            _ => None,
        })
    }

    /// The `a=rtpmap` for a payload type, or the RFC 3551 static mapping
    /// when none is written.
    #[must_use]
    pub fn resolve_payload_type(&self, payload_type: u8) -> Option<RtpMap> {
        self.resolve_payload_type_ref(payload_type)
            .map(std::borrow::Cow::into_owned)
    }

    /// [`MediaDescription::resolve_payload_type`], borrowing a written
    /// `a=rtpmap` instead of copying it.
    #[must_use]
    pub fn resolve_payload_type_ref(
        &self,
        payload_type: u8,
    ) -> Option<std::borrow::Cow<'_, RtpMap>> {
        if let Some(map) = self.rtpmap(payload_type) {
            return Some(std::borrow::Cow::Borrowed(map));
        }
        static_payload(payload_type).map(|s| {
            std::borrow::Cow::Owned(RtpMap {
                payload_type,
                encoding: s.encoding.to_owned(),
                clock_rate: s.clock_rate,
                channels: s.channels,
            })
        })
    }

    /// The `a=fmtp` parameters for a payload type, if written.
    #[must_use]
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Fmtp(f) if f.payload_type == payload_type => Some(f.params.as_str()),
            _ => None,
        })
    }

    /// `a=ptime`, if written.
    #[must_use]
    pub fn ptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Ptime(p) => Some(*p),
            _ => None,
        })
    }

    /// `a=maxptime`, if written.
    #[must_use]
    pub fn maxptime(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::MaxPtime(p) => Some(*p),
            _ => None,
        })
    }

    /// `a=rtcp`, if written.
    #[must_use]
    pub fn rtcp(&self) -> Option<&Rtcp> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtcp(r) => Some(r),
            _ => None,
        })
    }

    /// Whether `a=rtcp-mux` is present.
    #[must_use]
    pub fn rtcp_mux(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| matches!(a, Attribute::RtcpMux))
    }

    /// The first attribute named `name` (case-insensitive) kept verbatim.
    #[must_use]
    pub fn other_attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Other { name: n, value } if n.eq_ignore_ascii_case(name) => {
                Some(value.as_deref())
            }
            _ => None,
        })
    }
}

impl SessionDescription {
    /// A description with `o=`, `s=-` and nothing else.
    #[must_use]
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            session_name: "-".to_owned(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            times: vec![Timing::default()],
            time_zones: None,
            encryption_key: None,
            attributes: Vec::new(),
            unknown: Vec::new(),
            media: Vec::new(),
        }
    }

    /// The session-level direction attribute, if any.
    #[must_use]
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// The direction that applies to `media`: its own attribute, else the
    /// session-level one, else `sendrecv` (RFC 8866 §6.7).
    #[must_use]
    pub fn media_direction(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or_default()
    }

    /// The `c=` that applies to `media`: its own, else the session's.
    #[must_use]
    pub fn media_connection<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// Whether `media` is on hold, taking session-level `c=` and direction
    /// into account: `sendonly`, `inactive` or `c=0.0.0.0`.
    #[must_use]
    pub fn media_is_hold(&self, media: &MediaDescription) -> bool {
        matches!(
            self.media_direction(media),
            Direction::SendOnly | Direction::Inactive
        ) || self
            .media_connection(media)
            .is_some_and(Connection::is_hold)
    }

    /// Whether the session is on hold: it has at least one active
    /// (non-zero port) media section and every active section is on hold.
    #[must_use]
    pub fn is_hold(&self) -> bool {
        let mut active = self.media.iter().filter(|m| !m.is_rejected()).peekable();
        active.peek().is_some() && active.all(|m| self.media_is_hold(m))
    }

    /// Increments the `o=` session version, as every changed re-offer in
    /// a dialog must (RFC 3264 §8). Wraps at `u64::MAX`.
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// A copy with the `o=` session version incremented.
    #[must_use]
    pub fn with_bumped_version(&self) -> Self {
        let mut next = self.clone();
        next.bump_version();
        next
    }
}
