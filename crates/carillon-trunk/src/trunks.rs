//! [`Trunks`]: the run-time owner of every trunk, as the switch uses it.
//!
//! Owns per-trunk state: the [`Qualifier`] of each contact, the
//! [`Registration`] of a `register = true` trunk, concurrent call counts,
//! the `max_cps` bucket, gateway port rotation and cooldowns, and the
//! digest nonce-counts. Follows the workspace API shape: `handle_*` inputs,
//! then drain `poll_transmit`, `poll_event`, and sleep until
//! `poll_timeout`.
//!
//! Outbound call bookkeeping, as the switch drives it:
//!
//! ```text
//! outbound_target(trunk, now) ──Ok(target)──► call_started(trunk, port)
//!        │ Err(Busy / RateLimited / Unavailable) → answer err.status()
//!        ▼
//!   INVITE to target.contact_uri ──► call_ended(trunk, port)           normal end,
//!                                    │                                  or a final answer
//!                                    │                                  from the callee
//!                                    └► call_failed(trunk, port, now)  the trunk/port failed
//!                                                                      (5xx, 408, no answer):
//!                                                                      the port cools down
//! ```
//!
//! A carrier contact that answers the INVITE with 408/500/503 (or not at
//! all) before any ringing: `failover_target(trunk, target.contact, now)`
//! gives the next usable contact for the same call (then `call_started`
//! again), until none is left.
//!
//! [`Trunks::reload`] swaps in a new configuration at run time (SIGHUP):
//! unchanged trunks keep their state, changed ones restart with their calls
//! still counted, removed ones stop and have their registration removed.
//! A trunk with `enabled = false` gets no qualifier and no registration,
//! and `outbound_target` refuses it ([`UnavailableReason::Disabled`]).
//!
//! `outbound_target` checks, in order: the trunk's `max_calls`, a usable
//! contact (the first one in `contacts` not qualified Down) or port, then
//! `max_cps`; only a call that passes every check takes a rate token.
//! Call `call_started` right after a successful `outbound_target`, before
//! the next one, so the counts it checks stay exact.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use carillon_sip::{HeaderName, Message};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::auth::DigestClient;
use crate::config::{self, ConfigProblem};
use crate::error::{BusyReason, TrunkError, UnavailableReason};
use crate::event::{ContactState, RegistrationState, Transmit, TrunkEvent};
use crate::limit::RateBucket;
use crate::model::{
    PortConfig, PortName, PortRoute, PortStrategy, TrunkConfig, TrunkKind, TrunkName, TrunkSet,
};
use crate::qualify::Qualifier;
use crate::registration::Registration;
use crate::request::LocalConfig;

/// Where and how to send one outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTarget {
    pub trunk: TrunkName,
    /// Index of the chosen contact in the trunk's `contacts` (for
    /// [`Trunks::failover_target`]).
    pub contact: usize,
    /// The contact the INVITE goes to; its Request-URI is this URI with the
    /// dialled number as user part (see [`OutboundTarget::request_uri`]).
    pub contact_uri: String,
    /// `from_user` of the trunk: the user part of From instead of the
    /// caller's number, when set.
    pub from_user: Option<String>,
    /// `from_domain` of the trunk: the host of From (and of P-Asserted-
    /// Identity), when set; otherwise the contact's host.
    pub from_domain: Option<String>,
    /// `send_pai`: add P-Asserted-Identity (RFC 3325) with the caller's
    /// identity, see [`OutboundTarget::pai`].
    pub send_pai: bool,
    /// The gateway port chosen, for `call_started`/`call_ended`/`call_failed`.
    pub port: Option<PortName>,
    /// Dinstar-style prefix ports: put this in front of the dialled number.
    pub dial_prefix: Option<String>,
}

fn uri_host(uri: &str) -> &str {
    carillon_sip::Uri::parse(uri).map(|u| u.host).unwrap_or("")
}

