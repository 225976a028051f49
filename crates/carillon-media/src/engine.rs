//! The media engine of one worker: sessions, legs, ports and the relay path
//! between bridged legs (an RFC 3550 §7 translator that also transcodes).
//!
//! Owns: the command handling of [`MediaCommand`], the port → leg table,
//! the pairing of bridged legs, the per-packet path (latch, count, DTMF
//! detection, payload-type mapping, G.711 transcoding, header rewriting), the
//! RTCP relay and the inactivity timers. It does not own sockets: it asks the
//! edge to bind and release them ([`SocketRequest`]) and tells it where to
//! send each datagram ([`Transmit`]).
//!
//! ## Leg life cycle
//!
//! ```text
//!  OpenLeg ──► binding ──handle_bound(Ok)──► open ──CloseLeg/CloseSession──► (gone)
//!   │ (ports     │ handle_bound(Err): OpenFailed      LegOpened      LegClosed + Release
//!   │ reserved,  └──────────────────────────────────► (gone)
//!   │ Bind requested)
//!   └─ duplicate leg / port in use: OpenFailed
//! ```
//!
//! ## The relay path (zero copy, no allocation)
//!
//! [`MediaEngine::handle_packet`] gets the datagram in a mutable buffer,
//! rewrites it in place and returns a [`Transmit`] naming the local port to
//! send it from and the destination. An RTP packet from leg A bridged to B:
//!
//! 1. parse (RFC 3550 §5.1); malformed or RTCP on the RTP port: drop;
//! 2. latch check on A (see [`crate::latch`]); strays are dropped;
//! 3. count, receive statistics, inactivity timer re-armed;
//! 4. A must be `recv` (we accept from it), B must be `send` and have a
//!    destination (hold, RFC 3264 §8.4);
//! 5. A's audio PT → B's audio PT, transcoding the payload in place with the
//!    G.711 tables when the codecs differ; A's telephone-event PT → B's
//!    (RFC 4733 §2.1; dropped when B has none), the event also feeding A's
//!    DTMF detector; any other PT (CN, unknown) is dropped;
//! 6. SSRC, sequence and timestamp from B's output [`carillon_rtp::StreamRewriter`],
//!    so B sees one continuous stream whoever feeds it.
//!
//! ## RTCP: relayed, not regenerated
//!
//! RTCP from A (port + 1) is validated as a compound packet and relayed to
//! B's RTCP destination from B's RTCP port, with the SSRCs made consistent
//! with the RTP rewriting: every sender SSRC becomes the output SSRC of the
//! stream we send to B (the SSRC under which B knows A), and every report
//! block's source SSRC becomes B's own SSRC as A received it (the input
//! source of A's rewriter). RTCP flows whatever the direction attributes
//! (RFC 3264 §5.1: RTCP continues while on hold). Limitation: after a
//! source change the SR RTP timestamp and the report blocks' sequence fields
//! are not translated by the rewriter's offsets; the first source maps
//! sequence numbers and timestamps unchanged so they are exact until then.
//!
//! ## Kernel fast path
//!
//! With [`MediaConfig::kernel_offload`], a flow the relay just forwarded
//! unchanged in codec is handed to the kernel ([`crate::offload`] says
//! when); the edge reports what the kernel forwarded through
//! [`MediaEngine::handle_offload_progress`], which keeps the inactivity
//! timer, the counters and the output stream's sequence numbers current.
//! Loss and jitter statistics cover only the packets seen in userspace.
//!
//! ## Timers
//!
//! One deadline per leg (inactivity and the DTMF lost-end timeout).
//! [`MediaEngine::poll_timeout`] returns a cached lower bound: packets only
//! push inactivity deadlines later, so the cache is refreshed by the full
//! scan in [`MediaEngine::handle_timeout`] and lowered by commands and DTMF
//! packets. A spurious early wake-up costs one scan and never an event.
//!
//! Players (see [`crate::player`]) add the next frame due time of every
//! active player: [`MediaEngine::poll_timeout`] is the earlier of the two,
//! so the worker's one timer is also its 20 ms tick; `handle_timeout` makes
//! the frames due (the edge sends them from [`MediaEngine::drain_generated`])
//! and scans the legs only when a leg deadline is due.
//!
//! ## Players
//!
//! `Play` on a leg makes a player its output: what its bridged leg sends is
//! dropped (`replaced_by_player`), the kernel flow towards it is removed,
//! and the generated stream goes through the leg's output rewriter, whose
//! sources are forgotten at the start and end of the playback so the far
//! end sees one continuous stream (marker bit at each hand-over). A
//! playback ends with `PlaybackDone`: `Finished`, or `Stopped` on
//! `StopPlay`, a newer `Play`, or the leg closing (`CloseLeg`,
//! `CloseSession`: the event comes just before that leg's `LegClosed`).
//! `Play` on a leg still binding its sockets is refused (`UnknownLeg`).

use crate::config::MediaConfig;
use crate::latch::LatchVerdict;
use crate::leg::{codec_of, earliest, Leg, LegMedia, LegState};
use crate::offload::{G711Map, OffloadFlow, OffloadProgress, OffloadRequest, Offloaded};
use crate::output::Generated;
use crate::player::{Player, Playout, Tick};
use crate::sounds::Sounds;
use carillon_codec::Transcoder;
use carillon_mediactl::{
    AudioCodec, DtmfSource, LegId, LegParams, LegStats, MediaCommand, MediaEvent, PlayItem,
    PlaybackEnd, PlaybackId, SessionId,
};
use carillon_rtp::dtmf::TelephoneEvent;
use carillon_rtp::rtcp::{rewrite_report_sources, rewrite_sender_ssrc};
use carillon_rtp::{set_payload_type, RtpPacket, Ssrc};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

