//! Dialog requests: what arrives inside a channel's dialog.
//!
//! Owns CANCEL of the caller's INVITE (RFC 3261 §9.2), the ACK of its
//! 2xx, BYE (hangup, handed to [`teardown`]), INFO (DTMF bodies, 415/400
//! for others; see [`dtmf_info`]), PRACK, re-INVITE and UPDATE (session
//! refreshes and re-offers: hold, codec changes, forwarded to the bridged
//! party) and the digits that reach the switch on a channel.

use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_mediactl::{LegId, MediaCommand};
use carillon_sdp::{AnswerPolicy, CodecName, SessionDescription};
use carillon_sip::{HeaderName, Message, Method};
use tracing::info;

use super::model::CallState;
use super::{dtmf_info, hold, leg_params, session_timer, DigitSource, LegRef};
use crate::endpoint::Peer;
use crate::switch::Switch;

impl Switch {
    /// CANCEL for a pending INVITE from A (RFC 3261 §9.2).
    pub(crate) fn handle_cancel(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
    ) -> u16 {
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        let found = self.calls.by_call_id.get(&call_id).copied();
        let Some(r) = found else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        self.respond(now, key, msg, peer, 200, |b| b);
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return 200;
        };
        if call.a.id != r.leg || call.inbound.answered {
            return 200; // too late: the 200 already went (CANCEL/200 race)
        }
        call.cancelled = true;
        self.execution_caller_gone(now, r.call);
        info!(call = r.call, "caller cancelled");
        self.respond_a(now, r.call, 487, false);
        if let Some(call) = self.calls.calls.get_mut(&r.call) {
            call.state = CallState::Ended;
            call.hangup_cause = 16;
            let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
            for f in forks {
                self.cancel_fork(now, r.call, f);
            }
        }
        self.finish_call(now_ms, r.call);
        200
    }

    /// ACK for our 2xx on leg A.
    pub(crate) fn handle_dialog_ack(&mut self, now: Instant, msg: &Message) -> bool {
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        let Some(r) = self.calls.by_call_id.get(&call_id).copied() else {
            return false;
        };
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        if let Some(t) = call.inbound.ok_2xx.as_mut() {
            t.handle_ack(now);
        }
        true
    }

    /// BYE, re-INVITE, UPDATE, INFO… inside a dialog.
    pub(crate) fn handle_in_dialog(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
    ) -> u16 {
        let call_id = msg.call_id().unwrap_or_default().into_owned();
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        let Some(r) = self.calls.by_call_id.get(&call_id).copied() else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        match method {
            Method::Bye => {
                self.respond(now, key, msg, peer, 200, |b| b);
                self.hangup_from(now, now_ms, r);
                200
            }
            Method::Invite | Method::Update => self.handle_reoffer(now, key, peer, msg, r),
            Method::Prack => self.handle_prack(now, now_ms, key, peer, msg, r),
            Method::Info => self.handle_info(now, key, peer, msg, r),
            Method::Refer => self.handle_refer(now, now_ms, key, peer, msg, r),
            Method::Options => {
                self.respond(now, key, msg, peer, 200, |b| {
                    b.header("Allow", carillon_sip::validate::ALLOW)
                        .header("Accept", "application/sdp")
                        .header("Supported", carillon_sip::validate::SUPPORTED)
                });
                200
            }
            // A CANCEL with a To tag (of a re-INVITE): the re-INVITE is
            // answered at once, so there is nothing left to cancel.
            Method::Cancel => {
                self.respond(now, key, msg, peer, 200, |b| b);
                200
            }
            // Validation refuses every other method before a dialog is
            // looked up; should one get here, it is still not handled.
            _ => {
                self.respond(now, key, msg, peer, 501, |b| {
                    b.header("Allow", carillon_sip::validate::ALLOW)
                });
                501
            }
        }
    }

    /// INFO in a dialog: a DTMF digit (`application/dtmf-relay` or
    /// `application/dtmf`) is answered 200 and goes on as a digit of the
    /// leg that sent it; another body type gets 415 with `Accept`, a
    /// malformed body 400. An INFO without a body (some phones' keep-alive)
    /// gets 200 and carries nothing.
    pub(super) fn handle_info(
        &mut self,
        now: Instant,
        key: &str,
        peer: Peer,
        msg: &Message,
        r: LegRef,
    ) -> u16 {
        if msg.body().is_empty() {
            self.respond(now, key, msg, peer, 200, |b| b);
            return 200;
        }
        let content_type = msg.header_str(HeaderName::ContentType).unwrap_or_default();
        let encoded = msg
            .header_str(HeaderName::ContentEncoding)
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let parsed = if encoded {
            Err(dtmf_info::DtmfInfoError::MediaType(content_type.to_owned()))
        } else {
            dtmf_info::parse(content_type, msg.body())
        };
        match parsed {
            Ok(d) => {
                self.respond(now, key, msg, peer, 200, |b| b);
                self.digit_received(r.call, r.leg, d.digit, d.duration, DigitSource::SipInfo);
                self.relay_digit(
                    now,
                    r.call,
                    r.leg,
                    d.digit,
                    d.duration,
                    DigitSource::SipInfo,
                );
                200
            }
            Err(e) => {
                let status = e.status();
                info!(call = r.call, leg = r.leg.0, status, error = %e, "INFO refused");
                self.respond(now, key, msg, peer, status, |b| {
                    if status == 415 {
                        b.header("Accept", dtmf_info::ACCEPT)
                    } else {
                        b.reason(e.to_string())
                    }
                });
                status
            }
        }
    }

    /// One DTMF digit from a leg of a call, however it came (RFC 4733
    /// telephone-event from the media plane, or a SIP INFO): the one place
    /// digits enter call logic. Today it is counted and logged; the IVR
    /// applications will read digits from here.
    pub(crate) fn digit_received(
        &mut self,
        key: u64,
        leg: LegId,
        digit: char,
        duration: Option<Duration>,
        source: DigitSource,
    ) {
        self.stats.dtmf_digits += 1;
        let duration_ms = duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.emit_dtmf(key, leg, digit, duration_ms, source);
        info!(
            call = key,
            leg = leg.0,
            digit = %digit,
            duration_ms = duration.map_or(0, |d| d.as_millis()),
            source = source.as_str(),
            "DTMF digit"
        );
        self.digit_to_execution(key, leg, digit);
    }

    /// re-INVITE/UPDATE with an offer (hold, resume, session refresh): we
    /// answer it ourselves and update that leg's media; the other leg is
    /// not disturbed (the media plane stops sending towards a held party).
    pub(super) fn handle_reoffer(
        &mut self,
        now: Instant,
        key: &str,
        peer: Peer,
        msg: &Message,
        r: LegRef,
    ) -> u16 {
        let media_ip = self.calls.config.media_ip;
        // A refresh may renegotiate the session timer (RFC 4028 §9).
        let negotiation = session_timer::negotiate_uas(msg);
        if let session_timer::UasNegotiation::TooSmall { min_se } = negotiation {
            self.respond(now, key, msg, peer, 422, |b| {
                b.header("Min-SE", min_se.to_string())
            });
            return 422;
        }
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        let session = call.session;
        let leg = if call.a.id == r.leg {
            Some(&mut call.a)
        } else {
            call.forks.iter_mut().find(|l| l.id == r.leg)
        };
        let Some(leg) = leg else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        let mut body = None;
        let mut params = None;
        let mut holds = None;
        if !msg.body().is_empty() {
            let allowed: Vec<CodecName> = leg
                .plan
                .as_ref()
                .map(|p| vec![p.codec.clone()])
                .unwrap_or_default();
            let version = leg
                .local_sdp
                .as_ref()
                .map_or(2, |s| s.origin.session_version + 1);
            let sid = leg
                .local_sdp
                .as_ref()
                .map_or(1, |s| s.origin.session_id.parse::<u64>().unwrap_or(1));
            let policy = AnswerPolicy {
                allowed,
                prefer_offerer_order: false,
                local_address: media_ip,
                local_port: leg.media_port,
                telephone_event: leg.dtmf_mode.negotiates_telephone_event(),
                ptime: Some(20),
                session_id: sid,
                session_version: version,
                username: "carillon".into(),
            };
            match SessionDescription::parse(msg.body())
                .map_err(|_| ())
                .and_then(|o| carillon_sdp::answer(&o, &policy).map_err(|_| ()))
            {
                Ok((ans, plan)) => {
                    info!(call = r.call, direction = ?plan.direction, "re-offer on a leg (hold/resume/refresh)");
                    params = leg_params(&plan);
                    holds = Some(hold::is_hold(&plan));
                    leg.plan = Some(plan);
                    body = Some(Bytes::from(ans.to_bytes()));
                    leg.local_sdp = Some(ans);
                }
                Err(()) => {
                    self.respond(now, key, msg, peer, 488, |b| b);
                    return 488;
                }
            }
        } else if let (Some(s), Some(Method::Invite)) = (&leg.local_sdp, msg.method()) {
            // A re-INVITE without an offer gets ours; an UPDATE without
            // one (a session refresh) gets no SDP (RFC 3311 §5.2).
            body = Some(Bytes::from(s.to_bytes()));
        }
        let leg_id = leg.id;
        if let Some(p) = params {
            self.media(MediaCommand::UpdateLeg {
                session,
                leg: leg_id,
                params: p,
            });
        }
        if let Some(holds) = holds {
            self.hold_reoffered(r.call, leg_id, holds);
        }
        let contact = self.calls.contact_for(peer.transport).to_owned();
        // Any refresh from the peer restarts the leg's session timer.
        let (se, renegotiated) = match negotiation {
            session_timer::UasNegotiation::Accepted {
                se,
                require_timer,
                we_refresh,
            } => (
                Some((se.header_value(), require_timer)),
                Some((se.interval, we_refresh)),
            ),
            _ => (None, None),
        };
        let side = if self
            .calls
            .calls
            .get(&r.call)
            .is_some_and(|c| c.a.id == leg_id)
        {
            session_timer::Side::A
        } else {
            session_timer::Side::B(leg_id)
        };
        self.arm_session_timer(now, r.call, side, renegotiated);
        self.respond(now, key, msg, peer, 200, |mut b| {
            b = b.header("Contact", contact);
            if let Some((se, require_timer)) = se {
                b = b.header("Session-Expires", se);
                if require_timer {
                    b = b.header("Require", "timer");
                }
            }
            match body {
                Some(sdp) => b.body("application/sdp", sdp),
                None => b,
            }
        });
        200
    }
}
