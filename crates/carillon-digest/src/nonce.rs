//! Server nonces (RFC 2617 §3.2.1, RFC 7616 §3.3 and §5.4) and nonce-count
//! replay protection (RFC 2617 §3.2.2, RFC 7616 §5.5).
//!
//! Owns:
//! - [`NonceSecret`]: stateless nonces. A nonce is 64 lowercase hex digits:
//!   `timestamp (u64 BE) ‖ random (u64) ‖ MAC`, where the MAC is the first
//!   16 bytes of `SHA-256(tag ‖ key ‖ timestamp ‖ random)`. The input has a
//!   fixed length, so length extension cannot forge one; a forged or edited
//!   nonce fails the MAC and is `Invalid` without any stored state.
//! - [`NonceCounter`]: the highest `nc` accepted per nonce, bounded in memory.
//!
//! Nonce lifecycle as seen by [`NonceSecret::check`]:
//!
//! ```text
//! issue(t) ──► Fresh ──(now - t > lifetime)──► Stale
//! anything else (bad length, bad hex, bad MAC) ──► Invalid
//! ```
//!
//! Does not own the clock or the RNG: both come in as arguments.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::algorithm::{ct_eq, hex_pair};

/// Domain separation; short so that the MAC input fits one SHA-256 block.
const TAG: &[u8] = b"cdn1";
const PAYLOAD_LEN: usize = 16;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = PAYLOAD_LEN + MAC_LEN;
/// Length of every nonce we issue.
const NONCE_LEN: usize = RAW_LEN * 2;

/// Outcome of checking a nonce we may have issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours and not older than the lifetime.
    Fresh,
    /// Ours but older than the lifetime: re-challenge with `stale=true` if the
    /// response was otherwise right.
    Stale,
    /// Not issued by this key, or not a nonce at all.
    Invalid,
}