mod mixing;
mod taps;

/// Errors of a command; `OpenLeg` failures are also reported as
/// [`MediaEvent::OpenFailed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("leg {leg:?} is already open")]
    LegExists { leg: LegId },
    #[error("leg {leg:?} is not open")]
    UnknownLeg { leg: LegId },
    #[error("session {session:?} has no legs")]
    UnknownSession { session: SessionId },
    #[error("leg {leg:?} does not belong to session {session:?}")]
    WrongSession { session: SessionId, leg: LegId },
    #[error("port {port} (or {port} + 1) is already in use")]
    PortInUse { port: u16 },
    #[error("port {port} cannot carry RTP and RTCP (needs 1..=65534)")]
    PortOutOfRange { port: u16 },
    #[error("a leg cannot be bridged to itself")]
    SelfBridge { leg: LegId },
    #[error("legs {a:?} and {b:?} are not bridged")]
    NotBridged { a: LegId, b: LegId },
    #[error("leg {leg:?} is not waiting for its sockets")]
    NotBinding { leg: LegId },
    #[error("binding port {port} failed: {reason}")]
    BindFailed { port: u16, reason: String },
    #[error("recording refused: {reason}")]
    Record { reason: String },
    #[error("recording {recording:?} is not running")]
    UnknownRecording {
        recording: carillon_mediactl::RecordingId,
    },
    #[error("{digit:?} is not a DTMF digit")]
    BadDigit { digit: char },
    #[error("leg {leg:?} does not carry DTMF in its media (SIP INFO, or no telephone-event)")]
    DtmfNotByMedia { leg: LegId },
    #[error(transparent)]
    Mix(#[from] crate::mixer::MixError),
}

/// What the edge must do with sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRequest {
    /// Bind `rtp_port` and `rtp_port + 1`, then call [`MediaEngine::handle_bound`].
    Bind { leg: LegId, rtp_port: u16 },
    /// Close the sockets of `rtp_port` and `rtp_port + 1`.
    Release { leg: LegId, rtp_port: u16 },
}

/// Send the first `len` bytes of the buffer just handled from the socket
/// bound to `local_port` to `destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub local_port: u16,
    pub destination: SocketAddr,
    pub len: usize,
}

/// Why packets were not relayed, and how many were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineCounters {
    pub rtp_forwarded: u64,
    pub rtcp_forwarded: u64,
    /// To a port no leg owns (a late packet after close).
    pub unknown_port: u64,
    /// Not RTP/RTCP, or RTCP on the RTP port (no RFC 5761 mux).
    pub malformed: u64,
    /// From an address the latch does not (yet) trust.
    pub stray: u64,
    /// From a leg we do not accept media from (`recv` off).
    pub not_receiving: u64,
    /// A payload type the leg did not negotiate (CN, unknown).
    pub unknown_payload_type: u64,
    /// The leg is not bridged.
    pub unbridged: u64,
    /// The bridged leg is not `send` (hold) or has no destination.
    pub not_sending: u64,
    /// A telephone-event towards a leg that did not negotiate RFC 4733.
    pub event_not_negotiated: u64,
    /// Not relayed because a digit is being sent to the bridged leg, or
    /// converted to its DTMF mode ([`taps`]).
    pub dtmf_muted: u64,
    /// Relayed towards a leg whose output is a player (dropped).
    pub replaced_by_player: u64,
    /// Audio of mix members taken by the mixer ([`crate::mixer`]).
    pub mixed: u64,
    /// Relayed towards a leg whose output is a mix (dropped).
    pub replaced_by_mixer: u64,
}

const NO_SLOT: u32 = u32::MAX;
const PORT_TABLE_LEN: usize = 1 << 16;

/// All media sessions of one worker.
#[derive(Debug)]
pub struct MediaEngine {
    config: MediaConfig,
    local_ip: IpAddr,
    rng: u64,
    legs: Vec<Option<Leg>>,
    free_slots: Vec<usize>,
    by_id: HashMap<LegId, usize>,
    sessions: HashMap<SessionId, Vec<LegId>>,
    /// Local port → `slot << 1 | is_rtcp`, or [`NO_SLOT`].
    ports: Vec<u32>,
    reserved_ports: usize,
    events: VecDeque<MediaEvent>,
    socket_requests: VecDeque<SocketRequest>,
    offload_requests: VecDeque<OffloadRequest>,
    next_timeout: Option<Instant>,
    counters: EngineCounters,
    recorders: crate::record::Recorders,
    /// Players of the legs whose output is not the relay (see [`crate::player`]).
    playout: Playout,
    /// Mixes and their members (see [`crate::mixer`], `engine/mixing.rs`).
    mixer: crate::mixer::Mixer,
}

enum Kind {
    Audio,
    Event,
}

