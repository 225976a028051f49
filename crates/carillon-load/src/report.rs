//! The run report: call counts, setup-time percentiles, RTP statistics per
//! direction, and its text and JSON renderings.
//!
//! Owns the statistics arithmetic (nearest-rank percentiles, loss
//! percentage, the pass/fail verdict); the engine and the media workers
//! only count.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{Codec, Role};

/// Nearest-rank percentiles of a sample set, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Computes the percentiles of `samples` (any order; sorted in place).
    pub fn of(samples: &mut [f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let sum: f64 = samples.iter().sum();
        Percentiles {
            count: samples.len(),
            mean: sum / samples.len() as f64,
            p50: nearest_rank(samples, 50.0),
            p90: nearest_rank(samples, 90.0),
            p99: nearest_rank(samples, 99.0),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }
}

/// The nearest-rank percentile of sorted, non-empty `sorted`: the smallest
/// value with at least `pct`% of the samples at or below it.
pub fn nearest_rank(sorted: &[f64], pct: f64) -> f64 {
    let n = sorted.len();
    let rank = ((pct / 100.0) * n as f64).ceil() as usize;
    let idx = rank.clamp(1, n.max(1)) - 1;
    sorted.get(idx).copied().unwrap_or(0.0)
}

/// RTP statistics for one direction, summed over calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DirectionStats {
    /// Packets sent by this process in this direction.
    pub packets_sent: u64,
    /// Packets received by this process in this direction.
    pub packets_received: u64,
    /// Packets expected by the receivers (first to highest sequence number).
    pub packets_expected: u64,
    /// Expected − received (RFC 3550 A.3), summed over streams.
    pub packets_lost: i64,
    pub loss_pct: f64,
    pub reordered: u64,
    pub duplicates: u64,
    /// Streams whose jitter was measured.
    pub streams: u64,
    /// Mean over streams of the final interarrival jitter.
    pub jitter_mean_ms: f64,
    /// Largest interarrival jitter seen on any stream.
    pub jitter_max_ms: f64,
    /// Packets of the right payload type whose payload lacked our marker
    /// (the target transcoded or mixed the audio).
    pub payload_mismatch: u64,
    /// Packets whose sequence number stopped lining up with the counter in
    /// their payload: the target renumbered the stream (as relays that
    /// regenerate RTP headers do after a loss upstream of them).
    pub renumbered: u64,
    /// Datagrams that were not RTP of the negotiated payload type (RTCP…).
    pub foreign: u64,
    /// Sends the kernel refused (buffer full).
    pub send_errors: u64,
}

impl DirectionStats {
    /// Fills `loss_pct` from the counts.
    pub fn finish(&mut self) {
        self.loss_pct = if self.packets_expected == 0 {
            0.0
        } else {
            100.0 * self.packets_lost.max(0) as f64 / self.packets_expected as f64
        };
    }
}

/// RTP statistics per direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RtpReport {
    pub uac_to_uas: DirectionStats,
    pub uas_to_uac: DirectionStats,
    /// Send ticks the workers skipped because they ran late (this machine
    /// was overloaded: its own jitter and lower packet counts, not the
    /// target's). Should be 0.
    pub ticks_skipped: u64,
}

/// Counts of the calling side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UacCounts {
    pub attempted: u64,
    pub answered: u64,
    pub failed: u64,
    /// Answered calls whose BYE got a 2xx (or that the far end hung up).
    pub completed: u64,
    /// Final status (or `timeout`, `max-time`, `bad-sdp`) → calls.
    pub failed_by_status: BTreeMap<String, u64>,
    pub auth_challenges: u64,
    pub remote_hangups: u64,
    /// BYEs answered with a non-2xx or never answered.
    pub bye_failures: u64,
    pub peak_concurrent: u64,
    /// Calls placed per second (first to last INVITE).
    pub cps_attempted: f64,
    /// INVITE sent (first one, before any challenge) → 200 received.
    pub setup_ms: Percentiles,
}

