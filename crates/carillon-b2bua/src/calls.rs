//! Calls: the back-to-back user agent (RFC 3261 §12–§15, RFC 3264).
//!
//! Owns calls, their channels and bridges ([`model`]): the inbound
//! channel A (we are its UAS) and the outbound channels (forks: we are
//! their UAC; several at once when a user with several contacts is forked,
//! or the dialplan rings several endpoints). It runs the dialplan for each
//! call, negotiates SDP on each channel separately (the switch's relay
//! address is always in its SDP), asks the media plane to open, bridge and
//! close legs, and emits a CDR when a call ends. Every path that ends a
//! call releases its channels, ports, timers and media session.
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
//! This file holds the shared state ([`Calls`]: the calls by number,
//! Call-ID and media session, client transactions, the timer table, the
//! port pool), the configuration and the media-event entry point. The
//! work is split by responsibility, one module each:
//!
//! * [`model`]: the types, `model::Channel` (with its state enum),
//!   `model::Bridge` (members with roles) and `Call`;
//! * `intake`: a new INVITE becomes a call with its caller's channel; the
//!   caller's channel is answered;
//! * `execution`: the dialplan execution running on the caller's channel
//!   (its commands, timer, digits, playbacks); `apps`: the IVR
//!   applications it runs on the channel;
//! * `dial`: `Dial` creates outbound channels (targets, trunks, failover,
//!   challenges, 422);
//! * `forks`: responses on outbound channels (provisionals, early media,
//!   failures, the `Dial`'s result);
//! * `bridging`: the fork that answers is bridged to the caller; a fork
//!   leaving its bridge;
//! * `dialog`: requests inside a dialog (CANCEL, ACK, BYE, INFO, re-INVITE,
//!   UPDATE) and digits;
//! * `teardown`: ending a call from either side, and removing it;
//! * `cdr`: the call's record, built from the call alone;
//! * `messages`: building INVITE, CANCEL, ACK, in-dialog requests and the
//!   caller's responses;
//! * `streams`: TCP connections and where a binding is reached;
//! * `timeouts`: the calls' named timers firing;
//! * and the features: reliable provisionals in [`prack`], session timers
//!   in [`session_timer`], per-user call limits in [`limits`], DTMF INFO
//!   bodies in [`dtmf_info`], per-channel DTMF modes and digits across a
//!   bridge in [`dtmf_relay`], hold and music on hold in [`hold`],
//!   MixMonitor and Record in [`recording`], switch events in `events`,
//!   the RTP port pool in [`ports`].
//!
//! The `Switch` methods of a module are `pub(super)`: the modules call one
//! another through them. Two are reached through a small context instead:
//! `cdr` through the `model::Call` it turns into a record, and the
//! outbound channels' INVITE and CANCEL through `messages::Wire` (our
//! hosts, Contacts and User-Agent, borrowed from the switch for one
//! message). [`model`]'s accessors (`Call::channel`,
//! `Call::bridged`, `Call::live_execution`, `Calls::live`) replace the
//! lookups each module used to repeat.
//!
//! In a dialog, requests the switch does not act on get the RFC's refusal,
//! never a blind 200: INFO is answered 200 only when its body is a DTMF
//! digit (which then goes through `Switch::digit_received`, the same
//! path as an RFC 4733 digit from the media plane), 415 with `Accept` for
//! any other body type, 400 for a malformed one; REFER from the bridged
//! callee is a blind transfer ([`transfer`]); MESSAGE is refused by
//! validation (405) before it gets here.

mod apps;
mod bridging;
mod cdr;
pub mod chanctl;
mod conference;
mod dial;
mod dialog;
pub mod dtmf_info;
pub mod dtmf_relay;
mod events;
mod execution;
mod forks;
pub mod hold;
mod intake;
pub mod limits;
mod messages;
pub mod model;
pub mod ports;
pub mod prack;
pub mod recording;
pub mod session_timer;
mod streams;
mod teardown;
mod timeouts;
mod transfer;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use carillon_dialplan::Dialplan;
use carillon_mediactl::{
    AudioCodec, DtmfSource, LegId, LegParams, MediaCommand, MediaEvent, SessionId,
};
use carillon_sdp::{CodecName, Direction, MediaPlan};
use carillon_sip::Method;
use carillon_transaction::{ClientEvent, ClientTransaction, TimerConfig};
use tracing::{debug, warn};

use crate::endpoint::{Peer, Transport};
use crate::header_text::{self, concat};
use crate::switch::{Output, Switch};
use dial::Failover;
use model::{BridgeId, Call, CallState, ChanState, Channel};

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
    /// The ConfBridge rooms (`conferences.toml`).
    pub conferences: crate::conference::ConferenceConfig,
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
            conferences: crate::conference::ConferenceConfig::default(),
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
    /// The live conference rooms ([`conference`]).
    rooms: crate::conference::Rooms,
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
        let rooms = crate::conference::Rooms::new(config.conferences.clone(), config.media_workers);
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
            rooms,
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
        contact_on(&self.contact, self.tcp_contact.as_deref(), transport)
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

/// The host our Via names on `transport`: the TCP listener's for TCP
/// when there is one, else the SIP address's.
fn via_host<'a>(sip_host: &'a str, tcp_host: Option<&'a str>, transport: Transport) -> &'a str {
    match (transport, tcp_host) {
        (Transport::Tcp, Some(h)) => h,
        _ => sip_host,
    }
}

/// Our Contact on `transport`: the one naming our TCP listener for TCP
/// when there is one, else `contact`.
fn contact_on<'a>(contact: &'a str, tcp_contact: Option<&'a str>, transport: Transport) -> &'a str {
    match (transport, tcp_contact) {
        (Transport::Tcp, Some(c)) => c,
        _ => contact,
    }
}

/// Our Contact for a SIP host (`ip:port`).
fn contact_of(sip_host: &str) -> String {
    concat(&["<sip:carillon@", sip_host, ">"])
}

impl Switch {
    fn new_leg(&mut self, call_id: String, peer: Peer, port: u16, channel: String) -> Channel {
        let id = LegId(self.calls.next_id());
        let local_tag = self.random_hex();
        Channel::new(id, call_id, local_tag, peer, port, channel)
    }

    fn media(&mut self, cmd: MediaCommand) {
        self.outputs.push_back(Output::Media(cmd));
    }

    fn rng_u64(&mut self) -> u64 {
        use rand::RngCore;
        self.rng.next_u64()
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
