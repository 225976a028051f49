//! DTMF carried in SIP INFO bodies: the two de-facto formats phones and
//! gateways send inside a call, `application/dtmf-relay` (`Signal=5` and
//! `Duration=160` lines, Cisco's format) and `application/dtmf` (a bare
//! digit). Owns the body parser and the body the switch sends
//! ([`relay_body`], dtmf-relay, sent by `dtmf_relay` to a leg in `info`
//! mode); the INFO request itself is answered
//! in `calls` (200 when a digit was read, 415 with `Accept` for any other
//! body type, 400 for a malformed body), and the digit then goes through
//! the same path as an RFC 4733 digit from the media plane.
//!
//! Digits are `0`–`9`, `*`, `#` and `A`–`D` (RFC 4733 events 0–15);
//! anything else is malformed. No RFC defines these bodies (RFC 6086 left
//! DTMF to an Info Package that phones do not use), so the parser takes
//! what the common implementations send: either line ending, keys in any
//! case, blanks around `=`, unknown keys ignored.

use std::time::Duration;

/// The `Accept` value of a 415 to an INFO: the body types read here.
pub const ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// The Content-Type of the INFO bodies the switch sends.
pub const RELAY_TYPE: &str = "application/dtmf-relay";

/// The `application/dtmf-relay` body of `digit` held for `duration`
/// (whole milliseconds): `Signal=5\r\nDuration=160\r\n`.
pub fn relay_body(digit: char, duration: Duration) -> String {
    format!("Signal={digit}\r\nDuration={}\r\n", duration.as_millis())
}

/// One digit read from an INFO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    /// `0`–`9`, `*`, `#`, `A`–`D` (upper case).
    pub digit: char,
    /// The `Duration` of a dtmf-relay body (milliseconds), if given.
    pub duration: Option<Duration>,
}

/// Why an INFO body is not a digit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfInfoError {
    /// Not one of the types in [`ACCEPT`] (415).
    #[error("unsupported INFO body type {0:?}")]
    MediaType(String),
    /// The body is not UTF-8 text (400).
    #[error("DTMF body is not text")]
    NotText,
    /// A dtmf-relay body without a `Signal` line (400).
    #[error("dtmf-relay body without Signal")]
    MissingSignal,
    /// A `Signal` or bare digit that is not one digit of 0-9 * # A-D (400).
    #[error("bad DTMF digit {0:?}")]
    BadDigit(String),
    /// A `Duration` that is not a number of milliseconds (400).
    #[error("bad DTMF Duration {0:?}")]
    BadDuration(String),
    /// A line of a dtmf-relay body without `=` (400).
    #[error("malformed dtmf-relay line {0:?}")]
    BadLine(String),
}

impl DtmfInfoError {
    /// The response an INFO with this body is owed.
    pub fn status(&self) -> u16 {
        match self {
            DtmfInfoError::MediaType(_) => 415,
            _ => 400,
        }
    }
}

/// Reads the digit of an INFO body of type `content_type` (the
/// Content-Type value, parameters allowed).
pub fn parse(content_type: &str, body: &[u8]) -> Result<InfoDigit, DtmfInfoError> {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let relay = media_type.eq_ignore_ascii_case("application/dtmf-relay");
    if !relay && !media_type.eq_ignore_ascii_case("application/dtmf") {
        return Err(DtmfInfoError::MediaType(media_type.to_owned()));
    }
    let text = std::str::from_utf8(body).map_err(|_| DtmfInfoError::NotText)?;
    if !relay {
        return Ok(InfoDigit {
            digit: digit(text.trim())?,
            duration: None,
        });
    }
    let mut signal = None;
    let mut duration = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(DtmfInfoError::BadLine(line.to_owned()));
        };
        let value = value.trim();
        match key.trim() {
            k if k.eq_ignore_ascii_case("signal") => signal = Some(digit(value)?),
            k if k.eq_ignore_ascii_case("duration") => {
                let ms: u32 = value
                    .parse()
                    .map_err(|_| DtmfInfoError::BadDuration(value.to_owned()))?;
                duration = Some(Duration::from_millis(u64::from(ms)));
            }
            _ => {}
        }
    }
    Ok(InfoDigit {
        digit: signal.ok_or(DtmfInfoError::MissingSignal)?,
        duration,
    })
}

