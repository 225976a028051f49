//! The [`CallRecord`] of one call leg pair and its [`Disposition`].
//!
//! Owns: the record fields, the Asterisk disposition strings, and the rule
//! that derives `duration` (end − start) and `billsec` (end − answer) in whole
//! seconds, rounded down like Asterisk's default, never negative.
//! Does not own: where records go (see [`crate::CdrSink`]).
//!
//! Serialized form (JSON for the spool and the API) carries every field plus
//! the derived `duration` and `billsec`; on deserialization those two are
//! ignored and recomputed from the timestamps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a call ended, with Asterisk's `disposition` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Disposition {
    /// The callee answered (`ANSWERED`).
    #[serde(rename = "ANSWERED")]
    Answered,
    /// Nobody answered before the caller gave up or the ring timed out (`NO ANSWER`).
    #[serde(rename = "NO ANSWER")]
    NoAnswer,
    /// The callee was busy (`BUSY`).
    #[serde(rename = "BUSY")]
    Busy,
    /// The call could not be set up (`FAILED`).
    #[serde(rename = "FAILED")]
    Failed,
    /// The caller cancelled before an answer (`CANCEL`).
    #[serde(rename = "CANCEL")]
    Cancel,
}

impl Disposition {
    /// Every disposition, in declaration order.
    pub const ALL: [Disposition; 5] = [
        Disposition::Answered,
        Disposition::NoAnswer,
        Disposition::Busy,
        Disposition::Failed,
        Disposition::Cancel,
    ];

    /// The Asterisk string, e.g. `"NO ANSWER"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Cancel => "CANCEL",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the five Asterisk disposition strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CDR disposition {0:?} (expected ANSWERED, NO ANSWER, BUSY, FAILED or CANCEL)")]
pub struct ParseDispositionError(pub String);

impl FromStr for Disposition {
    type Err = ParseDispositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| ParseDispositionError(s.to_owned()))
    }
}

/// One call detail record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "CallRecordWire", into = "CallRecordWire")]
pub struct CallRecord {
    /// Unique id of this record (primary key in storage).
    pub uniqueid: String,
    /// Id shared by every record of the same call (the first leg's uniqueid).
    pub linkedid: String,
    /// When the call started, unix milliseconds.
    pub start_ms: i64,
    /// When the call was answered, unix milliseconds; `None` if never answered.
    pub answer_ms: Option<i64>,
    /// When the call ended, unix milliseconds.
    pub end_ms: i64,
    /// Calling number.
    pub src: String,
    /// Dialled number.
    pub dst: String,
    /// Caller id as `"name" <number>`.
    pub clid: String,
    /// Dialplan context the call was routed in.
    pub dcontext: String,
    /// Calling channel name.
    pub channel: String,
    /// Called channel name (empty if none was created).
    pub dstchannel: String,
    /// Trunk the call went out or came in on, if any.
    pub trunk: Option<String>,
    /// How the call ended.
    pub disposition: Disposition,
    /// Q.850 cause value of the hangup (16 = normal clearing).
    pub hangup_cause: u16,
    /// Account code for billing, if set.
    pub accountcode: Option<String>,
    /// Free-form user field, if set.
    pub userfield: Option<String>,
    /// The call's recording (MixMonitor), as the switch named the WAV file;
    /// `None` when the call was not recorded.
    pub recording: Option<String>,
}

impl CallRecord {
    /// Whole seconds from start to end, rounded down, never negative.
    pub fn duration(&self) -> i64 {
        whole_seconds(self.start_ms, self.end_ms)
    }

    /// Whole seconds from answer to end, rounded down, never negative;
    /// 0 when the call was never answered.
    pub fn billsec(&self) -> i64 {
        self.answer_ms
            .map_or(0, |answer| whole_seconds(answer, self.end_ms))
    }
}

fn whole_seconds(from_ms: i64, to_ms: i64) -> i64 {
    (to_ms.saturating_sub(from_ms)).max(0) / 1000
}

/// Serialized shape of a [`CallRecord`]: the fields plus the derived
/// `duration` and `billsec`, which are ignored when reading.
#[derive(Serialize, Deserialize)]
struct CallRecordWire {
    uniqueid: String,
    linkedid: String,
    start_ms: i64,
    #[serde(default)]
    answer_ms: Option<i64>,
    end_ms: i64,
    #[serde(default)]
    duration: i64,
    #[serde(default)]
    billsec: i64,
    src: String,
    dst: String,
    clid: String,
    dcontext: String,
    channel: String,
    dstchannel: String,
    #[serde(default)]
    trunk: Option<String>,
    disposition: Disposition,
    hangup_cause: u16,
    #[serde(default)]
    accountcode: Option<String>,
    #[serde(default)]
    userfield: Option<String>,
    #[serde(default)]
    recording: Option<String>,
}

