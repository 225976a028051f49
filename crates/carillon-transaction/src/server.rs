//! Server transactions: the INVITE server machine of RFC 3261 §17.2.1 as
//! updated by RFC 6026 §8.5–§8.7 (the Accepted state, Timer L), and the
//! non-INVITE server machine of RFC 3261 §17.2.2.
//!
//! Owns: absorbing retransmitted requests (re-sending the last response when
//! there is one), retransmitting an INVITE's non-2xx final response until the
//! ACK (Timer G), giving up on that ACK (Timer H), and how long each machine
//! lingers to absorb stragglers (I, J, L). Does not own: building responses
//! (the TU passes serialized bytes), matching requests and ACKs to the
//! transaction (§17.2.3), sending 100 Trying (the TU or glue sends it through
//! [`ServerTransaction::send_response`] like any 1xx, within 200 ms as
//! §17.2.1 asks), or retransmitting a 2xx, which the UAS core does
//! ([`crate::Uas2xxRetransmitter`], §13.3.1.4), optionally passing each copy
//! through this machine while it is Accepted.
//!
//! INVITE server (G only on unreliable transports):
//!
//! ```text
//!   new ------------------> Proceeding  INVITE: resend last 1xx (if any)
//!                            |  |  1xx from TU: send
//!        2xx from TU: send   |  |  300-699 from TU: send, arm G (T1), H (64*T1)
//!        arm L (64*T1)       |  v
//!   Accepted <---------------+  Completed  INVITE: resend final
//!   INVITE: absorbed             |  |       Timer G: resend, G = min(2G, T2)
//!   2xx from TU: send            |  +------ Timer H: TimedOut --------+
//!   | Timer L                ACK |                                     |
//!   |                            v                                     |
//!   |                        Confirmed (I = T4, 0 if reliable)         |
//!   |                            | Timer I                             |
//!   +-----------------------> Terminated <-----------------------------+
//! ```
//!
//! Non-INVITE server:
//!
//! ```text
//!   new -> Trying (request retransmissions absorbed)
//!   Trying/Proceeding --1xx from TU: send--> Proceeding (resends it)
//!   Trying/Proceeding --200-699 from TU: send--> Completed (resends it),
//!                                              J = 64*T1 (0 if reliable)
//!   Completed --Timer J--> Terminated
//! ```
//!
//! A transport error terminates either machine except in Accepted, where it
//! is reported and the machine keeps absorbing INVITEs until Timer L.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::timer::{doubled, Timer, TimerConfig, TimerTable};
use crate::{StatusClass, TransactionError, TransactionKind};

/// What a server transaction tells its TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The ACK for a non-2xx final response to INVITE arrived.
    AckReceived,
    /// Timer H fired: the non-2xx final response was never acknowledged.
    TimedOut,
    /// The transport reported a failure sending for this transaction.
    TransportFailed,
    /// The machine reached Terminated; the glue may drop it.
    Terminated,
}

/// The observable state of a server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerStateKind {
    /// Non-INVITE: request received, no response yet.
    Trying,
    /// A provisional response was sent (INVITE: the initial state).
    Proceeding,
    /// A final response was sent (INVITE: a non-2xx one).
    Completed,
    /// INVITE: the ACK for the non-2xx final response arrived.
    Confirmed,
    /// RFC 6026: INVITE answered with a 2xx.
    Accepted,
    /// Done; no timer armed.
    Terminated,
}

#[derive(Debug, Clone)]
struct InviteProceeding {
    last_provisional: Option<Bytes>,
}

#[derive(Debug, Clone)]
struct InviteCompleted {
    response: Bytes,
    /// The current Timer G interval.
    interval: Duration,
}

#[derive(Debug, Clone)]
enum InviteState {
    Proceeding(InviteProceeding),
    Completed(InviteCompleted),
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone)]
struct NonInviteProceeding {
    last_provisional: Bytes,
}

