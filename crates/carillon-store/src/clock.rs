//! [`SystemClock`]: the operating system's wall clock behind the
//! [`WallClock`] trait. The only place in the store that reads real time for
//! data (CDR spool stamps, binding purge cut-off).

use std::time::{SystemTime, UNIX_EPOCH};

use carillon_cdr::WallClock;

/// Reads `SystemTime::now()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix_ms() > 1_577_836_800_000);
    }
}
