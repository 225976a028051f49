//! Timer deadlines, earliest first and, for equal instants, in arming
//! order (first armed, first fired). The payload (a transaction key, a
//! timer name) takes no part in the ordering.
//!
//! A switch arms nearly every timer as `now + d` for one of a few
//! durations (T1 and its doublings, 64·T1, T4, the call timers), with a
//! `now` that never goes back, so the deadlines of one duration arrive in
//! order. They are kept in a few FIFO lanes, each sorted by construction:
//! a deadline joins the first lane whose last deadline is not later, and
//! the next one due is the earliest of the lanes' fronts. Arming and
//! firing cost a few comparisons instead of a sift through a heap of tens
//! of thousands of timers (64·T1 keeps a transaction's for 32 s). A
//! deadline that fits no lane (the lanes are all taken by later ones) goes
//! to a binary heap, which is also looked at when popping.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

/// FIFO lanes at most; beyond them deadlines go to the heap.
const LANES: usize = 8;

struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> Entry<T> {
    fn order(&self) -> (Instant, u64) {
        (self.at, self.seq)
    }
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest must be on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other.order().cmp(&self.order())
    }
}

/// Where the next due deadline is.
#[derive(Clone, Copy)]
enum Source {
    Lane(usize),
    Heap,
}

/// Deadlines with a payload each; see the module documentation.
pub(crate) struct Deadlines<T> {
    /// Each sorted by `(at, seq)`: pushed only at or after its back.
    lanes: Vec<VecDeque<Entry<T>>>,
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            lanes: Vec::new(),
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Deadlines<T> {
    pub(crate) fn push(&mut self, at: Instant, item: T) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let entry = Entry { at, seq, item };
        // `seq` grows, so a deadline not before a lane's back sorts after it.
        if let Some(lane) = self
            .lanes
            .iter_mut()
            .find(|l| l.back().is_none_or(|b| b.at <= at))
        {
            lane.push_back(entry);
        } else if self.lanes.len() < LANES {
            self.lanes.push(VecDeque::from([entry]));
        } else {
            self.heap.push(entry);
        }
    }

    /// Where the earliest deadline is, and when.
    fn earliest(&self) -> Option<(Source, (Instant, u64))> {
        let mut best = self.heap.peek().map(|e| (Source::Heap, e.order()));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.front() {
                if best.is_none_or(|(_, b)| front.order() < b) {
                    best = Some((Source::Lane(i), front.order()));
                }
            }
        }
        best
    }

    /// The earliest deadline.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.earliest().map(|(_, (at, _))| at)
    }

    /// Removes and returns the earliest payload if its deadline is due
    /// (at or before `now`).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        let (source, (at, _)) = self.earliest()?;
        if at > now {
            return None;
        }
        let entry = match source {
            Source::Heap => self.heap.pop(),
            Source::Lane(i) => self.lanes.get_mut(i).and_then(VecDeque::pop_front),
        };
        entry.map(|e| e.item)
    }
}

#[cfg(test)]
mod tests {
    use super::{Deadlines, LANES};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::time::{Duration, Instant};

    #[test]
    fn due_payloads_come_out_earliest_first_and_in_arming_order_on_ties() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        assert_eq!(d.next_at(), None);
        for (ms, name) in [
            (30, "c"),
            (10, "z"),
            (20, "b"),
            (10, "a"),
            (10, "m"),
            (40, "x"),
        ] {
            d.push(at(ms), name);
        }
        assert_eq!(d.next_at(), Some(at(10)));
        assert_eq!(d.pop_due(at(5)), None);
        let mut fired = Vec::new();
        while let Some(n) = d.pop_due(at(30)) {
            fired.push(n);
        }
        assert_eq!(fired, ["z", "a", "m", "b", "c"]);
        assert_eq!(d.next_at(), Some(at(40)));
        d.push(at(35), "y");
        assert_eq!(d.pop_due(at(100)), Some("y"));
        assert_eq!(d.pop_due(at(100)), Some("x"));
        assert_eq!(d.pop_due(at(100)), None);
    }

    /// Pseudo-random pushes (many more distinct orders than there are
    /// lanes, so the heap is used too) and pops, against a plain heap of
    /// `(at, seq)`.
    #[test]
    fn pops_what_a_heap_of_deadline_and_arming_order_pops() {
        let t0 = Instant::now();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ours = Deadlines::default();
        let mut reference = BinaryHeap::new();
        let mut now_ms = 0u64;
        let mut seq = 0u64;
        for _ in 0..20_000 {
            let r = next();
            if r % 3 == 0 {
                now_ms += r % 7;
                let now = t0 + Duration::from_millis(now_ms);
                loop {
                    let want = match reference.peek() {
                        Some(Reverse((at, _))) if *at <= now => {
                            reference.pop().map(|Reverse((_, s))| s)
                        }
                        _ => None,
                    };
                    assert_eq!(ours.pop_due(now), want);
                    if want.is_none() {
                        break;
                    }
                }
            } else {
                // A few usual durations, and now and then any.
                let d = match r % 11 {
                    0 => (r >> 8) % 5000,
                    k => [0, 500, 1000, 2000, 4000, 5000, 32_000, 64, 3, 10][k as usize - 1],
                };
                let at = t0 + Duration::from_millis(now_ms + d);
                ours.push(at, seq);
                reference.push(Reverse((at, seq)));
                seq += 1;
            }
            assert_eq!(ours.next_at(), reference.peek().map(|Reverse((at, _))| *at));
        }
        assert!(ours.lanes.len() <= LANES);
        assert!(!ours.heap.is_empty(), "the test should reach the heap");
    }
}