#[derive(Debug, Clone)]
struct NonInviteCompleted {
    response: Bytes,
}

#[derive(Debug, Clone)]
enum NonInviteState {
    Trying,
    Proceeding(NonInviteProceeding),
    Completed(NonInviteCompleted),
    Terminated,
}

#[derive(Debug, Clone)]
enum State {
    Invite(InviteState),
    NonInvite(NonInviteState),
}

/// A server transaction (RFC 3261 §17.2, RFC 6026).
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    cfg: TimerConfig,
    reliable: bool,
    state: State,
    timers: TimerTable,
    transmits: crate::queue::Queue<Bytes>,
    events: crate::queue::Queue<ServerEvent>,
}

impl ServerTransaction {
    /// Creates the transaction for a request that just arrived. INVITE starts
    /// in Proceeding, other methods in Trying; no timer runs until the TU
    /// responds.
    pub fn new(kind: TransactionKind, reliable: bool, _now: Instant, cfg: TimerConfig) -> Self {
        let state = match kind {
            TransactionKind::Invite => State::Invite(InviteState::Proceeding(InviteProceeding {
                last_provisional: None,
            })),
            TransactionKind::NonInvite => State::NonInvite(NonInviteState::Trying),
        };
        Self {
            cfg,
            reliable,
            state,
            timers: TimerTable::default(),
            transmits: crate::queue::Queue::default(),
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
    pub fn state(&self) -> ServerStateKind {
        match &self.state {
            State::Invite(InviteState::Proceeding(_)) => ServerStateKind::Proceeding,
            State::Invite(InviteState::Completed(_)) => ServerStateKind::Completed,
            State::Invite(InviteState::Confirmed) => ServerStateKind::Confirmed,
            State::Invite(InviteState::Accepted) => ServerStateKind::Accepted,
            State::Invite(InviteState::Terminated) => ServerStateKind::Terminated,
            State::NonInvite(NonInviteState::Trying) => ServerStateKind::Trying,
            State::NonInvite(NonInviteState::Proceeding(_)) => ServerStateKind::Proceeding,
            State::NonInvite(NonInviteState::Completed(_)) => ServerStateKind::Completed,
            State::NonInvite(NonInviteState::Terminated) => ServerStateKind::Terminated,
        }
    }

    /// Whether any response has been sent. Only an INVITE in Proceeding
    /// before its first provisional, or a non-INVITE in Trying, has not.
    pub fn has_responded(&self) -> bool {
        !matches!(
            self.state,
            State::Invite(InviteState::Proceeding(InviteProceeding {
                last_provisional: None
            })) | State::NonInvite(NonInviteState::Trying)
        )
    }

    /// A non-INVITE transaction in Completed: the final response it
    /// re-sends to every retransmission of its request until Timer J ends
    /// it (the only things it still does). Lets a table keep just that
    /// for the 64·T1 it lasts over UDP.
    pub fn non_invite_completed(&self) -> Option<&Bytes> {
        match &self.state {
            State::NonInvite(NonInviteState::Completed(c)) => Some(&c.response),
            _ => None,
        }
    }

    /// Whether the machine reached Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state() == ServerStateKind::Terminated
    }

    /// The deadline of one named timer, if armed.
    pub fn timer_deadline(&self, timer: Timer) -> Option<Instant> {
        self.timers.deadline(timer)
    }

    /// The request was received again. The last response, if any, is re-sent
    /// (Proceeding, Completed); otherwise the retransmission is absorbed
    /// (Trying, Confirmed, RFC 6026 Accepted, Terminated).
    pub fn handle_request_retransmission(&mut self, _now: Instant) {
        let resend = match &self.state {
            State::Invite(InviteState::Proceeding(p)) => p.last_provisional.clone(),
            State::Invite(InviteState::Completed(c)) => Some(c.response.clone()),
            State::NonInvite(NonInviteState::Proceeding(p)) => Some(p.last_provisional.clone()),
            State::NonInvite(NonInviteState::Completed(c)) => Some(c.response.clone()),
            State::Invite(
                InviteState::Confirmed | InviteState::Accepted | InviteState::Terminated,
            )
            | State::NonInvite(NonInviteState::Trying | NonInviteState::Terminated) => None,
        };
        self.transmits.extend(resend);
    }

    /// The TU sends a response through this transaction.
    ///
    /// # Errors
    ///
    /// [`TransactionError::InvalidStatus`] for a code outside 100..=699 and
    /// [`TransactionError::ResponseInWrongState`] when the state does not
    /// allow this response (anything after a non-2xx final response or after
    /// Terminated; anything but a 2xx in Accepted). Nothing is sent then.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: u16,
        response: Bytes,
    ) -> Result<(), TransactionError> {
        let class = StatusClass::of(status)?;
        let wrong_state = TransactionError::ResponseInWrongState {
            status,
            state: self.state(),
        };
        match (&self.state, class) {
            (State::Invite(InviteState::Proceeding(_)), StatusClass::Provisional) => {
                self.transmits.push_back(response.clone());
                self.state = State::Invite(InviteState::Proceeding(InviteProceeding {
                    last_provisional: Some(response),
                }));
            }
            (State::Invite(InviteState::Proceeding(_)), StatusClass::Success) => {
                self.transmits.push_back(response);
                self.timers.clear();
                self.timers.arm(Timer::L, now, self.cfg.sixty_four_t1());
                self.state = State::Invite(InviteState::Accepted);
            }
            (State::Invite(InviteState::Proceeding(_)), StatusClass::Failure) => {
                self.transmits.push_back(response.clone());
                self.timers.clear();
                if !self.reliable {
                    self.timers.arm(Timer::G, now, self.cfg.t1);
                }
                self.timers.arm(Timer::H, now, self.cfg.sixty_four_t1());
                self.state = State::Invite(InviteState::Completed(InviteCompleted {
                    response,
                    interval: self.cfg.t1,
                }));
            }
            (State::Invite(InviteState::Accepted), StatusClass::Success) => {
                // RFC 6026 §8.7: the TU's 2xx retransmissions pass through.
                self.transmits.push_back(response);
            }
            (
                State::NonInvite(NonInviteState::Trying | NonInviteState::Proceeding(_)),
                StatusClass::Provisional,
            ) => {
                self.transmits.push_back(response.clone());
                self.state = State::NonInvite(NonInviteState::Proceeding(NonInviteProceeding {
                    last_provisional: response,
                }));
            }
            (
                State::NonInvite(NonInviteState::Trying | NonInviteState::Proceeding(_)),
                StatusClass::Success | StatusClass::Failure,
            ) => {
                self.transmits.push_back(response.clone());
                self.state =
                    State::NonInvite(NonInviteState::Completed(NonInviteCompleted { response }));
                let wait = self.cfg.timer_j(self.reliable);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.timers.arm(Timer::J, now, wait);
                }
            }
            _ => return Err(wrong_state),
        }
        Ok(())
    }

    /// An ACK matched to this INVITE transaction arrived. In Completed it
    /// confirms the non-2xx final response; anywhere else it is absorbed
    /// (the ACK for a 2xx is not part of the transaction and belongs to the
    /// UAS core, see [`crate::Uas2xxRetransmitter::handle_ack`]).
    pub fn handle_ack(&mut self, now: Instant) {
        if let State::Invite(InviteState::Completed(_)) = self.state {
            self.timers.clear();
            self.events.push_back(ServerEvent::AckReceived);
            self.state = State::Invite(InviteState::Confirmed);
            let wait = self.cfg.t4_or_zero(self.reliable);
            if wait.is_zero() {
                self.terminate();
            } else {
                self.timers.arm(Timer::I, now, wait);
            }
        }
    }

    /// The transport failed to send for this transaction (RFC 3261 §17.2.4).
    pub fn handle_transport_error(&mut self, _now: Instant) {
        match self.state() {
            ServerStateKind::Terminated => {}
            ServerStateKind::Accepted => self.events.push_back(ServerEvent::TransportFailed),
            _ => {
                self.transmits.clear();
                self.events.push_back(ServerEvent::TransportFailed);
                self.terminate();
            }
        }
    }

    /// Fires every timer due at `now`, each at most once.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.due(now) {
            if self.timers.is_due(timer, now) {
                self.timers.disarm(timer);
                self.fire(timer, now);
            }
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match (&mut self.state, timer) {
            (State::Invite(InviteState::Completed(completed)), Timer::G) => {
                self.transmits.push_back(completed.response.clone());
                completed.interval = doubled(completed.interval).min(self.cfg.t2);
                self.timers.arm(Timer::G, now, completed.interval);
            }
            (State::Invite(InviteState::Completed(_)), Timer::H) => {
                self.events.push_back(ServerEvent::TimedOut);
                self.terminate();
            }
            (State::Invite(InviteState::Confirmed), Timer::I)
            | (State::Invite(InviteState::Accepted), Timer::L)
            | (State::NonInvite(NonInviteState::Completed(_)), Timer::J) => self.terminate(),
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
        self.events.push_back(ServerEvent::Terminated);
    }

    /// The next serialized response to hand to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain_transmits(tx: &mut ServerTransaction) -> Vec<Bytes> {
        std::iter::from_fn(|| tx.poll_transmit()).collect()
    }

    fn drain_events(tx: &mut ServerTransaction) -> Vec<ServerEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    fn server(kind: TransactionKind, reliable: bool, now: Instant) -> ServerTransaction {
        ServerTransaction::new(kind, reliable, now, TimerConfig::default())
    }

    #[test]
    fn a_new_server_transaction_sends_nothing_and_arms_no_timer() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, false, t0);
        assert_eq!(tx.state(), ServerStateKind::Proceeding);
        assert_eq!(tx.poll_transmit(), None);
        assert_eq!(tx.poll_timeout(), None);
        let tx = server(TransactionKind::NonInvite, false, t0);
        assert_eq!(tx.state(), ServerStateKind::Trying);
    }

    #[test]
    fn only_a_completed_non_invite_transaction_exposes_its_final_response() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::NonInvite, false, t0);
        assert_eq!(tx.non_invite_completed(), None);
        tx.send_response(t0, 180, Bytes::from_static(b"180"))
            .unwrap();
        assert_eq!(tx.non_invite_completed(), None, "Proceeding");
        tx.send_response(t0, 200, Bytes::from_static(b"200"))
            .unwrap();
        assert_eq!(tx.non_invite_completed(), Some(&Bytes::from_static(b"200")));
        tx.handle_timeout(t0 + ms(32_000));
        assert!(tx.is_terminated());
        assert_eq!(tx.non_invite_completed(), None);
        let mut inv = server(TransactionKind::Invite, false, t0);
        inv.send_response(t0, 486, Bytes::from_static(b"486"))
            .unwrap();
        assert_eq!(inv.non_invite_completed(), None, "INVITE Completed");
    }

    #[test]
    fn a_second_final_response_is_a_typed_error_and_sends_nothing() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, false, t0);
        tx.send_response(t0, 486, Bytes::from_static(b"486"))
            .unwrap();
        drain_transmits(&mut tx);
        assert_eq!(
            tx.send_response(t0, 200, Bytes::from_static(b"200")),
            Err(TransactionError::ResponseInWrongState {
                status: 200,
                state: ServerStateKind::Completed
            })
        );
        assert!(drain_transmits(&mut tx).is_empty());
    }

    #[test]
    fn accepted_rejects_a_failure_response_but_passes_2xx_retransmissions() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, false, t0);
        tx.send_response(t0, 200, Bytes::from_static(b"200"))
            .unwrap();
        assert_eq!(tx.state(), ServerStateKind::Accepted);
        assert_eq!(tx.timer_deadline(Timer::L), Some(t0 + ms(32_000)));
        assert_eq!(
            tx.send_response(t0, 500, Bytes::from_static(b"500")),
            Err(TransactionError::ResponseInWrongState {
                status: 500,
                state: ServerStateKind::Accepted
            })
        );
        tx.send_response(t0 + ms(500), 200, Bytes::from_static(b"200"))
            .unwrap();
        assert_eq!(drain_transmits(&mut tx).len(), 2);
    }

    #[test]
    fn an_invalid_status_is_rejected_before_any_state_check() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::NonInvite, false, t0);
        assert_eq!(
            tx.send_response(t0, 0, Bytes::new()),
            Err(TransactionError::InvalidStatus { status: 0 })
        );
        assert_eq!(tx.state(), ServerStateKind::Trying);
    }

    #[test]
    fn an_ack_outside_completed_is_absorbed() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, false, t0);
        tx.handle_ack(t0);
        assert_eq!(tx.state(), ServerStateKind::Proceeding);
        tx.send_response(t0, 200, Bytes::from_static(b"200"))
            .unwrap();
        tx.handle_ack(t0);
        assert_eq!(tx.state(), ServerStateKind::Accepted);
        assert!(drain_events(&mut tx).is_empty());
    }

    #[test]
    fn a_reliable_ack_confirms_and_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, true, t0);
        tx.send_response(t0, 404, Bytes::from_static(b"404"))
            .unwrap();
        assert_eq!(tx.timer_deadline(Timer::G), None);
        assert_eq!(tx.timer_deadline(Timer::H), Some(t0 + ms(32_000)));
        tx.handle_ack(t0 + ms(10));
        assert_eq!(
            drain_events(&mut tx),
            vec![ServerEvent::AckReceived, ServerEvent::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn timer_i_ends_confirmed_after_t4_on_unreliable_transports() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, false, t0);
        tx.send_response(t0, 404, Bytes::from_static(b"404"))
            .unwrap();
        tx.handle_ack(t0 + ms(10));
        assert_eq!(tx.state(), ServerStateKind::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5_010)));
        tx.handle_ack(t0 + ms(20));
        tx.handle_request_retransmission(t0 + ms(30));
        assert_eq!(drain_transmits(&mut tx).len(), 1);
        tx.handle_timeout(t0 + ms(5_010));
        assert_eq!(
            drain_events(&mut tx),
            vec![ServerEvent::AckReceived, ServerEvent::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn a_transport_error_in_proceeding_terminates_the_server() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::Invite, false, t0);
        tx.send_response(t0, 180, Bytes::from_static(b"180"))
            .unwrap();
        tx.handle_transport_error(t0);
        assert_eq!(tx.poll_transmit(), None);
        assert_eq!(
            drain_events(&mut tx),
            vec![ServerEvent::TransportFailed, ServerEvent::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn non_invite_server_resends_its_last_provisional_then_its_final() {
        let t0 = Instant::now();
        let mut tx = server(TransactionKind::NonInvite, false, t0);
        tx.handle_request_retransmission(t0);
        assert!(drain_transmits(&mut tx).is_empty());
        tx.send_response(t0, 100, Bytes::from_static(b"100"))
            .unwrap();
        tx.handle_request_retransmission(t0);
        tx.send_response(t0, 200, Bytes::from_static(b"200"))
            .unwrap();
        tx.handle_request_retransmission(t0);
        let sent = drain_transmits(&mut tx);
        let sent: Vec<&[u8]> = sent.iter().map(|b| b.as_ref()).collect();
        assert_eq!(sent, vec![&b"100"[..], b"100", b"200", b"200"]);
        assert_eq!(tx.timer_deadline(Timer::J), Some(t0 + ms(32_000)));
    }
}
