//! A min-heap of timer deadlines ordered by instant and, for equal
//! instants, by insertion (first armed, first fired). The payload (a
//! transaction key, a timer name) takes no part in the ordering, so a heap
//! of thousands of timers, many armed at the same `now`, compares two
//! integers per step instead of falling through to the payloads' strings.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
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
        other
            .at
            .cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Deadlines with a payload each; see the module documentation.
pub(crate) struct Deadlines<T> {
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Deadlines<T> {
    pub(crate) fn push(&mut self, at: Instant, item: T) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.heap.push(Entry { at, seq, item });
    }

    /// The earliest deadline.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes and returns the earliest payload if its deadline is due
    /// (at or before `now`).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.at > now {
            return None;
        }
        self.heap.pop().map(|e| e.item)
    }
}

#[cfg(test)]
mod tests {
    use super::Deadlines;
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
}
