//! The switch's call model: `Channel`, `Bridge` and `Call`.
//!
//! Owns the types only (and the small accessors every part of `calls`
//! reaches them through); what happens to them is the other modules'.
//!
//! * A **channel** is one SIP dialog leg: the caller's (leg A, inbound:
//!   we are its UAS) or an outbound one (a fork: we are its UAC). It
//!   carries its dialog (tags, route set, CSeq, target), its media leg and
//!   port, its DTMF mode, its name (`SIP/100-0000002a`) and its
//!   `ChanState`:
//!
//!   ```text
//!   Calling ──1xx with tag──► Early ──2xx──► Up ──BYE/CANCEL──► Ended{status: None}
//!      │                        │                               ▲
//!      └────────────── final failure (status) ──────────────────┘ Ended{status: Some(486)}
//!   ```
//!
//!   Leg A's server-transaction side (its INVITE's key and message, the
//!   reliable provisional sender, the session-timer negotiation, the 2xx
//!   retransmitter, what has been sent to it) is the call's `Inbound`;
//!   an outbound channel's INVITE (branch, CSeq, Request-URI, trunk,
//!   credentials, failover…) is its `Outbound` part, `Channel::uac`.
//! * A **bridge** is a set of channels whose media is joined, each with a
//!   [`Role`]. Today a bridge always has two members (the caller and the
//!   fork that answered, relayed by the media plane); the member list and
//!   roles leave room for a mixer bridge with more members and
//!   listen/whisper supervisors.
//! * A **call** (Asterisk's `linkedid`) is the channels and the bridge
//!   that belong together, the dialplan execution running on the caller's
//!   channel, and the call-level data (caller id, dialled extension, dial
//!   state, CDR stamps, hold and recording state).

use std::time::Instant;

use carillon_dialplan::{DialStatus, Execution};
use carillon_mediactl::{DtmfMode, LegId, SessionId};
use carillon_sdp::{MediaPlan, SessionDescription};
use carillon_sip::Message;
use carillon_transaction::Uas2xxRetransmitter;
use carillon_trunk::PortName;

use super::{dtmf_relay, execution, hold, prack, recording, session_timer, transfer, Failover};
use crate::endpoint::Peer;

/// Where a channel's dialog stands (RFC 3261 §12, §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChanState {
    /// INVITE sent (outbound) or received (inbound), no dialog yet.
    Calling,
    /// Provisional with tag seen/sent: an early dialog.
    Early,
    /// Confirmed dialog: the channel answered (or was answered).
    Up,
    /// BYE/CANCEL sent or a final failure; waiting for nothing more.
    /// `status` is the final failure response of an outbound channel
    /// (the CDR's and the hangup event's cause), when there was one.
    Ended { status: Option<u16> },
}

impl ChanState {
    pub(super) fn is_ended(self) -> bool {
        matches!(self, ChanState::Ended { .. })
    }

    /// Ends the channel, keeping the final status it failed with (if any).
    pub(super) fn end(&mut self) {
        if !self.is_ended() {
            *self = ChanState::Ended { status: None };
        }
    }

    /// The final failure status the channel ended with.
    pub(super) fn final_status(self) -> Option<u16> {
        match self {
            ChanState::Ended { status } => status,
            _ => None,
        }
    }
}

/// Leg A's server side: the INVITE we are the UAS of, and what we have
/// sent on it.
pub(super) struct Inbound {
    /// Server transaction key of A's INVITE (responses go through it).
    pub(super) key: String,
    pub(super) invite: Message,
    pub(super) peer: Peer,
    /// A 2xx went to A (undone when a reliable 2xx is not PRACKed).
    pub(super) answered: bool,
    /// The last provisional without SDP relayed to A (180, 181, 182 or
    /// 183), 0 before any.
    pub(super) provisional_sent: u16,
    /// Retransmits A's 2xx until its ACK (RFC 6026).
    pub(super) ok_2xx: Option<Uas2xxRetransmitter>,
    /// Leg A's reliable provisionals (RFC 3262).
    pub(super) rel: prack::ReliableSender,
    /// Leg A's session timer as negotiated on its INVITE (RFC 4028).
    pub(super) session: session_timer::UasNegotiation,
    /// A got its 183 with our SDP.
    pub(super) early_sent: bool,
}

impl Inbound {
    pub(super) fn new(
        key: String,
        invite: Message,
        peer: Peer,
        rel: prack::ReliableSender,
        session: session_timer::UasNegotiation,
    ) -> Self {
        Inbound {
            key,
            invite,
            peer,
            answered: false,
            provisional_sent: 0,
            ok_2xx: None,
            rel,
            session,
            early_sent: false,
        }
    }
}