/// The server's nonce key and lifetime.
#[derive(Clone)]
pub struct NonceSecret {
    key: [u8; 32],
    lifetime_secs: u64,
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceSecret")
            .field("key", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl NonceSecret {
    /// `key` must be secret and random (from the caller's seeded RNG or
    /// config); every server sharing it accepts the others' nonces.
    pub fn new(key: [u8; 32], lifetime_secs: u64) -> NonceSecret {
        NonceSecret { key, lifetime_secs }
    }

    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    fn mac(&self, payload: &[u8; PAYLOAD_LEN]) -> [u8; MAC_LEN] {
        let digest = Sha256::new()
            .chain_update(TAG)
            .chain_update(self.key)
            .chain_update(payload)
            .finalize();
        let mut mac = [0u8; MAC_LEN];
        for (m, d) in mac.iter_mut().zip(digest) {
            *m = d;
        }
        mac
    }

    /// Makes a nonce stamped with `now_unix_secs`. `random` should differ per
    /// challenge so that nonces are unpredictable and distinct.
    pub fn issue(&self, now_unix_secs: u64, random: u64) -> String {
        let raw = self.issue_raw(now_unix_secs, random);
        std::str::from_utf8(&raw).unwrap_or("").to_owned()
    }

    /// [`NonceSecret::issue`] as lowercase hex ASCII on the stack.
    pub(crate) fn issue_raw(&self, now_unix_secs: u64, random: u64) -> [u8; NONCE_LEN] {
        let mut payload = [0u8; PAYLOAD_LEN];
        let (ts, rnd) = payload.split_at_mut(8);
        ts.copy_from_slice(&now_unix_secs.to_be_bytes());
        rnd.copy_from_slice(&random.to_be_bytes());
        let mac = self.mac(&payload);
        let mut out = [0u8; NONCE_LEN];
        for (pair, byte) in out.chunks_exact_mut(2).zip(payload.iter().chain(&mac)) {
            pair.copy_from_slice(&hex_pair(*byte));
        }
        out
    }

    /// The issue time of a nonce made with this key, or `None` when it was
    /// not (wrong MAC, wrong length, not lowercase hex).
    pub fn issued_at(&self, nonce: &str) -> Option<u64> {
        self.open(nonce).map(|(issued_at, _)| issued_at)
    }

    /// [`NonceSecret::issued_at`] and the nonce's identity for a
    /// [`NonceCounter`]: its MAC as a number. The MAC is a keyed hash of
    /// the nonce's distinct timestamp and random number, so two nonces we
    /// issued share it only by a 2^-128 chance, and no one else can choose
    /// it.
    pub fn open(&self, nonce: &str) -> Option<(u64, u128)> {
        let raw = decode_lower_hex(nonce)?;
        let (payload, mac) = raw.split_at(PAYLOAD_LEN);
        let payload: [u8; PAYLOAD_LEN] = payload.try_into().ok()?;
        if !ct_eq(&self.mac(&payload), mac) {
            return None;
        }
        let ts: [u8; 8] = payload.get(..8)?.try_into().ok()?;
        let id: [u8; MAC_LEN] = mac.try_into().ok()?;
        Some((u64::from_be_bytes(ts), u128::from_be_bytes(id)))
    }

    /// Classifies `nonce` at `now_unix_secs`. A nonce stamped in the future
    /// (the wall clock went back) counts as fresh: only we can make one.
    pub fn check(&self, nonce: &str, now_unix_secs: u64) -> NonceStatus {
        match self.issued_at(nonce) {
            None => NonceStatus::Invalid,
            Some(t) if now_unix_secs.saturating_sub(t) > self.lifetime_secs => NonceStatus::Stale,
            Some(_) => NonceStatus::Fresh,
        }
    }
}

/// Decodes exactly `NONCE_LEN` lowercase hex digits. Upper case is refused so
/// that every nonce has a single spelling.
fn decode_lower_hex(s: &str) -> Option<[u8; RAW_LEN]> {
    if s.len() != NONCE_LEN {
        return None;
    }
    let mut out = [0u8; RAW_LEN];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = lower_hex_value(*pair.first()?)?;
        let lo = lower_hex_value(*pair.get(1)?)?;
        *byte = (hi << 4) | lo;
    }
    Some(out)
}

fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// What [`NonceCounter::accept`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcVerdict {
    /// `nc` is above every count accepted before for this nonce.
    Accepted,
    /// `nc` is 0, or not above a count already accepted: a replay.
    Replay,
    /// The nonce is not tracked and may have been evicted for lack of room;
    /// its history is unknown, so re-challenge (treat as stale).
    Forgotten,
}

/// Highest accepted `nc` per nonce, with bounded memory.
///
/// Nonces are known by their identity from [`NonceSecret::open`] (a
/// number, so an entry is a few dozen bytes with no allocation of its
/// own). Entries leave in the order they were first accepted, once their
/// nonce is stale (`issued_at + lifetime < now`), which the nonce check
/// rejects anyway. When `capacity` is reached the entry accepted first is
/// evicted and every nonce issued at or before it becomes
/// [`NcVerdict::Forgotten`], so eviction can never reopen a replay window.
/// Size `capacity` for (authentications per second × lifetime);
/// under-sizing only costs extra stale re-challenges.
///
/// Everything is decided from the times passed in, so it is deterministic.
#[derive(Debug)]
pub struct NonceCounter {
    capacity: usize,
    lifetime_secs: u64,
    /// Highest accepted nc per nonce. foldhash, not SipHash: the server
    /// only records nonces that passed the MAC check, i.e. nonces it made
    /// itself, and their identity is that MAC, so no one can choose
    /// colliding keys.
    by_nonce: HashMap<u128, u32, foldhash::fast::FixedState>,
    /// `(issued_at, nonce)` in the order of first acceptance. A nonce used
    /// long after it was issued may sit behind younger ones and leave a
    /// little later than it could: it is stale by then and refused before
    /// the counter is asked.
    by_age: VecDeque<(u64, u128)>,
    forgotten_up_to: Option<u64>,
}

