//! Client transactions: the INVITE client machine of RFC 3261 §17.1.1 as
//! updated by RFC 6026 §8.4 (the Accepted state, Timer M), and the
//! non-INVITE client machine of RFC 3261 §17.1.2.
//!
//! Owns: when the request is (re)transmitted, when the ACK for a non-2xx
//! final response is (re)sent, which responses reach the TU, and timeouts.
//! Does not own: building the request or the ACK (the caller passes their
//! serialized bytes), matching responses to the transaction (§17.1.3), or the
//! ACK for a 2xx, which the UAC core sends (§13.2.2.4).
//!
//! INVITE client (Timer A only on unreliable transports):
//!
//! ```text
//!   new: send INVITE, arm A (T1) and B (64*T1)
//!   Calling    --Timer A: resend, A = 2A (no cap)--> Calling
//!   Calling    --1xx: to TU, disarm A and B--> Proceeding
//!   Proceeding --1xx: to TU--> Proceeding
//!   Calling/Proceeding --2xx: to TU--> Accepted (M = 64*T1)       [RFC 6026]
//!   Calling/Proceeding --300-699: send ACK, to TU--> Completed (D = 32 s, 0 if reliable)
//!   Calling    --Timer B / transport error: to TU--> Terminated
//!   Completed  --300-699: resend ACK--> Completed
//!   Completed  --Timer D--> Terminated
//!   Accepted   --2xx: to TU (Retransmitted2xx); others absorbed--> Accepted
//!   Accepted   --Timer M--> Terminated
//! ```
//!
//! In Proceeding an INVITE client has no timer: only a final response ends
//! it. The UAC core bounds it by cancelling (RFC 3261 §9.1) and reporting
//! that with [`ClientTransaction::handle_cancel_sent`], which arms
//! [`Timer::CancelWait`] (64*T1; on expiry: TimedOut, Terminated).
//!
//! Non-INVITE client (E only on unreliable transports):
//!
//! ```text
//!   new: send request, arm E (T1) and F (64*T1)
//!   Trying    --Timer E: resend, E = min(2E, T2)--> Trying
//!   Trying    --1xx: to TU--> Proceeding (E stays armed)
//!   Proceeding--Timer E: resend, E = T2--> Proceeding
//!   Trying/Proceeding --200-699: to TU--> Completed (K = T4, 0 if reliable)
//!   Trying/Proceeding --Timer F / transport error--> Terminated
//!   Completed --Timer K--> Terminated
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::timer::{doubled, Timer, TimerConfig, TimerTable};
use crate::{StatusClass, TransactionError, TransactionKind};

/// What a client transaction tells its TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx response to pass up.
    Provisional(u16),
    /// The first final response (2xx–6xx) to pass up.
    Final(u16),
    /// RFC 6026: a further 2xx arrived in the Accepted state; the TU (UAC
    /// core) must treat it as a retransmission (or a new fork) and ACK it.
    Retransmitted2xx,
    /// Timer B or F fired before a final response arrived (the TU should act
    /// as on a 408).
    TimedOut,
    /// The transport reported a failure sending for this transaction.
    TransportFailed,
    /// The machine reached Terminated; the glue may drop it.
    Terminated,
}

/// The observable state of a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientStateKind {
    /// INVITE: request sent, no response yet.
    Calling,
    /// Non-INVITE: request sent, no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived (INVITE: a non-2xx one).
    Completed,
    /// RFC 6026: INVITE got a 2xx.
    Accepted,
    /// Done; no timer armed.
    Terminated,
}

#[derive(Debug, Clone)]
struct Calling {
    request: Bytes,
    /// The current Timer A interval.
    interval: Duration,
}

#[derive(Debug, Clone)]
struct InviteCompleted {
    /// The ACK re-sent for every retransmitted final response.
    ack: Bytes,
}

#[derive(Debug, Clone)]
enum InviteState {
    Calling(Calling),
    Proceeding,
    Completed(InviteCompleted),
    Accepted,
    Terminated,
}

#[derive(Debug, Clone)]
struct Trying {
    request: Bytes,
    /// The current Timer E interval.
    interval: Duration,
}

#[derive(Debug, Clone)]
struct NonInviteProceeding {
    request: Bytes,
}

#[derive(Debug, Clone)]
enum NonInviteState {
    Trying(Trying),
    Proceeding(NonInviteProceeding),
    Completed,
    Terminated,
}