impl MediaEngine {
    /// An engine without sessions. `local_ip` is only reported in
    /// [`MediaEvent::LegOpened`] when the edge binds a wildcard address.
    pub fn new(config: MediaConfig, local_ip: IpAddr) -> Self {
        MediaEngine {
            config,
            local_ip,
            rng: config.rng_seed,
            legs: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            sessions: HashMap::new(),
            ports: vec![NO_SLOT; PORT_TABLE_LEN],
            reserved_ports: 0,
            events: VecDeque::with_capacity(16),
            socket_requests: VecDeque::with_capacity(4),
            offload_requests: VecDeque::new(),
            next_timeout: None,
            counters: EngineCounters::default(),
            recorders: crate::record::Recorders::default(),
            playout: Playout::default(),
            mixer: crate::mixer::Mixer::default(),
        }
    }

    /// The prompts and music-on-hold classes players read (shared by the
    /// workers of a process); without it only tones and silence have audio
    /// and every file is read into a cache of this engine's own.
    pub fn with_sounds(mut self, sounds: Arc<Sounds>) -> Self {
        self.playout.sounds = sounds;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// splitmix64: a well-mixed sequence from the configured seed.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    // ----- commands -------------------------------------------------------

    /// Applies one command from the switch.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: MediaCommand,
    ) -> Result<(), CommandError> {
        match command {
            MediaCommand::OpenLeg {
                session,
                leg,
                local_port,
                params,
            } => {
                let result = self.open_leg(session, leg, local_port, params);
                if let Err(e) = &result {
                    self.events.push_back(MediaEvent::OpenFailed {
                        session,
                        leg,
                        reason: e.to_string(),
                    });
                }
                result
            }
            MediaCommand::UpdateLeg {
                session,
                leg,
                params,
            } => self.update_leg(now, session, leg, params),
            MediaCommand::Bridge { session, a, b } => self.bridge(session, a, b),
            MediaCommand::Unbridge { session, a, b } => self.unbridge(session, a, b),
            MediaCommand::CloseLeg { session, leg } => {
                let slot = self.slot_in_session(session, leg)?;
                self.stop_recordings_of(now, session, leg);
                self.close_slot(slot);
                Ok(())
            }
            MediaCommand::Play {
                session,
                leg,
                playback,
                items,
            } => self.play(now, session, leg, playback, items),
            MediaCommand::StopPlay { session, leg } => {
                let slot = self.slot_in_session(session, leg)?;
                self.stop_player(slot);
                Ok(())
            }
            MediaCommand::Record {
                session,
                recording,
                mix,
                path,
                max_silence,
                max_duration,
            } => self.start_recording(
                now,
                session,
                recording,
                mix,
                &path,
                max_silence,
                max_duration,
            ),
            MediaCommand::StopRecord { session, recording } => {
                if self.stop_mix_recording(now, session, recording) {
                    return Ok(());
                }
                self.stop_recording(now, session, recording)
            }
            MediaCommand::SetDtmfMode { session, leg, mode } => {
                self.set_dtmf_mode(session, leg, mode)
            }
            MediaCommand::SendDtmf {
                session,
                leg,
                digit,
                duration,
            } => self.send_dtmf(now, session, leg, digit, duration),
            mix @ (MediaCommand::CreateMix { .. }
            | MediaCommand::DestroyMix { .. }
            | MediaCommand::AddToMix { .. }
            | MediaCommand::SetMixRole { .. }
            | MediaCommand::SetMixVolume { .. }
            | MediaCommand::RemoveFromMix { .. }
            | MediaCommand::RecordMixer { .. }) => self.handle_mix_command(now, mix),
            MediaCommand::CloseSession { session } => {
                let legs = self
                    .sessions
                    .get(&session)
                    .cloned()
                    .ok_or(CommandError::UnknownSession { session })?;
                for leg in legs {
                    self.stop_recordings_of(now, session, leg);
                    if let Some(&slot) = self.by_id.get(&leg) {
                        self.close_slot(slot);
                    }
                }
                Ok(())
            }
        }
    }

    fn port_slots(port: u16) -> Result<(usize, usize), CommandError> {
        match port.checked_add(1) {
            Some(rtcp) if port != 0 => Ok((usize::from(port), usize::from(rtcp))),
            _ => Err(CommandError::PortOutOfRange { port }),
        }
    }