impl OutboundTarget {
    /// The dialled number as the gateway must receive it (prefix added).
    pub fn dialled(&self, number: &str) -> String {
        match &self.dial_prefix {
            Some(prefix) => format!("{prefix}{number}"),
            None => number.to_owned(),
        }
    }

    /// The Request-URI for `number`: `sip:NUMBER@host[:port][;params]` of
    /// the contact (any user part of the contact is replaced).
    pub fn request_uri(&self, number: &str) -> String {
        let user = self.dialled(number);
        let (scheme, rest) = self
            .contact_uri
            .split_once(':')
            .unwrap_or(("sip", self.contact_uri.as_str()));
        let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!("{scheme}:{user}@{hostpart}")
    }

    /// The host of From: `from_domain`, else the contact's host.
    pub fn from_host(&self) -> &str {
        match &self.from_domain {
            Some(d) => d,
            None => uri_host(&self.contact_uri),
        }
    }

    /// The From URI for a caller: `from_user` overrides the caller.
    pub fn from_uri(&self, caller: &str) -> String {
        let user = self.from_user.as_deref().unwrap_or(caller);
        format!("sip:{user}@{}", self.from_host())
    }

    /// The P-Asserted-Identity value for a caller when `send_pai` is set:
    /// `<sip:CALLER@from-host>` (the real caller, not `from_user`, which
    /// often is an account name).
    pub fn pai(&self, caller: &str) -> Option<String> {
        self.send_pai
            .then(|| format!("<sip:{caller}@{}>", self.from_host()))
    }
}

#[derive(Debug, Clone, Default)]
struct PortState {
    active: u32,
    started: u64,
    cooling_until: Option<Instant>,
}

#[derive(Debug)]
struct TrunkState {
    active: u32,
    bucket: Option<RateBucket>,
    /// Parallel to `TrunkConfig::contacts`; `None` when qualify is off.
    qualifiers: Vec<Option<Qualifier>>,
    registration: Option<Registration>,
    ports: Vec<PortState>,
    next_port: usize,
    digest: DigestClient,
}

/// Every trunk's run-time state. See the module documentation.
#[derive(Debug)]
pub struct Trunks {
    set: TrunkSet,
    local: LocalConfig,
    rng: ChaCha20Rng,
    states: Vec<TrunkState>,
    /// Registrations of trunks removed or changed by a reload, being
    /// removed at their registrar (Expires: 0); dropped once stopped.
    retired: Vec<Registration>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TrunkEvent>,
}

/// What [`Trunks::reload`] did, by trunk name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// New names: started (pinged, registered) from now.
    pub added: Vec<TrunkName>,
    /// Same name, different settings: restarted with the new ones; calls
    /// up on it stay counted against its limits.
    pub changed: Vec<TrunkName>,
    /// Gone: no longer pinged, identified or dialled; a registration is
    /// removed. Calls up on it keep going until they end.
    pub removed: Vec<TrunkName>,
    /// Identical: state (qualify, registration, counts) kept as is.
    pub unchanged: Vec<TrunkName>,
}

impl Trunks {
    /// Loads and validates a trunks file (see the crate documentation for
    /// the schema). `file_name` only labels problems, which come back all
    /// at once, sorted by line.
    pub fn load(file_name: &str, text: &str) -> Result<TrunkSet, Vec<ConfigProblem>> {
        config::load(file_name, text)
    }