#[derive(Debug, Clone)]
enum State {
    Invite(InviteState),
    NonInvite(NonInviteState),
}

/// A client transaction (RFC 3261 §17.1, RFC 6026).
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    cfg: TimerConfig,
    reliable: bool,
    state: State,
    timers: TimerTable,
    transmits: crate::queue::Queue<Bytes>,
    events: crate::queue::Queue<ClientEvent>,
}

impl ClientTransaction {
    /// Starts a transaction: the request is queued for transmission at once,
    /// Timer A/E is armed on unreliable transports and Timer B/F always.
    pub fn new(
        kind: TransactionKind,
        reliable: bool,
        request: Bytes,
        now: Instant,
        cfg: TimerConfig,
    ) -> Self {
        let mut timers = TimerTable::default();
        let state = match kind {
            TransactionKind::Invite => {
                if !reliable {
                    timers.arm(Timer::A, now, cfg.t1);
                }
                timers.arm(Timer::B, now, cfg.sixty_four_t1());
                State::Invite(InviteState::Calling(Calling {
                    request: request.clone(),
                    interval: cfg.t1,
                }))
            }
            TransactionKind::NonInvite => {
                if !reliable {
                    timers.arm(Timer::E, now, cfg.t1);
                }
                timers.arm(Timer::F, now, cfg.sixty_four_t1());
                State::NonInvite(NonInviteState::Trying(Trying {
                    request: request.clone(),
                    interval: cfg.t1,
                }))
            }
        };
        Self {
            cfg,
            reliable,
            state,
            timers,
            transmits: crate::queue::Queue::one(request),
            events: crate::queue::Queue::default(),
        }
    }

    /// INVITE or non-INVITE.
    pub fn kind(&self) -> TransactionKind {
        match self.state {
            State::Invite(_) => TransactionKind::Invite,
            State::NonInvite(_) => TransactionKind::NonInvite,
        }
    }

    /// Whether the transport is reliable (no retransmission timers).
    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// The current state.
    pub fn state(&self) -> ClientStateKind {
        match &self.state {
            State::Invite(InviteState::Calling(_)) => ClientStateKind::Calling,
            State::Invite(InviteState::Proceeding) => ClientStateKind::Proceeding,
            State::Invite(InviteState::Completed(_)) => ClientStateKind::Completed,
            State::Invite(InviteState::Accepted) => ClientStateKind::Accepted,
            State::Invite(InviteState::Terminated) => ClientStateKind::Terminated,
            State::NonInvite(NonInviteState::Trying(_)) => ClientStateKind::Trying,
            State::NonInvite(NonInviteState::Proceeding(_)) => ClientStateKind::Proceeding,
            State::NonInvite(NonInviteState::Completed) => ClientStateKind::Completed,
            State::NonInvite(NonInviteState::Terminated) => ClientStateKind::Terminated,
        }
    }

