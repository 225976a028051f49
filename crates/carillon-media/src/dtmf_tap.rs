//! DTMF taps of one leg: how the leg carries DTMF ([`DtmfMode`]), its
//! in-band detector (a `carillon-dtmf` Goertzel bank on the decoded audio it
//! sends us) and the digit being sent to it ([`DtmfSender`]: RFC 4733
//! events or in-band tones).
//!
//! Owns the decisions that depend only on the leg: whether it is detected
//! in-band (`Inband`, or `Auto` without a negotiated telephone-event
//! payload type), how a digit reaches it ([`Outgoing`]), and the packet
//! pacing of a digit sent to it. It does not own sockets, the leg's output
//! stream rewriter (the engine passes every generated packet through it, so
//! SSRC, sequence numbers and timestamps stay continuous with the relayed
//! audio) nor the bridge (the engine converts digits across it).
//!
//! A sender owns the leg's output while it runs: the relayed audio towards
//! the leg is muted, so the generated stream never interleaves with it.
//!
//! RFC 4733 sending (§2.5.1): one packet per packet interval (the leg's
//! ptime), all with the timestamp of the event start, the marker on the
//! first, the duration growing by one interval each packet, then three end
//! packets (E bit) with the final duration. In-band sending: the two tones
//! (`carillon_dtmf::DtmfGenerator`, −8/−6 dBFS) in packets of the leg's
//! codec and ptime for the digit's duration (at least [`MIN_TONE`] so a
//! detector accepts it), then [`PAUSE`] of silence before the relay resumes.
//!
//! ```text
//!  start ──► sending ──tick: packet every ptime──► sending
//!             │ duration known and reached: RFC 4733 → 3 end packets;
//!             │                               in-band → PAUSE of silence
//!             └──────────────────────────────► done (the relay resumes)
//! ```
//!
//! A digit converted from the bridged leg starts before its length is
//! known (an RFC 4733 press in progress, an in-band tone just detected):
//! [`DtmfSender::finish`] fixes it when the press ends; one that hears
//! nothing for [`STALE`] ends by itself (a lost end packet).

use carillon_codec::Codec;
use carillon_dtmf::{Digit, DtmfEvent};
use carillon_mediactl::{DtmfMode, LegParams};
use carillon_rtp::dtmf::{event_for_digit, TelephoneEvent};
use carillon_rtp::Ssrc;
use std::time::{Duration, Instant};

/// Shortest in-band tone sent (in-band detectors need about 40 ms).
pub const MIN_TONE: Duration = Duration::from_millis(60);
/// Silence after an in-band tone before the relayed audio resumes.
pub const PAUSE: Duration = Duration::from_millis(60);
/// A converted digit not refreshed for this long ends (lost end packets).
pub const STALE: Duration = Duration::from_millis(500);
/// Longest digit (the RFC 4733 duration field counts 16 bits at 8 kHz).
pub const MAX_DIGIT: Duration = Duration::from_millis(8000);
/// The input SSRC of generated packets before the leg's rewriter maps them.
pub const GENERATOR_SSRC: Ssrc = Ssrc(0x4454_4D46);

/// How a digit reaches a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// RFC 4733 events with this payload type.
    Rfc4733(u8),
    /// Tones in the audio.
    Inband,
    /// Not by media (SIP INFO, or RFC 4733 that was not negotiated).
    None,
}

/// Mode and in-band detector of one leg. The detector and the sender are
/// boxed: most legs have neither, and inline they made every leg ~570
/// bytes larger, spreading the fields the relay path reads for each
/// packet over several more cache lines (benches/README.md, session 10).
#[derive(Debug, Clone, Default)]
pub struct LegDtmf {
    pub mode: DtmfMode,
    detector: Option<Box<carillon_dtmf::DtmfDetector>>,
    /// The digit being sent to this leg.
    pub sender: Option<Box<DtmfSender>>,
}

/// A key press seen by the in-band detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InbandDigit {
    Began(char),
    Ended(char, Duration),
}

impl LegDtmf {
    /// Sets the mode; the detector starts fresh when it is in-band capable.
    pub fn set_mode(&mut self, mode: DtmfMode) {
        self.mode = mode;
        self.detector = match mode {
            DtmfMode::Inband | DtmfMode::Auto => {
                carillon_dtmf::DtmfDetector::new(8000).ok().map(Box::new)
            }
            DtmfMode::Rfc4733 | DtmfMode::Info => None,
        };
    }

    /// Whether the leg has a detector at all (a cheap first check for the
    /// relay path; [`Self::detects_inband`] decides).
    #[inline]
    pub fn may_detect(&self) -> bool {
        self.detector.is_some()
    }

