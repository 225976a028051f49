//! The user directory: extensions that register and call, with their
//! credentials (HA1 precomputed per algorithm so a REGISTER costs one hash),
//! dialplan context, codecs, contact limit, call limits (enforced in
//! `calls::limits`), NAT handling (where calls to its contacts go,
//! [`NatMode`]) and DTMF mode (`dtmf_mode`, used by `calls::dtmf_relay`).
//! Replaced atomically on
//! reload (SIGHUP) without touching registrations.

use std::collections::HashMap;

use carillon_digest::{ha1, Algorithm};
pub use carillon_mediactl::DtmfMode;

/// One configured extension.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User {
    pub extension: String,
    pub password: String,
    pub context: String,
    pub codecs: Vec<String>,
    pub max_contacts: usize,
    /// Concurrent calls the user may be in (as caller or callee); `None`
    /// for no limit. Over it: 486 to a caller, `DIALSTATUS=BUSY` to a Dial.
    pub max_calls: Option<u32>,
    /// New calls the user may place per second; `None` for no limit.
    /// Over it: 503 with `Retry-After`.
    pub max_cps: Option<u32>,
    /// Where calls to the user's registered contacts are sent (`nat` in
    /// `users.toml`).
    pub nat: NatMode,
    /// How the user's phones send and expect DTMF (`dtmf_mode` in
    /// `users.toml`; RFC 4733 by default).
    pub dtmf_mode: DtmfMode,
}

/// Where requests to a user's registered contacts are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatMode {
    /// To the address the REGISTER came from (`nat = true`, the default;
    /// Asterisk's `force_rport` + `rewrite_contact`): a phone behind NAT is
    /// reached through the mapping its REGISTER opened.
    #[default]
    SourceAddress,
    /// To the Contact as registered (`nat = false`), or its first Path
    /// hop: for phones that register from another socket than the one
    /// they listen on.
    AsRegistered,
}

#[derive(Debug, Clone)]
struct Entry {
    user: User,
    ha1_md5: String,
    ha1_sha256: String,
}

/// Users by extension. The keys come from configuration, never from the
/// network (a request can only look one up), so the map uses foldhash
/// rather than SipHash: no request can add colliding keys.
#[derive(Debug, Clone, Default)]
pub struct UserDirectory {
    users: HashMap<String, Entry, foldhash::fast::FixedState>,
}

impl UserDirectory {
    pub fn new(realm: &str, users: impl IntoIterator<Item = User>) -> Self {
        let users = users
            .into_iter()
            .map(|u| {
                let e = Entry {
                    ha1_md5: ha1(Algorithm::Md5, &u.extension, realm, &u.password),
                    ha1_sha256: ha1(Algorithm::Sha256, &u.extension, realm, &u.password),
                    user: u,
                };
                (e.user.extension.clone(), e)
            })
            .collect();
        UserDirectory { users }
    }

    pub fn get(&self, extension: &str) -> Option<&User> {
        self.users.get(extension).map(|e| &e.user)
    }

    /// The HA1 of a user for an algorithm.
    pub fn ha1(&self, extension: &str, alg: Algorithm) -> Option<&str> {
        self.users.get(extension).map(|e| match alg {
            Algorithm::Md5 => e.ha1_md5.as_str(),
            Algorithm::Sha256 => e.ha1_sha256.as_str(),
        })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}
