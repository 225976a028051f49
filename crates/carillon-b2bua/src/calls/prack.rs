//! Reliable provisional responses (RFC 3262, "100rel") on both sides of a
//! call.
//!
//! Owns the two 100rel state machines and their glue into the switch:
//!
//! * [`ReliableSender`], leg A (we are the UAS): when the caller's INVITE
//!   has `Supported: 100rel` or `Require: 100rel`, our 180 and 183 go out
//!   with `Require: 100rel` and an `RSeq` (§3), one at a time (a later one
//!   waits in a queue until the earlier one is PRACKed), retransmitted
//!   every T1, 2·T1, 4·T1 … on unreliable transports until the PRACK whose
//!   `RAck` matches arrives; after 64·T1 without it the INVITE is rejected
//!   (5xx). A 2xx waits while a reliable provisional is unacknowledged
//!   (mandatory when it carried SDP, §3).
//! * [`ReliableReceiver`], legs B (we are the UAC): a provisional with
//!   `Require: 100rel` and the next `RSeq` is PRACKed in its early dialog
//!   with `RAck: rseq cseq INVITE` (§4, §7.2); retransmissions and
//!   out-of-order ones are neither PRACKed again nor processed.
//!
//! It does not own the INVITE transactions (the endpoint table and the
//! client transactions do) nor the PRACK's own transaction.
//!
//! ```text
//!  leg A:  Idle ──18x (reliable)──► Pending(rseq) ──PRACK(RAck=rseq)──► Idle
//!                                     │  every T1·2ⁿ: retransmit
//!                                     └─ 64·T1: GaveUp (reject the INVITE)
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_sip::{HeaderName, Message, Method};
use tracing::{debug, info, warn};

use super::{Call, CallState, ChanState, LegId, LegRef, Timer};
use crate::endpoint::{response_route, Peer};
use crate::switch::Switch;

/// What the caller said about 100rel in its INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// Neither `Supported` nor `Require` names 100rel.
    Unsupported,
    /// `Supported: 100rel`: we may send provisionals reliably.
    Supported,
    /// `Require: 100rel`: every provisional but 100 must be reliable.
    Required,
}

fn lists(msg: &Message, name: HeaderName, option: &str) -> bool {
    msg.header_list(name)
        .unwrap_or_default()
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case(option))
}

/// Whether `option` is in a message's `Supported` or `Require`.
pub(crate) fn supports(msg: &Message, option: &str) -> bool {
    lists(msg, HeaderName::Supported, option) || lists(msg, HeaderName::Require, option)
}

impl Rel {
    pub fn of(invite: &Message) -> Rel {
        if lists(invite, HeaderName::Require, "100rel") {
            Rel::Required
        } else if lists(invite, HeaderName::Supported, "100rel") {
            Rel::Supported
        } else {
            Rel::Unsupported
        }
    }
}

/// An `RAck` header value: `response-num CSeq-num Method` (RFC 3262 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    pub rseq: u32,
    pub cseq: u32,
    pub method: Method,
}

impl RAck {
    pub fn parse(value: &str) -> Option<RAck> {
        let mut it = value.split_ascii_whitespace();
        let rseq = it.next()?.parse().ok()?;
        let cseq = it.next()?.parse().ok()?;
        let method = Method::from_token(it.next()?);
        if it.next().is_some() {
            return None;
        }
        Some(RAck { rseq, cseq, method })
    }
}

/// The `RSeq` of a provisional response, if it is a reliable one
/// (`Require: 100rel` and a valid `RSeq`).
pub fn reliable_rseq(resp: &Message) -> Option<u32> {
    if !lists(resp, HeaderName::Require, "100rel") {
        return None;
    }
    resp.header(HeaderName::RSeq)?.trim().parse().ok()
}

/// A reliable provisional waiting for its PRACK.
#[derive(Debug, Clone)]
struct Pending {
    rseq: u32,
    bytes: Bytes,
    next_at: Option<Instant>,
    interval: Duration,
    give_up_at: Instant,
}

/// What a provisional still to be sent to A is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    pub status: u16,
    pub with_sdp: bool,
}

/// What [`ReliableSender::handle_timeout`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderTimeout {
    Nothing,
    Retransmit(Bytes),
    /// No PRACK within 64·T1: the INVITE should be rejected with a 5xx.
    GaveUp,
}

