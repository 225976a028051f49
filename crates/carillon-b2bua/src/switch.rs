//! The [`Switch`]: what Carillon answers. For every request it runs, in
//! order, the source policy (ban, rate limit), parsing and the stateless
//! checks (RFC 4475 answers), transaction matching (retransmissions), then
//! the method: REGISTER through digest auth into the registrar, OPTIONS
//! answered 200 with our capabilities (`Allow`, `Supported`: exactly what
//! the switch handles and honours, `carillon_sip::validate`), methods it
//! does not handle 405/501 with `Allow`, in-dialog requests for unknown
//! dialogs and dialog-only requests outside a dialog 481. Unknown and known users get identical challenges; failed
//! authentications count towards a ban.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carillon_digest::{Algorithm, AuthResult, Credentials, DigestConfig, DigestServer, Secret};
use carillon_registrar::{Binding, BindingChange, RegisterError, Registrar, RegistrarConfig};
use carillon_sip::validate::{response_parts, ALLOW, SUPPORTED};
use carillon_sip::{
    validate_request_parts, HeaderName, Message, Method, NameAddr, RequestParts, ResponseBuilder,
};
use carillon_transaction::{TimerConfig, TransactionKind};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::{debug, info, warn};

use crate::endpoint::{
    response_route, response_route_with, server_key_with, Peer, ResponseHeads, ServerTable,
    Transmit,
};
use crate::policy::{Policy, PolicyConfig, Verdict};
use crate::users::{User, UserDirectory};

/// Everything the switch needs from configuration.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Digest realm (also our domain).
    pub realm: String,
    /// `Server`/`User-Agent` header value.
    pub user_agent: String,
    pub users: Vec<User>,
    pub registrar: RegistrarConfig,
    pub policy: PolicyConfig,
    /// Offered digest algorithms, in challenge order.
    pub digest_algorithms: Vec<Algorithm>,
    pub nonce_lifetime: Duration,
    /// Seed for nonces and tags; the binary passes OS entropy unless the
    /// config pins one for reproducible tests.
    pub rng_seed: [u8; 32],
    pub timers: TimerConfig,
    /// Call handling: dialplan, media addresses, RTP ports.
    pub calls: crate::calls::CallConfig,
}

/// What the switch asks its edge to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Transmit(Transmit),
    /// Mirror this into the binding store.
    Binding(BindingChange),
    /// Tell the media plane.
    Media(carillon_mediactl::MediaCommand),
    /// A finished call's record.
    Cdr(carillon_cdr::CallRecord),
    /// Something observable happened (see [`carillon_events`]).
    Event(carillon_events::EventRecord),
    /// A caller asked to be called back: store the request (the edge
    /// writes it off the signalling path, like CDRs).
    Callback(carillon_cdr::CallbackRequest),
    /// POST `body` (JSON) to `url` (an operator-configured dialplan
    /// target). The edge sends it in the background and never delays the
    /// call: each attempt is given up after `timeout`, and a failure
    /// (connect error, timeout, non-2xx status) is retried at most
    /// `retries` more times.
    Webhook {
        url: String,
        /// JSON text, sent as `application/json`.
        body: String,
        /// Bound of one attempt (connect, send and response).
        timeout: Duration,
        /// Further attempts after a failed first one.
        retries: u32,
    },
    /// A voicemail change to persist (message row, read/moved/deleted,
    /// a discarded or deleted file, a PIN): the edge carries it out off
    /// the signalling path; the switch's mailbox index already has it.
    Voicemail(carillon_dialplan::voicemail::Persist),
}

/// Counters for logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub dropped_banned: u64,
    pub dropped_rate: u64,
    pub dropped_unparseable: u64,
    pub retransmissions: u64,
    pub registrations_ok: u64,
    pub calls_started: u64,
    pub calls_answered: u64,
    pub auth_failures: u64,
    pub bans: u64,
    /// DTMF digits received in calls (RFC 4733 and SIP INFO alike).
    pub dtmf_digits: u64,
}