/// A bridge's number, unique in the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeId(pub u64);

/// How a member takes part in a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Hears the others and is heard by them (both parties of a call).
    Party,
    /// Hears the bridge, is heard by nobody (a supervisor listening).
    Listen,
    /// Hears the bridge, is heard by one member only (a supervisor
    /// whispering to an agent).
    Whisper { to: LegId },
}

/// Channels whose media is joined.
#[derive(Debug, Clone)]
pub(super) struct Bridge {
    pub(super) id: BridgeId,
    pub(super) members: Vec<(LegId, Role)>,
}

impl Bridge {
    /// A two-party bridge (the media plane relays it).
    pub(super) fn pair(id: BridgeId, a: LegId, b: LegId) -> Self {
        Bridge {
            id,
            members: vec![(a, Role::Party), (b, Role::Party)],
        }
    }

    /// The first party of the bridge other than `leg`.
    pub(super) fn other_party(&self, leg: LegId) -> Option<LegId> {
        self.members
            .iter()
            .find(|(id, role)| *id != leg && *role == Role::Party)
            .map(|(id, _)| *id)
    }

    pub(super) fn has(&self, leg: LegId) -> bool {
        self.members.iter().any(|(id, _)| *id == leg)
    }
}

/// One SIP dialog leg of a call, inbound (the caller's: we are its UAS)
/// or outbound (a fork: we are its UAC), with its dialog state (RFC 3261
/// §12), media leg and DTMF mode. The INVITE we sent on an outbound
/// channel is its [`Outbound`] part (`uac`); the caller's INVITE is the
/// call's [`Inbound`].
#[derive(Debug, Clone)]
pub(super) struct Channel {
    /// The channel's number (the media plane's leg id, the `uniqueid`
    /// suffix of an outbound channel).
    pub(super) id: LegId,
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) remote_tag: Option<String>,
    /// Our name-addr as written in From (UAC) / To (UAS), without tag.
    pub(super) local_uri: String,
    pub(super) remote_uri: String,
    /// Remote target (Contact) for in-dialog requests.
    pub(super) remote_target: String,
    pub(super) route_set: Vec<String>,
    pub(super) local_cseq: u32,
    pub(super) peer: Peer,
    pub(super) state: ChanState,
    pub(super) media_port: u16,
    pub(super) media_open: bool,
    pub(super) plan: Option<MediaPlan>,
    /// Our SDP (offer for B, answer for A) and its version.
    pub(super) local_sdp: Option<SessionDescription>,
    /// The channel's name, Asterisk's form (`SIP/100-0000002a`): events
    /// and the CDR's `channel`/`dstchannel`.
    pub(super) channel: String,
    /// RFC 4028 timer of this leg's dialog, once negotiated.
    pub(super) session_timer: Option<session_timer::SessionTimer>,
    /// The peer listed UPDATE in Allow (refreshes use it then).
    pub(super) peer_allows_update: bool,
    /// How the leg's endpoint sends and expects DTMF ([`dtmf_relay`]).
    pub(super) dtmf_mode: DtmfMode,
    /// Digits waiting to go out on the leg as SIP INFO.
    pub(super) info_out: dtmf_relay::InfoSender,
    /// The INVITE we sent, on an outbound channel (unused on the caller's).
    pub(super) uac: Outbound,
}

/// An outbound channel's side: the INVITE we sent as its UAC and what
/// its responses did to it.
#[derive(Debug, Clone, Default)]
pub(super) struct Outbound {
    /// The INVITE's branch and CSeq (its CANCEL reuses them).
    pub(super) invite_branch: String,
    pub(super) invite_cseq: u32,
    /// The Request-URI, extra headers (P-Asserted-Identity) and the trunk
    /// (with its gateway port) the leg goes out on.
    pub(super) request_uri: String,
    pub(super) extra_headers: Vec<(String, String)>,
    pub(super) trunk: Option<(String, Option<PortName>)>,
    pub(super) auth_tries: u8,
    /// The credentials our INVITE carries since the trunk challenged it.
    pub(super) auth: Option<(String, String)>,
    /// INVITEs re-sent because the callee wanted a longer session
    /// interval (422, RFC 4028 §7.4).
    pub(super) interval_tries: u8,
    /// The local user this outbound leg rings (for `max_calls`).
    pub(super) user: Option<String>,
    /// The callee's reliable provisionals.
    pub(super) rel_in: prack::ReliableReceiver,
    /// Carrier legs: where to try next if this contact fails.
    pub(super) failover: Option<Failover>,
    /// A provisional other than 100 arrived (the far end is ringing or
    /// playing early media: a failure after that is the callee's).
    pub(super) rang: bool,
}