impl From<CallRecordWire> for CallRecord {
    fn from(w: CallRecordWire) -> Self {
        CallRecord {
            uniqueid: w.uniqueid,
            linkedid: w.linkedid,
            start_ms: w.start_ms,
            answer_ms: w.answer_ms,
            end_ms: w.end_ms,
            src: w.src,
            dst: w.dst,
            clid: w.clid,
            dcontext: w.dcontext,
            channel: w.channel,
            dstchannel: w.dstchannel,
            trunk: w.trunk,
            disposition: w.disposition,
            hangup_cause: w.hangup_cause,
            accountcode: w.accountcode,
            userfield: w.userfield,
            recording: w.recording,
        }
    }
}

impl From<CallRecord> for CallRecordWire {
    fn from(r: CallRecord) -> Self {
        CallRecordWire {
            duration: r.duration(),
            billsec: r.billsec(),
            uniqueid: r.uniqueid,
            linkedid: r.linkedid,
            start_ms: r.start_ms,
            answer_ms: r.answer_ms,
            end_ms: r.end_ms,
            src: r.src,
            dst: r.dst,
            clid: r.clid,
            dcontext: r.dcontext,
            channel: r.channel,
            dstchannel: r.dstchannel,
            trunk: r.trunk,
            disposition: r.disposition,
            hangup_cause: r.hangup_cause,
            accountcode: r.accountcode,
            userfield: r.userfield,
            recording: r.recording,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> CallRecord {
        CallRecord {
            uniqueid: "1700000000.1".to_owned(),
            linkedid: "1700000000.1".to_owned(),
            start_ms: 1_700_000_000_000,
            answer_ms: Some(1_700_000_004_500),
            end_ms: 1_700_000_065_499,
            src: "1001".to_owned(),
            dst: "2002".to_owned(),
            clid: "\"Alice\" <1001>".to_owned(),
            dcontext: "internal".to_owned(),
            channel: "SIP/1001-00000001".to_owned(),
            dstchannel: "SIP/2002-00000002".to_owned(),
            trunk: None,
            disposition: Disposition::Answered,
            hangup_cause: 16,
            accountcode: Some("sales".to_owned()),
            userfield: None,
            recording: None,
        }
    }

    #[test]
    fn durations_are_whole_seconds_rounded_down() {
        let r = sample();
        assert_eq!(r.duration(), 65);
        assert_eq!(r.billsec(), 60);
    }

    #[test]
    fn unanswered_call_bills_zero_seconds() {
        let r = CallRecord {
            answer_ms: None,
            disposition: Disposition::NoAnswer,
            ..sample()
        };
        assert_eq!(r.billsec(), 0);
        assert_eq!(r.duration(), 65);
    }

    #[test]
    fn end_before_start_gives_zero_not_negative_durations() {
        let r = CallRecord {
            end_ms: 1_600_000_000_000,
            ..sample()
        };
        assert_eq!(r.duration(), 0);
        assert_eq!(r.billsec(), 0);
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let r = CallRecord {
            start_ms: i64::MIN,
            answer_ms: Some(i64::MIN),
            end_ms: i64::MAX,
            ..sample()
        };
        assert_eq!(r.duration(), i64::MAX / 1000);
    }

    #[test]
    fn dispositions_use_the_asterisk_strings_in_both_directions() {
        let expected = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CANCEL"];
        for (d, s) in Disposition::ALL.into_iter().zip(expected) {
            assert_eq!(d.to_string(), s);
            assert_eq!(s.parse::<Disposition>(), Ok(d));
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<Disposition>(&format!("\"{s}\"")).unwrap(),
                d
            );
        }
        assert!("answered".parse::<Disposition>().is_err());
    }

    #[test]
    fn json_round_trip_keeps_every_field_and_shows_derived_durations() {
        let r = CallRecord {
            trunk: Some("gsm-1".to_owned()),
            userfield: Some("x".to_owned()),
            recording: Some("var/recordings/1700000000.1.wav".to_owned()),
            ..sample()
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["recording"], "var/recordings/1700000000.1.wav");
        assert_eq!(json["duration"], 65);
        assert_eq!(json["billsec"], 60);
        assert_eq!(json["disposition"], "ANSWERED");
        let back: CallRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_spooled_record_from_before_recordings_reads_as_not_recorded() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json.as_object_mut().unwrap().remove("recording");
        let back: CallRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.recording, None);
    }

    #[test]
    fn stale_durations_in_json_are_recomputed_from_timestamps() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json["duration"] = 9999.into();
        json["billsec"] = 9999.into();
        let back: CallRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.duration(), 65);
        assert_eq!(back.billsec(), 60);
    }
}
