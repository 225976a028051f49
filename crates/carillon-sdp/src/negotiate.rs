//! The RFC 3264 offer/answer model for the switch's audio legs, and the
//! [`MediaPlan`] it produces for the media plane.
//!
//! - [`answer`] (RFC 3264 §6): one answer `m=` line per offered line, in
//!   order; the first plain-RTP audio stream with a common codec is
//!   accepted, every other stream is rejected with port 0. The answer
//!   lists only common codecs under the offerer's payload type numbers
//!   (§6.1), carries `telephone-event` when both sides allow it, reverses
//!   the offered direction, and always names the switch's relay address
//!   and port, never the offerer's.
//! - [`offer`] (RFC 3264 §5): the switch's offer for an outgoing leg.
//! - [`apply_answer`] (RFC 3264 §7): what the offering side learns from
//!   the answer.
//!
//! Not owned here: port allocation (the caller passes the relay port it
//! reserved), SRTP/ICE (streams that need them are rejected), and
//! re-INVITE state (see [`SessionDescription::bump_version`]).
//!
//! ```text
//!  caller ──offer──► answer(offer, policy) ──► (answer SDP, MediaPlan)
//!  offer(policy) ──► callee ──answer──► apply_answer(offer, answer) ──► MediaPlan
//! ```

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::codec::CodecName;
use crate::direction::Direction;
use crate::error::NegotiationError;
use crate::serialize::{ip_text, u64_text};
use crate::session::{
    AddrType, Attribute, Connection, Fmtp, MediaDescription, MediaType, Origin, RtpMap,
    SessionDescription,
};

/// Packetization time used when neither side states one (RFC 3551 §4.5).
pub const DEFAULT_PTIME_MS: u32 = 20;

/// `a=fmtp` of telephone-event when the offer gives none: DTMF 0-9, *, #,
/// A-D and flash (RFC 4733 §3.2).
const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// How the switch answers an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerPolicy {
    /// Voice codecs the switch accepts, in configured preference order
    /// (`TelephoneEvent` here is ignored: see `telephone_event`).
    pub allowed: Vec<CodecName>,
    /// List common codecs in the offer's order instead of `allowed`'s.
    pub prefer_offerer_order: bool,
    /// The switch's relay address, written in `o=` and `c=`.
    pub local_address: IpAddr,
    /// The relay port reserved for this leg, written in the accepted `m=`.
    pub local_port: u16,
    /// Carry RFC 4733 telephone-event when offered.
    pub telephone_event: bool,
    /// `a=ptime` to answer with when the offer states none.
    pub ptime: Option<u32>,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub session_version: u64,
    /// `o=` username (`-` when empty or not a single token).
    pub username: String,
}

/// How the switch builds an offer for an outgoing leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPolicy {
    /// Voice codecs to offer, in order. `Other` codecs and
    /// `TelephoneEvent` are skipped (no known rtpmap; see `telephone_event`).
    pub codecs: Vec<CodecName>,
    /// The switch's relay address, written in `o=` and `c=`.
    pub local_address: IpAddr,
    /// The relay port reserved for this leg.
    pub local_port: u16,
    /// Offer RFC 4733 telephone-event/8000 with `a=fmtp:<pt> 0-16`.
    pub telephone_event: bool,
    /// Payload type for telephone-event (usually 101).
    pub telephone_event_pt: u8,
    /// `a=ptime`, usually 20.
    pub ptime: Option<u32>,
    /// Offered direction (`sendonly` to put the peer on hold).
    pub direction: Direction,
    /// Offer `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub session_version: u64,
    /// `o=` username (`-` when empty or not a single token).
    pub username: String,
}

impl OfferPolicy {
    /// An offer of `codecs` at `local_address:local_port` with the usual
    /// defaults: telephone-event 101, ptime 20, sendrecv, no rtcp-mux,
    /// session id and version 0, username `-`.
    #[must_use]
    pub fn new(local_address: IpAddr, local_port: u16, codecs: Vec<CodecName>) -> Self {
        Self {
            codecs,
            local_address,
            local_port,
            telephone_event: true,
            telephone_event_pt: 101,
            ptime: Some(DEFAULT_PTIME_MS),
            direction: Direction::SendRecv,
            rtcp_mux: false,
            session_id: 0,
            session_version: 0,
            username: "-".to_owned(),
        }
    }
}

