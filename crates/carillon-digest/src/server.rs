//! Server façade for registrar and proxy authentication (RFC 3261 §22.2 and
//! §22.3, RFC 2617 §3.2–3.3, RFC 8760 §2.3–2.4).
//!
//! Owns: issuing challenges (one per offered algorithm, preference order,
//! one shared stateless nonce) and verifying credentials against a password
//! or a cached HA1, including nonce freshness and nc replay protection.
//!
//! Does not own: user lookup, failure counting and lock-out, 401 vs 407, and
//! the check that `Credentials::uri` matches the Request-URI. Challenges never
//! depend on the username, so known and unknown users look alike; for an
//! unknown user call [`DigestServer::verify_unknown_user`], which does the
//! same work and can only fail.
//!
//! ```text
//! verify: realm? ─► algorithm offered? ─► qop acceptable? ─► nonce ours?
//!         ─► response right? ─► nonce fresh? (else Stale) ─► nc new? ─► Ok
//! ```

use thiserror::Error;

use crate::algorithm::{ct_eq_hex, Algorithm};
use crate::credentials::{Credentials, Qop};
use crate::nonce::{NcVerdict, NonceCounter, NonceSecret};
use crate::response::{ha1_hex, response_hex, QopAuth};
use crate::Challenge;

/// Configuration of a [`DigestServer`].
#[derive(Clone)]
pub struct DigestConfig {
    pub realm: String,
    /// Nonces older than this are stale.
    pub lifetime_secs: u64,
    /// Offered algorithms, in the order challenges are sent (RFC 8760: put
    /// SHA-256 first).
    pub algorithms: Vec<Algorithm>,
    /// Nonce MAC key; keep it secret.
    pub key: [u8; 32],
    /// Refuse RFC 2069 responses without `qop` (they cannot be protected
    /// against replay within the nonce lifetime).
    pub require_qop: bool,
    /// Most nonces tracked for nc replay protection.
    pub counter_capacity: usize,
}

impl std::fmt::Debug for DigestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestConfig")
            .field("realm", &self.realm)
            .field("lifetime_secs", &self.lifetime_secs)
            .field("algorithms", &self.algorithms)
            .field("key", &"<redacted>")
            .field("require_qop", &self.require_qop)
            .field("counter_capacity", &self.counter_capacity)
            .finish()
    }
}

/// A [`DigestConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("no Digest algorithm offered")]
    NoAlgorithms,
    #[error("nonce counter capacity must be at least 1")]
    ZeroCapacity,
}

/// What the credentials are checked against.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// The clear password.
    Password(&'a str),
    /// The lowercase-hex HA1 for the credentials' algorithm and our realm.
    Ha1(&'a str),
}

impl std::fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password(<redacted>)"),
            Secret::Ha1(_) => f.write_str("Ha1(<redacted>)"),
        }
    }
}

/// Outcome of [`DigestServer::verify`]. The caller maps failures to a fresh
/// challenge (or 400/403) and counts them as it sees fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Authenticated.
    Ok,
    /// The response was right but the nonce expired: re-challenge with
    /// `stale=true` (RFC 2617 §3.2.1).
    Stale,
    /// The nonce-count was not above one already accepted, or was 0.
    Replay,
    /// The response hash does not match: wrong password or tampering.
    BadResponse,
    /// The credentials name another realm.
    WrongRealm,
    /// The nonce was not issued by us (forged, edited, from another key).
    InvalidNonce,
    /// The algorithm is not one we offer.
    UnsupportedAlgorithm,
    /// `qop=auth-int`, which we never offer.
    UnsupportedQop,
    /// No `qop` while the configuration requires it.
    QopRequired,
    /// `qop` without `cnonce`/`nc` (only possible for hand-built credentials).
    MissingQopParams,
}

impl AuthResult {
    pub fn is_ok(self) -> bool {
        self == AuthResult::Ok
    }
}

/// Digest authentication for one realm.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    algorithms: Vec<Algorithm>,
    require_qop: bool,
    nonces: NonceSecret,
    counter: NonceCounter,
}

