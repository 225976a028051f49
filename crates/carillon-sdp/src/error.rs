//! Error types: [`ParseError`] for SDP bodies that cannot be read (each
//! carrying the 1-based line number), and [`NegotiationError`] for offers or
//! answers that cannot be agreed on (RFC 3264; the SIP response owed is
//! 488 Not Acceptable Here, RFC 3261 §21.4.26).

/// Why an SDP body could not be parsed. `line` is 1-based and counts every
/// line of the input, blank ones included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body holds no line at all.
    #[error("empty session description")]
    Empty,
    /// A line is not valid UTF-8.
    #[error("line {line}: not valid UTF-8")]
    InvalidUtf8 {
        /// Line number.
        line: usize,
    },
    /// A line is not of the form `<letter>=<value>`.
    #[error("line {line}: expected `<type>=<value>`")]
    MalformedLine {
        /// Line number.
        line: usize,
    },
    /// The first line is not `v=` (RFC 8866 §5).
    #[error("line {line}: session description must start with v=")]
    MissingVersion {
        /// Line number of the first non-blank line.
        line: usize,
    },
    /// `v=` is not `0`.
    #[error("line {line}: unsupported SDP version {version:?}")]
    UnsupportedVersion {
        /// Line number.
        line: usize,
        /// The version as written.
        version: String,
    },
    /// No `o=` line before the first `m=` line.
    #[error("missing o= line")]
    MissingOrigin,
    /// A line that may occur once per section occurs again.
    #[error("line {line}: duplicate {kind}= line")]
    DuplicateLine {
        /// Line number of the repetition.
        line: usize,
        /// The type letter.
        kind: char,
    },
    /// A session-level line found inside a media section.
    #[error("line {line}: {kind}= is not allowed in a media section")]
    MisplacedLine {
        /// Line number.
        line: usize,
        /// The type letter.
        kind: char,
    },
    /// `o=` does not have six fields or its version is not a number.
    #[error("line {line}: invalid o= line")]
    InvalidOrigin {
        /// Line number.
        line: usize,
    },
    /// `c=` does not have three fields.
    #[error("line {line}: invalid c= line")]
    InvalidConnection {
        /// Line number.
        line: usize,
    },
    /// `b=` is not `<type>:<number>`.
    #[error("line {line}: invalid b= line")]
    InvalidBandwidth {
        /// Line number.
        line: usize,
    },
    /// `t=` is not two numbers.
    #[error("line {line}: invalid t= line")]
    InvalidTiming {
        /// Line number.
        line: usize,
    },
    /// `m=` is not `<media> <port>[/<count>] <proto> <fmt>...`.
    #[error("line {line}: invalid m= line: {reason}")]
    InvalidMedia {
        /// Line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl ParseError {
    /// The 1-based line the error refers to, if any.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Empty | Self::MissingOrigin => None,
            Self::InvalidUtf8 { line }
            | Self::MalformedLine { line }
            | Self::MissingVersion { line }
            | Self::UnsupportedVersion { line, .. }
            | Self::DuplicateLine { line, .. }
            | Self::MisplacedLine { line, .. }
            | Self::InvalidOrigin { line }
            | Self::InvalidConnection { line }
            | Self::InvalidBandwidth { line }
            | Self::InvalidTiming { line }
            | Self::InvalidMedia { line, .. } => Some(*line),
        }
    }

    /// The SIP status owed for an INVITE carrying this body: 400 Bad Request
    /// (RFC 3261 §21.4.1); a well-formed but unacceptable offer gets 488
    /// through [`NegotiationError::status_code`] instead.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        400
    }
}

/// Why an offer or an answer could not produce a [`crate::MediaPlan`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No offered (or answered) audio stream has a codec both sides allow.
    #[error("no common codec")]
    NoCommonCodec,
    /// The offer has no audio stream with a non-zero port.
    #[error("no audio stream offered")]
    NoAudioStream,
    /// The only audio streams use a transport the switch does not speak
    /// (for example `RTP/SAVP` without keying).
    #[error("unsupported media transport {proto:?}")]
    UnsupportedProtocol {
        /// The transport of the first such stream.
        proto: String,
    },
    /// The answerer rejected every audio stream (port 0).
    #[error("audio stream rejected by the answerer")]
    Rejected,
    /// The answer does not have one m= line per offered m= line
    /// (RFC 3264 §6).
    #[error("answer has {answered} m= lines for {offered} offered")]
    MediaCountMismatch {
        /// m= lines in the offer.
        offered: usize,
        /// m= lines in the answer.
        answered: usize,
    },
}

impl NegotiationError {
    /// The SIP status owed: 488 Not Acceptable Here (RFC 3261 §21.4.26).
    #[must_use]
    pub fn status_code(&self) -> u16 {
        488
    }
}
