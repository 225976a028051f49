//! The call timers: which named timer fired, and what it does.
//!
//! Owns dispatching the expired entries of the calls' deadline table:
//! client transaction timers (retransmit, Timer B/F timeouts → a fork
//! failing with 408), the caller's 100 Trying, reliable provisionals,
//! session timers, and a call's own timer (the `Dial` timeout, the
//! execution's wait).

use std::time::Instant;

use carillon_dialplan::DialStatus;
use carillon_mediactl::LegId;
use carillon_sip::Method;
use carillon_transaction::{ClientEvent, Uas2xxEvent};
use tracing::{info, warn};

use super::model::CallState;
use super::Timer;
use crate::endpoint::Transmit;
use crate::switch::Switch;

impl Switch {
    /// Timers of client transactions and calls.
    pub(crate) fn calls_timeout(&mut self, now: Instant, now_ms: u64) {
        while let Some(timer) = self.calls.deadlines.pop_due(now) {
            match timer {
                Timer::Client(branch) => self.client_timeout(now, now_ms, &branch),
                Timer::Call(key) => self.call_timeout(now, now_ms, key),
                Timer::Reliable(key) => self.reliable_timeout(now, now_ms, key),
                Timer::Trying(key) => self.send_trying(now, key),
                Timer::Session(key, leg) => self.session_timeout(now, now_ms, key, leg),
            }
        }
    }

    pub(super) fn client_timeout(&mut self, now: Instant, now_ms: u64, branch: &str) {
        let Some(entry) = self.calls.clients.get_mut(branch) else {
            return;
        };
        if entry.txn.poll_timeout().is_some_and(|t| t > now) {
            return;
        }
        entry.txn.handle_timeout(now);
        let to = entry.to;
        while let Some(b) = entry.txn.poll_transmit() {
            self.scratch.push(Transmit { to, bytes: b });
        }
        let mut events = Vec::new();
        while let Some(ev) = entry.txn.poll_event() {
            events.push(ev);
        }
        let (call, leg, method, refresh) =
            (entry.call, entry.leg, entry.method.clone(), entry.refresh);
        if let Some(at) = entry.txn.poll_timeout() {
            self.calls
                .deadlines
                .push(at, Timer::Client(branch.to_owned()));
        }
        if entry.txn.is_terminated() {
            self.calls.clients.remove(branch);
        }
        let failed = events
            .iter()
            .any(|e| matches!(e, ClientEvent::TimedOut | ClientEvent::TransportFailed));
        if failed && refresh {
            self.refresh_answered(now, now_ms, call, leg, 408, None);
        } else if failed && method == Method::Invite {
            self.fork_failed(now, now_ms, call, leg, 408);
        } else if failed && method == Method::Info {
            self.info_answered(now, call, leg, 408);
        }
    }

    pub(super) fn call_timeout(&mut self, now: Instant, now_ms: u64, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        // The 2xx retransmitter of leg A.
        let mut ack_lost = false;
        if let Some(r) = call.inbound.ok_2xx.as_mut() {
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
            }
            while let Some(b) = r.poll_transmit() {
                self.scratch.push(Transmit {
                    to: call.a.peer,
                    bytes: b,
                });
            }
            while let Some(ev) = r.poll_event() {
                if matches!(ev, Uas2xxEvent::AckTimedOut) {
                    ack_lost = true;
                }
            }
            match r.poll_timeout() {
                Some(at) => self.calls.deadlines.push(at, Timer::Call(key)),
                None => call.inbound.ok_2xx = None,
            }
        }
        if ack_lost {
            warn!(call = key, "caller never acknowledged the 200: hanging up");
            self.end_call(now, now_ms, key, 41);
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.dial_deadline.is_some_and(|d| d <= now) && call.state == CallState::Dialing {
            call.dial_deadline = None;
            call.last_dial_status = Some(DialStatus::NoAnswer);
            info!(call = key, "dial timeout: no answer");
            let forks: Vec<LegId> = call.forks.iter().map(|l| l.id).collect();
            for f in forks {
                self.cancel_fork(now, key, f);
            }
            self.dial_finished(now, now_ms, key);
            return;
        }
        if self.transfer_timeout(now, now_ms, key) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.wait_deadline.is_some_and(|d| d <= now) {
            call.wait_deadline = None;
            self.execution_timeout(now, now_ms, key);
        }
    }
}
