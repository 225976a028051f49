//! Call detail records: the [`CallRecord`] a finished call leaves behind, its
//! [`Disposition`], the [`CdrSink`] the switch hands records to, and the
//! [`WallClock`] that stamps them; and the [`CallbackRequest`] a caller
//! leaves for a call back (stored beside CDRs).
//!
//! This crate owns the data model only. It is sans-IO: it never reads the
//! clock (wall time comes from a caller-provided [`WallClock`]), never touches
//! a database or a file. Persistence, batching and the spool that keeps CDRs
//! while the database is down live in `carillon-store`.
//!
//! Field names follow Asterisk's `cdr` table (`uniqueid`, `linkedid`, `src`,
//! `dst`, `clid`, `dcontext`, `channel`, `dstchannel`, `disposition`,
//! `billsec`, `accountcode`, `userfield`) so that reports written for Asterisk
//! keep working. Times are unix milliseconds; `duration` and `billsec` are
//! derived from them, never stored separately in memory, so they cannot
//! disagree with the timestamps.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod callback;
mod record;

pub use callback::CallbackRequest;
pub use record::{CallRecord, Disposition, ParseDispositionError};

/// Where the switch hands finished call records.
///
/// `submit` must not block: implementations queue the record (for example on
/// an unbounded channel to a writer task) and return at once, so that the
/// signalling loop never waits for a database.
pub trait CdrSink {
    /// Queues one finished call record for storage.
    fn submit(&self, record: CallRecord);
}

/// A source of wall-clock time (unix epoch), injected wherever wall time is
/// needed (CDR stamps, Date headers, file names) so that code using it stays
/// testable. Monotonic time is passed as `std::time::Instant` instead.
pub trait WallClock {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_unix_ms(&self) -> i64;

    /// Whole seconds since 1970-01-01T00:00:00Z (rounded down).
    fn now_unix_secs(&self) -> i64 {
        self.now_unix_ms().div_euclid(1000)
    }
}

/// A [`CdrSink`] that keeps every submitted record in memory, in order.
/// Meant for tests of the code that produces records.
#[derive(Debug, Default)]
pub struct MemorySink {
    records: std::sync::Mutex<Vec<CallRecord>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns every record submitted so far.
    pub fn take(&self) -> Vec<CallRecord> {
        match self.records.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl CdrSink for MemorySink {
    fn submit(&self, record: CallRecord) {
        match self.records.lock() {
            Ok(mut guard) => guard.push(record),
            Err(poisoned) => poisoned.into_inner().push(record),
        }
    }
}

/// A [`WallClock`] that always answers the same instant. For tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub i64);

impl WallClock for FixedClock {
    fn now_unix_ms(&self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_seconds_round_down_even_before_the_epoch() {
        assert_eq!(FixedClock(1_999).now_unix_secs(), 1);
        assert_eq!(FixedClock(-1).now_unix_secs(), -1);
    }

    #[test]
    fn memory_sink_returns_records_in_submission_order_and_empties() {
        let sink = MemorySink::new();
        for id in ["a", "b"] {
            let mut r = record::tests::sample();
            r.uniqueid = id.to_owned();
            sink.submit(r);
        }
        let ids: Vec<String> = sink.take().into_iter().map(|r| r.uniqueid).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(sink.take().is_empty());
    }
}