impl Channel {
    /// A channel that has just been created (`Calling`), with its dialog's
    /// Call-ID and local tag, its peer, its RTP port and its name.
    pub(super) fn new(
        id: LegId,
        call_id: String,
        local_tag: String,
        peer: Peer,
        port: u16,
        channel: String,
    ) -> Self {
        Channel {
            id,
            call_id,
            local_tag,
            remote_tag: None,
            local_uri: String::new(),
            remote_uri: String::new(),
            remote_target: String::new(),
            route_set: Vec::new(),
            local_cseq: 1,
            peer,
            state: ChanState::Calling,
            media_port: port,
            media_open: false,
            plan: None,
            local_sdp: None,
            channel,
            session_timer: None,
            peer_allows_update: false,
            dtmf_mode: DtmfMode::default(),
            info_out: dtmf_relay::InfoSender::default(),
            uac: Outbound {
                invite_cseq: 1,
                ..Outbound::default()
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    Routing,
    Dialing,
    Answered,
    Ended,
}

pub(super) struct Call {
    pub(super) session: SessionId,
    pub(super) uniqueid: String,
    /// The caller's channel (leg A: we are its UAS).
    pub(super) a: Channel,
    /// Leg A's server side: its INVITE transaction and what answers it.
    pub(super) inbound: Inbound,
    /// Outbound legs (forks), by leg id.
    pub(super) forks: Vec<Channel>,
    /// The bridge joining the caller to a callee (none while routing,
    /// ringing, or after the callee left).
    pub(super) bridge: Option<Bridge>,
    pub(super) exec: Option<Execution>,
    pub(super) state: CallState,
    pub(super) dial_deadline: Option<Instant>,
    pub(super) wait_deadline: Option<Instant>,
    pub(super) caller_num: String,
    pub(super) caller_name: String,
    pub(super) exten: String,
    pub(super) context: String,
    pub(super) trunk: Option<String>,
    pub(super) start_ms: i64,
    pub(super) answer_ms: Option<i64>,
    pub(super) last_dial_status: Option<DialStatus>,
    pub(super) cancelled: bool,
    pub(super) hangup_cause: u16,
    /// The authenticated user who placed the call (for `max_calls`).
    pub(super) caller_user: Option<String>,
    /// The fork whose early media A hears.
    pub(super) early_leg: Option<LegId>,
    /// Channel name of the outbound leg that answered last (the CDR's
    /// `dstchannel`).
    pub(super) answered_channel: Option<String>,
    /// A `Dial` is under way (its `app_finished` event is owed).
    pub(super) dial_open: bool,
    /// Whether a party of the bridge holds the other (music on hold).
    pub(super) hold: hold::Hold,
    /// MixMonitor of the call ([`recording`]).
    pub(super) mixmonitor: recording::MixMonitor,
    /// The file MixMonitor recorded to (the CDR's `recording`).
    pub(super) recording: Option<String>,
    /// The Record application's recording while it runs.
    pub(super) record_app: Option<carillon_mediactl::RecordingId>,
    /// The execution's playback and timer ([`execution`]).
    pub(super) exec_media: execution::ExecMedia,
    /// A blind transfer (REFER) under way ([`transfer`]).
    pub(super) transfer: Option<transfer::Blind>,
}

impl Call {
    /// The channel bridged to the caller, if the caller is in a bridge.
    pub(super) fn bridged(&self) -> Option<LegId> {
        self.bridge.as_ref()?.other_party(self.a.id)
    }

    /// Channel `id` of the call: the caller's or a fork.
    pub(super) fn channel(&self, id: LegId) -> Option<&Channel> {
        if self.a.id == id {
            return Some(&self.a);
        }
        self.forks.iter().find(|l| l.id == id)
    }

    /// Channel `id` of the call, mutably.
    pub(super) fn channel_mut(&mut self, id: LegId) -> Option<&mut Channel> {
        if self.a.id == id {
            return Some(&mut self.a);
        }
        self.forks.iter_mut().find(|l| l.id == id)
    }

    /// The dialplan execution still running on the caller's channel of a
    /// call that has not ended.
    pub(super) fn live_execution(&mut self) -> Option<&mut Execution> {
        if self.state == CallState::Ended {
            return None;
        }
        self.exec.as_mut().filter(|e| !e.is_finished())
    }

    /// The channels of the call the switch still holds.
    pub(super) fn channels(&self) -> usize {
        1 + self.forks.len()
    }
}