/// One DTMF digit, upper-cased.
fn digit(s: &str) -> Result<char, DtmfInfoError> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#') => Ok(c),
        (Some(c), None) if matches!(c.to_ascii_uppercase(), 'A'..='D') => {
            Ok(c.to_ascii_uppercase())
        }
        _ => Err(DtmfInfoError::BadDigit(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ct: &str, body: &str) -> InfoDigit {
        parse(ct, body.as_bytes()).unwrap_or_else(|e| panic!("{ct} {body:?}: {e}"))
    }

    #[test]
    fn a_dtmf_relay_body_gives_its_signal_and_duration() {
        assert_eq!(
            ok("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            InfoDigit {
                digit: '5',
                duration: Some(Duration::from_millis(160)),
            }
        );
        let d = ok(
            "Application/DTMF-Relay; charset=x",
            "signal = #\nDURATION= 250",
        );
        assert_eq!(
            (d.digit, d.duration),
            ('#', Some(Duration::from_millis(250)))
        );
        let d = ok("application/dtmf-relay", "Signal=d\r\n");
        assert_eq!((d.digit, d.duration), ('D', None));
        let d = ok(
            "application/dtmf-relay",
            "Signal=*\r\nDuration=100\r\nVolume=10\r\n",
        );
        assert_eq!(d.digit, '*');
    }

    #[test]
    fn the_body_sent_is_dtmf_relay_and_reads_back_as_the_same_digit() {
        let body = relay_body('5', Duration::from_millis(160));
        assert_eq!(body, "Signal=5\r\nDuration=160\r\n");
        for c in "0123456789*#ABCD".chars() {
            let d = ok(RELAY_TYPE, &relay_body(c, Duration::from_millis(250)));
            assert_eq!((d.digit, d.duration), (c, Some(Duration::from_millis(250))));
        }
    }

    #[test]
    fn an_application_dtmf_body_is_a_bare_digit() {
        for (body, want) in [("5", '5'), ("0\r\n", '0'), (" # ", '#'), ("a", 'A')] {
            assert_eq!(ok("application/dtmf", body).digit, want, "{body:?}");
        }
    }

    #[test]
    fn every_digit_0_to_9_star_hash_and_a_to_d_is_read() {
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(ok("application/dtmf", &c.to_string()).digit, c);
            assert_eq!(
                ok(
                    "application/dtmf-relay",
                    &format!("Signal={c}\r\nDuration=160")
                )
                .digit,
                c
            );
        }
    }

    #[test]
    fn malformed_bodies_are_400_with_what_is_wrong() {
        for (ct, body, err) in [
            (
                "application/dtmf-relay",
                "Duration=160\r\n",
                DtmfInfoError::MissingSignal,
            ),
            (
                "application/dtmf-relay",
                "Signal=E\r\nDuration=160\r\n",
                DtmfInfoError::BadDigit("E".into()),
            ),
            (
                "application/dtmf-relay",
                "Signal=12\r\n",
                DtmfInfoError::BadDigit("12".into()),
            ),
            (
                "application/dtmf-relay",
                "Signal=\r\n",
                DtmfInfoError::BadDigit(String::new()),
            ),
            (
                "application/dtmf-relay",
                "Signal=5\r\nDuration=long\r\n",
                DtmfInfoError::BadDuration("long".into()),
            ),
            (
                "application/dtmf-relay",
                "Signal 5\r\n",
                DtmfInfoError::BadLine("Signal 5".into()),
            ),
            (
                "application/dtmf",
                "55",
                DtmfInfoError::BadDigit("55".into()),
            ),
            (
                "application/dtmf",
                "",
                DtmfInfoError::BadDigit(String::new()),
            ),
            ("application/dtmf", "x", DtmfInfoError::BadDigit("x".into())),
        ] {
            let e = parse(ct, body.as_bytes()).unwrap_err();
            assert_eq!((e.status(), &e), (400, &err), "{ct} {body:?}");
        }
        let e = parse("application/dtmf", &[0xff, 0xfe]).unwrap_err();
        assert_eq!((e.status(), e), (400, DtmfInfoError::NotText));
    }

    #[test]
    fn other_body_types_are_415() {
        for ct in [
            "text/plain",
            "application/sdp",
            "",
            "application/dtmf-relayx",
        ] {
            let e = parse(ct, b"Signal=5\r\n").unwrap_err();
            assert_eq!(e.status(), 415, "{ct:?}");
        }
    }
}
