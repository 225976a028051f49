//! Calls: the back-to-back user agent (RFC 3261 §12–§15, RFC 3264).
//!
//! Owns calls and their legs: the inbound leg A (we are its UAS) and the
//! outbound legs B (we are their UAC; several at once when a user with
//! several contacts is forked, or the dialplan rings several endpoints).
//! It runs the dialplan for each call, negotiates SDP on each leg
//! separately (the switch's relay address is always in its SDP), asks the
//! media plane to open, bridge and close legs, and emits a CDR when a call
//! ends. Every path that ends a call releases its legs, ports, timers and
//! media session.
//!
//! ```text
//!  A ──INVITE──► [auth] ─► dialplan ─► Dial ─► INVITE ──► B1, B2 …
//!  A ◄──180────────────────────────────────── 180 ─────── Bn
//!  A ◄──200+SDP──── bridge A↔Bn ◄──────────── 200 ─────── Bn   (CANCEL the rest)
//!  A ──ACK──►                                 ACK ──────► Bn
//!  A/B ──BYE──► 200, BYE the other leg, close media, CDR
//! ```
//!
//! The dialplan's `Answer` answers A and stamps the CDR's answer time. A
//! `Dial` returns to the dialplan when the call it bridged ends, as in
//! Asterisk: when the callee hangs up, its leg is released and `ANSWER`
//! is fed back; a step with `continue = true` then goes on with the
//! caller still up, otherwise the dialplan hangs it up.
//!
//! A phone registered over TCP is reached over the connection its
//! REGISTER came on while that is open (RFC 5626 §5, RFC 5923; the switch
//! learns open connections from what arrives on them and forgets them
//! when the edge reports them closed), else at its Contact (the edge opens
//! a connection). A connection that closes or cannot be opened fails the
//! requests waiting on it at once (503, RFC 3261 §8.1.3.1). Legs over TCP
//! name our TCP listener in Via and Contact.
//!
//! Early media (a callee's 18x with SDP opens and bridges its media leg
//! and gives A a 183 with our relay SDP) is handled here; reliable
//! provisionals live in [`prack`], session timers in [`session_timer`],
//! per-user call limits in [`limits`], DTMF INFO bodies in [`dtmf_info`],
//! per-leg DTMF modes and digits across a bridge in [`dtmf_relay`];
//! the IVR applications (Playback, Background, Read…: media commands on the
//! caller's leg) in `apps`, and the running execution's timer, digits,
//! playback results and hangup in `execution`; hold and music on hold
//! in [`hold`], MixMonitor and Record in [`recording`].
//!
//! In a dialog, requests the switch does not act on get the RFC's refusal,
//! never a blind 200: INFO is answered 200 only when its body is a DTMF
//! digit (which then goes through [`Switch::digit_received`], the same
//! path as an RFC 4733 digit from the media plane), 415 with `Accept` for
//! any other body type, 400 for a malformed one; REFER (no transfers yet)
//! and MESSAGE are refused by validation (501, 405) before they get here.

mod apps;
pub mod dtmf_info;
pub mod dtmf_relay;
mod events;
mod execution;
pub mod hold;
pub mod limits;
pub mod model;
pub mod ports;
pub mod prack;
pub mod recording;
pub mod session_timer;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_cdr::{CallRecord, Disposition};
use carillon_dialplan::{
    CallInfo, Command, DialStatus, DialTarget, Dialplan, Event as PlanEvent, Execution,
};
use carillon_events::ChannelState;
use carillon_mediactl::{
    AudioCodec, DtmfMode, DtmfSource, LegId, LegParams, MediaCommand, MediaEvent, SessionId,
};
use carillon_sdp::{
    AnswerPolicy, CodecName, Direction, MediaPlan, OfferPolicy, SessionDescription,
};
use carillon_sip::{
    HeaderName, Message, MessageBuilder, MessageWriter, Method, RequestParts, ResponseParts,
};
use carillon_transaction::{
    ClientEvent, ClientTransaction, TimerConfig, TransactionKind, Uas2xxEvent, Uas2xxRetransmitter,
};
use carillon_trunk::{OutboundTarget, PortName};
use tracing::{debug, info, warn};

use crate::endpoint::{response_route, Peer, Transmit, Transport};
use crate::header_text::{self, concat, cseq, strip_tag, via};
use crate::switch::{build_response, Output, Switch};
use crate::users::NatMode;
use model::{Bridge, BridgeId, Call, CallState, ChanState, Channel, Inbound};

/// Call handling settings.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub dialplan: Option<Dialplan>,
    /// Address written in our SDP (the relay address).
    pub media_ip: IpAddr,
    /// Our SIP address for Via and Contact.
    pub sip_addr: SocketAddr,
    /// RTP port range (even ports are used for RTP, odd for RTCP).
    pub rtp_ports: (u16, u16),
    /// Media workers: the port range is shared out between them (see
    /// [`ports`]).
    pub media_workers: usize,
    /// Voice codecs offered on outgoing legs when the callee has none set.
    pub default_codecs: Vec<CodecName>,
    pub timers: TimerConfig,
    /// Trunk configuration (`trunks.toml`), started once our address is known.
    pub trunks: Option<carillon_trunk::TrunkSet>,
    /// Host names resolved when the configuration was loaded (trunk
    /// contacts): the switch itself never does DNS.
    pub hosts: HashMap<String, IpAddr>,
    /// Whether switch events are built at all (`Output::Event`); the
    /// binary turns them off when no `[events] file` is configured, so a
    /// switch without a consumer spends nothing on them.
    pub events: bool,
    /// Where MixMonitor and Record write their files (`[recording] dir`;
    /// relative to the working directory).
    pub recording_dir: std::path::PathBuf,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            dialplan: None,
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sip_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
            rtp_ports: (10000, 20000),
            media_workers: 1,
            default_codecs: vec![CodecName::Pcmu, CodecName::Pcma],
            timers: TimerConfig::default(),
            trunks: None,
            hosts: HashMap::new(),
            events: true,
            recording_dir: std::path::PathBuf::from("var/recordings"),
        }
    }
}

/// Who placed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An authenticated local user (extension).
    User(String),
    /// A trunk identified by source address.
    Trunk(String),
}

/// How a DTMF digit reached the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    /// An RFC 4733 telephone-event in the leg's RTP (media plane).
    Rfc4733,
    /// A SIP INFO in the leg's dialog ([`dtmf_info`]).
    SipInfo,
    /// Tones in the leg's audio (the media plane's in-band detector).
    Inband,
}

impl DigitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DigitSource::Rfc4733 => "rfc4733",
            DigitSource::SipInfo => "sip_info",
            DigitSource::Inband => "inband",
        }
    }
}

/// How to reach one outbound target.
#[derive(Debug, Clone)]
struct ForkSpec {
    request_uri: String,
    to_uri: String,
    from_uri: Option<String>,
    peer: Peer,
    codecs: Vec<String>,
    channel: String,
    extra: Vec<(String, String)>,
    trunk: Option<(String, Option<PortName>)>,
    user: Option<String>,
    failover: Option<Failover>,
    dtmf_mode: DtmfMode,
}

/// The calling number of a call from `trunk`: the From user, normalised
/// with the trunk's `numbering` rule set (`[numbering.NAME]` of the
/// dialplan, e.g. `03001234567` → `+923001234567`), so that the dialplan's
/// `${CALLERID(num)}`, the From/P-Asserted-Identity of the outbound leg and
/// the CDR's `src` all see the normalised number.
fn trunk_caller_number(
    plan: &Dialplan,
    trunk: &str,
    config: Option<&carillon_trunk::TrunkConfig>,
    from_user: &str,
) -> String {
    let Some(name) = config.and_then(|c| c.numbering.as_deref()) else {
        return from_user.to_owned();
    };
    match plan.numbering(name) {
        Some(rules) => rules.normalise(from_user),
        None => {
            warn!(trunk = %trunk, numbering = %name, "the trunk's numbering names no [numbering.NAME] rule set in the dialplan: caller number left as sent");
            from_user.to_owned()
        }
    }
}

/// The codecs `trunk` allows (`allow`), by name.
fn trunk_codecs(trunks: &carillon_trunk::Trunks, trunk: &str) -> Vec<String> {
    trunks
        .set()
        .get(trunk)
        .map(|c| c.allow.iter().map(|a| a.as_str().to_owned()).collect())
        .unwrap_or_default()
}

/// What an outbound leg to a carrier contact needs to be placed again at
/// the trunk's next contact when this one fails (408/500/503 before any
/// ringing; see `Switch::fail_over`).
#[derive(Debug, Clone)]
struct Failover {
    trunk: String,
    number: String,
    /// Index of the contact this leg went to.
    contact: usize,
}

struct ClientEntry {
    txn: ClientTransaction,
    to: Peer,
    call: u64,
    leg: LegId,
    method: Method,
    /// Request-URI of the request (an INVITE's ACK reuses it).
    request_uri: String,
    /// A session refresh (re-INVITE or UPDATE) of a confirmed leg.
    refresh: bool,
}

/// Where a call-id leads.
#[derive(Debug, Clone, Copy)]
struct LegRef {
    call: u64,
    leg: LegId,
}

/// Maps keyed only by values the switch generates itself (call numbers,
/// media session ids, our own random branches): foldhash instead of
/// SipHash. Inserting attacker-chosen keys is what makes a hash-flooding
/// attack, and these maps never get one: a response's branch from the
/// network is only looked up, which costs one probe sequence among keys we
/// chose. Maps with keys from the network (Call-ID, server transaction
/// keys, users, sources) keep the standard library's random SipHash.
type OwnKeyMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Every call and the client transactions of their legs.
pub struct Calls {
    config: CallConfig,
    calls: OwnKeyMap<u64, Call>,
    /// Keyed by Call-ID, including callers' (network-chosen): SipHash.
    by_call_id: HashMap<String, LegRef>,
    by_session: OwnKeyMap<SessionId, u64>,
    clients: OwnKeyMap<String, ClientEntry>,
    /// Events of a client transaction, gathered per response (reused).
    client_events: Vec<ClientEvent>,
    deadlines: crate::deadlines::Deadlines<Timer>,
    free_ports: ports::PortPool,
    next_id: u64,
    /// The last bridge number given.
    last_bridge: u64,
    cps: limits::CpsWindows,
    /// `config.sip_addr` as a SIP URI host (`ip:port`), written into
    /// every Via and Contact; kept in step by `set_sip_addr`.
    sip_host: String,
    /// `<sip:carillon@{sip_host}>`, our Contact.
    contact: String,
    /// Our TCP listener as a SIP URI host, and the Contact naming it with
    /// `;transport=tcp`, for legs over TCP (None: no TCP listener known).
    tcp_host: Option<String>,
    tcp_contact: Option<String>,
    /// Open stream connections by remote address, learnt from what
    /// arrives on them and forgotten when the edge reports them closed:
    /// requests to a phone registered over TCP go over the connection its
    /// REGISTER came on (RFC 5626 §5, RFC 5923) while it is open.
    /// Network-keyed: SipHash.
    streams: HashMap<SocketAddr, u64>,
    /// Recordings not reported done yet, by session and id
    /// ([`recording`]).
    recordings: OwnKeyMap<(SessionId, carillon_mediactl::RecordingId), recording::Pending>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    Client(String),
    Call(u64),
    /// Leg A's reliable provisional (retransmit / give up).
    Reliable(u64),
    /// A leg's session timer (refresh / expiry).
    Session(u64, LegId),
    /// The caller's INVITE has had no response yet: 100 Trying.
    Trying(u64),
}

/// How long a new call's INVITE may go without any response before the
/// switch sends 100 Trying. RFC 3261 §17.2.1 requires the 100 unless the
/// TU will answer within 200 ms; a callee that rings or answers sooner
/// makes it unnecessary (one datagram less per call), and 100 ms keeps
/// it far ahead of the caller's first retransmission (T1 = 500 ms).
pub const TRYING_AFTER: Duration = Duration::from_millis(100);

fn audio_codec(c: &CodecName) -> Option<AudioCodec> {
    match c {
        CodecName::Pcmu => Some(AudioCodec::Pcmu),
        CodecName::Pcma => Some(AudioCodec::Pcma),
        _ => None,
    }
}

fn leg_params(plan: &MediaPlan) -> Option<LegParams> {
    Some(LegParams {
        codec: audio_codec(&plan.codec)?,
        payload_type: plan.payload_type,
        telephone_event_pt: plan.telephone_event_pt,
        ptime: Duration::from_millis(u64::from(plan.ptime_ms.max(10))),
        remote: plan.remote,
        latch: true,
        send: matches!(plan.direction, Direction::SendRecv | Direction::SendOnly),
        recv: matches!(plan.direction, Direction::SendRecv | Direction::RecvOnly),
    })
}

fn dial_status_of(status: u16) -> DialStatus {
    match status {
        486 | 600 => DialStatus::Busy,
        408 | 480 | 487 => DialStatus::NoAnswer,
        404 | 410 | 484 | 604 => DialStatus::ChanUnavail,
        _ => DialStatus::Congestion,
    }
}

/// Final status owed to the caller for a Q.850 cause (RFC 3398 §8.2).
fn status_for_cause(cause: u8) -> u16 {
    match cause {
        1 | 3 => 404,
        17 => 486,
        18 | 19 => 480,
        20 => 480,
        21 => 403,
        22 => 410,
        27 => 502,
        28 => 484,
        31 | 16 => 480,
        34 | 38 | 41 | 42 | 47 => 503,
        _ => 500,
    }
}

/// The parts of our Via towards `leg` (`SIP/2.0/<transport> <host>;branch=…;rport`).
fn via_parts<'a>(leg: &'a Channel, host: &'a str, branch: &'a str) -> [&'a str; 7] {
    [
        "SIP/2.0/",
        leg.peer.transport.via_token(),
        " ",
        host,
        ";branch=",
        branch,
        ";rport",
    ]
}

