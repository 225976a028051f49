//! DTMF modes per leg and digits across a bridge (issue 13).
//!
//! Owns each leg's [`DtmfMode`] (from `dtmf_mode` of the user or trunk the
//! leg belongs to): whether its SDP offers or accepts telephone-event
//! ([`DtmfMode::negotiates_telephone_event`]: `rfc4733` and `auto` do,
//! `info` and `inband` do not, as Asterisk), the `SetDtmfMode` the media
//! plane gets when the leg's media opens (only for a mode other than the
//! default `rfc4733`, which the media plane assumes), and the switch's
//! part of a digit crossing a bridge. Does not own the INFO body format
//! ([`super::dtmf_info`]) nor what the media plane does itself.
//!
//! A digit from leg X (an INFO on X's dialog, or `MediaEvent::Dtmf` of any
//! source) while X is bridged to Y:
//!
//! - Y's mode is `info`: a SIP INFO (`application/dtmf-relay`,
//!   `Signal=5\r\nDuration=160\r\n`) on Y's dialog. INFOs go out in order,
//!   one at a time: the next waits for the previous one's final response
//!   (or its timeout), so a peer never sees digits reordered.
//! - else, the digit came by INFO: `MediaCommand::SendDtmf` on Y (the
//!   media plane sends it in Y's mode: RFC 4733 events or tones).
//! - else (RFC 4733 or in-band to a non-`info` leg): nothing here; the
//!   media plane converts it itself (see `carillon-mediactl`'s module doc).
//!
//! ```text
//!  digit on X ─► Y info?  ── yes ─► queue ─► INFO ─► 2xx/4xx/timeout ─► next INFO
//!                   │ no
//!                   └─► came by INFO? ── yes ─► SendDtmf{Y}
//!                                       no ─► (media plane converts)
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_mediactl::{DtmfMode, LegId, MediaCommand, SessionId};
use carillon_sip::Method;
use tracing::{debug, info};

use super::{dtmf_info, Caller, DigitSource};
use crate::switch::Switch;

/// The duration given to a digit that arrived without one (an
/// `application/dtmf` INFO): 160 ms, a usual key press.
pub const DEFAULT_DIGIT_DURATION: Duration = Duration::from_millis(160);

/// Digits waiting to go out as SIP INFO on one leg, one INFO at a time.
#[derive(Debug, Clone, Default)]
pub(super) struct InfoSender {
    queue: VecDeque<(char, Duration)>,
    /// An INFO of this leg awaits its final response.
    in_flight: bool,
}

impl Switch {
    /// The DTMF mode of user `name` (`rfc4733` for an unknown one).
    pub(super) fn dtmf_mode_of_user(&self, name: &str) -> DtmfMode {
        self.users
            .get(name)
            .map(|u| u.dtmf_mode)
            .unwrap_or_default()
    }

    /// The DTMF mode of trunk `name` (`rfc4733` for an unknown one).
    pub(super) fn dtmf_mode_of_trunk(&self, name: &str) -> DtmfMode {
        self.trunks
            .as_ref()
            .and_then(|t| t.set().get(name))
            .map(|t| t.dtmf_mode)
            .unwrap_or_default()
    }

    /// The DTMF mode of the caller's leg.
    pub(super) fn dtmf_mode_of_caller(&self, caller: &Caller) -> DtmfMode {
        match caller {
            Caller::User(u) => self.dtmf_mode_of_user(u),
            Caller::Trunk(t) => self.dtmf_mode_of_trunk(t),
        }
    }

    /// Tells the media plane the mode of a leg whose media just opened,
    /// unless it is the default (RFC 4733) it assumes.
    pub(super) fn media_dtmf_mode(&mut self, session: SessionId, leg: LegId, mode: DtmfMode) {
        if mode != DtmfMode::default() {
            self.media(MediaCommand::SetDtmfMode { session, leg, mode });
        }
    }

    /// A digit from leg `from` of call `key` crosses to the leg it is
    /// bridged to, in that leg's form (see the module doc).
    pub(super) fn relay_digit(
        &mut self,
        now: Instant,
        key: u64,
        from: LegId,
        digit: char,
        duration: Option<Duration>,
        source: DigitSource,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(bridged) = call.bridged() else {
            return;
        };
        let to = if from == call.a.id {
            bridged
        } else if from == bridged {
            call.a.id
        } else {
            return;
        };
        let session = call.session;
        let Some(leg) = call.channel_mut(to) else {
            return;
        };
        if leg.state.is_ended() {
            return;
        }
        let duration = duration
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_DIGIT_DURATION);
        if leg.dtmf_mode == DtmfMode::Info {
            leg.info_out.queue.push_back((digit, duration));
            let busy = leg.info_out.in_flight;
            debug!(call = key, leg = to.0, digit = %digit, waiting = busy, "DTMF digit queued for INFO");
            if !busy {
                self.send_next_info(now, key, to);
            }
        } else if source == DigitSource::SipInfo {
            self.media(MediaCommand::SendDtmf {
                session,
                leg: to,
                digit,
                duration,
            });
        }
    }

    /// The final response (or the timeout) of a DTMF INFO on leg
    /// `leg_id`: the next queued digit goes out.
    pub(super) fn info_answered(&mut self, now: Instant, key: u64, leg_id: LegId, status: u16) {
        let Some(leg) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.channel_mut(leg_id))
        else {
            return;
        };
        if !leg.info_out.in_flight {
            return;
        }
        leg.info_out.in_flight = false;
        if !(200..300).contains(&status) {
            info!(call = key, leg = leg_id.0, status, "DTMF INFO refused");
        }
        self.send_next_info(now, key, leg_id);
    }

    /// Sends the first queued digit of leg `leg_id` as INFO, if any and
    /// none is awaiting its response.
    fn send_next_info(&mut self, now: Instant, key: u64, leg_id: LegId) {
        let Some(leg) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.channel_mut(leg_id))
        else {
            return;
        };
        if leg.info_out.in_flight || leg.state.is_ended() {
            return;
        }
        let Some((digit, duration)) = leg.info_out.queue.pop_front() else {
            return;
        };
        leg.info_out.in_flight = true;
        let mut snapshot = leg.clone();
        let body = dtmf_info::relay_body(digit, duration);
        info!(call = key, leg = leg_id.0, digit = %digit, "DTMF digit sent by INFO");
        self.send_in_dialog_typed(
            now,
            key,
            &mut snapshot,
            Method::Info,
            Vec::new(),
            Some((dtmf_info::RELAY_TYPE, Bytes::from(body))),
        );
        if let Some(l) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.channel_mut(leg_id))
        {
            l.local_cseq = snapshot.local_cseq;
        }
    }
}
