//! Symmetric RTP / latching (RFC 4961 symmetric RTP, the "comedia" practice
//! for phones behind NAT): the address media really arrives from becomes the
//! address media is sent to.
//!
//! Owns the learned remote address of one flow (RTP or RTCP of one leg) and
//! the rule that decides when it may move. It does not own the SDP address
//! (the leg falls back to it while nothing is latched) nor what happens to a
//! packet after the verdict.
//!
//! The rule: the first packet latches. After that, packets from another
//! address are *strays* and are dropped, unless `threshold` consecutive
//! packets arrive from one new address carrying one key (the RTP SSRC, or
//! the RTCP sender SSRC) with no packet from the latched address in between;
//! the packet that completes the run moves the latch and is accepted. A
//! single packet from elsewhere (a scanner, a late packet from an old NAT
//! binding, an injection attempt) therefore never redirects the stream,
//! while a phone whose NAT binding really changed is followed within
//! `threshold` packets (60 ms at 20 ms ptime with the default 3).
//!
//! ```text
//!  unlatched ──any packet──► latched(addr) ◄─────────────────────────┐
//!                              │  from addr: accepted, run cleared    │
//!                              └─ from other: run(other, key) += 1 ───┤ run == threshold
//!                                 (run restarts if address or key     │ (relatched)
//!                                  differs from the current run)      │
//!                                 below threshold: stray ─────────────┘
//! ```

use std::net::SocketAddr;

/// What the latch decided about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchVerdict {
    /// From the latched address.
    Accepted,
    /// The first packet: its source is now the remote.
    Latched,
    /// A run from a new address reached the threshold: it is now the remote.
    Relatched { previous: SocketAddr },
    /// From another address, not (yet) trusted: drop it.
    Stray,
}

impl LatchVerdict {
    /// Whether the packet should be processed.
    pub fn is_accepted(self) -> bool {
        !matches!(self, LatchVerdict::Stray)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    from: SocketAddr,
    key: u32,
    count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LatchState {
    Unlatched,
    Latched {
        remote: SocketAddr,
        run: Option<Run>,
    },
}

/// The learned remote of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latch {
    threshold: u32,
    state: LatchState,
}

impl Latch {
    /// An unlatched flow that re-latches after `threshold` consecutive
    /// packets (values below 1 count as 1).
    pub fn new(threshold: u32) -> Self {
        Latch {
            threshold: threshold.max(1),
            state: LatchState::Unlatched,
        }
    }

    /// The latched address, if any.
    pub fn remote(&self) -> Option<SocketAddr> {
        match self.state {
            LatchState::Unlatched => None,
            LatchState::Latched { remote, .. } => Some(remote),
        }
    }

    /// Forgets the learned address (the SDP moved the media elsewhere).
    pub fn reset(&mut self) {
        self.state = LatchState::Unlatched;
    }

    /// Judges one packet from `from` carrying `key` (its SSRC).
    pub fn handle_packet(&mut self, from: SocketAddr, key: u32) -> LatchVerdict {
        match &mut self.state {
            LatchState::Unlatched => {
                self.state = LatchState::Latched {
                    remote: from,
                    run: None,
                };
                LatchVerdict::Latched
            }
            LatchState::Latched { remote, run } => {
                if *remote == from {
                    *run = None;
                    return LatchVerdict::Accepted;
                }
                let count = match run {
                    Some(r) if r.from == from && r.key == key => r.count.saturating_add(1),
                    _ => 1,
                };
                if count >= self.threshold {
                    let previous = *remote;
                    *remote = from;
                    *run = None;
                    LatchVerdict::Relatched { previous }
                } else {
                    *run = Some(Run { from, key, count });
                    LatchVerdict::Stray
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn the_first_packet_latches_its_source() {
        let mut l = Latch::new(3);
        assert_eq!(l.remote(), None);
        assert_eq!(l.handle_packet(addr(1), 7), LatchVerdict::Latched);
        assert_eq!(l.remote(), Some(addr(1)));
        assert_eq!(l.handle_packet(addr(1), 7), LatchVerdict::Accepted);
    }

    #[test]
    fn one_stray_packet_does_not_move_the_latch() {
        let mut l = Latch::new(3);
        l.handle_packet(addr(1), 7);
        assert_eq!(l.handle_packet(addr(9), 7), LatchVerdict::Stray);
        assert_eq!(l.remote(), Some(addr(1)));
    }

    #[test]
    fn a_consistent_run_from_a_new_address_relatches_on_its_last_packet() {
        let mut l = Latch::new(3);
        l.handle_packet(addr(1), 7);
        assert_eq!(l.handle_packet(addr(2), 8), LatchVerdict::Stray);
        assert_eq!(l.handle_packet(addr(2), 8), LatchVerdict::Stray);
        assert_eq!(
            l.handle_packet(addr(2), 8),
            LatchVerdict::Relatched { previous: addr(1) }
        );
        assert_eq!(l.remote(), Some(addr(2)));
        assert_eq!(l.handle_packet(addr(1), 7), LatchVerdict::Stray);
    }

    #[test]
    fn a_packet_from_the_latched_address_breaks_the_run() {
        let mut l = Latch::new(3);
        l.handle_packet(addr(1), 7);
        l.handle_packet(addr(2), 8);
        l.handle_packet(addr(2), 8);
        assert_eq!(l.handle_packet(addr(1), 7), LatchVerdict::Accepted);
        assert_eq!(l.handle_packet(addr(2), 8), LatchVerdict::Stray);
        assert_eq!(l.remote(), Some(addr(1)));
    }

    #[test]
    fn a_run_that_changes_address_or_key_starts_over() {
        let mut l = Latch::new(2);
        l.handle_packet(addr(1), 7);
        assert_eq!(l.handle_packet(addr(2), 8), LatchVerdict::Stray);
        assert_eq!(l.handle_packet(addr(3), 8), LatchVerdict::Stray);
        assert_eq!(l.handle_packet(addr(3), 9), LatchVerdict::Stray);
        assert_eq!(
            l.handle_packet(addr(3), 9),
            LatchVerdict::Relatched { previous: addr(1) }
        );
    }

    #[test]
    fn reset_forgets_the_address_and_the_next_packet_latches() {
        let mut l = Latch::new(3);
        l.handle_packet(addr(1), 7);
        l.reset();
        assert_eq!(l.remote(), None);
        assert_eq!(l.handle_packet(addr(5), 7), LatchVerdict::Latched);
        assert_eq!(l.remote(), Some(addr(5)));
    }

    #[test]
    fn a_threshold_of_zero_behaves_as_one() {
        let mut l = Latch::new(0);
        l.handle_packet(addr(1), 7);
        assert_eq!(
            l.handle_packet(addr(2), 7),
            LatchVerdict::Relatched { previous: addr(1) }
        );
    }
}