/// The Via, Max-Forwards, From, To, Call-ID and CSeq an outbound leg's
/// INVITE and its CANCEL share (same branch and CSeq number, RFC 3261
/// §9.1).
fn invite_transaction_heads<'w>(
    w: &'w mut MessageWriter,
    leg: &Channel,
    host: &str,
    method: &str,
) -> &'w mut MessageWriter {
    w.header("Via", &via_parts(leg, host, &leg.invite_branch))
        .header("Max-Forwards", &["70"])
        .header("From", &[&leg.local_uri, ";tag=", &leg.local_tag])
        .header("To", &[&leg.remote_uri])
        .header("Call-ID", &[&leg.call_id])
        .cseq(leg.invite_cseq, method)
}

impl Calls {
    /// Outbound leg `leg_id` of call `key`.
    fn fork_mut(&mut self, key: u64, leg_id: LegId) -> Option<&mut Channel> {
        self.calls
            .get_mut(&key)?
            .forks
            .iter_mut()
            .find(|l| l.id == leg_id)
    }

    pub fn new(config: CallConfig) -> Self {
        let free_ports = ports::PortPool::new(config.rtp_ports, config.media_workers);
        let sip_host = header_text::sip_uri_host(config.sip_addr);
        let contact = contact_of(&sip_host);
        Calls {
            sip_host,
            contact,
            config,
            calls: OwnKeyMap::default(),
            by_call_id: HashMap::new(),
            by_session: OwnKeyMap::default(),
            clients: OwnKeyMap::default(),
            client_events: Vec::new(),
            deadlines: crate::deadlines::Deadlines::default(),
            free_ports,
            next_id: 1,
            last_bridge: 0,
            cps: limits::CpsWindows::default(),
            tcp_host: None,
            tcp_contact: None,
            streams: HashMap::new(),
            recordings: OwnKeyMap::default(),
        }
    }

    /// The host (`ip:port`) our Via names on `transport`.
    fn host_for(&self, transport: Transport) -> &str {
        via_host(&self.sip_host, self.tcp_host.as_deref(), transport)
    }

    /// Our Contact for a dialog over `transport`: over TCP it names our
    /// TCP listener with `;transport=tcp`, so the peer's requests in the
    /// dialog come over TCP too.
    fn contact_for(&self, transport: Transport) -> &str {
        match (transport, &self.tcp_contact) {
            (Transport::Tcp, Some(c)) => c,
            _ => &self.contact,
        }
    }

    /// Trunk configuration still to be started.
    pub fn take_trunk_set(&mut self) -> Option<carillon_trunk::TrunkSet> {
        self.config.trunks.take()
    }

    pub fn timers(&self) -> TimerConfig {
        self.config.timers
    }

    pub fn hosts(&self) -> &HashMap<String, IpAddr> {
        &self.config.hosts
    }

    /// Trunk host names resolved again for a reloaded `trunks.toml`.
    pub fn set_hosts(&mut self, hosts: HashMap<String, IpAddr>) {
        self.config.hosts = hosts;
    }

    /// A trunk configuration to start at the next timeout (a reload
    /// before the trunks were started).
    pub fn set_trunk_set(&mut self, set: Option<carillon_trunk::TrunkSet>) {
        self.config.trunks = set;
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.config.sip_addr
    }

    pub fn set_sip_addr(&mut self, addr: SocketAddr) {
        self.config.sip_addr = addr;
        self.sip_host = header_text::sip_uri_host(addr);
        self.contact = contact_of(&self.sip_host);
    }

    pub fn set_dialplan(&mut self, plan: Option<Dialplan>) {
        self.config.dialplan = plan;
    }

    /// Our TCP listener's address (for Via and Contact on TCP legs).
    pub fn set_tcp_addr(&mut self, addr: SocketAddr) {
        let host = header_text::sip_uri_host(addr);
        self.tcp_contact = Some(concat(&["<sip:carillon@", &host, ";transport=tcp>"]));
        self.tcp_host = Some(host);
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.calls.len()
    }

    /// Client transactions still open.
    pub fn client_transactions(&self) -> usize {
        self.clients.len()
    }

    /// Channels (SIP dialog legs, inbound and outbound) the switch holds.
    pub fn channels(&self) -> usize {
        self.calls.values().map(Call::channels).sum()
    }

    /// Bridges joining channels' media.
    pub fn bridges(&self) -> usize {
        self.calls.values().filter(|c| c.bridge.is_some()).count()
    }

    /// RTP ports currently allocated to legs.
    pub fn ports_in_use(&self) -> usize {
        self.free_ports.in_use()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next_at()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Call `key` while it has not ended.
    fn live(&mut self, key: u64) -> Option<&mut Call> {
        self.calls
            .get_mut(&key)
            .filter(|c| c.state != CallState::Ended)
    }

    fn next_bridge(&mut self) -> BridgeId {
        self.last_bridge += 1;
        BridgeId(self.last_bridge)
    }

    fn schedule(&mut self, at: Instant, t: Timer) {
        self.deadlines.push(at, t);
    }
}

/// `"name" <uri>` with any `"` left out of the name, or `<uri>` for an
/// empty name; `uri` is the concatenation of `uri_parts`. One allocation.
fn quoted_name_addr(name: &str, uri_parts: &[&str]) -> String {
    let uri_len: usize = uri_parts.iter().map(|p| p.len()).sum();
    let mut out = String::with_capacity(name.len() + uri_len + 5);
    if !name.is_empty() {
        out.push('"');
        out.extend(name.chars().filter(|c| *c != '"'));
        out.push_str("\" ");
    }
    out.push('<');
    for p in uri_parts {
        out.push_str(p);
    }
    out.push('>');
    out
}

/// The host our Via names on `transport`: the TCP listener's for TCP
/// when there is one, else the SIP address's.
fn via_host<'a>(sip_host: &'a str, tcp_host: Option<&'a str>, transport: Transport) -> &'a str {
    match (transport, tcp_host) {
        (Transport::Tcp, Some(h)) => h,
        _ => sip_host,
    }
}

/// Our Contact for a SIP host (`ip:port`).
fn contact_of(sip_host: &str) -> String {
    concat(&["<sip:carillon@", sip_host, ">"])
}

impl Switch {
    fn new_leg(&mut self, call_id: String, peer: Peer, port: u16, channel: String) -> Channel {
        let id = LegId(self.calls.next_id());
        Channel {
            id,
            call_id,
            local_tag: self.random_hex(),
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
            invite_branch: String::new(),
            invite_cseq: 1,
            channel,
            request_uri: String::new(),
            extra_headers: Vec::new(),
            trunk: None,
            auth_tries: 0,
            auth: None,
            interval_tries: 0,
            user: None,
            session_timer: None,
            peer_allows_update: false,
            rel_in: prack::ReliableReceiver::default(),
            failover: None,
            rang: false,
            dtmf_mode: DtmfMode::default(),
            info_out: dtmf_relay::InfoSender::default(),
        }
    }

    fn media(&mut self, cmd: MediaCommand) {
        self.outputs.push_back(Output::Media(cmd));
    }

    /// Our TCP listener's address, once bound: Via and Contact of legs
    /// over TCP name it.
    pub fn set_tcp_addr(&mut self, addr: SocketAddr) {
        self.calls.set_tcp_addr(addr);
    }

    /// Something arrived over a stream connection: it is open, and a
    /// request to its remote address may use it.
    pub(crate) fn note_stream(&mut self, peer: Peer) {
        if let Some(conn) = peer.conn {
            if self.calls.streams.get(&peer.addr) != Some(&conn) {
                self.calls.streams.insert(peer.addr, conn);
            }
        }
    }

    /// The edge closed stream connection `conn` with `addr` (the peer
    /// closed it, or it could not be opened): requests to that address no
    /// longer go over it, and our requests still waiting for an answer on
    /// it have lost their transport (RFC 3261 §17.1.4): an outbound
    /// INVITE fails at once as a 503 (§8.1.3.1) instead of waiting for
    /// Timer B, and the caller's Dial goes on.
    pub fn handle_stream_closed(&mut self, now: Instant, now_ms: u64, conn: u64, addr: SocketAddr) {
        self.now_ms = now_ms;
        self.last_now = Some(now);
        self.calls.streams.retain(|_, c| *c != conn);
        let lost: Vec<String> = self
            .calls
            .clients
            .iter()
            .filter(|(_, e)| {
                e.to.transport.is_reliable()
                    && match e.to.conn {
                        Some(c) => c == conn,
                        // Sent by address: the edge opened (or failed to
                        // open) the connection for it.
                        None => e.to.addr == addr,
                    }
            })
            .map(|(branch, _)| branch.clone())
            .collect();
        for branch in lost {
            self.client_transport_failed(now, now_ms, &branch);
        }
        self.flush_scratch();
    }

    /// A client transaction's connection is gone.
    fn client_transport_failed(&mut self, now: Instant, now_ms: u64, branch: &str) {
        let Some(entry) = self.calls.clients.get_mut(branch) else {
            return;
        };
        entry.txn.handle_transport_error(now);
        let mut failed = false;
        while let Some(ev) = entry.txn.poll_event() {
            failed |= matches!(ev, ClientEvent::TransportFailed | ClientEvent::TimedOut);
        }
        let (call, leg, method, refresh) =
            (entry.call, entry.leg, entry.method.clone(), entry.refresh);
        if entry.txn.is_terminated() {
            self.calls.clients.remove(branch);
        }
        if !failed {
            return;
        }
        info!(call, method = %method, "connection lost before the answer");
        if refresh {
            self.refresh_answered(now, now_ms, call, leg, 503, None);
        } else if method == Method::Invite {
            self.fork_failed(now, now_ms, call, leg, 503);
        }
    }

    /// Where a request to a registered contact goes. With `nat = true`
    /// (the default) the address its REGISTER came from, so a phone behind
    /// NAT is reached through the mapping it opened (Asterisk's
    /// `force_rport` and `rewrite_contact`); with `nat = false` the first
    /// Path hop, or else the Contact as registered, for phones and
    /// registration tools that register from another socket than the one
    /// they listen on. Over a stream: the connection the REGISTER came on
    /// while it is open (RFC 5626 §5), else (with `nat = true`) a new
    /// connection to the Contact's own address (with the Contact's
    /// `transport`, the REGISTER's when it has none).
    fn binding_peer(&self, b: &carillon_registrar::Binding, nat: NatMode) -> Option<Peer> {
        let (mut peer, contact) = match nat {
            // As registered: the Contact, or the first Path hop before it.
            NatMode::AsRegistered => {
                let next = b.path.first().map_or(&*b.contact, String::as_str);
                let uri = next
                    .trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default();
                (resolve_uri(uri, &self.calls.config.hosts)?, uri)
            }
            NatMode::SourceAddress => (Peer::parse(&b.source)?, &*b.contact),
        };
        if !peer.transport.is_reliable() {
            return Some(peer);
        }
        if let Some(&conn) = self.calls.streams.get(&peer.addr) {
            peer.conn = Some(conn);
            return Some(peer);
        }
        if nat == NatMode::AsRegistered {
            return Some(peer);
        }
        let src = peer;
        let mut peer = resolve_uri(contact, &self.calls.config.hosts)?;
        let explicit = carillon_sip::Uri::parse(contact)
            .ok()
            .is_some_and(|u| u.param("transport").flatten().is_some());
        if !explicit {
            peer.transport = src.transport;
        }
        debug!(contact = %contact, source = %b.source, "registration's connection is gone: new connection to the Contact");
        Some(peer)
    }

