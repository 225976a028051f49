//! When the switch's media commands leave the signalling thread.
//!
//! Every command handed to the media plane wakes a sleeping media worker
//! (an `eventfd` write and a context switch on the other core), and under a
//! steady call rate each call's three commands (open the caller's leg at
//! the INVITE, open the callee's leg and bridge at the answer, close at the
//! BYE) arrive far apart, so each paid for a wake-up of its own: about a
//! sixth of the switch's CPU at 1,000 calls per second (perf, benches/README.md
//! §4). [`HeldCommands`] keeps commands that no packet can be waiting for
//! and hands them over together, at most [`HeldCommands::hold`] later:
//!
//! - `Bridge`, `Unbridge` and `UpdateLeg` release everything held at once,
//!   in order: the peer that has just been sent our answer may send RTP
//!   within microseconds, and it must find its leg open and bridged.
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

/// Media commands waiting to be handed to the media plane together.
#[derive(Debug)]
pub struct HeldCommands {
    held: Vec<MediaCommand>,
    /// When the oldest held command must be released.
    due: Option<Instant>,
    hold: Duration,
}

impl HeldCommands {
    /// Default longest hold: well under one 20 ms packet time.
    pub const DEFAULT_HOLD: Duration = Duration::from_millis(10);

    /// Commands are held at most `hold` (zero: never held).
    pub fn new(hold: Duration) -> Self {
        HeldCommands {
            held: Vec::new(),
            due: None,
            hold,
        }
    }

    /// The longest hold.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Takes a command at `now`; true when everything held must be
    /// released now ([`HeldCommands::release`]).
    #[must_use]
    pub fn push(&mut self, now: Instant, command: MediaCommand) -> bool {
        let urgent = matches!(
            command,
            MediaCommand::Bridge { .. }
                | MediaCommand::Unbridge { .. }
                | MediaCommand::UpdateLeg { .. }
        );
        if self.held.is_empty() {
            self.due = Some(now + self.hold);
        }
        self.held.push(command);
        urgent || self.hold.is_zero()
    }

    /// When the held commands must be released, if any are held.
    pub fn deadline(&self) -> Option<Instant> {
        self.due
    }

    /// True when the deadline has passed at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|due| now >= due)
    }

    /// Everything held, oldest first.
    pub fn release(&mut self) -> std::vec::Drain<'_, MediaCommand> {
        self.due = None;
        self.held.drain(..)
    }

    /// Number of commands held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_mediactl::{LegId, SessionId};

    const S: SessionId = SessionId(7);

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

    fn bridge() -> MediaCommand {
        MediaCommand::Bridge {
            session: S,
            a: LegId(0),
            b: LegId(1),
        }
    }

    fn sessions(cmds: &[MediaCommand]) -> Vec<u64> {
        cmds.iter()
            .map(|c| match c {
                MediaCommand::CloseSession { session } => session.0,
                MediaCommand::Bridge { session, .. } => session.0,
                _ => u64::MAX,
            })
            .collect()
    }

    #[test]
    fn closes_wait_until_the_oldest_is_due() {
        let t0 = Instant::now();
        let mut h = HeldCommands::new(Duration::from_millis(10));
        assert_eq!(h.deadline(), None);
        assert!(!h.push(t0, close(1)));
        assert!(!h.push(t0 + Duration::from_millis(4), close(2)));
        assert_eq!(h.deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(!h.is_due(t0 + Duration::from_millis(9)));
        assert!(h.is_due(t0 + Duration::from_millis(10)));
        let out: Vec<_> = h.release().collect();
        assert_eq!(sessions(&out), [1, 2]);
        assert!(h.is_empty());
        assert_eq!(h.deadline(), None, "nothing held, no deadline");
        // The next command starts a new hold.
        assert!(!h.push(t0 + Duration::from_millis(20), close(3)));
        assert_eq!(h.deadline(), Some(t0 + Duration::from_millis(30)));
    }

    #[test]
    fn a_bridge_releases_the_held_open_before_it_in_order() {
        let t0 = Instant::now();
        let mut h = HeldCommands::new(Duration::from_millis(10));
        let open = MediaCommand::OpenLeg {
            session: S,
            leg: LegId(0),
            local_port: 10000,
            params: params(),
        };
        assert!(!h.push(t0, close(1)));
        assert!(!h.push(t0, open));
        assert!(h.push(t0, bridge()), "a bridge must reach the worker now");
        assert_eq!(h.len(), 3);
        let out: Vec<_> = h.release().collect();
        assert!(matches!(out[0], MediaCommand::CloseSession { .. }));
        assert!(matches!(out[1], MediaCommand::OpenLeg { .. }));
        assert!(matches!(out[2], MediaCommand::Bridge { .. }));
    }

    #[test]
    fn updates_and_unbridges_are_urgent_too() {
        let t0 = Instant::now();
        let mut h = HeldCommands::new(Duration::from_millis(10));
        assert!(h.push(
            t0,
            MediaCommand::Unbridge {
                session: S,
                a: LegId(0),
                b: LegId(1)
            }
        ));
        h.release().for_each(drop);
        assert!(h.push(
            t0,
            MediaCommand::UpdateLeg {
                session: S,
                leg: LegId(0),
                params: params()
            }
        ));
    }

    #[test]
    fn a_zero_hold_releases_everything_at_once() {
        let mut h = HeldCommands::new(Duration::ZERO);
        assert!(h.push(Instant::now(), close(1)));
    }
}
