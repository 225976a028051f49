//! RFC 4733 telephone-events: the 4-byte payload (§2.3), a [`DtmfDetector`]
//! that turns a stream of event packets into exactly one [`DtmfDigit`] per
//! key press, and a [`DtmfGenerator`] producing the packets for one digit.
//!
//! Owns DTMF events 0–15 (§3.2: `0`–`9`, `*`, `#`, `A`–`D`); other events
//! (flash, tones) parse but are not reported as digits. It does not own
//! in-band (audio) DTMF, RFC 2198 redundancy, or payload-type negotiation;
//! callers hand it only packets of the negotiated telephone-event type.
//!
//! A key press is identified by its RTP timestamp (the event start, §2.5.1.2);
//! updates repeat it with a growing duration and the end is sent three times
//! (§2.5.1.4). Detector per press:
//!
//! ```text
//!  idle ──start/update──► active(ts, event, duration) ──end──► done(ts,event) ─► digit
//!                           │  ▲ update: duration = max                 │
//!                           │  └──┘                                     └ retransmitted ends,
//!                           ├── other ts/event arrives ─► digit (end lost)    late updates: ignored
//!                           └── no packet for end_timeout ─► digit (end lost)
//! ```

use crate::packet::RtpPacket;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Payload length of one event.
pub const EVENT_LEN: usize = 4;

/// Errors of the telephone-event payload and generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is shorter than 4 bytes.
    #[error("telephone-event payload of {len} bytes, need 4")]
    TooShort { len: usize },
    /// The character is not a DTMF key.
    #[error("{digit:?} is not a DTMF digit")]
    UnknownDigit { digit: char },
    /// Volume is a 6-bit field (0..=63, in −dBm0).
    #[error("volume {volume} out of range 0..=63")]
    InvalidVolume { volume: u8 },
    /// Duration and packet interval must be positive.
    #[error("duration and packet interval must be non-zero")]
    ZeroDuration,
    /// The output buffer is smaller than 4 bytes.
    #[error("output buffer too small: need 4 bytes, have {available}")]
    BufferTooSmall { available: usize },
}

/// The event code of a DTMF key (RFC 4733 §3.2).
pub fn event_for_digit(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The DTMF key of an event code (0..=15).
pub fn digit_for_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One telephone-event payload (RFC 4733 §2.3).
///
/// ```text
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TelephoneEvent {
    pub event: u8,
    /// E bit: this is (a retransmission of) the final packet.
    pub end: bool,
    /// Power level in −dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first 4 bytes of a payload (the R bit is ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::TooShort { len: payload.len() }),
        }
    }

    /// The 4 payload bytes (R bit zero, volume masked to 6 bits).
    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        let flags = (self.volume & 0x3F) | if self.end { 0x80 } else { 0 };
        [self.event, flags, d[0], d[1]]
    }

    /// Writes the payload to the front of `buf`; returns 4.
    pub fn write_into(&self, buf: &mut [u8]) -> Result<usize, DtmfError> {
        let available = buf.len();
        let out = buf
            .get_mut(..EVENT_LEN)
            .ok_or(DtmfError::BufferTooSmall { available })?;
        out.copy_from_slice(&self.to_bytes());
        Ok(EVENT_LEN)
    }

    /// The DTMF key, if the event is one.
    pub fn digit(&self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// One detected key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub digit: char,
    /// Length of the press as signalled.
    pub duration: Duration,
    /// RTP timestamp of the event start (identifies the press).
    pub timestamp: u32,
    /// False when the end packets were lost and the digit was closed by a
    /// following event or by the timeout.
    pub ended: bool,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    timestamp: u32,
    event: u8,
    duration: u16,
    last_seen: Instant,
}

/// Turns telephone-event packets into one [`DtmfDigit`] per key press.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    clock_rate: u32,
    end_timeout: Duration,
    active: Option<Active>,
    /// The last finished press, to drop its retransmitted end packets.
    done: Option<(u32, u8)>,
    /// Start timestamp of the newest press seen.
    newest_start: Option<u32>,
    digits: VecDeque<DtmfDigit>,
}

impl DtmfDetector {
    /// Default time without packets after which an unended press is reported.
    pub const DEFAULT_END_TIMEOUT: Duration = Duration::from_millis(500);

    /// A detector for events with the given RTP clock rate (usually 8000).
    pub fn new(clock_rate: u32) -> Self {
        DtmfDetector {
            clock_rate,
            end_timeout: Self::DEFAULT_END_TIMEOUT,
            active: None,
            done: None,
            newest_start: None,
            digits: VecDeque::with_capacity(4),
        }
    }

    /// Changes the lost-end timeout.
    pub fn with_end_timeout(mut self, timeout: Duration) -> Self {
        self.end_timeout = timeout;
        self
    }

    /// Feeds one telephone-event RTP packet.
    pub fn handle_rtp(&mut self, now: Instant, packet: &RtpPacket<'_>) -> Result<(), DtmfError> {
        let event = TelephoneEvent::parse(packet.payload())?;
        self.handle_event(now, packet.timestamp(), event);
        Ok(())
    }