    /// A new INVITE (no To tag) from an authenticated user or a trunk.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle_new_invite(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
        parts: &RequestParts<'_>,
        caller: Caller,
    ) -> u16 {
        let Some(plan) = self.calls.config.dialplan.clone() else {
            self.respond(now, key, msg, peer, 503, |b| b.reason("No Dialplan"));
            return 503;
        };
        // Caller identity and context.
        let from = msg
            .header(HeaderName::From)
            .unwrap_or_default()
            .into_owned();
        // Validation parsed From and the Request-URI already.
        let is_trunk = matches!(caller, Caller::Trunk(_));
        let from_user = if is_trunk {
            parts
                .from
                .uri
                .user_unescaped()
                .map(|u| u.into_owned())
                .unwrap_or_default()
        } else {
            // Only a trunk's caller is named by the From user.
            String::new()
        };
        let from_name = parts
            .from
            .display_unquoted()
            .map(|d| d.into_owned())
            .unwrap_or_default();
        let from_tag = parts.from.tag().map(str::to_owned);
        let (context, caller_num, caller_name, codecs, trunk) = match &caller {
            Caller::User(u) => {
                let user = self.users.get(u);
                let ctx = user.map_or_else(|| "internal".to_owned(), |x| x.context.clone());
                let codecs = user.map(|x| x.codecs.clone()).unwrap_or_default();
                (
                    ctx,
                    u.clone(),
                    if from_name.is_empty() {
                        u.clone()
                    } else {
                        from_name
                    },
                    codecs,
                    None,
                )
            }
            Caller::Trunk(t) => {
                let config = self.trunks.as_ref().and_then(|x| x.set().get(t));
                (
                    config
                        .and_then(|c| c.context.clone())
                        .unwrap_or_else(|| format!("from-{t}")),
                    trunk_caller_number(&plan, t, config, &from_user),
                    from_name,
                    Vec::new(),
                    Some(t.clone()),
                )
            }
        };
        let exten = parts
            .request_uri
            .user_unescaped()
            .map(|x| x.into_owned())
            .unwrap_or_default();

        // Session timer (RFC 4028 §6): too small an interval gets a 422.
        let a_session = session_timer::negotiate_uas(msg);
        if let session_timer::UasNegotiation::TooSmall { min_se } = a_session {
            info!(caller = ?caller, min_se, "Session-Expires below our minimum: 422");
            self.respond(now, key, msg, peer, 422, |b| {
                b.header("Min-SE", min_se.to_string())
            });
            return 422;
        }
        // Per-user limits (users.toml `max_calls`, `max_cps`).
        let caller_user = match &caller {
            Caller::User(u) => Some(u.clone()),
            Caller::Trunk(_) => None,
        };
        if let Some(u) = &caller_user {
            if let Err(exceeded) = self.check_caller_limits(now, u) {
                return self.refuse_over_limit(
                    now,
                    now_ms,
                    key,
                    peer,
                    msg,
                    (&caller_num, &caller_name),
                    &exten,
                    &context,
                    exceeded,
                );
            }
        }

        // SDP offer on A.
        let offer = match SessionDescription::parse(msg.body()) {
            Ok(o) if !msg.body().is_empty() => o,
            _ => {
                info!(caller = ?caller, "INVITE without an SDP offer refused");
                self.respond(now, key, msg, peer, 488, |b| b.reason("SDP offer required"));
                return 488;
            }
        };
        let call_key = self.calls.next_id();
        let session = SessionId(call_key);
        let Some(port) = self.calls.free_ports.take(session) else {
            warn!("RTP port range exhausted");
            self.respond(now, key, msg, peer, 503, |b| b.reason("No Media Ports"));
            return 503;
        };
        let allowed = codec_list(&codecs, &self.calls.config.default_codecs);
        let a_dtmf = self.dtmf_mode_of_caller(&caller);
        let policy = AnswerPolicy {
            allowed,
            prefer_offerer_order: false,
            local_address: self.calls.config.media_ip,
            local_port: port,
            telephone_event: a_dtmf.negotiates_telephone_event(),
            ptime: Some(20),
            session_id: self.rng_u64() >> 1,
            session_version: 1,
            username: "carillon".into(),
        };
        let (answer, a_plan) = match carillon_sdp::answer(&offer, &policy) {
            Ok(x) => x,
            Err(e) => {
                self.calls.free_ports.give(port);
                info!(error = %e, "no common codec with the caller");
                self.respond(now, key, msg, peer, 488, |b| b);
                return 488;
            }
        };
        // Unique across switches sharing one database: time, call number and
        // 32 random bits (an insert with an existing id would be skipped).
        let uniqueid = {
            let mut id = String::with_capacity(40);
            header_text::push_u64(&mut id, now_ms / 1000);
            id.push('.');
            header_text::push_u64(&mut id, call_key);
            id.push('-');
            header_text::push_hex08(&mut id, u64::from(self.rng_u64() as u32));
            id
        };
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        // The route the server transaction kept for this INVITE.
        let route = self
            .table
            .route_of(key)
            .unwrap_or_else(|| response_route(msg, peer).0);
        let mut a = self.new_leg(
            call_id.clone(),
            route,
            port,
            header_text::channel(&caller_num, call_key),
        );
        a.remote_tag = from_tag;
        a.remote_uri = from;
        a.local_uri = msg.header(HeaderName::To).unwrap_or_default().into_owned();
        // Validation parsed the Contact: when the first line is one element
        // that is the name-addr the line parses as.
        a.remote_target = match (msg.header_str(HeaderName::Contact), parts.contacts.first()) {
            (Some(line), Some(c)) if !line.contains(',') => c.uri.as_str().to_owned(),
            _ => msg
                .with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
                .unwrap_or_default(),
        };
        a.route_set = msg.header_list(HeaderName::RecordRoute).unwrap_or_default();
        a.local_cseq = 1;
        let a_params = leg_params(&a_plan);
        a.plan = Some(a_plan);
        a.local_sdp = Some(answer);
        a.state = ChanState::Early;
        a.peer_allows_update = allows_update(msg);
        a.dtmf_mode = a_dtmf;
        let a_rel = prack::ReliableSender::new(
            prack::Rel::of(msg),
            (self.rng_u64() as u32) >> 1,
            parts.cseq.seq,
            !peer.transport.is_reliable(),
            self.calls.config.timers.t1,
        );

        let info = CallInfo {
            caller_num: caller_num.clone(),
            caller_name: caller_name.clone(),
            uniqueid: uniqueid.clone(),
            variables: Vec::new(),
            language: None,
        };
        let wall = std::time::UNIX_EPOCH + Duration::from_millis(now_ms);
        let exec = match Execution::start(&plan, &context, &exten, info, now, wall) {
            Ok(e) => e,
            Err(e) => {
                self.calls.free_ports.give(port);
                info!(caller = %caller_num, exten = %exten, context = %context, error = %e, "no route");
                self.respond(now, key, msg, peer, 404, |b| b);
                return 404;
            }
        };
        if let Some(params) = a_params {
            self.media(MediaCommand::OpenLeg {
                session,
                leg: a.id,
                local_port: port,
                params,
            });
            self.media_dtmf_mode(session, a.id, a.dtmf_mode);
            a.media_open = true;
        }
        info!(call = call_key, caller = %caller_num, exten = %exten, context = %context, trunk = ?trunk, "call started");
        self.stats.calls_started += 1;
        self.calls.by_call_id.insert(
            call_id,
            LegRef {
                call: call_key,
                leg: a.id,
            },
        );
        self.calls.by_session.insert(session, call_key);
        let call = Call {
            session,
            uniqueid,
            a,
            inbound: Inbound::new(key.to_owned(), msg.clone(), peer, a_rel, a_session),
            forks: Vec::new(),
            bridge: None,
            exec: Some(exec),
            state: CallState::Routing,
            dial_deadline: None,
            wait_deadline: None,
            caller_num,
            caller_name,
            exten,
            context,
            trunk,
            start_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
            answer_ms: None,
            last_dial_status: None,
            cancelled: false,
            hangup_cause: 16,
            caller_user,
            early_leg: None,
            answered_channel: None,
            dial_open: false,
            hold: hold::Hold::Off,
            mixmonitor: recording::MixMonitor::Off,
            recording: None,
            record_app: None,
            exec_media: execution::ExecMedia::default(),
        };
        let a_id = call.a.id;
        self.calls.calls.insert(call_key, call);
        self.emit_channel_created(call_key, a_id);
        self.run_dialplan(now, now_ms, call_key);
        if self.table.has_responded(key) == Some(false) {
            self.calls
                .schedule(now + TRYING_AFTER, Timer::Trying(call_key));
        }
        100
    }

    /// 100 Trying to the caller if its INVITE still has no response.
    fn send_trying(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        if self.table.has_responded(&call.inbound.key) != Some(false) {
            return;
        }
        let (a_key, invite, peer) = (
            call.inbound.key.clone(),
            call.inbound.invite.clone(),
            call.inbound.peer,
        );
        self.respond(now, &a_key, &invite, peer, 100, |b| b);
    }

    fn rng_u64(&mut self) -> u64 {
        use rand::RngCore;
        self.rng.next_u64()
    }

    /// Runs dialplan commands until it waits for something; the
    /// application it left and the one it waits in are reported and its
    /// timer armed ([`execution`]).
    fn run_dialplan(&mut self, now: Instant, now_ms: u64, key: u64) {
        self.execution_resumed(key);
        self.run_dialplan_commands(now, now_ms, key);
        self.execution_blocked(key);
    }

    fn run_dialplan_commands(&mut self, now: Instant, now_ms: u64, key: u64) {
        loop {
            let Some(call) = self.calls.live(key) else {
                return;
            };
            let Some(exec) = call.exec.as_mut() else {
                return;
            };
            if let Some(ev) = exec.poll_event() {
                match ev {
                    PlanEvent::Finished { cause } => {
                        // A Hangup step ends the plan with its command
                        // queued behind this event (after any channel-less
                        // ones, e.g. the `h` extension's).
                        self.drain_channelless(now, key);
                        self.end_call(now, now_ms, key, cause.code());
                        return;
                    }
                    PlanEvent::NoRoute { context, exten } => {
                        info!(call = key, context = %context, exten = %exten, "dialplan: no route");
                        self.end_call(now, now_ms, key, 1);
                        return;
                    }
                    PlanEvent::TrunkRefused { context, trunk } => {
                        warn!(call = key, context = %context, trunk = %trunk, "toll-fraud protection: trunk not allowed from this context");
                        continue;
                    }
                    PlanEvent::Failed(e) => {
                        warn!(call = key, error = %e, "dialplan failed");
                        self.end_call(now, now_ms, key, 41);
                        return;
                    }
                }
            }
            let Some((cmd, step)) = exec.poll_command_step() else {
                // The execution keeps its own timer (Wait, WaitExten, Read):
                // armed by `execution_blocked`.
                return;
            };
            match cmd {
                // The Answer application answers the call: its time is
                // the CDR's answer time (ANSWERED, billsec from here).
                Command::Answer => {
                    self.emit_app_started(key, "Answer", step);
                    self.answer_a(now, key, Some(now_ms));
                    self.emit_app_finished(key, "Answer", "OK");
                }
                Command::SetCallerId(cid) => {
                    call.caller_num = cid.num;
                    call.caller_name = cid.name;
                }
                Command::Hangup { cause } => {
                    self.emit_app_started(key, "Hangup", step);
                    self.end_call(now, now_ms, key, cause.code());
                    return;
                }
                Command::Dial {
                    targets,
                    timeout,
                    caller_id,
                } => {
                    call.caller_num = caller_id.num.clone();
                    call.caller_name = caller_id.name.clone();
                    self.emit_app_started(key, "Dial", step);
                    let (started, callee_busy) = self.dial(now, now_ms, key, &targets);
                    if started == 0 {
                        // A callee at its call limit reads as busy.
                        let status = if callee_busy {
                            DialStatus::Busy
                        } else {
                            DialStatus::ChanUnavail
                        };
                        if let Some(exec) =
                            self.calls.calls.get_mut(&key).and_then(|c| c.exec.as_mut())
                        {
                            exec.handle_dial_result(now, status);
                        }
                        self.dial_returned(key, status);
                        continue;
                    }
                    if let Some(call) = self.calls.calls.get_mut(&key) {
                        call.dial_open = true;
                        call.state = CallState::Dialing;
                        if let Some(t) = timeout {
                            call.dial_deadline = Some(now + t);
                            self.calls.schedule(now + t, Timer::Call(key));
                        }
                    }
                    return;
                }
                // The applications of the caller's channel alone (IVR).
                other => {
                    if self.run_app(now, key, other, step) == apps::Flow::Wait {
                        return;
                    }
                }
            }
        }
    }

    /// Starts outbound legs for the targets; returns how many, and whether
    /// a callee was skipped for its call limit.
    fn dial(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        targets: &[DialTarget],
    ) -> (usize, bool) {
        let caller_num = self.caller_num(key);
        let mut specs: Vec<ForkSpec> = Vec::new();
        let mut trunk_status: Option<u16> = None;
        let mut trunk_unavail = false;
        let mut callee_busy = false;
        for t in targets {
            match t {
                DialTarget::User { name } if !self.callee_below_limit(name) => {
                    info!(call = key, user = %name, "callee at its call limit (max_calls): not rung");
                    callee_busy = true;
                }
                DialTarget::User { name } => {
                    let codecs = self
                        .users
                        .get(name)
                        .map(|u| u.codecs.clone())
                        .unwrap_or_default();
                    let nat = self.users.get(name).map(|u| u.nat).unwrap_or_default();
                    let dtmf_mode = self.dtmf_mode_of_user(name);
                    for b in self.registrar.lookup(name, now_ms / 1000) {
                        let Some(peer) = self.binding_peer(b, nat) else {
                            warn!(call = key, user = %name, contact = %b.contact, source = %b.source, "binding has no address to send to: skipped");
                            continue;
                        };
                        specs.push(ForkSpec {
                            request_uri: b.contact.to_string(),
                            to_uri: concat(&["<sip:", name, "@", &self.realm, ">"]),
                            from_uri: None,
                            peer,
                            codecs: codecs.clone(),
                            channel: header_text::channel(name, key),
                            // The registered Path is the preloaded route
                            // set of requests to the contact (RFC 3327 §5.3).
                            extra: b
                                .path
                                .iter()
                                .map(|p| ("Route".to_owned(), p.clone()))
                                .collect(),
                            trunk: None,
                            user: Some(name.clone()),
                            failover: None,
                            dtmf_mode,
                        });
                    }
                }
                DialTarget::Trunk { trunk, number }
                | DialTarget::Gateway {
                    gateway: trunk,
                    number,
                } => {
                    let Some(trunks) = self.trunks.as_mut() else {
                        warn!(call = key, trunk = %trunk, "no trunks configured");
                        continue;
                    };
                    let codecs = trunk_codecs(trunks, trunk);
                    match trunks.outbound_target(trunk, now) {
                        Ok(target) => {
                            if let Some(spec) =
                                self.trunk_fork(key, trunk, number, &caller_num, codecs, target)
                            {
                                specs.push(spec);
                            }
                        }
                        Err(carillon_trunk::TrunkError::Unavailable {
                            reason: carillon_trunk::UnavailableReason::Disabled,
                            ..
                        }) => {
                            info!(call = key, trunk = %trunk, "trunk is disabled (enabled = false): not dialled");
                            trunk_unavail = true;
                        }
                        Err(e) => {
                            info!(call = key, trunk = %trunk, error = %e, "trunk refused the call");
                            trunk_status = Some(e.status());
                        }
                    }
                }
            }
        }
        if let (Some(st), Some(call)) = (trunk_status, self.calls.calls.get_mut(&key)) {
            call.last_dial_status = Some(dial_status_of(st));
        }
        if let (true, None, Some(call)) =
            (trunk_unavail, trunk_status, self.calls.calls.get_mut(&key))
        {
            call.last_dial_status = Some(DialStatus::ChanUnavail);
        }
        if let (true, Some(call)) = (callee_busy, self.calls.calls.get_mut(&key)) {
            call.last_dial_status = Some(DialStatus::Busy);
        }
        let mut started = 0;
        for spec in specs {
            if let Some(call) = self.calls.calls.get_mut(&key) {
                if spec.trunk.is_some() {
                    call.trunk = spec.trunk.as_ref().map(|(t, _)| t.clone());
                }
            }
            if self.start_fork(now, key, spec) {
                started += 1;
            }
        }
        (started, callee_busy)
    }

