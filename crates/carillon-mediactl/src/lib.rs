//! `carillon-mediactl`: the only thing the switch and the media plane share
//! (ARCHITECTURE.md principle 3). The switch sends [`MediaCommand`]s and
//! receives [`MediaEvent`]s; neither side knows the other's types, so media
//! could move to its own process (like rtpengine) without touching call
//! logic. Plain data, no behaviour (besides the one log line both sides
//! may write, [`log_leg_closed`]).
//!
//! Ports: the switch picks each leg's local RTP port from the configured
//! range (so it can write its SDP answer at once); the media plane binds it
//! and reports `LegOpened` or `OpenFailed`. RTCP uses port + 1.
//!
//! ## The media graph (ARCHITECTURE.md, "Media graph")
//!
//! Each leg has one output: a relay from the leg it is bridged to (the fast
//! path, the only one the kernel may take over), or a player (`Play`: prompt
//! files, tones, silence or a music-on-hold class), driven by the worker's
//! own 20 ms tick. A `Play` on a bridged leg replaces what the leg hears
//! until it ends or is stopped; the relay then resumes. Taps (`Record`, and
//! in-band DTMF detection from `SetDtmfMode`) can be attached to any leg; a
//! tapped flow is never forwarded by the kernel. Playback ends with
//! `PlaybackDone`, recordings with `RecordingDone`; digits arrive as `Dtmf`
//! with their source.
//!
//! ## Mixes (conferences and supervisor modes)
//!
//! A mix ([`MixId`], chosen by the switch) is one mixer of the media plane;
//! ConfBridge and ChanSpy's listen / whisper / barge are configurations of
//! it ([`MixRole`]), not separate mixers. `CreateMix`, then `AddToMix` per
//! leg with its role: while a leg is a member its output is the mix (what
//! its role lets it hear of the others, never its own voice, in its own
//! codec and ptime) and its received audio goes to the mix instead of its
//! bridge; its bridge (if any) is suspended, not dissolved, and resumes when
//! the leg leaves (`RemoveFromMix`, `DestroyMix`). `SetMixRole` switches a
//! member's role (ChanSpy's `4`/`5`/`6`, mute), `SetMixVolume` its talk and
//! listen volume. A `Play` on a member replaces what it hears while it lasts
//! (music while alone, announcements). RFC 4733 digits of a member still
//! arrive as `Dtmf` and are not mixed. `RecordMixer` records the mix's
//! output (mono, what is said to all). The commands are routed by
//! `session` (the session whose worker hosts the mix); a member must be a
//! leg open on that same worker (any session of it). A mix lasts until
//! `DestroyMix`: closing legs (its members or its session's) does not end
//! it.
//!
//! DTMF crossing a bridge: a digit received on leg A (RFC 4733 or in-band)
//! reaches its bridged leg B in B's mode: RFC 4733 events when B's mode is
//! `Rfc4733` (or `Auto` with a telephone-event payload type), generated
//! tones in B's audio when B's mode is `Inband` (or `Auto` without one),
//! and nothing from the media plane when B's mode is `Info` (the switch
//! sends SIP INFO on B's dialog from the `Dtmf` event, and asks for
//! `SendDtmf` on A's bridged leg when an INFO arrives).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One call's media: all legs of a call live in one session on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The media worker (of `workers`) that owns this session. The media
    /// runtime routes every command of the session there, and the switch
    /// gives the session RTP ports only from that worker's share of the
    /// range, so a worker can keep released sockets open for its own next
    /// calls (see [`port_partition`]). Sequential ids spread evenly.
    pub fn worker(self, workers: usize) -> usize {
        (mix(self.0) % workers.max(1) as u64) as usize
    }
}

/// The worker (of `workers`) whose share of the RTP range holds the pair
/// starting at even port `rtp_port`: pairs are dealt round-robin, so every
/// worker's share spans the whole range.
pub fn port_partition(rtp_port: u16, workers: usize) -> usize {
    usize::from(rtp_port / 2) % workers.max(1)
}

/// splitmix64 finaliser: spreads sequential ids (and seeds) evenly.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One leg (one RTP stream pair towards one endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// Audio codec of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

/// What was negotiated for a leg (from SDP offer/answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegParams {
    pub codec: AudioCodec,
    /// Payload type the far end uses for `codec`.
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    pub ptime: Duration,
    /// Where to send RTP, from SDP; `None` until known (or on hold with
    /// 0.0.0.0). With `latch`, the address media really arrives from wins.
    pub remote: Option<SocketAddr>,
    /// Symmetric RTP (learn the source address: phones behind NAT).
    pub latch: bool,
    /// Whether the switch sends to / accepts from this leg (hold: sendonly,
    /// inactive).
    pub send: bool,
    pub recv: bool,
}

