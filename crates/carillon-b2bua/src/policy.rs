//! Per-source request policies that run before a request is parsed or
//! routed: a token-bucket rate limit per source IP and a ban after too many
//! failed authentications within a window (fail2ban built in). Sans-IO:
//! time is the caller's `Instant`.
//!
//! ```text
//!  source ─► banned? ──yes──► drop (logged once at ban time)
//!              │no
//!              ▼
//!          bucket has a token? ──no──► drop
//!              │yes
//!              ▼
//!           process; a failed auth ─► count; N in window ─► ban
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Policy settings (`[security]` in carillon.toml).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Failed authentications from one source that trigger a ban.
    pub max_auth_failures: u32,
    /// Window in which failures are counted.
    pub failure_window: Duration,
    /// How long a banned source is ignored.
    pub ban_time: Duration,
    /// Sustained requests per second allowed from one source.
    pub rate_per_sec: f64,
    /// Burst size of the per-source bucket.
    pub burst: f64,
    /// Sources never rate limited or banned.
    pub exempt: Vec<IpAddr>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_auth_failures: 10,
            failure_window: Duration::from_secs(60),
            ban_time: Duration::from_secs(600),
            rate_per_sec: 200.0,
            burst: 400.0,
            exempt: Vec::new(),
        }
    }
}

/// What to do with a request from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Banned,
    RateLimited,
}

#[derive(Debug)]
struct SourceState {
    tokens: f64,
    refilled: Instant,
    failures: Vec<Instant>,
    banned_until: Option<Instant>,
}

/// Policy state for every source seen recently.
#[derive(Debug)]
pub struct Policy {
    config: PolicyConfig,
    sources: HashMap<IpAddr, SourceState>,
}

/// A ban that just started, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub ip: IpAddr,
    pub failures: u32,
    pub until: Instant,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Self {
        Policy {
            config,
            sources: HashMap::new(),
        }
    }

    pub fn set_config(&mut self, config: PolicyConfig) {
        self.config = config;
    }

    fn state(&mut self, ip: IpAddr, now: Instant) -> &mut SourceState {
        let burst = self.config.burst;
        self.sources.entry(ip).or_insert_with(|| SourceState {
            tokens: burst,
            refilled: now,
            failures: Vec::new(),
            banned_until: None,
        })
    }

    /// Checks a request from `ip` and takes a token.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.config.exempt.contains(&ip) {
            return Verdict::Allow;
        }
        let (rate, burst) = (self.config.rate_per_sec, self.config.burst);
        let s = self.state(ip, now);
        if let Some(until) = s.banned_until {
            if now < until {
                return Verdict::Banned;
            }
            s.banned_until = None;
            s.failures.clear();
        }
        let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(burst);
        s.refilled = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Verdict::Allow
        } else {
            Verdict::RateLimited
        }
    }

    /// Records a failed authentication; returns the ban if this one started it.
    pub fn auth_failed(&mut self, ip: IpAddr, now: Instant) -> Option<Ban> {
        if self.config.exempt.contains(&ip) {
            return None;
        }
        let (window, max, ban) = (
            self.config.failure_window,
            self.config.max_auth_failures,
            self.config.ban_time,
        );
        let s = self.state(ip, now);
        s.failures
            .retain(|t| now.saturating_duration_since(*t) < window);
        s.failures.push(now);
        let count = u32::try_from(s.failures.len()).unwrap_or(u32::MAX);
        if count >= max && s.banned_until.is_none() {
            let until = now + ban;
            s.banned_until = Some(until);
            return Some(Ban {
                ip,
                failures: count,
                until,
            });
        }
        None
    }

    /// Forgets sources idle for longer than the window and not banned.
    pub fn purge(&mut self, now: Instant) {
        let window = self.config.failure_window.max(Duration::from_secs(10));
        self.sources.retain(|_, s| {
            s.banned_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(s.refilled) < window
                || !s.failures.is_empty()
                    && s.failures
                        .iter()
                        .any(|t| now.saturating_duration_since(*t) < window)
        });
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_banned_after_n_failures_in_the_window_and_released_after() {
        let cfg = PolicyConfig {
            max_auth_failures: 3,
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(cfg);
        let t0 = Instant::now();
        assert!(p.auth_failed(ip("10.0.0.1"), t0).is_none());
        assert!(p
            .auth_failed(ip("10.0.0.1"), t0 + Duration::from_secs(1))
            .is_none());
        let ban = p
            .auth_failed(ip("10.0.0.1"), t0 + Duration::from_secs(2))
            .unwrap();
        assert_eq!(ban.failures, 3);
        assert_eq!(
            p.check(ip("10.0.0.1"), t0 + Duration::from_secs(3)),
            Verdict::Banned
        );
        assert_eq!(
            p.check(ip("10.0.0.2"), t0 + Duration::from_secs(3)),
            Verdict::Allow
        );
        assert_eq!(
            p.check(ip("10.0.0.1"), t0 + Duration::from_secs(603)),
            Verdict::Allow
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let cfg = PolicyConfig {
            max_auth_failures: 2,
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(cfg);
        let t0 = Instant::now();
        assert!(p.auth_failed(ip("10.0.0.1"), t0).is_none());
        assert!(p
            .auth_failed(ip("10.0.0.1"), t0 + Duration::from_secs(61))
            .is_none());
    }

    #[test]
    fn the_bucket_limits_bursts_and_refills_over_time() {
        let cfg = PolicyConfig {
            rate_per_sec: 10.0,
            burst: 5.0,
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(cfg);
        let t0 = Instant::now();
        let allowed = (0..20)
            .filter(|_| p.check(ip("10.0.0.1"), t0) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 5);
        assert_eq!(
            p.check(ip("10.0.0.1"), t0 + Duration::from_millis(100)),
            Verdict::Allow
        );
        assert_eq!(
            p.check(ip("10.0.0.1"), t0 + Duration::from_millis(100)),
            Verdict::RateLimited
        );
    }

    #[test]
    fn exempt_sources_are_never_limited() {
        let cfg = PolicyConfig {
            rate_per_sec: 1.0,
            burst: 1.0,
            max_auth_failures: 1,
            exempt: vec![ip("127.0.0.9")],
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(cfg);
        let t0 = Instant::now();
        assert!((0..10).all(|_| p.check(ip("127.0.0.9"), t0) == Verdict::Allow));
        assert!(p.auth_failed(ip("127.0.0.9"), t0).is_none());
    }
}
