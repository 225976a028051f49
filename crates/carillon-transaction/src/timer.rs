//! Transaction timers: the RFC 3261 §17 timer values (T1, T2, T4; Table 4 of
//! RFC 3261 §A), the named timers A–K plus L and M added by RFC 6026 §8.4 and
//! §8.7, the 64*T1 wait after a CANCEL of RFC 3261 §9.1, and the small
//! per-machine table that holds their deadlines.
//!
//! This module owns only deadlines and the ordering in which due timers fire.
//! It does not own what a timer *does*; that is the state machine's business
//! (`client`, `server`). Time never comes from a clock here: every deadline is
//! computed from an `Instant` the caller passed in.
//!
//! Firing order: when several timers are due in one `handle_timeout` call
//! they fire earliest deadline first; on a tie a terminating timer (B, D, F,
//! H, I, J, K, L, M, CancelWait) fires before a retransmission timer (A, E, G), so a
//! machine never retransmits at the very instant it gives up.

use std::time::{Duration, Instant};

/// The base timer values of RFC 3261 §17.1.1.1 and Table 4.
///
/// `t1` is the round-trip estimate, `t2` the cap on non-INVITE request and
/// INVITE response retransmission intervals, `t4` the time a message may stay
/// in the network. Keep `t1` non-zero: a zero `t1` makes every retransmission
/// timer due again immediately (the machines still never loop, because each
/// timer fires at most once per `handle_timeout` call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses, default 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: the value of timers B, F, H and J (unreliable), L and M.
    pub fn sixty_four_t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: "at least 32 seconds" for unreliable transports, zero for
    /// reliable ones (RFC 3261 §17.1.1.2). We use the larger of 32 s and
    /// 64*T1 so that a raised T1 still outlives the server's Timer H.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.sixty_four_t1())
        }
    }

    /// Timers I and K: T4 for unreliable transports, zero for reliable ones.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: 64*T1 for unreliable transports, zero for reliable ones.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.sixty_four_t1()
        }
    }
}

/// The named transaction timers of RFC 3261 Table 4 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval (unreliable only), doubles.
    A,
    /// INVITE transaction timeout (64*T1).
    B,
    /// Wait time for response retransmits in INVITE client Completed.
    D,
    /// Non-INVITE request retransmit interval (unreliable only).
    E,
    /// Non-INVITE transaction timeout (64*T1).
    F,
    /// INVITE final response retransmit interval (unreliable only).
    G,
    /// Wait time for ACK receipt (64*T1).
    H,
    /// Wait time for ACK retransmits in INVITE server Confirmed.
    I,
    /// Wait time for non-INVITE request retransmits in server Completed.
    J,
    /// Wait time for response retransmits in non-INVITE client Completed.
    K,
    /// RFC 6026: wait time for INVITE retransmits in server Accepted.
    L,
    /// RFC 6026: wait time for 2xx retransmits in client Accepted.
    M,
    /// RFC 3261 §9.1: after the UAC sent a CANCEL, how long (64*T1) the
    /// INVITE client transaction still waits for a final response before it
    /// destroys itself. Not one of the lettered timers of Table 4.
    CancelWait,
}

impl Timer {
    /// Every timer, in table order.
    pub const ALL: [Timer; 13] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::CancelWait,
    ];

    /// Whether firing this timer retransmits (A, E, G) rather than ends a
    /// state.
    pub fn is_retransmission(self) -> bool {
        matches!(self, Timer::A | Timer::E | Timer::G)
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Deadlines of the armed timers of one machine.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `timer` to fire `after` from `now`. A deadline that does not fit
    /// in an `Instant` leaves the timer disarmed (it would never fire).
    pub(crate) fn arm(&mut self, timer: Timer, now: Instant, after: Duration) {
        if let Some(slot) = self.deadlines.get_mut(timer.slot()) {
            *slot = now.checked_add(after);
        }
    }

    pub(crate) fn disarm(&mut self, timer: Timer) {
        if let Some(slot) = self.deadlines.get_mut(timer.slot()) {
            *slot = None;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.deadlines = Default::default();
    }

    pub(crate) fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(timer.slot()).copied().flatten()
    }

    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The timers due at `now`, in firing order (see the module docs).
    pub(crate) fn due(&self, now: Instant) -> Vec<Timer> {
        let mut due: Vec<(Instant, bool, Timer)> = Timer::ALL
            .iter()
            .filter_map(|&t| {
                self.deadline(t)
                    .filter(|&at| at <= now)
                    .map(|at| (at, t.is_retransmission(), t))
            })
            .collect();
        due.sort();
        due.into_iter().map(|(_, _, t)| t).collect()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.deadline(timer).is_some_and(|at| at <= now)
    }
}

/// Doubles a retransmission interval, saturating instead of overflowing.
pub(crate) fn doubled(interval: Duration) -> Duration {
    interval.saturating_mul(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_matches_rfc_3261_table_4() {
        let cfg = TimerConfig::default();
        assert_eq!(cfg.t1, Duration::from_millis(500));
        assert_eq!(cfg.t2, Duration::from_secs(4));
        assert_eq!(cfg.t4, Duration::from_secs(5));
        assert_eq!(cfg.sixty_four_t1(), Duration::from_secs(32));
        assert_eq!(cfg.timer_d(false), Duration::from_secs(32));
        assert_eq!(cfg.timer_d(true), Duration::ZERO);
        assert_eq!(cfg.t4_or_zero(false), Duration::from_secs(5));
        assert_eq!(cfg.timer_j(true), Duration::ZERO);
    }

    #[test]
    fn earliest_returns_the_soonest_armed_deadline() {
        let base = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.earliest(), None);
        table.arm(Timer::B, base, Duration::from_secs(32));
        table.arm(Timer::A, base, Duration::from_millis(500));
        assert_eq!(table.earliest(), Some(base + Duration::from_millis(500)));
        table.disarm(Timer::A);
        assert_eq!(table.earliest(), Some(base + Duration::from_secs(32)));
        table.clear();
        assert_eq!(table.earliest(), None);
    }

    #[test]
    fn due_timers_fire_terminating_before_retransmitting_on_a_tie() {
        let base = Instant::now();
        let mut table = TimerTable::default();
        table.arm(Timer::A, base, Duration::from_secs(1));
        table.arm(Timer::B, base, Duration::from_secs(1));
        table.arm(Timer::D, base, Duration::from_millis(10));
        table.arm(Timer::M, base, Duration::from_secs(9));
        let due = table.due(base + Duration::from_secs(1));
        assert_eq!(due, vec![Timer::D, Timer::B, Timer::A]);
    }

    #[test]
    fn an_unrepresentable_deadline_leaves_the_timer_disarmed() {
        let base = Instant::now();
        let mut table = TimerTable::default();
        table.arm(Timer::H, base, Duration::MAX);
        assert_eq!(table.deadline(Timer::H), None);
    }
}