    /// Whether the machine reached Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state() == ClientStateKind::Terminated
    }

    /// The deadline of one named timer, if armed.
    pub fn timer_deadline(&self, timer: Timer) -> Option<Instant> {
        self.timers.deadline(timer)
    }

    /// A response matched to this transaction arrived.
    ///
    /// `ack` is the serialized ACK for a 300–699 response to INVITE (RFC 3261
    /// §17.1.1.3); it is needed only for the first such response and ignored
    /// otherwise (retransmissions re-send the stored one).
    ///
    /// # Errors
    ///
    /// [`TransactionError::InvalidStatus`] for a code outside 100..=699, and
    /// [`TransactionError::MissingAck`] when an INVITE non-2xx final response
    /// must be acknowledged but `ack` is `None`; the state is then unchanged.
    pub fn handle_response(
        &mut self,
        now: Instant,
        status: u16,
        ack: Option<Bytes>,
    ) -> Result<(), TransactionError> {
        let class = StatusClass::of(status)?;
        match &self.state {
            State::Invite(_) => self.invite_response(now, status, class, ack),
            State::NonInvite(_) => {
                self.non_invite_response(now, status, class);
                Ok(())
            }
        }
    }

    fn invite_response(
        &mut self,
        now: Instant,
        status: u16,
        class: StatusClass,
        ack: Option<Bytes>,
    ) -> Result<(), TransactionError> {
        let State::Invite(state) = &self.state else {
            return Ok(());
        };
        match (state, class) {
            (InviteState::Calling(_) | InviteState::Proceeding, StatusClass::Provisional) => {
                self.timers.disarm(Timer::A);
                self.timers.disarm(Timer::B);
                self.state = State::Invite(InviteState::Proceeding);
                self.events.push_back(ClientEvent::Provisional(status));
            }
            (InviteState::Calling(_) | InviteState::Proceeding, StatusClass::Success) => {
                self.timers.clear();
                self.timers.arm(Timer::M, now, self.cfg.sixty_four_t1());
                self.state = State::Invite(InviteState::Accepted);
                self.events.push_back(ClientEvent::Final(status));
            }
            (InviteState::Calling(_) | InviteState::Proceeding, StatusClass::Failure) => {
                let ack = ack.ok_or(TransactionError::MissingAck { status })?;
                self.timers.clear();
                self.transmits.push_back(ack.clone());
                self.events.push_back(ClientEvent::Final(status));
                self.state = State::Invite(InviteState::Completed(InviteCompleted { ack }));
                let wait = self.cfg.timer_d(self.reliable);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.timers.arm(Timer::D, now, wait);
                }
            }
            (InviteState::Completed(completed), StatusClass::Failure) => {
                // A retransmitted final response: re-send the ACK, tell no one.
                self.transmits.push_back(completed.ack.clone());
            }
            (InviteState::Accepted, StatusClass::Success) => {
                self.events.push_back(ClientEvent::Retransmitted2xx);
            }
            // Everything else is absorbed: late provisionals, a 2xx after a
            // failure, a failure after a 2xx, anything after Terminated.
            _ => {}
        }
        Ok(())
    }

    fn non_invite_response(&mut self, now: Instant, status: u16, class: StatusClass) {
        let State::NonInvite(state) = &self.state else {
            return;
        };
        let request = match state {
            NonInviteState::Trying(trying) => trying.request.clone(),
            NonInviteState::Proceeding(proceeding) => proceeding.request.clone(),
            NonInviteState::Completed | NonInviteState::Terminated => return,
        };
        match class {
            StatusClass::Provisional => {
                // Timer E stays armed; when it fires in Proceeding it is
                // reset to T2 (§17.1.2.2).
                self.state =
                    State::NonInvite(NonInviteState::Proceeding(NonInviteProceeding { request }));
                self.events.push_back(ClientEvent::Provisional(status));
            }
            StatusClass::Success | StatusClass::Failure => {
                self.timers.clear();
                self.events.push_back(ClientEvent::Final(status));
                self.state = State::NonInvite(NonInviteState::Completed);
                let wait = self.cfg.t4_or_zero(self.reliable);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.timers.arm(Timer::K, now, wait);
                }
            }
        }
    }

    /// The UAC core sent a CANCEL for this INVITE (RFC 3261 §9.1). An INVITE
    /// client in Proceeding has no timer of its own, so if no final response
    /// arrives within 64*T1 from now the transaction reports
    /// [`ClientEvent::TimedOut`] and terminates. Ignored for non-INVITE
    /// transactions, once a final response arrived, and when already called.
    pub fn handle_cancel_sent(&mut self, now: Instant) {
        let waiting = matches!(
            self.state,
            State::Invite(InviteState::Calling(_) | InviteState::Proceeding)
        );
        if waiting && self.timers.deadline(Timer::CancelWait).is_none() {
            self.timers
                .arm(Timer::CancelWait, now, self.cfg.sixty_four_t1());
        }
    }

    /// The transport failed to send for this transaction (RFC 3261 §17.1.4):
    /// the TU is told and the machine terminates. In the RFC 6026 Accepted
    /// state the transaction sends nothing itself, so it only reports the
    /// failure and keeps absorbing 2xx retransmissions until Timer M.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        match self.state() {
            ClientStateKind::Terminated => {}
            ClientStateKind::Accepted => self.events.push_back(ClientEvent::TransportFailed),
            _ => {
                self.transmits.clear();
                self.events.push_back(ClientEvent::TransportFailed);
                self.terminate();
            }
        }
    }

    /// Fires every timer due at `now`, each at most once.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.due(now) {
            // An earlier timer in this batch may have changed the state.
            if self.timers.is_due(timer, now) {
                self.timers.disarm(timer);
                self.fire(timer, now);
            }
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match (&mut self.state, timer) {
            (State::Invite(InviteState::Calling(calling)), Timer::A) => {
                self.transmits.push_back(calling.request.clone());
                calling.interval = doubled(calling.interval);
                self.timers.arm(Timer::A, now, calling.interval);
            }
            (State::Invite(InviteState::Calling(_)), Timer::B)
            | (
                State::Invite(InviteState::Calling(_) | InviteState::Proceeding),
                Timer::CancelWait,
            ) => {
                self.events.push_back(ClientEvent::TimedOut);
                self.terminate();
            }
            (State::Invite(InviteState::Completed(_)), Timer::D)
            | (State::Invite(InviteState::Accepted), Timer::M) => self.terminate(),
            (State::NonInvite(NonInviteState::Trying(trying)), Timer::E) => {
                self.transmits.push_back(trying.request.clone());
                trying.interval = doubled(trying.interval).min(self.cfg.t2);
                self.timers.arm(Timer::E, now, trying.interval);
            }
            (State::NonInvite(NonInviteState::Proceeding(proceeding)), Timer::E) => {
                self.transmits.push_back(proceeding.request.clone());
                self.timers.arm(Timer::E, now, self.cfg.t2);
            }
            (
                State::NonInvite(NonInviteState::Trying(_) | NonInviteState::Proceeding(_)),
                Timer::F,
            ) => {
                self.events.push_back(ClientEvent::TimedOut);
                self.terminate();
            }
            (State::NonInvite(NonInviteState::Completed), Timer::K) => self.terminate(),
            // A timer not meaningful in this state: nothing to do. States
            // clear their timers on exit, so this is not reached.
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.timers.clear();
        self.state = match self.state {
            State::Invite(_) => State::Invite(InviteState::Terminated),
            State::NonInvite(_) => State::NonInvite(NonInviteState::Terminated),
        };
        self.events.push_back(ClientEvent::Terminated);
    }

    /// The next serialized message to hand to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The earliest armed timer deadline; `None` once terminated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE";
    const ACK: &[u8] = b"ACK";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain_transmits(tx: &mut ClientTransaction) -> Vec<Bytes> {
        std::iter::from_fn(|| tx.poll_transmit()).collect()
    }

    fn drain_events(tx: &mut ClientTransaction) -> Vec<ClientEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    fn invite(reliable: bool, now: Instant) -> ClientTransaction {
        ClientTransaction::new(
            TransactionKind::Invite,
            reliable,
            Bytes::from_static(INVITE),
            now,
            TimerConfig::default(),
        )
    }

    #[test]
    fn new_transmits_the_request_once_and_arms_a_and_b() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        assert_eq!(drain_transmits(&mut tx), vec![Bytes::from_static(INVITE)]);
        assert_eq!(tx.timer_deadline(Timer::A), Some(t0 + ms(500)));
        assert_eq!(tx.timer_deadline(Timer::B), Some(t0 + ms(32_000)));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
        assert_eq!(tx.state(), ClientStateKind::Calling);
    }

    #[test]
    fn a_reliable_invite_arms_no_timer_a() {
        let t0 = Instant::now();
        let tx = invite(true, t0);
        assert_eq!(tx.timer_deadline(Timer::A), None);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
    }

    #[test]
    fn an_out_of_range_status_is_a_typed_error_and_changes_nothing() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        assert_eq!(
            tx.handle_response(t0, 42, None),
            Err(TransactionError::InvalidStatus { status: 42 })
        );
        assert_eq!(tx.state(), ClientStateKind::Calling);
    }

    #[test]
    fn an_invite_failure_without_ack_bytes_is_rejected_without_changing_state() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        drain_transmits(&mut tx);
        assert_eq!(
            tx.handle_response(t0, 486, None),
            Err(TransactionError::MissingAck { status: 486 })
        );
        assert_eq!(tx.state(), ClientStateKind::Calling);
        assert!(drain_events(&mut tx).is_empty());
        // The ACK can still be supplied afterwards.
        tx.handle_response(t0, 486, Some(Bytes::from_static(ACK)))
            .unwrap();
        assert_eq!(tx.state(), ClientStateKind::Completed);
        assert_eq!(drain_transmits(&mut tx), vec![Bytes::from_static(ACK)]);
    }

    #[test]
    fn a_reliable_invite_failure_sends_the_ack_and_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = invite(true, t0);
        drain_transmits(&mut tx);
        tx.handle_response(t0, 603, Some(Bytes::from_static(ACK)))
            .unwrap();
        assert_eq!(drain_transmits(&mut tx), vec![Bytes::from_static(ACK)]);
        assert_eq!(
            drain_events(&mut tx),
            vec![ClientEvent::Final(603), ClientEvent::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn accepted_passes_further_2xx_up_and_absorbs_failures_until_timer_m() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        drain_transmits(&mut tx);
        tx.handle_response(t0 + ms(100), 200, None).unwrap();
        assert_eq!(tx.state(), ClientStateKind::Accepted);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(100) + ms(32_000)));
        tx.handle_response(t0 + ms(200), 200, None).unwrap();
        tx.handle_response(t0 + ms(300), 500, Some(Bytes::from_static(ACK)))
            .unwrap();
        tx.handle_response(t0 + ms(300), 180, None).unwrap();
        assert!(drain_transmits(&mut tx).is_empty());
        assert_eq!(
            drain_events(&mut tx),
            vec![ClientEvent::Final(200), ClientEvent::Retransmitted2xx]
        );
        tx.handle_timeout(t0 + ms(100) + ms(32_000));
        assert_eq!(drain_events(&mut tx), vec![ClientEvent::Terminated]);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn a_transport_error_terminates_and_drops_pending_transmits() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            TransactionKind::NonInvite,
            false,
            Bytes::from_static(b"OPTIONS"),
            t0,
            TimerConfig::default(),
        );
        tx.handle_transport_error(t0);
        assert_eq!(tx.poll_transmit(), None);
        assert_eq!(
            drain_events(&mut tx),
            vec![ClientEvent::TransportFailed, ClientEvent::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn a_transport_error_in_accepted_is_reported_but_timer_m_still_runs() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.handle_response(t0, 200, None).unwrap();
        drain_events(&mut tx);
        tx.handle_transport_error(t0);
        assert_eq!(drain_events(&mut tx), vec![ClientEvent::TransportFailed]);
        assert_eq!(tx.state(), ClientStateKind::Accepted);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
    }

    #[test]
    fn a_late_handle_timeout_fires_each_timer_once() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        drain_transmits(&mut tx);
        // Called at 2 s although A was due at 0.5 s: one retransmission, and
        // the next A is measured from the call, at twice the interval.
        tx.handle_timeout(t0 + ms(2_000));
        assert_eq!(drain_transmits(&mut tx).len(), 1);
        assert_eq!(tx.timer_deadline(Timer::A), Some(t0 + ms(3_000)));
    }

    #[test]
    fn a_cancelled_invite_without_a_final_response_times_out_64_t1_after_the_cancel() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.handle_response(t0 + ms(50), 180, None).unwrap();
        assert_eq!(tx.poll_timeout(), None);
        tx.handle_cancel_sent(t0 + ms(10_000));
        // A second call does not push the deadline back.
        tx.handle_cancel_sent(t0 + ms(20_000));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(42_000)));
        drain_events(&mut tx);
        tx.handle_timeout(t0 + ms(42_000));
        assert_eq!(
            drain_events(&mut tx),
            vec![ClientEvent::TimedOut, ClientEvent::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn a_final_response_after_the_cancel_disarms_the_cancel_wait() {
        let t0 = Instant::now();
        let mut tx = invite(false, t0);
        tx.handle_response(t0, 180, None).unwrap();
        tx.handle_cancel_sent(t0);
        tx.handle_response(t0 + ms(100), 487, Some(Bytes::from_static(ACK)))
            .unwrap();
        assert_eq!(tx.timer_deadline(Timer::CancelWait), None);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_100)));
    }

    #[test]
    fn non_invite_timer_e_is_reset_to_t2_after_a_provisional() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            TransactionKind::NonInvite,
            false,
            Bytes::from_static(b"BYE"),
            t0,
            TimerConfig::default(),
        );
        drain_transmits(&mut tx);
        tx.handle_response(t0 + ms(100), 100, None).unwrap();
        assert_eq!(tx.state(), ClientStateKind::Proceeding);
        // E keeps its Trying deadline...
        assert_eq!(tx.timer_deadline(Timer::E), Some(t0 + ms(500)));
        tx.handle_timeout(t0 + ms(500));
        assert_eq!(drain_transmits(&mut tx).len(), 1);
        // ...and is then reset to T2.
        assert_eq!(tx.timer_deadline(Timer::E), Some(t0 + ms(4_500)));
    }
}