    /// Whether the leg's received audio goes through the in-band detector.
    pub fn detects_inband(&self, params: &LegParams) -> bool {
        self.detector.is_some()
            && match self.mode {
                DtmfMode::Inband => true,
                DtmfMode::Auto => params.telephone_event_pt.is_none(),
                DtmfMode::Rfc4733 | DtmfMode::Info => false,
            }
    }

    /// How a digit is sent to this leg.
    pub fn outgoing(&self, params: &LegParams) -> Outgoing {
        match (self.mode, params.telephone_event_pt) {
            (DtmfMode::Rfc4733 | DtmfMode::Auto, Some(pt)) => Outgoing::Rfc4733(pt),
            (DtmfMode::Inband, _) | (DtmfMode::Auto, None) => Outgoing::Inband,
            (DtmfMode::Rfc4733, None) | (DtmfMode::Info, _) => Outgoing::None,
        }
    }

    /// Feeds a received audio payload to the detector (when detecting).
    pub fn detect(
        &mut self,
        params: &LegParams,
        codec: Codec,
        payload: &[u8],
        out: &mut Vec<InbandDigit>,
    ) {
        if !self.detects_inband(params) {
            return;
        }
        let Some(detector) = self.detector.as_mut() else {
            return;
        };
        detector.push_g711(codec, payload);
        while let Some(event) = detector.poll_event() {
            out.push(match event {
                DtmfEvent::Began { digit, .. } => InbandDigit::Began(digit.as_char()),
                DtmfEvent::Ended {
                    digit, duration_ms, ..
                } => InbandDigit::Ended(
                    digit.as_char(),
                    Duration::from_millis(u64::from(duration_ms)),
                ),
            });
        }
    }

    /// Whether a digit is being sent to this leg (its relayed audio muted).
    pub fn is_sending(&self) -> bool {
        self.sender.is_some()
    }
}

/// Why a digit cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{digit:?} is not a DTMF digit")]
    UnknownDigit { digit: char },
    #[error("the leg carries DTMF by SIP INFO (or did not negotiate telephone-event)")]
    NotByMedia,
}

#[derive(Debug, Clone)]
enum Kind {
    Rfc4733 {
        pt: u8,
        event: u8,
        ends_left: u8,
    },
    Inband {
        codec: Codec,
        pt: u8,
        tone: carillon_dtmf::DtmfGenerator,
    },
}

/// One digit being sent to a leg. See the module documentation.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    kind: Kind,
    /// Packets sent so far.
    sent: u32,
    interval: Duration,
    started: Instant,
    /// Length of the press, once known.
    length: Option<Duration>,
    /// Last news of a converted press.
    refreshed: Instant,
    /// Which press of the bridged leg this converts (its RFC 4733 timestamp).
    pub key: Option<u32>,
}

/// A packet a sender produced, in the generator's own numbering (the
/// leg's output rewriter maps it; [`GENERATOR_SSRC`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

impl DtmfSender {
    /// A sender of `digit` in `how`, starting at `now`; `length` `None`
    /// until the press ends (a conversion). `params` are the leg's.
    pub fn new(
        now: Instant,
        digit: char,
        how: Outgoing,
        params: &LegParams,
        length: Option<Duration>,
    ) -> Result<Self, SendError> {
        let interval = params
            .ptime
            .clamp(Duration::from_millis(10), Duration::from_millis(60));
        let kind = match how {
            Outgoing::Rfc4733(pt) => Kind::Rfc4733 {
                pt,
                event: event_for_digit(digit).ok_or(SendError::UnknownDigit { digit })?,
                ends_left: 3,
            },
            Outgoing::Inband => {
                let key = Digit::from_char(digit).ok_or(SendError::UnknownDigit { digit })?;
                Kind::Inband {
                    codec: crate::leg::codec_of(params.codec),
                    pt: params.payload_type,
                    tone: carillon_dtmf::DtmfGenerator::new(key, -8.0, -6.0),
                }
            }
            Outgoing::None => return Err(SendError::NotByMedia),
        };
        Ok(DtmfSender {
            kind,
            sent: 0,
            interval,
            started: now,
            length: length.map(|l| l.min(MAX_DIGIT)),
            refreshed: now,
            key: None,
        })
    }

    /// The press being converted is still going on at `now`.
    pub fn refresh(&mut self, now: Instant) {
        self.refreshed = now;
    }

