//! Errors of the trunk run time, and the SIP status the switch owes its
//! caller for each (see [`TrunkError::status`]).

use std::time::Duration;

use thiserror::Error;

use crate::auth::AuthError;
use crate::model::{PortName, TrunkName};

/// Why a trunk refused a call as busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyReason {
    /// The trunk is at `max_calls` concurrent calls: our own limit, not the
    /// callee's state, so the caller gets 503.
    TrunkFull { max: u32 },
    /// Every usable SIM port of a gateway is at its `max_calls`: the GSM
    /// side really is busy, so the caller gets 486 Busy Here.
    AllPortsBusy,
}

/// Why no contact or port can take a call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnavailableReason {
    /// Every contact is qualified Down.
    ContactsDown,
    /// Every port is cooling down after a failure, or its contact is Down.
    NoUsablePort,
    /// The trunk is configured `enabled = false`.
    Disabled,
}

/// What went wrong in a trunk operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrunkError {
    #[error("no trunk named '{trunk}'")]
    UnknownTrunk { trunk: String },
    #[error("trunk '{trunk}' has no port named '{port}'")]
    UnknownPort { trunk: TrunkName, port: String },
    #[error("trunk '{trunk}' is busy ({reason:?})")]
    Busy {
        trunk: TrunkName,
        reason: BusyReason,
    },
    #[error("trunk '{trunk}' is over its max_cps; next call possible in {retry_after:?}")]
    RateLimited {
        trunk: TrunkName,
        retry_after: Duration,
    },
    #[error("trunk '{trunk}' cannot take calls now ({reason:?})")]
    Unavailable {
        trunk: TrunkName,
        reason: UnavailableReason,
    },
    #[error("trunk '{trunk}' has no username/password to answer a challenge")]
    NoCredentials { trunk: TrunkName },
    #[error("trunk '{trunk}': {source}")]
    Auth {
        trunk: TrunkName,
        #[source]
        source: AuthError,
    },
    #[error("port '{port}' of trunk '{trunk}' is not a gateway port in use")]
    PortNotInUse { trunk: TrunkName, port: PortName },
}

impl TrunkError {
    /// The response the switch sends upstream when an outbound call fails
    /// with this error:
    ///
    /// | error | status |
    /// |---|---|
    /// | `Busy { AllPortsBusy }` | 486 Busy Here |
    /// | `Busy { TrunkFull }` | 503 Service Unavailable |
    /// | `RateLimited` | 503 (add `Retry-After`, rounded up from `retry_after`) |
    /// | `Unavailable` | 503 |
    /// | `NoCredentials`, `Auth` | 503 (our configuration problem, not the caller's) |
    /// | `UnknownTrunk`, `UnknownPort`, `PortNotInUse` | 500 (a routing bug) |
    pub fn status(&self) -> u16 {
        match self {
            TrunkError::Busy {
                reason: BusyReason::AllPortsBusy,
                ..
            } => 486,
            TrunkError::Busy { .. }
            | TrunkError::RateLimited { .. }
            | TrunkError::Unavailable { .. }
            | TrunkError::NoCredentials { .. }
            | TrunkError::Auth { .. } => 503,
            TrunkError::UnknownTrunk { .. }
            | TrunkError::UnknownPort { .. }
            | TrunkError::PortNotInUse { .. } => 500,
        }
    }
}
