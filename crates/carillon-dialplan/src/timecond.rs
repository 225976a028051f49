//! Time conditions for GotoIfTime: time-of-day ranges, days of the week,
//! days of the month and months, evaluated in a time zone.
//!
//! Owns `TimeSpec` (the step's templates), [`TimeRule`] (one parsed,
//! expanded condition) and its evaluation against a wall-clock instant the
//! host gives (the interpreter never reads the clock). Time zones come from
//! jiff's compiled-in IANA database, so the result does not depend on the
//! host having tzdata installed.
//!
//! Syntax (Asterisk's `GotoIfTime(times,weekdays,mdays,months[,tz])`, one key
//! each, `*` or absent = any): `times = "09:00-18:00"` (end exclusive; a
//! range past midnight like `"22:00-06:00"` wraps), `weekdays = "sun-thu"`
//! (`mon`..`sun`, ranges wrap, lists with `&` or `,`), `mdays = "1-15"`,
//! `months = "jan-mar"`, `timezone = "Asia/Karachi"` (default UTC).

use crate::template::{Template, VarName};
use std::time::SystemTime;

/// Why a time condition is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("bad time range '{0}' (expected HH:MM-HH:MM or *)")]
    Times(String),
    #[error("bad weekdays '{0}' (expected e.g. mon-fri, sun-thu, sat&sun or *)")]
    Weekdays(String),
    #[error("bad days of the month '{0}' (expected e.g. 1-15 or *)")]
    Mdays(String),
    #[error("bad months '{0}' (expected e.g. jan-mar or *)")]
    Months(String),
    #[error("unknown time zone '{0}' (an IANA name such as Asia/Karachi)")]
    TimeZone(String),
}

/// The templates of a GotoIfTime step (expanded per call, so a dialplan
/// global such as `${OFFICE_HOURS}` can hold them).
#[derive(Debug, Clone)]
pub(crate) struct TimeSpec {
    pub times: Option<Template>,
    pub weekdays: Option<Template>,
    pub mdays: Option<Template>,
    pub months: Option<Template>,
    pub timezone: Option<Template>,
}

impl TimeSpec {
    /// Expands and parses the condition.
    pub fn rule(&self, lookup: &dyn Fn(&VarName) -> Option<String>) -> Result<TimeRule, TimeError> {
        let get = |t: &Option<Template>| t.as_ref().map(|t| t.expand(lookup));
        TimeRule::parse(
            get(&self.times).as_deref(),
            get(&self.weekdays).as_deref(),
            get(&self.mdays).as_deref(),
            get(&self.months).as_deref(),
            get(&self.timezone).as_deref(),
        )
    }
}

/// A parsed time condition.
#[derive(Debug, Clone)]
pub struct TimeRule {
    /// Minutes since midnight, `[start, end)`; `None` = any time.
    times: Option<(u16, u16)>,
    /// Bit 0 = Monday ... bit 6 = Sunday.
    weekdays: u8,
    /// Bit d = day d of the month (1..=31).
    mdays: u32,
    /// Bit m = month m (1..=12).
    months: u16,
    tz: jiff::tz::TimeZone,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn any(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty() && *t != "*")
}

impl TimeRule {
    /// Parses the parts; `None`, empty or `*` means any.
    pub fn parse(
        times: Option<&str>,
        weekdays: Option<&str>,
        mdays: Option<&str>,
        months: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<TimeRule, TimeError> {
        let times = match any(times) {
            None => None,
            Some(text) => Some(parse_times(text).ok_or_else(|| TimeError::Times(text.into()))?),
        };
        let weekdays = match any(weekdays) {
            None => 0x7f,
            Some(text) => {
                let bits = parse_set(text, 0, 6, true, |s| name_index(s, &WEEKDAYS, 0))
                    .ok_or_else(|| TimeError::Weekdays(text.into()))?;
                u8::try_from(bits).map_err(|_| TimeError::Weekdays(text.into()))?
            }
        };
        let mdays = match any(mdays) {
            None => u32::MAX,
            Some(text) => parse_set(text, 1, 31, false, |s| s.parse().ok())
                .ok_or_else(|| TimeError::Mdays(text.into()))?,
        };
        let months = match any(months) {
            None => u16::MAX,
            Some(text) => {
                let bits = parse_set(text, 1, 12, true, |s| {
                    name_index(s, &MONTHS, 1).or_else(|| s.parse().ok())
                })
                .ok_or_else(|| TimeError::Months(text.into()))?;
                u16::try_from(bits).map_err(|_| TimeError::Months(text.into()))?
            }
        };
        let tz = match any(timezone) {
            None => jiff::tz::TimeZone::UTC,
            Some(name) => {
                jiff::tz::TimeZone::get(name).map_err(|_| TimeError::TimeZone(name.into()))?
            }
        };
        Ok(TimeRule {
            times,
            weekdays,
            mdays,
            months,
            tz,
        })
    }

    /// Whether `wall` falls inside the condition.
    pub fn matches(&self, wall: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(wall) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        let weekday = u32::from(local.weekday().to_monday_zero_offset().unsigned_abs());
        let day = u32::from(local.day().unsigned_abs());
        let month = u32::from(local.month().unsigned_abs());
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        let time_ok = match self.times {
            None => true,
            Some((start, end)) if start <= end => (start..end).contains(&minute),
            Some((start, end)) => minute >= start || minute < end,
        };
        time_ok
            && self.weekdays & (1 << weekday) != 0
            && self.mdays & (1 << day) != 0
            && self.months & (1 << month) != 0
    }
}

fn name_index(text: &str, names: &[&str], base: u32) -> Option<u32> {
    let text = text.trim().to_ascii_lowercase();
    let short = text.get(..3)?;
    names
        .iter()
        .position(|n| *n == short)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + base)
}