/// Identifies one `Play` of a session (chosen by the switch, echoed in
/// [`MediaEvent::PlaybackDone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaybackId(pub u64);

/// Identifies one `Record` of a session (chosen by the switch, echoed in
/// [`MediaEvent::RecordingDone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub u64);

/// Identifies one mix (conference room, spied bridge) of a worker; chosen
/// by the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MixId(pub u64);

/// Whom a mix member's voice reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speak {
    /// Every other member that hears (conference member, barge).
    All,
    /// Only these members (whisper: the supervisor to the agent).
    To(Vec<LegId>),
    /// Nobody (listen-only, muted).
    None,
}

/// What a member of a mix says and hears. Every member hears the sum of
/// what is spoken to it by the others, never its own voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixRole {
    pub speaks: Speak,
    /// Whether the member hears the mix (false: it hears nothing from it).
    pub hears: bool,
}

impl MixRole {
    /// A conference member, or a supervisor barging in: speaks to and
    /// hears everyone.
    pub fn normal() -> MixRole {
        MixRole {
            speaks: Speak::All,
            hears: true,
        }
    }

    /// ChanSpy listen: hears everyone, heard by nobody.
    pub fn listen() -> MixRole {
        MixRole {
            speaks: Speak::None,
            hears: true,
        }
    }

    /// A muted conference member: the same configuration as [`Self::listen`].
    pub fn muted() -> MixRole {
        MixRole::listen()
    }

    /// ChanSpy whisper: hears everyone, heard only by `to` (the agent).
    pub fn whisper(to: Vec<LegId>) -> MixRole {
        MixRole {
            speaks: Speak::To(to),
            hears: true,
        }
    }
}

/// One item of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayItem {
    /// A WAV file (8 kHz, 16-bit, mono), by absolute path. Files are read
    /// once and shared: every listener plays the same decoded copy. A file
    /// that cannot be read is skipped (and named in `PlaybackDone`).
    File(PathBuf),
    /// A music-on-hold class configured in the media plane; never ends by
    /// itself (a `Play` containing it lasts until stopped). All listeners of
    /// a class hear the same position (streamed MoH).
    Moh { class: String },
    /// A tone cadence (Playtones, ringback, busy): played for `duration`,
    /// or until stopped when `None`.
    Tone {
        tone: Arc<ToneSpec>,
        duration: Option<Duration>,
    },
    /// Silence.
    Silence(Duration),
}

/// A cadenced tone: up to two frequencies summed, `on`/`off` cadence
/// repeated (e.g. 425 Hz 1 s on / 4 s off for Pakistani ringback).
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpec {
    /// Segments played in order, then repeated from the first.
    pub segments: Vec<ToneSegment>,
}

/// One segment of a [`ToneSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSegment {
    /// Frequencies in Hz (0, 1 or 2 of them; none is silence).
    pub freqs: [Option<u16>; 2],
    /// Level of each frequency in dBm0 (e.g. -13).
    pub level_dbm0: i8,
    pub duration: Duration,
}

/// Why a playback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybackEnd {
    /// Every item played.
    Finished,
    /// `StopPlay`, a newer `Play` on the same leg, or the leg closed.
    Stopped,
}

/// How a leg sends and receives DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// RFC 4733 telephone-events (the default).
    #[default]
    Rfc4733,
    /// SIP INFO (handled by the switch; the media plane neither detects
    /// nor sends on this leg).
    Info,
    /// Tones in the audio: detected by a Goertzel tap, generated as audio.
    Inband,
    /// RFC 4733 when the leg negotiated telephone-event, else in-band.
    Auto,
}

impl DtmfMode {
    /// Every mode with its configuration name (`dtmf_mode` in
    /// `users.toml` and `trunks.toml`).
    pub const NAMES: [(&'static str, DtmfMode); 4] = [
        ("rfc4733", DtmfMode::Rfc4733),
        ("info", DtmfMode::Info),
        ("inband", DtmfMode::Inband),
        ("auto", DtmfMode::Auto),
    ];

    /// The mode named `name` in configuration (`rfc4733`, `info`,
    /// `inband`, `auto`; case-insensitive), if it is one.
    pub fn from_name(name: &str) -> Option<DtmfMode> {
        DtmfMode::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, m)| *m)
    }

    /// The configuration name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            DtmfMode::Rfc4733 => "rfc4733",
            DtmfMode::Info => "info",
            DtmfMode::Inband => "inband",
            DtmfMode::Auto => "auto",
        }
    }

    /// Whether a leg in this mode offers and accepts RFC 4733
    /// telephone-event in its SDP (as Asterisk: `rfc4733` and `auto` do;
    /// `info` and `inband` legs do not, so the far end sends its digits
    /// the way the leg expects them).
    pub fn negotiates_telephone_event(self) -> bool {
        matches!(self, DtmfMode::Rfc4733 | DtmfMode::Auto)
    }
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    Rfc4733,
    Inband,
}