impl DigestServer {
    pub fn new(config: DigestConfig) -> Result<DigestServer, ConfigError> {
        if config.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if config.counter_capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        let mut algorithms = config.algorithms;
        // Keep the first occurrence of each algorithm.
        let mut seen = Vec::with_capacity(algorithms.len());
        algorithms.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        Ok(DigestServer {
            realm: config.realm,
            algorithms,
            require_qop: config.require_qop,
            nonces: NonceSecret::new(config.key, config.lifetime_secs),
            counter: NonceCounter::new(config.counter_capacity, config.lifetime_secs),
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// One challenge per offered algorithm, in configured order, sharing one
    /// nonce; each goes in its own `WWW-Authenticate`/`Proxy-Authenticate`
    /// header. Depends only on `now`, `random` and `stale`, never on a user.
    pub fn challenges(&self, now: u64, random: u64, stale: bool) -> Vec<Challenge> {
        let nonce = self.nonces.issue(now, random);
        self.algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                algorithm,
                opaque: None,
                stale,
                qop_auth: true,
            })
            .collect()
    }

    /// The header values of [`DigestServer::challenges`], written directly
    /// (no `Challenge` values, one string per offered algorithm).
    pub fn challenge_values(&self, now: u64, random: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonces.issue_raw(now, random);
        let nonce = std::str::from_utf8(&nonce).unwrap_or("");
        self.algorithms
            .iter()
            .map(|&algorithm| {
                let mut v =
                    String::with_capacity(crate::challenge::value_capacity(&self.realm, nonce));
                crate::challenge::write_value(
                    &mut v,
                    &self.realm,
                    nonce,
                    algorithm,
                    true,
                    stale,
                    None,
                );
                v
            })
            .collect()
    }

    /// Verifies `creds` for a request with `method` at `now` (Unix seconds).
    ///
    /// A right response with an expired nonce gives [`AuthResult::Stale`];
    /// only a fully valid, fresh, non-replayed response is recorded in the
    /// nonce counter.
    pub fn verify(
        &mut self,
        now: u64,
        method: &str,
        creds: &Credentials<'_>,
        secret: Secret<'_>,
    ) -> AuthResult {
        self.verify_inner(now, method, creds, Some(secret))
    }

    /// Does the work of [`DigestServer::verify`] for a user that does not
    /// exist, so it costs about the same, and never returns `Ok`.
    pub fn verify_unknown_user(
        &mut self,
        now: u64,
        method: &str,
        creds: &Credentials<'_>,
    ) -> AuthResult {
        self.verify_inner(now, method, creds, None)
    }

    /// Drops nonce-count entries of nonces stale at `now`; also done on each
    /// verification.
    pub fn purge(&mut self, now: u64) {
        self.counter.purge(now);
    }

    /// Number of nonces currently tracked for replay protection.
    pub fn tracked_nonces(&self) -> usize {
        self.counter.len()
    }

    fn verify_inner(
        &mut self,
        now: u64,
        method: &str,
        creds: &Credentials<'_>,
        secret: Option<Secret<'_>>,
    ) -> AuthResult {
        if creds.realm != self.realm {
            return AuthResult::WrongRealm;
        }
        let alg = creds.algorithm;
        if !self.algorithms.contains(&alg) {
            return AuthResult::UnsupportedAlgorithm;
        }
        let qop = match (creds.qop, &creds.cnonce, creds.nc) {
            (Some(Qop::AuthInt), _, _) => return AuthResult::UnsupportedQop,
            (Some(Qop::Auth), Some(cnonce), Some(nc)) => Some(QopAuth { cnonce, nc }),
            (Some(Qop::Auth), _, _) => return AuthResult::MissingQopParams,
            (None, _, _) if self.require_qop => return AuthResult::QopRequired,
            (None, _, _) => None,
        };
        let Some((issued_at, nonce_id)) = self.nonces.open(&creds.nonce) else {
            return AuthResult::InvalidNonce;
        };

        let computed;
        let ha1: &[u8] = match secret {
            Some(Secret::Ha1(given)) => given.as_bytes(),
            Some(Secret::Password(password)) => {
                computed = ha1_hex(alg, &creds.username, &self.realm, password);
                computed.as_bytes()
            }
            // Same cost as a password check; the outcome is discarded below.
            None => {
                computed = ha1_hex(alg, &creds.username, &self.realm, "");
                computed.as_bytes()
            }
        };
        let expected = response_hex(alg, ha1, &creds.nonce, qop, method, &creds.uri);
        let matched = ct_eq_hex(expected.as_bytes(), creds.response.as_bytes()) & secret.is_some();
        self.finish(now, nonce_id, qop, issued_at, matched)
    }

    fn finish(
        &mut self,
        now: u64,
        nonce: u128,
        qop: Option<QopAuth<'_>>,
        issued_at: u64,
        matched: bool,
    ) -> AuthResult {
        if !matched {
            return AuthResult::BadResponse;
        }
        if now.saturating_sub(issued_at) > self.nonces.lifetime_secs() {
            return AuthResult::Stale;
        }
        let Some(QopAuth { nc, .. }) = qop else {
            // RFC 2069 form: no nc, so no replay protection within the
            // nonce lifetime (refuse it with `require_qop`).
            return AuthResult::Ok;
        };
        match self.counter.accept(now, nonce, issued_at, nc) {
            NcVerdict::Accepted => AuthResult::Ok,
            NcVerdict::Replay => AuthResult::Replay,
            NcVerdict::Forgotten => AuthResult::Stale,
        }
    }
}
