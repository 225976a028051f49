//! Session timers (RFC 4028) on each leg of a call, as carriers use them.
//!
//! Owns the negotiation of `Session-Expires`/`Min-SE` (as UAS on leg A and
//! on in-dialog refreshes, as UAC from the callee's 2xx on legs B), the
//! per-leg [`SessionTimer`], and its glue into the switch: when we are the
//! refresher we send a refresh (UPDATE when the peer allows it, else a
//! re-INVITE with our unchanged SDP) at half the interval; when we are not
//! and no refresh arrives, the call is torn down (BYE on both legs, CDR
//! with Q.850 cause 102 "recovery on timer expiry") a little before the
//! session would expire (§10: the smaller of 32 s and a third of the
//! interval). A `Session-Expires` below [`MIN_SE`] is answered 422 with
//! `Min-SE` (§6). It does not own the transactions of the refreshes.
//!
//! ```text
//!   negotiated ──(we refresh) interval/2──► refresh sent ──2xx──► negotiated
//!        │                                        └─ 408/481/timeout ─► BYE both
//!        └─(they refresh) no refresh by expiry − min(32, interval/3) ─► BYE both
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_sip::{HeaderName, Message, Method};
use carillon_transaction::ClientEvent;
use tracing::{info, warn};

use super::{ChanState, LegId, Timer};
use crate::switch::Switch;

/// Our minimum session interval (RFC 4028 §4: at least 90 s).
pub const MIN_SE: u32 = 90;

/// Q.850 cause for a session that expired (recovery on timer expiry).
pub const CAUSE_SESSION_EXPIRED: u8 = 102;

/// Who refreshes (RFC 4028 §4), in the roles of the transaction that
/// negotiated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` header value: delta-seconds and an optional
/// `refresher` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub interval: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let mut parts = value.split(';');
        let interval = parts.next()?.trim().parse().ok()?;
        let mut refresher = None;
        for p in parts {
            if let Some((n, v)) = p.split_once('=') {
                if n.trim().eq_ignore_ascii_case("refresher") {
                    refresher = match v.trim().to_ascii_lowercase().as_str() {
                        "uac" => Some(Refresher::Uac),
                        "uas" => Some(Refresher::Uas),
                        _ => return None,
                    };
                }
            }
        }
        Some(SessionExpires {
            interval,
            refresher,
        })
    }

    pub fn of(msg: &Message) -> Option<SessionExpires> {
        msg.header(HeaderName::SessionExpires)
            .and_then(|v| SessionExpires::parse(&v))
    }

    pub fn header_value(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.interval, r.as_str()),
            None => self.interval.to_string(),
        }
    }
}

/// The outcome of negotiating a request's `Session-Expires` as its UAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasNegotiation {
    /// The request asked for no session timer.
    None,
    /// Too small: answer 422 with this `Min-SE`.
    TooSmall { min_se: u32 },
    /// Accepted: put `se` in the 2xx (with `Require: timer` when the UAC
    /// supports timers); `we_refresh` when the refresher is us (uas).
    Accepted {
        se: SessionExpires,
        require_timer: bool,
        we_refresh: bool,
    },
}

/// RFC 4028 §9: the UAS side of a request carrying `Session-Expires`.
pub fn negotiate_uas(req: &Message) -> UasNegotiation {
    let Some(se) = SessionExpires::of(req) else {
        return UasNegotiation::None;
    };
    if se.interval < MIN_SE {
        let theirs = req
            .header(HeaderName::MinSe)
            .and_then(|v| v.split(';').next().and_then(|n| n.trim().parse().ok()))
            .unwrap_or(0);
        return UasNegotiation::TooSmall {
            min_se: MIN_SE.max(theirs),
        };
    }
    let uac_supports = super::prack::supports(req, "timer");
    // A UAC without timer support cannot refresh knowingly: we do.
    let refresher = match (uac_supports, se.refresher) {
        (false, _) => Refresher::Uas,
        (true, Some(r)) => r,
        (true, None) => Refresher::Uac,
    };
    UasNegotiation::Accepted {
        se: SessionExpires {
            interval: se.interval,
            refresher: Some(refresher),
        },
        require_timer: uac_supports,
        we_refresh: refresher == Refresher::Uas,
    }
}

/// RFC 4028 §7.2: the UAC side of a 2xx. `None`: no session timer (the
/// 2xx has no `Session-Expires`).
pub fn negotiate_uac(resp: &Message) -> Option<(u32, bool)> {
    let se = SessionExpires::of(resp)?;
    let we_refresh = se.refresher != Some(Refresher::Uas);
    Some((se.interval.max(MIN_SE), we_refresh))
}

/// What a [`SessionTimer`] says at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    Nothing,
    /// We are the refresher: send a refresh now.
    Refresh,
    /// No refresh in time: tear the call down.
    Expired,
}

