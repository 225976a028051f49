//! Outbound registration (RFC 3261 §10.2): a trunk with `register = true`
//! keeps a binding of our contact at the carrier's registrar, as
//! Voxlocus-style carriers require before they send inbound calls.
//!
//! One Call-ID and From tag for the life of the machine, CSeq +1 per
//! REGISTER (§10.2.4). Each REGISTER runs in a non-INVITE
//! [`ClientTransaction`] (retransmitted on Timer E over UDP; Timer F, 64×T1,
//! is the no-answer timeout). Outcomes:
//!
//! - 401/407: answered once per challenge with digest credentials
//!   (`Authorization`/`Proxy-Authorization`). A second challenge for the
//!   nonce just answered, unless `stale=true`, means the credentials are
//!   wrong → Failed. The last challenge is kept, and refreshes send
//!   credentials for it up front with the next nonce-count, saving a round
//!   trip when the registrar still accepts the nonce.
//! - 423 Interval Too Brief: the requested expiry is raised to Min-Expires
//!   and the REGISTER re-sent at once (§10.2.8).
//! - 2xx: Registered for the granted expiry: the `expires` parameter of our
//!   Contact in the response, else its Expires header, else what we asked.
//!   The refresh is sent at min(85 % of it, it − 30 s), but not before half
//!   of it (so at 3 060 s of 3 600 s, at 30 s of 60 s).
//! - any other final response, or no answer: Failed, retried after a
//!   backoff of 5 s doubling per consecutive failure up to 5 min.
//!
//! ```text
//! Waiting{send_at} ──send_at reached──► Sending ──2xx──► Waiting{refresh}  (Registered)
//!                                        │ 401/407 (new nonce) → Sending (with credentials)
//!                                        │ 423 → Sending (expiry = Min-Expires)
//!                                        └ failure/timeout ──► Waiting{backoff}  (Failed)
//! ```
//!
//! [`Registration::unregister`] sends Expires: 0 and stops the machine.
//!
//! Public states ([`RegistrationState`]) are reported as
//! [`TrunkEvent::RegistrationChanged`] when they change; a successful
//! refresh that grants the same expiry is silent.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use carillon_digest::Challenge;
use carillon_sip::{HeaderName, Message, NameAddr};
use carillon_transaction::{ClientEvent, ClientTransaction, TransactionKind};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::auth::{pick_challenge, DigestClient};
use crate::event::{RegistrationState, Transmit, TrunkEvent};
use crate::model::{Credentials, RegistrationConfig, TrunkName};
use crate::request::{self, LocalConfig, Register};

/// First retry delay after a failure; doubled per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Most REGISTERs (challenge answers, 423 raises) in one attempt.
const MAX_ROUNDS: u8 = 4;
/// The largest expiry we ask for after a 423 (one week).
const MAX_EXPIRY: u32 = 604_800;

#[derive(Debug)]
struct Sending {
    branch: String,
    tx: ClientTransaction,
    /// REGISTERs sent in this attempt.
    rounds: u8,
    /// Nonce answered in the REGISTER in flight, if any.
    answered_nonce: Option<String>,
}

#[derive(Debug)]
enum Phase {
    /// Next REGISTER due at `send_at` (first one, refresh or retry).
    Waiting {
        send_at: Instant,
    },
    Sending(Box<Sending>),
    /// Unregistered on request; nothing more is sent.
    Stopped,
}

/// The outbound registration of one trunk.
#[derive(Debug)]
pub struct Registration {
    trunk: TrunkName,
    cfg: RegistrationConfig,
    credentials: Credentials,
    local: LocalConfig,
    rng: ChaCha8Rng,
    digest: DigestClient,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The expiry we ask for (raised by 423).
    expiry: u32,
    /// The challenge answered last, sent up front on refreshes.
    challenge: Option<(HeaderName, Challenge)>,
    failures: u32,
    /// [`Registration::unregister`] was called: REGISTERs carry Expires: 0
    /// and the machine stops after the answer.
    removing: bool,
    state: RegistrationState,
    phase: Phase,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TrunkEvent>,
}

/// When to refresh a binding granted for `granted` seconds.
pub fn refresh_after(granted: u32) -> Duration {
    let g = u64::from(granted);
    let at = (g * 85 / 100).min(g.saturating_sub(30)).max(g / 2).max(1);
    Duration::from_secs(at)
}

fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

impl Registration {
    /// A registration whose first REGISTER is due at `now`.
    pub fn new(
        trunk: TrunkName,
        cfg: RegistrationConfig,
        credentials: Credentials,
        local: LocalConfig,
        seed: u64,
        now: Instant,
    ) -> Registration {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let call_id = format!("{}@{}", request::token(&mut rng), local.host);
        let from_tag = request::token(&mut rng);
        let expiry = cfg.expiry;
        Registration {
            trunk,
            cfg,
            credentials,
            local,
            rng,
            digest: DigestClient::new(),
            call_id,
            from_tag,
            cseq: 0,
            expiry,
            challenge: None,
            failures: 0,
            removing: false,
            state: RegistrationState::Unregistered,
            phase: Phase::Waiting { send_at: now },
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// The expiry the next REGISTER asks for.
    pub fn requested_expiry(&self) -> u32 {
        self.expiry
    }

    /// The branch of the REGISTER in flight, if any.
    pub fn pending_branch(&self) -> Option<&str> {
        match &self.phase {
            Phase::Sending(s) => Some(&s.branch),
            Phase::Waiting { .. } | Phase::Stopped => None,
        }
    }

    fn set_state(&mut self, state: RegistrationState) {
        if state != self.state {
            self.state = state;
            self.events.push_back(TrunkEvent::RegistrationChanged {
                trunk: self.trunk.clone(),
                state,
            });
        }
    }

    fn drain_tx(&mut self) -> bool {
        let mut timed_out = false;
        if let Phase::Sending(s) = &mut self.phase {
            while let Some(bytes) = s.tx.poll_transmit() {
                self.transmits.push_back(Transmit {
                    trunk: self.trunk.clone(),
                    destination: self.cfg.registrar.clone(),
                    bytes,
                });
            }
            while let Some(event) = s.tx.poll_event() {
                if matches!(event, ClientEvent::TimedOut | ClientEvent::TransportFailed) {
                    timed_out = true;
                }
            }
        }
        timed_out
    }

    /// Sends a REGISTER, with credentials for the kept challenge if any.
    fn send(&mut self, now: Instant, rounds: u8) {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let branch = request::branch(&mut self.rng);
        let answer = self.challenge.as_ref().map(|(header, challenge)| {
            let value = self.digest.answer(
                &mut self.rng,
                &self.credentials,
                challenge,
                "REGISTER",
                &self.cfg.registrar,
            );
            (header.as_str(), value, challenge.nonce.clone())
        });
        let bytes = request::register(
            &self.local,
            &Register {
                registrar: &self.cfg.registrar,
                user: &self.credentials.username,
                domain: &self.cfg.domain,
                branch: &branch,
                call_id: &self.call_id,
                from_tag: &self.from_tag,
                cseq: self.cseq,
                expires: if self.removing { 0 } else { self.expiry },
                authorization: answer.as_ref().map(|(h, v, _)| (*h, v.as_str())),
            },
        );
        let tx = ClientTransaction::new(
            TransactionKind::NonInvite,
            self.local.transport.is_reliable(),
            bytes,
            now,
            self.local.timers,
        );
        self.phase = Phase::Sending(Box::new(Sending {
            branch,
            tx,
            rounds: rounds.saturating_add(1),
            answered_nonce: answer.map(|(_, _, nonce)| nonce),
        }));
        if !matches!(self.state, RegistrationState::Registered { .. }) && !self.removing {
            self.set_state(RegistrationState::Registering);
        }
        self.drain_tx();
    }

    /// Removes our binding (a REGISTER with Expires: 0, RFC 3261 §10.2.2),
    /// e.g. at shutdown. Any REGISTER in flight is abandoned; challenges are
    /// answered; after the final answer (or none) the machine is stopped
    /// in [`RegistrationState::Unregistered`] and sends nothing more.
    pub fn unregister(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Stopped) || self.removing {
            return;
        }
        self.removing = true;
        self.send(now, 0);
    }

    fn stop(&mut self) {
        self.phase = Phase::Stopped;
        self.set_state(RegistrationState::Unregistered);
    }

    fn fail(&mut self, now: Instant, status: Option<u16>) {
        if self.removing {
            self.stop();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.phase = Phase::Waiting {
            send_at: now + backoff(self.failures),
        };
        self.set_state(RegistrationState::Failed { status });
    }

    /// Advances timers: retransmission, timeout, refresh and retry.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Sending(s) => {
                s.tx.handle_timeout(now);
                if self.drain_tx() {
                    self.fail(now, None);
                }
            }
            Phase::Waiting { send_at } => {
                if now >= *send_at {
                    self.send(now, 0);
                }
            }
            Phase::Stopped => {}
        }
    }

    /// A response to a REGISTER. Returns whether it was ours (top Via
    /// branch of the REGISTER in flight).
    pub fn handle_response(&mut self, now: Instant, response: &Message) -> bool {
        let Some(status) = response.status() else {
            return false;
        };
        let branch = response
            .with_top_via(|v| v.branch().map(str::to_owned))
            .flatten();
        let Phase::Sending(s) = &mut self.phase else {
            return false;
        };
        if branch.as_deref() != Some(s.branch.as_str()) {
            return false;
        }
        if (100..200).contains(&status) {
            let _ = s.tx.handle_response(now, status, None);
            self.drain_tx();
            return true;
        }
        let rounds = s.rounds;
        let answered_nonce = s.answered_nonce.take();
        match status {
            200..=299 => self.registered(now, response),
            401 | 407 => {
                let name = if status == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                let values: Vec<String> =
                    response.header_all(name).map(|v| v.into_owned()).collect();
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                match pick_challenge(status, &refs) {
                    Ok((header, challenge)) => {
                        let repeated = answered_nonce.as_deref() == Some(challenge.nonce.as_str())
                            && !challenge.stale;
                        if repeated || rounds >= MAX_ROUNDS {
                            self.challenge = None;
                            self.fail(now, Some(status));
                        } else {
                            self.challenge = Some((header, challenge));
                            self.send(now, rounds);
                        }
                    }
                    Err(_) => self.fail(now, Some(status)),
                }
            }
            423 => {
                let min = response
                    .header(HeaderName::MinExpires)
                    .and_then(|v| carillon_sip::syntax::parse_u32_saturating(v.trim()));
                match min {
                    Some(min) if min > self.expiry && min <= MAX_EXPIRY && rounds < MAX_ROUNDS => {
                        self.expiry = min;
                        self.send(now, rounds);
                    }
                    _ => self.fail(now, Some(status)),
                }
            }
            _ => self.fail(now, Some(status)),
        }
        true
    }

    fn registered(&mut self, now: Instant, response: &Message) {
        if self.removing {
            self.stop();
            return;
        }
        let granted = self.granted_expiry(response);
        if granted == 0 {
            // The registrar removed the binding: treat as a failure.
            self.fail(now, response.status());
            return;
        }
        self.failures = 0;
        self.phase = Phase::Waiting {
            send_at: now + refresh_after(granted),
        };
        self.set_state(RegistrationState::Registered { expires: granted });
    }

    /// The expiry granted in a 2xx (RFC 3261 §10.2.4).
    fn granted_expiry(&self, response: &Message) -> u32 {
        let ours = request::contact_uri(&self.local, &self.credentials.username);
        let contacts: Vec<String> = response
            .header_all(HeaderName::Contact)
            .flat_map(|line| {
                carillon_sip::syntax::split_list(&line)
                    .map(|items| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        let mut mine = None;
        for value in &contacts {
            if let Ok(na) = NameAddr::parse(value) {
                let expires = na
                    .params
                    .get("expires")
                    .flatten()
                    .and_then(carillon_sip::syntax::parse_u32_saturating);
                if na.uri.as_str().eq_ignore_ascii_case(&ours) || contacts.len() == 1 {
                    mine = mine.or(expires);
                }
            }
        }
        mine.or_else(|| response.expires()).unwrap_or(self.expiry)
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TrunkEvent> {
        self.events.pop_front()
    }

    /// When [`Registration::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Waiting { send_at } => Some(*send_at),
            Phase::Sending(s) => s.tx.poll_timeout(),
            Phase::Stopped => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_comes_at_85_percent_or_30_seconds_early_whichever_is_sooner() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3060));
        assert_eq!(refresh_after(120), Duration::from_secs(90));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(20), Duration::from_secs(10));
        assert_eq!(refresh_after(1), Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(100), Duration::from_secs(300));
    }
}
