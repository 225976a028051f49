//! Teardown: ending a call, from either side.
//!
//! Owns the paths that end a call: the dialplan's hangup (a failure
//! response to an unanswered caller, BYE to an answered one, CANCEL to
//! ringing forks), a BYE from a party (the other party gets its BYE, or,
//! when the callee hung up on a `Dial` with the dialplan still running,
//! the caller goes back to the dialplan), and [`Switch::finish_call`],
//! the one place a call is removed: events, recordings finalised, ports
//! and Call-IDs released, media session closed, the CDR ([`cdr`]) out.

use std::time::Instant;

use carillon_dialplan::DialStatus;
use carillon_mediactl::{LegId, MediaCommand};
use carillon_sip::Method;
use tracing::info;

use super::model::{CallState, ChanState};
use super::{prack, LegRef};
use crate::switch::{Output, Switch};

/// Final status owed to the caller for a Q.850 cause (RFC 3398 §8.2).
pub(super) fn status_for_cause(cause: u8) -> u16 {
    match cause {
        1 | 3 => 404,
        17 => 486,
        18 | 19 => 480,
        20 => 480,
        21 => 403,
        22 => 410,
        27 => 502,
        28 => 484,
        31 | 16 => 480,
        34 | 38 | 41 | 42 | 47 => 503,
        _ => 500,
    }
}

impl Switch {
    /// Ends a call with a Q.850 cause: final response or BYE on every live
    /// leg, close media, write the CDR.
    pub(super) fn end_call(&mut self, now: Instant, now_ms: u64, key: u64, cause: u8) {
        let Some(call) = self.calls.live(key) else {
            return;
        };
        call.state = CallState::Ended;
        call.hangup_cause = u16::from(cause);
        let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
        for f in forks {
            self.cancel_fork(now, key, f);
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        prack::undo_deferred_answer(call);
        if !call.inbound.answered && !call.cancelled {
            // A plain Hangup after a failed Dial passes the dial's reason
            // on, as Asterisk's hangup cause does.
            let cause = match (cause, call.last_dial_status) {
                (16, Some(d)) => d.cause().code(),
                _ => cause,
            };
            call.hangup_cause = u16::from(cause);
            let status = status_for_cause(cause);
            self.respond_a(now, key, status, false);
        } else if call.a.state == ChanState::Up {
            let mut a = call.a.clone();
            self.send_in_dialog(now, key, &mut a, Method::Bye);
            a.state.end();
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.a = a;
            }
        }
        self.finish_call(now_ms, key);
    }

    /// Removes the call: media session closed, port freed, CDR written.
    pub(super) fn finish_call(&mut self, now_ms: u64, key: u64) {
        let forks: Vec<(LegId, bool)> = match self.calls.calls.get(&key) {
            Some(call) => call
                .forks
                .iter()
                .map(|l| (l.id, call.bridged() == Some(l.id)))
                .collect(),
            None => return,
        };
        for (leg_id, was_bridged) in forks {
            if let Some(leg) = self
                .calls
                .calls
                .get(&key)
                .and_then(|c| c.forks.iter().find(|l| l.id == leg_id))
                .cloned()
            {
                self.emit_fork_gone(key, &leg, was_bridged);
            }
        }
        // A Dial the call ends returns as Asterisk's does: ANSWER once
        // bridged, else CANCEL.
        if let Some(call) = self.calls.calls.get(&key).filter(|c| c.dial_open) {
            let status = if call.bridge.is_some() || call.answered_channel.is_some() {
                DialStatus::Answer
            } else {
                DialStatus::Cancel
            };
            self.dial_returned(key, status);
        }
        // Out of its conference room before its leg closes.
        self.conf_leave(key);
        // Recordings are finalised before the session closes.
        self.recordings_call_ending(key);
        let Some(call) = self.calls.calls.remove(&key) else {
            return;
        };
        self.emit_caller_gone(&call);
        for leg in &call.forks {
            self.calls.free_ports.give(leg.media_port);
            self.calls.by_call_id.remove(&leg.call_id);
            self.trunk_leg_done(leg);
        }
        self.calls.free_ports.give(call.a.media_port);
        self.calls.by_call_id.remove(&call.a.call_id);
        self.calls.by_session.remove(&call.session);
        self.media(MediaCommand::CloseSession {
            session: call.session,
        });
        let cause = call.hangup_cause;
        let record = call.into_record(now_ms);
        info!(call = key, disposition = %record.disposition, billsec = record.billsec(), cause, "call ended");
        self.outputs.push_back(Output::Cdr(record));
    }

