//! RTP port allocation for call legs.
//!
//! Owns the free even ports of the configured range (RTP on the even port,
//! RTCP on the next). The range is dealt round-robin into one share per
//! media worker ([`carillon_mediactl::port_partition`]) and a session only
//! gets ports from the share of the worker that carries it
//! ([`SessionId::worker`]), so the worker that released a port is the one
//! asked to bind it again and can hand back the sockets it kept open.
//!
//! Within a share, a released port rests until [`RESTING_PAIRS`] other
//! ports have been released after it (so late packets of the old call find
//! no leg), then it is used before any never-used port: a busy switch
//! cycles through a working set of ports whose sockets the worker still
//! holds, instead of walking the whole range and binding a new pair for
//! every leg. A share with no never-used port left takes the port freed
//! longest ago.

use carillon_mediactl::{port_partition, SessionId};
use std::collections::VecDeque;

/// Released ports a share keeps resting before it reuses the oldest.
pub const RESTING_PAIRS: usize = 256;

/// The free ports of one media worker.
#[derive(Debug, Clone, Default)]
struct Share {
    /// Never used since start, lowest first.
    fresh: VecDeque<u16>,
    /// Released, oldest first.
    released: VecDeque<u16>,
}

impl Share {
    fn take(&mut self) -> Option<u16> {
        if self.released.len() > RESTING_PAIRS {
            return self.released.pop_front();
        }
        self.fresh.pop_front().or_else(|| self.released.pop_front())
    }

    fn len(&self) -> usize {
        self.fresh.len() + self.released.len()
    }
}

/// Free RTP ports, one share per media worker.
#[derive(Debug)]
pub struct PortPool {
    shares: Vec<Share>,
    total: usize,
}

impl PortPool {
    /// All even ports `p` with `lo <= p` and `p + 1 < hi`, dealt into
    /// `workers` shares (at least one).
    pub fn new((lo, hi): (u16, u16), workers: usize) -> Self {
        let workers = workers.max(1);
        let mut shares = vec![Share::default(); workers];
        let first = lo.saturating_add(lo % 2);
        let mut total = 0;
        for port in (first..hi.saturating_sub(1)).step_by(2) {
            if let Some(share) = shares.get_mut(port_partition(port, workers)) {
                share.fresh.push_back(port);
                total += 1;
            }
        }
        PortPool { shares, total }
    }

    /// A free port for a leg of `session`, if its worker's share has one.
    pub fn take(&mut self, session: SessionId) -> Option<u16> {
        let share = session.worker(self.shares.len());
        self.shares.get_mut(share)?.take()
    }

    /// Returns a port taken with [`PortPool::take`].
    pub fn give(&mut self, port: u16) {
        let share = port_partition(port, self.shares.len());
        if let Some(share) = self.shares.get_mut(share) {
            share.released.push_back(port);
        }
    }

    /// Ports currently taken.
    pub fn in_use(&self) -> usize {
        let free: usize = self.shares.iter().map(Share::len).sum();
        self.total.saturating_sub(free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_only_gets_ports_of_its_workers_share() {
        let mut pool = PortPool::new((10000, 10100), 3);
        for s in 0..40 {
            let session = SessionId(s);
            let port = pool.take(session).unwrap();
            assert_eq!(port % 2, 0);
            assert_eq!(port_partition(port, 3), session.worker(3));
        }
        assert_eq!(pool.in_use(), 40);
    }

    #[test]
    fn once_enough_ports_rest_the_oldest_released_is_reused_before_fresh_ones() {
        let mut pool = PortPool::new((10000, 60000), 1);
        let session = SessionId(3);
        let first: Vec<u16> = (0..=RESTING_PAIRS)
            .map(|_| pool.take(session).unwrap())
            .collect();
        for &p in &first {
            pool.give(p);
        }
        // RESTING_PAIRS + 1 released: the oldest comes back, not a fresh port.
        assert_eq!(pool.take(session), Some(first[0]));
        // Now only RESTING_PAIRS rest: the next is fresh.
        let next = pool.take(session).unwrap();
        assert!(!first.contains(&next), "{next}");
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn a_given_back_port_is_reused_only_after_the_rest_of_its_share() {
        let mut pool = PortPool::new((10000, 10010), 1);
        let first = pool.take(SessionId(1)).unwrap();
        pool.give(first);
        let mut order = Vec::new();
        while let Some(p) = pool.take(SessionId(1)) {
            order.push(p);
        }
        assert_eq!(order.last(), Some(&first));
        assert_eq!(order, [10002, 10004, 10006, 10008, 10000]);
        assert_eq!(pool.in_use(), 5);
    }

    #[test]
    fn an_exhausted_share_refuses_even_if_others_have_ports() {
        let mut pool = PortPool::new((10000, 10008), 2);
        let session = SessionId(5);
        let mut taken = 0;
        while pool.take(session).is_some() {
            taken += 1;
        }
        // Pairs 10000..=10006 dealt over two shares: two each.
        assert_eq!(taken, 2);
        assert_eq!(pool.in_use(), 2);
        let other = (0..)
            .map(SessionId)
            .find(|s| s.worker(2) != session.worker(2))
            .unwrap();
        assert!(
            pool.take(other).is_some(),
            "the other share still has ports"
        );
    }

    #[test]
    fn an_odd_or_tiny_range_never_panics() {
        assert_eq!(PortPool::new((10001, 10002), 2).in_use(), 0);
        assert!(PortPool::new((65534, 65535), 0)
            .take(SessionId(1))
            .is_none());
        let mut p = PortPool::new((0, 0), 4);
        assert!(p.take(SessionId(9)).is_none());
    }
}