/// One leg's session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    refreshed_at: Instant,
    refresh_sent: bool,
}

impl SessionTimer {
    pub fn new(now: Instant, interval_secs: u32, we_refresh: bool) -> Self {
        SessionTimer {
            interval: Duration::from_secs(u64::from(interval_secs.max(MIN_SE))),
            we_refresh,
            refreshed_at: now,
            refresh_sent: false,
        }
    }

    pub fn interval_secs(&self) -> u64 {
        self.interval.as_secs()
    }

    pub fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// A refresh succeeded (theirs arrived, or ours got a 2xx); the new
    /// negotiation may change the interval and the refresher.
    pub fn refreshed(&mut self, now: Instant, renegotiated: Option<(u32, bool)>) {
        if let Some((interval, we_refresh)) = renegotiated {
            self.interval = Duration::from_secs(u64::from(interval.max(MIN_SE)));
            self.we_refresh = we_refresh;
        }
        self.refreshed_at = now;
        self.refresh_sent = false;
    }

    fn refresh_at(&self) -> Option<Instant> {
        (self.we_refresh && !self.refresh_sent).then(|| self.refreshed_at + self.interval / 2)
    }

    /// When the session is given up: the refresher waits the whole
    /// interval for its refresh to succeed; the other side sends its BYE
    /// min(32 s, interval/3) before that (§10).
    pub fn expires_at(&self) -> Instant {
        if self.we_refresh {
            self.refreshed_at + self.interval
        } else {
            let margin = Duration::from_secs(32).min(self.interval / 3);
            self.refreshed_at + self.interval - margin
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        self.refresh_at()
            .map_or(self.expires_at(), |r| r.min(self.expires_at()))
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerAction {
        if self.expires_at() <= now {
            return TimerAction::Expired;
        }
        if self.refresh_at().is_some_and(|t| t <= now) {
            self.refresh_sent = true;
            return TimerAction::Refresh;
        }
        TimerAction::Nothing
    }
}

/// Which leg of a call a session timer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Side {
    A,
    B(LegId),
}

impl Switch {
    /// Starts or updates a leg's session timer and schedules it.
    pub(crate) fn arm_session_timer(
        &mut self,
        now: Instant,
        key: u64,
        side: Side,
        negotiated: Option<(u32, bool)>,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let leg = match side {
            Side::A => Some(&mut call.a),
            Side::B(id) => call.forks.iter_mut().find(|l| l.id == id),
        };
        let Some(leg) = leg else {
            return;
        };
        let at = match (&mut leg.session_timer, negotiated) {
            (Some(t), n) => {
                t.refreshed(now, n);
                t.poll_timeout()
            }
            (None, Some((interval, we_refresh))) => {
                let t = SessionTimer::new(now, interval, we_refresh);
                info!(
                    call = key,
                    leg = leg.id.0,
                    interval,
                    we_refresh,
                    "session timer started"
                );
                leg.session_timer = Some(t);
                t.poll_timeout()
            }
            (None, None) => return,
        };
        let id = leg.id;
        self.calls.schedule(at, Timer::Session(key, id));
    }

    /// A leg's session timer fired: refresh, or tear the call down.
    pub(crate) fn session_timeout(&mut self, now: Instant, now_ms: u64, key: u64, leg_id: LegId) {
        let Some(call) = self.calls.live(key) else {
            return;
        };
        let is_a = call.a.id == leg_id;
        let leg = if is_a {
            Some(&mut call.a)
        } else {
            call.forks.iter_mut().find(|l| l.id == leg_id)
        };
        let Some(leg) = leg else {
            return;
        };
        if leg.state != ChanState::Up {
            return;
        }
        let Some(timer) = leg.session_timer.as_mut() else {
            return;
        };
        if timer.poll_timeout() > now {
            return;
        }
        match timer.handle_timeout(now) {
            TimerAction::Nothing => {}
            TimerAction::Expired => {
                warn!(
                    call = key,
                    leg = leg_id.0,
                    interval = timer.interval_secs(),
                    "session expired without a refresh: hanging up"
                );
                self.end_call(now, now_ms, key, CAUSE_SESSION_EXPIRED);
                return;
            }
            TimerAction::Refresh => {
                let interval = timer.interval_secs();
                let mut snapshot = leg.clone();
                self.send_refresh(now, key, &mut snapshot, interval);
                if let Some(l) = self.calls.calls.get_mut(&key).and_then(|c| {
                    if c.a.id == leg_id {
                        Some(&mut c.a)
                    } else {
                        c.forks.iter_mut().find(|l| l.id == leg_id)
                    }
                }) {
                    l.local_cseq = snapshot.local_cseq;
                }
            }
        }
        let at = self
            .calls
            .calls
            .get(&key)
            .and_then(|c| {
                if c.a.id == leg_id {
                    Some(&c.a)
                } else {
                    c.forks.iter().find(|l| l.id == leg_id)
                }
            })
            .and_then(|l| l.session_timer.map(|t| t.poll_timeout()));
        if let Some(at) = at {
            self.calls.schedule(at, Timer::Session(key, leg_id));
        }
    }

