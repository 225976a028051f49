//! Message-waiting indication: the sans-IO state of RFC 3842
//! `message-summary` subscriptions (RFC 6665 SUBSCRIBE/NOTIFY).
//!
//! Owns the subscriptions (mailbox, expiry, last counts sent), the
//! `Expires` bounds, the `Event` package check, the
//! `application/simple-message-summary` body and the
//! `Subscription-State` value of each NOTIFY. It does not parse SIP or
//! send anything: the caller feeds it SUBSCRIBE decisions, mailbox count
//! changes, NOTIFY failures and time, and drains [`Notify`] actions with
//! [`Subscriptions::poll_notify`]; [`Subscriptions::poll_timeout`] gives
//! the next instant [`Subscriptions::handle_timeout`] must run.
//!
//! Not yet wired into the switch (SUBSCRIBE still gets 405 there).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The only event package honoured.
pub const EVENT_PACKAGE: &str = "message-summary";
/// The NOTIFY body's content type.
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// Bounds on a subscription's lifetime, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwiConfig {
    /// Shorter non-zero requests get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requests are cut down to this.
    pub max_expires: u32,
    /// Used when the SUBSCRIBE has no `Expires`.
    pub default_expires: u32,
}

impl Default for MwiConfig {
    fn default() -> Self {
        MwiConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
        }
    }
}

/// Why a SUBSCRIBE is refused; each maps to one SIP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MwiError {
    /// No or another `Event` package: 489 Bad Event.
    #[error("bad event package: {0:?}")]
    BadEvent(Option<String>),
    /// Non-zero `Expires` below the minimum: 423 with `Min-Expires`.
    #[error("interval too brief, minimum {min}")]
    IntervalTooBrief { min: u32 },
    /// In-dialog SUBSCRIBE for no known subscription: 481.
    #[error("no such subscription")]
    NoSuchSubscription,
}

impl MwiError {
    /// The SIP status code answering the SUBSCRIBE.
    pub fn status(&self) -> u16 {
        match self {
            MwiError::BadEvent(_) => 489,
            MwiError::IntervalTooBrief { .. } => 423,
            MwiError::NoSuchSubscription => 481,
        }
    }
}

/// Checks the `Event` header value (parameters such as `;id=` ignored).
pub fn check_event(event: Option<&str>) -> Result<(), MwiError> {
    let package = event.map(|e| e.split(';').next().unwrap_or("").trim());
    match package {
        Some(p) if p.eq_ignore_ascii_case(EVENT_PACKAGE) => Ok(()),
        _ => Err(MwiError::BadEvent(event.map(str::to_owned))),
    }
}

/// A mailbox's voice message counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub new: usize,
    pub old: usize,
}

impl Summary {
    /// The RFC 3842 body for `account` (e.g. `sip:101@host`).
    pub fn body(&self, account: &str) -> String {
        format!(
            "Messages-Waiting: {}\r\nMessage-Account: {}\r\nVoice-Message: {}/{} (0/0)\r\n",
            if self.new > 0 { "yes" } else { "no" },
            account,
            self.new,
            self.old
        )
    }
}

/// A subscription's handle, chosen by the caller (e.g. the dialog key).
pub type SubId = String;

/// The `Subscription-State` of one NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// `active;expires=N`.
    Active { expires: u32 },
    /// `terminated;reason=R` (`timeout`, or none for an unsubscribe).
    Terminated { reason: Option<&'static str> },
}

impl SubState {
    /// The header value.
    pub fn header_value(&self) -> String {
        match self {
            SubState::Active { expires } => format!("active;expires={expires}"),
            SubState::Terminated { reason: Some(r) } => format!("terminated;reason={r}"),
            SubState::Terminated { reason: None } => "terminated".to_owned(),
        }
    }
}

/// A NOTIFY the caller must send in the subscription's dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub id: SubId,
    pub mailbox: String,
    pub state: SubState,
    pub summary: Summary,
}

#[derive(Debug, Clone)]
struct Subscription {
    mailbox: String,
    expires_at: Instant,
    sent: Summary,
}

/// All live `message-summary` subscriptions.
#[derive(Debug, Default)]
pub struct Subscriptions {
    config: MwiConfig,
    subs: BTreeMap<SubId, Subscription>,
    out: VecDeque<Notify>,
}