    /// The calling number of call `key` (empty if it is gone).
    fn caller_num(&self, key: u64) -> String {
        self.calls
            .calls
            .get(&key)
            .map(|c| c.caller_num.clone())
            .unwrap_or_default()
    }

    /// The leg for a call out through `trunk` to `target` (counted as
    /// started on the trunk); `None` if the contact has no address.
    fn trunk_fork(
        &mut self,
        key: u64,
        trunk: &str,
        number: &str,
        caller_num: &str,
        codecs: Vec<String>,
        target: OutboundTarget,
    ) -> Option<ForkSpec> {
        let request_uri = target.request_uri(number);
        let Some(peer) = resolve_uri(&request_uri, &self.calls.config.hosts) else {
            warn!(call = key, trunk = %trunk, uri = %request_uri, "trunk contact has no resolvable address");
            return None;
        };
        if let Some(trunks) = self.trunks.as_mut() {
            let _ = trunks.call_started(trunk, target.port.as_ref());
        }
        let mut extra = Vec::new();
        if let Some(pai) = target.pai(caller_num) {
            extra.push(("P-Asserted-Identity".to_owned(), pai));
        }
        // Gateway ports are not failed over within a call: the failed port
        // cools down and the next call takes another.
        let failover = target.port.is_none().then(|| Failover {
            trunk: trunk.to_owned(),
            number: number.to_owned(),
            contact: target.contact,
        });
        Some(ForkSpec {
            to_uri: concat(&["<", &request_uri, ">"]),
            request_uri,
            from_uri: Some(target.from_uri(caller_num)),
            peer,
            codecs,
            channel: header_text::channel(trunk, key),
            extra,
            trunk: Some((trunk.to_owned(), target.port)),
            user: None,
            failover,
            dtmf_mode: self.dtmf_mode_of_trunk(trunk),
        })
    }

    /// A carrier contact failed the INVITE of a leg that never rang:
    /// places the leg again at the trunk's next usable contact (RFC 3263
    /// §4.3). False when there is none (or it could not be started).
    fn fail_over(&mut self, now: Instant, key: u64, failed: Failover, status: u16) -> bool {
        let Some(trunks) = self.trunks.as_mut() else {
            return false;
        };
        let target = match trunks.failover_target(&failed.trunk, failed.contact, now) {
            Ok(t) => t,
            Err(e) => {
                info!(call = key, trunk = %failed.trunk, status, error = %e, "trunk contact failed; no other contact to try");
                return false;
            }
        };
        let codecs = trunk_codecs(trunks, &failed.trunk);
        let caller_num = self.caller_num(key);
        info!(call = key, trunk = %failed.trunk, status, next = %target.contact_uri, "trunk contact failed: trying the next one");
        let Some(spec) = self.trunk_fork(
            key,
            &failed.trunk,
            &failed.number,
            &caller_num,
            codecs,
            target,
        ) else {
            return false;
        };
        self.start_fork(now, key, spec)
    }

    fn start_fork(&mut self, now: Instant, key: u64, spec: ForkSpec) -> bool {
        let Some(session) = self.calls.calls.get(&key).map(|c| c.session) else {
            return false;
        };
        let Some(port) = self.calls.free_ports.take(session) else {
            warn!("RTP port range exhausted");
            return false;
        };
        let media_ip = self.calls.config.media_ip;
        let call_id = concat(&[&self.random_hex(), "@carillon"]);
        let branch = self.new_branch();
        let session_id = self.rng_u64() >> 1;
        let ForkSpec {
            request_uri,
            to_uri,
            from_uri,
            peer,
            codecs,
            channel,
            extra,
            trunk,
            user,
            failover,
            dtmf_mode,
        } = spec;
        let mut leg = self.new_leg(call_id.clone(), peer, port, channel);
        let Some(call) = self.calls.calls.get(&key) else {
            self.calls.free_ports.give(port);
            return false;
        };
        // The caller's session interval is asked of the callee too, so a
        // dead callee is noticed the same way (RFC 4028 §7.1).
        let session_expires = match call.inbound.session {
            session_timer::UasNegotiation::Accepted { se, .. } => Some(se.interval),
            _ => None,
        };
        // Our From: `"name" <uri>` (quotes dropped from the name), or `<uri>`.
        let caller_name = call.caller_name.as_str();
        leg.local_uri = match from_uri {
            Some(uri) => quoted_name_addr(caller_name, &[&uri]),
            None => quoted_name_addr(caller_name, &["sip:", &call.caller_num, "@", &self.realm]),
        };
        let allowed = codec_list(&codecs, &self.calls.config.default_codecs);
        let mut policy = OfferPolicy::new(media_ip, port, allowed);
        policy.session_id = session_id;
        policy.telephone_event = dtmf_mode.negotiates_telephone_event();
        let offer = carillon_sdp::offer(&policy);
        leg.remote_uri = to_uri;
        leg.remote_target.clone_from(&request_uri);
        leg.request_uri = request_uri;
        leg.extra_headers = extra;
        if let Some(interval) = session_expires {
            leg.extra_headers
                .push(("Session-Expires".to_owned(), interval.to_string()));
            leg.extra_headers
                .push(("Min-SE".to_owned(), session_timer::MIN_SE.to_string()));
        }
        leg.trunk = trunk;
        leg.user = user;
        leg.failover = failover;
        leg.dtmf_mode = dtmf_mode;
        leg.invite_branch.clone_from(&branch);
        leg.invite_cseq = 1;
        leg.local_cseq = 1;
        leg.local_sdp = Some(offer);
        let bytes = self.build_invite(&leg, None);
        let txn = ClientTransaction::new(
            TransactionKind::Invite,
            peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        let leg_id = leg.id;
        self.calls.by_call_id.insert(
            call_id,
            LegRef {
                call: key,
                leg: leg_id,
            },
        );
        debug!(call = key, uri = %leg.request_uri, to = %peer, "fork started");
        let request_uri = leg.request_uri.clone();
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.forks.push(leg);
        }
        self.emit_channel_created(key, leg_id);
        self.add_client_with_uri(branch, txn, peer, key, leg_id, Method::Invite, request_uri);
        true
    }

    /// The INVITE of an outbound leg, with credentials when answering a
    /// challenge (new branch and CSeq are set on the leg by the caller).
    fn build_invite(&self, leg: &Channel, auth: Option<(&str, &str)>) -> Bytes {
        let host = self.calls.host_for(leg.peer.transport);
        let body = leg
            .local_sdp
            .as_ref()
            .map(|s| s.to_bytes())
            .unwrap_or_default();
        let extra: usize = leg
            .extra_headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + auth.map_or(0, |(n, v)| n.len() + v.len() + 4);
        let mut w = MessageWriter::request(
            &Method::Invite,
            &leg.request_uri,
            400 + 2 * leg.request_uri.len()
                + leg.local_uri.len()
                + leg.remote_uri.len()
                + leg.call_id.len()
                + extra
                + body.len(),
        );
        invite_transaction_heads(&mut w, leg, host, "INVITE")
            .header("Contact", &[self.calls.contact_for(leg.peer.transport)])
            .header(
                "Allow",
                &["INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK"],
            )
            .header("Supported", &["100rel, timer"])
            .header("User-Agent", &[&self.user_agent]);
        for (n, v) in &leg.extra_headers {
            w.header(n, &[v]);
        }
        if let Some((n, v)) = auth {
            w.header(n, &[v]);
        }
        w.finish(Some(("application/sdp", &body)))
    }