/// What a recording captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMix {
    /// One leg's received audio only (the Record application).
    Leg(LegId),
    /// Both directions of a pair mixed to one mono channel.
    Mono { caller: LegId, callee: LegId },
    /// Stereo: the caller's audio left, the callee's right (MixMonitor `D`).
    Stereo { caller: LegId, callee: LegId },
}

/// Why a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingEnd {
    /// `StopRecord` or a leg of it closed.
    Stopped,
    /// `max_silence` of silence was heard (Record application).
    Silence,
    /// `max_duration` reached.
    MaxDuration,
    /// The file could not be created or written.
    Failed(String),
}

/// Switch → media.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Bind `local_port` (RTP) and `local_port + 1` (RTCP) for a new leg.
    OpenLeg {
        session: SessionId,
        leg: LegId,
        local_port: u16,
        params: LegParams,
    },
    /// Re-INVITE/UPDATE: new remote, direction or codec.
    UpdateLeg {
        session: SessionId,
        leg: LegId,
        params: LegParams,
    },
    /// Relay between two legs of a session (transcoding if codecs differ).
    Bridge {
        session: SessionId,
        a: LegId,
        b: LegId,
    },
    /// Stop relaying between them (the legs stay open).
    Unbridge {
        session: SessionId,
        a: LegId,
        b: LegId,
    },
    /// Close one leg and release its ports.
    CloseLeg { session: SessionId, leg: LegId },
    /// Close every leg of the session.
    CloseSession { session: SessionId },
    /// Play `items` in order to `leg` (replacing any playback on it and,
    /// while it lasts, what the leg's bridge would relay to it). Ends with
    /// `PlaybackDone`.
    Play {
        session: SessionId,
        leg: LegId,
        playback: PlaybackId,
        items: Vec<PlayItem>,
    },
    /// Stop the playback on `leg`, if any (`PlaybackDone { Stopped }`).
    StopPlay { session: SessionId, leg: LegId },
    /// Start recording to `path` (a WAV file created with its directories).
    Record {
        session: SessionId,
        recording: RecordingId,
        mix: RecordMix,
        path: PathBuf,
        /// End after this much silence (Record application); `None` never.
        max_silence: Option<Duration>,
        /// End after this long; `None` never.
        max_duration: Option<Duration>,
    },
    /// Stop a recording (its file is finalised; `RecordingDone`).
    StopRecord {
        session: SessionId,
        recording: RecordingId,
    },
    /// How `leg` carries DTMF (see [`DtmfMode`]); starts or stops its
    /// in-band detector.
    SetDtmfMode {
        session: SessionId,
        leg: LegId,
        mode: DtmfMode,
    },
    /// Send a digit to `leg` in its mode (RFC 4733: events with three end
    /// packets; in-band: tones in the audio), e.g. for a digit that came by
    /// SIP INFO on the other leg.
    SendDtmf {
        session: SessionId,
        leg: LegId,
        digit: char,
        duration: Duration,
    },
    /// Creates an empty mix on the worker of `session`.
    CreateMix { session: SessionId, mix: MixId },
    /// Removes every member (each gets its earlier output back) and the mix.
    DestroyMix { session: SessionId, mix: MixId },
    /// Makes `leg` (open on the mix's worker, of any session) a member: its
    /// output becomes the mix, its audio feeds the mix.
    AddToMix {
        session: SessionId,
        mix: MixId,
        leg: LegId,
        role: MixRole,
    },
    /// Changes a member's role.
    SetMixRole {
        session: SessionId,
        mix: MixId,
        leg: LegId,
        role: MixRole,
    },
    /// A member's volume in steps of 3 dB (`-4..=4`, 0 = unchanged; out of
    /// range steps are clamped): `talk` scales its voice in the mix,
    /// `listen` what it hears (ConfBridge's volume menu).
    SetMixVolume {
        session: SessionId,
        mix: MixId,
        leg: LegId,
        talk: i8,
        listen: i8,
    },
    /// Takes `leg` out of the mix; its earlier output (the relay from its
    /// bridged leg, or nothing) resumes as one continuous stream.
    RemoveFromMix {
        session: SessionId,
        mix: MixId,
        leg: LegId,
    },
    /// Records what the mix's members say to everyone (mono; whispers are
    /// not in it) to `path`, a WAV file created with its directories (the
    /// ConfBridge room recording). One recording per mix; it ends with
    /// `StopRecord { session, recording }` (the mix's session), with
    /// `DestroyMix`, or at `max_duration`, and then `RecordingDone`. The
    /// `recording` id must not also name a leg recording of that session.
    RecordMixer {
        session: SessionId,
        recording: RecordingId,
        mix: MixId,
        path: PathBuf,
        max_duration: Option<Duration>,
    },
}

