//! The engine's side of the mixer ([`crate::mixer`]): the mix commands,
//! what the relay path does with a packet from or towards a member, the
//! rounds on the worker's tick, and a member's output hand-over.
//!
//! Owns the rules between a mix and the rest of the leg's media:
//! * while a leg is a member its received audio feeds the mix (after the
//!   taps: recordings and in-band detection still see it) and is not
//!   relayed to its bridged leg; RFC 4733 events are reported as `Dtmf`
//!   (by the relay path, before this hook) and neither mixed nor relayed;
//! * what its bridged leg sends towards it is dropped
//!   (`replaced_by_mixer`): its output is the mix;
//! * joining takes both directions of its bridge out of the kernel (a
//!   mixed flow is never offloaded; nothing relayed means nothing is
//!   offered again while it is a member);
//! * joining and leaving forget the sources of the leg's output rewriter,
//!   so the far end sees one continuous stream (marker bit at each
//!   hand-over), and leaving lets the relay (if bridged) resume;
//! * a member closing (`CloseLeg`, `CloseSession`) leaves its mix.
//!
//! Members are legs of any session of this worker; a leg on another
//! worker is refused as unknown (the mix lives on one worker).

use super::*;
use crate::mixer::MixRecordError;
use carillon_mediactl::{MixId, MixRole, RecordingEnd, RecordingId};

impl MediaEngine {
    /// The mix commands (any other command: nothing).
    pub(super) fn handle_mix_command(
        &mut self,
        now: Instant,
        command: MediaCommand,
    ) -> Result<(), CommandError> {
        match command {
            MediaCommand::CreateMix { session, mix } => {
                self.mixer.create(session, mix).map_err(Into::into)
            }
            MediaCommand::DestroyMix { session, mix } => self
                .mixer
                .destroy(now, session, mix, &mut self.events)
                .map(|slots| {
                    for slot in slots {
                        self.left_mix(slot);
                    }
                })
                .map_err(Into::into),
            MediaCommand::AddToMix {
                session,
                mix,
                leg,
                role,
            } => self.add_to_mix(now, session, mix, leg, role),
            MediaCommand::SetMixRole {
                session,
                mix,
                leg,
                role,
            } => self
                .mixer
                .set_role(session, mix, leg, role)
                .map_err(Into::into),
            MediaCommand::SetMixVolume {
                session,
                mix,
                leg,
                talk,
                listen,
            } => self
                .mixer
                .set_volume(session, mix, leg, talk, listen)
                .map_err(Into::into),
            MediaCommand::RemoveFromMix { session, mix, leg } => self
                .mixer
                .remove(now, session, mix, leg)
                .map(|slot| self.left_mix(slot))
                .map_err(Into::into),
            MediaCommand::RecordMixer {
                session,
                recording,
                mix,
                path,
                max_duration,
            } => self.record_mixer(now, session, recording, mix, &path, max_duration),
            _ => Ok(()),
        }
    }

    /// `RecordMixer`: a refused start is also reported as `RecordingDone
    /// { Failed }` when the file could not be made (as for leg recordings).
    fn record_mixer(
        &mut self,
        now: Instant,
        session: SessionId,
        recording: RecordingId,
        mix: MixId,
        path: &std::path::Path,
        max_duration: Option<std::time::Duration>,
    ) -> Result<(), CommandError> {
        let options = self.recorders.options();
        match self
            .mixer
            .start_recording(now, session, mix, recording, path, max_duration, options)
        {
            Ok(()) => Ok(()),
            Err(MixRecordError::Mix(e)) => Err(e.into()),
            Err(MixRecordError::Failed(reason)) => {
                self.events.push_back(MediaEvent::RecordingDone {
                    session,
                    recording,
                    path: path.to_path_buf(),
                    end: RecordingEnd::Failed(reason.clone()),
                    duration_ms: 0,
                    frames_lost: 0,
                });
                Err(CommandError::Record { reason })
            }
        }
    }

    /// `StopRecord` of a mix recording: true when it was one.
    pub(super) fn stop_mix_recording(
        &mut self,
        now: Instant,
        session: SessionId,
        recording: RecordingId,
    ) -> bool {
        match self.mixer.stop_recording(now, session, recording) {
            Some(event) => {
                self.events.push_back(event);
                true
            }
            None => false,
        }
    }

    fn add_to_mix(
        &mut self,
        now: Instant,
        session: SessionId,
        mix: MixId,
        leg: LegId,
        role: MixRole,
    ) -> Result<(), CommandError> {
        let slot = *self
            .by_id
            .get(&leg)
            .ok_or(CommandError::UnknownLeg { leg })?;
        if self
            .legs
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(Leg::media)
            .is_none()
        {
            return Err(CommandError::UnknownLeg { leg });
        }
        let random = self.next_random();
        self.mixer.add(now, session, mix, leg, slot, role, random)?;
        // Neither direction of its bridge may stay in the kernel.
        self.invalidate_offload_pair(slot);
        if let Some(media) = self.leg_mut(slot).and_then(Leg::media_mut) {
            media.rewriter.forget_sources();
        }
        Ok(())
    }

    /// The leg in `slot` left its mix: its earlier output resumes as a
    /// continuation of the stream.
    fn left_mix(&mut self, slot: usize) {
        if let Some(media) = self.leg_mut(slot).and_then(Leg::media_mut) {
            media.rewriter.forget_sources();
        }
    }

    /// The relay path's hook, for an accepted packet from `slot` (bridged
    /// to `peer`): true when the mixer took it (a member's audio, a
    /// member's event) or it was heading to a member (dropped). Out of
    /// line: the relay path of non-members pays only the `is_empty` check.
    #[inline(never)]
    pub(super) fn mix_packet(
        &mut self,
        slot: usize,
        peer: Option<usize>,
        audio: bool,
        payload: &[u8],
    ) -> bool {
        if self.mixer.mix_of(slot).is_some() {
            if audio {
                if let Some(leg) = self.legs.get(slot).and_then(Option::as_ref) {
                    self.mixer.feed(slot, codec_of(leg.params.codec), payload);
                }
                self.counters.mixed += 1;
            }
            return true;
        }
        if peer.is_some_and(|p| self.mixer.mix_of(p).is_some()) {
            self.counters.replaced_by_mixer += 1;
            return true;
        }
        false
    }

    /// Runs the mixing rounds due by `now`.
    pub(super) fn tick_mixes(&mut self, now: Instant) {
        if self.mixer.next_due().is_some_and(|t| t <= now) {
            self.mixer.tick(
                now,
                &mut self.legs,
                &mut self.playout.generated,
                &mut self.events,
            );
        }
    }

    /// A leg is closing: it leaves its mix.
    pub(super) fn close_in_mix(&mut self, slot: usize) {
        if !self.mixer.is_empty() {
            self.mixer.forget_slot(slot);
        }
    }

    /// The mixer, for inspection.
    pub fn mixer(&self) -> &crate::mixer::Mixer {
        &self.mixer
    }
}

#[cfg(test)]
mod tests;
