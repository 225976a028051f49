//! CDR: the call record a call leaves.
//!
//! Owns turning a finished [`Call`] into its [`CallRecord`]: the
//! disposition (answered, else cancelled, else the last `Dial`'s status),
//! the caller id, the channels (the caller's; the callee that answered
//! last, else the first fork still ringing), the stamps, the trunk, the
//! hangup cause and the MixMonitor recording. Reached through the call
//! itself ([`Call::into_record`]): it needs nothing of the switch.

use carillon_cdr::{CallRecord, Disposition};
use carillon_dialplan::DialStatus;

use super::model::Call;
use crate::header_text::concat;

impl Call {
    /// The record of this call, ended at `now_ms` (wall clock, ms since
    /// the Unix epoch). The call is gone: its texts move into the record.
    pub(super) fn into_record(mut self, now_ms: u64) -> CallRecord {
        let call = &mut self;
        let disposition = if call.answer_ms.is_some() {
            Disposition::Answered
        } else if call.cancelled {
            Disposition::Cancel
        } else {
            match call.last_dial_status {
                Some(DialStatus::Busy) => Disposition::Busy,
                Some(DialStatus::NoAnswer) => Disposition::NoAnswer,
                Some(DialStatus::Cancel) => Disposition::Cancel,
                _ => Disposition::Failed,
            }
        };
        let end_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let take = std::mem::take::<String>;
        let clid = concat(&["\"", &call.caller_name, "\" <", &call.caller_num, ">"]);
        CallRecord {
            uniqueid: call.uniqueid.clone(),
            linkedid: take(&mut call.uniqueid),
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            end_ms,
            src: take(&mut call.caller_num),
            dst: take(&mut call.exten),
            clid,
            dcontext: take(&mut call.context),
            channel: take(&mut call.a.channel),
            // The party that answered (the last one, after a Dial that
            // continued), else the first leg still ringing.
            dstchannel: match call.answered_channel.take() {
                Some(channel) => channel,
                None => call
                    .forks
                    .first_mut()
                    .map(|l| take(&mut l.channel))
                    .unwrap_or_default(),
            },
            trunk: call.trunk.take(),
            disposition,
            hangup_cause: call.hangup_cause,
            accountcode: None,
            userfield: None,
            recording: call.recording.take(),
        }
    }
}