/// What the media plane needs to run one leg's audio, from the switch's
/// point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    /// Where to send RTP: the peer's `c=` address and `m=` port; `None`
    /// when the peer is on RFC 2543 hold (`0.0.0.0`), its address is not an
    /// IP literal, or its port is 0.
    pub remote: Option<SocketAddr>,
    /// The voice codec.
    pub codec: CodecName,
    /// Its payload type (the offerer's number).
    pub payload_type: u8,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Packetization time in milliseconds.
    pub ptime_ms: u32,
    /// Payload type of RFC 4733 telephone-event, when negotiated.
    pub telephone_event_pt: Option<u8>,
    /// What the switch does on this leg: `SendOnly` means send, don't
    /// expect to receive.
    pub direction: Direction,
    /// RTCP multiplexed on the RTP port (RFC 5761), both sides agreeing.
    pub rtcp_mux: bool,
    /// Where to send RTCP when the peer states it with `a=rtcp`
    /// (RFC 3605); `None` means the RTP port + 1 convention (or mux).
    pub remote_rtcp: Option<SocketAddr>,
}

fn origin_username(name: &str) -> String {
    if name.is_empty() || name.contains(char::is_whitespace) {
        "-".to_owned()
    } else {
        name.to_owned()
    }
}

fn local_description(
    username: &str,
    session_id: u64,
    session_version: u64,
    address: IpAddr,
) -> SessionDescription {
    let mut sd = SessionDescription::new(Origin {
        username: origin_username(username),
        session_id: u64_text(session_id),
        session_version,
        net_type: "IN".to_owned(),
        addr_type: AddrType::of(address),
        address: ip_text(address),
    });
    sd.connection = Some(Connection::from_ip(address));
    sd
}

/// The direction the writer of `sd` means for `media`, where a
/// `c=0.0.0.0` (RFC 2543 hold) withdraws the receive side.
fn effective_direction(sd: &SessionDescription, media: &MediaDescription) -> Direction {
    let stated = sd.media_direction(media);
    let held = sd.media_connection(media).is_some_and(Connection::is_hold);
    Direction::from_flags(stated.sends(), stated.receives() && !held)
}

/// The peer's usable RTP address for `media`.
fn remote_address(sd: &SessionDescription, media: &MediaDescription) -> Option<SocketAddr> {
    let ip = sd.media_connection(media)?.ip()?;
    (media.port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, media.port))
}

/// The peer's RTCP address from `a=rtcp` for `media`.
fn remote_rtcp_address(sd: &SessionDescription, media: &MediaDescription) -> Option<SocketAddr> {
    let rtcp = media.rtcp()?;
    let ip = match &rtcp.connection {
        Some(c) => c.ip()?,
        None => sd.media_connection(media)?.ip()?,
    };
    (rtcp.port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, rtcp.port))
}

fn rejected(offered: &MediaDescription) -> MediaDescription {
    MediaDescription::new(
        offered.media.clone(),
        0,
        &offered.proto,
        offered.formats.clone(),
    )
}

/// Answers `offer` under `policy` (RFC 3264 §6).
///
/// # Errors
/// [`NegotiationError::NoAudioStream`] when no audio stream is offered,
/// [`NegotiationError::UnsupportedProtocol`] when audio is only offered
/// over a transport other than `RTP/AVP`/`RTP/AVPF`, and
/// [`NegotiationError::NoCommonCodec`] otherwise when nothing could be
/// accepted. All of them are answered with 488.
pub fn answer(
    offer: &SessionDescription,
    policy: &AnswerPolicy,
) -> Result<(SessionDescription, MediaPlan), NegotiationError> {
    let mut sd = local_description(
        &policy.username,
        policy.session_id,
        policy.session_version,
        policy.local_address,
    );
    let mut plan = None;
    let mut saw_audio = false;
    let mut saw_plain_rtp = false;
    let mut unsupported: Option<&str> = None;
    for offered in &offer.media {
        let candidate =
            plan.is_none() && offered.media == MediaType::Audio && !offered.is_rejected();
        let accepted = if !candidate {
            None
        } else if offered.is_plain_rtp() {
            saw_audio = true;
            saw_plain_rtp = true;
            accept_audio(offer, offered, policy)
        } else {
            saw_audio = true;
            unsupported.get_or_insert(&offered.proto);
            None
        };
        match accepted {
            Some((media, media_plan)) => {
                sd.media.push(media);
                plan = Some(media_plan);
            }
            None => sd.media.push(rejected(offered)),
        }
    }
    match plan {
        Some(plan) => Ok((sd, plan)),
        None if !saw_audio => Err(NegotiationError::NoAudioStream),
        None if !saw_plain_rtp => Err(NegotiationError::UnsupportedProtocol {
            proto: unsupported.unwrap_or_default().to_owned(),
        }),
        None => Err(NegotiationError::NoCommonCodec),
    }
}