impl Subscriptions {
    pub fn new(config: MwiConfig) -> Subscriptions {
        Subscriptions {
            config,
            subs: BTreeMap::new(),
            out: VecDeque::new(),
        }
    }

    /// The granted lifetime for a requested `Expires` (0 means unsubscribe).
    pub fn grant(&self, requested: Option<u32>) -> Result<u32, MwiError> {
        match requested {
            None => Ok(self.config.default_expires.min(self.config.max_expires)),
            Some(0) => Ok(0),
            Some(n) if n < self.config.min_expires => Err(MwiError::IntervalTooBrief {
                min: self.config.min_expires,
            }),
            Some(n) => Ok(n.min(self.config.max_expires)),
        }
    }

    /// An initial SUBSCRIBE (new dialog `id`): returns the granted expiry
    /// for the 200 and queues the immediate NOTIFY. `Expires: 0` is a
    /// fetch: one terminated NOTIFY, no subscription kept.
    pub fn subscribe(
        &mut self,
        now: Instant,
        id: &str,
        mailbox: &str,
        requested: Option<u32>,
        summary: Summary,
    ) -> Result<u32, MwiError> {
        let expires = self.grant(requested)?;
        if expires == 0 {
            self.queue(id, mailbox, SubState::Terminated { reason: None }, summary);
            return Ok(0);
        }
        self.subs.insert(
            id.to_owned(),
            Subscription {
                mailbox: mailbox.to_owned(),
                expires_at: now + Duration::from_secs(u64::from(expires)),
                sent: summary,
            },
        );
        self.queue(id, mailbox, SubState::Active { expires }, summary);
        Ok(expires)
    }

    /// An in-dialog SUBSCRIBE: refresh, or unsubscribe with `Expires: 0`.
    /// Queues the NOTIFY RFC 6665 requires either way.
    pub fn refresh(
        &mut self,
        now: Instant,
        id: &str,
        requested: Option<u32>,
        summary: Summary,
    ) -> Result<u32, MwiError> {
        if !self.subs.contains_key(id) {
            return Err(MwiError::NoSuchSubscription);
        }
        let expires = self.grant(requested)?;
        if expires == 0 {
            if let Some(sub) = self.subs.remove(id) {
                self.queue(
                    id,
                    &sub.mailbox,
                    SubState::Terminated { reason: None },
                    summary,
                );
            }
            return Ok(0);
        }
        let mailbox = match self.subs.get_mut(id) {
            Some(sub) => {
                sub.expires_at = now + Duration::from_secs(u64::from(expires));
                sub.sent = summary;
                sub.mailbox.clone()
            }
            None => return Err(MwiError::NoSuchSubscription),
        };
        self.queue(id, &mailbox, SubState::Active { expires }, summary);
        Ok(expires)
    }

    /// The mailbox's counts are now `summary`: a NOTIFY to every
    /// subscription of it whose last NOTIFY carried other counts.
    pub fn counts_changed(&mut self, now: Instant, mailbox: &str, summary: Summary) {
        let mut due = Vec::new();
        for (id, sub) in self.subs.iter_mut() {
            if sub.mailbox == mailbox && sub.sent != summary {
                sub.sent = summary;
                let left = sub.expires_at.saturating_duration_since(now).as_secs();
                due.push((id.clone(), u32::try_from(left).unwrap_or(u32::MAX)));
            }
        }
        for (id, expires) in due {
            self.queue(&id, mailbox, SubState::Active { expires }, summary);
        }
    }

    /// A NOTIFY got 481 or timed out (408): the subscription is gone.
    pub fn notify_failed(&mut self, id: &str) -> bool {
        self.subs.remove(id).is_some()
    }