fn parse_hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn parse_times(text: &str) -> Option<(u16, u16)> {
    let (start, end) = text.split_once('-')?;
    Some((parse_hhmm(start)?, parse_hhmm(end)?))
}

/// Parses `a-b&c,d` into a bit set over `lo..=hi`; `wrap` lets a range
/// run past `hi` back to `lo` (`fri-mon`, `nov-feb`).
fn parse_set(
    text: &str,
    lo: u32,
    hi: u32,
    wrap: bool,
    item: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    let mut bits = 0u32;
    for part in text.split(['&', ',']) {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (item(a)?, item(b)?),
            None => {
                let v = item(part)?;
                (v, v)
            }
        };
        if !(lo..=hi).contains(&a) || !(lo..=hi).contains(&b) {
            return None;
        }
        if a <= b {
            for v in a..=b {
                bits |= 1 << v;
            }
        } else if wrap {
            for v in (a..=hi).chain(lo..=b) {
                bits |= 1 << v;
            }
        } else {
            return None;
        }
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-12-06 was a Sunday.
    fn utc(day: u64, hour: u64, minute: u64) -> SystemTime {
        // 2026-12-01T00:00:00Z
        let base = 1_796_083_200;
        UNIX_EPOCH + Duration::from_secs(base + (day - 1) * 86_400 + hour * 3600 + minute * 60)
    }

    #[test]
    fn office_hours_in_karachi_are_sunday_to_thursday_nine_to_six() {
        let rule = TimeRule::parse(
            Some("09:00-18:00"),
            Some("sun-thu"),
            None,
            None,
            Some("Asia/Karachi"),
        )
        .unwrap();
        // Karachi is UTC+5: 04:00Z Sunday = 09:00 local.
        assert!(rule.matches(utc(6, 4, 0)));
        assert!(!rule.matches(utc(6, 3, 59)));
        // 12:59Z = 17:59 local, 13:00Z = 18:00 local (end exclusive).
        assert!(rule.matches(utc(6, 12, 59)));
        assert!(!rule.matches(utc(6, 13, 0)));
        // Friday 2026-12-04 noon local.
        assert!(!rule.matches(utc(4, 7, 0)));
    }

    #[test]
    fn ranges_wrap_and_bad_parts_are_errors() {
        let night =
            TimeRule::parse(Some("22:00-06:00"), None, None, Some("nov-feb"), None).unwrap();
        assert!(night.matches(utc(6, 23, 0)));
        assert!(night.matches(utc(6, 5, 0)));
        assert!(!night.matches(utc(6, 12, 0)));
        let mdays = TimeRule::parse(None, None, Some("1-5"), None, None).unwrap();
        assert!(mdays.matches(utc(5, 12, 0)));
        assert!(!mdays.matches(utc(6, 12, 0)));
        assert!(matches!(
            TimeRule::parse(Some("9-18"), None, None, None, None),
            Err(TimeError::Times(_))
        ));
        assert!(matches!(
            TimeRule::parse(None, Some("funday"), None, None, None),
            Err(TimeError::Weekdays(_))
        ));
        assert!(matches!(
            TimeRule::parse(None, None, None, None, Some("Mars/Olympus")),
            Err(TimeError::TimeZone(_))
        ));
    }
}
