//! Codec vocabulary: [`CodecName`] as written in configuration and in
//! `a=rtpmap`, and the static audio payload types of RFC 3551 §6 (Table 4).
//!
//! This module maps names and payload types; it does not encode audio
//! (that is `carillon-codec`) and does not choose codecs (that is the
//! offer/answer in `negotiate`).

use std::fmt;
use std::str::FromStr;

use crate::session::RtpMap;

/// A codec known to the switch, or any other encoding name seen in SDP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CodecName {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// RFC 4733 named telephone events (DTMF), dynamic payload type.
    TelephoneEvent,
    /// Opus (RFC 7587), dynamic payload type, `opus/48000/2`.
    Opus,
    /// G.722, static payload type 9 (RTP clock 8000, RFC 3551 §4.5.2).
    G722,
    /// G.729, static payload type 18.
    G729,
    /// Any other encoding name, as written.
    Other(String),
}

/// A configuration codec name that cannot name any codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("codec name {name:?} is empty or contains whitespace, '/' or control characters")]
pub struct CodecNameError {
    /// The rejected name.
    pub name: String,
}

impl CodecName {
    /// Maps an encoding name from `a=rtpmap` (case-insensitive, RFC 8866
    /// §6.6) to a codec; unknown names become [`CodecName::Other`].
    #[must_use]
    pub fn from_encoding_name(name: &str) -> Self {
        let known = [
            Self::Pcmu,
            Self::Pcma,
            Self::TelephoneEvent,
            Self::Opus,
            Self::G722,
            Self::G729,
        ];
        known
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| Self::Other(name.to_owned()))
    }

    /// The encoding name written in `a=rtpmap`.
    #[must_use]
    pub fn encoding_name(&self) -> &str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::TelephoneEvent => "telephone-event",
            Self::Opus => "opus",
            Self::G722 => "G722",
            Self::G729 => "G729",
            Self::Other(name) => name,
        }
    }

    /// The name used in configuration files (`ulaw`, `alaw`, ...).
    #[must_use]
    pub fn config_name(&self) -> &str {
        match self {
            Self::Pcmu => "ulaw",
            Self::Pcma => "alaw",
            Self::TelephoneEvent => "telephone-event",
            Self::Opus => "opus",
            Self::G722 => "g722",
            Self::G729 => "g729",
            Self::Other(name) => name,
        }
    }

    /// Whether this is one of the named variants (not [`CodecName::Other`]).
    #[must_use]
    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Other(_))
    }

    /// The static payload type of RFC 3551, if the codec has one.
    #[must_use]
    pub fn static_payload_type(&self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::G722 => Some(9),
            Self::G729 => Some(18),
            Self::TelephoneEvent | Self::Opus | Self::Other(_) => None,
        }
    }

    /// The RTP clock rate the codec is always used with, if fixed.
    /// Telephone events follow the clock of the voice codec, so they have
    /// none; neither has an unknown codec.
    #[must_use]
    pub fn clock_rate(&self) -> Option<u32> {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 | Self::G729 => Some(8000),
            Self::Opus => Some(48000),
            Self::TelephoneEvent | Self::Other(_) => None,
        }
    }

    /// The channel count written in `a=rtpmap` (only Opus requires one).
    #[must_use]
    pub fn channels(&self) -> Option<u16> {
        match self {
            Self::Opus => Some(2),
            _ => None,
        }
    }

    /// Whether an `a=rtpmap` (or a static payload type expanded into one)
    /// describes this codec: same encoding name (case-insensitive) and, for
    /// codecs with a fixed clock, the same clock rate.
    #[must_use]
    pub fn matches(&self, map: &RtpMap) -> bool {
        if !self.encoding_name().eq_ignore_ascii_case(&map.encoding) {
            return false;
        }
        match self.clock_rate() {
            Some(rate) => rate == map.clock_rate,
            None => true,
        }
    }

    /// The `a=rtpmap` line for this codec at `payload_type`, when the clock
    /// rate is known (`telephone-event` uses 8000).
    #[must_use]
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        let clock_rate = match self {
            Self::TelephoneEvent => 8000,
            other => other.clock_rate()?,
        };
        Some(RtpMap {
            payload_type,
            encoding: self.encoding_name().to_owned(),
            clock_rate,
            channels: self.channels(),
        })
    }
}

impl FromStr for CodecName {
    type Err = CodecNameError;