    /// Starts the run time: every qualify ping and registration is due at
    /// `now`, so drain `poll_transmit` right after.
    pub fn new(set: TrunkSet, local: LocalConfig, now: Instant) -> Trunks {
        let mut rng = ChaCha20Rng::from_seed(local.rng_seed);
        let states = set
            .trunks
            .iter()
            .map(|t| Self::start_trunk(t, &local, &mut rng, now))
            .collect();
        let mut trunks = Trunks {
            set,
            local,
            rng,
            states,
            retired: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        trunks.handle_timeout(now);
        trunks
    }

    /// Replaces the configuration (SIGHUP) without a restart. A trunk whose
    /// settings are unchanged keeps all its state. A changed one starts
    /// afresh (qualify from Unknown, pinged at `now`) but keeps its calls
    /// up and its ports' counts and cooldowns, and its registration when
    /// the registrar, expiry and credentials are the same (otherwise the
    /// old binding is removed and the new one registered). A removed
    /// trunk's registration is removed (Expires: 0); its calls up go on,
    /// and their end is ignored. Drain `poll_transmit` after.
    pub fn reload(&mut self, set: TrunkSet, now: Instant) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut old_states: Vec<Option<TrunkState>> = std::mem::take(&mut self.states)
            .into_iter()
            .map(Some)
            .collect();
        let old_set = std::mem::replace(&mut self.set, set);
        let mut states = Vec::with_capacity(self.set.trunks.len());
        let mut retiring = Vec::new();
        for t in &self.set.trunks {
            let old = old_set
                .trunks
                .iter()
                .position(|o| o.name == t.name)
                .and_then(|i| Some((old_set.trunks.get(i)?, old_states.get_mut(i)?.take()?)));
            let state = match old {
                Some((o, state)) if o == t => {
                    report.unchanged.push(t.name.clone());
                    state
                }
                Some((o, mut old)) => {
                    report.changed.push(t.name.clone());
                    let mut fresh = Self::start_trunk(t, &self.local, &mut self.rng, now);
                    fresh.active = old.active;
                    if let (Some(new_gw), Some(old_gw)) = (&t.gateway, &o.gateway) {
                        for (p, ps) in new_gw.ports.iter().zip(fresh.ports.iter_mut()) {
                            if let Some(j) = old_gw.ports.iter().position(|q| q.name == p.name) {
                                if let Some(old_ps) = old.ports.get(j) {
                                    *ps = old_ps.clone();
                                }
                            }
                        }
                    }
                    let same_registration = t.enabled
                        && o.enabled
                        && t.registration == o.registration
                        && t.credentials == o.credentials;
                    match old.registration.take() {
                        Some(r) if same_registration => fresh.registration = Some(r),
                        Some(r) => retiring.push(r),
                        None => {}
                    }
                    fresh
                }
                None => {
                    report.added.push(t.name.clone());
                    Self::start_trunk(t, &self.local, &mut self.rng, now)
                }
            };
            states.push(state);
        }
        for (o, state) in old_set.trunks.iter().zip(old_states) {
            if let Some(mut state) = state {
                report.removed.push(o.name.clone());
                retiring.extend(state.registration.take());
            }
        }
        self.states = states;
        for r in retiring {
            self.retire(r, now);
        }
        self.handle_timeout(now);
        report
    }

    fn retire(&mut self, mut registration: Registration, now: Instant) {
        registration.unregister(now);
        self.retired.push(registration);
    }

    fn start_trunk(
        t: &TrunkConfig,
        local: &LocalConfig,
        rng: &mut ChaCha20Rng,
        now: Instant,
    ) -> TrunkState {
        let from_domain = t.from_domain.clone().unwrap_or_else(|| local.host.clone());
        // A disabled trunk sends nothing: no pings, no registration.
        let qualify = t.qualify.filter(|_| t.enabled);
        let qualifiers = t
            .contacts
            .iter()
            .map(|contact| {
                qualify.map(|cfg| {
                    Qualifier::new(
                        t.name.clone(),
                        contact.clone(),
                        from_domain.clone(),
                        cfg,
                        local.clone(),
                        rng.next_u64(),
                        now,
                    )
                })
            })
            .collect();
        let registration = match (&t.registration, &t.credentials) {
            (Some(cfg), Some(credentials)) if t.enabled => Some(Registration::new(
                t.name.clone(),
                cfg.clone(),
                credentials.clone(),
                local.clone(),
                rng.next_u64(),
                now,
            )),
            _ => None,
        };
        let ports = t
            .gateway
            .as_ref()
            .map(|g| vec![PortState::default(); g.ports.len()])
            .unwrap_or_default();
        TrunkState {
            active: 0,
            bucket: t.max_cps.map(RateBucket::new),
            qualifiers,
            registration,
            ports,
            next_port: 0,
            digest: DigestClient::new(),
        }
    }

