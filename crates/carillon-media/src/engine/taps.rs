//! The engine's taps: the glue between the relay path and
//! [`crate::record`] (recordings) and [`crate::dtmf_tap`] (in-band DTMF
//! detection, DTMF sending and conversion across a bridge).
//!
//! Owns the `Record`, `StopRecord`, `SetDtmfMode` and `SendDtmf` commands,
//! what the relay path does with a tapped packet, the pacing of digits sent
//! to a leg (their packets join the players' in [`crate::output`]'s queue,
//! drained by [`MediaEngine::drain_generated`]), and the rule
//! that keeps tapped flows out of the kernel: a flow arriving on a leg that
//! is recorded or detected in-band, or heading to a leg a digit is being
//! sent to, is never installed; installing a tap removes it; the next
//! packet relayed after the last tap goes installs it again.
//!
//! DTMF across a bridge (`carillon-mediactl`'s module documentation), for a
//! digit received on A and its bridged leg B:
//!
//! | A sends  | B's mode | B gets                                           |
//! |----------|----------|--------------------------------------------------|
//! | RFC 4733 | RFC 4733 | the events, payload type mapped (as before)      |
//! | RFC 4733 | in-band  | tones; the events are not forwarded              |
//! | in-band  | RFC 4733 | events from the detection of the tone's start to |
//! |          |          | its end; the first ~26 ms of tone (before the    |
//! |          |          | detector is sure) still pass as audio            |
//! | in-band  | in-band  | the audio as it is                               |
//! | any      | INFO     | nothing from the media plane (events dropped)    |
//!
//! While a digit is sent to B (converted or `SendDtmf`), A's audio towards
//! B is muted: the generated stream owns B's output, so sequence numbers
//! never interleave.

use super::*;
use crate::dtmf_tap::{DigitPacket, DtmfSender, InbandDigit, Outgoing, SendError, GENERATOR_SSRC};
use crate::output::{write_generated, GeneratedQueue, GeneratedRtp};
use crate::record::legs_of;
use carillon_mediactl::{DtmfMode, RecordMix, RecordingEnd, RecordingId};
use std::path::Path;
use std::time::Duration;

/// What a received packet asks of the bridged leg's DTMF.
#[derive(Debug, Clone, Copy)]
pub(super) enum Convert {
    /// An RFC 4733 event (start timestamp) is going on or ended.
    Event { digit: char, ts: u32, end: bool },
    /// The in-band detector saw a press begin or end.
    Inband(InbandDigit),
}

impl MediaEngine {
    /// Tuning of the recordings started from now on (the writer channel's
    /// capacity, the wait for a quiet party); the defaults are
    /// `carillon_recorder`'s.
    pub fn set_recorder_options(&mut self, options: carillon_recorder::RecorderOptions) {
        self.recorders.set_options(options);
    }

