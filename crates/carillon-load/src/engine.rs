//! The signalling engine: UAC and UAS call state machines over UDP
//! (RFC 3261 §12, §13, §17.1, §17.2), driven as inputs → outputs.
//!
//! Owns pacing (rate and concurrency), every call's state, the timers
//! (one per call, lazily invalidated by a generation number), digest
//! answers to 401/407 (§22.2), SDP offer/answer via `carillon-sdp`, and
//! the counters the report is built from. It does not touch the SIP
//! sockets: [`Engine::poll_transmit`] hands out datagrams and the caller
//! (see [`crate::run`]) sends them. RTP sockets are bound here and handed
//! to the media workers.
//!
//! ```text
//! UAC:  Inviting ──1xx──► (stop Timer A) ──2xx──► ACK, Established
//!          │  └─401/407─► ACK, INVITE+auth (once)       │ hold --duration
//!          └─≥300/Timer B─► failed                      ▼
//!                                     Terminating (BYE, Timer E/F) ──final──► done
//! UAS:  INVITE ──► 100, 180, 200+SDP ── Answering (200 every T1..T2) ──ACK──► Confirmed
//!                                                          BYE ──► 200, done
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_digest::Challenge;
use carillon_sdp::{AnswerPolicy, Direction as SdpDirection, OfferPolicy, SessionDescription};
use carillon_sip::{HeaderName, Message, MessageBuilder, Method, NameAddr, ResponseBuilder, Uri};
use rand::Rng;

use crate::config::{Codec, Config, Role};
use crate::media::{Direction, Media};
use crate::report::{Percentiles, UacCounts, UasCounts};

/// RFC 3261 §17.1.1.1 round-trip estimate.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 §17.1.2.2 maximum non-INVITE retransmission interval.
pub const T2: Duration = Duration::from_secs(4);
/// Timers B, F and H: 64·T1.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(32);
/// How long `both` mode waits for the answering side's last BYEs.
pub const UAS_GRACE: Duration = Duration::from_secs(2);
/// RTP port written in SDP when media is off (discard).
const NO_MEDIA_PORT: u16 = 9;

const USER_AGENT: &str = "carillon-load";
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";

/// Which SIP socket a datagram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Uac,
    Uas,
}

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub side: Side,
    pub to: SocketAddr,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Uac(u64),
    Uas(String),
}

#[derive(Debug)]
struct Dialog {
    to: String,
    remote_target: String,
    route: Vec<String>,
    dest: SocketAddr,
    ack: Bytes,
}

#[derive(Debug)]
enum UacState {
    Inviting {
        via: String,
        invite: Bytes,
        interval: Duration,
        next_retx: Option<Instant>,
        deadline: Instant,
        auth_sent: bool,
    },
    Established {
        dialog: Dialog,
        bye_at: Instant,
    },
    Terminating {
        dialog: Dialog,
        bye: Bytes,
        interval: Duration,
        next_retx: Instant,
        deadline: Instant,
    },
}

#[derive(Debug)]
struct UacCall {
    call_id: String,
    caller: String,
    request_uri: String,
    from: String,
    to: String,
    credential: Option<usize>,
    first_invite_at: Instant,
    cseq: u32,
    state: UacState,
    gen: u64,
    media_key: Option<u64>,
    rtp_port: u16,
    offer: Option<SessionDescription>,
}

#[derive(Debug)]
enum UasState {
    Answering {
        interval: Duration,
        next_retx: Instant,
        deadline: Instant,
    },
    Confirmed,
}

#[derive(Debug)]
struct UasCall {
    src: SocketAddr,
    ok: Bytes,
    state: UasState,
    gen: u64,
    media_key: Option<u64>,
    rtp_port: u16,
}

/// The whole signalling state of a run.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    uac_local: SocketAddr,
    run_tag: String,
    media: Option<Media>,
    outbox: Vec<Transmit>,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerKey)>>,
    uac_calls: HashMap<u64, UacCall>,
    uas_calls: HashMap<String, UasCall>,
    started: u64,
    next_start: Instant,
    next_media_key: u64,
    first_start: Option<Instant>,
    last_start: Option<Instant>,
    uac_done_at: Option<Instant>,
    setup_ms: Vec<f64>,
    uac: UacCounts,
    uas: UasCounts,
}

