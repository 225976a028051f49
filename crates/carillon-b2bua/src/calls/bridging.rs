//! Bridging: joining the caller and the callee that answered, and
//! releasing a fork from its bridge.
//!
//! Owns the [`Bridge`] of a call: on a fork's 2xx, the dialog is
//! confirmed and ACKed, the other forks cancelled, the caller answered,
//! the two media legs bridged (`MediaCommand::Bridge`, the media plane
//! relays them) and the bridge recorded on the call with its members;
//! when a fork leaves, the bridge it was in ends (music on hold and
//! MixMonitor are told) and its channel's port, Call-ID and trunk slot
//! are released.

use std::time::Instant;

use carillon_events::ChannelState;
use carillon_mediactl::{LegId, MediaCommand};
use carillon_sdp::SessionDescription;
use carillon_sip::{HeaderName, Message, Method};
use tracing::{debug, info, warn};

use super::messages::allows_update;
use super::model::{Bridge, CallState, ChanState, Channel};
use super::{leg_params, session_timer, via_host};
use crate::endpoint::Transmit;
use crate::header_text::concat;
use crate::switch::Switch;

impl Switch {
    pub(super) fn fork_answered(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        msg: &Message,
        to_tag: Option<&str>,
    ) {
        // A blind transfer's target: the referrer is told (and then
        // released with the other forks below).
        self.transfer_target_answered(now, key, leg_id);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return;
        };
        {
            let leg = &mut call.forks[idx];
            leg.remote_tag = to_tag.map(str::to_owned);
            if let Some(c) = msg.with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned())
            {
                leg.remote_target = c;
            }
            let mut rr = msg.header_list(HeaderName::RecordRoute).unwrap_or_default();
            rr.reverse();
            leg.route_set = rr;
            leg.state = ChanState::Up;
            leg.peer_allows_update = allows_update(msg);
        }
        let already = call.bridge.is_some() || call.state == CallState::Ended || call.cancelled;
        // ACK the 2xx (a new transaction-less request, RFC 3261 §13.2.2.4).
        let leg = &call.forks[idx];
        let ack_branch = concat(&["z9hG4bK", &leg.local_tag]);
        let ack = Self::build_ack(
            via_host(
                &self.calls.sip_host,
                self.calls.tcp_host.as_deref(),
                leg.peer.transport,
            ),
            leg,
            &ack_branch,
            leg.uac.invite_cseq,
            leg.remote_tag.as_deref(),
        );
        let peer = leg.peer;
        self.scratch.push(Transmit {
            to: peer,
            bytes: ack,
        });
        if already {
            // Another fork won, or the caller cancelled: this one is released.
            let Some(call) = self.calls.calls.get_mut(&key) else {
                return;
            };
            let mut leg = call.forks.remove(idx);
            self.send_in_dialog(now, key, &mut leg, Method::Bye);
            leg.state.end();
            self.release_leg(key, leg);
            return;
        }
        // Negotiate B's answer against our offer; a 2xx without SDP keeps
        // the answer its early media gave.
        let plan = if msg.body().is_empty() {
            leg.plan.clone()
        } else {
            leg.local_sdp.as_ref().and_then(|offer| {
                SessionDescription::parse(msg.body())
                    .ok()
                    .and_then(|ans| carillon_sdp::apply_answer(offer, &ans).ok())
            })
        };
        let Some(plan) = plan else {
            warn!(
                call = key,
                "callee answered without a usable SDP answer; hanging up"
            );
            let Some(call) = self.calls.calls.get_mut(&key) else {
                return;
            };
            let mut leg = call.forks.remove(idx);
            self.send_in_dialog(now, key, &mut leg, Method::Bye);
            self.release_leg(key, leg);
            self.fork_failed(now, now_ms, key, leg_id, 488);
            return;
        };
        let bridge_id = self.calls.next_bridge();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.bridge = Some(Bridge::pair(bridge_id, call.a.id, leg_id));
        debug!(call = key, bridge = bridge_id.0, leg = leg_id.0, "bridged");
        call.state = CallState::Answered;
        call.dial_deadline = None;
        call.answered_channel = call.forks.get(idx).map(|l| l.channel.clone());
        let session = call.session;
        let a_id = call.a.id;
        let early_leg = call.early_leg;
        let leg = &mut call.forks[idx];
        let was_open = leg.media_open;
        let changed = leg.plan.as_ref().map(leg_params) != Some(leg_params(&plan));
        leg.plan = Some(plan.clone());
        let port = leg.media_port;
        let dtmf_mode = leg.dtmf_mode;
        leg.media_open = true;
        // Cancel the other forks.
        let others: Vec<LegId> = call
            .forks
            .iter()
            .filter(|l| l.id != leg_id)
            .map(|l| l.id)
            .collect();
        match (leg_params(&plan), was_open) {
            (Some(params), false) => {
                self.media(MediaCommand::OpenLeg {
                    session,
                    leg: leg_id,
                    local_port: port,
                    params,
                });
                self.media_dtmf_mode(session, leg_id, dtmf_mode);
            }
            (Some(params), true) if changed => {
                // The 2xx's SDP differs from the early one: update the leg.
                info!(
                    call = key,
                    "answer SDP differs from the early media SDP: leg updated"
                );
                self.media(MediaCommand::UpdateLeg {
                    session,
                    leg: leg_id,
                    params,
                });
            }
            _ => {}
        }
        if early_leg != Some(leg_id) {
            self.media(MediaCommand::Bridge {
                session,
                a: a_id,
                b: leg_id,
            });
        }
        // An armed MixMonitor records from the bridge on.
        self.mixmonitor_bridged(key);
        // The callee's session timer (RFC 4028 §7.2).
        let negotiated = session_timer::negotiate_uac(msg);
        self.arm_session_timer(now, key, session_timer::Side::B(leg_id), negotiated);
        for other in others {
            self.cancel_fork(now, key, other);
        }
        self.stats.calls_answered += 1;
        info!(call = key, "call answered");
        self.emit_state(key, leg_id, ChannelState::Up);
        self.answer_a(now, key, Some(now_ms));
        self.emit_bridge(key, leg_id, true);
        // The Dial's result (ANSWER) reaches the dialplan when the bridged
        // call ends, as Asterisk's Dial returns then (see
        // `callee_hung_up_to_dialplan`).
    }

    /// Frees a leg's port and indexes; its transactions finish on their own.
    pub(super) fn release_leg(&mut self, key: u64, leg: Channel) {
        let was_bridged = match self.calls.calls.get_mut(&key) {
            Some(call) if call.bridged() == Some(leg.id) => {
                if let Some(bridge) = call.bridge.take() {
                    debug!(call = key, bridge = bridge.id.0, "unbridged");
                }
                true
            }
            _ => false,
        };
        if was_bridged {
            self.hold_bridge_ended(key, leg.id);
            self.mixmonitor_bridge_ended(key, leg.id);
        }
        self.emit_fork_gone(key, &leg, was_bridged);
        self.trunk_leg_done(&leg);
        self.calls.free_ports.give(leg.media_port);
        self.calls.by_call_id.remove(&leg.call_id);
        if let Some(call) = self.calls.calls.get_mut(&key) {
            if call.early_leg == Some(leg.id) {
                call.early_leg = None;
            }
        }
        if leg.media_open {
            if let Some(call) = self.calls.calls.get(&key) {
                let session = call.session;
                self.media(MediaCommand::CloseLeg {
                    session,
                    leg: leg.id,
                });
            }
        }
    }
}