    /// `Record`: starts a recording tapping the mix's legs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_recording(
        &mut self,
        now: Instant,
        session: SessionId,
        recording: RecordingId,
        mix: RecordMix,
        path: &Path,
        max_silence: Option<Duration>,
        max_duration: Option<Duration>,
    ) -> Result<(), CommandError> {
        let slots = legs_of(mix)
            .into_iter()
            .map(|leg| self.slot_in_session(session, leg))
            .collect::<Result<Vec<_>, _>>()?;
        let started = self.recorders.start(
            now,
            session,
            recording,
            mix,
            path,
            max_silence,
            max_duration,
        );
        if let Err(e) = started {
            let reason = e.to_string();
            if !matches!(e, crate::record::RecordError::Exists { .. }) {
                self.events.push_back(MediaEvent::RecordingDone {
                    session,
                    recording,
                    path: path.to_path_buf(),
                    end: RecordingEnd::Failed(reason.clone()),
                    duration_ms: 0,
                    frames_lost: 0,
                });
            }
            return Err(CommandError::Record { reason });
        }
        for slot in slots {
            // The recorded flow leaves the kernel.
            self.invalidate_offload(slot);
        }
        self.next_timeout = earliest(self.next_timeout, self.recorders.poll_timeout());
        Ok(())
    }

    /// `StopRecord`.
    pub(super) fn stop_recording(
        &mut self,
        now: Instant,
        session: SessionId,
        recording: RecordingId,
    ) -> Result<(), CommandError> {
        let event = self
            .recorders
            .stop(now, session, recording, RecordingEnd::Stopped)
            .ok_or(CommandError::UnknownRecording { recording })?;
        self.events.push_back(event);
        Ok(())
    }

    /// Stops the recordings tapping `leg` (it is closing).
    pub(super) fn stop_recordings_of(&mut self, now: Instant, session: SessionId, leg: LegId) {
        if self.recorders.taps(leg) > 0 {
            let done = self.recorders.stop_leg(now, session, leg);
            self.events.extend(done);
        }
    }

    /// `SetDtmfMode`.
    pub(super) fn set_dtmf_mode(
        &mut self,
        session: SessionId,
        leg: LegId,
        mode: DtmfMode,
    ) -> Result<(), CommandError> {
        let slot = self.slot_in_session(session, leg)?;
        if let Some(l) = self.leg_mut(slot) {
            l.dtmf_tap.set_mode(mode);
        }
        // A detected flow leaves the kernel (re-offered if it is not).
        self.invalidate_offload(slot);
        Ok(())
    }

    /// `SendDtmf`: the digit in the leg's mode.
    pub(super) fn send_dtmf(
        &mut self,
        now: Instant,
        session: SessionId,
        leg: LegId,
        digit: char,
        duration: Duration,
    ) -> Result<(), CommandError> {
        let slot = self.slot_in_session(session, leg)?;
        let Some(l) = self.leg_mut(slot) else {
            return Err(CommandError::UnknownLeg { leg });
        };
        let how = l.dtmf_tap.outgoing(&l.params);
        let sender = DtmfSender::new(now, digit, how, &l.params, Some(duration))
            .map_err(|e| dtmf_error(leg, e))?;
        self.start_sender(now, slot, sender);
        Ok(())
    }

    /// Puts `sender` on the leg in `slot`: the flow towards it leaves the
    /// kernel and its relayed audio is muted until the sender is done.
    fn start_sender(&mut self, now: Instant, slot: usize, sender: DtmfSender) {
        let deadline = sender.poll_timeout();
        let peer = self.leg_mut(slot).and_then(|l| {
            l.dtmf_tap.sender = Some(Box::new(sender));
            l.peer
        });
        if let Some(peer) = peer {
            self.invalidate_offload(peer);
        }
        self.next_timeout = earliest(self.next_timeout, Some(deadline.max(now)));
    }

    /// Whether the kernel must not forward the flow arriving on `slot`
    /// towards `peer_slot`.
    pub(super) fn flow_is_tapped(&self, slot: usize, peer_slot: usize) -> bool {
        let tapped = self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|l| self.recorders.taps(l.id) > 0 || l.dtmf_tap.detects_inband(&l.params));
        let sending = self
            .legs
            .get(peer_slot)
            .and_then(Option::as_ref)
            .is_some_and(|l| l.dtmf_tap.is_sending());
        tapped || sending
    }

    /// The taps of an audio packet received on `slot` (before transcoding):
    /// recordings, then the in-band detector. Digits detected are reported
    /// and returned for conversion towards the bridged leg.
    pub(super) fn tap_audio(
        &mut self,
        now: Instant,
        slot: usize,
        payload: &[u8],
        found: &mut Vec<InbandDigit>,
    ) {
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let codec = codec_of(leg.params.codec);
        if !self.recorders.is_empty() {
            self.recorders.handle_audio(now, leg.id, codec, payload);
        }
        leg.dtmf_tap.detect(&leg.params, codec, payload, found);
        for digit in found.iter() {
            if let InbandDigit::Ended(digit, duration) = *digit {
                self.events.push_back(MediaEvent::Dtmf {
                    session: leg.session,
                    leg: leg.id,
                    digit,
                    duration,
                    source: DtmfSource::Inband,
                });
            }
        }
    }

    /// The taps of a packet received on `slot` (bridged to `peer`): the
    /// audio `payload` through [`Self::tap_audio`], then the digits heard
    /// converted towards the peer. False when the packet must not be
    /// relayed (an event the peer does not take as events). Kept out of
    /// the relay path's common case, which never calls it.
    #[inline(never)]
    pub(super) fn relay_taps(
        &mut self,
        now: Instant,
        slot: usize,
        peer: Option<usize>,
        payload: Option<&[u8]>,
        convert: Option<Convert>,
    ) -> bool {
        let mut inband = Vec::new();
        if let Some(payload) = payload {
            self.tap_audio(now, slot, payload, &mut inband);
        }
        let Some(peer_slot) = peer else {
            return true; // counted as unbridged by the caller
        };
        if let Some(convert) = convert {
            self.convert_dtmf(now, peer_slot, convert);
            if self.event_blocked(peer_slot) {
                self.counters.dtmf_muted += 1;
                return false;
            }
        }
        for digit in inband {
            self.convert_dtmf(now, peer_slot, Convert::Inband(digit));
        }
        true
    }

    /// How a digit reaches the leg in `slot`.
    pub(super) fn outgoing_of(&self, slot: usize) -> Outgoing {
        self.legs
            .get(slot)
            .and_then(Option::as_ref)
            .map_or(Outgoing::None, |l| l.dtmf_tap.outgoing(&l.params))
    }

    /// Whether RFC 4733 events are not relayed to the leg in `slot`: it
    /// takes digits in-band (converted) or by SIP INFO (the switch's).
    pub(super) fn event_blocked(&self, slot: usize) -> bool {
        let info = self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|l| l.dtmf_tap.mode == DtmfMode::Info);
        info || self.outgoing_of(slot) == Outgoing::Inband
    }

    /// A digit from the leg bridged to `peer_slot`, converted to the
    /// peer's mode when that differs from how it came (see the module
    /// documentation); same-kind digits are relayed by the caller.
    pub(super) fn convert_dtmf(&mut self, now: Instant, peer_slot: usize, convert: Convert) {
        let how = self.outgoing_of(peer_slot);
        let Some(peer) = self.leg_mut(peer_slot) else {
            return;
        };
        let sender = &mut peer.dtmf_tap.sender;
        let start = match (convert, how) {
            (Convert::Event { digit, ts, end }, Outgoing::Inband) => match sender {
                Some(s) if s.key == Some(ts) => {
                    s.refresh(now);
                    if end {
                        s.finish(now, None);
                    }
                    None
                }
                _ => Some((digit, Some(ts), end)),
            },
            (Convert::Inband(InbandDigit::Began(digit)), Outgoing::Rfc4733(_)) => {
                Some((digit, None, false))
            }
            (Convert::Inband(InbandDigit::Ended(_, length)), Outgoing::Rfc4733(_)) => {
                if let Some(s) = sender.as_mut().filter(|s| s.key.is_none()) {
                    s.finish(now, Some(length));
                }
                None
            }
            _ => None,
        };
        let Some((digit, key, end)) = start else {
            return;
        };
        let Ok(mut s) = DtmfSender::new(now, digit, how, &peer.params, None) else {
            return;
        };
        s.key = key;
        if end {
            s.finish(now, None);
        }
        self.start_sender(now, peer_slot, s);
    }

    /// Runs the leg's sender at `now`: due packets go through the leg's
    /// output rewriter to `queue`. Returns the sender's next deadline.
    pub(super) fn tick_sender(
        now: Instant,
        leg: &mut Leg,
        queue: &mut GeneratedQueue,
    ) -> Option<Instant> {
        let params = leg.params;
        let local_port = leg.local_port;
        let LegState::Open(media) = &mut leg.state else {
            return None;
        };
        let sender = leg.dtmf_tap.sender.as_mut()?;
        let mut out: Vec<DigitPacket> = Vec::new();
        let done = sender.tick(now, &mut out);
        for p in &out {
            let rtp = GeneratedRtp {
                ssrc: GENERATOR_SSRC,
                seq: p.seq,
                timestamp: p.timestamp,
                marker: p.marker,
                payload_type: Some(p.payload_type),
                payload: &p.payload,
            };
            // On hold (not `send`) the digit advances silently.
            let _ = write_generated(now, &params, local_port, media, rtp, queue);
        }
        if done {
            leg.dtmf_tap.sender = None;
            // The relay continues after the generated packets.
            media.rewriter.forget_sources();
            return None;
        }
        Some(sender.poll_timeout())
    }
}

fn dtmf_error(leg: LegId, e: SendError) -> CommandError {
    match e {
        SendError::UnknownDigit { digit } => CommandError::BadDigit { digit },
        SendError::NotByMedia => CommandError::DtmfNotByMedia { leg },
    }
}

#[cfg(test)]
mod tests;
