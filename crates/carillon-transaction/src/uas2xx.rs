//! The UAS core's retransmission of a 2xx response to INVITE until its ACK
//! arrives (RFC 3261 §13.3.1.4).
//!
//! Since a 2xx ends the INVITE server transaction's own reliability (RFC 6026
//! Accepted state), the UAS core keeps re-sending the 2xx end to end, on every
//! transport: first after T1, then with the interval doubling up to T2. If no
//! ACK arrives within 64*T1 it gives up and reports [`Uas2xxEvent::AckTimedOut`];
//! the dialog is then confirmed but the session should be ended with a BYE, so
//! a leg that never ACKs is cleaned up.
//!
//! Owns: the retransmission schedule and the give-up deadline. Does not own:
//! the first transmission of the 2xx (send it through
//! [`crate::ServerTransaction::send_response`]), matching the ACK to the
//! dialog, or the BYE. Its copies may be passed through the server
//! transaction while it is Accepted, or straight to the transport.
//!
//! ```text
//!   new(now) --> Retransmitting --ACK--> Acknowledged
//!                 | next retransmit: resend, interval = min(2*interval, T2)
//!                 | 64*T1 elapsed: AckTimedOut
//!                 v
//!                GaveUp
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::timer::{doubled, TimerConfig};

/// What the 2xx retransmitter tells the UAS core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// No ACK within 64*T1: the caller should send BYE.
    AckTimedOut,
}

#[derive(Debug, Clone)]
struct Retransmitting {
    response: Bytes,
    /// The interval used to arm `next`.
    interval: Duration,
    /// When the 2xx is next re-sent (`None` if beyond representable time).
    next: Option<Instant>,
    /// When to give up (`None` if beyond representable time).
    give_up: Option<Instant>,
}

#[derive(Debug, Clone)]
enum State {
    Retransmitting(Retransmitting),
    Acknowledged,
    GaveUp,
}

/// Re-sends a 2xx to INVITE until ACKed or 64*T1 elapsed (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
pub struct Uas2xxRetransmitter {
    cfg: TimerConfig,
    state: State,
    transmits: crate::queue::Queue<Bytes>,
    events: crate::queue::Queue<Uas2xxEvent>,
}

impl Uas2xxRetransmitter {
    /// Starts retransmitting `response`, which the caller sent at `now`.
    /// Nothing is queued for transmission yet; the first copy is due at
    /// `now + T1`.
    pub fn new(now: Instant, response: Bytes, cfg: TimerConfig) -> Self {
        Self {
            cfg,
            state: State::Retransmitting(Retransmitting {
                response,
                interval: cfg.t1,
                next: now.checked_add(cfg.t1),
                give_up: now.checked_add(cfg.sixty_four_t1()),
            }),
            transmits: crate::queue::Queue::default(),
            events: crate::queue::Queue::default(),
        }
    }

    /// The ACK for this 2xx arrived: stop retransmitting. Later ACKs are
    /// absorbed.
    pub fn handle_ack(&mut self, _now: Instant) {
        if let State::Retransmitting(_) = self.state {
            self.state = State::Acknowledged;
        }
    }

    /// Re-sends the 2xx or gives up, as due at `now`. Giving up wins a tie,
    /// and at most one copy is sent per call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let State::Retransmitting(r) = &mut self.state else {
            return;
        };
        if r.give_up.is_some_and(|at| at <= now) {
            self.state = State::GaveUp;
            self.events.push_back(Uas2xxEvent::AckTimedOut);
        } else if r.next.is_some_and(|at| at <= now) {
            self.transmits.push_back(r.response.clone());
            r.interval = doubled(r.interval).min(self.cfg.t2);
            r.next = now.checked_add(r.interval);
        }
    }

    /// Whether the ACK arrived.
    pub fn is_acknowledged(&self) -> bool {
        matches!(self.state, State::Acknowledged)
    }

    /// Whether retransmission is over (acknowledged or given up).
    pub fn is_terminated(&self) -> bool {
        !matches!(self.state, State::Retransmitting(_))
    }

    /// The next copy of the 2xx to hand to the transport (or to the server
    /// transaction while it is Accepted).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the UAS core.
    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.events.pop_front()
    }

    /// The next retransmission or the give-up deadline; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Retransmitting(r) => match (r.next, r.give_up) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            State::Acknowledged | State::GaveUp => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn retransmits_at_t1_doubling_to_t2_then_gives_up_at_64_t1() {
        let t0 = Instant::now();
        let mut r =
            Uas2xxRetransmitter::new(t0, Bytes::from_static(b"200"), TimerConfig::default());
        assert_eq!(r.poll_transmit(), None);
        let mut sent_at = Vec::new();
        while let Some(at) = r.poll_timeout() {
            r.handle_timeout(at);
            while r.poll_transmit().is_some() {
                sent_at.push(at - t0);
            }
        }
        let expected: Vec<Duration> = [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
        ]
        .into_iter()
        .map(ms)
        .collect();
        assert_eq!(sent_at, expected);
        assert_eq!(r.poll_event(), Some(Uas2xxEvent::AckTimedOut));
        assert!(r.is_terminated());
        assert!(!r.is_acknowledged());
    }

    #[test]
    fn an_ack_stops_retransmission_and_leaves_no_timer() {
        let t0 = Instant::now();
        let mut r =
            Uas2xxRetransmitter::new(t0, Bytes::from_static(b"200"), TimerConfig::default());
        r.handle_timeout(t0 + ms(500));
        assert!(r.poll_transmit().is_some());
        r.handle_ack(t0 + ms(600));
        assert!(r.is_acknowledged());
        assert_eq!(r.poll_timeout(), None);
        r.handle_timeout(t0 + ms(60_000));
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.poll_event(), None);
    }
}
