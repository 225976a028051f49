//! Outbound channels: `Dial` turns targets into forks.
//!
//! Owns placing outbound legs: resolving a dial target (a local user's
//! bindings, a trunk's contact with its number rewriting and codecs, a
//! URI), the per-callee call limit, opening the fork's media leg and
//! sending its INVITE, then what an INVITE's failure asks of us before
//! the fork is given up: a trunk's digest challenge (401/407, answered
//! once), a 422 asking for a longer session interval (RFC 4028 §7.4), and
//! failover to a trunk's next contact. Responses to forks are [`forks`]';
//! a fork that answers is bridged in [`bridging`].

use std::time::Instant;

use carillon_dialplan::{DialStatus, DialTarget};
use carillon_mediactl::{DtmfMode, LegId};
use carillon_sdp::{CodecName, OfferPolicy};
use carillon_sip::{HeaderName, Message, Method};
use carillon_transaction::{ClientTransaction, TransactionKind};
use carillon_trunk::{OutboundTarget, PortName};
use tracing::{debug, info, warn};

use super::forks::dial_status_of;
use super::messages::quoted_name_addr;
use super::model::ChanState;
use super::{audio_codec, resolve_uri, session_timer, LegRef};
use crate::endpoint::Peer;
use crate::header_text;
use crate::header_text::concat;
use crate::switch::Switch;

/// How to reach one outbound target.
#[derive(Debug, Clone)]
pub(super) struct ForkSpec {
    pub(super) request_uri: String,
    pub(super) to_uri: String,
    pub(super) from_uri: Option<String>,
    pub(super) peer: Peer,
    pub(super) codecs: Vec<String>,
    pub(super) channel: String,
    pub(super) extra: Vec<(String, String)>,
    pub(super) trunk: Option<(String, Option<PortName>)>,
    pub(super) user: Option<String>,
    pub(super) failover: Option<Failover>,
    pub(super) dtmf_mode: DtmfMode,
}

/// The codecs `trunk` allows (`allow`), by name.
pub(super) fn trunk_codecs(trunks: &carillon_trunk::Trunks, trunk: &str) -> Vec<String> {
    trunks
        .set()
        .get(trunk)
        .map(|c| c.allow.iter().map(|a| a.as_str().to_owned()).collect())
        .unwrap_or_default()
}

/// What an outbound leg to a carrier contact needs to be placed again at
/// the trunk's next contact when this one fails (408/500/503 before any
/// ringing; see `Switch::fail_over`).
#[derive(Debug, Clone)]
pub(super) struct Failover {
    pub(super) trunk: String,
    pub(super) number: String,
    /// Index of the contact this leg went to.
    pub(super) contact: usize,
}

pub(super) fn codec_list(names: &[String], default: &[CodecName]) -> Vec<CodecName> {
    let list: Vec<CodecName> = names
        .iter()
        .filter_map(|n| n.parse().ok())
        .filter(|c| audio_codec(c).is_some())
        .collect();
    if list.is_empty() {
        default.to_vec()
    } else {
        list
    }
}