    /// Feeds one parsed event whose RTP packet had `timestamp`.
    pub fn handle_event(&mut self, now: Instant, timestamp: u32, event: TelephoneEvent) {
        if digit_for_event(event.event).is_none() {
            return;
        }
        if self.done == Some((timestamp, event.event)) {
            return;
        }
        // Presses start at increasing timestamps: anything older than the
        // newest press seen is a late packet of a press already handled.
        if self
            .newest_start
            .is_some_and(|newest| (timestamp.wrapping_sub(newest) as i32) < 0)
        {
            return;
        }
        self.newest_start = Some(timestamp);
        let same_press = self
            .active
            .is_some_and(|a| a.timestamp == timestamp && a.event == event.event);
        if !same_press {
            if let Some(old) = self.active.take() {
                self.finish(old, false);
            }
            self.active = Some(Active {
                timestamp,
                event: event.event,
                duration: event.duration,
                last_seen: now,
            });
        }
        if let Some(active) = self.active.as_mut() {
            active.duration = active.duration.max(event.duration);
            active.last_seen = now;
            if event.end {
                let finished = *active;
                self.active = None;
                self.finish(finished, true);
            }
        }
    }

    fn finish(&mut self, press: Active, ended: bool) {
        self.done = Some((press.timestamp, press.event));
        if let Some(digit) = digit_for_event(press.event) {
            let duration = if self.clock_rate == 0 {
                Duration::ZERO
            } else {
                Duration::from_nanos(
                    u64::from(press.duration) * 1_000_000_000 / u64::from(self.clock_rate),
                )
            };
            self.digits.push_back(DtmfDigit {
                digit,
                duration,
                timestamp: press.timestamp,
                ended,
            });
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.map(|a| a.last_seen + self.end_timeout)
    }

    /// Closes a press whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(active) = self.active {
            if now >= active.last_seen + self.end_timeout {
                self.active = None;
                self.finish(active, false);
            }
        }
    }

    /// The next detected digit.
    pub fn poll_digit(&mut self) -> Option<DtmfDigit> {
        self.digits.pop_front()
    }
}

/// One packet from a [`DtmfGenerator`]; every packet of a press carries the
/// same RTP timestamp (the event start), one packet per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedEvent {
    /// RTP marker bit: set on the first packet only.
    pub marker: bool,
    pub event: TelephoneEvent,
}

/// Produces the packet sequence of one key press: a first packet with the
/// marker, updates every interval, then three end packets (RFC 4733 §2.5.1).
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    event: u8,
    volume: u8,
    total: u16,
    step: u16,
    sent_duration: u16,
    started: bool,
    ends_left: u8,
}

impl DtmfGenerator {
    /// End packets sent per press (§2.5.1.4).
    pub const END_PACKETS: u8 = 3;

    /// A press of `digit` lasting `duration` timestamp units, one packet every
    /// `interval` units (160 = 20 ms at 8000 Hz), volume 10 (−10 dBm0).
    pub fn new(digit: char, duration: u16, interval: u16) -> Result<Self, DtmfError> {
        let event = event_for_digit(digit).ok_or(DtmfError::UnknownDigit { digit })?;
        if duration == 0 || interval == 0 {
            return Err(DtmfError::ZeroDuration);
        }
        Ok(DtmfGenerator {
            event,
            volume: 10,
            total: duration,
            step: interval,
            sent_duration: 0,
            started: false,
            ends_left: Self::END_PACKETS,
        })
    }

    /// Sets the volume (0..=63, −dBm0).
    pub fn with_volume(mut self, volume: u8) -> Result<Self, DtmfError> {
        if volume > 63 {
            return Err(DtmfError::InvalidVolume { volume });
        }
        self.volume = volume;
        Ok(self)
    }
}