/// Leg A's reliable provisionals (we are the UAS).
#[derive(Debug, Clone)]
pub struct ReliableSender {
    mode: Rel,
    next_rseq: u32,
    invite_cseq: u32,
    retransmit: bool,
    t1: Duration,
    pending: Option<Pending>,
    queued: VecDeque<Queued>,
    /// A 2xx was wanted while a provisional was unacknowledged.
    pub(crate) answer_deferred: bool,
}

impl ReliableSender {
    /// `first_rseq` is drawn at random (RFC 3262 §3: 1 … 2³¹−1).
    pub fn new(
        mode: Rel,
        first_rseq: u32,
        invite_cseq: u32,
        unreliable_transport: bool,
        t1: Duration,
    ) -> Self {
        ReliableSender {
            mode,
            next_rseq: first_rseq.clamp(1, (1 << 31) - 1),
            invite_cseq,
            retransmit: unreliable_transport,
            t1,
            pending: None,
            queued: VecDeque::new(),
            answer_deferred: false,
        }
    }

    /// Whether provisionals to this caller go reliably.
    pub fn enabled(&self) -> bool {
        self.mode != Rel::Unsupported
    }

    /// Whether a reliable provisional awaits its PRACK.
    pub fn awaiting_prack(&self) -> bool {
        self.pending.is_some()
    }

    /// The RSeq for the next reliable provisional.
    pub fn take_rseq(&mut self) -> u32 {
        let r = self.next_rseq;
        self.next_rseq = self.next_rseq.wrapping_add(1).max(1);
        r
    }

    /// A reliable provisional went out.
    pub fn sent(&mut self, now: Instant, rseq: u32, bytes: Bytes) {
        self.pending = Some(Pending {
            rseq,
            bytes,
            next_at: self.retransmit.then(|| now + self.t1),
            interval: self.t1,
            give_up_at: now + self.t1 * 64,
        });
    }

    pub(crate) fn queue(&mut self, q: Queued) {
        if !self.queued.contains(&q) {
            self.queued.push_back(q);
        }
    }

    pub(crate) fn next_queued(&mut self) -> Option<Queued> {
        self.queued.pop_front()
    }

    /// A PRACK arrived: true when its RAck acknowledges the pending one.
    pub fn handle_prack(&mut self, rack: &RAck) -> bool {
        let matches = self.pending.as_ref().is_some_and(|p| {
            p.rseq == rack.rseq && rack.cseq == self.invite_cseq && rack.method == Method::Invite
        });
        if matches {
            self.pending = None;
        }
        matches
    }

    /// The INVITE got its final response: nothing more is retransmitted.
    pub fn finish(&mut self) {
        self.pending = None;
        self.queued.clear();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|p| p.next_at.map_or(p.give_up_at, |n| n.min(p.give_up_at)))
    }

    pub fn handle_timeout(&mut self, now: Instant) -> SenderTimeout {
        let Some(p) = self.pending.as_mut() else {
            return SenderTimeout::Nothing;
        };
        if p.give_up_at <= now {
            self.pending = None;
            return SenderTimeout::GaveUp;
        }
        match p.next_at {
            Some(at) if at <= now => {
                p.interval *= 2;
                p.next_at = Some(now + p.interval);
                SenderTimeout::Retransmit(p.bytes.clone())
            }
            _ => SenderTimeout::Nothing,
        }
    }
}

/// What a provisional from a callee is, 100rel-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// Not reliable: process it, no PRACK.
    Unreliable,
    /// Reliable and the next in order: PRACK it, then process it.
    New { rseq: u32 },
    /// A retransmission or out of order: drop it (RFC 3262 §4).
    Ignore,
}

/// A B leg's view of the callee's reliable provisionals (we are the UAC).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReliableReceiver {
    last_rseq: Option<u32>,
}

impl ReliableReceiver {
    pub fn accept(&mut self, resp: &Message) -> Incoming {
        let Some(rseq) = reliable_rseq(resp) else {
            return Incoming::Unreliable;
        };
        match self.last_rseq {
            Some(last) if rseq != last.wrapping_add(1) => Incoming::Ignore,
            _ => {
                self.last_rseq = Some(rseq);
                Incoming::New { rseq }
            }
        }
    }
}

