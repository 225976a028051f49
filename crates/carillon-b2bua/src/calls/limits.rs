//! Per-user call limits from `users.toml`: `max_calls` (concurrent calls
//! the user is in, as caller or as a rung/bridged callee) and `max_cps`
//! (new calls the user may place per second, a sliding one-second window).
//!
//! A caller over `max_calls` gets `486 Busy Here`, over `max_cps` a `503
//! Service Unavailable` with `Retry-After`; both carry a `Reason: Q.850`
//! header and leave a CDR (`BUSY`, cause 17, userfield `limit:max_calls`;
//! `FAILED`, cause 42, userfield `limit:max_cps`). A Dial to a user at its
//! `max_calls` skips that user's contacts and, when nothing else rings,
//! gives `DIALSTATUS=BUSY`. Users without limits cost nothing: counts are
//! taken only for users that have one. Owns the per-second windows; the
//! call counts are derived from the live calls, so they cannot leak.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use carillon_cdr::{CallRecord, Disposition};
use carillon_sip::Message;
use tracing::info;

use super::CallState;
use crate::endpoint::Peer;
use crate::switch::{Output, Switch};

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// `max_calls`: the user is already in `active` calls.
    Calls { limit: u32, active: usize },
    /// `max_cps`: the user placed `limit` calls in the last second.
    Cps { limit: u32 },
}

impl LimitExceeded {
    /// The SIP status owed to the caller.
    pub fn status(self) -> u16 {
        match self {
            LimitExceeded::Calls { .. } => 486,
            LimitExceeded::Cps { .. } => 503,
        }
    }

    /// Q.850 cause: user busy, or switching equipment congestion.
    pub fn cause(self) -> u8 {
        match self {
            LimitExceeded::Calls { .. } => 17,
            LimitExceeded::Cps { .. } => 42,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            LimitExceeded::Calls { .. } => "max_calls",
            LimitExceeded::Cps { .. } => "max_cps",
        }
    }
}

/// Recent call starts of users with a `max_cps`.
#[derive(Debug, Default)]
pub(crate) struct CpsWindows {
    by_user: HashMap<String, VecDeque<Instant>>,
}

impl CpsWindows {
    /// Records a call start unless `limit` starts happened in the last
    /// second; false when over the limit.
    pub fn try_start(&mut self, user: &str, limit: u32, now: Instant) -> bool {
        let w = self.by_user.entry(user.to_owned()).or_default();
        while w
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            w.pop_front();
        }
        if w.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return false;
        }
        w.push_back(now);
        true
    }

    /// Drops windows with nothing in the last second.
    pub fn purge(&mut self, now: Instant) {
        self.by_user.retain(|_, w| {
            w.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < Duration::from_secs(1))
        });
    }
}

impl Switch {
    /// Calls `user` is in: as the caller, or as a callee being rung or
    /// bridged.
    pub(crate) fn user_active_calls(&self, user: &str) -> usize {
        self.calls
            .calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .map(|c| {
                usize::from(c.caller_user.as_deref() == Some(user))
                    + c.forks
                        .iter()
                        .filter(|l| l.uac.user.as_deref() == Some(user) && !l.state.is_ended())
                        .count()
            })
            .sum()
    }

    /// Whether a Dial may ring `user` (below its `max_calls`).
    pub(crate) fn callee_below_limit(&self, user: &str) -> bool {
        match self.users.get(user).and_then(|u| u.max_calls) {
            Some(limit) => {
                self.user_active_calls(user) < usize::try_from(limit).unwrap_or(usize::MAX)
            }
            None => true,
        }
    }

    /// The caller's limits for a new call (a passing call counts towards
    /// its per-second window).
    pub(crate) fn check_caller_limits(
        &mut self,
        now: Instant,
        user: &str,
    ) -> Result<(), LimitExceeded> {
        let Some(u) = self.users.get(user) else {
            return Ok(());
        };
        let (max_calls, max_cps) = (u.max_calls, u.max_cps);
        if let Some(limit) = max_calls {
            let active = self.user_active_calls(user);
            if active >= usize::try_from(limit).unwrap_or(usize::MAX) {
                return Err(LimitExceeded::Calls { limit, active });
            }
        }
        if let Some(limit) = max_cps {
            self.calls.cps.purge(now);
            if !self.calls.cps.try_start(user, limit, now) {
                return Err(LimitExceeded::Cps { limit });
            }
        }
        Ok(())
    }

    /// Refuses a new call over a limit: 486/503 to the caller and a CDR.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refuse_over_limit(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
        caller: (&str, &str),
        exten: &str,
        context: &str,
        exceeded: LimitExceeded,
    ) -> u16 {
        let (caller_num, caller_name) = caller;
        match exceeded {
            LimitExceeded::Calls { limit, active } => {
                info!(caller = %caller_num, exten = %exten, limit, active, "call limit reached (max_calls): 486")
            }
            LimitExceeded::Cps { limit } => {
                info!(caller = %caller_num, exten = %exten, limit, "call rate limit reached (max_cps): 503")
            }
        }
        let status = exceeded.status();
        let reason = format!(
            "Q.850;cause={};text=\"{} reached\"",
            exceeded.cause(),
            exceeded.key()
        );
        self.respond(now, key, msg, peer, status, |b| {
            let b = b.header("Reason", reason);
            if status == 503 {
                b.header("Retry-After", "1")
            } else {
                b
            }
        });
        let id = self.calls.next_id();
        let uniqueid = format!("{}.{}-{:08x}", now_ms / 1000, id, self.rng_u64() as u32);
        let ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let record = CallRecord {
            uniqueid: uniqueid.clone(),
            linkedid: uniqueid,
            start_ms: ms,
            answer_ms: None,
            end_ms: ms,
            src: caller_num.to_owned(),
            dst: exten.to_owned(),
            clid: format!("\"{caller_name}\" <{caller_num}>"),
            dcontext: context.to_owned(),
            channel: format!("SIP/{caller_num}-{id:08x}"),
            dstchannel: String::new(),
            trunk: None,
            disposition: match exceeded {
                LimitExceeded::Calls { .. } => Disposition::Busy,
                LimitExceeded::Cps { .. } => Disposition::Failed,
            },
            hangup_cause: u16::from(exceeded.cause()),
            accountcode: None,
            userfield: Some(format!("limit:{}", exceeded.key())),
            recording: None,
        };
        info!(call = id, disposition = %record.disposition, billsec = 0, cause = record.hangup_cause, "call ended");
        self.outputs.push_back(Output::Cdr(record));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cps_window_admits_limit_starts_per_sliding_second() {
        let t0 = Instant::now();
        let mut w = CpsWindows::default();
        assert!(w.try_start("100", 2, t0));
        assert!(w.try_start("100", 2, t0 + Duration::from_millis(300)));
        assert!(!w.try_start("100", 2, t0 + Duration::from_millis(900)));
        assert!(
            w.try_start("200", 2, t0 + Duration::from_millis(900)),
            "per user"
        );
        assert!(w.try_start("100", 2, t0 + Duration::from_millis(1000)));
        assert!(!w.try_start("100", 2, t0 + Duration::from_millis(1200)));
        w.purge(t0 + Duration::from_secs(5));
        assert!(w.by_user.is_empty());
    }
}
