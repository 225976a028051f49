//! Registrar binding rows as stored (RFC 3261 §10.3, RFC 5626 instance and
//! reg-id, RFC 3327 Path), the [`BindingChange`]s the registrar emits, and
//! the coalescing of a queue of changes into an equivalent shorter one.
//!
//! Owns the persisted shape only; REGISTER semantics (expiry rules, CSeq
//! ordering, instance matching) belong to `carillon-registrar`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One contact bound to an address of record, as persisted.
///
/// Text fields are shared (`Arc<str>`) so that a registrar binding becomes
/// a row without a copy of each string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingRow {
    /// Address of record, e.g. `sip:1001@example.com`.
    pub aor: Arc<str>,
    /// Full Contact URI, e.g. `sip:1001@192.0.2.7:5060;transport=udp`.
    pub contact: Arc<str>,
    /// `+sip.instance` value (RFC 5626), if any.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626), if any.
    pub reg_id: Option<u32>,
    /// Where the REGISTER came from, e.g. `udp:203.0.113.5:41000` (for NAT).
    pub source: Option<Arc<str>>,
    /// Path header URIs (RFC 3327), in order.
    pub path: Vec<String>,
    /// Call-ID of the REGISTER that created or last refreshed the binding.
    pub call_id: Arc<str>,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// Expiry, unix seconds.
    pub expires_at: i64,
    /// Contact `q` preference, if given.
    pub q: Option<f32>,
    /// User-Agent of the registering device, if given.
    pub user_agent: Option<Arc<str>>,
}

/// One change to the bindings table.
#[derive(Debug, Clone, PartialEq)]
pub enum BindingChange {
    /// Insert the binding or replace the one with the same `(aor, contact)`.
    Upsert(BindingRow),
    /// Remove one contact of an AOR.
    Remove { aor: Arc<str>, contact: Arc<str> },
    /// Remove every contact of an AOR (`Contact: *`, RFC 3261 §10.2.2).
    RemoveAor { aor: Arc<str> },
}

/// An ordered list of changes in which each `(aor, contact)` appears at most
/// once (but for a pair whose hash another pair shares, see `by_key`);
/// applying it in order leaves the table in the same state as applying
/// every change that was pushed, in order.
///
/// `S` hashes the pairs; only tests choose another than the default (one
/// that makes every pair collide).
#[derive(Debug, Default)]
pub(crate) struct Coalescer<S = foldhash::fast::RandomState> {
    slots: Vec<Option<BindingChange>>,
    /// Slot of the latest change per `(aor, contact)`, by a keyed hash of
    /// the pair (no copy of the strings per change). A hit is checked
    /// against the slot: a pair whose hash another pair shares only leaves
    /// both changes queued, in order, which applying handles.
    by_key: HashMap<u64, usize, foldhash::fast::FixedState>,
    hasher: S,
    live: usize,
}

/// The `(aor, contact)` a change is about, if it is about one.
fn pair(change: &BindingChange) -> Option<(&str, &str)> {
    match change {
        BindingChange::Upsert(BindingRow { aor, contact, .. })
        | BindingChange::Remove { aor, contact } => Some((aor, contact)),
        BindingChange::RemoveAor { .. } => None,
    }
}

impl Coalescer {
    /// An empty coalescer hashing with a random key.
    pub(crate) fn new() -> Coalescer {
        Coalescer::default()
    }
}

impl<S: BuildHasher> Coalescer<S> {
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub(crate) fn push(&mut self, change: BindingChange) {
        if let Some(this) = pair(&change) {
            let key = self.hasher.hash_one(this);
            if let Some(slot) = self.by_key.get(&key).and_then(|&i| self.slots.get_mut(i)) {
                if slot.as_ref().and_then(pair) == Some(this) {
                    *slot = None;
                    self.live = self.live.saturating_sub(1);
                }
            }
            self.by_key.insert(key, self.slots.len());
        } else if let BindingChange::RemoveAor { aor } = &change {
            for slot in &mut self.slots {
                if slot
                    .as_ref()
                    .and_then(pair)
                    .is_some_and(|(a, _)| a == &**aor)
                {
                    *slot = None;
                    self.live = self.live.saturating_sub(1);
                }
            }
        }
        self.slots.push(Some(change));
        self.live += 1;
    }

