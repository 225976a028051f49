//! A first-in first-out queue for a transaction's transmits and events
//! that holds its first element inline: a machine queues one datagram or
//! one event per input almost always, so the common case allocates
//! nothing, where a `VecDeque` allocates on its first push.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub(crate) struct Queue<T> {
    /// The front element, when there is one.
    head: Option<T>,
    /// Everything behind the front, in order.
    rest: VecDeque<T>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            head: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> Queue<T> {
    /// A queue holding `item`.
    pub(crate) fn one(item: T) -> Self {
        Queue {
            head: Some(item),
            rest: VecDeque::new(),
        }
    }

    pub(crate) fn push_back(&mut self, item: T) {
        if self.head.is_none() {
            // `pop_front` refills the head from `rest`, so an empty head
            // means an empty queue.
            self.head = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let item = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(item)
    }

    pub(crate) fn extend(&mut self, items: impl IntoIterator<Item = T>) {
        for item in items {
            self.push_back(item);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.head = None;
        self.rest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;
    use std::collections::VecDeque;

    #[test]
    fn pops_in_the_order_a_vecdeque_does() {
        // Every interleaving of pushes (true) and pops (false) up to 10 steps.
        for len in 0..=10u32 {
            for pattern in 0..(1u32 << len) {
                let mut ours = Queue::default();
                let mut std = VecDeque::new();
                for step in 0..len {
                    if pattern & (1 << step) != 0 {
                        ours.push_back(step);
                        std.push_back(step);
                    } else {
                        assert_eq!(ours.pop_front(), std.pop_front());
                    }
                }
                while let Some(x) = std.pop_front() {
                    assert_eq!(ours.pop_front(), Some(x));
                }
                assert_eq!(ours.pop_front(), None);
            }
        }
    }

    #[test]
    fn one_extend_and_clear() {
        let mut q = Queue::one(1);
        q.extend([2, 3]);
        q.extend(None);
        assert_eq!(q.pop_front(), Some(1));
        q.push_back(4);
        assert_eq!(q.pop_front(), Some(2));
        q.clear();
        assert_eq!(q.pop_front(), None);
        q.push_back(5);
        assert_eq!(q.pop_front(), Some(5));
        assert_eq!(q.pop_front(), None);
    }
}