impl Switch {
    /// Starts outbound legs for the targets; returns how many, and whether
    /// a callee was skipped for its call limit.
    pub(super) fn dial(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        targets: &[DialTarget],
    ) -> (usize, bool) {
        let caller_num = self.caller_num(key);
        let mut specs: Vec<ForkSpec> = Vec::new();
        let mut trunk_status: Option<u16> = None;
        let mut trunk_unavail = false;
        let mut callee_busy = false;
        for t in targets {
            match t {
                DialTarget::User { name } if !self.callee_below_limit(name) => {
                    info!(call = key, user = %name, "callee at its call limit (max_calls): not rung");
                    callee_busy = true;
                }
                DialTarget::User { name } => {
                    let codecs = self
                        .users
                        .get(name)
                        .map(|u| u.codecs.clone())
                        .unwrap_or_default();
                    let nat = self.users.get(name).map(|u| u.nat).unwrap_or_default();
                    let dtmf_mode = self.dtmf_mode_of_user(name);
                    for b in self.registrar.lookup(name, now_ms / 1000) {
                        let Some(peer) = self.binding_peer(b, nat) else {
                            warn!(call = key, user = %name, contact = %b.contact, source = %b.source, "binding has no address to send to: skipped");
                            continue;
                        };
                        specs.push(ForkSpec {
                            request_uri: b.contact.to_string(),
                            to_uri: concat(&["<sip:", name, "@", &self.realm, ">"]),
                            from_uri: None,
                            peer,
                            codecs: codecs.clone(),
                            channel: header_text::channel(name, key),
                            // The registered Path is the preloaded route
                            // set of requests to the contact (RFC 3327 §5.3).
                            extra: b
                                .path
                                .iter()
                                .map(|p| ("Route".to_owned(), p.clone()))
                                .collect(),
                            trunk: None,
                            user: Some(name.clone()),
                            failover: None,
                            dtmf_mode,
                        });
                    }
                }
                DialTarget::Trunk { trunk, number }
                | DialTarget::Gateway {
                    gateway: trunk,
                    number,
                } => {
                    let Some(trunks) = self.trunks.as_mut() else {
                        warn!(call = key, trunk = %trunk, "no trunks configured");
                        continue;
                    };
                    let codecs = trunk_codecs(trunks, trunk);
                    match trunks.outbound_target(trunk, now) {
                        Ok(target) => {
                            if let Some(spec) =
                                self.trunk_fork(key, trunk, number, &caller_num, codecs, target)
                            {
                                specs.push(spec);
                            }
                        }
                        Err(carillon_trunk::TrunkError::Unavailable {
                            reason: carillon_trunk::UnavailableReason::Disabled,
                            ..
                        }) => {
                            info!(call = key, trunk = %trunk, "trunk is disabled (enabled = false): not dialled");
                            trunk_unavail = true;
                        }
                        Err(e) => {
                            info!(call = key, trunk = %trunk, error = %e, "trunk refused the call");
                            trunk_status = Some(e.status());
                        }
                    }
                }
            }
        }
        if let (Some(st), Some(call)) = (trunk_status, self.calls.calls.get_mut(&key)) {
            call.last_dial_status = Some(dial_status_of(st));
        }
        if let (true, None, Some(call)) =
            (trunk_unavail, trunk_status, self.calls.calls.get_mut(&key))
        {
            call.last_dial_status = Some(DialStatus::ChanUnavail);
        }
        if let (true, Some(call)) = (callee_busy, self.calls.calls.get_mut(&key)) {
            call.last_dial_status = Some(DialStatus::Busy);
        }
        let mut started = 0;
        for spec in specs {
            if let Some(call) = self.calls.calls.get_mut(&key) {
                if spec.trunk.is_some() {
                    call.trunk = spec.trunk.as_ref().map(|(t, _)| t.clone());
                }
            }
            if self.start_fork(now, key, spec) {
                started += 1;
            }
        }
        (started, callee_busy)
    }

    /// The calling number of call `key` (empty if it is gone).
    pub(super) fn caller_num(&self, key: u64) -> String {
        self.calls
            .calls
            .get(&key)
            .map(|c| c.caller_num.clone())
            .unwrap_or_default()
    }

    /// The leg for a call out through `trunk` to `target` (counted as
    /// started on the trunk); `None` if the contact has no address.
    pub(super) fn trunk_fork(
        &mut self,
        key: u64,
        trunk: &str,
        number: &str,
        caller_num: &str,
        codecs: Vec<String>,
        target: OutboundTarget,
    ) -> Option<ForkSpec> {
        let request_uri = target.request_uri(number);
        let Some(peer) = resolve_uri(&request_uri, &self.calls.config.hosts) else {
            warn!(call = key, trunk = %trunk, uri = %request_uri, "trunk contact has no resolvable address");
            return None;
        };
        if let Some(trunks) = self.trunks.as_mut() {
            let _ = trunks.call_started(trunk, target.port.as_ref());
        }
        let mut extra = Vec::new();
        if let Some(pai) = target.pai(caller_num) {
            extra.push(("P-Asserted-Identity".to_owned(), pai));
        }
        // Gateway ports are not failed over within a call: the failed port
        // cools down and the next call takes another.
        let failover = target.port.is_none().then(|| Failover {
            trunk: trunk.to_owned(),
            number: number.to_owned(),
            contact: target.contact,
        });
        Some(ForkSpec {
            to_uri: concat(&["<", &request_uri, ">"]),
            request_uri,
            from_uri: Some(target.from_uri(caller_num)),
            peer,
            codecs,
            channel: header_text::channel(trunk, key),
            extra,
            trunk: Some((trunk.to_owned(), target.port)),
            user: None,
            failover,
            dtmf_mode: self.dtmf_mode_of_trunk(trunk),
        })
    }