impl Switch {
    /// Sends a provisional to A, reliably when the caller does 100rel
    /// (queued while an earlier one awaits its PRACK).
    pub(crate) fn provisional_a(&mut self, now: Instant, key: u64, status: u16, with_sdp: bool) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if !call.inbound.rel.enabled() {
            self.respond_a(now, key, status, with_sdp);
            return;
        }
        if call.inbound.rel.awaiting_prack() {
            call.inbound.rel.queue(Queued { status, with_sdp });
            return;
        }
        let rseq = call.inbound.rel.take_rseq();
        let headers = [
            ("Require".to_owned(), "100rel".to_owned()),
            ("RSeq".to_owned(), rseq.to_string()),
        ];
        if let Some(bytes) = self.respond_a_with(now, key, status, with_sdp, &headers) {
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.inbound.rel.sent(now, rseq, bytes);
                if let Some(at) = call.inbound.rel.poll_timeout() {
                    self.calls.schedule(at, Timer::Reliable(key));
                }
            }
            debug!(call = key, status, rseq, "reliable provisional sent");
        }
    }

    /// PRACK from the caller (RFC 3262 §3): 200 when its RAck matches the
    /// unacknowledged provisional, 481 otherwise; then what waited for it.
    pub(super) fn handle_prack(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
        r: LegRef,
    ) -> u16 {
        let LegRef {
            call: call_key,
            leg,
        } = r;
        let rack = msg.header(HeaderName::RAck).and_then(|v| RAck::parse(&v));
        let matched = match (self.calls.calls.get_mut(&call_key), rack) {
            (Some(call), Some(rack)) if call.a.id == leg => call.inbound.rel.handle_prack(&rack),
            _ => false,
        };
        if !matched {
            // A PRACK from a callee (we never send it reliable responses)
            // or one matching nothing.
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        }
        self.respond(now, key, msg, peer, 200, |b| b);
        debug!(call = call_key, "PRACK matched");
        self.after_prack(now, now_ms, call_key);
        200
    }

    /// Sends the next queued provisional, or the 2xx that waited.
    fn after_prack(&mut self, now: Instant, _now_ms: u64, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if let Some(q) = call.inbound.rel.next_queued() {
            self.provisional_a(now, key, q.status, q.with_sdp);
            return;
        }
        if call.inbound.rel.answer_deferred {
            call.inbound.rel.answer_deferred = false;
            self.respond_a(now, key, 200, true);
        }
    }

    /// Retransmits leg A's reliable provisional, or gives up on the caller.
    pub(crate) fn reliable_timeout(&mut self, now: Instant, now_ms: u64, key: u64) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.inbound.rel.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        match call.inbound.rel.handle_timeout(now) {
            SenderTimeout::Nothing => {}
            SenderTimeout::Retransmit(bytes) => {
                let (to, _) = response_route(&call.inbound.invite, call.inbound.peer);
                self.scratch.push(crate::endpoint::Transmit { to, bytes });
            }
            SenderTimeout::GaveUp => {
                warn!(
                    call = key,
                    "caller never PRACKed a reliable provisional: rejecting"
                );
                // The 2xx may not be sent without the PRACK: the call ends
                // like an unanswered one (a 5xx to the caller).
                undo_deferred_answer(call);
                self.end_call(now, now_ms, key, 41);
                return;
            }
        }
        if let Some(at) = self
            .calls
            .calls
            .get(&key)
            .and_then(|c| c.inbound.rel.poll_timeout())
        {
            self.calls.schedule(at, Timer::Reliable(key));
        }
    }

    /// PRACKs a callee's reliable provisional in its early dialog (RFC 3262
    /// §4). Returns false when the provisional must be ignored.
    pub(crate) fn prack_callee(
        &mut self,
        now: Instant,
        key: u64,
        leg_id: LegId,
        msg: &Message,
    ) -> bool {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return false;
        };
        let Some(idx) = call.forks.iter().position(|l| l.id == leg_id) else {
            return false;
        };
        let rseq = match call.forks[idx].uac.rel_in.accept(msg) {
            Incoming::Unreliable => return true,
            Incoming::Ignore => return false,
            Incoming::New { rseq } => rseq,
        };
        let mut leg = call.forks[idx].clone();
        if leg.remote_tag.is_none() {
            leg.remote_tag = msg.tag(HeaderName::To);
        }
        early_dialog_from(&mut leg, msg);
        let rack = format!("{rseq} {} INVITE", leg.uac.invite_cseq);
        self.send_in_dialog_with(
            now,
            key,
            &mut leg,
            Method::Prack,
            vec![("RAck".to_owned(), rack)],
            None,
        );
        info!(call = key, rseq, "PRACK sent to the callee");
        if let Some(l) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.forks.iter_mut().find(|l| l.id == leg_id))
        {
            *l = leg;
        }
        true
    }
}

