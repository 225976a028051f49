//! Blind transfer by SIP REFER (RFC 3515) from the bridged callee.
//!
//! Owns a call's [`Blind`] transfer: a REFER in the callee's dialog with
//! `Refer-To: <sip:NUMBER@…>` (no `Replaces`) is answered `202 Accepted`
//! and a `NOTIFY` (`Event: refer`, `message/sipfrag` `SIP/2.0 100
//! Trying`) goes to the referrer; the caller (the transferee) is
//! unbridged from the referrer and the local user `NUMBER` is rung with
//! the REFER's `Referred-By`. When the target answers, the referrer gets
//! the final `NOTIFY` (`SIP/2.0 200 OK`, `Subscription-State:
//! terminated`) and a BYE, and the caller is bridged with the target (in
//! [`bridging`](super::bridging)). When every target leg fails, the
//! referrer gets the failure's status line as the final NOTIFY and, if
//! it is still there, is bridged with the caller again (the call is left
//! as it was); if it has hung up already (as phones do after a REFER),
//! the caller is hung up, as Asterisk hangs up a blind-transferred
//! channel whose Dial fails.
//!
//! Not done here: REFER with `Replaces` (attended transfer) is refused
//! with 501; a REFER from the caller's leg is refused with 501 (only the
//! callee, the agent's side, can transfer); targets are local users
//! (registered contacts), not numbers routed through the dialplan or a
//! trunk; the transferee hears silence while the target rings. The
//! target rings for [`RING_TIMEOUT`] at most (then the transfer fails
//! with 408).

use std::time::{Duration, Instant};

use carillon_mediactl::{LegId, MediaCommand};
use carillon_sip::{HeaderName, Message, Method};
use tracing::info;

use super::dial::ForkSpec;
use super::model::{Bridge, CallState, ChanState};
use super::{LegRef, Timer};
use crate::endpoint::Peer;
use crate::header_text::{self, concat};
use crate::switch::Switch;

/// How long a transfer target rings before the transfer fails with 408
/// (no answer), as the `timeout` of a dialplan `Dial`.
pub(super) const RING_TIMEOUT: Duration = Duration::from_secs(30);

/// A blind transfer under way on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Blind {
    /// The channel that sent the REFER (the callee of the bridge).
    pub(super) referrer: LegId,
    /// The referrer hung up before the transfer ended.
    pub(super) referrer_gone: bool,
    /// The legs ringing the target.
    pub(super) targets: Vec<LegId>,
    /// The most telling failure status of a target leg so far.
    pub(super) status: u16,
    /// When the target has rung long enough ([`RING_TIMEOUT`]).
    pub(super) deadline: Instant,
}

/// The user part of a `Refer-To` value (`<sip:201@host>` → `201`), if it
/// has one.
pub(super) fn refer_to_user(value: &str) -> Option<&str> {
    let v = value.trim();
    let v = v
        .find('<')
        .map_or(v, |i| v[i + 1..].split('>').next().unwrap_or_default());
    let rest = v.strip_prefix("sips:").or_else(|| v.strip_prefix("sip:"))?;
    let user = rest.split('@').next()?;
    if !rest.contains('@') || user.is_empty() {
        return None;
    }
    Some(user.split(';').next().unwrap_or(user))
}

/// Whether a `Refer-To` value asks for an attended transfer (a
/// `Replaces` URI header, RFC 3891 §5).
pub(super) fn refer_to_replaces(value: &str) -> bool {
    value
        .split_once('?')
        .is_some_and(|(_, h)| h.to_ascii_lowercase().contains("replaces="))
}