/// The common voice codecs of one offered stream, as (codec, offered
/// mapping), in the order the policy asks for, one per payload type.
fn common_codecs<'m>(
    offered: &'m [Cow<'_, RtpMap>],
    policy: &AnswerPolicy,
) -> Vec<(CodecName, &'m RtpMap)> {
    let allowed = || {
        policy
            .allowed
            .iter()
            .filter(|c| **c != CodecName::TelephoneEvent)
    };
    let pairs: Vec<(CodecName, &RtpMap)> = if policy.prefer_offerer_order {
        offered
            .iter()
            .filter_map(|m| {
                allowed()
                    .find(|c| c.matches(m))
                    .map(|c| (c.clone(), m.as_ref()))
            })
            .collect()
    } else {
        allowed()
            .filter_map(|c| {
                offered
                    .iter()
                    .find(|m| c.matches(m))
                    .map(|m| (c.clone(), m.as_ref()))
            })
            .collect()
    };
    let mut seen = Vec::new();
    pairs
        .into_iter()
        .filter(|(_, m)| {
            let fresh = !seen.contains(&m.payload_type);
            seen.push(m.payload_type);
            fresh
        })
        .collect()
}

fn accept_audio(
    offer: &SessionDescription,
    offered: &MediaDescription,
    policy: &AnswerPolicy,
) -> Option<(MediaDescription, MediaPlan)> {
    let maps: Vec<Cow<'_, RtpMap>> = offered
        .payload_types()
        .filter_map(|pt| offered.resolve_payload_type_ref(pt))
        .collect();
    let voice = common_codecs(&maps, policy);
    let (codec, first) = voice.first()?.clone();

    let telephone_event = if policy.telephone_event {
        let all: Vec<&RtpMap> = maps
            .iter()
            .map(AsRef::as_ref)
            .filter(|m| CodecName::TelephoneEvent.matches(m))
            .collect();
        all.iter()
            .find(|m| m.clock_rate == first.clock_rate)
            .or_else(|| all.first())
            .copied()
    } else {
        None
    };

    let ptime = offered.ptime().or_else(|| {
        let wanted = policy.ptime?;
        Some(offered.maxptime().map_or(wanted, |max| wanted.min(max)))
    });
    let direction = effective_direction(offer, offered).reverse();

    let mut media = MediaDescription::new(
        MediaType::Audio,
        policy.local_port,
        &offered.proto,
        Vec::new(),
    );
    let listed = voice.iter().map(|(_, m)| *m).chain(telephone_event);
    let count = voice.len() + usize::from(telephone_event.is_some());
    media.formats.reserve_exact(count);
    media.attributes.reserve_exact(2 * count + 3);
    for map in listed {
        media.formats.push(u64_text(u64::from(map.payload_type)));
        media.attributes.push(Attribute::RtpMap(map.clone()));
        let params = offered
            .fmtp(map.payload_type)
            .map(str::to_owned)
            .or_else(|| {
                CodecName::TelephoneEvent
                    .matches(map)
                    .then(|| TELEPHONE_EVENT_FMTP.to_owned())
            });
        if let Some(params) = params {
            media.attributes.push(Attribute::Fmtp(Fmtp {
                payload_type: map.payload_type,
                params,
            }));
        }
    }
    if let Some(ms) = ptime {
        media.attributes.push(Attribute::Ptime(ms));
    }
    media.attributes.push(Attribute::Direction(direction));
    let rtcp_mux = offered.rtcp_mux();
    if rtcp_mux {
        media.attributes.push(Attribute::RtcpMux);
    }

    let plan = MediaPlan {
        remote: remote_address(offer, offered),
        codec,
        payload_type: first.payload_type,
        clock_rate: first.clock_rate,
        ptime_ms: ptime.unwrap_or(DEFAULT_PTIME_MS),
        telephone_event_pt: telephone_event.map(|m| m.payload_type),
        direction,
        rtcp_mux,
        remote_rtcp: remote_rtcp_address(offer, offered),
    };
    Some((media, plan))
}

