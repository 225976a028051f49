//! Media direction attributes (`a=sendrecv`, `a=sendonly`, `a=recvonly`,
//! `a=inactive`; RFC 8866 §6.7) and their reversal in an answer
//! (RFC 3264 §6.1).
//!
//! A direction is always stated from the point of view of the party that
//! wrote the SDP. Reversal maps an offered direction to the answer's:
//!
//! ```text
//! offer      answer
//! sendrecv → sendrecv
//! sendonly → recvonly
//! recvonly → sendonly
//! inactive → inactive
//! ```

use std::fmt;

/// The direction of a media stream, from the writer of the SDP's view.
/// RFC 8866 §6.7: `sendrecv` is the default when no attribute is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`: send and receive.
    #[default]
    SendRecv,
    /// `a=sendonly`: send only (the usual way to put the peer on hold).
    SendOnly,
    /// `a=recvonly`: receive only.
    RecvOnly,
    /// `a=inactive`: neither send nor receive.
    Inactive,
}

impl Direction {
    /// The direction an answer states for this offered direction
    /// (RFC 3264 §6.1).
    #[must_use]
    pub fn reverse(self) -> Self {
        match self {
            Self::SendRecv => Self::SendRecv,
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            Self::Inactive => Self::Inactive,
        }
    }

    /// Whether the writer of the SDP sends media.
    #[must_use]
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the writer of the SDP receives media.
    #[must_use]
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// Builds a direction from whether the writer sends and receives.
    #[must_use]
    pub fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// The attribute name (`sendrecv`, `sendonly`, `recvonly`, `inactive`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Parses an attribute name, case-insensitively.
    #[must_use]
    pub fn from_attribute_name(name: &str) -> Option<Self> {
        [
            Self::SendRecv,
            Self::SendOnly,
            Self::RecvOnly,
            Self::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_swaps_send_only_and_recv_only_and_keeps_the_others() {
        assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reverse(), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.reverse(), Direction::SendRecv);
        assert_eq!(Direction::Inactive.reverse(), Direction::Inactive);
    }

    #[test]
    fn reverse_twice_is_the_identity() {
        for d in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            assert_eq!(d.reverse().reverse(), d);
            assert_eq!(Direction::from_flags(d.sends(), d.receives()), d);
        }
    }

    #[test]
    fn attribute_names_parse_case_insensitively_and_unknown_names_do_not() {
        assert_eq!(
            Direction::from_attribute_name("SendOnly"),
            Some(Direction::SendOnly)
        );
        assert_eq!(Direction::from_attribute_name("sendrecv "), None);
        assert_eq!(Direction::from_attribute_name("rtcp-mux"), None);
    }
}