impl Engine {
    /// `uac_local` is the address the UAC socket is bound to (for Via and
    /// Contact); `media` is `Some` when RTP is on.
    pub fn new(cfg: Config, uac_local: SocketAddr, media: Option<Media>, now: Instant) -> Engine {
        let run_tag = format!("{:08x}", rand::thread_rng().gen::<u32>());
        Engine {
            cfg,
            uac_local,
            run_tag,
            media,
            outbox: Vec::new(),
            timers: BinaryHeap::new(),
            uac_calls: HashMap::new(),
            uas_calls: HashMap::new(),
            started: 0,
            next_start: now,
            next_media_key: 0,
            first_start: None,
            last_start: None,
            uac_done_at: None,
            setup_ms: Vec::new(),
            uac: UacCounts::default(),
            uas: UasCounts::default(),
        }
    }

    /// Datagrams to send, oldest first.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.remove(0))
        }
    }

    /// Takes every pending datagram at once.
    pub fn drain_transmits(&mut self) -> std::vec::Drain<'_, Transmit> {
        self.outbox.drain(..)
    }

    /// The next instant something is due: a timer or a new call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let start = self.can_start().then_some(self.next_start);
        let grace = self.uac_done_at.map(|t| t + UAS_GRACE);
        [timer, start, grace].into_iter().flatten().min()
    }

    fn can_start(&self) -> bool {
        self.cfg.role.places_calls()
            && self.started < self.cfg.calls
            && self.uac_calls.len() < self.cfg.concurrency
    }

    /// True when the run has nothing left to do.
    pub fn is_done(&self, now: Instant) -> bool {
        match self.cfg.role {
            Role::Uac => self.started >= self.cfg.calls && self.uac_calls.is_empty(),
            Role::Both => {
                self.started >= self.cfg.calls
                    && self.uac_calls.is_empty()
                    && (self.uas_calls.is_empty()
                        || self.uac_done_at.is_some_and(|t| now >= t + UAS_GRACE))
            }
            Role::Uas => {
                self.uas.completed + self.uas.ack_timeouts + self.uas.rejected >= self.cfg.calls
                    && self.uas_calls.is_empty()
            }
        }
    }

    /// Fires due timers and starts due calls.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, gen, key))) = self.timers.pop() else {
                break;
            };
            match key {
                TimerKey::Uac(k) => self.on_uac_timer(now, k, gen),
                TimerKey::Uas(id) => self.on_uas_timer(now, &id, gen),
            }
        }
        let interval = Duration::from_secs_f64(1.0 / self.cfg.rate);
        while self.can_start() && now >= self.next_start {
            self.start_call(now);
            self.next_start += interval;
        }
        if self.next_start < now && !self.can_start() {
            // Blocked by concurrency: do not build a burst of backlog.
            self.next_start = now;
        }
        if self.cfg.role.places_calls()
            && self.uac_done_at.is_none()
            && self.started >= self.cfg.calls
            && self.uac_calls.is_empty()
        {
            self.uac_done_at = Some(now);
        }
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, side: Side, src: SocketAddr, data: Bytes) {
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        match (side, msg.is_request()) {
            (Side::Uac, false) => self.on_uac_response(now, &msg),
            (Side::Uac, true) => self.on_uac_request(src, &msg),
            (Side::Uas, true) => self.on_uas_request(now, src, &msg),
            (Side::Uas, false) => {}
        }
    }

    fn send(&mut self, side: Side, to: SocketAddr, data: Bytes) {
        self.outbox.push(Transmit { side, to, data });
    }

    fn arm(&mut self, key: TimerKey, at: Instant, gen: u64) {
        self.timers.push(Reverse((at, gen, key)));
    }

    fn random_token(&self) -> String {
        format!("{:016x}", rand::thread_rng().gen::<u64>())
    }

    fn media_key(&mut self) -> u64 {
        self.next_media_key += 1;
        self.next_media_key
    }

    /// Binds a call's RTP socket; `None` (with media off or on failure)
    /// means SDP names the discard port.
    fn bind_rtp(&mut self) -> Option<std::net::UdpSocket> {
        self.media.as_ref()?;
        std::net::UdpSocket::bind(SocketAddr::new(self.cfg.local_ip, 0)).ok()
    }

    // ---------------------------------------------------------------- UAC

    fn start_call(&mut self, now: Instant) {
        let index = self.started;
        self.started += 1;
        self.uac.attempted += 1;
        self.first_start.get_or_insert(now);
        self.last_start = Some(now);
        let callee = self
            .cfg
            .callees
            .get((index % self.cfg.callees.len().max(1) as u64) as usize)
            .cloned()
            .unwrap_or_default();
        let credential = (!self.cfg.credentials.is_empty())
            .then(|| (index % self.cfg.credentials.len() as u64) as usize);
        let caller = match credential.and_then(|i| self.cfg.credentials.get(i)) {
            Some((user, _)) => user.clone(),
            None => format!("{}{}", self.cfg.caller_prefix, index),
        };
        let target = self.cfg.target;
        let call_id = format!("{index}-{}@carillon-load", self.run_tag);
        let from = format!("<sip:{caller}@{target}>;tag={}", self.random_token());
        let to = format!("<sip:{callee}@{target}>");
        let request_uri = format!("sip:{callee}@{target}");

        let mut media_key = None;
        let mut port = NO_MEDIA_PORT;
        if self.media.is_some() {
            match self.bind_rtp() {
                Some(sock) => {
                    port = sock.local_addr().map(|a| a.port()).unwrap_or(NO_MEDIA_PORT);
                    let key = self.media_key();
                    let ssrc = rand::thread_rng().gen::<u32>();
                    if let Some(m) = &self.media {
                        m.add(key, sock, None, Direction::UacToUas, ssrc);
                    }
                    media_key = Some(key);
                }
                None => {
                    self.fail(index, "rtp-socket");
                    return;
                }
            }
        }
        let mut policy = OfferPolicy::new(self.cfg.local_ip, port, vec![self.cfg.codec.sdp_name()]);
        policy.telephone_event = false;
        policy.ptime = Some(self.cfg.ptime);
        policy.session_id = index;
        policy.username = "carillon-load".into();
        let offer = carillon_sdp::offer(&policy);

        let mut call = UacCall {
            call_id,
            caller,
            request_uri,
            from,
            to,
            credential,
            first_invite_at: now,
            cseq: 1,
            state: UacState::Established {
                dialog: Dialog {
                    to: String::new(),
                    remote_target: String::new(),
                    route: Vec::new(),
                    dest: target,
                    ack: Bytes::new(),
                },
                bye_at: now,
            },
            gen: 0,
            media_key,
            rtp_port: port,
            offer: Some(offer),
        };
        let (via, invite) = Self::build_invite(self.uac_local, &call, None);
        self.send(Side::Uac, target, invite.clone());
        call.state = UacState::Inviting {
            via,
            invite,
            interval: T1,
            next_retx: Some(now + T1),
            deadline: now + TRANSACTION_TIMEOUT,
            auth_sent: false,
        };
        call.gen = 1;
        self.arm(TimerKey::Uac(index), now + T1, 1);
        self.uac_calls.insert(index, call);
        self.uac.peak_concurrent = self.uac.peak_concurrent.max(self.uac_calls.len() as u64);
    }

    fn build_invite(
        uac_local: SocketAddr,
        call: &UacCall,
        auth: Option<(&str, String)>,
    ) -> (String, Bytes) {
        let via = format!(
            "SIP/2.0/UDP {uac_local};branch=z9hG4bK{:016x};rport",
            rand::thread_rng().gen::<u64>()
        );
        let mut b = MessageBuilder::request(&Method::Invite, &call.request_uri)
            .header("Via", via.as_str())
            .header("Max-Forwards", "70")
            .header("From", call.from.as_str())
            .header("To", call.to.as_str())
            .header("Call-ID", call.call_id.as_str())
            .header("CSeq", format!("{} INVITE", call.cseq))
            .header("Contact", format!("<sip:{}@{uac_local}>", call.caller))
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        if let Some((name, value)) = auth {
            b = b.header(name, value);
        }
        let body = call
            .offer
            .as_ref()
            .map(|o| Bytes::from(o.to_bytes()))
            .unwrap_or_default();
        (via, b.body("application/sdp", body).build())
    }

    fn fail(&mut self, index: u64, reason: &str) {
        self.uac.failed += 1;
        *self
            .uac
            .failed_by_status
            .entry(reason.to_owned())
            .or_insert(0) += 1;
        if let Some(call) = self.uac_calls.remove(&index) {
            if let (Some(k), Some(m)) = (call.media_key, &self.media) {
                m.remove(k);
            }
        }
    }

    fn finish_call(&mut self, index: u64) {
        if let Some(call) = self.uac_calls.remove(&index) {
            if let (Some(k), Some(m)) = (call.media_key, &self.media) {
                m.remove(k);
            }
        }
    }

    fn index_of(call_id: &str) -> Option<u64> {
        call_id.split_once('-')?.0.parse().ok()
    }

    fn on_uac_response(&mut self, now: Instant, msg: &Message) {
        let Some(status) = msg.status() else { return };
        let Some(cseq) = msg.cseq() else { return };
        let Some(call_id) = msg.call_id().map(|c| c.into_owned()) else {
            return;
        };
        let Some(index) = Self::index_of(&call_id) else {
            return;
        };
        let known = self
            .uac_calls
            .get(&index)
            .is_some_and(|c| c.call_id == call_id);
        if !known {
            if cseq.method == Method::Invite && status >= 300 {
                // A retransmitted final for a call already given up: re-ACK.
                if let Some(ack) = ack_for_non2xx(msg, None, None) {
                    self.send(Side::Uac, self.cfg.target, ack);
                }
            }
            return;
        }
        match cseq.method {
            Method::Invite => self.on_invite_response(now, index, status, cseq.seq, msg),
            Method::Bye => self.on_bye_response(now, index, status),
            _ => {}
        }
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        index: u64,
        status: u16,
        seq: u32,
        msg: &Message,
    ) {
        let target = self.cfg.target;
        let Some(call) = self.uac_calls.get_mut(&index) else {
            return;
        };
        let current = seq == call.cseq;
        match (&mut call.state, status) {
            (UacState::Inviting { next_retx, .. }, 100..=199) if current => {
                *next_retx = None;
            }
            (UacState::Inviting { .. }, 200..=299) if current => {
                self.uac.answered += 1;
                self.setup_ms
                    .push(now.duration_since(call.first_invite_at).as_secs_f64() * 1000.0);
                let dialog = dialog_from_2xx(msg, call, target, &self.uac_local);
                let dest = dialog.dest;
                let ack = dialog.ack.clone();
                let plan_remote = match (&call.offer, SessionDescription::parse(msg.body())) {
                    (Some(offer), Ok(answer)) => carillon_sdp::apply_answer(offer, &answer)
                        .ok()
                        .and_then(|p| p.remote),
                    _ => None,
                };
                call.offer = None;
                call.state = UacState::Established {
                    dialog,
                    bye_at: now + self.cfg.duration,
                };
                call.gen += 1;
                let gen = call.gen;
                let media_key = call.media_key;
                let bye_at = now + self.cfg.duration;
                self.send(Side::Uac, dest, ack);
                if let (Some(k), Some(m)) = (media_key, &self.media) {
                    match plan_remote {
                        Some(r) => m.set_remote(k, r),
                        None => {
                            *self
                                .uac
                                .failed_by_status
                                .entry("answered-without-usable-sdp".into())
                                .or_insert(0) += 1;
                        }
                    }
                }
                self.arm(TimerKey::Uac(index), bye_at, gen);
            }
            (
                UacState::Established { dialog, .. } | UacState::Terminating { dialog, .. },
                200..=299,
            ) => {
                // 2xx retransmission: our ACK was lost.
                let (dest, ack) = (dialog.dest, dialog.ack.clone());
                self.send(Side::Uac, dest, ack);
            }
            (UacState::Inviting { via, auth_sent, .. }, 300..=699) if current => {
                let via = via.clone();
                let auth_sent = *auth_sent;
                if let Some(ack) = ack_for_non2xx(msg, Some(&via), Some(&call.request_uri)) {
                    self.send(Side::Uac, target, ack);
                }
                if matches!(status, 401 | 407) && !auth_sent {
                    if let Some(header) = self.answer_challenge(index, status, msg) {
                        self.uac.auth_challenges += 1;
                        let Some(call) = self.uac_calls.get_mut(&index) else {
                            return;
                        };
                        call.cseq += 1;
                        let (via, invite) = Self::build_invite(self.uac_local, call, Some(header));
                        self.outbox.push(Transmit {
                            side: Side::Uac,
                            to: target,
                            data: invite.clone(),
                        });
                        call.state = UacState::Inviting {
                            via,
                            invite,
                            interval: T1,
                            next_retx: Some(now + T1),
                            deadline: now + TRANSACTION_TIMEOUT,
                            auth_sent: true,
                        };
                        call.gen += 1;
                        let gen = call.gen;
                        self.arm(TimerKey::Uac(index), now + T1, gen);
                        return;
                    }
                }
                self.fail(index, &status.to_string());
            }
            (_, 300..=699) => {
                // Retransmitted final of an earlier INVITE (before auth).
                if let Some(ack) = ack_for_non2xx(msg, None, Some(&call.request_uri)) {
                    self.send(Side::Uac, target, ack);
                }
            }
            _ => {}
        }
    }

    /// The `(header name, value)` answering a 401/407, if we have credentials.
    fn answer_challenge(
        &self,
        index: u64,
        status: u16,
        msg: &Message,
    ) -> Option<(&'static str, String)> {
        let call = self.uac_calls.get(&index)?;
        let (user, pass) = self.cfg.credentials.get(call.credential?)?;
        let (challenge_header, answer_header) = if status == 407 {
            (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
        } else {
            (HeaderName::WwwAuthenticate, "Authorization")
        };
        let challenges: Vec<Challenge> = msg
            .header_all(challenge_header)
            .filter_map(|v| Challenge::parse(&v).ok())
            .collect();
        let chosen = Challenge::preferred(&challenges)?;
        let cnonce = format!("{:08x}", rand::thread_rng().gen::<u32>());
        Some((
            answer_header,
            carillon_digest::respond(chosen, "INVITE", &call.request_uri, user, pass, &cnonce, 1),
        ))
    }

    fn on_bye_response(&mut self, _now: Instant, index: u64, status: u16) {
        let Some(call) = self.uac_calls.get_mut(&index) else {
            return;
        };
        if let UacState::Terminating { interval, .. } = &mut call.state {
            match status {
                100..=199 => *interval = T2,
                200..=299 => {
                    self.uac.completed += 1;
                    self.finish_call(index);
                }
                _ => {
                    self.uac.bye_failures += 1;
                    self.finish_call(index);
                }
            }
        }
    }

    fn on_uac_timer(&mut self, now: Instant, index: u64, gen: u64) {
        let target = self.cfg.target;
        let Some(call) = self.uac_calls.get_mut(&index) else {
            return;
        };
        if call.gen != gen {
            return;
        }
        match &mut call.state {
            UacState::Inviting {
                invite,
                interval,
                next_retx,
                deadline,
                ..
            } => {
                if now >= *deadline {
                    self.fail(index, "timeout");
                    return;
                }
                let mut resend = None;
                if let Some(at) = *next_retx {
                    if now >= at {
                        *interval *= 2;
                        *next_retx = Some(now + *interval);
                        resend = Some(invite.clone());
                    }
                }
                let wake = next_retx.map_or(*deadline, |r| r.min(*deadline));
                call.gen += 1;
                let gen = call.gen;
                if let Some(inv) = resend {
                    self.send(Side::Uac, target, inv);
                }
                self.arm(TimerKey::Uac(index), wake, gen);
            }
            UacState::Established { bye_at, .. } => {
                if now < *bye_at {
                    let at = *bye_at;
                    self.arm(TimerKey::Uac(index), at, gen);
                    return;
                }
                let old = std::mem::replace(
                    &mut call.state,
                    UacState::Established {
                        dialog: Dialog {
                            to: String::new(),
                            remote_target: String::new(),
                            route: Vec::new(),
                            dest: target,
                            ack: Bytes::new(),
                        },
                        bye_at: now,
                    },
                );
                let UacState::Established { dialog, .. } = old else {
                    return;
                };
                call.cseq += 1;
                let bye = build_in_dialog(
                    &Method::Bye,
                    call,
                    &dialog,
                    &self.uac_local,
                    &format!("{:016x}", rand::thread_rng().gen::<u64>()),
                );
                let dest = dialog.dest;
                call.state = UacState::Terminating {
                    dialog,
                    bye: bye.clone(),
                    interval: T1,
                    next_retx: now + T1,
                    deadline: now + TRANSACTION_TIMEOUT,
                };
                call.gen += 1;
                let gen = call.gen;
                if let (Some(k), Some(m)) = (call.media_key.take(), &self.media) {
                    m.remove(k);
                }
                self.send(Side::Uac, dest, bye);
                self.arm(TimerKey::Uac(index), now + T1, gen);
            }
            UacState::Terminating {
                dialog,
                bye,
                interval,
                next_retx,
                deadline,
            } => {
                if now >= *deadline {
                    self.uac.bye_failures += 1;
                    self.finish_call(index);
                    return;
                }
                if now >= *next_retx {
                    *interval = (*interval * 2).min(T2);
                    *next_retx = now + *interval;
                }
                let wake = (*next_retx).min(*deadline);
                let (dest, data) = (dialog.dest, bye.clone());
                call.gen += 1;
                let gen = call.gen;
                self.send(Side::Uac, dest, data);
                self.arm(TimerKey::Uac(index), wake, gen);
            }
        }
    }

    fn on_uac_request(&mut self, src: SocketAddr, msg: &Message) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        if method == Method::Ack {
            return;
        }
        let index = msg.call_id().and_then(|c| {
            Self::index_of(&c).filter(|i| self.uac_calls.get(i).is_some_and(|k| k.call_id == c))
        });
        let resp = match (&method, index) {
            (Method::Bye, Some(i)) => {
                let answered = self
                    .uac_calls
                    .get(&i)
                    .is_some_and(|c| !matches!(c.state, UacState::Inviting { .. }));
                if answered {
                    self.uac.remote_hangups += 1;
                    self.uac.completed += 1;
                    self.finish_call(i);
                } else {
                    self.fail(i, "bye-before-answer");
                }
                ResponseBuilder::new(msg, 200).build()
            }
            (Method::Invite, Some(i)) => {
                // Re-INVITE (session refresh): answer with our media again.
                let (key, port) = self
                    .uac_calls
                    .get(&i)
                    .map_or((None, NO_MEDIA_PORT), |c| (c.media_key, c.rtp_port));
                self.reinvite_answer(msg, Side::Uac, key, port)
            }
            (Method::Options | Method::Update | Method::Info | Method::Notify, _) => {
                ResponseBuilder::new(msg, 200)
                    .header("Allow", ALLOW)
                    .build()
            }
            (Method::Bye | Method::Invite, None) => ResponseBuilder::new(msg, 481).build(),
            _ => ResponseBuilder::new(msg, 501).build(),
        };
        self.send(Side::Uac, src, resp);
    }

    /// 200 to an in-dialog INVITE: an SDP answer naming our existing port
    /// (or an offer when the re-INVITE had none).
    fn reinvite_answer(
        &mut self,
        msg: &Message,
        side: Side,
        media_key: Option<u64>,
        port: u16,
    ) -> Bytes {
        let contact = match side {
            Side::Uac => format!("<sip:carillon-load@{}>", self.uac_local),
            Side::Uas => format!("<sip:carillon-load@{}>", self.cfg.uas_listen),
        };
        let body = match SessionDescription::parse(msg.body()) {
            Ok(offer) if !msg.body().is_empty() => {
                match carillon_sdp::answer(&offer, &self.answer_policy(side, port, 2)) {
                    Ok((sd, plan)) => {
                        if let (Some(k), Some(m), Some(r)) = (media_key, &self.media, plan.remote) {
                            m.set_remote(k, r);
                        }
                        sd.to_bytes()
                    }
                    Err(_) => return ResponseBuilder::new(msg, 488).build(),
                }
            }
            _ => {
                let mut p =
                    OfferPolicy::new(self.cfg.local_ip, port, vec![self.codec(side).sdp_name()]);
                p.telephone_event = false;
                p.direction = SdpDirection::SendRecv;
                carillon_sdp::offer(&p).to_bytes()
            }
        };
        ResponseBuilder::new(msg, 200)
            .header("Contact", contact)
            .body("application/sdp", Bytes::from(body))
            .build()
    }

    /// The codec a side offers and accepts (`--codec`, `--uas-codec`).
    fn codec(&self, side: Side) -> Codec {
        match side {
            Side::Uac => self.cfg.codec,
            Side::Uas => self.cfg.uas_codec,
        }
    }

    fn answer_policy(&self, side: Side, port: u16, version: u64) -> AnswerPolicy {
        AnswerPolicy {
            allowed: vec![self.codec(side).sdp_name()],
            prefer_offerer_order: false,
            local_address: self.cfg.local_ip,
            local_port: port,
            telephone_event: false,
            ptime: Some(self.cfg.ptime),
            session_id: 1,
            session_version: version,
            username: "carillon-load".into(),
        }
    }

    // ---------------------------------------------------------------- UAS

    fn on_uas_request(&mut self, now: Instant, src: SocketAddr, msg: &Message) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let Some(call_id) = msg.call_id().map(|c| c.into_owned()) else {
            return;
        };
        match method {
            Method::Invite => self.on_uas_invite(now, src, &call_id, msg),
            Method::Ack => {
                if let Some(call) = self.uas_calls.get_mut(&call_id) {
                    if matches!(call.state, UasState::Answering { .. }) {
                        call.state = UasState::Confirmed;
                        call.gen += 1;
                    }
                }
            }
            Method::Bye => {
                let resp = if let Some(call) = self.uas_calls.remove(&call_id) {
                    self.uas.completed += 1;
                    if let (Some(k), Some(m)) = (call.media_key, &self.media) {
                        m.remove(k);
                    }
                    ResponseBuilder::new(msg, 200).build()
                } else {
                    ResponseBuilder::new(msg, 481).build()
                };
                self.send(Side::Uas, src, resp);
            }
            Method::Cancel | Method::Options | Method::Update | Method::Info | Method::Notify => {
                let resp = ResponseBuilder::new(msg, 200)
                    .header("Allow", ALLOW)
                    .build();
                self.send(Side::Uas, src, resp);
            }
            _ => {
                let resp = ResponseBuilder::new(msg, 501).build();
                self.send(Side::Uas, src, resp);
            }
        }
    }

    fn on_uas_invite(&mut self, now: Instant, src: SocketAddr, call_id: &str, msg: &Message) {
        if let Some(call) = self.uas_calls.get(call_id) {
            if msg.tag(HeaderName::To).is_some() {
                let (key, port) = (call.media_key, call.rtp_port);
                let resp = self.reinvite_answer(msg, Side::Uas, key, port);
                self.send(Side::Uas, src, resp);
            } else {
                // INVITE retransmission: repeat our final answer.
                let ok = call.ok.clone();
                self.send(Side::Uas, src, ok);
            }
            return;
        }
        if msg.tag(HeaderName::To).is_some() {
            let resp = ResponseBuilder::new(msg, 481).build();
            self.send(Side::Uas, src, resp);
            return;
        }
        self.uas.invites += 1;
        let trying = ResponseBuilder::new(msg, 100).build();
        self.send(Side::Uas, src, trying);

        let sock = self.bind_rtp();
        let port = sock
            .as_ref()
            .and_then(|s| s.local_addr().ok())
            .map_or(NO_MEDIA_PORT, |a| a.port());
        let body = if msg.body().is_empty() {
            let mut p =
                OfferPolicy::new(self.cfg.local_ip, port, vec![self.cfg.uas_codec.sdp_name()]);
            p.telephone_event = false;
            p.ptime = Some(self.cfg.ptime);
            Ok((carillon_sdp::offer(&p), None))
        } else {
            SessionDescription::parse(msg.body())
                .map_err(|_| ())
                .and_then(|offer| {
                    carillon_sdp::answer(&offer, &self.answer_policy(Side::Uas, port, 1))
                        .map_err(|_| ())
                })
                .map(|(sd, plan)| (sd, plan.remote))
        };
        let Ok((sdp, remote)) = body else {
            self.uas.rejected += 1;
            let resp = ResponseBuilder::new(msg, 488).build();
            self.send(Side::Uas, src, resp);
            return;
        };
        let to_tag = self.random_token();
        let callee = msg
            .request_uri()
            .and_then(|u| u.user.map(str::to_owned))
            .unwrap_or_else(|| "uas".into());
        let contact = format!("<sip:{callee}@{}>", self.cfg.uas_listen);
        let ringing = ResponseBuilder::new(msg, 180)
            .to_tag(to_tag.as_str())
            .header("Contact", contact.as_str())
            .build();
        let mut ok = ResponseBuilder::new(msg, 200)
            .to_tag(to_tag.as_str())
            .header("Contact", contact.as_str())
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        for rr in msg.header_all(HeaderName::RecordRoute) {
            ok = ok.header("Record-Route", rr.into_owned());
        }
        let ok = ok
            .body("application/sdp", Bytes::from(sdp.to_bytes()))
            .build();
        self.send(Side::Uas, src, ringing);
        self.send(Side::Uas, src, ok.clone());
        self.uas.answered += 1;

        let media_key = match (sock, &self.media) {
            (Some(sock), Some(_)) => {
                let key = self.media_key();
                let ssrc = rand::thread_rng().gen::<u32>();
                if let Some(m) = &self.media {
                    m.add(key, sock, remote, Direction::UasToUac, ssrc);
                }
                Some(key)
            }
            _ => None,
        };
        self.uas_calls.insert(
            call_id.to_owned(),
            UasCall {
                src,
                ok,
                state: UasState::Answering {
                    interval: T1,
                    next_retx: now + T1,
                    deadline: now + TRANSACTION_TIMEOUT,
                },
                gen: 1,
                media_key,
                rtp_port: port,
            },
        );
        self.uas.peak_concurrent = self.uas.peak_concurrent.max(self.uas_calls.len() as u64);
        self.arm(TimerKey::Uas(call_id.to_owned()), now + T1, 1);
    }

    fn on_uas_timer(&mut self, now: Instant, call_id: &str, gen: u64) {
        let Some(call) = self.uas_calls.get_mut(call_id) else {
            return;
        };
        if call.gen != gen {
            return;
        }
        let UasState::Answering {
            interval,
            next_retx,
            deadline,
        } = &mut call.state
        else {
            return;
        };
        if now >= *deadline {
            call.state = UasState::Confirmed;
            self.uas.ack_timeouts += 1;
            return;
        }
        *interval = (*interval * 2).min(T2);
        *next_retx = now + *interval;
        let wake = (*next_retx).min(*deadline);
        let (src, ok) = (call.src, call.ok.clone());
        call.gen += 1;
        let gen = call.gen;
        self.send(Side::Uas, src, ok);
        self.arm(TimerKey::Uas(call_id.to_owned()), wake, gen);
    }

    // ------------------------------------------------------------- report

    /// Calls still in progress (for `--max-time`): counted as failed.
    pub fn abandon_unfinished(&mut self) {
        let unanswered: Vec<u64> = self
            .uac_calls
            .iter()
            .filter(|(_, c)| matches!(c.state, UacState::Inviting { .. }))
            .map(|(k, _)| *k)
            .collect();
        for k in unanswered {
            self.fail(k, "max-time");
        }
        let others: Vec<u64> = self.uac_calls.keys().copied().collect();
        for k in others {
            self.uac.bye_failures += 1;
            self.finish_call(k);
        }
    }

    /// Consumes the engine: counters and the media workers.
    pub fn into_parts(mut self) -> (Option<UacCounts>, Option<UasCounts>, Option<Media>) {
        let role = self.cfg.role;
        if let (Some(first), Some(last)) = (self.first_start, self.last_start) {
            let span = last.duration_since(first).as_secs_f64();
            self.uac.cps_attempted = if self.uac.attempted > 1 && span > 0.0 {
                (self.uac.attempted - 1) as f64 / span
            } else {
                self.uac.attempted as f64
            };
        }
        self.uac.setup_ms = Percentiles::of(&mut self.setup_ms);
        (
            role.places_calls().then_some(self.uac),
            role.answers_calls().then_some(self.uas),
            self.media,
        )
    }
}