    /// The configuration this run time was started with.
    pub fn set(&self) -> &TrunkSet {
        &self.set
    }

    /// The trunk an inbound request from `src_ip` belongs to.
    pub fn identify(&self, src_ip: IpAddr) -> Option<&TrunkName> {
        self.set.identify(src_ip)
    }

    fn index(&self, trunk: &str) -> Result<usize, TrunkError> {
        self.set
            .trunks
            .iter()
            .position(|t| t.name.as_str() == trunk)
            .ok_or_else(|| TrunkError::UnknownTrunk {
                trunk: trunk.to_owned(),
            })
    }

    /// The qualify state of one contact (`Unknown` when qualify is off).
    pub fn contact_state(&self, trunk: &str, contact: &str) -> Option<ContactState> {
        let i = self.index(trunk).ok()?;
        let config = self.set.trunks.get(i)?;
        let state = self.states.get(i)?;
        let c = config.contacts.iter().position(|c| c == contact)?;
        Some(contact_state(state, c))
    }

    /// The registration state of a `register = true` trunk.
    pub fn registration_state(&self, trunk: &str) -> Option<RegistrationState> {
        let i = self.index(trunk).ok()?;
        self.states
            .get(i)?
            .registration
            .as_ref()
            .map(Registration::state)
    }

    /// Calls up now on a trunk (and on one of its ports).
    pub fn active_calls(&self, trunk: &str, port: Option<&str>) -> Option<u32> {
        let i = self.index(trunk).ok()?;
        let state = self.states.get(i)?;
        match port {
            None => Some(state.active),
            Some(port) => {
                let p = port_index(self.set.trunks.get(i)?, port)?;
                state.ports.get(p).map(|p| p.active)
            }
        }
    }

    /// Chooses where the next outbound call on `trunk` goes, or says why it
    /// cannot go now. Takes a `max_cps` token on success only.
    pub fn outbound_target(
        &mut self,
        trunk: &str,
        now: Instant,
    ) -> Result<OutboundTarget, TrunkError> {
        self.target_after(trunk, now, None)
    }

    /// Where a call whose INVITE to contact `failed` (an
    /// [`OutboundTarget::contact`]) got no answer or a 408/5xx goes next:
    /// the first usable contact listed after it (RFC 3263 §4.3: the next
    /// server on 503 or a timeout). The call already holds its `max_cps`
    /// token, so none is taken. Gateway trunks pick another port on the
    /// call's next attempt instead (the failed port cools down), so they
    /// have no next contact here.
    pub fn failover_target(
        &mut self,
        trunk: &str,
        failed: usize,
        now: Instant,
    ) -> Result<OutboundTarget, TrunkError> {
        self.target_after(trunk, now, Some(failed))
    }