impl NonceCounter {
    /// A counter holding at most `capacity` nonces (at least one).
    pub fn new(capacity: usize, lifetime_secs: u64) -> NonceCounter {
        NonceCounter {
            capacity: capacity.max(1),
            lifetime_secs,
            by_nonce: HashMap::default(),
            by_age: VecDeque::new(),
            forgotten_up_to: None,
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.by_nonce.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_nonce.is_empty()
    }

    /// Drops entries whose nonce is stale at `now`, from the front.
    pub fn purge(&mut self, now: u64) {
        while let Some(&(issued_at, nonce)) = self.by_age.front() {
            if issued_at.saturating_add(self.lifetime_secs) >= now {
                break;
            }
            self.by_age.pop_front();
            self.by_nonce.remove(&nonce);
        }
    }

    /// Records `nc` for the nonce with identity `nonce` (issued at
    /// `issued_at`) if it is strictly greater than the highest count
    /// accepted for that nonce.
    pub fn accept(&mut self, now: u64, nonce: u128, issued_at: u64, nc: u32) -> NcVerdict {
        self.purge(now);
        if let Some(highest) = self.by_nonce.get_mut(&nonce) {
            return if nc > *highest {
                *highest = nc;
                NcVerdict::Accepted
            } else {
                NcVerdict::Replay
            };
        }
        if nc == 0 {
            return NcVerdict::Replay;
        }
        if self.forgotten_up_to.is_some_and(|f| issued_at <= f) {
            return NcVerdict::Forgotten;
        }
        if self.by_nonce.len() >= self.capacity {
            let Some(&(oldest, _)) = self.by_age.front() else {
                return NcVerdict::Forgotten;
            };
            if issued_at <= oldest {
                // Older than the next to go: do not push out a younger
                // nonce for it.
                return NcVerdict::Forgotten;
            }
            if let Some((evicted_at, evicted)) = self.by_age.pop_front() {
                self.by_nonce.remove(&evicted);
                self.forgotten_up_to = Some(
                    self.forgotten_up_to
                        .map_or(evicted_at, |f| f.max(evicted_at)),
                );
            }
        }
        self.by_age.push_back((issued_at, nonce));
        self.by_nonce.insert(nonce, nc);
        NcVerdict::Accepted
    }

    /// The highest count accepted so far for the nonce `nonce`.
    pub fn highest(&self, nonce: u128) -> Option<u32> {
        self.by_nonce.get(&nonce).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: u128 = 1;
    const OTHER: u128 = 2;
    const A: u128 = 10;
    const B: u128 = 11;
    const C: u128 = 12;
    const OLD: u128 = 9;

    fn secret() -> NonceSecret {
        NonceSecret::new([7; 32], 300)
    }

    #[test]
    fn issued_nonce_is_fresh_within_its_lifetime_and_stale_after() {
        let s = secret();
        let n = s.issue(1_000, 42);
        assert_eq!(n.len(), 64);
        assert_eq!(s.check(&n, 1_000), NonceStatus::Fresh);
        assert_eq!(s.check(&n, 1_300), NonceStatus::Fresh);
        assert_eq!(s.check(&n, 1_301), NonceStatus::Stale);
        assert_eq!(s.issued_at(&n), Some(1_000));
    }

    #[test]
    fn nonces_differ_by_random_and_by_time() {
        let s = secret();
        assert_ne!(s.issue(1, 1), s.issue(1, 2));
        assert_ne!(s.issue(1, 1), s.issue(2, 1));
        assert_eq!(s.issue(1, 1), s.issue(1, 1));
    }

    #[test]
    fn edited_timestamp_fails_the_mac() {
        let s = secret();
        let n = s.issue(1_000, 42);
        // Move the timestamp forward by editing its last hex digit.
        let mut forged = n.clone().into_bytes();
        forged[15] = if forged[15] == b'9' { b'a' } else { b'9' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(s.check(&forged, 1_000), NonceStatus::Invalid);
    }

    #[test]
    fn nonce_from_another_key_is_invalid() {
        let other = NonceSecret::new([8; 32], 300);
        assert_eq!(
            secret().check(&other.issue(1_000, 1), 1_000),
            NonceStatus::Invalid
        );
    }

    #[test]
    fn malformed_nonces_are_invalid_not_panics() {
        let s = secret();
        let good = s.issue(5, 5);
        for bad in [
            String::new(),
            "xyz".into(),
            good.to_uppercase(),
            format!("{good}0"),
            good[..63].to_string(),
            "é".repeat(32),
        ] {
            assert_eq!(s.check(&bad, 5), NonceStatus::Invalid, "{bad}");
        }
    }

    #[test]
    fn counter_accepts_only_strictly_increasing_counts() {
        let mut c = NonceCounter::new(10, 300);
        assert_eq!(c.accept(0, N, 0, 1), NcVerdict::Accepted);
        assert_eq!(c.accept(0, N, 0, 1), NcVerdict::Replay);
        assert_eq!(c.accept(0, N, 0, 3), NcVerdict::Accepted);
        assert_eq!(c.accept(0, N, 0, 2), NcVerdict::Replay);
        assert_eq!(c.accept(0, N, 0, 4), NcVerdict::Accepted);
        assert_eq!(c.highest(N), Some(4));
        assert_eq!(c.accept(0, OTHER, 0, 0), NcVerdict::Replay);
    }

    #[test]
    fn counter_purges_entries_once_their_nonce_is_stale() {
        let mut c = NonceCounter::new(10, 300);
        c.accept(100, A, 100, 1);
        c.accept(200, B, 200, 1);
        c.purge(400);
        assert_eq!(c.len(), 2);
        c.purge(401);
        assert_eq!(c.len(), 1);
        assert_eq!(c.highest(A), None);
        assert_eq!(c.highest(B), Some(1));
    }

    #[test]
    fn full_counter_evicts_the_oldest_and_forgets_nonces_up_to_it() {
        let mut c = NonceCounter::new(2, 300);
        assert_eq!(c.accept(10, A, 10, 1), NcVerdict::Accepted);
        assert_eq!(c.accept(11, B, 11, 1), NcVerdict::Accepted);
        // An older unseen nonce does not push a younger one out.
        assert_eq!(c.accept(12, OLD, 9, 1), NcVerdict::Forgotten);
        assert_eq!(c.accept(12, C, 12, 1), NcVerdict::Accepted);
        assert_eq!(c.len(), 2);
        assert_eq!(c.highest(A), None);
        // A was evicted: replaying it must not be accepted.
        assert_eq!(c.accept(12, A, 10, 1), NcVerdict::Forgotten);
        assert_eq!(c.accept(12, B, 11, 2), NcVerdict::Accepted);
    }

    #[test]
    fn a_nonce_first_used_late_leaves_with_the_nonces_used_around_it() {
        let mut c = NonceCounter::new(10, 300);
        c.accept(100, A, 100, 1);
        // Issued at 50, first used at 200: behind A in the queue.
        c.accept(200, OLD, 50, 1);
        c.accept(200, B, 200, 1);
        c.purge(401);
        assert_eq!(
            (c.highest(A), c.highest(OLD), c.highest(B)),
            (None, None, Some(1))
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn open_gives_the_issue_time_and_distinct_identities() {
        let s = secret();
        let (n1, n2) = (s.issue(1_000, 1), s.issue(1_000, 2));
        let (t1, id1) = s.open(&n1).unwrap();
        let (t2, id2) = s.open(&n2).unwrap();
        assert_eq!((t1, t2), (1_000, 1_000));
        assert_ne!(id1, id2);
        assert_eq!(s.open(&n1), Some((t1, id1)), "same nonce, same identity");
        assert_eq!(s.open("not-a-nonce"), None);
    }
}
