//! Hold and music on hold: a phone in a bridged call that re-offers
//! `sendonly` or `inactive` (or the RFC 2543 `c=0.0.0.0`) puts the other
//! party of the bridge on hold; the switch then plays music on hold to
//! that party (`Play` of [`PlayItem::Moh`], class [`DEFAULT_MOH_CLASS`]),
//! which replaces what the bridge relays to it. A later re-offer
//! `sendrecv` or `recvonly` resumes: `StopPlay`, and the relay carries
//! the phone's audio again. Emits `hold` and `unhold` switch events.
//!
//! ```text
//!  Bridged ──re-offer sendonly/inactive from X──► Held{by X, MoH to Y}
//!  Held ──re-offer sendrecv/recvonly from X──────► Bridged (StopPlay Y)
//!  Held ──bridge ends (X or Y leaves)────────────► no hold (MoH stopped)
//! ```
//!
//! One hold per call at a time: while X holds, a hold from Y too keeps Y
//! hearing music (it is already), and only X's resume stops it. Owns the
//! per-call hold state and the decision; the SDP answer to the re-offer
//! and the leg's own direction update stay in `calls.rs`
//! (`handle_reoffer`); playing the class is the media plane's.

use carillon_mediactl::{LegId, MediaCommand, PlayItem, PlaybackId};
use carillon_sdp::{Direction, MediaPlan};
use tracing::info;

use super::Call;
use crate::switch::Switch;

/// The music-on-hold class played to a held party.
pub const DEFAULT_MOH_CLASS: &str = "default";

/// Whether a call's bridge is on hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Hold {
    #[default]
    Off,
    /// Leg `by` put `listener` on hold; `listener` hears `playback`.
    Held {
        by: LegId,
        listener: LegId,
        playback: PlaybackId,
    },
}

/// Whether a re-offer negotiated as `plan` (the switch's side of it) puts
/// the offering phone's peer on hold: the phone will not receive
/// (`sendonly` or `inactive` offered, so we answer `recvonly` or
/// `inactive`), or it gave no address (RFC 2543 hold, `c=0.0.0.0`).
pub(super) fn is_hold(plan: &MediaPlan) -> bool {
    matches!(plan.direction, Direction::RecvOnly | Direction::Inactive) || plan.remote.is_none()
}

/// The party bridged to `leg` in `call`, if `leg` is in its bridge.
fn bridged_peer(call: &Call, leg: LegId) -> Option<LegId> {
    let bridge = call.bridge.as_ref().filter(|b| b.has(leg))?;
    bridge.other_party(leg)
}

impl Switch {
    /// After leg `leg` of call `key` re-offered with `hold` (see
    /// [`is_hold`]): starts music on hold for its bridged party, or stops
    /// it when the leg that held resumes. A re-offer outside a bridge, or
    /// one that does not change the hold, does nothing.
    pub(super) fn hold_reoffered(&mut self, key: u64, leg: LegId, hold: bool) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let session = call.session;
        match (&call.hold, hold) {
            (Hold::Off, true) => {
                let Some(listener) = bridged_peer(call, leg) else {
                    return;
                };
                let Some(call) = self.calls.calls.get_mut(&key) else {
                    return;
                };
                let playback = call.exec_media.new_playback();
                call.hold = Hold::Held {
                    by: leg,
                    listener,
                    playback,
                };
                info!(
                    call = key,
                    leg = leg.0,
                    listener = listener.0,
                    class = DEFAULT_MOH_CLASS,
                    "hold: music on hold to the other party"
                );
                self.media(MediaCommand::Play {
                    session,
                    leg: listener,
                    playback,
                    items: vec![PlayItem::Moh {
                        class: DEFAULT_MOH_CLASS.to_owned(),
                    }],
                });
                self.emit_hold(key, leg, true);
            }
            (&Hold::Held { by, listener, .. }, false) if by == leg => {
                if let Some(call) = self.calls.calls.get_mut(&key) {
                    call.hold = Hold::Off;
                }
                info!(call = key, leg = leg.0, "resume: music on hold stopped");
                self.media(MediaCommand::StopPlay {
                    session,
                    leg: listener,
                });
                self.emit_hold(key, leg, false);
            }
            _ => {}
        }
    }

    /// The bridge of call `key` ended (its bridged leg `gone` left): a
    /// hold in it ends too, and a listener still in the call stops
    /// hearing music on hold.
    pub(super) fn hold_bridge_ended(&mut self, key: u64, gone: LegId) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Hold::Held { by, listener, .. } = call.hold else {
            return;
        };
        call.hold = Hold::Off;
        let session = call.session;
        if listener != gone {
            self.media(MediaCommand::StopPlay {
                session,
                leg: listener,
            });
        }
        self.emit_hold(key, by, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_sdp::CodecName;

    fn plan(direction: Direction, remote: bool) -> MediaPlan {
        MediaPlan {
            remote: remote.then(|| "127.0.0.1:40000".parse().unwrap()),
            codec: CodecName::Pcmu,
            payload_type: 0,
            clock_rate: 8000,
            ptime_ms: 20,
            telephone_event_pt: None,
            direction,
            rtcp_mux: false,
            remote_rtcp: None,
        }
    }

    #[test]
    fn sendonly_inactive_and_a_zero_address_are_hold_sendrecv_and_recvonly_are_not() {
        // `direction` is the switch's answer: the phone's sendonly is our
        // recvonly, its recvonly our sendonly.
        assert!(is_hold(&plan(Direction::RecvOnly, true)));
        assert!(is_hold(&plan(Direction::Inactive, true)));
        assert!(is_hold(&plan(Direction::SendRecv, false)));
        assert!(!is_hold(&plan(Direction::SendRecv, true)));
        assert!(!is_hold(&plan(Direction::SendOnly, true)));
    }
}