    /// Ends expired subscriptions with `terminated;reason=timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<SubId> = self
            .subs
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(sub) = self.subs.remove(&id) {
                self.queue(
                    &id,
                    &sub.mailbox,
                    SubState::Terminated {
                        reason: Some("timeout"),
                    },
                    sub.sent,
                );
            }
        }
    }

    /// The next expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs.values().map(|s| s.expires_at).min()
    }

    /// The next NOTIFY to send.
    pub fn poll_notify(&mut self) -> Option<Notify> {
        self.out.pop_front()
    }

    /// Whether subscription `id` is live.
    pub fn is_active(&self, id: &str) -> bool {
        self.subs.contains_key(id)
    }

    fn queue(&mut self, id: &str, mailbox: &str, state: SubState, summary: Summary) {
        self.out.push_back(Notify {
            id: id.to_owned(),
            mailbox: mailbox.to_owned(),
            state,
            summary,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs() -> Subscriptions {
        Subscriptions::new(MwiConfig::default())
    }

    #[test]
    fn event_package_checked() {
        assert!(check_event(Some("message-summary")).is_ok());
        assert!(check_event(Some("Message-Summary;id=1")).is_ok());
        assert_eq!(check_event(Some("presence")).unwrap_err().status(), 489);
        assert_eq!(check_event(None).unwrap_err().status(), 489);
    }

    #[test]
    fn body_is_rfc3842() {
        let b = Summary { new: 1, old: 2 }.body("sip:101@127.0.0.1");
        assert_eq!(
            b,
            "Messages-Waiting: yes\r\nMessage-Account: sip:101@127.0.0.1\r\nVoice-Message: 1/2 (0/0)\r\n"
        );
        assert!(Summary::default()
            .body("sip:x@h")
            .starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn subscribe_bounds_and_initial_notify() {
        let now = Instant::now();
        let mut s = subs();
        assert_eq!(
            s.subscribe(now, "d1", "101", Some(10), Summary::default()),
            Err(MwiError::IntervalTooBrief { min: 60 })
        );
        assert!(s.poll_notify().is_none());
        assert_eq!(
            s.subscribe(now, "d1", "101", Some(99999), Summary::default()),
            Ok(3600)
        );
        let n = s.poll_notify().unwrap();
        assert_eq!(n.id, "d1");
        assert_eq!(n.state.header_value(), "active;expires=3600");
        assert_eq!(n.summary, Summary::default());
        assert!(s.poll_notify().is_none());
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(3600)));
    }

    #[test]
    fn count_change_notifies_only_that_mailbox_once() {
        let now = Instant::now();
        let mut s = subs();
        s.subscribe(now, "a", "101", Some(600), Summary::default())
            .unwrap();
        s.subscribe(now, "b", "102", Some(600), Summary::default())
            .unwrap();
        while s.poll_notify().is_some() {}
        let one = Summary { new: 1, old: 0 };
        s.counts_changed(now + Duration::from_secs(100), "101", one);
        let n = s.poll_notify().unwrap();
        assert_eq!((n.id.as_str(), n.summary), ("a", one));
        assert_eq!(n.state, SubState::Active { expires: 500 });
        assert!(s.poll_notify().is_none());
        s.counts_changed(now, "101", one);
        assert!(s.poll_notify().is_none(), "unchanged counts: no NOTIFY");
    }

    #[test]
    fn refresh_unsubscribe_and_unknown() {
        let now = Instant::now();
        let mut s = subs();
        assert_eq!(
            s.refresh(now, "x", Some(600), Summary::default()),
            Err(MwiError::NoSuchSubscription)
        );
        s.subscribe(now, "a", "101", Some(600), Summary::default())
            .unwrap();
        s.poll_notify();
        let later = now + Duration::from_secs(500);
        assert_eq!(s.refresh(later, "a", None, Summary::default()), Ok(3600));
        assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(3600)));
        assert_eq!(
            s.poll_notify().unwrap().state,
            SubState::Active { expires: 3600 }
        );
        assert_eq!(s.refresh(later, "a", Some(0), Summary::default()), Ok(0));
        assert_eq!(s.poll_notify().unwrap().state.header_value(), "terminated");
        assert!(!s.is_active("a"));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn expiry_terminates_with_timeout() {
        let now = Instant::now();
        let mut s = subs();
        s.subscribe(now, "a", "101", Some(60), Summary::default())
            .unwrap();
        s.poll_notify();
        s.handle_timeout(now + Duration::from_secs(59));
        assert!(s.poll_notify().is_none());
        s.handle_timeout(now + Duration::from_secs(60));
        let n = s.poll_notify().unwrap();
        assert_eq!(n.state.header_value(), "terminated;reason=timeout");
        assert!(!s.is_active("a"));
    }

    #[test]
    fn failed_notify_ends_subscription() {
        let now = Instant::now();
        let mut s = subs();
        s.subscribe(now, "a", "101", None, Summary::default())
            .unwrap();
        assert!(s.notify_failed("a"));
        assert!(!s.notify_failed("a"));
        s.counts_changed(now, "101", Summary { new: 2, old: 0 });
        s.poll_notify();
        assert!(s.poll_notify().is_none());
    }
}