    /// The press ends at `now` (or lasted `length`, whichever is longer).
    pub fn finish(&mut self, now: Instant, length: Option<Duration>) {
        if self.length.is_none() {
            let elapsed = now.saturating_duration_since(self.started);
            self.length = Some(length.unwrap_or(elapsed).max(elapsed).min(MAX_DIGIT));
        }
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Instant {
        self.started + self.interval * self.sent
    }

    fn length_at(&mut self, now: Instant) -> Option<Duration> {
        if self.length.is_none()
            && (now.saturating_duration_since(self.refreshed) >= STALE
                || now.saturating_duration_since(self.started) >= MAX_DIGIT)
        {
            self.finish(now, None);
        }
        self.length
    }

    /// The packets due at `now`; `true` once the sender is done (the
    /// relay may resume).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<DigitPacket>) -> bool {
        // Bounded catch-up after a late wake-up.
        for _ in 0..8 {
            if self.poll_timeout() > now {
                return false;
            }
            if self.next_packet(now, out) {
                return true;
            }
        }
        false
    }

    /// Writes the next packet; `true` when there is none left.
    fn next_packet(&mut self, now: Instant, out: &mut Vec<DigitPacket>) -> bool {
        let length = self.length_at(now);
        let units = |d: Duration| (d.as_micros() * 8 / 1000).min(u128::from(u16::MAX)) as u16;
        let step = self.interval;
        let index = self.sent;
        let seq = index as u16;
        let first = index == 0;
        match &mut self.kind {
            Kind::Rfc4733 {
                pt,
                event,
                ends_left,
            } => {
                let reached = step * (index + 1);
                let (duration, end) = match length {
                    Some(l) if reached >= l || *ends_left < 3 => {
                        if *ends_left == 0 {
                            return true;
                        }
                        *ends_left -= 1;
                        (units(l), true)
                    }
                    _ => (units(reached), false),
                };
                let payload = TelephoneEvent {
                    event: *event,
                    end,
                    volume: 10,
                    duration,
                }
                .to_bytes();
                // Every packet of the event carries its start timestamp.
                out.push(DigitPacket {
                    payload_type: *pt,
                    marker: first,
                    seq,
                    timestamp: 0,
                    payload: payload.to_vec(),
                });
            }
            Kind::Inband { codec, pt, tone } => {
                let samples = units(step) as usize;
                let start = step * index;
                let tone_len = length.map(|l| l.max(MIN_TONE));
                if tone_len.is_some_and(|l| start >= l + PAUSE) {
                    return true;
                }
                let mut pcm = vec![0i16; samples];
                if tone_len.is_none_or(|l| start < l) {
                    tone.fill(&mut pcm);
                }
                let payload: Vec<u8> = pcm.iter().map(|&s| codec.encode_sample(s)).collect();
                let ts = u32::from(units(step)).wrapping_mul(index);
                out.push(DigitPacket {
                    payload_type: *pt,
                    marker: first,
                    seq,
                    timestamp: ts,
                    payload,
                });
            }
        }
        self.sent += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_mediactl::AudioCodec;

    fn params(te: Option<u8>) -> LegParams {
        LegParams {
            codec: AudioCodec::Pcma,
            payload_type: 8,
            telephone_event_pt: te,
            ptime: Duration::from_millis(20),
            remote: None,
            latch: false,
            send: true,
            recv: true,
        }
    }

    #[test]
    fn auto_means_rfc4733_with_telephone_event_and_inband_without() {
        let mut d = LegDtmf::default();
        d.set_mode(DtmfMode::Auto);
        assert_eq!(d.outgoing(&params(Some(101))), Outgoing::Rfc4733(101));
        assert!(!d.detects_inband(&params(Some(101))));
        assert_eq!(d.outgoing(&params(None)), Outgoing::Inband);
        assert!(d.detects_inband(&params(None)));
        d.set_mode(DtmfMode::Info);
        assert_eq!(d.outgoing(&params(Some(101))), Outgoing::None);
        assert!(!d.detects_inband(&params(None)));
    }

    #[test]
    fn an_rfc4733_digit_is_paced_per_interval_and_ends_with_three_end_packets() {
        let t0 = Instant::now();
        let p = params(Some(101));
        let len = Some(Duration::from_millis(100));
        let mut s = DtmfSender::new(t0, '9', Outgoing::Rfc4733(101), &p, len).unwrap();
        let mut out = Vec::new();
        let mut done = false;
        for i in 0..20u32 {
            done = s.tick(t0 + Duration::from_millis(20) * i, &mut out);
            if done {
                break;
            }
        }
        assert!(done);
        let events: Vec<(bool, TelephoneEvent, u32)> = out
            .iter()
            .map(|p| {
                let ev = TelephoneEvent::parse(&p.payload).unwrap();
                (p.marker, ev, p.timestamp)
            })
            .collect();
        let durations: Vec<u16> = events.iter().map(|e| e.1.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = events.iter().map(|e| e.1.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(events[0].0 && events.iter().skip(1).all(|e| !e.0));
        assert!(events.iter().all(|e| e.2 == events[0].2 && e.1.event == 9));
    }
}