/// The early dialog's remote target and route set from a provisional
/// with a To tag (RFC 3261 §12.1.2), for PRACK and UPDATE before 2xx.
pub(super) fn early_dialog_from(leg: &mut super::Channel, msg: &Message) {
    if leg.state == ChanState::Up {
        return;
    }
    if let Some(c) = msg.with_name_addr(HeaderName::Contact, |n| n.uri.as_str().to_owned()) {
        leg.remote_target = c;
    }
    if let Ok(mut rr) = msg.header_list(HeaderName::RecordRoute) {
        rr.reverse();
        leg.route_set = rr;
    }
}

/// An answer that waited for a PRACK will not be sent after all (the call
/// is ending): leg A is back to unanswered so it gets a final error
/// response, not a BYE. True when there was such an answer.
pub(super) fn undo_deferred_answer(call: &mut Call) -> bool {
    if !call.inbound.rel.answer_deferred {
        return false;
    }
    call.inbound.rel.answer_deferred = false;
    call.inbound.answered = false;
    call.answer_ms = None;
    call.a.state = ChanState::Early;
    true
}

/// Whether leg A may still get a 2xx now, or must wait for a PRACK.
pub(super) fn answer_must_wait(call: &mut Call) -> bool {
    if call.inbound.rel.awaiting_prack() && call.state != CallState::Ended {
        call.inbound.rel.answer_deferred = true;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(extra: &str) -> Message {
        Message::parse(Bytes::from(format!("SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"))).unwrap()
    }

    #[test]
    fn rack_parses_three_fields_and_refuses_garbage() {
        assert_eq!(
            RAck::parse("776656 1 INVITE"),
            Some(RAck {
                rseq: 776656,
                cseq: 1,
                method: Method::Invite
            })
        );
        assert_eq!(RAck::parse("1 INVITE"), None);
        assert_eq!(RAck::parse("x 1 INVITE"), None);
        assert_eq!(RAck::parse("1 2 INVITE extra"), None);
    }

    #[test]
    fn a_receiver_pracks_in_order_provisionals_once_and_ignores_repeats() {
        let mut r = ReliableReceiver::default();
        assert_eq!(r.accept(&resp("")), Incoming::Unreliable);
        let rel = |n: u32| resp(&format!("Require: 100rel\r\nRSeq: {n}\r\n"));
        assert_eq!(r.accept(&rel(10)), Incoming::New { rseq: 10 });
        assert_eq!(r.accept(&rel(10)), Incoming::Ignore, "retransmission");
        assert_eq!(r.accept(&rel(12)), Incoming::Ignore, "out of order");
        assert_eq!(r.accept(&rel(11)), Incoming::New { rseq: 11 });
    }

    #[test]
    fn a_sender_retransmits_with_doubling_intervals_then_gives_up_at_64_t1() {
        let t0 = Instant::now();
        let t1 = Duration::from_millis(500);
        let mut s = ReliableSender::new(Rel::Supported, 5, 2, true, t1);
        let rseq = s.take_rseq();
        assert_eq!(rseq, 5);
        s.sent(t0, rseq, Bytes::from_static(b"183"));
        let mut at = Vec::new();
        while let Some(t) = s.poll_timeout() {
            match s.handle_timeout(t) {
                SenderTimeout::Retransmit(_) => at.push(t.duration_since(t0).as_millis()),
                SenderTimeout::GaveUp => {
                    at.push(t.duration_since(t0).as_millis());
                    break;
                }
                SenderTimeout::Nothing => panic!("woken for nothing"),
            }
        }
        assert_eq!(at, vec![500, 1500, 3500, 7500, 15500, 31500, 32000]);
        assert!(!s.awaiting_prack());
    }

    #[test]
    fn only_the_matching_rack_acknowledges_the_pending_provisional() {
        let mut s = ReliableSender::new(Rel::Required, 7, 3, false, Duration::from_millis(500));
        let r = s.take_rseq();
        s.sent(Instant::now(), r, Bytes::new());
        let rack = |rseq, cseq| RAck {
            rseq,
            cseq,
            method: Method::Invite,
        };
        assert!(!s.handle_prack(&rack(8, 3)), "wrong RSeq");
        assert!(!s.handle_prack(&rack(7, 2)), "wrong CSeq");
        assert!(s.handle_prack(&rack(7, 3)));
        assert!(!s.handle_prack(&rack(7, 3)), "already acknowledged");
    }
}