/// Counts of the answering side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UasCounts {
    pub invites: u64,
    pub answered: u64,
    pub completed: u64,
    pub ack_timeouts: u64,
    pub rejected: u64,
    pub peak_concurrent: u64,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub role: Role,
    pub target: String,
    pub elapsed_s: f64,
    pub hit_max_time: bool,
    /// Codec the calling side offered and accepted (absent in `uas` role).
    pub uac_codec: Option<Codec>,
    /// Codec the answering side offered and accepted (absent in `uac`
    /// role). When both are present and differ, the target must transcode.
    pub uas_codec: Option<Codec>,
    pub uac: Option<UacCounts>,
    pub uas: Option<UasCounts>,
    pub rtp: Option<RtpReport>,
    pub failure_pct: f64,
    pub max_failure_pct: f64,
    pub passed: bool,
}

impl Report {
    /// Computes `failure_pct` and `passed`: the calling side's failed share
    /// of attempts, or for a pure UAS the share of answered calls that
    /// never completed.
    pub fn judge(&mut self) {
        let (bad, total) = match (&self.uac, &self.uas) {
            (Some(u), _) => (u.failed, u.attempted),
            (None, Some(s)) => (
                s.answered.saturating_sub(s.completed) + s.rejected,
                s.invites,
            ),
            (None, None) => (0, 0),
        };
        self.failure_pct = if total == 0 {
            100.0
        } else {
            100.0 * bad as f64 / total as f64
        };
        self.passed = total > 0 && self.failure_pct <= self.max_failure_pct;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "carillon-load {} → {}  elapsed {:.1}s{}",
            format!("{:?}", self.role).to_lowercase(),
            self.target,
            self.elapsed_s,
            if self.hit_max_time {
                "  (stopped at --max-time)"
            } else {
                ""
            }
        );
        if let Some(line) = codec_line(self.uac_codec, self.uas_codec) {
            let _ = writeln!(s, "{line}");
        }
        if let Some(u) = &self.uac {
            let _ = writeln!(
                s,
                "calls: attempted {}  answered {}  failed {}  completed {}  peak concurrent {}",
                u.attempted, u.answered, u.failed, u.completed, u.peak_concurrent
            );
            let _ = writeln!(
                s,
                "       {:.1} calls/s  auth challenges {}  remote hangups {}  BYE failures {}",
                u.cps_attempted, u.auth_challenges, u.remote_hangups, u.bye_failures
            );
            if !u.failed_by_status.is_empty() {
                let list: Vec<String> = u
                    .failed_by_status
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                let _ = writeln!(s, "       failures by status: {}", list.join(", "));
            }
            let p = &u.setup_ms;
            let _ = writeln!(
                s,
                "setup ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}  (n={})",
                p.p50, p.p90, p.p99, p.max, p.mean, p.count
            );
        }
        if let Some(u) = &self.uas {
            let _ = writeln!(
                s,
                "uas: invites {}  answered {}  completed {}  ACK timeouts {}  rejected {}  peak {}",
                u.invites, u.answered, u.completed, u.ack_timeouts, u.rejected, u.peak_concurrent
            );
        }
        if let Some(r) = &self.rtp {
            if r.ticks_skipped > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: RTP workers skipped {} ticks (this machine is overloaded; add --media-threads or lower --concurrency)",
                    r.ticks_skipped
                );
            }
            for (name, d) in [("uac→uas", &r.uac_to_uas), ("uas→uac", &r.uas_to_uac)] {
                let _ = writeln!(
                    s,
                    "rtp {name}: sent {}  received {}  lost {} ({:.3}%)  jitter mean {:.2} ms max {:.2} ms  reordered {}  dup {}  mismatch {}  renumbered {}  send errors {}",
                    d.packets_sent,
                    d.packets_received,
                    d.packets_lost,
                    d.loss_pct,
                    d.jitter_mean_ms,
                    d.jitter_max_ms,
                    d.reordered,
                    d.duplicates,
                    d.payload_mismatch,
                    d.renumbered,
                    d.send_errors
                );
            }
        }
        let _ = writeln!(
            s,
            "result: {} (failures {:.3}% , limit {:.3}%)",
            if self.passed { "PASS" } else { "FAIL" },
            self.failure_pct,
            self.max_failure_pct
        );
        s
    }
}

