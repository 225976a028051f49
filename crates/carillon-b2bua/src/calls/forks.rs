//! Forks: responses on outbound channels, and their end.
//!
//! Owns what a response to an outbound channel's INVITE does: client
//! transaction events, provisionals relayed to the caller (once per
//! change), early media (a callee's 18x with SDP opens and bridges its
//! media and gives the caller a 183 with our SDP), reliable provisionals
//! and 2xx retransmissions, stray 2xx of released forks (ACK + BYE),
//! CANCEL of the forks that lost, a fork's failure (the `Dial`'s status,
//! the caller's failure response when the last fork failed) and the
//! `Dial` returning to the dialplan. A fork that answers is handed to
//! [`bridging`].

use std::time::Instant;

use carillon_dialplan::DialStatus;
use carillon_events::ChannelState;
use carillon_mediactl::{DtmfMode, LegId, MediaCommand};
use carillon_sdp::SessionDescription;
use carillon_sip::{HeaderName, Message, MessageBuilder, Method, ResponseParts};
use carillon_transaction::{ClientEvent, ClientTransaction, TransactionKind};
use tracing::{debug, info};

use super::messages::{ack_from_response, preloaded_routes};
use super::model::{CallState, ChanState, Channel};
use super::{leg_params, via_host, Timer};
use crate::endpoint::{Peer, Transmit};
use crate::header_text::{concat, cseq, via};
use crate::switch::Switch;

pub(super) fn dial_status_of(status: u16) -> DialStatus {
    match status {
        486 | 600 => DialStatus::Busy,
        408 | 480 | 487 => DialStatus::NoAnswer,
        404 | 410 | 484 | 604 => DialStatus::ChanUnavail,
        _ => DialStatus::Congestion,
    }
}