impl Switch {
    /// REFER in the dialog of channel `r`.
    pub(super) fn handle_refer(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: &str,
        peer: Peer,
        msg: &Message,
        r: LegRef,
    ) -> u16 {
        let Some(refer_to) = msg.header_str(HeaderName::ReferTo).map(str::to_owned) else {
            self.respond(now, key, msg, peer, 400, |b| b.reason("Missing Refer-To"));
            return 400;
        };
        if refer_to_replaces(&refer_to) {
            self.respond(now, key, msg, peer, 501, |b| {
                b.reason("Attended Transfer (Replaces) Not Implemented")
                    .header("Allow", carillon_sip::validate::ALLOW)
            });
            return 501;
        }
        let Some(number) = refer_to_user(&refer_to).map(str::to_owned) else {
            self.respond(now, key, msg, peer, 400, |b| {
                b.reason("Refer-To Has No User Part")
            });
            return 400;
        };
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            self.respond(now, key, msg, peer, 481, |b| b);
            return 481;
        };
        if call.a.id == r.leg {
            self.respond(now, key, msg, peer, 501, |b| {
                b.reason("Transfer By The Caller Not Implemented")
                    .header("Allow", carillon_sip::validate::ALLOW)
            });
            return 501;
        }
        if call.bridged() != Some(r.leg)
            || call.state != CallState::Answered
            || call.transfer.is_some()
        {
            self.respond(now, key, msg, peer, 403, |b| {
                b.reason("Not In A Bridged Call")
            });
            return 403;
        }
        let referred_by = msg
            .header_str(HeaderName::ReferredBy)
            .map(str::to_owned)
            .or_else(|| call.channel(r.leg).map(|l| l.remote_uri.clone()))
            .unwrap_or_default();
        // The caller leaves the referrer's bridge.
        let session = call.session;
        let a_id = call.a.id;
        call.bridge = None;
        call.transfer = Some(Blind {
            referrer: r.leg,
            referrer_gone: false,
            targets: Vec::new(),
            status: 0,
            deadline: now + RING_TIMEOUT,
        });
        self.calls.schedule(now + RING_TIMEOUT, Timer::Call(r.call));
        self.respond(now, key, msg, peer, 202, |b| b);
        info!(call = r.call, referrer = r.leg.0, target = %number, "blind transfer (REFER)");
        self.send_refer_notify(now, r.call, r.leg, 100, false);
        self.media(MediaCommand::Unbridge {
            session,
            a: a_id,
            b: r.leg,
        });
        self.emit_bridge(r.call, r.leg, false);
        let status = self.ring_transfer_target(now, now_ms, r.call, &number, &referred_by);
        if status != 0 {
            self.transfer_failed(now, now_ms, r.call, status);
        }
        202
    }

    /// Rings the local user `number` for call `key`'s transfer; 0 when at
    /// least one leg started, else the status the transfer fails with.
    fn ring_transfer_target(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        number: &str,
        referred_by: &str,
    ) -> u16 {
        if self.users.get(number).is_none() {
            return 404;
        }
        if !self.callee_below_limit(number) {
            return 486;
        }
        let now_unix = now_ms / 1000;
        let codecs = self
            .users
            .get(number)
            .map(|u| u.codecs.clone())
            .unwrap_or_default();
        let nat = self.users.get(number).map(|u| u.nat).unwrap_or_default();
        let dtmf_mode = self.dtmf_mode_of_user(number);
        let mut specs = Vec::new();
        for b in self.registrar.lookup(number, now_unix) {
            let Some(peer) = self.binding_peer(b, nat) else {
                continue;
            };
            let mut extra: Vec<(String, String)> = b
                .path
                .iter()
                .map(|p| ("Route".to_owned(), p.clone()))
                .collect();
            if !referred_by.is_empty() {
                extra.push(("Referred-By".to_owned(), referred_by.to_owned()));
            }
            specs.push(ForkSpec {
                request_uri: b.contact.to_string(),
                to_uri: concat(&["<sip:", number, "@", &self.realm, ">"]),
                from_uri: None,
                peer,
                codecs: codecs.clone(),
                channel: header_text::channel(number, key),
                extra,
                trunk: None,
                user: Some(number.to_owned()),
                failover: None,
                dtmf_mode,
            });
        }
        let mut started = Vec::new();
        for spec in specs {
            let before: Vec<LegId> = self.fork_ids(key);
            if self.start_fork(now, key, spec) {
                started.extend(
                    self.fork_ids(key)
                        .into_iter()
                        .filter(|l| !before.contains(l)),
                );
            }
        }
        if started.is_empty() {
            return 480;
        }
        if let Some(t) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.transfer.as_mut())
        {
            t.targets = started;
        }
        0
    }

    fn fork_ids(&self, key: u64) -> Vec<LegId> {
        self.calls
            .calls
            .get(&key)
            .map(|c| c.forks.iter().map(|l| l.id).collect())
            .unwrap_or_default()
    }

    /// A NOTIFY of the transfer's progress to the referrer (RFC 3515 §2.4.5).
    fn send_refer_notify(
        &mut self,
        now: Instant,
        key: u64,
        referrer: LegId,
        status: u16,
        last: bool,
    ) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let Some(mut leg) = call.forks.iter().find(|l| l.id == referrer).cloned() else {
            return;
        };
        if leg.state != ChanState::Up {
            return;
        }
        let contact = self.calls.contact_for(leg.peer.transport).to_owned();
        let state = if last {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let frag = format!(
            "SIP/2.0 {status} {}\r\n",
            carillon_sip::builder::reason_phrase(status)
        );
        self.send_in_dialog_typed(
            now,
            key,
            &mut leg,
            Method::Notify,
            vec![
                ("Event".to_owned(), "refer".to_owned()),
                ("Subscription-State".to_owned(), state.to_owned()),
                ("Contact".to_owned(), contact),
            ],
            Some(("message/sipfrag;version=2.0", bytes::Bytes::from(frag))),
        );
        if let Some(l) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.forks.iter_mut().find(|l| l.id == referrer))
        {
            l.local_cseq = leg.local_cseq;
        }
    }

    /// A transfer target answered (called before the caller is bridged to
    /// it): the referrer gets the final NOTIFY; it is then released with
    /// the other forks (BYE).
    pub(super) fn transfer_target_answered(&mut self, now: Instant, key: u64, leg_id: LegId) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(t) = call
            .transfer
            .as_ref()
            .filter(|t| t.targets.contains(&leg_id))
        else {
            return;
        };
        let referrer = t.referrer;
        call.transfer = None;
        info!(call = key, target = leg_id.0, "blind transfer answered");
        self.send_refer_notify(now, key, referrer, 200, true);
    }

    /// A transfer target leg failed with `status`; the transfer fails when
    /// it was the last one. True when the leg was a transfer target.
    pub(super) fn transfer_target_failed(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        status: u16,
    ) -> bool {
        let Some(t) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.transfer.as_mut())
            .filter(|t| t.targets.contains(&leg_id))
        else {
            return false;
        };
        t.targets.retain(|l| *l != leg_id);
        if t.status == 0 || status == 486 {
            t.status = status;
        }
        if t.targets.is_empty() {
            let status = t.status;
            self.transfer_failed(now, now_ms, key, status);
        }
        true
    }

    /// The transfer failed: final NOTIFY with `status`; the caller goes
    /// back to the referrer, or is hung up if the referrer has left.
    fn transfer_failed(&mut self, now: Instant, now_ms: u64, key: u64, status: u16) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(t) = call.transfer.take() else {
            return;
        };
        info!(call = key, status, "blind transfer failed");
        call.last_dial_status = Some(super::forks::dial_status_of(status));
        if t.referrer_gone {
            self.end_call(now, now_ms, key, 16);
            return;
        }
        self.send_refer_notify(now, key, t.referrer, status, true);
        let bridge_id = self.calls.next_bridge();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.bridge = Some(Bridge::pair(bridge_id, call.a.id, t.referrer));
        let (session, a_id) = (call.session, call.a.id);
        self.media(MediaCommand::Bridge {
            session,
            a: a_id,
            b: t.referrer,
        });
        self.emit_bridge(key, t.referrer, true);
    }

    /// The call's timer fired: a transfer whose target has rung for
    /// [`RING_TIMEOUT`] is given up (its legs cancelled) and fails with
    /// 408. True when that was the case.
    pub(super) fn transfer_timeout(&mut self, now: Instant, now_ms: u64, key: u64) -> bool {
        let Some(t) = self
            .calls
            .calls
            .get_mut(&key)
            .and_then(|c| c.transfer.as_mut())
            .filter(|t| t.deadline <= now)
        else {
            return false;
        };
        let targets = std::mem::take(&mut t.targets);
        info!(call = key, "transfer target did not answer");
        for leg in targets {
            self.cancel_fork(now, key, leg);
        }
        self.transfer_failed(now, now_ms, key, 408);
        true
    }

    /// The referrer hung up while its transfer is under way: only its leg
    /// is released; the transfer goes on. True when that was the case.
    pub(super) fn transfer_referrer_left(&mut self, r: LegRef) -> bool {
        let Some(call) = self.calls.calls.get_mut(&r.call) else {
            return false;
        };
        let Some(t) = call.transfer.as_mut().filter(|t| t.referrer == r.leg) else {
            return false;
        };
        t.referrer_gone = true;
        let Some(idx) = call.forks.iter().position(|l| l.id == r.leg) else {
            return true;
        };
        let mut leg = call.forks.remove(idx);
        leg.state.end();
        info!(call = r.call, "transfer: the referrer hung up");
        self.release_leg(r.call, leg);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_of_a_refer_to_is_read() {
        assert_eq!(refer_to_user("<sip:201@127.0.0.1>"), Some("201"));
        assert_eq!(refer_to_user("sip:202@h;user=phone"), Some("202"));
        assert_eq!(refer_to_user("\"Bob\" <sips:bob@h:5061>;x=y"), Some("bob"));
        assert_eq!(refer_to_user("<sip:h.example>"), None);
        assert_eq!(refer_to_user("<tel:+123>"), None);
    }

    #[test]
    fn replaces_is_seen_in_the_uri_headers() {
        assert!(refer_to_replaces(
            "<sip:201@h?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>"
        ));
        assert!(!refer_to_replaces("<sip:201@h>"));
    }
}