    fn target_after(
        &mut self,
        trunk: &str,
        now: Instant,
        failed: Option<usize>,
    ) -> Result<OutboundTarget, TrunkError> {
        let i = self.index(trunk)?;
        let (Some(config), Some(state)) = (self.set.trunks.get(i), self.states.get_mut(i)) else {
            return Err(TrunkError::UnknownTrunk {
                trunk: trunk.to_owned(),
            });
        };
        if !config.enabled {
            return Err(TrunkError::Unavailable {
                trunk: config.name.clone(),
                reason: UnavailableReason::Disabled,
            });
        }
        if let Some(max) = config.max_calls {
            if state.active >= max {
                return Err(TrunkError::Busy {
                    trunk: config.name.clone(),
                    reason: BusyReason::TrunkFull { max },
                });
            }
        }
        let unavailable = || TrunkError::Unavailable {
            trunk: config.name.clone(),
            reason: UnavailableReason::ContactsDown,
        };
        let (contact, port) = match (&config.kind, &config.gateway, failed) {
            (TrunkKind::GsmGateway, Some(_), Some(_)) => return Err(unavailable()),
            (TrunkKind::GsmGateway, Some(gateway), None) => {
                let p = choose_port(config, state, gateway.strategy, now)?;
                (p.contact, Some(p.index))
            }
            (_, _, Some(failed)) => match next_live_contact(config, state, failed + 1) {
                Some(c) => (c, None),
                None => return Err(unavailable()),
            },
            _ => match next_live_contact(config, state, 0) {
                Some(c) => (c, None),
                None => return Err(unavailable()),
            },
        };
        if let (Some(bucket), None) = (&mut state.bucket, failed) {
            if !bucket.check(now) {
                return Err(TrunkError::RateLimited {
                    trunk: config.name.clone(),
                    retry_after: bucket.next_admission(now).saturating_duration_since(now),
                });
            }
            bucket.take(now);
        }
        let port_config = port.and_then(|p| {
            state.next_port = p + 1;
            config.gateway.as_ref().and_then(|g| g.ports.get(p))
        });
        Ok(OutboundTarget {
            trunk: config.name.clone(),
            contact,
            contact_uri: config.contacts.get(contact).cloned().unwrap_or_default(),
            from_user: config.from_user.clone(),
            from_domain: config.from_domain.clone(),
            send_pai: config.send_pai,
            port: port_config.map(|p| p.name.clone()),
            dial_prefix: port_config.and_then(|p| match &p.route {
                PortRoute::Prefix(prefix) => Some(prefix.clone()),
                PortRoute::Contact(_) => None,
            }),
        })
    }

    fn port_slot(
        &mut self,
        trunk: &str,
        port: Option<&PortName>,
    ) -> Result<(usize, Option<usize>), TrunkError> {
        let i = self.index(trunk)?;
        let p = match port {
            None => None,
            Some(port) => {
                let config = self
                    .set
                    .trunks
                    .get(i)
                    .ok_or_else(|| TrunkError::UnknownTrunk {
                        trunk: trunk.to_owned(),
                    })?;
                Some(
                    port_index(config, port.as_str()).ok_or_else(|| TrunkError::UnknownPort {
                        trunk: config.name.clone(),
                        port: port.to_string(),
                    })?,
                )
            }
        };
        Ok((i, p))
    }

    /// An outbound call on `trunk` (and `port`, from the target) was sent.
    pub fn call_started(&mut self, trunk: &str, port: Option<&PortName>) -> Result<(), TrunkError> {
        let (i, p) = self.port_slot(trunk, port)?;
        if let Some(state) = self.states.get_mut(i) {
            state.active = state.active.saturating_add(1);
            if let Some(ps) = p.and_then(|p| state.ports.get_mut(p)) {
                ps.active = ps.active.saturating_add(1);
                ps.started = ps.started.saturating_add(1);
            }
        }
        Ok(())
    }