impl Switch {
    /// A response from a peer: match to a client transaction by branch.
    pub(crate) fn handle_response(
        &mut self,
        now: Instant,
        now_ms: u64,
        _peer: Peer,
        msg: &Message,
        parts: &ResponseParts<'_>,
    ) {
        let Some(branch) = parts.top_via.branch() else {
            return;
        };
        let key: std::borrow::Cow<'_, str> = if parts.cseq.method == Method::Cancel {
            concat(&[branch, "|CANCEL"]).into()
        } else {
            branch.into()
        };
        let status = parts.status;
        let to_tag = parts.to.tag();
        let Some(entry) = self.calls.clients.get_mut(key.as_ref()) else {
            debug!(branch = %branch, status, "response matches no transaction; dropped");
            return;
        };
        let (call_key, leg_id, method, refresh, transport) = (
            entry.call,
            entry.leg,
            entry.method.clone(),
            entry.refresh,
            entry.to.transport,
        );
        // ACK for a non-2xx final to INVITE is built here (same branch),
        // with the INVITE's Route header fields (RFC 3261 §17.1.1.3).
        let ack = if method == Method::Invite && status >= 300 {
            let request_uri = entry.request_uri.clone();
            let leg = self
                .calls
                .calls
                .get(&call_key)
                .and_then(|c| c.forks.iter().find(|l| l.id == leg_id));
            let routes: Vec<&str> = leg
                .map(|l| preloaded_routes(l).collect())
                .unwrap_or_default();
            Some(ack_from_response(
                via_host(
                    &self.calls.sip_host,
                    self.calls.tcp_host.as_deref(),
                    transport,
                ),
                &request_uri,
                branch,
                msg,
                &routes,
            ))
        } else {
            None
        };
        let Some(entry) = self.calls.clients.get_mut(key.as_ref()) else {
            return;
        };
        if entry.txn.handle_response(now, status, ack).is_err() {
            return;
        }
        let to = entry.to;
        // The events are gathered in a vector kept for reuse (taken while
        // the handlers below run; one that is still out gets a new one).
        let mut events = std::mem::take(&mut self.calls.client_events);
        events.clear();
        while let Some(b) = entry.txn.poll_transmit() {
            self.scratch.push(Transmit { to, bytes: b });
        }
        while let Some(ev) = entry.txn.poll_event() {
            events.push(ev);
        }
        if let Some(at) = entry.txn.poll_timeout() {
            self.calls
                .deadlines
                .push(at, Timer::Client(key.as_ref().to_owned()));
        }
        if entry.txn.is_terminated() {
            self.calls.clients.remove(key.as_ref());
        }
        if refresh {
            self.refresh_response(now, now_ms, call_key, leg_id, &method, &events, msg);
        } else if method == Method::Invite {
            self.fork_events(now, now_ms, call_key, leg_id, to, &events, msg, to_tag);
        } else if method == Method::Info {
            if let Some(ClientEvent::Final(s)) =
                events.iter().find(|e| matches!(e, ClientEvent::Final(_)))
            {
                self.info_answered(now, call_key, leg_id, *s);
            }
        }
        events.clear();
        self.calls.client_events = events;
    }

    /// What an outbound INVITE's client transaction reported for a
    /// response, acted on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fork_events(
        &mut self,
        now: Instant,
        now_ms: u64,
        call_key: u64,
        leg_id: LegId,
        to: Peer,
        events: &[ClientEvent],
        msg: &Message,
        to_tag: Option<&str>,
    ) {
        for ev in events.iter().copied() {
            match ev {
                ClientEvent::Provisional(s) => {
                    self.fork_provisional(now, call_key, leg_id, s, msg, to_tag)
                }
                ClientEvent::Final(s) if (200..300).contains(&s) => {
                    let live = self
                        .calls
                        .calls
                        .get(&call_key)
                        .is_some_and(|c| c.forks.iter().any(|l| l.id == leg_id));
                    if live {
                        self.fork_answered(now, now_ms, call_key, leg_id, msg, to_tag);
                    } else {
                        self.release_orphan_2xx(now, to, msg);
                    }
                }
                ClientEvent::Retransmitted2xx => self.fork_2xx_again(call_key, leg_id, to_tag),
                ClientEvent::Final(s @ (401 | 407)) => {
                    self.fork_challenged(now, now_ms, call_key, leg_id, s, msg)
                }
                ClientEvent::Final(422) => {
                    self.fork_interval_too_small(now, now_ms, call_key, leg_id, msg)
                }
                ClientEvent::Final(s) => self.fork_failed(now, now_ms, call_key, leg_id, s),
                ClientEvent::TimedOut | ClientEvent::TransportFailed => {
                    self.fork_failed(now, now_ms, call_key, leg_id, 408)
                }
                ClientEvent::Terminated => {}
            }
        }
    }

    /// A 2xx for a fork that no longer exists (CANCEL/200 race, another
    /// fork won, the call ended): ACK it and BYE it (RFC 3261 §9.1, §15).
    pub(super) fn release_orphan_2xx(&mut self, now: Instant, to: Peer, msg: &Message) {
        let target = msg
            .with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
            .unwrap_or_default();
        if target.is_empty() {
            return;
        }
        let ack_branch = self.new_branch();
        self.scratch.push(Transmit {
            to,
            bytes: ack_from_response(
                self.calls.host_for(to.transport),
                &target,
                &ack_branch,
                msg,
                &[],
            ),
        });
        let bye_branch = self.new_branch();
        let seq = msg.cseq().map_or(1, |c| c.seq) + 1;
        let host = self.calls.host_for(to.transport);
        let bye = MessageBuilder::request(&Method::Bye, &target)
            .header("Via", via(to.transport.via_token(), host, &bye_branch))
            .header("Max-Forwards", "70")
            .header(
                "From",
                msg.header(HeaderName::From)
                    .unwrap_or_default()
                    .into_owned(),
            )
            .header(
                "To",
                msg.header(HeaderName::To).unwrap_or_default().into_owned(),
            )
            .header("Call-ID", msg.call_id().unwrap_or_default().into_owned())
            .header("CSeq", cseq(seq, "BYE"))
            .build();
        info!("late 2xx for a released leg: ACK and BYE");
        let txn = ClientTransaction::new(
            TransactionKind::NonInvite,
            to.transport.is_reliable(),
            bye,
            now,
            self.calls.config.timers,
        );
        self.add_client(now, bye_branch, txn, to, 0, LegId(0), Method::Bye);
    }

    pub(super) fn fork_provisional(
        &mut self,
        now: Instant,
        key: u64,
        leg_id: LegId,
        status: u16,
        msg: &Message,
        to_tag: Option<&str>,
    ) {
        // A reliable provisional is PRACKed first; a repeated one is
        // not processed again (RFC 3262 §4).
        if !self.prack_callee(now, key, leg_id, msg) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let mut first_ring = false;
        if let Some(leg) = call.forks.iter_mut().find(|l| l.id == leg_id) {
            if leg.state == ChanState::Calling {
                leg.state = ChanState::Early;
            }
            first_ring = status > 100 && !leg.uac.rang;
            leg.uac.rang |= status > 100;
            if leg.remote_tag.is_none() {
                leg.remote_tag = to_tag.map(str::to_owned);
            }
        }
        if first_ring {
            let state = if (180..183).contains(&status) {
                ChannelState::Ringing
            } else {
                ChannelState::Progress
            };
            self.emit_state(key, leg_id, state);
        }
        if status > 100 && !msg.body().is_empty() && self.fork_early_media(now, key, leg_id, msg) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        // 180 Ringing, 181, 182 and a 183 without SDP (progress, no early
        // media yet) reach A as what they are, once per change of status
        // (several forks ringing give one 180); nothing after early media.
        if (180..=183).contains(&status)
            && call.inbound.provisional_sent != status
            && !call.inbound.early_sent
            && !call.inbound.answered
            && call.state == CallState::Dialing
        {
            call.inbound.provisional_sent = status;
            self.provisional_a(now, key, status, false);
        } else if status > 183
            && call.inbound.provisional_sent == 0
            && !call.inbound.early_sent
            && !call.inbound.answered
            && call.state == CallState::Dialing
        {
            // Other 1xx (RFC 3261 §21.1: treat an unknown one as 183).
            call.inbound.provisional_sent = 183;
            self.provisional_a(now, key, 183, false);
        }
    }

    /// Early media (RFC 3960 gateway model): a callee's 18x with an SDP
    /// answer opens its media leg and bridges it to A, and A gets a 183
    /// with our relay SDP, so carrier ringback and announcements are heard
    /// before the answer. The first fork with early media is the one A
    /// hears. False when the SDP is unusable (the 18x is then relayed like
    /// one without SDP).
    pub(super) fn fork_early_media(
        &mut self,
        now: Instant,
        key: u64,
        leg_id: LegId,
        msg: &Message,
    ) -> bool {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return false;
        };
        if call.inbound.answered || call.state != CallState::Dialing {
            return false;
        }
        let session = call.session;
        let a_id = call.a.id;
        let hear = call.early_leg.is_none_or(|l| l == leg_id);
        let Some(leg) = call.forks.iter_mut().find(|l| l.id == leg_id) else {
            return false;
        };
        let plan = leg.local_sdp.as_ref().and_then(|offer| {
            SessionDescription::parse(msg.body())
                .ok()
                .and_then(|ans| carillon_sdp::apply_answer(offer, &ans).ok())
        });
        let Some(plan) = plan else {
            info!(call = key, "early SDP unusable: ignored");
            return false;
        };
        let params = leg_params(&plan);
        let changed = leg.plan.as_ref().map(leg_params) != Some(params);
        leg.plan = Some(plan);
        if !hear {
            // Another fork's early media is playing; this answer is kept
            // for when (if) this fork answers.
            return true;
        }
        let mut cmds = Vec::new();
        if let Some(params) = params {
            if !leg.media_open {
                cmds.push(MediaCommand::OpenLeg {
                    session,
                    leg: leg_id,
                    local_port: leg.media_port,
                    params,
                });
                if leg.dtmf_mode != DtmfMode::default() {
                    cmds.push(MediaCommand::SetDtmfMode {
                        session,
                        leg: leg_id,
                        mode: leg.dtmf_mode,
                    });
                }
                leg.media_open = true;
            } else if changed {
                cmds.push(MediaCommand::UpdateLeg {
                    session,
                    leg: leg_id,
                    params,
                });
            }
        }
        if call.early_leg.is_none() {
            call.early_leg = Some(leg_id);
            cmds.push(MediaCommand::Bridge {
                session,
                a: a_id,
                b: leg_id,
            });
            info!(
                call = key,
                leg = leg_id.0,
                "early media from the callee bridged"
            );
        }
        let send_183 = !call.inbound.early_sent;
        call.inbound.early_sent = true;
        for c in cmds {
            self.media(c);
        }
        if send_183 {
            self.provisional_a(now, key, 183, true);
        }
        true
    }

    pub(super) fn fork_2xx_again(&mut self, key: u64, leg_id: LegId, to_tag: Option<&str>) {
        // A retransmitted 2xx: our ACK was lost; send it again.
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let Some(leg) = call.forks.iter().find(|l| l.id == leg_id) else {
            return;
        };
        let branch = concat(&["z9hG4bK", &leg.local_tag]);
        let ack = Self::build_ack(
            self.calls.host_for(leg.peer.transport),
            leg,
            &branch,
            leg.uac.invite_cseq,
            to_tag,
        );
        self.scratch.push(Transmit {
            to: leg.peer,
            bytes: ack,
        });
    }

    pub(super) fn cancel_fork(&mut self, now: Instant, key: u64, leg_id: LegId) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return;
        };
        let leg = call.forks.remove(idx);
        match leg.state {
            ChanState::Calling | ChanState::Early => self.send_cancel(now, key, &leg),
            ChanState::Up => {
                let mut leg = leg;
                self.send_in_dialog(now, key, &mut leg, Method::Bye);
                self.release_leg(key, leg);
                return;
            }
            ChanState::Ended { .. } => {}
        }
        self.release_leg(key, leg);
    }

    /// Trunk bookkeeping when an outbound leg ends (concurrency counts, and
    /// a failed gateway port cools down).
    pub(super) fn trunk_leg_done(&mut self, leg: &Channel) {
        let Some((trunk, port)) = &leg.uac.trunk else {
            return;
        };
        let Some(trunks) = self.trunks.as_mut() else {
            return;
        };
        let _ = trunks.call_ended(trunk, port.as_ref());
        if let (true, Some(now)) = (
            leg.state
                .final_status()
                .is_some_and(|s| s >= 500 || s == 408),
            self.last_now,
        ) {
            let _ = trunks.call_failed(trunk, port.as_ref(), now);
        }
    }

    pub(super) fn fork_failed(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        status: u16,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return;
        };
        let mut leg = call.forks.remove(idx);
        // 408/500/503 before any ringing: the contact, not the callee,
        // failed; another contact of the trunk may carry the call.
        let retry = leg
            .uac
            .failover
            .take()
            .filter(|_| !leg.uac.rang && matches!(status, 408 | 500 | 503));
        leg.state = ChanState::Ended {
            status: Some(status),
        };
        let best = dial_status_of(status);
        call.last_dial_status = Some(match (call.last_dial_status, best) {
            (Some(DialStatus::Busy), _) | (_, DialStatus::Busy) => DialStatus::Busy,
            (Some(DialStatus::NoAnswer), _) => DialStatus::NoAnswer,
            (_, s) => s,
        });
        let remaining = call.forks.len();
        let dialing = call.state == CallState::Dialing && call.bridge.is_none();
        self.release_leg(key, leg);
        debug!(call = key, status, remaining, "fork failed");
        if self.transfer_target_failed(now, now_ms, key, leg_id, status) {
            return;
        }
        if let (Some(failed), true) = (retry, dialing) {
            if self.fail_over(now, key, failed, status) {
                return;
            }
        }
        if remaining == 0 && dialing {
            self.dial_finished(now, now_ms, key);
        }
    }

    /// A `Dial` of call `key` has returned `status`: it is no longer under
    /// way, and its `app_finished` event is emitted.
    pub(super) fn dial_returned(&mut self, key: u64, status: DialStatus) {
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.dial_open = false;
        }
        self.emit_app_finished(key, "Dial", status.as_str());
    }

    pub(super) fn dial_finished(&mut self, now: Instant, now_ms: u64, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Routing;
        call.dial_deadline = None;
        let status = call.last_dial_status.unwrap_or(DialStatus::NoAnswer);
        if let Some(exec) = call.exec.as_mut() {
            exec.handle_dial_result(now, status);
        }
        self.dial_returned(key, status);
        self.run_dialplan(now, now_ms, key);
    }
}