    /// Takes the coalesced changes, in order, leaving the coalescer empty.
    pub(crate) fn take(&mut self) -> Vec<BindingChange> {
        self.by_key.clear();
        self.live = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(aor: &str, contact: &str, cseq: u32) -> BindingRow {
        BindingRow {
            aor: aor.into(),
            contact: contact.into(),
            instance: None,
            reg_id: None,
            source: None,
            path: vec![],
            call_id: "c".into(),
            cseq,
            expires_at: 100,
            q: None,
            user_agent: None,
        }
    }

    #[test]
    fn repeated_refreshes_of_one_contact_coalesce_to_the_last() {
        let mut c = Coalescer::new();
        for cseq in 1..=5 {
            c.push(BindingChange::Upsert(row("a", "x", cseq)));
        }
        assert_eq!(c.len(), 1);
        assert_eq!(c.take(), vec![BindingChange::Upsert(row("a", "x", 5))]);
        assert!(c.is_empty());
    }

    #[test]
    fn remove_aor_drops_earlier_changes_of_that_aor_but_keeps_later_ones() {
        let mut c = Coalescer::new();
        c.push(BindingChange::Upsert(row("a", "x", 1)));
        c.push(BindingChange::Upsert(row("b", "y", 1)));
        c.push(BindingChange::RemoveAor { aor: "a".into() });
        c.push(BindingChange::Upsert(row("a", "z", 2)));
        assert_eq!(
            c.take(),
            vec![
                BindingChange::Upsert(row("b", "y", 1)),
                BindingChange::RemoveAor { aor: "a".into() },
                BindingChange::Upsert(row("a", "z", 2)),
            ]
        );
    }

    /// Hashes every pair to the same value.
    #[derive(Default)]
    struct Colliding;

    struct Zero;

    impl std::hash::Hasher for Zero {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    impl BuildHasher for Colliding {
        type Hasher = Zero;
        fn build_hasher(&self) -> Zero {
            Zero
        }
    }

    /// The table a list of changes leaves, applied in order to an empty
    /// one: `(aor, contact) -> cseq`.
    fn apply(changes: &[BindingChange]) -> std::collections::BTreeMap<(String, String), u32> {
        let mut table = std::collections::BTreeMap::new();
        for change in changes {
            match change {
                BindingChange::Upsert(r) => {
                    table.insert((r.aor.to_string(), r.contact.to_string()), r.cseq);
                }
                BindingChange::Remove { aor, contact } => {
                    table.remove(&(aor.to_string(), contact.to_string()));
                }
                BindingChange::RemoveAor { aor } => table.retain(|(a, _), _| a != &**aor),
            }
        }
        table
    }

    /// A pseudo-random list of `n` changes over three AORs with two
    /// contacts each (a fixed LCG: the same list every run).
    fn changes(seed: u64, n: usize) -> Vec<BindingChange> {
        let mut x = seed;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            x >> 33
        };
        (0..n)
            .map(|i| {
                let aor = ["a", "b", "c"][(next() % 3) as usize];
                let contact = ["x", "y"][(next() % 2) as usize];
                match next() % 6 {
                    0 => BindingChange::Remove {
                        aor: aor.into(),
                        contact: contact.into(),
                    },
                    1 => BindingChange::RemoveAor { aor: aor.into() },
                    _ => BindingChange::Upsert(row(aor, contact, i as u32)),
                }
            })
            .collect()
    }

    #[test]
    fn coalescing_leaves_the_table_as_the_full_list_would_even_when_every_pair_collides() {
        for seed in 0..200 {
            let all = changes(seed, 40);
            let mut keyed = Coalescer::new();
            let mut colliding = Coalescer::<Colliding>::default();
            for change in &all {
                keyed.push(change.clone());
                colliding.push(change.clone());
            }
            let (keyed, colliding) = (keyed.take(), colliding.take());
            assert_eq!(apply(&keyed), apply(&all), "seed {seed}");
            assert_eq!(apply(&colliding), apply(&all), "seed {seed} (colliding)");
            // With distinct hashes each pair is queued once at most; when all
            // collide, only a change right after one of the same pair is
            // dropped, so the list may be longer but never out of order.
            assert!(keyed.len() <= colliding.len() && colliding.len() <= all.len());
        }
    }

    #[test]
    fn a_colliding_pair_does_not_drop_the_change_of_another() {
        let mut c = Coalescer::<Colliding>::default();
        c.push(BindingChange::Upsert(row("a", "x", 1)));
        c.push(BindingChange::Upsert(row("b", "y", 1)));
        c.push(BindingChange::Upsert(row("a", "x", 2)));
        // (b, y) holds the shared hash, so (a, x) 1 is not found and stays
        // queued before (a, x) 2; (b, y) is untouched.
        assert_eq!(
            c.take(),
            vec![
                BindingChange::Upsert(row("a", "x", 1)),
                BindingChange::Upsert(row("b", "y", 1)),
                BindingChange::Upsert(row("a", "x", 2)),
            ]
        );
        c.push(BindingChange::Upsert(row("a", "x", 3)));
        c.push(BindingChange::Upsert(row("a", "x", 4)));
        assert_eq!(c.take(), vec![BindingChange::Upsert(row("a", "x", 4))]);
    }

    #[test]
    fn remove_after_upsert_keeps_only_the_remove() {
        let mut c = Coalescer::new();
        c.push(BindingChange::Upsert(row("a", "x", 1)));
        c.push(BindingChange::Remove {
            aor: "a".into(),
            contact: "x".into(),
        });
        assert_eq!(
            c.take(),
            vec![BindingChange::Remove {
                aor: "a".into(),
                contact: "x".into()
            }]
        );
    }
}
