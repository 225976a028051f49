//! `carillon-registrar`: REGISTER semantics (RFC 3261 §10.3) over an
//! in-memory location table.
//!
//! Owns bindings per address-of-record: add, refresh, remove (`Expires: 0`,
//! `*`), Call-ID/CSeq ordering, `Min-Expires`/423, the per-user contact
//! limit, `Path` (RFC 3327), `+sip.instance`/`reg-id` (RFC 5626) and the NAT
//! source a binding was learnt from. It does not authenticate (the switch
//! does that first), does no I/O and reads no clock: times are Unix seconds
//! passed in, because bindings are persisted and must survive restarts.
//! Every change is reported as a [`BindingChange`] so a store can mirror it.
//!
//! ```text
//!  REGISTER ──► validate ──► for each Contact: add │ refresh │ remove
//!                                  │
//!                                  └─► 200 with the current bindings
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::HashMap;
use std::sync::Arc;

use carillon_sip::syntax::{parse_u32_saturating, split_list};
use carillon_sip::{HeaderName, Message, NameAddr, RequestParts};

/// One registered contact of an address-of-record.
///
/// The text fields are shared (`Arc<str>`): the registrar keeps a binding
/// and hands the same one to the store as a [`BindingChange`], and a
/// refresh keeps the strings that did not change, so neither costs a copy
/// of each string per REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub aor: Arc<str>,
    /// The Contact URI as the phone sent it.
    pub contact: Arc<str>,
    /// Where the REGISTER really came from (`udp:203.0.113.5:41000`): the
    /// switch sends requests there so phones behind NAT stay reachable.
    pub source: Arc<str>,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub path: Vec<String>,
    pub call_id: Arc<str>,
    pub cseq: u32,
    /// Absolute expiry, Unix seconds.
    pub expires_at: u64,
    pub q: Option<f32>,
    pub user_agent: Option<Arc<str>>,
}

impl Binding {
    pub fn remaining(&self, now_unix: u64) -> u64 {
        self.expires_at.saturating_sub(now_unix)
    }
}

/// What changed, for mirroring into a persistent store.
#[derive(Debug, Clone, PartialEq)]
pub enum BindingChange {
    Upsert(Binding),
    Remove { aor: Arc<str>, contact: Arc<str> },
}

/// Registrar policy.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// When a user is at its contact limit: evict the binding closest to
    /// expiry (Asterisk `remove_existing = yes`) or refuse with 403.
    pub remove_existing: bool,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            remove_existing: true,
        }
    }
}

/// A REGISTER the registrar refuses, with the response it is owed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("interval too brief (minimum {min_expires})")]
    IntervalTooBrief { min_expires: u32 },
    #[error("out-of-order request (CSeq {cseq} not above {stored})")]
    OutOfOrder { cseq: u32, stored: u32 },
    #[error("too many contacts (limit {limit})")]
    TooManyContacts { limit: usize },
}

impl RegisterError {
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::BadRequest(_) => 400,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::OutOfOrder { .. } => 500,
            RegisterError::TooManyContacts { .. } => 403,
        }
    }
}

/// The result of a successful REGISTER: the bindings now in force (for the
/// 200's Contact headers) and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOutcome {
    pub bindings: Vec<Binding>,
    pub changes: Vec<BindingChange>,
}

/// The location table. AORs are keyed with foldhash, not SipHash: a key is
/// only added for a user who authenticated (the switch checks that the AOR
/// is the authenticated user's own), so no one can flood it with
/// colliding keys.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    aors: HashMap<String, Vec<Binding>, foldhash::fast::FixedState>,
}