    /// A carrier contact failed the INVITE of a leg that never rang:
    /// places the leg again at the trunk's next usable contact (RFC 3263
    /// §4.3). False when there is none (or it could not be started).
    pub(super) fn fail_over(
        &mut self,
        now: Instant,
        key: u64,
        failed: Failover,
        status: u16,
    ) -> bool {
        let Some(trunks) = self.trunks.as_mut() else {
            return false;
        };
        let target = match trunks.failover_target(&failed.trunk, failed.contact, now) {
            Ok(t) => t,
            Err(e) => {
                info!(call = key, trunk = %failed.trunk, status, error = %e, "trunk contact failed; no other contact to try");
                return false;
            }
        };
        let codecs = trunk_codecs(trunks, &failed.trunk);
        let caller_num = self.caller_num(key);
        info!(call = key, trunk = %failed.trunk, status, next = %target.contact_uri, "trunk contact failed: trying the next one");
        let Some(spec) = self.trunk_fork(
            key,
            &failed.trunk,
            &failed.number,
            &caller_num,
            codecs,
            target,
        ) else {
            return false;
        };
        self.start_fork(now, key, spec)
    }

    pub(super) fn start_fork(&mut self, now: Instant, key: u64, spec: ForkSpec) -> bool {
        let Some(session) = self.calls.calls.get(&key).map(|c| c.session) else {
            return false;
        };
        let Some(port) = self.calls.free_ports.take(session) else {
            warn!("RTP port range exhausted");
            return false;
        };
        let media_ip = self.calls.config.media_ip;
        let call_id = concat(&[&self.random_hex(), "@carillon"]);
        let branch = self.new_branch();
        let session_id = self.rng_u64() >> 1;
        let ForkSpec {
            request_uri,
            to_uri,
            from_uri,
            peer,
            codecs,
            channel,
            extra,
            trunk,
            user,
            failover,
            dtmf_mode,
        } = spec;
        let mut leg = self.new_leg(call_id.clone(), peer, port, channel);
        let Some(call) = self.calls.calls.get(&key) else {
            self.calls.free_ports.give(port);
            return false;
        };
        // The caller's session interval is asked of the callee too, so a
        // dead callee is noticed the same way (RFC 4028 §7.1).
        let session_expires = match call.inbound.session {
            session_timer::UasNegotiation::Accepted { se, .. } => Some(se.interval),
            _ => None,
        };
        // Our From: `"name" <uri>` (quotes dropped from the name), or `<uri>`.
        let caller_name = call.caller_name.as_str();
        leg.local_uri = match from_uri {
            Some(uri) => quoted_name_addr(caller_name, &[&uri]),
            None => quoted_name_addr(caller_name, &["sip:", &call.caller_num, "@", &self.realm]),
        };
        let allowed = codec_list(&codecs, &self.calls.config.default_codecs);
        let mut policy = OfferPolicy::new(media_ip, port, allowed);
        policy.session_id = session_id;
        policy.telephone_event = dtmf_mode.negotiates_telephone_event();
        let offer = carillon_sdp::offer(&policy);
        leg.remote_uri = to_uri;
        leg.remote_target.clone_from(&request_uri);
        leg.uac.request_uri = request_uri;
        leg.uac.extra_headers = extra;
        if let Some(interval) = session_expires {
            leg.uac
                .extra_headers
                .push(("Session-Expires".to_owned(), interval.to_string()));
            leg.uac
                .extra_headers
                .push(("Min-SE".to_owned(), session_timer::MIN_SE.to_string()));
        }
        leg.uac.trunk = trunk;
        leg.uac.user = user;
        leg.uac.failover = failover;
        leg.dtmf_mode = dtmf_mode;
        leg.uac.invite_branch.clone_from(&branch);
        leg.uac.invite_cseq = 1;
        leg.local_cseq = 1;
        leg.local_sdp = Some(offer);
        let bytes = self.wire().invite(&leg, None);
        let txn = ClientTransaction::new(
            TransactionKind::Invite,
            peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        let leg_id = leg.id;
        self.calls.by_call_id.insert(
            call_id,
            LegRef {
                call: key,
                leg: leg_id,
            },
        );
        debug!(call = key, uri = %leg.uac.request_uri, to = %peer, "fork started");
        let request_uri = leg.uac.request_uri.clone();
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.forks.push(leg);
        }
        self.emit_channel_created(key, leg_id);
        self.add_client_with_uri(branch, txn, peer, key, leg_id, Method::Invite, request_uri);
        true
    }

