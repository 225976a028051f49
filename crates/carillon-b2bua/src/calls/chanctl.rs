//! Channel control for the management interfaces (REST API, AMI): the
//! list of live channels as plain data ([`ChannelInfo`]) and hanging one
//! up by name. Owns no teardown of its own: a hangup ends the channel's
//! call through the teardown module's `end_call` (CANCEL or BYE to the
//! other legs, a final response or BYE to the caller, events and the CDR
//! with the cause given).

use std::time::Instant;

use super::events::leg_uniqueid;
use super::model::{Call, ChanState, Channel};
use crate::switch::Switch;

/// One live channel as the management interfaces show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel's name as in events (`SIP/100-0000002a`).
    pub name: String,
    pub uniqueid: String,
    pub linkedid: String,
    /// `ringing` (no dialog yet), `early`, `up` or `down` (ending).
    pub state: &'static str,
    pub caller_num: String,
    pub caller_name: String,
    pub exten: String,
    pub context: String,
    /// The channel it is bridged with, if any.
    pub bridged_with: Option<String>,
    /// When the call started (ms since the epoch).
    pub start_ms: i64,
    /// When the call was answered (ms since the epoch), if it was.
    pub answer_ms: Option<i64>,
}

/// No live channel has that name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such channel: {0}")]
pub struct NotFound(pub String);

fn state_name(s: ChanState) -> &'static str {
    match s {
        ChanState::Calling => "ringing",
        ChanState::Early => "early",
        ChanState::Up => "up",
        ChanState::Ended { .. } => "down",
    }
}

fn info(call: &Call, leg: &Channel) -> ChannelInfo {
    let bridged_with = call.bridge.as_ref().and_then(|b| {
        if !b.has(leg.id) {
            return None;
        }
        let other = b.other_party(leg.id)?;
        call.channel(other).map(|c| c.channel.clone())
    });
    ChannelInfo {
        name: leg.channel.clone(),
        uniqueid: leg_uniqueid(call, leg),
        linkedid: call.uniqueid.clone(),
        state: state_name(leg.state),
        caller_num: call.caller_num.clone(),
        caller_name: call.caller_name.clone(),
        exten: call.exten.clone(),
        context: call.context.clone(),
        bridged_with,
        start_ms: call.start_ms,
        answer_ms: call.answer_ms,
    }
}

impl Switch {
    /// Every live channel (calls that have not ended), ordered by
    /// `uniqueid`.
    pub fn channel_list(&self) -> Vec<ChannelInfo> {
        let mut out: Vec<ChannelInfo> = self
            .calls
            .calls
            .values()
            .filter(|c| c.state != super::model::CallState::Ended)
            .flat_map(|c| {
                std::iter::once(&c.a)
                    .chain(c.forks.iter())
                    .map(move |l| (c, l))
            })
            .filter(|(_, l)| !l.state.is_ended())
            .map(|(c, l)| info(c, l))
            .collect();
        out.sort_by(|a, b| a.uniqueid.cmp(&b.uniqueid));
        out
    }

    /// Hangs up the channel `name` with the Q.850 `cause`: its call ends
    /// as when the switch hangs it up (every other leg gets its CANCEL or
    /// BYE, the caller its final response or BYE, the hangup events and
    /// the CDR carry `cause`).
    pub fn hangup_channel(
        &mut self,
        now: Instant,
        now_ms: u64,
        name: &str,
        cause: u8,
    ) -> Result<(), NotFound> {
        self.last_now = Some(now);
        self.now_ms = now_ms;
        let key = self
            .calls
            .calls
            .iter()
            .filter(|(_, c)| c.state != super::model::CallState::Ended)
            .find(|(_, c)| {
                std::iter::once(&c.a)
                    .chain(c.forks.iter())
                    .any(|l| l.channel == name && !l.state.is_ended())
            })
            .map(|(k, _)| *k)
            .ok_or_else(|| NotFound(name.to_owned()))?;
        tracing::info!(call = key, channel = name, cause, "hangup requested");
        self.end_call(now, now_ms, key, cause);
        self.flush_scratch();
        Ok(())
    }
}