    /// A trunk challenged our INVITE: answer with its credentials once.
    fn fork_challenged(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        status: u16,
        msg: &Message,
    ) {
        let header = if status == 407 {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let values: Vec<String> = msg.header_all(header).map(|v| v.into_owned()).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let branch = self.new_branch();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.forks.iter_mut().find(|l| l.id == leg_id) else {
            return;
        };
        let Some((trunk, _)) = leg.trunk.clone() else {
            self.fork_failed(now, now_ms, key, leg_id, status);
            return;
        };
        if leg.auth_tries > 0 {
            warn!(call = key, trunk = %trunk, "trunk rejected our credentials");
            self.fork_failed(now, now_ms, key, leg_id, status);
            return;
        }
        let auth = self
            .trunks
            .as_mut()
            .map(|t| t.authorize(&trunk, status, &refs, "INVITE", &leg.request_uri));
        let Some(Ok((name, value))) = auth else {
            warn!(call = key, trunk = %trunk, "cannot answer the trunk's challenge (no credentials?)");
            self.fork_failed(now, now_ms, key, leg_id, status);
            return;
        };
        leg.auth_tries += 1;
        leg.auth = Some((name.as_str().to_owned(), value));
        self.resend_invite(now, key, leg_id, branch);
        debug!(call = key, trunk = %trunk, "INVITE re-sent with credentials");
    }

    /// The callee answered 422: our `Session-Expires` is below its
    /// `Min-SE`. Sends the INVITE once more asking for its minimum (RFC
    /// 4028 §7.4); a second 422, or one without a usable `Min-SE`, fails
    /// the leg like any other final answer.
    fn fork_interval_too_small(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        msg: &Message,
    ) {
        let min_se = msg
            .header(HeaderName::MinSe)
            .and_then(|v| session_timer::SessionExpires::parse(&v))
            .map(|se| se.interval);
        let branch = self.new_branch();
        let Some(leg) = self.calls.fork_mut(key, leg_id) else {
            return;
        };
        let asked = leg
            .extra_headers
            .iter()
            .find(|(n, _)| n == "Session-Expires")
            .and_then(|(_, v)| session_timer::SessionExpires::parse(v))
            .map(|se| se.interval);
        let retry = match (min_se, asked) {
            (Some(min), Some(asked)) if leg.interval_tries == 0 && min > asked => Some(min),
            _ => None,
        };
        let Some(interval) = retry else {
            warn!(
                call = key,
                ?min_se,
                ?asked,
                "422 from the callee without a larger Min-SE to retry with"
            );
            self.fork_failed(now, now_ms, key, leg_id, 422);
            return;
        };
        leg.interval_tries += 1;
        for (name, value) in &mut leg.extra_headers {
            if name == "Session-Expires" || name == "Min-SE" {
                *value = interval.to_string();
            }
        }
        info!(
            call = key,
            interval, "callee asked for a longer session interval (422): INVITE re-sent"
        );
        self.resend_invite(now, key, leg_id, branch);
    }

    /// Sends a fork's INVITE again in a new transaction (next CSeq, new
    /// branch, same dialog identifiers and offer), with its credentials
    /// if it has any.
    fn resend_invite(&mut self, now: Instant, key: u64, leg_id: LegId, branch: String) {
        let Some(leg) = self.calls.fork_mut(key, leg_id) else {
            return;
        };
        leg.invite_cseq += 1;
        leg.local_cseq = leg.invite_cseq;
        leg.invite_branch = branch.clone();
        leg.state = ChanState::Calling;
        let peer = leg.peer;
        let request_uri = leg.request_uri.clone();
        let snapshot = leg.clone();
        let auth = snapshot
            .auth
            .as_ref()
            .map(|(n, v)| (n.as_str(), v.as_str()));
        let bytes = self.build_invite(&snapshot, auth);
        let txn = ClientTransaction::new(
            TransactionKind::Invite,
            peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        self.add_client_with_uri(branch, txn, peer, key, leg_id, Method::Invite, request_uri);
    }

    #[allow(clippy::too_many_arguments)]
    fn add_client(
        &mut self,
        _now: Instant,
        branch: String,
        txn: ClientTransaction,
        to: Peer,
        call: u64,
        leg: LegId,
        method: Method,
    ) {
        self.add_client_with_uri(branch, txn, to, call, leg, method, String::new());
    }

    /// [`Switch::add_client`] for a request whose Request-URI an ACK will
    /// reuse (an INVITE).
    #[allow(clippy::too_many_arguments)]
    fn add_client_with_uri(
        &mut self,
        branch: String,
        mut txn: ClientTransaction,
        to: Peer,
        call: u64,
        leg: LegId,
        method: Method,
        request_uri: String,
    ) {
        while let Some(b) = txn.poll_transmit() {
            self.scratch.push(Transmit { to, bytes: b });
        }
        if let Some(at) = txn.poll_timeout() {
            self.calls.schedule(at, Timer::Client(branch.clone()));
        }
        self.calls.clients.insert(
            branch,
            ClientEntry {
                txn,
                to,
                call,
                leg,
                method,
                request_uri,
                refresh: false,
            },
        );
    }

    /// Sends an in-dialog request (BYE) on a leg.
    fn send_in_dialog(&mut self, now: Instant, key: u64, leg: &mut Channel, method: Method) {
        self.send_in_dialog_with(now, key, leg, method, Vec::new(), None);
    }

    /// Sends an in-dialog request with extra headers and an SDP body
    /// (PRACK, session refreshes). A re-INVITE or UPDATE is a refresh.
    fn send_in_dialog_with(
        &mut self,
        now: Instant,
        key: u64,
        leg: &mut Channel,
        method: Method,
        headers: Vec<(String, String)>,
        body: Option<Bytes>,
    ) {
        let body = body.map(|b| ("application/sdp", b));
        self.send_in_dialog_typed(now, key, leg, method, headers, body);
    }

    /// [`Switch::send_in_dialog_with`] with a body of any type (the
    /// `application/dtmf-relay` of a DTMF INFO).
    fn send_in_dialog_typed(
        &mut self,
        now: Instant,
        key: u64,
        leg: &mut Channel,
        method: Method,
        headers: Vec<(String, String)>,
        body: Option<(&str, Bytes)>,
    ) {
        let branch = self.new_branch();
        leg.local_cseq += 1;
        let host = self.calls.host_for(leg.peer.transport);
        let target = if leg.remote_target.is_empty() {
            &leg.remote_uri
        } else {
            &leg.remote_target
        };
        let target = target
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned();
        let extra: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut w = MessageWriter::request(
            &method,
            &target,
            320 + target.len()
                + leg.local_uri.len()
                + leg.remote_uri.len()
                + leg.call_id.len()
                + leg.route_set.iter().map(|r| r.len() + 9).sum::<usize>()
                + extra
                + body.as_ref().map_or(0, |(_, b)| b.len() + 40),
        );
        w.header("Via", &via_parts(leg, host, &branch))
            .header("Max-Forwards", &["70"])
            .header(
                "From",
                &[strip_tag(&leg.local_uri), ";tag=", &leg.local_tag],
            );
        match &leg.remote_tag {
            Some(t) => w.header("To", &[strip_tag(&leg.remote_uri), ";tag=", t]),
            None => w.header("To", &[strip_tag(&leg.remote_uri)]),
        };
        w.header("Call-ID", &[&leg.call_id])
            .cseq(leg.local_cseq, method.as_str());
        for r in &leg.route_set {
            w.header("Route", &[r]);
        }
        w.header("User-Agent", &[&self.user_agent]);
        let refresh = matches!(method, Method::Invite | Method::Update);
        if method == Method::Invite {
            w.header("Contact", &[self.calls.contact_for(leg.peer.transport)]);
        }
        for (n, v) in &headers {
            w.header(n, &[v]);
        }
        let bytes = w.finish(body.as_ref().map(|(t, b)| (*t, &b[..])));
        let kind = if method == Method::Invite {
            TransactionKind::Invite
        } else {
            TransactionKind::NonInvite
        };
        let txn = ClientTransaction::new(
            kind,
            leg.peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        self.add_client(now, branch.clone(), txn, leg.peer, key, leg.id, method);
        if let Some(e) = self.calls.clients.get_mut(&branch) {
            e.refresh = refresh;
            e.request_uri = target;
        }
    }

    fn send_cancel(&mut self, now: Instant, key: u64, leg: &Channel) {
        let host = self.calls.host_for(leg.peer.transport);
        // The INVITE's Request-URI (an early dialog may have changed the
        // remote target, RFC 3261 §9.1).
        let ruri = if leg.request_uri.is_empty() {
            &leg.remote_target
        } else {
            &leg.request_uri
        };
        let mut w = MessageWriter::request(
            &Method::Cancel,
            ruri,
            256 + ruri.len() + leg.local_uri.len() + leg.remote_uri.len() + leg.call_id.len(),
        );
        invite_transaction_heads(&mut w, leg, host, "CANCEL");
        // The INVITE's Route header fields (RFC 3261 §9.1).
        for v in preloaded_routes(leg) {
            w.header("Route", &[v]);
        }
        let bytes = w.finish(None);
        let txn = ClientTransaction::new(
            TransactionKind::NonInvite,
            leg.peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        if let Some(e) = self.calls.clients.get_mut(&leg.invite_branch) {
            e.txn.handle_cancel_sent(now);
            if let Some(at) = e.txn.poll_timeout() {
                self.calls
                    .schedule(at, Timer::Client(leg.invite_branch.clone()));
            }
        }
        // The CANCEL has the INVITE's branch; key it apart.
        self.add_client(
            now,
            concat(&[&leg.invite_branch, "|CANCEL"]),
            txn,
            leg.peer,
            key,
            leg.id,
            Method::Cancel,
        );
    }

    fn build_ack(
        sip_host: &str,
        leg: &Channel,
        branch: &str,
        seq: u32,
        to_tag: Option<&str>,
    ) -> Bytes {
        let target = if leg.remote_target.is_empty() {
            &leg.remote_uri
        } else {
            &leg.remote_target
        };
        let uri = target.trim_start_matches('<').trim_end_matches('>');
        let mut w = MessageWriter::request(
            &Method::Ack,
            uri,
            256 + uri.len()
                + leg.local_uri.len()
                + leg.remote_uri.len()
                + leg.call_id.len()
                + leg.route_set.iter().map(|r| r.len() + 9).sum::<usize>(),
        );
        w.header(
            "Via",
            &[
                "SIP/2.0/",
                leg.peer.transport.via_token(),
                " ",
                sip_host,
                ";branch=",
                branch,
                ";rport",
            ],
        )
        .header("Max-Forwards", &["70"])
        .header(
            "From",
            &[strip_tag(&leg.local_uri), ";tag=", &leg.local_tag],
        );
        match to_tag {
            Some(t) => w.header("To", &[strip_tag(&leg.remote_uri), ";tag=", t]),
            None => w.header("To", &[strip_tag(&leg.remote_uri)]),
        };
        w.header("Call-ID", &[&leg.call_id]).cseq(seq, "ACK");
        for r in &leg.route_set {
            w.header("Route", &[r]);
        }
        w.finish(None)
    }

    /// Sends a response to A's INVITE (provisional or final).
    fn respond_a(&mut self, now: Instant, key: u64, status: u16, with_sdp: bool) {
        self.respond_a_with(now, key, status, with_sdp, &[]);
    }

    /// Sends a response to A's INVITE with extra headers; returns its bytes.
    fn respond_a_with(
        &mut self,
        now: Instant,
        key: u64,
        status: u16,
        with_sdp: bool,
        extra: &[(String, String)],
    ) -> Option<Bytes> {
        let call = self.calls.calls.get_mut(&key)?;
        if status >= 200 {
            call.inbound.rel.finish();
        }
        // Built from the call in place (fields of `self` borrowed apart),
        // so neither the INVITE nor its key is copied.
        let call = self.calls.calls.get(&key)?;
        let a_session = call.inbound.session;
        let invite = &call.inbound.invite;
        let a_key = &call.inbound.key;
        let peer = call.inbound.peer;
        let sdp = if with_sdp {
            call.a.local_sdp.as_ref().map(|s| Bytes::from(s.to_bytes()))
        } else {
            None
        };
        let local_tag = call.a.local_tag.as_str();
        let user_agent = self.user_agent.as_str();
        let contact = self.calls.contact_for(peer.transport);
        let mut built = Bytes::new();
        // The route and Via the transaction kept (computed once when the
        // INVITE arrived, borrowed), else computed afresh.
        self.table
            .respond_with(a_key, status, now, &mut self.scratch, |heads| {
                let (to, bytes) = build_response(
                    heads,
                    user_agent,
                    local_tag,
                    invite,
                    peer,
                    status,
                    |mut b| {
                        if status > 100 && status < 300 {
                            b = b.header("Contact", contact);
                            if let Ok(rr) = invite.header_list(HeaderName::RecordRoute) {
                                for r in rr {
                                    b = b.header("Record-Route", r);
                                }
                            }
                        }
                        if (200..300).contains(&status) {
                            b = b
                                .header(
                                    "Allow",
                                    "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK",
                                )
                                .header("Supported", "100rel, timer");
                            if let session_timer::UasNegotiation::Accepted {
                                se,
                                require_timer,
                                ..
                            } = a_session
                            {
                                // RFC 4028 §9: the negotiated interval and refresher.
                                b = b.header("Session-Expires", se.header_value());
                                if require_timer {
                                    b = b.header("Require", "timer");
                                }
                            }
                        }
                        for (n, v) in extra {
                            b = b.header(n.as_str(), v.as_str());
                        }
                        if let Some(body) = sdp {
                            b = b.body("application/sdp", body);
                        }
                        b
                    },
                );
                built = bytes.clone();
                (to, bytes)
            });
        let bytes = built;
        if (200..300).contains(&status) {
            let mut r = Uas2xxRetransmitter::new(now, bytes.clone(), self.calls.config.timers);
            if let Some(at) = r.poll_timeout() {
                self.calls.schedule(at, Timer::Call(key));
            }
            while r.poll_transmit().is_some() {}
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.inbound.ok_2xx = Some(r);
            }
            if let session_timer::UasNegotiation::Accepted { se, we_refresh, .. } = a_session {
                self.arm_session_timer(
                    now,
                    key,
                    session_timer::Side::A,
                    Some((se.interval, we_refresh)),
                );
            }
        }
        Some(bytes)
    }

    /// Answers A with 200 and our SDP (Answer application or bridge).
    fn answer_a(&mut self, now: Instant, key: u64, now_ms: Option<u64>) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.inbound.answered {
            return;
        }
        call.inbound.answered = true;
        call.a.state = ChanState::Up;
        if let Some(ms) = now_ms {
            call.answer_ms = Some(i64::try_from(ms).unwrap_or(i64::MAX));
        }
        let a_id = call.a.id;
        self.emit_state(key, a_id, ChannelState::Up);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if prack::answer_must_wait(call) {
            // RFC 3262 §3: no 2xx while a reliable provisional (with our
            // SDP) is unacknowledged; the PRACK releases it.
            debug!(call = key, "answer waits for the caller's PRACK");
            return;
        }
        self.respond_a(now, key, 200, true);
    }

    /// A response from a peer: match to a client transaction by branch.
    pub(crate) fn handle_response(
        &mut self,
        now: Instant,
        now_ms: u64,
        _peer: Peer,
        msg: &Message,
        parts: &ResponseParts<'_>,
    ) {
        let Some(branch) = parts.top_via.branch() else {
            return;
        };
        let key: std::borrow::Cow<'_, str> = if parts.cseq.method == Method::Cancel {
            concat(&[branch, "|CANCEL"]).into()
        } else {
            branch.into()
        };
        let status = parts.status;
        let to_tag = parts.to.tag();
        let Some(entry) = self.calls.clients.get_mut(key.as_ref()) else {
            debug!(branch = %branch, status, "response matches no transaction; dropped");
            return;
        };
        let (call_key, leg_id, method, refresh, transport) = (
            entry.call,
            entry.leg,
            entry.method.clone(),
            entry.refresh,
            entry.to.transport,
        );
        // ACK for a non-2xx final to INVITE is built here (same branch),
        // with the INVITE's Route header fields (RFC 3261 §17.1.1.3).
        let ack = if method == Method::Invite && status >= 300 {
            let request_uri = entry.request_uri.clone();
            let leg = self
                .calls
                .calls
                .get(&call_key)
                .and_then(|c| c.forks.iter().find(|l| l.id == leg_id));
            let routes: Vec<&str> = leg
                .map(|l| preloaded_routes(l).collect())
                .unwrap_or_default();
            Some(ack_from_response(
                via_host(
                    &self.calls.sip_host,
                    self.calls.tcp_host.as_deref(),
                    transport,
                ),
                &request_uri,
                branch,
                msg,
                &routes,
            ))
        } else {
            None
        };
        let Some(entry) = self.calls.clients.get_mut(key.as_ref()) else {
            return;
        };
        if entry.txn.handle_response(now, status, ack).is_err() {
            return;
        }
        let to = entry.to;
        // The events are gathered in a vector kept for reuse (taken while
        // the handlers below run; one that is still out gets a new one).
        let mut events = std::mem::take(&mut self.calls.client_events);
        events.clear();
        while let Some(b) = entry.txn.poll_transmit() {
            self.scratch.push(Transmit { to, bytes: b });
        }
        while let Some(ev) = entry.txn.poll_event() {
            events.push(ev);
        }
        if let Some(at) = entry.txn.poll_timeout() {
            self.calls
                .deadlines
                .push(at, Timer::Client(key.as_ref().to_owned()));
        }
        if entry.txn.is_terminated() {
            self.calls.clients.remove(key.as_ref());
        }
        if refresh {
            self.refresh_response(now, now_ms, call_key, leg_id, &method, &events, msg);
        } else if method == Method::Invite {
            self.fork_events(now, now_ms, call_key, leg_id, to, &events, msg, to_tag);
        } else if method == Method::Info {
            if let Some(ClientEvent::Final(s)) =
                events.iter().find(|e| matches!(e, ClientEvent::Final(_)))
            {
                self.info_answered(now, call_key, leg_id, *s);
            }
        }
        events.clear();
        self.calls.client_events = events;
    }

    /// What an outbound INVITE's client transaction reported for a
    /// response, acted on.
    #[allow(clippy::too_many_arguments)]
    fn fork_events(
        &mut self,
        now: Instant,
        now_ms: u64,
        call_key: u64,
        leg_id: LegId,
        to: Peer,
        events: &[ClientEvent],
        msg: &Message,
        to_tag: Option<&str>,
    ) {
        for ev in events.iter().copied() {
            match ev {
                ClientEvent::Provisional(s) => {
                    self.fork_provisional(now, call_key, leg_id, s, msg, to_tag)
                }
                ClientEvent::Final(s) if (200..300).contains(&s) => {
                    let live = self
                        .calls
                        .calls
                        .get(&call_key)
                        .is_some_and(|c| c.forks.iter().any(|l| l.id == leg_id));
                    if live {
                        self.fork_answered(now, now_ms, call_key, leg_id, msg, to_tag);
                    } else {
                        self.release_orphan_2xx(now, to, msg);
                    }
                }
                ClientEvent::Retransmitted2xx => self.fork_2xx_again(call_key, leg_id, to_tag),
                ClientEvent::Final(s @ (401 | 407)) => {
                    self.fork_challenged(now, now_ms, call_key, leg_id, s, msg)
                }
                ClientEvent::Final(422) => {
                    self.fork_interval_too_small(now, now_ms, call_key, leg_id, msg)
                }
                ClientEvent::Final(s) => self.fork_failed(now, now_ms, call_key, leg_id, s),
                ClientEvent::TimedOut | ClientEvent::TransportFailed => {
                    self.fork_failed(now, now_ms, call_key, leg_id, 408)
                }
                ClientEvent::Terminated => {}
            }
        }
    }

    /// A 2xx for a fork that no longer exists (CANCEL/200 race, another
    /// fork won, the call ended): ACK it and BYE it (RFC 3261 §9.1, §15).
    fn release_orphan_2xx(&mut self, now: Instant, to: Peer, msg: &Message) {
        let target = msg
            .with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
            .unwrap_or_default();
        if target.is_empty() {
            return;
        }
        let ack_branch = self.new_branch();
        self.scratch.push(Transmit {
            to,
            bytes: ack_from_response(
                self.calls.host_for(to.transport),
                &target,
                &ack_branch,
                msg,
                &[],
            ),
        });
        let bye_branch = self.new_branch();
        let seq = msg.cseq().map_or(1, |c| c.seq) + 1;
        let host = self.calls.host_for(to.transport);
        let bye = MessageBuilder::request(&Method::Bye, &target)
            .header("Via", via(to.transport.via_token(), host, &bye_branch))
            .header("Max-Forwards", "70")
            .header(
                "From",
                msg.header(HeaderName::From)
                    .unwrap_or_default()
                    .into_owned(),
            )
            .header(
                "To",
                msg.header(HeaderName::To).unwrap_or_default().into_owned(),
            )
            .header("Call-ID", msg.call_id().unwrap_or_default().into_owned())
            .header("CSeq", cseq(seq, "BYE"))
            .build();
        info!("late 2xx for a released leg: ACK and BYE");
        let txn = ClientTransaction::new(
            TransactionKind::NonInvite,
            to.transport.is_reliable(),
            bye,
            now,
            self.calls.config.timers,
        );
        self.add_client(now, bye_branch, txn, to, 0, LegId(0), Method::Bye);
    }

    fn fork_provisional(
        &mut self,
        now: Instant,
        key: u64,
        leg_id: LegId,
        status: u16,
        msg: &Message,
        to_tag: Option<&str>,
    ) {
        // A reliable provisional is PRACKed first; a repeated one is
        // not processed again (RFC 3262 §4).
        if !self.prack_callee(now, key, leg_id, msg) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let mut first_ring = false;
        if let Some(leg) = call.forks.iter_mut().find(|l| l.id == leg_id) {
            if leg.state == ChanState::Calling {
                leg.state = ChanState::Early;
            }
            first_ring = status > 100 && !leg.rang;
            leg.rang |= status > 100;
            if leg.remote_tag.is_none() {
                leg.remote_tag = to_tag.map(str::to_owned);
            }
        }
        if first_ring {
            let state = if (180..183).contains(&status) {
                ChannelState::Ringing
            } else {
                ChannelState::Progress
            };
            self.emit_state(key, leg_id, state);
        }
        if status > 100 && !msg.body().is_empty() && self.fork_early_media(now, key, leg_id, msg) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        // 180 Ringing, 181, 182 and a 183 without SDP (progress, no early
        // media yet) reach A as what they are, once per change of status
        // (several forks ringing give one 180); nothing after early media.
        if (180..=183).contains(&status)
            && call.inbound.provisional_sent != status
            && !call.inbound.early_sent
            && !call.inbound.answered
            && call.state == CallState::Dialing
        {
            call.inbound.provisional_sent = status;
            self.provisional_a(now, key, status, false);
        } else if status > 183
            && call.inbound.provisional_sent == 0
            && !call.inbound.early_sent
            && !call.inbound.answered
            && call.state == CallState::Dialing
        {
            // Other 1xx (RFC 3261 §21.1: treat an unknown one as 183).
            call.inbound.provisional_sent = 183;
            self.provisional_a(now, key, 183, false);
        }
    }

    /// Early media (RFC 3960 gateway model): a callee's 18x with an SDP
    /// answer opens its media leg and bridges it to A, and A gets a 183
    /// with our relay SDP, so carrier ringback and announcements are heard
    /// before the answer. The first fork with early media is the one A
    /// hears. False when the SDP is unusable (the 18x is then relayed like
    /// one without SDP).
    fn fork_early_media(&mut self, now: Instant, key: u64, leg_id: LegId, msg: &Message) -> bool {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return false;
        };
        if call.inbound.answered || call.state != CallState::Dialing {
            return false;
        }
        let session = call.session;
        let a_id = call.a.id;
        let hear = call.early_leg.is_none_or(|l| l == leg_id);
        let Some(leg) = call.forks.iter_mut().find(|l| l.id == leg_id) else {
            return false;
        };
        let plan = leg.local_sdp.as_ref().and_then(|offer| {
            SessionDescription::parse(msg.body())
                .ok()
                .and_then(|ans| carillon_sdp::apply_answer(offer, &ans).ok())
        });
        let Some(plan) = plan else {
            info!(call = key, "early SDP unusable: ignored");
            return false;
        };
        let params = leg_params(&plan);
        let changed = leg.plan.as_ref().map(leg_params) != Some(params);
        leg.plan = Some(plan);
        if !hear {
            // Another fork's early media is playing; this answer is kept
            // for when (if) this fork answers.
            return true;
        }
        let mut cmds = Vec::new();
        if let Some(params) = params {
            if !leg.media_open {
                cmds.push(MediaCommand::OpenLeg {
                    session,
                    leg: leg_id,
                    local_port: leg.media_port,
                    params,
                });
                if leg.dtmf_mode != DtmfMode::default() {
                    cmds.push(MediaCommand::SetDtmfMode {
                        session,
                        leg: leg_id,
                        mode: leg.dtmf_mode,
                    });
                }
                leg.media_open = true;
            } else if changed {
                cmds.push(MediaCommand::UpdateLeg {
                    session,
                    leg: leg_id,
                    params,
                });
            }
        }
        if call.early_leg.is_none() {
            call.early_leg = Some(leg_id);
            cmds.push(MediaCommand::Bridge {
                session,
                a: a_id,
                b: leg_id,
            });
            info!(
                call = key,
                leg = leg_id.0,
                "early media from the callee bridged"
            );
        }
        let send_183 = !call.inbound.early_sent;
        call.inbound.early_sent = true;
        for c in cmds {
            self.media(c);
        }
        if send_183 {
            self.provisional_a(now, key, 183, true);
        }
        true
    }

