//! Outbound digest authentication: answering a carrier's or registrar's
//! 401/407 (RFC 3261 §22.2–22.3, RFC 8760 §2.4 for several challenges).
//!
//! Owns choosing the challenge among the header values (the strongest
//! algorithm, via [`carillon_digest::Challenge::preferred`]), the header
//! to answer with (`Authorization` for 401, `Proxy-Authorization` for 407),
//! the cnonce (16 hex digits from the caller's seeded RNG) and the
//! nonce-count, counted per nonce so that reusing a nonce sends 2, 3, …
//! Does not own hashing (carillon-digest) or the request itself.

use std::collections::VecDeque;

use carillon_digest::{respond, Challenge, DigestError};
use carillon_sip::HeaderName;
use rand_chacha::rand_core::RngCore;
use thiserror::Error;

use crate::model::Credentials;

/// Nonces whose count is remembered; older ones are forgotten (a server
/// rarely keeps more than one or two alive per client).
const REMEMBERED_NONCES: usize = 8;

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("a {status} response is not a challenge (expected 401 or 407)")]
    NotAChallenge { status: u16 },
    #[error("the {status} response carries no challenge header")]
    NoChallenge { status: u16 },
    #[error("no usable Digest challenge: {source}")]
    BadChallenge {
        #[source]
        source: DigestError,
    },
}

/// The header answering a challenge of status `status`.
pub fn credentials_header(status: u16) -> Result<HeaderName, AuthError> {
    match status {
        401 => Ok(HeaderName::Authorization),
        407 => Ok(HeaderName::ProxyAuthorization),
        status => Err(AuthError::NotAChallenge { status }),
    }
}

/// Picks the challenge to answer among the `WWW-Authenticate` or
/// `Proxy-Authenticate` values of a 401/407. Values that do not parse
/// (another scheme, `qop="auth-int"` only) are skipped.
pub fn pick_challenge(status: u16, values: &[&str]) -> Result<(HeaderName, Challenge), AuthError> {
    let header = credentials_header(status)?;
    let mut first_error = None;
    let mut parsed = Vec::with_capacity(values.len());
    for value in values {
        match Challenge::parse(value) {
            Ok(c) => parsed.push(c),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match Challenge::preferred(&parsed) {
        Some(c) => Ok((header, c.clone())),
        None => Err(match first_error {
            Some(source) => AuthError::BadChallenge { source },
            None => AuthError::NoChallenge { status },
        }),
    }
}

/// Client-side digest state for one trunk: the nonce-counts.
#[derive(Debug, Clone, Default)]
pub struct DigestClient {
    /// (realm, nonce, last nc sent), most recent last.
    counts: VecDeque<(String, String, u32)>,
}

impl DigestClient {
    pub fn new() -> DigestClient {
        DigestClient::default()
    }

    /// The next nc for `challenge`'s nonce: 1 the first time.
    fn next_nc(&mut self, challenge: &Challenge) -> u32 {
        let found = self
            .counts
            .iter()
            .position(|(realm, nonce, _)| *realm == challenge.realm && *nonce == challenge.nonce);
        let nc = match found.and_then(|i| self.counts.remove(i)) {
            Some((_, _, nc)) => nc.saturating_add(1),
            None => 1,
        };
        if self.counts.len() >= REMEMBERED_NONCES {
            self.counts.pop_front();
        }
        self.counts
            .push_back((challenge.realm.clone(), challenge.nonce.clone(), nc));
        nc
    }

    /// The credentials header value answering `challenge` for a request
    /// `method uri`.
    pub fn answer(
        &mut self,
        rng: &mut impl RngCore,
        credentials: &Credentials,
        challenge: &Challenge,
        method: &str,
        uri: &str,
    ) -> String {
        let cnonce = format!("{:016x}", rng.next_u64());
        let nc = self.next_nc(challenge);
        respond(
            challenge,
            method,
            uri,
            &credentials.username,
            &credentials.password,
            &cnonce,
            nc,
        )
    }

    /// [`pick_challenge`] then [`DigestClient::answer`].
    pub fn authorize(
        &mut self,
        rng: &mut impl RngCore,
        credentials: &Credentials,
        status: u16,
        values: &[&str],
        method: &str,
        uri: &str,
    ) -> Result<(HeaderName, String), AuthError> {
        let (header, challenge) = pick_challenge(status, values)?;
        Ok((
            header,
            self.answer(rng, credentials, &challenge, method, uri),
        ))
    }
}