    /// Our refresh on a leg: UPDATE without a body when the peer allows
    /// UPDATE, else a re-INVITE with our unchanged SDP (same version, so
    /// no new negotiation, RFC 3264 §8).
    fn send_refresh(&mut self, now: Instant, key: u64, leg: &mut super::Channel, interval: u64) {
        let headers = vec![
            (
                "Session-Expires".to_owned(),
                format!("{interval};refresher=uac"),
            ),
            ("Supported".to_owned(), "timer".to_owned()),
        ];
        let (method, body) = if leg.peer_allows_update {
            (Method::Update, None)
        } else {
            (
                Method::Invite,
                leg.local_sdp.as_ref().map(|s| Bytes::from(s.to_bytes())),
            )
        };
        info!(call = key, leg = leg.id.0, method = %method, interval, "session refresh sent");
        self.send_in_dialog_with(now, key, leg, method, headers, body);
    }

    /// Responses to our refresh: ACK a re-INVITE's 2xx, then act on it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refresh_response(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        method: &Method,
        events: &[ClientEvent],
        msg: &Message,
    ) {
        for ev in events {
            match ev {
                ClientEvent::Final(s) => {
                    if *method == Method::Invite && (200..300).contains(s) {
                        self.ack_refresh(key, leg_id, msg);
                    }
                    self.refresh_answered(now, now_ms, key, leg_id, *s, Some(msg));
                }
                ClientEvent::Retransmitted2xx => self.ack_refresh(key, leg_id, msg),
                ClientEvent::TimedOut | ClientEvent::TransportFailed => {
                    self.refresh_answered(now, now_ms, key, leg_id, 408, None)
                }
                ClientEvent::Provisional(_) | ClientEvent::Terminated => {}
            }
        }
    }

    /// ACK for the 2xx of our refresh re-INVITE (RFC 3261 §13.2.2.4).
    fn ack_refresh(&mut self, key: u64, leg_id: LegId, msg: &Message) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let leg = if call.a.id == leg_id {
            Some(&call.a)
        } else {
            call.forks.iter().find(|l| l.id == leg_id)
        };
        let Some(leg) = leg else {
            return;
        };
        let cseq = msg.cseq().map_or(leg.local_cseq, |c| c.seq);
        let branch = format!("z9hG4bK{}r{cseq}", leg.local_tag);
        let bytes = Self::build_ack(
            &self.calls.sip_host,
            leg,
            &branch,
            cseq,
            leg.remote_tag.as_deref(),
        );
        self.scratch.push(crate::endpoint::Transmit {
            to: leg.peer,
            bytes,
        });
    }

    /// The answer to our refresh on a leg.
    pub(crate) fn refresh_answered(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        status: u16,
        msg: Option<&Message>,
    ) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let side = if call.a.id == leg_id {
            Side::A
        } else {
            Side::B(leg_id)
        };
        match status {
            200..=299 => {
                // Without a Session-Expires the timer keeps its settings
                // and restarts its interval.
                let renegotiated = msg.and_then(negotiate_uac);
                self.arm_session_timer(now, key, side, renegotiated);
            }
            408 | 481 => {
                warn!(
                    call = key,
                    leg = leg_id.0,
                    status,
                    "session refresh failed: hanging up"
                );
                self.end_call(now, now_ms, key, CAUSE_SESSION_EXPIRED);
            }
            // Other failures (491, 5xx): the session expires unless a later
            // refresh succeeds.
            _ => info!(
                call = key,
                leg = leg_id.0,
                status,
                "session refresh refused"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expires_parses_interval_and_refresher() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=uac"),
            Some(SessionExpires {
                interval: 1800,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 "),
            Some(SessionExpires {
                interval: 90,
                refresher: None
            })
        );
        assert_eq!(SessionExpires::parse("90;refresher=both"), None);
        assert_eq!(SessionExpires::parse("soon"), None);
    }

    #[test]
    fn the_refresher_refreshes_at_half_the_interval_and_expires_at_the_end() {
        let t0 = Instant::now();
        let mut t = SessionTimer::new(t0, 120, true);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(60));
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(60)),
            TimerAction::Refresh
        );
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(120));
        t.refreshed(t0 + Duration::from_secs(61), None);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(121));
    }

    #[test]
    fn the_other_side_gives_up_a_third_of_the_interval_early_at_most_32_s() {
        let t0 = Instant::now();
        let t = SessionTimer::new(t0, 90, false);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(60));
        let t = SessionTimer::new(t0, 1800, false);
        assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(1768));
        let mut t = SessionTimer::new(t0, 1800, false);
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(1768)),
            TimerAction::Expired
        );
    }
}
