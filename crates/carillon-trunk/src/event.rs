//! What the trunks hand back to the driver: datagrams to send
//! ([`Transmit`]) and state changes for the logs ([`TrunkEvent`]).

use std::fmt;

use bytes::Bytes;

use crate::model::TrunkName;

/// A request to send. `destination` is the SIP URI of the peer (a contact
/// or the registrar); the driver resolves it (RFC 3263) and sends `bytes`
/// over the configured transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub trunk: TrunkName,
    pub destination: String,
    pub bytes: Bytes,
}

/// Liveness of one contact as OPTIONS qualify sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// Not qualified (qualify off) or no answer yet: usable.
    Unknown,
    /// Answered the last ping.
    Up,
    /// Did not answer the last ping in time, or answered 408/503: skipped
    /// by failover.
    Down,
}

impl ContactState {
    /// Whether failover may send a call to a contact in this state.
    pub fn is_usable(self) -> bool {
        !matches!(self, ContactState::Down)
    }
}

/// Outbound registration state, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not registered yet.
    Unregistered,
    /// A REGISTER is in flight and we are not registered.
    Registering,
    /// The registrar accepted the binding for `expires` seconds.
    Registered { expires: u32 },
    /// The last attempt failed with `status` (`None`: no answer at all);
    /// a retry is scheduled with backoff.
    Failed { status: Option<u16> },
}

impl fmt::Display for RegistrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationState::Unregistered => f.write_str("unregistered"),
            RegistrationState::Registering => f.write_str("registering"),
            RegistrationState::Registered { expires } => write!(f, "registered ({expires} s)"),
            RegistrationState::Failed { status: Some(s) } => write!(f, "failed ({s})"),
            RegistrationState::Failed { status: None } => f.write_str("failed (no answer)"),
        }
    }
}

/// A state change worth a log line (past tense).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkEvent {
    ContactStateChanged {
        trunk: TrunkName,
        contact: String,
        from: ContactState,
        to: ContactState,
    },
    RegistrationChanged {
        trunk: TrunkName,
        state: RegistrationState,
    },
}