/// The switch core.
pub struct Switch {
    pub(crate) realm: String,
    pub(crate) user_agent: String,
    pub(crate) users: UserDirectory,
    pub(crate) registrar: Registrar,
    policy: Policy,
    digest: DigestServer,
    pub(crate) table: ServerTable,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) scratch: Vec<Transmit>,
    next_housekeeping: Option<Instant>,
    pub(crate) stats: Stats,
    pub(crate) calls: crate::calls::Calls,
    /// Carrier and gateway trunks (started at the first timeout, once our
    /// own address is known).
    pub(crate) trunks: Option<carillon_trunk::Trunks>,
    /// The latest `now` seen (for bookkeeping that needs a time).
    pub(crate) last_now: Option<Instant>,
    /// Wall clock (Unix ms) of the latest input: the time of the
    /// switch events it causes.
    pub(crate) now_ms: u64,
    /// Trunk destinations already reported as unresolvable (one warning
    /// each, not one per qualify ping; cleared when hosts are resolved
    /// again on reload).
    unresolved: std::collections::HashSet<String>,
}

const HOUSEKEEPING: Duration = Duration::from_secs(5);

/// Errors building a switch from configuration.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("digest configuration: {0}")]
    Digest(#[from] carillon_digest::ConfigError),
}

impl Switch {
    pub fn new(config: SwitchConfig) -> Result<Switch, SwitchError> {
        let mut key = [0u8; 32];
        let mut rng = ChaCha8Rng::from_seed(config.rng_seed);
        rng.fill_bytes(&mut key);
        let digest = DigestServer::new(DigestConfig {
            realm: config.realm.clone(),
            lifetime_secs: config.nonce_lifetime.as_secs().max(1),
            algorithms: config.digest_algorithms.clone(),
            key,
            require_qop: false,
            counter_capacity: 200_000,
        })?;
        Ok(Switch {
            users: UserDirectory::new(&config.realm, config.users),
            realm: config.realm,
            user_agent: config.user_agent,
            registrar: Registrar::new(config.registrar),
            policy: Policy::new(config.policy),
            digest,
            table: ServerTable::new(config.timers),
            rng,
            outputs: VecDeque::new(),
            scratch: Vec::new(),
            next_housekeeping: None,
            stats: Stats::default(),
            calls: crate::calls::Calls::new(config.calls),
            trunks: None,
            last_now: None,
            now_ms: 0,
            unresolved: std::collections::HashSet::new(),
        })
    }

    /// Replaces the users (SIGHUP); registrations are kept.
    pub fn reload_users(&mut self, users: Vec<User>) {
        self.users = UserDirectory::new(&self.realm, users);
    }

    pub fn set_policy(&mut self, policy: PolicyConfig) {
        self.policy.set_config(policy);
    }

    pub fn set_registrar_config(&mut self, cfg: RegistrarConfig) {
        self.registrar.set_config(cfg);
    }