/// Contact URIs compare by scheme/user/host/port/params as RFC 3261 §19.1.4
/// roughly does; Carillon compares the URI text case-insensitively in the
/// host and literally elsewhere, which is what phones re-send.
fn same_contact(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `old` when it holds `new` already, else a new shared copy of `new`.
fn shared(old: Option<&Arc<str>>, new: &str) -> Arc<str> {
    match old {
        Some(o) if **o == *new => o.clone(),
        _ => Arc::from(new),
    }
}

/// The canonical AOR key for a To URI: `user@host` with the user unescaped.
pub fn aor_of(to: &NameAddr<'_>) -> Result<String, RegisterError> {
    if !to.uri.is_sip() {
        return Err(RegisterError::BadRequest("To is not a SIP or SIPS URI"));
    }
    let user = to
        .uri
        .user_unescaped()
        .ok_or(RegisterError::BadRequest("To has no user part"))?;
    Ok(format!("{}@{}", user, to.uri.host.to_ascii_lowercase()))
}

struct ParsedContact<'a> {
    uri: &'a str,
    expires: Option<u32>,
    instance: Option<&'a str>,
    reg_id: Option<u32>,
    q: Option<f32>,
}

impl<'a> ParsedContact<'a> {
    /// The registrar's view of one Contact element.
    fn of(na: &NameAddr<'a>) -> Result<ParsedContact<'a>, RegisterError> {
        let expires = match na.params.get("expires") {
            Some(Some(v)) => Some(
                parse_u32_saturating(v).ok_or(RegisterError::BadRequest("bad expires param"))?,
            ),
            Some(None) => return Err(RegisterError::BadRequest("bad expires param")),
            None => None,
        };
        Ok(ParsedContact {
            uri: na.uri.as_str(),
            expires,
            instance: na.params.get("+sip.instance").flatten(),
            reg_id: na
                .params
                .get("reg-id")
                .flatten()
                .and_then(|v| v.parse().ok()),
            q: na.params.get("q").flatten().and_then(|v| v.parse().ok()),
        })
    }
}

/// What a REGISTER asks for, read from the request once.
struct Request<'a> {
    call_id: &'a str,
    cseq: u32,
    header_expires: Option<u32>,
    wildcard: bool,
    contacts: Vec<ParsedContact<'a>>,
    path: Vec<String>,
    user_agent: Option<&'a str>,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Self {
        Registrar {
            config,
            aors: HashMap::default(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: RegistrarConfig) {
        self.config = config;
    }

    /// Restores bindings loaded from a store (expired ones are skipped).
    /// A stored binding whose `(aor, contact)` is already held is skipped:
    /// the one in memory is at least as new (restoring after a database
    /// outage must not undo registrations made meanwhile).
    pub fn restore(&mut self, bindings: impl IntoIterator<Item = Binding>, now_unix: u64) {
        for b in bindings {
            if b.expires_at > now_unix {
                let held = self.aors.entry(b.aor.to_string()).or_default();
                if !held.iter().any(|h| h.contact == b.contact) {
                    held.push(b);
                }
            }
        }
    }

    /// Current unexpired bindings of an AOR.
    pub fn lookup(&self, aor: &str, now_unix: u64) -> Vec<&Binding> {
        self.aors
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now_unix).collect())
            .unwrap_or_default()
    }

    pub fn aor_count(&self) -> usize {
        self.aors.len()
    }

    pub fn binding_count(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }

    /// Every binding (for snapshots and flushing).
    pub fn all(&self) -> impl Iterator<Item = &Binding> {
        self.aors.values().flatten()
    }

    /// Drops expired bindings and reports them.
    pub fn purge_expired(&mut self, now_unix: u64) -> Vec<BindingChange> {
        let mut removed = Vec::new();
        self.aors.retain(|_, list| {
            list.retain(|b| {
                let keep = b.expires_at > now_unix;
                if !keep {
                    removed.push(BindingChange::Remove {
                        aor: b.aor.clone(),
                        contact: b.contact.clone(),
                    });
                }
                keep
            });
            !list.is_empty()
        });
        removed
    }

    /// Processes an (already authenticated) REGISTER for `aor`.
    /// `source` is where the request came from, `max_contacts` the user's
    /// limit.
    pub fn handle_register(
        &mut self,
        now_unix: u64,
        req: &Message,
        aor: &str,
        source: &str,
        max_contacts: usize,
    ) -> Result<RegisterOutcome, RegisterError> {
        let call_id = req
            .header_str(HeaderName::CallId)
            .ok_or(RegisterError::BadRequest("missing Call-ID"))?;
        let cseq = req.cseq().ok_or(RegisterError::BadRequest("bad CSeq"))?.seq;
        let header_expires = match req.header_str(HeaderName::Expires) {
            Some(v) => Some(
                parse_u32_saturating(v.trim()).ok_or(RegisterError::BadRequest("bad Expires"))?,
            ),
            None => None,
        };
        let mut wildcard = false;
        let mut contacts = Vec::new();
        for line in req.header_all_str(HeaderName::Contact) {
            for item in split_list(line).map_err(|_| RegisterError::BadRequest("bad Contact"))? {
                if item == "*" {
                    wildcard = true;
                    continue;
                }
                let na =
                    NameAddr::parse(item).map_err(|_| RegisterError::BadRequest("bad Contact"))?;
                contacts.push(ParsedContact::of(&na)?);
            }
        }
        let request = Request {
            call_id,
            cseq,
            header_expires,
            wildcard,
            contacts,
            path: req
                .header_list(HeaderName::Path)
                .map_err(|_| RegisterError::BadRequest("bad Path"))?,
            user_agent: req.header_str(HeaderName::UserAgent),
        };
        let changes = self.apply(now_unix, request, aor, source, max_contacts)?;
        let bindings = self.bindings(aor).to_vec();
        Ok(RegisterOutcome { bindings, changes })
    }

    /// [`Registrar::handle_register`] for a request already checked by
    /// [`carillon_sip::validate_request_parts`]: Call-ID, CSeq, Expires and
    /// the Contacts come from `parts` instead of being parsed again. Returns
    /// the changes; the bindings now in force are [`Registrar::bindings`].
    pub fn handle_register_parsed(
        &mut self,
        now_unix: u64,
        req: &Message,
        parts: &RequestParts<'_>,
        aor: &str,
        source: &str,
        max_contacts: usize,
    ) -> Result<Vec<BindingChange>, RegisterError> {
        let contacts = parts
            .contacts
            .iter()
            .map(ParsedContact::of)
            .collect::<Result<Vec<_>, _>>()?;
        let request = Request {
            call_id: parts.call_id,
            cseq: parts.cseq.seq,
            header_expires: parts.expires,
            wildcard: parts.wildcard,
            contacts,
            path: req
                .header_list(HeaderName::Path)
                .map_err(|_| RegisterError::BadRequest("bad Path"))?,
            user_agent: req.header_str(HeaderName::UserAgent),
        };
        self.apply(now_unix, request, aor, source, max_contacts)
    }

    /// The bindings held for `aor` (after a REGISTER: the ones in force).
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.aors.get(aor).map_or(&[], Vec::as_slice)
    }

    /// RFC 3261 §10.3 steps 6–8 for one request: checks every contact,
    /// then adds, refreshes or removes bindings atomically.
    fn apply(
        &mut self,
        now_unix: u64,
        request: Request<'_>,
        aor: &str,
        source: &str,
        max_contacts: usize,
    ) -> Result<Vec<BindingChange>, RegisterError> {
        let Request {
            call_id,
            cseq,
            header_expires,
            wildcard,
            contacts,
            path,
            user_agent,
        } = request;
        let mut changes = Vec::with_capacity(contacts.len());
        if wildcard {
            // RFC 3261 §10.3 step 6: '*' only alone and with Expires: 0.
            if !contacts.is_empty() || header_expires != Some(0) {
                return Err(RegisterError::BadRequest(
                    "'*' needs Expires: 0 and no other Contact",
                ));
            }
            if let Some(list) = self.aors.get(aor) {
                if let Some(b) = list
                    .iter()
                    .find(|b| *b.call_id == *call_id && cseq <= b.cseq)
                {
                    return Err(RegisterError::OutOfOrder {
                        cseq,
                        stored: b.cseq,
                    });
                }
            }
            if let Some(list) = self.aors.remove(aor) {
                for b in list {
                    changes.push(BindingChange::Remove {
                        aor: b.aor,
                        contact: b.contact,
                    });
                }
            }
            return Ok(changes);
        }

        // Check every contact before changing anything (the request is atomic).
        for c in &contacts {
            let e = c
                .expires
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            if e != 0 && e < self.config.min_expires {
                return Err(RegisterError::IntervalTooBrief {
                    min_expires: self.config.min_expires,
                });
            }
        }
        if !self.aors.contains_key(aor) {
            self.aors.insert(aor.to_owned(), Vec::new());
        }
        let Some(list) = self.aors.get_mut(aor) else {
            return Ok(changes);
        };
        for c in &contacts {
            if let Some(b) = list.iter().find(|b| same_contact(&b.contact, c.uri)) {
                if *b.call_id == *call_id && cseq <= b.cseq {
                    return Err(RegisterError::OutOfOrder {
                        cseq,
                        stored: b.cseq,
                    });
                }
            }
        }
        list.retain(|b| b.expires_at > now_unix);
        for c in contacts {
            let e = c
                .expires
                .or(header_expires)
                .unwrap_or(self.config.default_expires)
                .min(self.config.max_expires);
            let existing = list.iter().position(|b| {
                same_contact(&b.contact, c.uri)
                    || (c.instance.is_some()
                        && b.instance.as_deref() == c.instance
                        && b.reg_id == c.reg_id)
            });
            if e == 0 {
                if let Some(i) = existing {
                    let b = list.remove(i);
                    changes.push(BindingChange::Remove {
                        aor: b.aor,
                        contact: b.contact,
                    });
                }
                continue;
            }
            // A refresh shares the strings that did not change.
            let old = existing.and_then(|i| list.get(i));
            let binding = Binding {
                // Every binding of the AOR holds the same AOR text.
                aor: shared(list.first().map(|b| &b.aor), aor),
                contact: shared(old.map(|o| &o.contact), c.uri),
                source: shared(old.map(|o| &o.source), source),
                instance: c.instance.map(str::to_owned),
                reg_id: c.reg_id,
                path: path.clone(),
                call_id: shared(old.map(|o| &o.call_id), call_id),
                cseq,
                expires_at: now_unix + u64::from(e),
                q: c.q,
                user_agent: user_agent
                    .map(|ua| shared(old.and_then(|o| o.user_agent.as_ref()), ua)),
            };
            match existing {
                Some(i) => {
                    if list[i].contact != binding.contact {
                        changes.push(BindingChange::Remove {
                            aor: binding.aor.clone(),
                            contact: list[i].contact.clone(),
                        });
                    }
                    list[i] = binding.clone();
                }
                None => {
                    if list.len() >= max_contacts.max(1) {
                        if !self.config.remove_existing {
                            return Err(RegisterError::TooManyContacts {
                                limit: max_contacts,
                            });
                        }
                        // Evict the binding that would expire first.
                        if let Some((i, _)) =
                            list.iter().enumerate().min_by_key(|(_, b)| b.expires_at)
                        {
                            let old = list.remove(i);
                            changes.push(BindingChange::Remove {
                                aor: old.aor,
                                contact: old.contact,
                            });
                        }
                    }
                    // One slot at a time: most AORs hold one binding, and
                    // `push`'s first growth would make room for four
                    // (~800 bytes per registered phone).
                    list.reserve_exact(1);
                    list.push(binding.clone());
                }
            }
            changes.push(BindingChange::Upsert(binding));
        }
        if list.is_empty() {
            self.aors.remove(aor);
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests;