impl MediaCommand {
    /// The session the command is for (which decides its worker).
    pub fn session(&self) -> SessionId {
        match self {
            MediaCommand::OpenLeg { session, .. }
            | MediaCommand::UpdateLeg { session, .. }
            | MediaCommand::Bridge { session, .. }
            | MediaCommand::Unbridge { session, .. }
            | MediaCommand::CloseLeg { session, .. }
            | MediaCommand::CloseSession { session }
            | MediaCommand::Play { session, .. }
            | MediaCommand::StopPlay { session, .. }
            | MediaCommand::Record { session, .. }
            | MediaCommand::StopRecord { session, .. }
            | MediaCommand::SetDtmfMode { session, .. }
            | MediaCommand::SendDtmf { session, .. }
            | MediaCommand::CreateMix { session, .. }
            | MediaCommand::DestroyMix { session, .. }
            | MediaCommand::AddToMix { session, .. }
            | MediaCommand::SetMixRole { session, .. }
            | MediaCommand::SetMixVolume { session, .. }
            | MediaCommand::RemoveFromMix { session, .. }
            | MediaCommand::RecordMixer { session, .. } => *session,
        }
    }
}

/// Per-leg counters reported when a leg closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lost: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8), of the
    /// packets seen in userspace.
    pub jitter: u32,
    /// Of `packets_in`, those the kernel fast path forwarded.
    pub packets_in_kernel: u64,
}

/// Media → switch.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    LegOpened {
        session: SessionId,
        leg: LegId,
        local: SocketAddr,
    },
    OpenFailed {
        session: SessionId,
        leg: LegId,
        reason: String,
    },
    /// No RTP received for the configured inactivity timeout.
    RtpTimeout { session: SessionId, leg: LegId },
    /// A digit received on `leg` ended (RFC 4733 or in-band).
    Dtmf {
        session: SessionId,
        leg: LegId,
        digit: char,
        duration: Duration,
        source: DtmfSource,
    },
    /// A `Play` ended. `missing` names files that could not be played
    /// (skipped, with a warning).
    PlaybackDone {
        session: SessionId,
        leg: LegId,
        playback: PlaybackId,
        end: PlaybackEnd,
        missing: Vec<PathBuf>,
    },
    /// A `Record` ended; the file at `path` is a finalised WAV.
    RecordingDone {
        session: SessionId,
        recording: RecordingId,
        path: PathBuf,
        end: RecordingEnd,
        /// Audio written, in milliseconds.
        duration_ms: u64,
        /// Frames dropped because the writer fell behind.
        frames_lost: u64,
    },
    LegClosed {
        session: SessionId,
        leg: LegId,
        stats: LegStats,
    },
}

/// The `media leg closed` log line (one per leg, with its counters),
/// written by whichever side receives the [`MediaEvent::LegClosed`]: the
/// media worker itself when it does not report closes to the switch.
pub fn log_leg_closed(session: SessionId, leg: LegId, stats: &LegStats) {
    tracing::info!(
        session = session.0,
        leg = leg.0,
        packets_in = stats.packets_in,
        packets_out = stats.packets_out,
        packets_in_kernel = stats.packets_in_kernel,
        lost = stats.lost,
        jitter = stats.jitter,
        "media leg closed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_port_pairs_are_dealt_to_every_worker_in_turn() {
        let shares: Vec<usize> = (0..6u16)
            .map(|i| port_partition(10000 + 2 * i, 3))
            .collect();
        assert_eq!(shares, [2, 0, 1, 2, 0, 1]);
        assert_eq!(port_partition(10000, 0), 0, "zero workers count as one");
    }

    #[test]
    fn every_dtmf_mode_is_read_back_from_its_name_in_any_case() {
        for (name, mode) in DtmfMode::NAMES {
            assert_eq!(DtmfMode::from_name(name), Some(mode));
            assert_eq!(DtmfMode::from_name(&name.to_uppercase()), Some(mode));
            assert_eq!(mode.name(), name);
        }
        assert_eq!(DtmfMode::from_name("rfc2833"), None);
        assert_eq!(DtmfMode::from_name(""), None);
        assert!(DtmfMode::Auto.negotiates_telephone_event());
        assert!(!DtmfMode::Inband.negotiates_telephone_event());
        assert!(!DtmfMode::Info.negotiates_telephone_event());
    }

    #[test]
    fn a_session_always_maps_to_the_same_worker_in_range() {
        for s in 0..1000 {
            let w = SessionId(s).worker(3);
            assert!(w < 3);
            assert_eq!(SessionId(s).worker(3), w);
        }
        assert_eq!(SessionId(5).worker(0), 0);
    }
}
