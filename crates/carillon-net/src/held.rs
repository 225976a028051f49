//! When the switch's media commands leave the signalling thread.
//!
//! Every command handed to the media plane wakes a sleeping media worker
//! (an `eventfd` write and a context switch on the other core), and under a
//! steady call rate each call's three commands (open the caller's leg at
//! the INVITE, open the callee's leg and bridge at the answer, close at the
//! BYE) arrive far apart, so each paid for a wake-up of its own: about a
//! sixth of the switch's CPU at 1,000 calls per second (perf, benches/README.md
//! §4). [`HeldCommands`] keeps commands that no packet can be waiting for
//! and hands them over together, at most the hold given to
//! [`HeldCommands::new`] later ([`HeldCommands::DEFAULT_HOLD`]: 10 ms):
//!
//! - `Bridge`, `Unbridge` and `UpdateLeg` release everything held for
//!   their worker at once, in order: the peer that has just been sent our
//!   answer may send RTP within microseconds, and it must find its leg
//!   open and bridged. Commands held for other workers keep waiting (a
//!   session lives on one worker, so no order between workers matters).
//! - `OpenLeg` waits: media can only flow once the leg is bridged, and
//!   that releases it. A leg that is never bridged (an answered call that
//!   only plays or waits) is opened at most `hold` later.
//! - `CloseLeg` and `CloseSession` wait: closing a few milliseconds later
//!   changes nothing, and a port reused meanwhile is opened after its
//!   close because the order is kept.
//!
//! Sans-IO: the caller passes the time and delivers what is released.

use std::time::{Duration, Instant};

use carillon_mediactl::MediaCommand;

/// Media commands waiting to be handed to the media plane, per worker.
#[derive(Debug)]
pub struct HeldCommands {
    lanes: Vec<Lane>,
    hold: Duration,
}

#[derive(Debug, Default)]
struct Lane {
    held: Vec<MediaCommand>,
    /// When the oldest held command must be released.
    due: Option<Instant>,
}

impl HeldCommands {
    /// Default longest hold: well under one 20 ms packet time.
    pub const DEFAULT_HOLD: Duration = Duration::from_millis(10);

    /// Commands for `workers` media workers (see
    /// [`carillon_mediactl::SessionId::worker`]) are held at most `hold`
    /// (zero: never held).
    pub fn new(hold: Duration, workers: usize) -> Self {
        HeldCommands {
            lanes: (0..workers.max(1)).map(|_| Lane::default()).collect(),
            hold,
        }
    }

    /// Takes a command at `now`. Returns the worker whose held commands
    /// must be released now ([`HeldCommands::release`]), if any.
    #[must_use]
    pub fn push(&mut self, now: Instant, command: MediaCommand) -> Option<usize> {
        let urgent = matches!(
            command,
            MediaCommand::Bridge { .. }
                | MediaCommand::Unbridge { .. }
                | MediaCommand::UpdateLeg { .. }
        );
        let worker = command.session().worker(self.lanes.len());
        let lane = self.lanes.get_mut(worker)?;
        if lane.held.is_empty() {
            lane.due = Some(now + self.hold);
        }
        lane.held.push(command);
        (urgent || self.hold.is_zero()).then_some(worker)
    }

    /// When the next held commands must be released, if any are held.
    pub fn deadline(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(|l| l.due).min()
    }

    /// Whether `worker`'s oldest held command is due at `now`.
    pub fn is_due(&self, worker: usize, now: Instant) -> bool {
        self.lanes
            .get(worker)
            .and_then(|l| l.due)
            .is_some_and(|due| now >= due)
    }

    /// Everything held for `worker`, oldest first (nothing for a worker
    /// that does not exist), to be handed over as one batch.
    pub fn release(&mut self, worker: usize) -> Vec<MediaCommand> {
        match self.lanes.get_mut(worker) {
            Some(lane) => {
                lane.due = None;
                std::mem::take(&mut lane.held)
            }
            None => Vec::new(),
        }
    }