    fn open_leg(
        &mut self,
        session: SessionId,
        leg: LegId,
        local_port: u16,
        params: LegParams,
    ) -> Result<(), CommandError> {
        if self.by_id.contains_key(&leg) {
            return Err(CommandError::LegExists { leg });
        }
        let (rtp, rtcp) = Self::port_slots(local_port)?;
        let free = |p: usize| self.ports.get(p).is_some_and(|&s| s == NO_SLOT);
        if !free(rtp) || !free(rtcp) {
            return Err(CommandError::PortInUse { port: local_port });
        }
        let entry = Leg {
            id: leg,
            session,
            local_port,
            params,
            peer: None,
            dtmf_tap: Default::default(),
            state: LegState::Binding,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                if let Some(s) = self.legs.get_mut(slot) {
                    *s = Some(entry);
                }
                slot
            }
            None => {
                self.legs.push(Some(entry));
                self.legs.len() - 1
            }
        };
        let tag = (slot as u32) << 1;
        if let Some(p) = self.ports.get_mut(rtp) {
            *p = tag;
        }
        if let Some(p) = self.ports.get_mut(rtcp) {
            *p = tag | 1;
        }
        self.reserved_ports += 2;
        self.by_id.insert(leg, slot);
        self.sessions.entry(session).or_default().push(leg);
        self.socket_requests.push_back(SocketRequest::Bind {
            leg,
            rtp_port: local_port,
        });
        Ok(())
    }

    /// The edge's answer to [`SocketRequest::Bind`]: `Ok(local RTP address)`
    /// or the reason the bind failed.
    pub fn handle_bound(
        &mut self,
        now: Instant,
        leg: LegId,
        result: Result<SocketAddr, String>,
    ) -> Result<(), CommandError> {
        let slot = *self
            .by_id
            .get(&leg)
            .ok_or(CommandError::UnknownLeg { leg })?;
        let ssrc = Ssrc(self.next_random() as u32);
        let Some(entry) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return Err(CommandError::UnknownLeg { leg });
        };
        if !matches!(entry.state, LegState::Binding) {
            return Err(CommandError::NotBinding { leg });
        }
        let session = entry.session;
        let port = entry.local_port;
        match result {
            Ok(local) => {
                let local = if local.ip().is_unspecified() {
                    SocketAddr::new(self.local_ip, local.port())
                } else {
                    local
                };
                let media = LegMedia::new(now, ssrc, &self.config);
                let deadline = media.deadline(&entry.params, &self.config);
                entry.state = LegState::Open(Box::new(media));
                self.next_timeout = earliest(self.next_timeout, deadline);
                if self.config.report_opened {
                    self.events.push_back(MediaEvent::LegOpened {
                        session,
                        leg,
                        local,
                    });
                }
                Ok(())
            }
            Err(reason) => {
                self.events.push_back(MediaEvent::OpenFailed {
                    session,
                    leg,
                    reason: reason.clone(),
                });
                self.remove_slot(slot);
                Err(CommandError::BindFailed { port, reason })
            }
        }
    }

    fn slot_in_session(&self, session: SessionId, leg: LegId) -> Result<usize, CommandError> {
        let slot = *self
            .by_id
            .get(&leg)
            .ok_or(CommandError::UnknownLeg { leg })?;
        match self.legs.get(slot).and_then(Option::as_ref) {
            Some(l) if l.session == session => Ok(slot),
            Some(_) => Err(CommandError::WrongSession { session, leg }),
            None => Err(CommandError::UnknownLeg { leg }),
        }
    }

    fn leg_mut(&mut self, slot: usize) -> Option<&mut Leg> {
        self.legs.get_mut(slot).and_then(Option::as_mut)
    }

    fn update_leg(
        &mut self,
        now: Instant,
        session: SessionId,
        leg: LegId,
        params: LegParams,
    ) -> Result<(), CommandError> {
        let slot = self.slot_in_session(session, leg)?;
        self.invalidate_offload_pair(slot);
        let config = self.config;
        let Some(entry) = self.leg_mut(slot) else {
            return Err(CommandError::UnknownLeg { leg });
        };
        let remote_changed = entry.params.remote != params.remote;
        let latch_off = !params.latch;
        entry.params = params;
        let mut deadline = None;
        if let LegState::Open(media) = &mut entry.state {
            if remote_changed || latch_off {
                media.rtp_latch.reset();
                media.rtcp_latch.reset();
            }
            media.last_activity = now;
            media.timed_out = false;
            deadline = media.deadline(&params, &config);
        }
        self.next_timeout = earliest(self.next_timeout, deadline);
        Ok(())
    }

    fn set_peer(&mut self, slot: usize, peer: Option<usize>) {
        if let Some(l) = self.leg_mut(slot) {
            l.peer = peer;
        }
    }

    /// Removes the kernel flow from this leg's peer, if installed.
    fn invalidate_offload(&mut self, slot: usize) {
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let local_port = leg.local_port;
        if let LegState::Open(media) = &mut leg.state {
            if media.offload.take().is_some() {
                self.offload_requests
                    .push_back(OffloadRequest::Remove { local_port });
            }
        }
    }

    /// Removes the kernel flows from and towards this leg.
    fn invalidate_offload_pair(&mut self, slot: usize) {
        let peer = self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(|l| l.peer);
        self.invalidate_offload(slot);
        if let Some(peer) = peer {
            self.invalidate_offload(peer);
        }
    }

    fn detach(&mut self, slot: usize) {
        self.invalidate_offload_pair(slot);
        let peer = self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(|l| l.peer);
        if let Some(peer) = peer {
            self.set_peer(peer, None);
        }
        self.set_peer(slot, None);
    }

    fn bridge(&mut self, session: SessionId, a: LegId, b: LegId) -> Result<(), CommandError> {
        if a == b {
            return Err(CommandError::SelfBridge { leg: a });
        }
        let sa = self.slot_in_session(session, a)?;
        let sb = self.slot_in_session(session, b)?;
        self.detach(sa);
        self.detach(sb);
        self.set_peer(sa, Some(sb));
        self.set_peer(sb, Some(sa));
        Ok(())
    }

    fn unbridge(&mut self, session: SessionId, a: LegId, b: LegId) -> Result<(), CommandError> {
        let sa = self.slot_in_session(session, a)?;
        let sb = self.slot_in_session(session, b)?;
        let peer_of_a = self
            .legs
            .get(sa)
            .and_then(Option::as_ref)
            .and_then(|l| l.peer);
        if peer_of_a != Some(sb) {
            return Err(CommandError::NotBridged { a, b });
        }
        self.detach(sa);
        Ok(())
    }

    fn close_slot(&mut self, slot: usize) {
        self.close_in_mix(slot);
        self.detach(slot);
        self.stop_player(slot);
        if let Some(leg) = self.remove_slot(slot) {
            self.socket_requests.push_back(SocketRequest::Release {
                leg: leg.id,
                rtp_port: leg.local_port,
            });
            self.events.push_back(MediaEvent::LegClosed {
                session: leg.session,
                leg: leg.id,
                stats: leg.stats(),
            });
        }
    }

    /// Frees the slot, its ports and its session entry.
    fn remove_slot(&mut self, slot: usize) -> Option<Leg> {
        let leg = self.legs.get_mut(slot).and_then(Option::take)?;
        self.free_slots.push(slot);
        self.by_id.remove(&leg.id);
        if let Ok((rtp, rtcp)) = Self::port_slots(leg.local_port) {
            for p in [rtp, rtcp] {
                if let Some(entry) = self.ports.get_mut(p) {
                    *entry = NO_SLOT;
                }
            }
            self.reserved_ports -= 2;
        }
        if let Some(legs) = self.sessions.get_mut(&leg.session) {
            legs.retain(|&l| l != leg.id);
            if legs.is_empty() {
                self.sessions.remove(&leg.session);
            }
        }
        Some(leg)
    }

    // ----- players --------------------------------------------------------

    /// Starts a player on the leg (replacing one already playing), and
    /// takes the flow towards the leg out of the kernel: its output is now
    /// generated here.
    fn play(
        &mut self,
        now: Instant,
        session: SessionId,
        leg: LegId,
        playback: PlaybackId,
        items: Vec<PlayItem>,
    ) -> Result<(), CommandError> {
        let slot = self.slot_in_session(session, leg)?;
        if self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(Leg::media)
            .is_none()
        {
            return Err(CommandError::UnknownLeg { leg });
        }
        self.stop_player(slot);
        if let Some(peer) = self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(|l| l.peer)
        {
            self.invalidate_offload(peer);
        }
        let token = self.playout.token();
        let random = self.next_random();
        let player = Player::new(&self.playout.sounds, playback, token, items, random);
        if let Some(media) = self.leg_mut(slot).and_then(Leg::media_mut) {
            // The generated stream, then whatever follows it, is mapped as
            // a new source: one continuous stream for the far end.
            media.rewriter.forget_sources();
            media.player = Some(Box::new(player));
            self.playout.active += 1;
            self.playout.schedule(now, slot, token);
        }
        Ok(())
    }

    /// Stops the leg's player, if any (`PlaybackDone { Stopped }`).
    fn stop_player(&mut self, slot: usize) {
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (session, id) = (leg.session, leg.id);
        let Some(media) = leg.media_mut() else {
            return;
        };
        if let Some(player) = media.player.take() {
            media.rewriter.forget_sources();
            self.playout.active -= 1;
            self.events.push_back(MediaEvent::PlaybackDone {
                session,
                leg: id,
                playback: player.playback,
                end: PlaybackEnd::Stopped,
                missing: player.missing,
            });
        }
    }

    /// Makes the frames of every player due by `now`.
    fn tick_players(&mut self, now: Instant) {
        while let Some((slot, token, due)) = self.playout.pop_due(now) {
            let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let (params, local_port, session, id) =
                (leg.params, leg.local_port, leg.session, leg.id);
            let Some(media) = leg.media_mut() else {
                continue;
            };
            if media.player.as_ref().is_none_or(|p| p.token != token) {
                continue; // stopped or replaced since
            }
            let playout = &mut self.playout;
            let tick = crate::player::tick(
                now,
                due,
                &params,
                local_port,
                media,
                &mut playout.scratch,
                &mut playout.generated,
            );
            match tick {
                Tick::Next(due) => playout.schedule(due, slot, token),
                Tick::Finished(player) => {
                    media.rewriter.forget_sources();
                    playout.active -= 1;
                    self.events.push_back(MediaEvent::PlaybackDone {
                        session,
                        leg: id,
                        playback: player.playback,
                        end: PlaybackEnd::Finished,
                        missing: player.missing,
                    });
                }
                Tick::Idle => {}
            }
        }
    }

    // ----- packets --------------------------------------------------------

    /// Handles one datagram that arrived on `local_port` from `from`. The
    /// buffer is rewritten in place; when it is to be relayed, the returned
    /// [`Transmit`] says from which local port and to where.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        local_port: u16,
        from: SocketAddr,
        packet: &mut [u8],
    ) -> Option<Transmit> {
        let tag = self
            .ports
            .get(usize::from(local_port))
            .copied()
            .unwrap_or(NO_SLOT);
        if tag == NO_SLOT {
            self.counters.unknown_port += 1;
            return None;
        }
        let slot = (tag >> 1) as usize;
        if tag & 1 == 0 {
            self.relay_rtp(now, slot, from, packet)
        } else {
            self.relay_rtcp(slot, from, packet)
        }
    }

    fn relay_rtp(
        &mut self,
        now: Instant,
        slot: usize,
        from: SocketAddr,
        packet: &mut [u8],
    ) -> Option<Transmit> {
        // RTCP packet types 200..=204 would read as RTP PT 72..=76 with the
        // marker set (RFC 5761 §4); without rtcp-mux they are not media.
        if packet.get(1).is_some_and(|b| (200..=204).contains(b)) {
            self.counters.malformed += 1;
            return None;
        }
        let Ok(rtp) = RtpPacket::parse(packet) else {
            self.counters.malformed += 1;
            return None;
        };
        let pt = rtp.payload_type();
        let ssrc = rtp.ssrc();
        let seq = rtp.sequence_number();
        let ts = rtp.timestamp();
        let payload_start = rtp.header_len();
        let payload_end = payload_start + rtp.payload().len();
        let len = packet.len();

        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            self.counters.unknown_port += 1;
            return None;
        };
        let params = leg.params;
        let peer = leg.peer;
        let LegState::Open(media) = &mut leg.state else {
            self.counters.unknown_port += 1;
            return None;
        };
        let mut moved = false;
        if params.latch {
            match media.rtp_latch.handle_packet(from, ssrc.0) {
                LatchVerdict::Stray => {
                    self.counters.stray += 1;
                    return None;
                }
                LatchVerdict::Accepted => {}
                LatchVerdict::Latched | LatchVerdict::Relatched { .. } => moved = true,
            }
        }
        if media.record_rtp(now, ssrc, seq, ts, len) {
            let deadline = media.deadline(&params, &self.config);
            self.next_timeout = earliest(self.next_timeout, deadline);
        }
        if moved {
            // Flows keyed on the old source, or sending to it, are stale.
            self.invalidate_offload_pair(slot);
        }
        let leg = self.legs.get_mut(slot).and_then(Option::as_mut)?;
        let LegState::Open(media) = &mut leg.state else {
            return None;
        };
        if !params.recv {
            self.counters.not_receiving += 1;
            return None;
        }
        let mut convert = None;
        let may_detect = leg.dtmf_tap.may_detect();
        let kind = if pt == params.payload_type {
            Kind::Audio
        } else if Some(pt) == params.telephone_event_pt {
            let payload = packet.get(payload_start..payload_end).unwrap_or_default();
            if let Ok(event) = TelephoneEvent::parse(payload) {
                convert = event.digit().map(|digit| taps::Convert::Event {
                    digit,
                    ts,
                    end: event.end,
                });
                media.dtmf.handle_event(now, ts, event);
                while let Some(digit) = media.dtmf.poll_digit() {
                    self.events.push_back(MediaEvent::Dtmf {
                        session: leg.session,
                        leg: leg.id,
                        digit: digit.digit,
                        duration: digit.duration,
                        source: DtmfSource::Rfc4733,
                    });
                }
                self.next_timeout = earliest(self.next_timeout, media.dtmf.poll_timeout());
            }
            Kind::Event
        } else {
            self.counters.unknown_payload_type += 1;
            return None;
        };
        let from_codec = params.codec;
        let audio = matches!(kind, Kind::Audio);
        // The common case (nothing taps this leg, no digit to convert, no
        // mix) costs this one branch; the taps are out of line
        // (`taps::relay_taps`), and so is the mixer (`engine/mixing.rs`: a
        // mix member's audio feeds its mix after the audio taps, and
        // nothing crosses a bridge to or from a member, digits included).
        let tapped = audio && (may_detect || !self.recorders.is_empty());
        if tapped || convert.is_some() || !self.mixer.is_empty() {
            let payload = packet.get(payload_start..payload_end);
            if !self.mixer.is_empty()
                && self.mix_packet(slot, peer, audio, payload.unwrap_or_default())
            {
                if tapped {
                    self.relay_taps(now, slot, None, payload, None);
                }
                return None;
            }
            if (tapped || convert.is_some())
                && !self.relay_taps(now, slot, peer, payload.filter(|_| audio), convert)
            {
                return None;
            }
        }
        let Some(peer_slot) = peer else {
            self.counters.unbridged += 1;
            return None;
        };

        let Some(peer) = self.legs.get_mut(peer_slot).and_then(Option::as_mut) else {
            self.counters.unbridged += 1;
            return None;
        };
        let peer_params = peer.params;
        let local_port = peer.local_port;
        let LegState::Open(peer_media) = &mut peer.state else {
            self.counters.not_sending += 1;
            return None;
        };
        let destination = match peer_media.rtp_destination(&peer_params) {
            Some(d) if peer_params.send => d,
            _ => {
                self.counters.not_sending += 1;
                return None;
            }
        };
        if peer_media.player.is_some() {
            self.counters.replaced_by_player += 1;
            return None;
        }
        if let Some(sender) = peer.dtmf_tap.sender.as_mut() {
            // A digit owns the peer's output (crate::engine::taps).
            if sender.key.is_none() {
                sender.refresh(now);
            }
            self.counters.dtmf_muted += 1;
            return None;
        }
        let mut offload = None;
        let out_pt = match kind {
            Kind::Audio => {
                let transcoder = Transcoder::new(codec_of(from_codec), codec_of(peer_params.codec));
                if !transcoder.is_identity() {
                    if let Some(payload) = packet.get_mut(payload_start..payload_end) {
                        transcoder.transcode_in_place(payload);
                    }
                }
                if self.config.kernel_offload {
                    offload = Some(match (from_codec, peer_params.codec) {
                        (AudioCodec::Pcmu, AudioCodec::Pcma) => G711Map::UlawToAlaw,
                        (AudioCodec::Pcma, AudioCodec::Pcmu) => G711Map::AlawToUlaw,
                        _ => G711Map::None,
                    });
                }
                peer_params.payload_type
            }
            Kind::Event => match peer_params.telephone_event_pt {
                Some(pt) => pt,
                None => {
                    self.counters.event_not_negotiated += 1;
                    return None;
                }
            },
        };
        if out_pt != pt && set_payload_type(packet, out_pt).is_err() {
            self.counters.malformed += 1;
            return None;
        }
        if peer_media.rewriter.rewrite(now, packet).is_err() {
            self.counters.malformed += 1;
            return None;
        }
        peer_media.record_sent(len);
        self.counters.rtp_forwarded += 1;
        if let Some(transcode) = offload {
            let pts = (pt, out_pt);
            self.offer_offload(slot, peer_slot, from, ssrc, pts, destination, transcode);
        }
        Some(Transmit {
            local_port,
            destination,
            len,
        })
    }

    /// Installs the kernel flow for RTP from `slot`'s source `from` with
    /// `ssrc` towards `peer_slot`, when the conditions of
    /// [`crate::offload`] hold and it is not installed already.
    #[allow(clippy::too_many_arguments)]
    fn offer_offload(
        &mut self,
        slot: usize,
        peer_slot: usize,
        from: SocketAddr,
        ssrc: Ssrc,
        (pt_in, pt_out): (u8, u8),
        destination: SocketAddr,
        transcode: G711Map,
    ) {
        let (SocketAddr::V4(remote), SocketAddr::V4(dest), IpAddr::V4(local_ip)) =
            (from, destination, self.local_ip)
        else {
            return;
        };
        if self.flow_is_tapped(slot, peer_slot) {
            return;
        }
        let Some(peer) = self.legs.get(peer_slot).and_then(Option::as_ref) else {
            return;
        };
        let Some(peer_media) = peer.media() else {
            return;
        };
        if peer.params.latch && peer_media.rtp_latch.remote().is_none() {
            return; // the destination is still the SDP address
        }
        let Some((seq_delta, ts_delta)) = peer_media.rewriter.offsets_for(ssrc) else {
            return;
        };
        let ssrc_out = peer_media.rewriter.output_ssrc().0;
        let source_port = peer.local_port;
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let latch = leg.params.latch;
        let local_port = leg.local_port;
        let LegState::Open(media) = &mut leg.state else {
            return;
        };
        if latch && media.rtp_latch.remote() != Some(from) {
            return;
        }
        if media
            .offload
            .is_some_and(|o| o.remote == remote && o.ssrc == ssrc.0)
        {
            return;
        }
        media.offload = Some(Offloaded {
            remote,
            ssrc: ssrc.0,
            seq_delta,
            seen: OffloadProgress::default(),
        });
        self.offload_requests
            .push_back(OffloadRequest::Install(OffloadFlow {
                remote,
                local: SocketAddrV4::new(local_ip, local_port),
                destination: dest,
                source_port,
                ssrc_in: ssrc.0,
                ssrc_out,
                seq_delta,
                ts_delta,
                pt_in,
                pt_out,
                local_destination: dest.ip().is_loopback() || *dest.ip() == local_ip,
                transcode,
            }));
    }

    /// What the kernel forwarded for the flow arriving on `local_port`
    /// (cumulative since it was installed): the source leg's activity and
    /// counters, the bridged leg's counters and output sequence numbers.
    pub fn handle_offload_progress(
        &mut self,
        now: Instant,
        local_port: u16,
        progress: OffloadProgress,
    ) {
        let tag = self
            .ports
            .get(usize::from(local_port))
            .copied()
            .unwrap_or(NO_SLOT);
        if tag == NO_SLOT || tag & 1 == 1 {
            return;
        }
        let slot = (tag >> 1) as usize;
        let config = self.config;
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let params = leg.params;
        let peer = leg.peer;
        let LegState::Open(media) = &mut leg.state else {
            return;
        };
        let Some(offloaded) = media.offload.as_mut() else {
            return;
        };
        let packets = progress.packets.saturating_sub(offloaded.seen.packets);
        let bytes = progress.bytes.saturating_sub(offloaded.seen.bytes);
        offloaded.seen = progress;
        if packets == 0 {
            return;
        }
        let ssrc = Ssrc(offloaded.ssrc);
        let highest_in = progress.last_seq.wrapping_sub(offloaded.seq_delta);
        if media.record_offloaded(now, ssrc, highest_in, packets, bytes) {
            self.next_timeout = earliest(self.next_timeout, media.deadline(&params, &config));
        }
        let Some(peer_media) = peer
            .and_then(|p| self.legs.get_mut(p))
            .and_then(Option::as_mut)
            .and_then(|p| match &mut p.state {
                LegState::Open(m) => Some(m),
                LegState::Binding => None,
            })
        else {
            return;
        };
        peer_media.counters.packets_out += packets;
        peer_media.counters.bytes_out += bytes;
        peer_media
            .rewriter
            .note_output(now, progress.last_seq, progress.last_timestamp);
    }

    fn relay_rtcp(&mut self, slot: usize, from: SocketAddr, packet: &mut [u8]) -> Option<Transmit> {
        let Some((sender, _)) = carillon_rtp::RtcpPacket::parse(packet).ok() else {
            self.counters.malformed += 1;
            return None;
        };
        let sender = sender.sender_ssrc().map_or(0, |s| s.0);
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            self.counters.unknown_port += 1;
            return None;
        };
        let params = leg.params;
        let peer = leg.peer;
        let LegState::Open(media) = &mut leg.state else {
            self.counters.unknown_port += 1;
            return None;
        };
        if params.latch && !media.rtcp_latch.handle_packet(from, sender).is_accepted() {
            self.counters.stray += 1;
            return None;
        }
        // The SSRC the peer sends, as this leg received it from us.
        let peer_source = media.rewriter.current_source();
        let Some(peer_slot) = peer else {
            self.counters.unbridged += 1;
            return None;
        };
        let Some(peer) = self.legs.get_mut(peer_slot).and_then(Option::as_mut) else {
            self.counters.unbridged += 1;
            return None;
        };
        let peer_params = peer.params;
        let local_port = peer.local_port.checked_add(1)?;
        let LegState::Open(peer_media) = &peer.state else {
            self.counters.not_sending += 1;
            return None;
        };
        let Some(destination) = peer_media.rtcp_destination(&peer_params) else {
            self.counters.not_sending += 1;
            return None;
        };
        if rewrite_sender_ssrc(packet, peer_media.rewriter.output_ssrc()).is_err() {
            self.counters.malformed += 1;
            return None;
        }
        if let Some(source) = peer_source {
            // Already validated by the sender rewrite above.
            let _ = rewrite_report_sources(packet, source);
        }
        self.counters.rtcp_forwarded += 1;
        Some(Transmit {
            local_port,
            destination,
            len: packet.len(),
        })
    }

    // ----- timers ---------------------------------------------------------

    /// When [`Self::handle_timeout`] should next be called (possibly early).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = earliest(self.next_timeout, self.playout.next_due());
        earliest(due, self.mixer.next_due())
    }

    /// Fires due inactivity timeouts and DTMF lost-end timeouts, and makes
    /// the frames of every player due (see [`Self::drain_generated`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick_players(now);
        self.tick_mixes(now);
        if self.next_timeout.is_some_and(|t| t <= now) {
            self.scan_legs(now);
        }
    }

    fn scan_legs(&mut self, now: Instant) {
        let config = self.config;
        let mut next = None;
        for leg in self.legs.iter_mut().flatten() {
            let params = leg.params;
            let (session, id) = (leg.session, leg.id);
            let LegState::Open(media) = &mut leg.state else {
                continue;
            };
            media.dtmf.handle_timeout(now);
            while let Some(digit) = media.dtmf.poll_digit() {
                self.events.push_back(MediaEvent::Dtmf {
                    session,
                    leg: id,
                    digit: digit.digit,
                    duration: digit.duration,
                    source: DtmfSource::Rfc4733,
                });
            }
            next = earliest(
                next,
                Self::tick_sender(now, leg, &mut self.playout.generated),
            );
            let LegState::Open(media) = &mut leg.state else {
                continue;
            };
            if media
                .inactivity_deadline(&params, &config)
                .is_some_and(|d| d <= now)
            {
                media.timed_out = true;
                self.events
                    .push_back(MediaEvent::RtpTimeout { session, leg: id });
            }
            next = earliest(next, media.deadline(&params, &config));
        }
        if !self.recorders.is_empty() {
            self.recorders.tick(now, &mut self.events);
            next = earliest(next, self.recorders.poll_timeout());
        }
        self.next_timeout = next;
    }

    // ----- outputs --------------------------------------------------------

    /// The next event for the switch.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The receiving RTP ports of `session`'s legs whose flow the kernel
    /// forwards (for the edge to report their progress before a command
    /// changes or closes them).
    pub fn offloaded_ports(&self, session: SessionId) -> Vec<u16> {
        let Some(legs) = self.sessions.get(&session) else {
            return Vec::new();
        };
        legs.iter()
            .filter_map(|id| self.by_id.get(id))
            .filter_map(|&slot| self.legs.get(slot)?.as_ref())
            .filter(|l| l.media().is_some_and(|m| m.offload.is_some()))
            .map(|l| l.local_port)
            .collect()
    }

    /// The next kernel flow-table operation for the edge.
    pub fn poll_offload_request(&mut self) -> Option<OffloadRequest> {
        self.offload_requests.pop_front()
    }

    /// The next socket operation for the edge.
    pub fn poll_socket_request(&mut self) -> Option<SocketRequest> {
        self.socket_requests.pop_front()
    }

    // ----- introspection --------------------------------------------------

    /// Counters of a leg (also reported in [`MediaEvent::LegClosed`]).
    pub fn leg_stats(&self, leg: LegId) -> Option<LegStats> {
        let slot = *self.by_id.get(&leg)?;
        self.legs.get(slot)?.as_ref().map(Leg::stats)
    }

    /// Where RTP towards the leg currently goes.
    pub fn leg_destination(&self, leg: LegId) -> Option<SocketAddr> {
        let slot = *self.by_id.get(&leg)?;
        let l = self.legs.get(slot)?.as_ref()?;
        l.media()?.rtp_destination(&l.params)
    }

    /// The SSRC of the stream we send towards the leg.
    pub fn leg_output_ssrc(&self, leg: LegId) -> Option<Ssrc> {
        let slot = *self.by_id.get(&leg)?;
        let l = self.legs.get(slot)?.as_ref()?;
        Some(l.media()?.rewriter.output_ssrc())
    }

    /// Sends the packets players generated (from the local port to the
    /// destination of each) and forgets them.
    pub fn drain_generated(&mut self, send: impl FnMut(&Generated, &[u8])) {
        self.playout.generated.drain(send);
    }

    /// Players running.
    pub fn player_count(&self) -> usize {
        self.playout.active
    }

    /// Relay counters of the whole engine.
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// Legs open or binding.
    pub fn leg_count(&self) -> usize {
        self.by_id.len()
    }

    /// Sessions with at least one leg.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Local ports reserved (two per leg).
    pub fn reserved_port_count(&self) -> usize {
        self.reserved_ports
    }
}

#[cfg(test)]
mod tests;