fn dialog_from_2xx(
    msg: &Message,
    call: &UacCall,
    target: SocketAddr,
    local: &SocketAddr,
) -> Dialog {
    let to = msg
        .header(HeaderName::To)
        .map(|t| t.into_owned())
        .unwrap_or_else(|| call.to.clone());
    let remote_target = msg
        .with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
        .unwrap_or_else(|| call.request_uri.clone());
    let mut route = msg.header_list(HeaderName::RecordRoute).unwrap_or_default();
    route.reverse();
    let dest = route
        .first()
        .and_then(|r| NameAddr::parse(r).ok().and_then(|n| uri_addr(&n.uri)))
        .or_else(|| Uri::parse(&remote_target).ok().and_then(|u| uri_addr(&u)))
        .unwrap_or(target);
    let mut dialog = Dialog {
        to,
        remote_target,
        route,
        dest,
        ack: Bytes::new(),
    };
    dialog.ack = build_ack_2xx(call, &dialog, local);
    dialog
}

fn uri_addr(uri: &Uri<'_>) -> Option<SocketAddr> {
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port.unwrap_or(5060)))
}

fn build_ack_2xx(call: &UacCall, dialog: &Dialog, via_host: &SocketAddr) -> Bytes {
    let mut b = MessageBuilder::request(&Method::Ack, &dialog.remote_target)
        .header(
            "Via",
            format!(
                "SIP/2.0/UDP {via_host};branch=z9hG4bK{:016x};rport",
                rand::thread_rng().gen::<u64>()
            ),
        )
        .header("Max-Forwards", "70")
        .header("From", call.from.as_str())
        .header("To", dialog.to.as_str())
        .header("Call-ID", call.call_id.as_str())
        .header("CSeq", format!("{} ACK", call.cseq));
    for r in &dialog.route {
        b.push_header("Route", r.as_str());
    }
    b.build()
}