    /// Restores persisted bindings at start-up.
    pub fn restore_bindings(&mut self, bindings: Vec<Binding>, now_unix: u64) {
        self.registrar.restore(bindings, now_unix);
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn users(&self) -> &UserDirectory {
        &self.users
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn open_transactions(&self) -> usize {
        self.table.len()
    }

    /// Calls, client transactions and RTP ports in use (leak checks).
    pub fn call_counts(&self) -> (usize, usize, usize) {
        (
            self.calls.active(),
            self.calls.client_transactions(),
            self.calls.ports_in_use(),
        )
    }

    /// The calls, for their counters ([`crate::calls::Calls::active`],
    /// `channels`, `bridges`, `ports_in_use`, `client_transactions`): the
    /// management API's figures and the tests' leak checks.
    pub fn calls(&self) -> &crate::calls::Calls {
        &self.calls
    }

    /// Our SIP address for Via/Contact, once the listeners are bound.
    pub fn set_sip_addr(&mut self, addr: std::net::SocketAddr) {
        self.calls.set_sip_addr(addr);
    }

    /// Replaces the dialplan (SIGHUP); running calls keep theirs.
    pub fn set_dialplan(&mut self, plan: Option<carillon_dialplan::Dialplan>) {
        self.calls.set_dialplan(plan);
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.table.poll_timeout(),
            self.next_housekeeping,
            self.calls.poll_timeout(),
            self.trunks
                .as_ref()
                .and_then(carillon_trunk::Trunks::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, now_unix_ms: u64) {
        let now_unix = now_unix_ms / 1000;
        self.last_now = Some(now);
        self.now_ms = now_unix_ms;
        self.start_trunks(now);
        if let Some(t) = self.trunks.as_mut() {
            t.handle_timeout(now);
        }
        self.drain_trunks();
        self.table.handle_timeout(now, &mut self.scratch);
        self.flush_scratch();
        self.calls_timeout(now, now_unix_ms);
        self.flush_scratch();
        if self.next_housekeeping.is_none_or(|t| t <= now) {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
            for change in self.registrar.purge_expired(now_unix) {
                if let BindingChange::Remove { aor, contact } = &change {
                    info!(aor = %aor, contact = %contact, "registration expired");
                }
                self.outputs.push_back(Output::Binding(change));
            }
            self.policy.purge(now);
            self.digest.purge(now_unix);
        }
    }

    /// Replaces the trunks (SIGHUP) with `set` (`None`: no `trunks.toml`)
    /// and the host names resolved for it. Unchanged trunks keep their
    /// state, changed ones restart, removed ones stop (calls up on any of
    /// them go on); see [`carillon_trunk::Trunks::reload`].
    pub fn reload_trunks(
        &mut self,
        now: Instant,
        set: Option<carillon_trunk::TrunkSet>,
        hosts: std::collections::HashMap<String, std::net::IpAddr>,
    ) -> carillon_trunk::ReloadReport {
        self.calls.set_hosts(hosts);
        self.unresolved.clear();
        let report = match self.trunks.as_mut() {
            Some(t) => t.reload(set.unwrap_or_else(carillon_trunk::TrunkSet::empty), now),
            None => {
                let added = set
                    .iter()
                    .flat_map(|s| s.iter().map(|t| t.name.clone()))
                    .collect();
                self.calls.set_trunk_set(set);
                self.start_trunks(now);
                carillon_trunk::ReloadReport {
                    added,
                    ..Default::default()
                }
            }
        };
        self.drain_trunks();
        report
    }

    /// Starts the trunk machines (qualify, outbound registration) once.
    fn start_trunks(&mut self, now: Instant) {
        let Some(set) = self.calls.take_trunk_set() else {
            return;
        };
        let addr = self.calls.sip_addr();
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let local = carillon_trunk::LocalConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            transport: carillon_trunk::Transport::Udp,
            user_agent: Some(self.user_agent.clone()),
            rng_seed: seed,
            timers: self.calls.timers(),
        };
        info!(
            enabled = set.enabled_len(),
            disabled = set.len() - set.enabled_len(),
            "trunks started"
        );
        self.trunks = Some(carillon_trunk::Trunks::new(set, local, now));
    }

    /// Sends what the trunk machines want sent and logs their events.
    /// Starts a graceful stop: every outbound trunk registration is
    /// removed (REGISTER with Expires: 0). Returns whether the caller should
    /// keep feeding input and timeouts until [`Switch::stopping_done`] (the
    /// registrars' answers), with a deadline of its own.
    pub fn begin_stop(&mut self, now: Instant) -> bool {
        let Some(t) = self.trunks.as_mut() else {
            return false;
        };
        t.unregister_all(now);
        self.drain_trunks();
        !self.stopping_done()
    }

    /// True once no outbound registration is held any more.
    pub fn stopping_done(&self) -> bool {
        self.trunks.as_ref().is_none_or(|t| !t.registrations_held())
    }

    fn drain_trunks(&mut self) {
        let Some(t) = self.trunks.as_mut() else {
            return;
        };
        while let Some(tx) = t.poll_transmit() {
            match crate::calls::resolve_uri(&tx.destination, self.calls.hosts()) {
                Some(to) => self.outputs.push_back(Output::Transmit(Transmit {
                    to,
                    bytes: tx.bytes,
                })),
                // The binary warned when the name did not resolve, and
                // qualify warns when the contact goes Down: this is said
                // once, not at every ping.
                None if self.unresolved.insert(tx.destination.clone()) => {
                    info!(trunk = %tx.trunk.as_str(), destination = %tx.destination, "trunk destination has no resolvable address; nothing is sent to it")
                }
                None => {}
            }
        }
        while let Some(ev) = t.poll_event() {
            // One line per change of state (the machines report changes
            // only): a contact going down is a warning.
            match ev {
                carillon_trunk::TrunkEvent::ContactStateChanged {
                    to: carillon_trunk::ContactState::Down,
                    ..
                }
                | carillon_trunk::TrunkEvent::RegistrationChanged {
                    state: carillon_trunk::RegistrationState::Failed { .. },
                    ..
                } => warn!(event = ?ev, "trunk"),
                _ => info!(event = ?ev, "trunk"),
            }
        }
    }

    pub(crate) fn flush_scratch(&mut self) {
        for t in self.scratch.drain(..) {
            self.outputs.push_back(Output::Transmit(t));
        }
    }

    pub(crate) fn random_hex(&mut self) -> String {
        let mut out = String::with_capacity(16);
        self.push_random_hex(&mut out);
        out
    }

    /// A new RFC 3261 branch: the magic cookie and 64 random bits in hex.
    pub(crate) fn new_branch(&mut self) -> String {
        let mut out = String::with_capacity(7 + 16);
        out.push_str("z9hG4bK");
        self.push_random_hex(&mut out);
        out
    }

    fn push_random_hex(&mut self, out: &mut String) {
        let tag = self.random_tag();
        out.push_str(std::str::from_utf8(&tag).unwrap_or(""));
    }

    /// 16 lowercase hex digits of one `u64` from the RNG, most significant
    /// first, on the stack.
    pub(crate) fn random_tag(&mut self) -> [u8; 16] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let v = self.rng.next_u64();
        let mut out = [0u8; 16];
        for (i, d) in out.iter_mut().enumerate() {
            *d = HEX[((v >> ((15 - i) * 4)) & 0xf) as usize];
        }
        out
    }

    /// One datagram or stream frame from `peer`.
    pub fn handle_input(&mut self, now: Instant, now_unix_ms: u64, peer: Peer, bytes: Bytes) {
        self.last_now = Some(now);
        self.now_ms = now_unix_ms;
        if self.next_housekeeping.is_none() {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
        match self.policy.check(peer.addr.ip(), now) {
            Verdict::Allow => {}
            Verdict::Banned => {
                self.stats.dropped_banned += 1;
                return;
            }
            Verdict::RateLimited => {
                self.stats.dropped_rate += 1;
                debug!(source = %peer, "rate limited: dropped");
                return;
            }
        }
        self.note_stream(peer);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        let msg = match Message::parse(bytes.clone()) {
            Ok(m) => m,
            Err(e) => {
                self.stats.dropped_unparseable += 1;
                if bytes.starts_with(b"SIP/") {
                    debug!(source = %peer, error = %e, "unparseable response dropped");
                    return;
                }
                match Message::parse_lenient(bytes) {
                    Ok(m)
                        if m.is_request() && *m.method().unwrap_or(&Method::Ack) != Method::Ack =>
                    {
                        info!(source = %peer, error = %e, status = e.status(), "malformed request");
                        let reason = e.to_string();
                        self.respond_untracked(None, &m, peer, e.status(), |b| b.reason(reason));
                    }
                    _ => debug!(source = %peer, error = %e, "unparseable message dropped"),
                }
                return;
            }
        };
        if !msg.is_request() {
            // No client transactions yet: a response matching nothing is
            // dropped (RFC 3261 §18.1.2), and so is an unusable one.
            let for_trunks = self
                .trunks
                .as_mut()
                .is_some_and(|t| t.handle_response(now, &msg));
            if for_trunks {
                self.drain_trunks();
                self.flush_scratch();
            } else if let Some(parts) = response_parts(&msg) {
                self.handle_response(now, now_unix_ms, peer, &msg, &parts);
                self.flush_scratch();
            } else {
                debug!(source = %peer, "unusable response dropped");
            }
            return;
        }
        self.stats.requests += 1;
        self.handle_request(now, now_unix_ms, peer, &msg);
        self.flush_scratch();
    }

    /// A response no transaction tracks: along `heads` when they were
    /// worked out already (a REGISTER whose transaction is not open yet),
    /// else along the route [`response_route`] finds in the request.
    fn respond_untracked(
        &mut self,
        heads: Option<(Peer, &ResponseHeads)>,
        req: &Message,
        peer: Peer,
        status: u16,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) {
        let tag = self.random_tag();
        let tag = std::str::from_utf8(&tag).unwrap_or("");
        let (to, bytes) =
            build_response(heads, self.user_agent.as_str(), tag, req, peer, status, f);
        self.outputs
            .push_back(Output::Transmit(Transmit { to, bytes }));
    }

    pub(crate) fn respond(
        &mut self,
        now: Instant,
        key: &str,
        req: &Message,
        peer: Peer,
        status: u16,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) {
        let tag = self.random_tag();
        let user_agent = self.user_agent.as_str();
        self.table
            .respond_with(key, status, now, &mut self.scratch, |heads| {
                let tag = std::str::from_utf8(&tag).unwrap_or("");
                build_response(heads, user_agent, tag, req, peer, status, f)
            });
    }

    fn handle_request(&mut self, now: Instant, now_unix_ms: u64, peer: Peer, msg: &Message) {
        let now_unix = now_unix_ms / 1000;
        let Some(method) = msg.method().cloned() else {
            return;
        };
        // Every request but ACK is checked here, before the transaction
        // lookup, so that its top Via is parsed once for the check, the key
        // and the response route; the verdict is acted on only for a new
        // transaction (a retransmission gets the stored response).
        let validated = (method != Method::Ack).then(|| validate_request_parts(msg));
        let top_via = match &validated {
            Some(Ok(parts)) => Some(parts.top_via),
            _ => msg.top_via(),
        };
        let Some(key) = top_via.as_ref().and_then(|v| server_key_with(msg, v)) else {
            self.respond_untracked(None, msg, peer, 400, |b| b.reason("Bad Via"));
            return;
        };
        if method == Method::Ack {
            let in_dialog = self.handle_dialog_ack(now, msg);
            let matched = self
                .table
                .ack(&key, || crate::endpoint::dialog_key(msg), now);
            if !in_dialog && !matched {
                debug!(source = %peer, "ACK without transaction or dialog absorbed");
            }
            return;
        }
        if self.table.retransmission(&key, now, &mut self.scratch) {
            self.stats.retransmissions += 1;
            return;
        }
        let kind = if method == Method::Invite {
            TransactionKind::Invite
        } else {
            TransactionKind::NonInvite
        };
        // Port the transaction's responses go to.
        let (route, via) = response_route_with(top_via.as_ref(), peer);
        let dialog = match &validated {
            _ if kind != TransactionKind::Invite => None,
            Some(Ok(parts)) => Some(crate::endpoint::dialog_key_of(
                parts.call_id,
                parts.cseq.seq,
            )),
            _ => crate::endpoint::dialog_key(msg),
        };
        let heads = ResponseHeads {
            via,
            to_tagged: match &validated {
                Some(Ok(parts)) => Some(parts.to.tag().is_some()),
                _ => None,
            },
        };
        // A valid REGISTER's transaction opens only once its credentials
        // pass (`handle_register`): a challenge is answered statelessly.
        let unopened = if method == Method::Register && matches!(validated, Some(Ok(_))) {
            Some((route, heads))
        } else {
            self.table
                .create_with_heads(&key, kind, route, heads, dialog, now);
            None
        };

        let parts = match validated {
            Some(Ok(parts)) => parts,
            None => return,
            Some(Err(rej)) => {
                info!(method = %method, source = %peer, status = rej.status, reason = rej.reason, "request rejected");
                let unsupported = rej.unsupported.join(", ");
                let status = rej.status;
                self.respond(now, &key, msg, peer, status, |b| {
                    let b = b.reason(if status == 400 {
                        rej.reason
                    } else {
                        carillon_sip::builder::reason_phrase(status)
                    });
                    match status {
                        420 => b.header("Unsupported", unsupported),
                        415 | 406 => b.header("Accept", "application/sdp"),
                        501 | 405 => b.header("Allow", ALLOW),
                        _ => b,
                    }
                });
                return;
            }
        };
        let in_dialog = parts.to.tag().is_some();
        if method == Method::Invite && in_dialog {
            // A re-INVITE waits for the other party: provisional at once
            // so the caller stops retransmitting. A new call's 100 is only
            // sent if nothing else is within `TRYING_AFTER` (calls.rs).
            self.respond(now, &key, msg, peer, 100, |b| b);
        }
        let status = match method {
            Method::Register => {
                self.handle_register(now, now_unix, &key, unopened, peer, msg, &parts)
            }
            Method::Options if !in_dialog => {
                self.respond(now, &key, msg, peer, 200, |b| {
                    b.header("Allow", ALLOW)
                        .header("Accept", "application/sdp")
                        .header("Supported", SUPPORTED)
                });
                200
            }
            // A REFER outside a dialog (RFC 3515 §2.4.2 would make it
            // one) is not taken: transfers are REFERs inside a call.
            Method::Refer if !in_dialog => {
                self.respond(now, &key, msg, peer, 403, |b| {
                    b.reason("Out-Of-Dialog REFER Not Accepted")
                        .header("Allow", ALLOW)
                });
                403
            }
            _ if in_dialog => self.handle_in_dialog(now, now_unix_ms, &key, peer, msg),
            Method::Cancel => self.handle_cancel(now, now_unix_ms, &key, peer, msg),
            Method::Invite => {
                let trunk = self
                    .trunks
                    .as_ref()
                    .and_then(|t| t.identify(peer.addr.ip()))
                    .map(|n| n.as_str().to_owned());
                match trunk {
                    Some(t) => self.handle_new_invite(
                        now,
                        now_unix_ms,
                        &key,
                        peer,
                        msg,
                        &parts,
                        crate::calls::Caller::Trunk(t),
                    ),
                    None => match self.authenticate(now, now_unix, peer, msg, true) {
                        Ok(user) => self.handle_new_invite(
                            now,
                            now_unix_ms,
                            &key,
                            peer,
                            msg,
                            &parts,
                            crate::calls::Caller::User(user),
                        ),
                        Err(stale) => self.send_challenge(
                            now,
                            now_unix,
                            Reply::Txn(&key),
                            msg,
                            peer,
                            stale,
                            true,
                        ),
                    },
                }
            }
            // BYE, INFO, UPDATE and PRACK without a To tag: they only
            // mean something inside a dialog, and there is none (RFC 3261
            // §12.2.2, §15.1.2; RFC 6086 §4.2.1). Methods not allowed at
            // all were refused by validation.
            _ => {
                self.respond(now, &key, msg, peer, 481, |b| b);
                481
            }
        };
        // The user is only worked out when this line is enabled (tracing
        // evaluates fields lazily).
        debug!(method = %method, source = %peer, user = %from_user(msg), status, "request");
    }

    /// Checks credentials. `Err(stale)` means: send a challenge.
    fn authenticate(
        &mut self,
        now: Instant,
        now_unix: u64,
        peer: Peer,
        msg: &Message,
        proxy: bool,
    ) -> Result<String, bool> {
        let header = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let mut stale = false;
        for value in msg.header_all_str(header) {
            let Ok(creds) = Credentials::parse(value) else {
                continue;
            };
            if creds.realm != self.realm.as_str() {
                continue;
            }
            let user = &creds.username;
            let result = match self.users.ha1(user, creds.algorithm) {
                Some(ha1) => self.digest.verify(
                    now_unix,
                    msg.method().map_or("", Method::as_str),
                    &creds,
                    Secret::Ha1(ha1),
                ),
                None => self.digest.verify_unknown_user(
                    now_unix,
                    msg.method().map_or("", Method::as_str),
                    &creds,
                ),
            };
            match result {
                AuthResult::Ok => return Ok(user.clone().into_owned()),
                AuthResult::Stale => stale = true,
                AuthResult::BadResponse => {
                    self.stats.auth_failures += 1;
                    info!(source = %peer, user = %user, "authentication failed");
                    if let Some(ban) = self.policy.auth_failed(peer.addr.ip(), now) {
                        self.stats.bans += 1;
                        warn!(source = %ban.ip, failures = ban.failures, ban_secs = ban.until.saturating_duration_since(now).as_secs(), "source banned after failed authentications");
                    }
                }
                other => {
                    debug!(source = %peer, user = %user, result = ?other, "credentials refused")
                }
            }
        }
        Err(stale)
    }

    /// Answers with a digest challenge: 407 through the INVITE's
    /// transaction (`Reply::Txn`), or 401 to a REGISTER without one
    /// (`Reply::Unopened`).
    #[allow(clippy::too_many_arguments)]
    fn send_challenge(
        &mut self,
        now: Instant,
        now_unix: u64,
        reply: Reply<'_>,
        msg: &Message,
        peer: Peer,
        stale: bool,
        proxy: bool,
    ) -> u16 {
        let random = self.rng.next_u64();
        let challenges = self.digest.challenge_values(now_unix, random, stale);
        let (status, name) = if proxy {
            (407, "Proxy-Authenticate")
        } else {
            (401, "WWW-Authenticate")
        };
        self.reply(now, reply, msg, peer, status, |mut b| {
            for c in challenges {
                b = b.header(name, c);
            }
            b
        });
        status
    }

    /// [`Switch::respond`] through a transaction, or statelessly along a
    /// route worked out for a transaction that was never opened.
    fn reply(
        &mut self,
        now: Instant,
        reply: Reply<'_>,
        msg: &Message,
        peer: Peer,
        status: u16,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) {
        match reply {
            Reply::Txn(key) => self.respond(now, key, msg, peer, status, f),
            Reply::Unopened(route, heads) => {
                self.respond_untracked(Some((route, heads)), msg, peer, status, f)
            }
        }
    }

    /// `unopened` is where the REGISTER's responses go and what they copy
    /// from it, when its transaction is not open yet (`None`: it is): it
    /// opens only once the credentials pass. A challenge (or a 400 before
    /// it) is sent statelessly, as Kamailio and OpenSIPS do: a
    /// retransmitted REGISTER just gets a fresh challenge, which is as good
    /// to the phone, and the 32 s (Timer J) a completed transaction is kept
    /// is spent only on the REGISTER whose 200 a retransmission must see
    /// again (its nonce count is used up).
    #[allow(clippy::too_many_arguments)]
    fn handle_register(
        &mut self,
        now: Instant,
        now_unix: u64,
        key: &str,
        unopened: Option<(Peer, ResponseHeads)>,
        peer: Peer,
        msg: &Message,
        parts: &RequestParts<'_>,
    ) -> u16 {
        // The To URI names the AOR (RFC 3261 §10.3 step 5); validation has
        // parsed it already.
        let to_uri = &parts.to.uri;
        let aor_user = if !to_uri.is_sip() {
            Err(RegisterError::BadRequest("To is not a SIP or SIPS URI"))
        } else {
            to_uri
                .user_unescaped()
                .ok_or(RegisterError::BadRequest("To has no user part"))
        };
        let aor_user = match aor_user {
            Ok(u) => u,
            Err(e) => {
                let reply = Reply::to(key, unopened.as_ref());
                self.reply(now, reply, msg, peer, 400, |b| b.reason(e.to_string()));
                return 400;
            }
        };
        let user = match self.authenticate(now, now_unix, peer, msg, false) {
            Ok(u) => u,
            Err(stale) => {
                let reply = Reply::to(key, unopened.as_ref());
                return self.send_challenge(now, now_unix, reply, msg, peer, stale, false);
            }
        };
        if let Some((route, heads)) = unopened {
            self.table
                .create_with_heads(key, TransactionKind::NonInvite, route, heads, None, now);
        }
        if user != aor_user {
            info!(source = %peer, user = %user, aor = %aor_user, "REGISTER for another user's AOR refused");
            self.respond(now, key, msg, peer, 403, |b| b);
            return 403;
        }
        let max_contacts = self.users.get(&user).map_or(1, |u| u.max_contacts);
        let source = peer.to_source();
        match self.registrar.handle_register_parsed(
            now_unix,
            msg,
            parts,
            &aor_user,
            &source,
            max_contacts,
        ) {
            Ok(changes) => {
                self.stats.registrations_ok += 1;
                for change in &changes {
                    match change {
                        BindingChange::Upsert(b) => {
                            debug!(aor = %b.aor, contact = %b.contact, source = %b.source, expires_at = b.expires_at, "registration")
                        }
                        BindingChange::Remove { aor, contact } => {
                            info!(aor = %aor, contact = %contact, "registration removed")
                        }
                    }
                }
                for c in changes {
                    self.outputs.push_back(Output::Binding(c));
                }
                // The 200 lists the bindings now in force, borrowed from
                // the registrar while the response is built.
                let tag = self.random_tag();
                // The stored Path goes back only to a UA that said it
                // supports Path (RFC 3327 §5.3).
                let echo_path = msg
                    .header_list(HeaderName::Supported)
                    .is_ok_and(|tags| tags.iter().any(|t| t.eq_ignore_ascii_case("path")));
                let bindings = self.registrar.bindings(&aor_user);
                let user_agent = self.user_agent.as_str();
                self.table
                    .respond_with(key, 200, now, &mut self.scratch, |heads| {
                        let tag = std::str::from_utf8(&tag).unwrap_or("");
                        build_response(heads, user_agent, tag, msg, peer, 200, |mut b| {
                            for binding in bindings {
                                let mut c = String::with_capacity(binding.contact.len() + 24);
                                c.push('<');
                                c.push_str(&binding.contact);
                                c.push_str(">;expires=");
                                crate::header_text::push_u64(&mut c, binding.remaining(now_unix));
                                b = b.header("Contact", c);
                            }
                            if let Some(first) =
                                bindings.first().filter(|f| echo_path && !f.path.is_empty())
                            {
                                b = b.header("Path", first.path.join(", "));
                            }
                            b
                        })
                    });
                200
            }
            Err(e) => {
                let status = e.status();
                info!(source = %peer, user = %user, error = %e, "REGISTER refused");
                self.respond(now, key, msg, peer, status, |b| match e {
                    RegisterError::IntervalTooBrief { min_expires } => {
                        b.header("Min-Expires", min_expires.to_string())
                    }
                    _ => b.reason(e.to_string()),
                });
                status
            }
        }
    }
}

/// Which way a response goes.
#[derive(Clone, Copy)]
enum Reply<'a> {
    /// Through the open server transaction with this key.
    Txn(&'a str),
    /// Statelessly, along the route and heads worked out for a transaction
    /// that was not opened.
    Unopened(Peer, &'a ResponseHeads),
}

impl<'a> Reply<'a> {
    /// Through the transaction `key` unless it is still `unopened`.
    fn to(key: &'a str, unopened: Option<&'a (Peer, ResponseHeads)>) -> Reply<'a> {
        match unopened {
            Some((route, heads)) => Reply::Unopened(*route, heads),
            None => Reply::Txn(key),
        }
    }
}

/// Builds a response through its transaction's route and rewritten Via
/// (`heads`, borrowed from the table; [`response_route`] when the
/// transaction is gone), with our To tag and `Server` header, then `f`'s
/// additions.
pub(crate) fn build_response<'r>(
    heads: Option<(Peer, &'r ResponseHeads)>,
    user_agent: &'r str,
    tag: &'r str,
    req: &'r Message,
    peer: Peer,
    status: u16,
    f: impl FnOnce(ResponseBuilder<'r>) -> ResponseBuilder<'r>,
) -> (Peer, Bytes) {
    let (to, via, to_tagged) = match heads {
        Some((to, heads)) => (
            to,
            heads.via.as_deref().map(std::borrow::Cow::Borrowed),
            heads.to_tagged,
        ),
        None => {
            let (to, via) = response_route(req, peer);
            (to, via.map(std::borrow::Cow::Owned), None)
        }
    };
    let mut b = ResponseBuilder::new(req, status)
        .to_tag(tag)
        .header("Server", user_agent);
    if let Some(v) = via {
        b = b.top_via(v);
    }
    if let Some(t) = to_tagged {
        b = b.request_to_tagged(t);
    }
    (to, f(b).build())
}

/// The user part of the From URI, or `-`: who a request says it is from,
/// for the per-request log line.
fn from_user(msg: &Message) -> String {
    msg.header(HeaderName::From)
        .and_then(|f| {
            NameAddr::parse(&f)
                .ok()
                .and_then(|n| n.uri.user.map(str::to_owned))
        })
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests;