    /// A trunk challenged our INVITE: answer with its credentials once.
    pub(super) fn fork_challenged(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        status: u16,
        msg: &Message,
    ) {
        let header = if status == 407 {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let values: Vec<String> = msg.header_all(header).map(|v| v.into_owned()).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let branch = self.new_branch();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.forks.iter_mut().find(|l| l.id == leg_id) else {
            return;
        };
        let Some((trunk, _)) = leg.uac.trunk.clone() else {
            self.fork_failed(now, now_ms, key, leg_id, status);
            return;
        };
        if leg.uac.auth_tries > 0 {
            warn!(call = key, trunk = %trunk, "trunk rejected our credentials");
            self.fork_failed(now, now_ms, key, leg_id, status);
            return;
        }
        let auth = self
            .trunks
            .as_mut()
            .map(|t| t.authorize(&trunk, status, &refs, "INVITE", &leg.uac.request_uri));
        let Some(Ok((name, value))) = auth else {
            warn!(call = key, trunk = %trunk, "cannot answer the trunk's challenge (no credentials?)");
            self.fork_failed(now, now_ms, key, leg_id, status);
            return;
        };
        leg.uac.auth_tries += 1;
        leg.uac.auth = Some((name.as_str().to_owned(), value));
        self.resend_invite(now, key, leg_id, branch);
        debug!(call = key, trunk = %trunk, "INVITE re-sent with credentials");
    }

    /// The callee answered 422: our `Session-Expires` is below its
    /// `Min-SE`. Sends the INVITE once more asking for its minimum (RFC
    /// 4028 §7.4); a second 422, or one without a usable `Min-SE`, fails
    /// the leg like any other final answer.
    pub(super) fn fork_interval_too_small(
        &mut self,
        now: Instant,
        now_ms: u64,
        key: u64,
        leg_id: LegId,
        msg: &Message,
    ) {
        let min_se = msg
            .header(HeaderName::MinSe)
            .and_then(|v| session_timer::SessionExpires::parse(&v))
            .map(|se| se.interval);
        let branch = self.new_branch();
        let Some(leg) = self.calls.fork_mut(key, leg_id) else {
            return;
        };
        let asked = leg
            .uac
            .extra_headers
            .iter()
            .find(|(n, _)| n == "Session-Expires")
            .and_then(|(_, v)| session_timer::SessionExpires::parse(v))
            .map(|se| se.interval);
        let retry = match (min_se, asked) {
            (Some(min), Some(asked)) if leg.uac.interval_tries == 0 && min > asked => Some(min),
            _ => None,
        };
        let Some(interval) = retry else {
            warn!(
                call = key,
                ?min_se,
                ?asked,
                "422 from the callee without a larger Min-SE to retry with"
            );
            self.fork_failed(now, now_ms, key, leg_id, 422);
            return;
        };
        leg.uac.interval_tries += 1;
        for (name, value) in &mut leg.uac.extra_headers {
            if name == "Session-Expires" || name == "Min-SE" {
                *value = interval.to_string();
            }
        }
        info!(
            call = key,
            interval, "callee asked for a longer session interval (422): INVITE re-sent"
        );
        self.resend_invite(now, key, leg_id, branch);
    }

    /// Sends a fork's INVITE again in a new transaction (next CSeq, new
    /// branch, same dialog identifiers and offer), with its credentials
    /// if it has any.
    pub(super) fn resend_invite(&mut self, now: Instant, key: u64, leg_id: LegId, branch: String) {
        let Some(leg) = self.calls.fork_mut(key, leg_id) else {
            return;
        };
        leg.uac.invite_cseq += 1;
        leg.local_cseq = leg.uac.invite_cseq;
        leg.uac.invite_branch = branch.clone();
        leg.state = ChanState::Calling;
        let peer = leg.peer;
        let request_uri = leg.uac.request_uri.clone();
        let snapshot = leg.clone();
        let auth = snapshot
            .uac
            .auth
            .as_ref()
            .map(|(n, v)| (n.as_str(), v.as_str()));
        let bytes = self.wire().invite(&snapshot, auth);
        let txn = ClientTransaction::new(
            TransactionKind::Invite,
            peer.transport.is_reliable(),
            bytes,
            now,
            self.calls.config.timers,
        );
        self.add_client_with_uri(branch, txn, peer, key, leg_id, Method::Invite, request_uri);
    }
}