/// `codecs: uac pcmu (PT 0)  uas pcma (PT 8)  (the target must transcode)`.
fn codec_line(uac: Option<Codec>, uas: Option<Codec>) -> Option<String> {
    let side = |name: &str, c: Codec| {
        format!(
            "{name} {} (PT {})",
            format!("{c:?}").to_lowercase(),
            c.payload_type()
        )
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = uac {
        parts.push(side("uac", c));
    }
    if let Some(c) = uas {
        parts.push(side("uas", c));
    }
    if parts.is_empty() {
        return None;
    }
    if matches!((uac, uas), (Some(a), Some(b)) if a != b) {
        parts.push("(the target must transcode)".into());
    }
    Some(format!("codecs: {}", parts.join("  ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred_are_the_ranks_themselves() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(p.mean, 50.5);
    }

    #[test]
    fn percentiles_of_few_samples_pick_an_existing_sample() {
        let mut v = vec![10.0, 30.0, 20.0];
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, 20.0);
        assert_eq!(p.p90, 30.0);
        assert_eq!(p.p99, 30.0);
        assert_eq!(p.max, 30.0);
    }

    #[test]
    fn percentiles_of_nothing_are_zero() {
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn one_failure_in_a_thousand_passes_the_default_limit_and_two_do_not() {
        let mut r = Report {
            role: Role::Uac,
            target: "t".into(),
            elapsed_s: 1.0,
            hit_max_time: false,
            uac_codec: Some(Codec::Pcmu),
            uas_codec: None,
            uac: Some(UacCounts {
                attempted: 1000,
                failed: 1,
                ..UacCounts::default()
            }),
            uas: None,
            rtp: None,
            failure_pct: 0.0,
            max_failure_pct: 0.1,
            passed: false,
        };
        r.judge();
        assert!(r.passed);
        r.uac.as_mut().unwrap().failed = 2;
        r.judge();
        assert!(!r.passed);
        assert!(r.to_text().contains("FAIL"));
    }

    #[test]
    fn the_report_names_each_sides_codec_and_says_when_the_target_transcoded() {
        let r = Report {
            role: Role::Both,
            target: "t".into(),
            elapsed_s: 1.0,
            hit_max_time: false,
            uac_codec: Some(Codec::Pcmu),
            uas_codec: Some(Codec::Pcma),
            uac: None,
            uas: None,
            rtp: None,
            failure_pct: 0.0,
            max_failure_pct: 0.1,
            passed: false,
        };
        assert!(r
            .to_text()
            .contains("codecs: uac pcmu (PT 0)  uas pcma (PT 8)  (the target must transcode)"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["uac_codec"], "pcmu");
        assert_eq!(json["uas_codec"], "pcma");
        assert_eq!(
            codec_line(Some(Codec::Pcma), None).as_deref(),
            Some("codecs: uac pcma (PT 8)")
        );
        assert_eq!(
            codec_line(Some(Codec::Pcma), Some(Codec::Pcma)).as_deref(),
            Some("codecs: uac pcma (PT 8)  uas pcma (PT 8)")
        );
    }

    #[test]
    fn loss_percentage_ignores_negative_loss_from_duplicates() {
        let mut d = DirectionStats {
            packets_expected: 200,
            packets_lost: 2,
            ..DirectionStats::default()
        };
        d.finish();
        assert_eq!(d.loss_pct, 1.0);
        d.packets_lost = -3;
        d.finish();
        assert_eq!(d.loss_pct, 0.0);
    }
}
