//! Sans-IO SIP transaction layer: the four transaction state machines of
//! RFC 3261 §17 as updated by RFC 6026 (client and server, INVITE and
//! non-INVITE), and the UAS core's 2xx retransmission machine of RFC 3261
//! §13.3.1.4.
//!
//! What this crate owns: states, timers (A–M, see [`Timer`]), which bytes to
//! (re)transmit when, and the events owed to the transaction user (TU).
//!
//! What it does not own: SIP messages. The machines never parse; they see
//! only status codes and already-serialized [`bytes::Bytes`]. The endpoint
//! glue matches incoming messages to a transaction (RFC 3261 §17.1.3,
//! §17.2.3), builds the ACK for a non-2xx final response, and owns sockets,
//! addresses and the clock. Time comes in as `Instant` arguments; nothing
//! here reads a clock or sleeps.
//!
//! Every machine follows the workspace API shape: `handle_*` inputs, then
//! drain `poll_transmit()`, `poll_event()` and `poll_timeout()`; call
//! `handle_timeout(now)` when `now` reaches the instant `poll_timeout()`
//! returned. A terminated machine has no armed timer.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod client;
mod queue;
pub mod server;
pub mod timer;
pub mod uas2xx;

pub use client::{ClientEvent, ClientStateKind, ClientTransaction};
pub use server::{ServerEvent, ServerStateKind, ServerTransaction};
pub use timer::{Timer, TimerConfig};
pub use uas2xx::{Uas2xxEvent, Uas2xxRetransmitter};

/// Which of the two transaction families a machine follows (RFC 3261 §17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    /// An INVITE transaction (§17.1.1, §17.2.1).
    Invite,
    /// Any other method except ACK (§17.1.2, §17.2.2).
    NonInvite,
}

/// A misuse of a transaction by its caller. Network input (retransmissions,
/// stray ACKs, late responses) is absorbed as the RFC says and never an
/// error; these are mistakes of the glue or the TU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A status code outside 100..=699.
    #[error("status code {status} is outside 100..=699")]
    InvalidStatus { status: u16 },
    /// A non-2xx final response to INVITE reached a client transaction that
    /// still has to acknowledge it, but the caller passed no ACK bytes.
    #[error("a {status} final response to INVITE needs ACK bytes to acknowledge it")]
    MissingAck { status: u16 },
    /// The TU passed a response the server transaction cannot send in its
    /// current state (e.g. a second final response, or a 4xx after a 2xx).
    #[error("cannot send a {status} response in server state {state:?}")]
    ResponseInWrongState { status: u16, state: ServerStateKind },
}

/// The class of a validated status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 1xx.
    Provisional,
    /// 2xx.
    Success,
    /// 3xx–6xx.
    Failure,
}

impl StatusClass {
    pub(crate) fn of(status: u16) -> Result<Self, TransactionError> {
        match status {
            100..=199 => Ok(StatusClass::Provisional),
            200..=299 => Ok(StatusClass::Success),
            300..=699 => Ok(StatusClass::Failure),
            _ => Err(TransactionError::InvalidStatus { status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_split_at_200_and_300_and_reject_the_rest() {
        assert_eq!(StatusClass::of(100), Ok(StatusClass::Provisional));
        assert_eq!(StatusClass::of(199), Ok(StatusClass::Provisional));
        assert_eq!(StatusClass::of(200), Ok(StatusClass::Success));
        assert_eq!(StatusClass::of(299), Ok(StatusClass::Success));
        assert_eq!(StatusClass::of(300), Ok(StatusClass::Failure));
        assert_eq!(StatusClass::of(699), Ok(StatusClass::Failure));
        assert_eq!(
            StatusClass::of(99),
            Err(TransactionError::InvalidStatus { status: 99 })
        );
        assert_eq!(
            StatusClass::of(700),
            Err(TransactionError::InvalidStatus { status: 700 })
        );
    }
}