impl Iterator for DtmfGenerator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        let marker = !self.started;
        let (duration, end) = if !self.started || self.sent_duration < self.total {
            let next = if self.started {
                self.sent_duration.saturating_add(self.step)
            } else {
                self.step
            };
            self.started = true;
            let next = next.min(self.total);
            if next < self.total || marker {
                self.sent_duration = next;
                (next, false)
            } else {
                self.sent_duration = self.total;
                self.ends_left = self.ends_left.saturating_sub(1);
                (self.total, true)
            }
        } else if self.ends_left > 0 {
            self.ends_left -= 1;
            (self.total, true)
        } else {
            return None;
        };
        Some(GeneratedEvent {
            marker,
            event: TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                duration,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn payload_round_trips_through_bytes() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 63,
            duration: 0xABCD,
        };
        assert_eq!(e.to_bytes(), [11, 0xBF, 0xAB, 0xCD]);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::TooShort { len: 3 })
        );
    }

    #[test]
    fn digits_and_event_codes_map_both_ways() {
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(event_for_digit(c), Some(i as u8));
            assert_eq!(digit_for_event(i as u8), Some(c));
        }
        assert_eq!(event_for_digit('x'), None);
        assert_eq!(digit_for_event(16), None);
    }

    #[test]
    fn a_press_with_three_end_packets_yields_one_digit() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::new(8000);
        for (i, e) in [
            ev(5, false, 160),
            ev(5, false, 320),
            ev(5, false, 480),
            ev(5, true, 800),
            ev(5, true, 800),
            ev(5, true, 800),
        ]
        .into_iter()
        .enumerate()
        {
            d.handle_event(t0 + Duration::from_millis(20 * i as u64), 1234, e);
        }
        assert_eq!(
            d.poll_digit(),
            Some(DtmfDigit {
                digit: '5',
                duration: Duration::from_millis(100),
                timestamp: 1234,
                ended: true
            })
        );
        assert_eq!(d.poll_digit(), None);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn the_same_digit_pressed_twice_is_reported_twice() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::new(8000);
        for ts in [1000u32, 5000] {
            d.handle_event(t0, ts, ev(1, false, 160));
            d.handle_event(t0, ts, ev(1, true, 400));
            d.handle_event(t0, ts, ev(1, true, 400));
        }
        assert_eq!(d.poll_digit().map(|x| x.timestamp), Some(1000));
        assert_eq!(d.poll_digit().map(|x| x.timestamp), Some(5000));
        assert_eq!(d.poll_digit(), None);
    }

    #[test]
    fn a_press_whose_end_was_lost_is_closed_by_the_next_press() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::new(8000);
        d.handle_event(t0, 100, ev(2, false, 320));
        d.handle_event(t0, 900, ev(3, true, 480));
        let first = d.poll_digit().unwrap();
        assert_eq!((first.digit, first.ended), ('2', false));
        assert_eq!(first.duration, Duration::from_millis(40));
        assert_eq!(d.poll_digit().map(|x| x.digit), Some('3'));
        // A late end of the first press does not report it again.
        d.handle_event(t0, 100, ev(2, true, 400));
        assert_eq!(d.poll_digit(), None);
    }

    #[test]
    fn a_press_whose_end_was_lost_is_closed_by_the_timeout() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::new(8000);
        d.handle_event(t0, 100, ev(10, false, 160));
        let deadline = d.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + DtmfDetector::DEFAULT_END_TIMEOUT);
        d.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(d.poll_digit(), None);
        d.handle_timeout(deadline);
        assert_eq!(
            d.poll_digit().map(|x| (x.digit, x.ended)),
            Some(('*', false))
        );
    }

    #[test]
    fn an_end_packet_alone_still_yields_the_digit() {
        let mut d = DtmfDetector::new(8000);
        d.handle_event(Instant::now(), 7, ev(0, true, 800));
        assert_eq!(d.poll_digit().map(|x| x.digit), Some('0'));
    }

    #[test]
    fn non_dtmf_events_are_ignored() {
        let mut d = DtmfDetector::new(8000);
        d.handle_event(Instant::now(), 7, ev(16, true, 800));
        assert_eq!(d.poll_digit(), None);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn generator_sends_marker_updates_and_three_ends() {
        let packets: Vec<_> = DtmfGenerator::new('#', 800, 160).unwrap().collect();
        let summary: Vec<_> = packets
            .iter()
            .map(|p| (p.marker, p.event.end, p.event.duration))
            .collect();
        assert_eq!(
            summary,
            vec![
                (true, false, 160),
                (false, false, 320),
                (false, false, 480),
                (false, false, 640),
                (false, true, 800),
                (false, true, 800),
                (false, true, 800),
            ]
        );
        assert!(packets
            .iter()
            .all(|p| p.event.event == 11 && p.event.volume == 10));
    }

    #[test]
    fn a_press_shorter_than_one_interval_still_starts_with_a_marker() {
        let summary: Vec<_> = DtmfGenerator::new('1', 100, 160)
            .unwrap()
            .map(|p| (p.marker, p.event.end, p.event.duration))
            .collect();
        assert_eq!(
            summary,
            vec![
                (true, false, 100),
                (false, true, 100),
                (false, true, 100),
                (false, true, 100)
            ]
        );
    }

    #[test]
    fn generator_output_is_detected_as_one_digit() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::new(8000);
        for (i, p) in DtmfGenerator::new('9', 1000, 160).unwrap().enumerate() {
            d.handle_event(t0 + Duration::from_millis(20 * i as u64), 4242, p.event);
        }
        let digit = d.poll_digit().unwrap();
        assert_eq!(
            (digit.digit, digit.duration, digit.ended),
            ('9', Duration::from_millis(125), true)
        );
        assert_eq!(d.poll_digit(), None);
    }

    #[test]
    fn generator_rejects_bad_arguments() {
        assert_eq!(
            DtmfGenerator::new('x', 800, 160).err(),
            Some(DtmfError::UnknownDigit { digit: 'x' })
        );
        assert_eq!(
            DtmfGenerator::new('1', 0, 160).err(),
            Some(DtmfError::ZeroDuration)
        );
        assert!(DtmfGenerator::new('1', 800, 160)
            .unwrap()
            .with_volume(64)
            .is_err());
    }
}
