//! Media engine configuration: inactivity timeouts (like Asterisk's
//! `rtptimeout` / `rtpholdtimeout`), the re-latch rule and the seed of the
//! SSRC generator and the kernel fast path switch. Plain data; validation is limited to clamping values that
//! would make no sense (a re-latch threshold of zero).

use std::time::Duration;

/// How a [`crate::MediaEngine`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaConfig {
    /// `RtpTimeout` after this long without RTP on a sendrecv leg; `None`
    /// disables it.
    pub rtp_timeout: Option<Duration>,
    /// The same while the leg is on hold (not sendrecv); `None` disables it.
    pub hold_timeout: Option<Duration>,
    /// A latched leg moves to a new source address after this many
    /// consecutive RTP packets from that address with one SSRC and none from
    /// the current address in between (at least 1).
    pub relatch_packets: u32,
    /// Seed of the generator for output SSRCs (RFC 3550 §8.1 wants them
    /// random; the caller provides the entropy).
    pub rng_seed: u64,
    /// Ask the edge to forward latched same-codec flows in the kernel
    /// (see [`crate::offload`]).
    pub kernel_offload: bool,
    /// Report [`carillon_mediactl::MediaEvent::LegOpened`]. A switch that
    /// chose the ports itself and ignores it turns it off: each event can
    /// wake the signalling thread once.
    pub report_opened: bool,
}

impl MediaConfig {
    /// Default RTP inactivity timeout.
    pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default inactivity timeout while on hold.
    pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default re-latch threshold.
    pub const DEFAULT_RELATCH_PACKETS: u32 = 3;
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_timeout: Some(Self::DEFAULT_RTP_TIMEOUT),
            hold_timeout: Some(Self::DEFAULT_HOLD_TIMEOUT),
            relatch_packets: Self::DEFAULT_RELATCH_PACKETS,
            rng_seed: 0,
            kernel_offload: false,
            report_opened: true,
        }
    }
}