    fn fork_2xx_again(&mut self, key: u64, leg_id: LegId, to_tag: Option<&str>) {
        // A retransmitted 2xx: our ACK was lost; send it again.
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let Some(leg) = call.forks.iter().find(|l| l.id == leg_id) else {
            return;
        };
        let branch = concat(&["z9hG4bK", &leg.local_tag]);
        let ack = Self::build_ack(
            self.calls.host_for(leg.peer.transport),
            leg,
            &branch,
            leg.invite_cseq,
            to_tag,
        );
        self.scratch.push(Transmit {
            to: leg.peer,
            bytes: ack,
        });
    }

    fn fork_answered(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        msg: &Message,
        to_tag: Option<&str>,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return;
        };
        {
            let leg = &mut call.forks[idx];
            leg.remote_tag = to_tag.map(str::to_owned);
            if let Some(c) = msg.with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
            {
                leg.remote_target = c;
            }
            let mut rr = msg.header_list(HeaderName::RecordRoute).unwrap_or_default();
            rr.reverse();
            leg.route_set = rr;
            leg.state = ChanState::Up;
            leg.peer_allows_update = allows_update(msg);
        }
        let already = call.bridge.is_some() || call.state == CallState::Ended || call.cancelled;
        // ACK the 2xx (a new transaction-less request, RFC 3261 §13.2.2.4).
        let leg = &call.forks[idx];
        let ack_branch = concat(&["z9hG4bK", &leg.local_tag]);
        let ack = Self::build_ack(
            via_host(
                &self.calls.sip_host,
                self.calls.tcp_host.as_deref(),
                leg.peer.transport,
            ),
            leg,
            &ack_branch,
            leg.invite_cseq,
            leg.remote_tag.as_deref(),
        );
        let peer = leg.peer;
        self.scratch.push(Transmit {
            to: peer,
            bytes: ack,
        });
        if already {
            // Another fork won, or the caller cancelled: this one is released.
            let Some(call) = self.calls.calls.get_mut(&key) else {
                return;
            };
            let mut leg = call.forks.remove(idx);
            self.send_in_dialog(now, key, &mut leg, Method::Bye);
            leg.state.end();
            self.release_leg(key, leg);
            return;
        }
        // Negotiate B's answer against our offer; a 2xx without SDP keeps
        // the answer its early media gave.
        let plan = if msg.body().is_empty() {
            leg.plan.clone()
        } else {
            leg.local_sdp.as_ref().and_then(|offer| {
                SessionDescription::parse(msg.body())
                    .ok()
                    .and_then(|ans| carillon_sdp::apply_answer(offer, &ans).ok())
            })
        };
        let Some(plan) = plan else {
            warn!(
                call = key,
                "callee answered without a usable SDP answer; hanging up"
            );
            let Some(call) = self.calls.calls.get_mut(&key) else {
                return;
            };
            let mut leg = call.forks.remove(idx);
            self.send_in_dialog(now, key, &mut leg, Method::Bye);
            self.release_leg(key, leg);
            self.fork_failed(now, now_ms, key, leg_id, 488);
            return;
        };
        let bridge_id = self.calls.next_bridge();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.bridge = Some(Bridge::pair(bridge_id, call.a.id, leg_id));
        debug!(call = key, bridge = bridge_id.0, leg = leg_id.0, "bridged");
        call.state = CallState::Answered;
        call.dial_deadline = None;
        call.answered_channel = call.forks.get(idx).map(|l| l.channel.clone());
        let session = call.session;
        let a_id = call.a.id;
        let early_leg = call.early_leg;
        let leg = &mut call.forks[idx];
        let was_open = leg.media_open;
        let changed = leg.plan.as_ref().map(leg_params) != Some(leg_params(&plan));
        leg.plan = Some(plan.clone());
        let port = leg.media_port;
        let dtmf_mode = leg.dtmf_mode;
        leg.media_open = true;
        // Cancel the other forks.
        let others: Vec<LegId> = call
            .forks
            .iter()
            .filter(|l| l.id != leg_id)
            .map(|l| l.id)
            .collect();
        match (leg_params(&plan), was_open) {
            (Some(params), false) => {
                self.media(MediaCommand::OpenLeg {
                    session,
                    leg: leg_id,
                    local_port: port,
                    params,
                });
                self.media_dtmf_mode(session, leg_id, dtmf_mode);
            }
            (Some(params), true) if changed => {
                // The 2xx's SDP differs from the early one: update the leg.
                info!(
                    call = key,
                    "answer SDP differs from the early media SDP: leg updated"
                );
                self.media(MediaCommand::UpdateLeg {
                    session,
                    leg: leg_id,
                    params,
                });
            }
            _ => {}
        }
        if early_leg != Some(leg_id) {
            self.media(MediaCommand::Bridge {
                session,
                a: a_id,
                b: leg_id,
            });
        }
        // An armed MixMonitor records from the bridge on.
        self.mixmonitor_bridged(key);
        // The callee's session timer (RFC 4028 §7.2).
        let negotiated = session_timer::negotiate_uac(msg);
        self.arm_session_timer(now, key, session_timer::Side::B(leg_id), negotiated);
        for other in others {
            self.cancel_fork(now, key, other);
        }
        self.stats.calls_answered += 1;
        info!(call = key, "call answered");
        self.emit_state(key, leg_id, ChannelState::Up);
        self.answer_a(now, key, Some(now_ms));
        self.emit_bridge(key, leg_id, true);
        // The Dial's result (ANSWER) reaches the dialplan when the bridged
        // call ends, as Asterisk's Dial returns then (see
        // `callee_hung_up_to_dialplan`).
    }

    fn cancel_fork(&mut self, now: Instant, key: u64, leg_id: LegId) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return;
        };
        let leg = call.forks.remove(idx);
        match leg.state {
            ChanState::Calling | ChanState::Early => self.send_cancel(now, key, &leg),
            ChanState::Up => {
                let mut leg = leg;
                self.send_in_dialog(now, key, &mut leg, Method::Bye);
                self.release_leg(key, leg);
                return;
            }
            ChanState::Ended { .. } => {}
        }
        self.release_leg(key, leg);
    }

    /// Trunk bookkeeping when an outbound leg ends (concurrency counts, and
    /// a failed gateway port cools down).
    fn trunk_leg_done(&mut self, leg: &Channel) {
        let Some((trunk, port)) = &leg.trunk else {
            return;
        };
        let Some(trunks) = self.trunks.as_mut() else {
            return;
        };
        let _ = trunks.call_ended(trunk, port.as_ref());
        if let (true, Some(now)) = (
            leg.state
                .final_status()
                .is_some_and(|s| s >= 500 || s == 408),
            self.last_now,
        ) {
            let _ = trunks.call_failed(trunk, port.as_ref(), now);
        }
    }

    /// Frees a leg's port and indexes; its transactions finish on their own.
    fn release_leg(&mut self, key: u64, leg: Channel) {
        let was_bridged = match self.calls.calls.get_mut(&key) {
            Some(call) if call.bridged() == Some(leg.id) => {
                if let Some(bridge) = call.bridge.take() {
                    debug!(call = key, bridge = bridge.id.0, "unbridged");
                }
                true
            }
            _ => false,
        };
        if was_bridged {
            self.hold_bridge_ended(key, leg.id);
            self.mixmonitor_bridge_ended(key, leg.id);
        }
        self.emit_fork_gone(key, &leg, was_bridged);
        self.trunk_leg_done(&leg);
        self.calls.free_ports.give(leg.media_port);
        self.calls.by_call_id.remove(&leg.call_id);
        if let Some(call) = self.calls.calls.get_mut(&key) {
            if call.early_leg == Some(leg.id) {
                call.early_leg = None;
            }
        }
        if leg.media_open {
            if let Some(call) = self.calls.calls.get(&key) {
                let session = call.session;
                self.media(MediaCommand::CloseLeg {
                    session,
                    leg: leg.id,
                });
            }
        }
    }

    fn fork_failed(&mut self, now: Instant, now_ms: u64, key: u64, leg_id: LegId, status: u16) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return;
        };
        let mut leg = call.forks.remove(idx);
        // 408/500/503 before any ringing: the contact, not the callee,
        // failed; another contact of the trunk may carry the call.
        let retry = leg
            .failover
            .take()
            .filter(|_| !leg.rang && matches!(status, 408 | 500 | 503));
        leg.state = ChanState::Ended {
            status: Some(status),
        };
        let best = dial_status_of(status);
        call.last_dial_status = Some(match (call.last_dial_status, best) {
            (Some(DialStatus::Busy), _) | (_, DialStatus::Busy) => DialStatus::Busy,
            (Some(DialStatus::NoAnswer), _) => DialStatus::NoAnswer,
            (_, s) => s,
        });
        let remaining = call.forks.len();
        let dialing = call.state == CallState::Dialing && call.bridge.is_none();
        self.release_leg(key, leg);
        debug!(call = key, status, remaining, "fork failed");
        if let (Some(failed), true) = (retry, dialing) {
            if self.fail_over(now, key, failed, status) {
                return;
            }
        }
        if remaining == 0 && dialing {
            self.dial_finished(now, now_ms, key);
        }
    }

    /// A `Dial` of call `key` has returned `status`: it is no longer under
    /// way, and its `app_finished` event is emitted.
    fn dial_returned(&mut self, key: u64, status: DialStatus) {
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.dial_open = false;
        }
        self.emit_app_finished(key, "Dial", status.as_str());
    }

    fn dial_finished(&mut self, now: Instant, now_ms: u64, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Routing;
        call.dial_deadline = None;
        let status = call.last_dial_status.unwrap_or(DialStatus::NoAnswer);
        if let Some(exec) = call.exec.as_mut() {
            exec.handle_dial_result(now, status);
        }
        self.dial_returned(key, status);
        self.run_dialplan(now, now_ms, key);
    }

    /// Ends a call with a Q.850 cause: final response or BYE on every live
    /// leg, close media, write the CDR.
    fn end_call(&mut self, now: Instant, now_ms: u64, key: u64, cause: u8) {
        let Some(call) = self.calls.live(key) else {
            return;
        };
        call.state = CallState::Ended;
        call.hangup_cause = u16::from(cause);
        let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
        for f in forks {
            self.cancel_fork(now, key, f);
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        prack::undo_deferred_answer(call);
        if !call.inbound.answered && !call.cancelled {
            // A plain Hangup after a failed Dial passes the dial's reason
            // on, as Asterisk's hangup cause does.
            let cause = match (cause, call.last_dial_status) {
                (16, Some(d)) => d.cause().code(),
                _ => cause,
            };
            call.hangup_cause = u16::from(cause);
            let status = status_for_cause(cause);
            self.respond_a(now, key, status, false);
        } else if call.a.state == ChanState::Up {
            let mut a = call.a.clone();
            self.send_in_dialog(now, key, &mut a, Method::Bye);
            a.state.end();
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.a = a;
            }
        }
        self.finish_call(now_ms, key);
    }

    /// Removes the call: media session closed, port freed, CDR written.
    fn finish_call(&mut self, now_ms: u64, key: u64) {
        let forks: Vec<(LegId, bool)> = match self.calls.calls.get(&key) {
            Some(call) => call
                .forks
                .iter()
                .map(|l| (l.id, call.bridged() == Some(l.id)))
                .collect(),
            None => return,
        };
        for (leg_id, was_bridged) in forks {
            if let Some(leg) = self
                .calls
                .calls
                .get(&key)
                .and_then(|c| c.forks.iter().find(|l| l.id == leg_id))
                .cloned()
            {
                self.emit_fork_gone(key, &leg, was_bridged);
            }
        }
        // A Dial the call ends returns as Asterisk's does: ANSWER once
        // bridged, else CANCEL.
        if let Some(call) = self.calls.calls.get(&key).filter(|c| c.dial_open) {
            let status = if call.bridge.is_some() || call.answered_channel.is_some() {
                DialStatus::Answer
            } else {
                DialStatus::Cancel
            };
            self.dial_returned(key, status);
        }
        // Recordings are finalised before the session closes.
        self.recordings_call_ending(key);
        let Some(mut call) = self.calls.calls.remove(&key) else {
            return;
        };
        self.emit_caller_gone(&call);
        for leg in &call.forks {
            self.calls.free_ports.give(leg.media_port);
            self.calls.by_call_id.remove(&leg.call_id);
            self.trunk_leg_done(leg);
        }
        self.calls.free_ports.give(call.a.media_port);
        self.calls.by_call_id.remove(&call.a.call_id);
        self.calls.by_session.remove(&call.session);
        self.media(MediaCommand::CloseSession {
            session: call.session,
        });
        let disposition = if call.answer_ms.is_some() {
            Disposition::Answered
        } else if call.cancelled {
            Disposition::Cancel
        } else {
            match call.last_dial_status {
                Some(DialStatus::Busy) => Disposition::Busy,
                Some(DialStatus::NoAnswer) => Disposition::NoAnswer,
                Some(DialStatus::Cancel) => Disposition::Cancel,
                _ => Disposition::Failed,
            }
        };
        let end_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        // The call is gone: its texts move into the record.
        let take = std::mem::take::<String>;
        let clid = concat(&["\"", &call.caller_name, "\" <", &call.caller_num, ">"]);
        let record = CallRecord {
            uniqueid: call.uniqueid.clone(),
            linkedid: take(&mut call.uniqueid),
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            end_ms,
            src: take(&mut call.caller_num),
            dst: take(&mut call.exten),
            clid,
            dcontext: take(&mut call.context),
            channel: take(&mut call.a.channel),
            // The party that answered (the last one, after a Dial that
            // continued), else the first leg still ringing.
            dstchannel: match call.answered_channel.take() {
                Some(channel) => channel,
                None => call
                    .forks
                    .first_mut()
                    .map(|l| take(&mut l.channel))
                    .unwrap_or_default(),
            },
            trunk: call.trunk.take(),
            disposition,
            hangup_cause: call.hangup_cause,
            accountcode: None,
            userfield: None,
            recording: call.recording.take(),
        };
        info!(call = key, disposition = %disposition, billsec = record.billsec(), cause = call.hangup_cause, "call ended");
        self.outputs.push_back(Output::Cdr(record));
    }

    /// CANCEL for a pending INVITE from A (RFC 3261 §9.2).
    pub(crate) fn handle_cancel(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
    ) -> u16 {
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        let found = self.calls.by_call_id.get(&call_id).copied();
        let Some(r) = found else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        self.respond(now, key, msg, peer, 200, |b| b);
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return 200;
        };
        if call.a.id != r.leg || call.inbound.answered {
            return 200; // too late: the 200 already went (CANCEL/200 race)
        }
        call.cancelled = true;
        self.execution_caller_gone(now, r.call);
        info!(call = r.call, "caller cancelled");
        self.respond_a(now, r.call, 487, false);
        if let Some(call) = self.calls.calls.get_mut(&r.call) {
            call.state = CallState::Ended;
            call.hangup_cause = 16;
            let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
            for f in forks {
                self.cancel_fork(now, r.call, f);
            }
        }
        self.finish_call(now_ms, r.call);
        200
    }

    /// ACK for our 2xx on leg A.
    pub(crate) fn handle_dialog_ack(&mut self, now: Instant, msg: &Message) -> bool {
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        let Some(r) = self.calls.by_call_id.get(&call_id).copied() else {
            return false;
        };
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        if let Some(t) = call.inbound.ok_2xx.as_mut() {
            t.handle_ack(now);
        }
        true
    }

    /// BYE, re-INVITE, UPDATE, INFO… inside a dialog.
    pub(crate) fn handle_in_dialog(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
    ) -> u16 {
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        let Some(r) = self.calls.by_call_id.get(&call_id).copied() else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        match method {
            Method::Bye => {
                self.respond(now, key, msg, peer, 200, |b| b);
                self.hangup_from(now, now_ms, r);
                200
            }
            Method::Invite | Method::Update => self.handle_reoffer(now, key, peer, msg, r),
            Method::Prack => self.handle_prack(now, now_ms, key, peer, msg, r),
            Method::Info => self.handle_info(now, key, peer, msg, r),
            Method::Options => {
                self.respond(now, key, msg, peer, 200, |b| {
                    b.header("Allow", carillon_sip::validate::ALLOW)
                        .header("Accept", "application/sdp")
                        .header("Supported", carillon_sip::validate::SUPPORTED)
                });
                200
            }
            // A CANCEL with a To tag (of a re-INVITE): the re-INVITE is
            // answered at once, so there is nothing left to cancel.
            Method::Cancel => {
                self.respond(now, key, msg, peer, 200, |b| b);
                200
            }
            // Validation refuses every other method before a dialog is
            // looked up; should one get here, it is still not handled.
            _ => {
                self.respond(now, key, msg, peer, 501, |b| {
                    b.header("Allow", carillon_sip::validate::ALLOW)
                });
                501
            }
        }
    }

    /// INFO in a dialog: a DTMF digit (`application/dtmf-relay` or
    /// `application/dtmf`) is answered 200 and goes on as a digit of the
    /// leg that sent it; another body type gets 415 with `Accept`, a
    /// malformed body 400. An INFO without a body (some phones' keep-alive)
    /// gets 200 and carries nothing.
    fn handle_info(
        &mut self,
        now: Instant,
        key: &str,
        peer: Peer,
        msg: &Message,
        r: LegRef,
    ) -> u16 {
        if msg.body().is_empty() {
            self.respond(now, key, msg, peer, 200, |b| b);
            return 200;
        }
        let content_type = msg.header_str(HeaderName::ContentType).unwrap_or_default();
        let encoded = msg
            .header_str(HeaderName::ContentEncoding)
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let parsed = if encoded {
            Err(dtmf_info::DtmfInfoError::MediaType(content_type.to_owned()))
        } else {
            dtmf_info::parse(content_type, msg.body())
        };
        match parsed {
            Ok(d) => {
                self.respond(now, key, msg, peer, 200, |b| b);
                self.digit_received(r.call, r.leg, d.digit, d.duration, DigitSource::SipInfo);
                self.relay_digit(
                    now,
                    r.call,
                    r.leg,
                    d.digit,
                    d.duration,
                    DigitSource::SipInfo,
                );
                200
            }
            Err(e) => {
                let status = e.status();
                info!(call = r.call, leg = r.leg.0, status, error = %e, "INFO refused");
                self.respond(now, key, msg, peer, status, |b| {
                    if status == 415 {
                        b.header("Accept", dtmf_info::ACCEPT)
                    } else {
                        b.reason(e.to_string())
                    }
                });
                status
            }
        }
    }

    /// One DTMF digit from a leg of a call, however it came (RFC 4733
    /// telephone-event from the media plane, or a SIP INFO): the one place
    /// digits enter call logic. Today it is counted and logged; the IVR
    /// applications will read digits from here.
    pub(crate) fn digit_received(
        &mut self,
        key: u64,
        leg: LegId,
        digit: char,
        duration: Option<Duration>,
        source: DigitSource,
    ) {
        self.stats.dtmf_digits += 1;
        let duration_ms = duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.emit_dtmf(key, leg, digit, duration_ms, source);
        info!(
            call = key,
            leg = leg.0,
            digit = %digit,
            duration_ms = duration.map_or(0, |d| d.as_millis()),
            source = source.as_str(),
            "DTMF digit"
        );
        self.digit_to_execution(key, leg, digit);
    }

    /// One side hung up: BYE the other, close everything (unless the
    /// bridged callee hung up and the dialplan goes on with the caller).
    fn hangup_from(&mut self, now: Instant, now_ms: u64, r: LegRef) {
        if self.callee_hung_up_to_dialplan(now, now_ms, r) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return;
        };
        call.state = CallState::Ended;
        call.hangup_cause = 16;
        let from_a = call.a.id == r.leg;
        info!(
            call = r.call,
            side = if from_a { "caller" } else { "callee" },
            "hangup"
        );
        if from_a {
            call.a.state.end();
            self.execution_caller_gone(now, r.call);
            let Some(call) = self.calls.calls.get_mut(&r.call) else {
                return;
            };
            let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
            for f in forks {
                self.cancel_fork(now, r.call, f);
            }
        } else {
            if let Some(idx) = call.forks.iter().position(|l| l.id == r.leg) {
                call.forks[idx].state.end();
            }
            if prack::undo_deferred_answer(call) {
                self.respond_a(now, r.call, 480, false);
            } else if call.a.state == ChanState::Up {
                let mut a = call.a.clone();
                self.send_in_dialog(now, r.call, &mut a, Method::Bye);
                a.state.end();
                if let Some(call) = self.calls.calls.get_mut(&r.call) {
                    call.a = a;
                }
            }
        }
        self.finish_call(now_ms, r.call);
    }

    /// The bridged callee hung up on an answered caller: the `Dial`
    /// returns `ANSWER` to the dialplan (`${DIALSTATUS}` = `ANSWER`), as
    /// Asterisk's Dial returns when the bridge ends. A step with
    /// `continue = true` (Asterisk's `g` option) goes on to the next step
    /// with the caller still up; without it the dialplan hangs the caller
    /// up. The callee's leg is released either way. False (nothing done)
    /// when the call is not in that state: the caller hung up, the leg is
    /// not the bridged one, A's 200 still waits for a PRACK, or the
    /// dialplan has already finished.
    fn callee_hung_up_to_dialplan(&mut self, now: Instant, now_ms: u64, r: LegRef) -> bool {
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        let applies = call.a.id != r.leg
            && call.bridged() == Some(r.leg)
            && call.state == CallState::Answered
            && call.a.state == ChanState::Up
            && !call.inbound.rel.answer_deferred
            && call.exec.as_ref().is_some_and(|e| !e.is_finished());
        if !applies {
            return false;
        }
        let Some(idx) = call.forks.iter().position(|l| l.id == r.leg) else {
            return false;
        };
        info!(call = r.call, side = "callee", "hangup");
        self.emit_bridge(r.call, r.leg, false);
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        let mut leg = call.forks.remove(idx);
        leg.state.end();
        call.bridge = None;
        call.early_leg = None;
        call.state = CallState::Routing;
        // Timers of the released leg are ignored once it is gone.
        if let Some(exec) = call.exec.as_mut() {
            exec.handle_dial_result(now, DialStatus::Answer);
        }
        self.release_leg(r.call, leg);
        self.dial_returned(r.call, DialStatus::Answer);
        self.run_dialplan(now, now_ms, r.call);
        true
    }

    /// re-INVITE/UPDATE with an offer (hold, resume, session refresh): we
    /// answer it ourselves and update that leg's media; the other leg is
    /// not disturbed (the media plane stops sending towards a held party).
    fn handle_reoffer(
        &mut self,
        now: Instant,
        key: &str,
        peer: Peer,
        msg: &Message,
        r: LegRef,
    ) -> u16 {
        let media_ip = self.calls.config.media_ip;
        // A refresh may renegotiate the session timer (RFC 4028 §9).
        let negotiation = session_timer::negotiate_uas(msg);
        if let session_timer::UasNegotiation::TooSmall { min_se } = negotiation {
            self.respond(now, key, msg, peer, 422, |b| {
                b.header("Min-SE", min_se.to_string())
            });
            return 422;
        }
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        let session = call.session;
        let leg = if call.a.id == r.leg {
            Some(&mut call.a)
        } else {
            call.forks.iter_mut().find(|l| l.id == r.leg)
        };
        let Some(leg) = leg else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        let mut body = None;
        let mut params = None;
        let mut holds = None;
        if !msg.body().is_empty() {
            let allowed: Vec<CodecName> = leg
                .plan
                .as_ref()
                .map(|p| vec![p.codec.clone()])
                .unwrap_or_default();
            let version = leg
                .local_sdp
                .as_ref()
                .map_or(2, |s| s.origin.session_version + 1);
            let sid = leg
                .local_sdp
                .as_ref()
                .map_or(1, |s| s.origin.session_id.parse::<u64>().unwrap_or(1));
            let policy = AnswerPolicy {
                allowed,
                prefer_offerer_order: false,
                local_address: media_ip,
                local_port: leg.media_port,
                telephone_event: leg.dtmf_mode.negotiates_telephone_event(),
                ptime: Some(20),
                session_id: sid,
                session_version: version,
                username: "carillon".into(),
            };
            match SessionDescription::parse(msg.body())
                .map_err(|_| ())
                .and_then(|o| carillon_sdp::answer(&o, &policy).map_err(|_| ()))
            {
                Ok((ans, plan)) => {
                    info!(call = r.call, direction = ?plan.direction, "re-offer on a leg (hold/resume/refresh)");
                    params = leg_params(&plan);
                    holds = Some(hold::is_hold(&plan));
                    leg.plan = Some(plan);
                    body = Some(Bytes::from(ans.to_bytes()));
                    leg.local_sdp = Some(ans);
                }
                Err(()) => {
                    self.respond(now, key, msg, peer, 488, |b| b);
                    return 488;
                }
            }
        } else if let (Some(s), Some(Method::Invite)) = (&leg.local_sdp, msg.method()) {
            // A re-INVITE without an offer gets ours; an UPDATE without
            // one (a session refresh) gets no SDP (RFC 3311 §5.2).
            body = Some(Bytes::from(s.to_bytes()));
        }
        let leg_id = leg.id;
        if let Some(p) = params {
            self.media(MediaCommand::UpdateLeg {
                session,
                leg: leg_id,
                params: p,
            });
        }
        if let Some(holds) = holds {
            self.hold_reoffered(r.call, leg_id, holds);
        }
        let contact = self.calls.contact_for(peer.transport).to_owned();
        // Any refresh from the peer restarts the leg's session timer.
        let (se, renegotiated) = match negotiation {
            session_timer::UasNegotiation::Accepted {
                se,
                require_timer,
                we_refresh,
            } => (
                Some((se.header_value(), require_timer)),
                Some((se.interval, we_refresh)),
            ),
            _ => (None, None),
        };
        let side = if self
            .calls
            .calls
            .get(&r.call)
            .is_some_and(|c| c.a.id == leg_id)
        {
            session_timer::Side::A
        } else {
            session_timer::Side::B(leg_id)
        };
        self.arm_session_timer(now, r.call, side, renegotiated);
        self.respond(now, key, msg, peer, 200, |mut b| {
            b = b.header("Contact", contact);
            if let Some((se, require_timer)) = se {
                b = b.header("Session-Expires", se);
                if require_timer {
                    b = b.header("Require", "timer");
                }
            }
            match body {
                Some(sdp) => b.body("application/sdp", sdp),
                None => b,
            }
        });
        200
    }

    /// Media plane events (RTP timeout, failures).
    pub fn handle_media_event(&mut self, now: Instant, now_ms: u64, ev: MediaEvent) {
        self.now_ms = now_ms;
        self.last_now = Some(now);
        match ev {
            MediaEvent::RtpTimeout { session, leg } => {
                if let Some(&key) = self.calls.by_session.get(&session) {
                    warn!(call = key, leg = leg.0, "RTP timeout: hanging up");
                    self.end_call(now, now_ms, key, 16);
                }
            }
            MediaEvent::OpenFailed {
                session,
                leg,
                reason,
            } => {
                if let Some(&key) = self.calls.by_session.get(&session) {
                    warn!(call = key, leg = leg.0, reason = %reason, "media open failed: ending call");
                    self.end_call(now, now_ms, key, 47);
                }
            }
            MediaEvent::Dtmf {
                session,
                leg,
                digit,
                duration,
                source,
            } => match self.calls.by_session.get(&session) {
                Some(&key) => {
                    let source = match source {
                        DtmfSource::Rfc4733 => DigitSource::Rfc4733,
                        DtmfSource::Inband => DigitSource::Inband,
                    };
                    self.digit_received(key, leg, digit, Some(duration), source);
                    self.relay_digit(now, key, leg, digit, Some(duration), source);
                }
                None => debug!(session = session.0, digit = %digit, "DTMF of no call"),
            },
            MediaEvent::LegClosed {
                session,
                leg,
                stats,
            } => carillon_mediactl::log_leg_closed(session, leg, &stats),
            MediaEvent::PlaybackDone {
                session,
                leg,
                playback,
                end,
                missing,
            } => self.playback_done(now, now_ms, session, leg, playback, end, missing),
            MediaEvent::RecordingDone {
                session,
                recording,
                path,
                end,
                duration_ms,
                frames_lost,
            } => self.recording_done(
                now,
                now_ms,
                session,
                recording,
                &path,
                &end,
                duration_ms,
                frames_lost,
            ),
            MediaEvent::LegOpened { .. } => {}
        }
        self.flush_scratch();
    }

    /// Timers of client transactions and calls.
    pub(crate) fn calls_timeout(&mut self, now: Instant, now_ms: u64) {
        while let Some(timer) = self.calls.deadlines.pop_due(now) {
            match timer {
                Timer::Client(branch) => self.client_timeout(now, now_ms, &branch),
                Timer::Call(key) => self.call_timeout(now, now_ms, key),
                Timer::Reliable(key) => self.reliable_timeout(now, now_ms, key),
                Timer::Trying(key) => self.send_trying(now, key),
                Timer::Session(key, leg) => self.session_timeout(now, now_ms, key, leg),
            }
        }
    }

    fn client_timeout(&mut self, now: Instant, now_ms: u64, branch: &str) {
        let Some(entry) = self.calls.clients.get_mut(branch) else {
            return;
        };
        if entry.txn.poll_timeout().is_some_and(|t| t > now) {
            return;
        }
        entry.txn.handle_timeout(now);
        let to = entry.to;
        while let Some(b) = entry.txn.poll_transmit() {
            self.scratch.push(Transmit { to, bytes: b });
        }
        let mut events = Vec::new();
        while let Some(ev) = entry.txn.poll_event() {
            events.push(ev);
        }
        let (call, leg, method, refresh) =
            (entry.call, entry.leg, entry.method.clone(), entry.refresh);
        if let Some(at) = entry.txn.poll_timeout() {
            self.calls
                .deadlines
                .push(at, Timer::Client(branch.to_owned()));
        }
        if entry.txn.is_terminated() {
            self.calls.clients.remove(branch);
        }
        let failed = events
            .iter()
            .any(|e| matches!(e, ClientEvent::TimedOut | ClientEvent::TransportFailed));
        if failed && refresh {
            self.refresh_answered(now, now_ms, call, leg, 408, None);
        } else if failed && method == Method::Invite {
            self.fork_failed(now, now_ms, call, leg, 408);
        } else if failed && method == Method::Info {
            self.info_answered(now, call, leg, 408);
        }
    }

    fn call_timeout(&mut self, now: Instant, now_ms: u64, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        // The 2xx retransmitter of leg A.
        let mut ack_lost = false;
        if let Some(r) = call.inbound.ok_2xx.as_mut() {
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
            }
            while let Some(b) = r.poll_transmit() {
                self.scratch.push(Transmit {
                    to: call.a.peer,
                    bytes: b,
                });
            }
            while let Some(ev) = r.poll_event() {
                if matches!(ev, Uas2xxEvent::AckTimedOut) {
                    ack_lost = true;
                }
            }
            match r.poll_timeout() {
                Some(at) => self.calls.deadlines.push(at, Timer::Call(key)),
                None => call.inbound.ok_2xx = None,
            }
        }
        if ack_lost {
            warn!(call = key, "caller never acknowledged the 200: hanging up");
            self.end_call(now, now_ms, key, 41);
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.dial_deadline.is_some_and(|d| d <= now) && call.state == CallState::Dialing {
            call.dial_deadline = None;
            call.last_dial_status = Some(DialStatus::NoAnswer);
            info!(call = key, "dial timeout: no answer");
            let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
            for f in forks {
                self.cancel_fork(now, key, f);
            }
            self.dial_finished(now, now_ms, key);
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.wait_deadline.is_some_and(|d| d <= now) {
            call.wait_deadline = None;
            self.execution_timeout(now, now_ms, key);
        }
    }
}