/// Builds the switch's offer for an outgoing leg (RFC 3264 §5): one audio
/// stream over `RTP/AVP` with the policy's codecs in order (static payload
/// types where they exist, dynamic ones from 96), then telephone-event.
/// An empty codec list yields an `m=` line without voice formats; callers
/// validate configuration before offering.
#[must_use]
pub fn offer(policy: &OfferPolicy) -> SessionDescription {
    let mut sd = local_description(
        &policy.username,
        policy.session_id,
        policy.session_version,
        policy.local_address,
    );
    let mut media =
        MediaDescription::new(MediaType::Audio, policy.local_port, "RTP/AVP", Vec::new());
    let te_pt = policy.telephone_event.then_some(policy.telephone_event_pt);
    let mut next_dynamic: u8 = 96;
    let mut offered: Vec<&CodecName> = Vec::with_capacity(policy.codecs.len());
    media.formats.reserve_exact(policy.codecs.len() + 1);
    media.attributes.reserve_exact(policy.codecs.len() + 5);
    for codec in &policy.codecs {
        if *codec == CodecName::TelephoneEvent || offered.contains(&codec) {
            continue;
        }
        let pt = match codec.static_payload_type() {
            Some(pt) => pt,
            None => {
                while Some(next_dynamic) == te_pt {
                    next_dynamic = next_dynamic.saturating_add(1);
                }
                if next_dynamic > 127 {
                    continue;
                }
                let pt = next_dynamic;
                next_dynamic = next_dynamic.saturating_add(1);
                pt
            }
        };
        let Some(map) = codec.rtpmap(pt) else {
            continue;
        };
        offered.push(codec);
        media.formats.push(u64_text(u64::from(pt)));
        media.attributes.push(Attribute::RtpMap(map));
    }
    if let Some(pt) = te_pt {
        if let Some(map) = CodecName::TelephoneEvent.rtpmap(pt) {
            media.formats.push(u64_text(u64::from(pt)));
            media.attributes.push(Attribute::RtpMap(map));
            media.attributes.push(Attribute::Fmtp(Fmtp {
                payload_type: pt,
                params: TELEPHONE_EVENT_FMTP.to_owned(),
            }));
        }
    }
    if let Some(ms) = policy.ptime {
        media.attributes.push(Attribute::Ptime(ms));
    }
    media
        .attributes
        .push(Attribute::Direction(policy.direction));
    if policy.rtcp_mux {
        media.attributes.push(Attribute::RtcpMux);
    }
    sd.media.push(media);
    sd
}

/// Reads the answer to our `offer` (RFC 3264 §7): the first offered audio
/// stream the answer accepts gives the plan; its codec is the first
/// answered format that was offered (telephone-event aside).
///
/// # Errors
/// [`NegotiationError::MediaCountMismatch`] when the m= lines do not pair
/// up, [`NegotiationError::Rejected`] when every offered audio stream was
/// answered with port 0, [`NegotiationError::NoCommonCodec`] when the
/// accepted stream names no offered voice codec, and
/// [`NegotiationError::NoAudioStream`] when we offered no audio.
pub fn apply_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<MediaPlan, NegotiationError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let mut saw_rejected = false;
    for (ours, theirs) in offer.media.iter().zip(&answer.media) {
        if ours.media != MediaType::Audio || ours.is_rejected() {
            continue;
        }
        if theirs.is_rejected() {
            saw_rejected = true;
            continue;
        }
        let offered: Vec<u8> = ours.payload_types().collect();
        let resolve = |pt: u8| {
            theirs
                .resolve_payload_type_ref(pt)
                .or_else(|| ours.resolve_payload_type_ref(pt))
        };
        let common = || {
            theirs
                .payload_types()
                .filter(|pt| offered.contains(pt))
                .filter_map(resolve)
        };
        let Some(voice) = common().find(|m| !CodecName::TelephoneEvent.matches(m)) else {
            return Err(NegotiationError::NoCommonCodec);
        };
        let telephone_event_pt = common()
            .find(|m| CodecName::TelephoneEvent.matches(m))
            .map(|m| m.payload_type);
        let ours_direction = offer.media_direction(ours);
        let theirs_direction = effective_direction(answer, theirs);
        let direction = Direction::from_flags(
            ours_direction.sends() && theirs_direction.receives(),
            ours_direction.receives() && theirs_direction.sends(),
        );
        return Ok(MediaPlan {
            remote: remote_address(answer, theirs),
            codec: voice.codec(),
            payload_type: voice.payload_type,
            clock_rate: voice.clock_rate,
            ptime_ms: theirs
                .ptime()
                .or_else(|| ours.ptime())
                .unwrap_or(DEFAULT_PTIME_MS),
            telephone_event_pt,
            direction,
            rtcp_mux: ours.rtcp_mux() && theirs.rtcp_mux(),
            remote_rtcp: remote_rtcp_address(answer, theirs),
        });
    }
    Err(if saw_rejected {
        NegotiationError::Rejected
    } else {
        NegotiationError::NoAudioStream
    })
}