    /// Number of commands held.
    pub fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.held.len()).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.held.is_empty())
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.lanes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_mediactl::{LegId, SessionId};

    /// Sessions 1 and 3 live on one worker of two, 2 on the other.
    fn worker_of(s: u64) -> usize {
        SessionId(s).worker(2)
    }

    fn params() -> carillon_mediactl::LegParams {
        carillon_mediactl::LegParams {
            codec: carillon_mediactl::AudioCodec::Pcmu,
            payload_type: 0,
            telephone_event_pt: None,
            ptime: Duration::from_millis(20),
            remote: None,
            latch: true,
            send: true,
            recv: true,
        }
    }

    fn close(s: u64) -> MediaCommand {
        MediaCommand::CloseSession {
            session: SessionId(s),
        }
    }

    fn open(s: u64) -> MediaCommand {
        MediaCommand::OpenLeg {
            session: SessionId(s),
            leg: LegId(0),
            local_port: 10000,
            params: params(),
        }
    }

    fn bridge(s: u64) -> MediaCommand {
        MediaCommand::Bridge {
            session: SessionId(s),
            a: LegId(0),
            b: LegId(1),
        }
    }

    /// Two sessions on different workers, and a third on the first's.
    fn sessions() -> (u64, u64, u64) {
        let a = 1;
        let b = (2..100).find(|&s| worker_of(s) != worker_of(a)).unwrap();
        let c = (b + 1..200)
            .find(|&s| worker_of(s) == worker_of(a))
            .unwrap();
        (a, b, c)
    }

    #[test]
    fn closes_wait_until_the_oldest_is_due() {
        let t0 = Instant::now();
        let mut h = HeldCommands::new(Duration::from_millis(10), 1);
        assert_eq!(h.deadline(), None);
        assert_eq!(h.push(t0, close(1)), None);
        assert_eq!(h.push(t0 + Duration::from_millis(4), close(2)), None);
        assert_eq!(h.deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(!h.is_due(0, t0 + Duration::from_millis(9)));
        assert!(h.is_due(0, t0 + Duration::from_millis(10)));
        assert!(
            !h.is_due(1, t0 + Duration::from_millis(10)),
            "no such worker"
        );
        let out = h.release(0);
        assert_eq!(out, [close(1), close(2)]);
        assert!(h.is_empty());
        assert_eq!(h.deadline(), None, "nothing held, no deadline");
        // The next command starts a new hold.
        assert_eq!(h.push(t0 + Duration::from_millis(20), close(3)), None);
        assert_eq!(h.deadline(), Some(t0 + Duration::from_millis(30)));
    }

    #[test]
    fn a_bridge_releases_its_workers_held_commands_in_order_and_no_other() {
        let t0 = Instant::now();
        let (a, b, c) = sessions();
        let mut h = HeldCommands::new(Duration::from_millis(10), 2);
        assert_eq!(h.push(t0, close(c)), None);
        assert_eq!(h.push(t0, open(b)), None);
        assert_eq!(h.push(t0, open(a)), None);
        assert_eq!(
            h.push(t0, bridge(a)),
            Some(worker_of(a)),
            "a bridge must reach its worker now"
        );
        let out = h.release(worker_of(a));
        assert_eq!(out, [close(c), open(a), bridge(a)]);
        assert_eq!(h.len(), 1, "the other worker's open waits");
        assert_eq!(h.deadline(), Some(t0 + Duration::from_millis(10)));
        let out = h.release(worker_of(b));
        assert_eq!(out, [open(b)]);
    }

    #[test]
    fn updates_and_unbridges_are_urgent_too() {
        let t0 = Instant::now();
        let mut h = HeldCommands::new(Duration::from_millis(10), 2);
        let unbridge = MediaCommand::Unbridge {
            session: SessionId(1),
            a: LegId(0),
            b: LegId(1),
        };
        assert_eq!(h.push(t0, unbridge), Some(worker_of(1)));
        h.release(worker_of(1));
        let update = MediaCommand::UpdateLeg {
            session: SessionId(2),
            leg: LegId(0),
            params: params(),
        };
        assert_eq!(h.push(t0, update), Some(worker_of(2)));
    }

    #[test]
    fn a_zero_hold_releases_everything_at_once() {
        let mut h = HeldCommands::new(Duration::ZERO, 1);
        assert_eq!(h.push(Instant::now(), close(1)), Some(0));
        assert_eq!(HeldCommands::new(Duration::ZERO, 0).workers(), 1);
    }
}