    /// Parses a configuration name: `ulaw`/`pcmu`/`mulaw`, `alaw`/`pcma`,
    /// `opus`, `g722`, `g729`, `telephone-event` (case-insensitive); any
    /// other token becomes [`CodecName::Other`] so the caller can warn.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/');
        if bad {
            return Err(CodecNameError { name: s.to_owned() });
        }
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "ulaw" | "pcmu" | "mulaw" | "g711u" => Self::Pcmu,
            "alaw" | "pcma" | "g711a" => Self::Pcma,
            "opus" => Self::Opus,
            "g722" => Self::G722,
            "g729" => Self::G729,
            "telephone-event" | "dtmf" => Self::TelephoneEvent,
            _ => Self::Other(s.to_owned()),
        })
    }
}

impl fmt::Display for CodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// One row of the RFC 3551 static payload type table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticPayload {
    /// Encoding name as written in `a=rtpmap`.
    pub encoding: &'static str,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channel count, when not 1.
    pub channels: Option<u16>,
}

/// The static audio payload types of RFC 3551 Table 4 (and MPA, 14).
#[must_use]
pub fn static_payload(payload_type: u8) -> Option<StaticPayload> {
    let (encoding, clock_rate, channels) = match payload_type {
        0 => ("PCMU", 8000, None),
        3 => ("GSM", 8000, None),
        4 => ("G723", 8000, None),
        5 => ("DVI4", 8000, None),
        6 => ("DVI4", 16000, None),
        7 => ("LPC", 8000, None),
        8 => ("PCMA", 8000, None),
        9 => ("G722", 8000, None),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, None),
        12 => ("QCELP", 8000, None),
        13 => ("CN", 8000, None),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, None),
        16 => ("DVI4", 11025, None),
        17 => ("DVI4", 22050, None),
        18 => ("G729", 8000, None),
        _ => return None,
    };
    Some(StaticPayload {
        encoding,
        clock_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_map_to_codecs() {
        let cases = [
            ("ulaw", CodecName::Pcmu),
            ("PCMU", CodecName::Pcmu),
            ("alaw", CodecName::Pcma),
            ("pcma", CodecName::Pcma),
            ("opus", CodecName::Opus),
            ("g722", CodecName::G722),
            ("G729", CodecName::G729),
        ];
        for (name, codec) in cases {
            assert_eq!(name.parse::<CodecName>(), Ok(codec), "{name}");
        }
        assert_eq!(
            "speex".parse::<CodecName>(),
            Ok(CodecName::Other("speex".into()))
        );
        assert!("".parse::<CodecName>().is_err());
        assert!("u law".parse::<CodecName>().is_err());
    }

    #[test]
    fn static_payload_types_are_those_of_rfc_3551() {
        assert_eq!(CodecName::Pcmu.static_payload_type(), Some(0));
        assert_eq!(CodecName::Pcma.static_payload_type(), Some(8));
        assert_eq!(CodecName::G722.static_payload_type(), Some(9));
        assert_eq!(CodecName::G729.static_payload_type(), Some(18));
        assert_eq!(CodecName::Opus.static_payload_type(), None);
        for codec in [
            CodecName::Pcmu,
            CodecName::Pcma,
            CodecName::G722,
            CodecName::G729,
        ] {
            let pt = codec.static_payload_type().unwrap_or(255);
            let row = static_payload(pt).map(|r| r.encoding);
            assert_eq!(row, Some(codec.encoding_name()));
        }
        assert_eq!(static_payload(101), None);
    }

    #[test]
    fn matching_ignores_case_but_not_clock_rate() {
        let map = |enc: &str, rate| RtpMap {
            payload_type: 96,
            encoding: enc.into(),
            clock_rate: rate,
            channels: None,
        };
        assert!(CodecName::Pcmu.matches(&map("pcmu", 8000)));
        assert!(!CodecName::Pcmu.matches(&map("PCMU", 16000)));
        assert!(CodecName::Opus.matches(&map("OPUS", 48000)));
        assert!(CodecName::TelephoneEvent.matches(&map("telephone-event", 48000)));
        assert!(!CodecName::Pcma.matches(&map("PCMU", 8000)));
        assert!(CodecName::Other("speex".into()).matches(&map("SPEEX", 16000)));
    }

    #[test]
    fn encoding_names_round_trip_through_from_encoding_name() {
        for codec in [
            CodecName::Pcmu,
            CodecName::Pcma,
            CodecName::TelephoneEvent,
            CodecName::Opus,
            CodecName::G722,
            CodecName::G729,
        ] {
            assert_eq!(CodecName::from_encoding_name(codec.encoding_name()), codec);
        }
    }
}