    /// One side hung up: BYE the other, close everything (unless the
    /// bridged callee hung up and the dialplan goes on with the caller).
    pub(super) fn hangup_from(&mut self, now: Instant, now_ms: u64, r: LegRef) {
        if self.transfer_referrer_left(r) {
            return;
        }
        if self.callee_hung_up_to_dialplan(now, now_ms, r) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return;
        };
        call.state = CallState::Ended;
        call.hangup_cause = 16;
        let from_a = call.a.id == r.leg;
        info!(
            call = r.call,
            side = if from_a { "caller" } else { "callee" },
            "hangup"
        );
        if from_a {
            call.a.state.end();
            self.execution_caller_gone(now, r.call);
            let Some(call) = self.calls.calls.get_mut(&r.call) else {
                return;
            };
            let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
            for f in forks {
                self.cancel_fork(now, r.call, f);
            }
        } else {
            if let Some(idx) = call.forks.iter().position(|l| l.id == r.leg) {
                call.forks[idx].state.end();
            }
            if prack::undo_deferred_answer(call) {
                self.respond_a(now, r.call, 480, false);
            } else if call.a.state == ChanState::Up {
                let mut a = call.a.clone();
                self.send_in_dialog(now, r.call, &mut a, Method::Bye);
                a.state.end();
                if let Some(call) = self.calls.calls.get_mut(&r.call) {
                    call.a = a;
                }
            }
        }
        self.finish_call(now_ms, r.call);
    }

    /// The bridged callee hung up on an answered caller: the `Dial`
    /// returns `ANSWER` to the dialplan (`${DIALSTATUS}` = `ANSWER`), as
    /// Asterisk's Dial returns when the bridge ends. A step with
    /// `continue = true` (Asterisk's `g` option) goes on to the next step
    /// with the caller still up; without it the dialplan hangs the caller
    /// up. The callee's leg is released either way. False (nothing done)
    /// when the call is not in that state: the caller hung up, the leg is
    /// not the bridged one, A's 200 still waits for a PRACK, or the
    /// dialplan has already finished.
    pub(super) fn callee_hung_up_to_dialplan(
        &mut self,
        now: Instant,
        now_ms: u64,
        r: LegRef,
    ) -> bool {
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        let applies = call.a.id != r.leg
            && call.bridged() == Some(r.leg)
            && call.state == CallState::Answered
            && call.a.state == ChanState::Up
            && !call.inbound.rel.answer_deferred
            && call.exec.as_ref().is_some_and(|e| !e.is_finished());
        if !applies {
            return false;
        }
        let Some(idx) = call.forks.iter().position(|l| l.id == r.leg) else {
            return false;
        };
        info!(call = r.call, side = "callee", "hangup");
        self.emit_bridge(r.call, r.leg, false);
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        let mut leg = call.forks.remove(idx);
        leg.state.end();
        call.bridge = None;
        call.early_leg = None;
        call.state = CallState::Routing;
        // Timers of the released leg are ignored once it is gone.
        if let Some(exec) = call.exec.as_mut() {
            exec.handle_dial_result(now, DialStatus::Answer);
        }
        self.release_leg(r.call, leg);
        self.dial_returned(r.call, DialStatus::Answer);
        self.run_dialplan(now, now_ms, r.call);
        true
    }
}