/// An ACK built from the response it acknowledges (RFC 3261 §17.1.1.3):
/// From, Call-ID and To come from the response, the CSeq number too.
fn ack_from_response(
    sip_host: &str,
    request_uri: &str,
    branch: &str,
    resp: &Message,
    routes: &[&str],
) -> Bytes {
    let transport = resp
        .with_top_via(|v| v.transport.to_owned())
        .unwrap_or_else(|| "UDP".into());
    let seq = resp.cseq().map_or(1, |c| c.seq);
    let from = resp.header(HeaderName::From).unwrap_or_default();
    let to = resp.header(HeaderName::To).unwrap_or_default();
    let call_id = resp.call_id().unwrap_or_default();
    let mut w = MessageWriter::request(
        &Method::Ack,
        request_uri,
        256 + request_uri.len() + from.len() + to.len() + call_id.len(),
    );
    w.header(
        "Via",
        &[
            "SIP/2.0/", &transport, " ", sip_host, ";branch=", branch, ";rport",
        ],
    )
    .header("Max-Forwards", &["70"])
    .header("From", &[&from])
    .header("To", &[&to])
    .header("Call-ID", &[&call_id])
    .cseq(seq, "ACK");
    for r in routes {
        w.header("Route", &[r]);
    }
    w.finish(None)
}