    /// An outbound call ended (or was refused by the callee).
    pub fn call_ended(&mut self, trunk: &str, port: Option<&PortName>) -> Result<(), TrunkError> {
        let (i, p) = self.port_slot(trunk, port)?;
        if let Some(state) = self.states.get_mut(i) {
            state.active = state.active.saturating_sub(1);
            if let Some(ps) = p.and_then(|p| state.ports.get_mut(p)) {
                ps.active = ps.active.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// An outbound call failed because of the trunk or port (5xx, 408, no
    /// answer): released like [`Trunks::call_ended`], and the port is
    /// skipped for the gateway's `port_cooldown_secs` from `now`.
    pub fn call_failed(
        &mut self,
        trunk: &str,
        port: Option<&PortName>,
        now: Instant,
    ) -> Result<(), TrunkError> {
        self.call_ended(trunk, port)?;
        let (i, p) = self.port_slot(trunk, port)?;
        let cooldown = self
            .set
            .trunks
            .get(i)
            .and_then(|t| t.gateway.as_ref())
            .map(|g| g.cooldown);
        if let (Some(state), Some(p), Some(cooldown)) = (self.states.get_mut(i), p, cooldown) {
            if let Some(ps) = state.ports.get_mut(p) {
                ps.cooling_until = Some(now + cooldown);
            }
        }
        Ok(())
    }

    /// Answers a 401/407 to a request we sent on `trunk` (an INVITE, say):
    /// the header to add (`Authorization` or `Proxy-Authorization`) and its
    /// value. `challenge_header_values` are every `WWW-Authenticate` (401)
    /// or `Proxy-Authenticate` (407) value; the strongest Digest challenge
    /// is answered. cnonces come from the seeded RNG and nc counts per nonce.
    pub fn authorize(
        &mut self,
        trunk: &str,
        challenge_status: u16,
        challenge_header_values: &[&str],
        method: &str,
        uri: &str,
    ) -> Result<(HeaderName, String), TrunkError> {
        let i = self.index(trunk)?;
        let (Some(config), Some(state)) = (self.set.trunks.get(i), self.states.get_mut(i)) else {
            return Err(TrunkError::UnknownTrunk {
                trunk: trunk.to_owned(),
            });
        };
        let credentials = config
            .credentials
            .as_ref()
            .ok_or_else(|| TrunkError::NoCredentials {
                trunk: config.name.clone(),
            })?;
        state
            .digest
            .authorize(
                &mut self.rng,
                credentials,
                challenge_status,
                challenge_header_values,
                method,
                uri,
            )
            .map_err(|source| TrunkError::Auth {
                trunk: config.name.clone(),
                source,
            })
    }

    /// Removes every outbound registration (Expires: 0), e.g. at shutdown;
    /// drain `poll_transmit` and keep feeding responses and timeouts until
    /// every trunk reports [`RegistrationState::Unregistered`].
    pub fn unregister_all(&mut self, now: Instant) {
        for state in &mut self.states {
            if let Some(r) = &mut state.registration {
                r.unregister(now);
            }
        }
        self.collect();
    }

    /// True while an outbound registration is held or still being removed
    /// (after [`Trunks::unregister_all`], wait for this to turn false).
    pub fn registrations_held(&self) -> bool {
        self.states
            .iter()
            .filter_map(|s| s.registration.as_ref())
            .chain(&self.retired)
            .any(|r| {
                !matches!(
                    r.state(),
                    RegistrationState::Unregistered | RegistrationState::Failed { .. }
                )
            })
    }

    /// A response that may answer one of our OPTIONS or REGISTER requests
    /// (matched by top Via branch). Returns whether it was ours; if not,
    /// it belongs to someone else (the switch's own transactions).
    pub fn handle_response(&mut self, now: Instant, response: &Message) -> bool {
        let Some(status) = response.status() else {
            return false;
        };
        let Some(branch) = response
            .with_top_via(|v| v.branch().map(str::to_owned))
            .flatten()
        else {
            return false;
        };
        let mut taken = false;
        for r in &mut self.retired {
            if !taken && r.pending_branch() == Some(branch.as_str()) {
                taken = r.handle_response(now, response);
            }
        }
        for state in &mut self.states {
            if taken {
                break;
            }
            if let Some(r) = &mut state.registration {
                if r.pending_branch() == Some(branch.as_str()) {
                    taken = r.handle_response(now, response);
                }
            }
            for q in state.qualifiers.iter_mut().flatten() {
                if !taken && q.pending_branch() == Some(branch.as_str()) {
                    taken = q.handle_response(now, &branch, status);
                }
            }
            if taken {
                break;
            }
        }
        self.collect();
        taken
    }

    /// Advances every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for r in &mut self.retired {
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
            }
        }
        for state in &mut self.states {
            for q in state.qualifiers.iter_mut().flatten() {
                if q.poll_timeout().is_some_and(|t| t <= now) {
                    q.handle_timeout(now);
                }
            }
            if let Some(r) = &mut state.registration {
                if r.poll_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now);
                }
            }
        }
        self.collect();
    }

    fn collect(&mut self) {
        for r in &mut self.retired {
            self.transmits
                .extend(std::iter::from_fn(|| r.poll_transmit()));
            self.events.extend(std::iter::from_fn(|| r.poll_event()));
        }
        // A retired registration is dropped once it has stopped.
        self.retired.retain(|r| r.poll_timeout().is_some());
        for state in &mut self.states {
            for q in state.qualifiers.iter_mut().flatten() {
                self.transmits
                    .extend(std::iter::from_fn(|| q.poll_transmit()));
                self.events.extend(std::iter::from_fn(|| q.poll_event()));
            }
            if let Some(r) = &mut state.registration {
                self.transmits
                    .extend(std::iter::from_fn(|| r.poll_transmit()));
                self.events.extend(std::iter::from_fn(|| r.poll_event()));
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TrunkEvent> {
        self.events.pop_front()
    }

    /// The earliest instant [`Trunks::handle_timeout`] must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.states
            .iter()
            .flat_map(|s| {
                s.qualifiers
                    .iter()
                    .flatten()
                    .filter_map(Qualifier::poll_timeout)
                    .chain(s.registration.iter().filter_map(Registration::poll_timeout))
            })
            .chain(self.retired.iter().filter_map(Registration::poll_timeout))
            .min()
    }
}

fn contact_state(state: &TrunkState, contact: usize) -> ContactState {
    state
        .qualifiers
        .get(contact)
        .and_then(Option::as_ref)
        .map_or(ContactState::Unknown, Qualifier::state)
}

/// The first usable contact at index `from` or later.
fn next_live_contact(config: &TrunkConfig, state: &TrunkState, from: usize) -> Option<usize> {
    (from..config.failover_len).find(|&c| contact_state(state, c).is_usable())
}

fn port_index(config: &TrunkConfig, port: &str) -> Option<usize> {
    config
        .gateway
        .as_ref()?
        .ports
        .iter()
        .position(|p| p.name.as_str() == port)
}

struct ChosenPort {
    index: usize,
    contact: usize,
}

/// Picks a gateway port by strategy among the usable ones: not cooling
/// down, contact not Down, below its `max_calls`.
fn choose_port(
    config: &TrunkConfig,
    state: &TrunkState,
    strategy: PortStrategy,
    now: Instant,
) -> Result<ChosenPort, TrunkError> {
    let ports: &[PortConfig] = config.gateway.as_ref().map_or(&[], |g| &g.ports);
    let shared = next_live_contact(config, state, 0);
    let mut any_full = false;
    let mut usable: Vec<ChosenPort> = Vec::new();
    for (index, (port, ps)) in ports.iter().zip(&state.ports).enumerate() {
        if ps.cooling_until.is_some_and(|until| now < until) {
            continue;
        }
        let contact = match &port.route {
            PortRoute::Contact(c) if contact_state(state, *c).is_usable() => Some(*c),
            PortRoute::Contact(_) => None,
            PortRoute::Prefix(_) => shared,
        };
        let Some(contact) = contact else {
            continue;
        };
        if ps.active >= port.max_calls {
            any_full = true;
            continue;
        }
        usable.push(ChosenPort { index, contact });
    }
    let n = ports.len().max(1);
    let chosen = match strategy {
        PortStrategy::RoundRobin => {
            let start = state.next_port % n;
            usable.into_iter().min_by_key(|c| (c.index + n - start) % n)
        }
        PortStrategy::LeastUsed => usable.into_iter().min_by_key(|c| {
            let ps = state.ports.get(c.index);
            (
                ps.map_or(0, |p| p.active),
                ps.map_or(0, |p| p.started),
                c.index,
            )
        }),
    };
    chosen.ok_or_else(|| {
        if any_full {
            TrunkError::Busy {
                trunk: config.name.clone(),
                reason: BusyReason::AllPortsBusy,
            }
        } else {
            TrunkError::Unavailable {
                trunk: config.name.clone(),
                reason: UnavailableReason::NoUsablePort,
            }
        }
    })
}