fn build_in_dialog(
    method: &Method,
    call: &UacCall,
    dialog: &Dialog,
    local: &SocketAddr,
    branch: &str,
) -> Bytes {
    let mut b = MessageBuilder::request(method, &dialog.remote_target)
        .header(
            "Via",
            format!("SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport"),
        )
        .header("Max-Forwards", "70")
        .header("From", call.from.as_str())
        .header("To", dialog.to.as_str())
        .header("Call-ID", call.call_id.as_str())
        .header("CSeq", format!("{} {method}", call.cseq))
        .header("User-Agent", USER_AGENT);
    for r in &dialog.route {
        b.push_header("Route", r.as_str());
    }
    b.build()
}

/// ACK for a non-2xx final (RFC 3261 §17.1.1.3): same Via (branch) as the
/// INVITE, To from the response, CSeq number of the INVITE.
fn ack_for_non2xx(resp: &Message, via: Option<&str>, request_uri: Option<&str>) -> Option<Bytes> {
    let via = match via {
        Some(v) => v.to_owned(),
        None => resp.top_via_str()?,
    };
    let to = resp.header(HeaderName::To)?;
    let uri = match request_uri {
        Some(u) => u.to_owned(),
        None => resp.with_name_addr(HeaderName::To, |n| n.uri.as_str().to_owned())?,
    };
    let cseq = resp.cseq()?;
    Some(
        MessageBuilder::request(&Method::Ack, &uri)
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", resp.header(HeaderName::From)?.into_owned())
            .header("To", to.into_owned())
            .header("Call-ID", resp.call_id()?.into_owned())
            .header("CSeq", format!("{} ACK", cseq.seq))
            .build(),
    )
}