/// The Route header fields an outbound leg's INVITE was sent with (a
/// callee's registered Path), which its CANCEL and non-2xx ACK repeat.
fn preloaded_routes(leg: &Channel) -> impl Iterator<Item = &str> {
    leg.extra_headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Route"))
        .map(|(_, v)| v.as_str())
}

/// Where a SIP URI's requests go: its host (an IP literal or a name
/// resolved at load) and port, UDP unless `transport=tcp`.
pub fn resolve_uri(uri: &str, hosts: &HashMap<String, IpAddr>) -> Option<Peer> {
    let u = carillon_sip::Uri::parse(uri).ok()?;
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    let ip = host
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hosts.get(host).copied())?;
    let transport = match u.param("transport").flatten() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, u.port.unwrap_or(5060)),
        conn: None,
    })
}

/// Whether a message's Allow lists UPDATE (RFC 3311).
fn allows_update(msg: &Message) -> bool {
    // Method tokens hold no quotes or commas, so a plain split of every
    // Allow line finds the same items as `header_list` without building it.
    msg.header_all_str(HeaderName::Allow).any(|value| {
        value
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"))
    })
}

fn codec_list(names: &[String], default: &[CodecName]) -> Vec<CodecName> {
    let list: Vec<CodecName> = names
        .iter()
        .filter_map(|n| n.parse().ok())
        .filter(|c| audio_codec(c).is_some())
        .collect();
    if list.is_empty() {
        default.to_vec()
    } else {
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_from_is_written_as_the_concatenation_was() {
        let old = |name: &str, uri: &str| {
            let display = if name.is_empty() {
                String::new()
            } else {
                concat(&["\"", &name.replace('"', ""), "\" "])
            };
            concat(&[&display, "<", uri, ">"])
        };
        for name in ["", "Agent", "A \"quoted\" name", "\"", "Zoë"] {
            let uri = "sip:100@example.com";
            assert_eq!(
                quoted_name_addr(name, &["sip:", "100", "@", "example.com"]),
                old(name, uri)
            );
            assert_eq!(quoted_name_addr(name, &[uri]), old(name, uri));
        }
    }
}
