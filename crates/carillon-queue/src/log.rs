//! The queue log: app_queue's `queue_log` records as plain data.
//!
//! Owns [`QueueLogEntry`] and [`QueueEvent`], one variant per app_queue
//! event the engine emits, with that event's fields in app_queue's order
//! ([`QueueEvent::data`] gives `data1..data5` as strings, so existing
//! queue reports can read the table as they read Asterisk's). It does not
//! own the table (`carillon-store`) nor wall time: an entry carries the
//! engine's monotonic `Instant`; the switch stamps it with wall time when
//! it hands the entry to the store.

use std::time::{Duration, Instant};

/// One queue log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogEntry {
    pub at: Instant,
    /// The caller's channel unique id (`NONE` for member events).
    pub callid: String,
    pub queue: String,
    /// The member's interface (`NONE` when no member is involved).
    pub agent: String,
    pub event: QueueEvent,
}

/// Seconds, as app_queue writes them.
fn secs(d: Duration) -> String {
    d.as_secs().to_string()
}

/// The events, with app_queue's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// `ENTERQUEUE|url|callerid`
    EnterQueue { url: String, caller_id: String },
    /// `RINGNOANSWER|ringtime(ms)`
    RingNoAnswer { ring_time: Duration },
    /// `CONNECT|holdtime|bridgedchanneluniqueid|ringtime`
    Connect {
        hold_time: Duration,
        member_uniqueid: String,
        ring_time: Duration,
    },
    /// `COMPLETECALLER|holdtime|calltime|origposition`
    CompleteCaller {
        hold_time: Duration,
        call_time: Duration,
        orig_position: usize,
    },
    /// `COMPLETEAGENT|holdtime|calltime|origposition`
    CompleteAgent {
        hold_time: Duration,
        call_time: Duration,
        orig_position: usize,
    },
    /// `ABANDON|position|origposition|waittime`
    Abandon {
        position: usize,
        orig_position: usize,
        wait_time: Duration,
    },
    /// `EXITWITHTIMEOUT|position|origposition|waittime`
    ExitWithTimeout {
        position: usize,
        orig_position: usize,
        wait_time: Duration,
    },
    /// `EXITWITHKEY|key|position|origposition|waittime`
    ExitWithKey {
        key: char,
        position: usize,
        orig_position: usize,
        wait_time: Duration,
    },
    /// `EXITEMPTY|position|origposition|waittime`
    ExitEmpty {
        position: usize,
        orig_position: usize,
        wait_time: Duration,
    },
    /// `TRANSFER|extension|context|holdtime|calltime|origposition`
    Transfer {
        extension: String,
        context: String,
        hold_time: Duration,
        call_time: Duration,
        orig_position: usize,
    },
    /// `ADDMEMBER|` (dynamic login)
    AddMember,
    /// `REMOVEMEMBER|` (dynamic logout)
    RemoveMember,
    /// `PAUSE|reason`
    Pause { reason: String },
    /// `UNPAUSE|reason`
    Unpause { reason: String },
}

impl QueueEvent {
    /// app_queue's event name.
    pub fn name(&self) -> &'static str {
        match self {
            QueueEvent::EnterQueue { .. } => "ENTERQUEUE",
            QueueEvent::RingNoAnswer { .. } => "RINGNOANSWER",
            QueueEvent::Connect { .. } => "CONNECT",
            QueueEvent::CompleteCaller { .. } => "COMPLETECALLER",
            QueueEvent::CompleteAgent { .. } => "COMPLETEAGENT",
            QueueEvent::Abandon { .. } => "ABANDON",
            QueueEvent::ExitWithTimeout { .. } => "EXITWITHTIMEOUT",
            QueueEvent::ExitWithKey { .. } => "EXITWITHKEY",
            QueueEvent::ExitEmpty { .. } => "EXITEMPTY",
            QueueEvent::Transfer { .. } => "TRANSFER",
            QueueEvent::AddMember => "ADDMEMBER",
            QueueEvent::RemoveMember => "REMOVEMEMBER",
            QueueEvent::Pause { .. } => "PAUSE",
            QueueEvent::Unpause { .. } => "UNPAUSE",
        }
    }

    /// `data1..data5` as app_queue writes them (unused ones empty).
    pub fn data(&self) -> [String; 5] {
        let e = String::new;
        match self {
            QueueEvent::EnterQueue { url, caller_id } => {
                [url.clone(), caller_id.clone(), e(), e(), e()]
            }
            QueueEvent::RingNoAnswer { ring_time } => {
                [ring_time.as_millis().to_string(), e(), e(), e(), e()]
            }
            QueueEvent::Connect {
                hold_time,
                member_uniqueid,
                ring_time,
            } => [
                secs(*hold_time),
                member_uniqueid.clone(),
                secs(*ring_time),
                e(),
                e(),
            ],
            QueueEvent::CompleteCaller {
                hold_time,
                call_time,
                orig_position,
            }
            | QueueEvent::CompleteAgent {
                hold_time,
                call_time,
                orig_position,
            } => [
                secs(*hold_time),
                secs(*call_time),
                orig_position.to_string(),
                e(),
                e(),
            ],
            QueueEvent::Abandon {
                position,
                orig_position,
                wait_time,
            }
            | QueueEvent::ExitWithTimeout {
                position,
                orig_position,
                wait_time,
            }
            | QueueEvent::ExitEmpty {
                position,
                orig_position,
                wait_time,
            } => [
                position.to_string(),
                orig_position.to_string(),
                secs(*wait_time),
                e(),
                e(),
            ],
            QueueEvent::ExitWithKey {
                key,
                position,
                orig_position,
                wait_time,
            } => [
                key.to_string(),
                position.to_string(),
                orig_position.to_string(),
                secs(*wait_time),
                e(),
            ],
            QueueEvent::Transfer {
                extension,
                context,
                hold_time,
                call_time,
                orig_position,
            } => [
                extension.clone(),
                context.clone(),
                secs(*hold_time),
                secs(*call_time),
                orig_position.to_string(),
            ],
            QueueEvent::AddMember | QueueEvent::RemoveMember => [e(), e(), e(), e(), e()],
            QueueEvent::Pause { reason } | QueueEvent::Unpause { reason } => {
                [reason.clone(), e(), e(), e(), e()]
            }
        }
    }

    /// Whether this record ends a caller's stay in the queue (every
    /// caller that entered gets exactly one).
    pub fn ends_caller(&self) -> bool {
        matches!(
            self,
            QueueEvent::CompleteCaller { .. }
                | QueueEvent::CompleteAgent { .. }
                | QueueEvent::Abandon { .. }
                | QueueEvent::ExitWithTimeout { .. }
                | QueueEvent::ExitWithKey { .. }
                | QueueEvent::ExitEmpty { .. }
                | QueueEvent::Transfer { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_in_app_queue_order() {
        let e = QueueEvent::Transfer {
            extension: "300".into(),
            context: "internal".into(),
            hold_time: Duration::from_secs(12),
            call_time: Duration::from_millis(65_900),
            orig_position: 2,
        };
        assert_eq!(e.name(), "TRANSFER");
        assert_eq!(e.data(), ["300", "internal", "12", "65", "2"]);
        let r = QueueEvent::RingNoAnswer {
            ring_time: Duration::from_millis(15_000),
        };
        assert_eq!(r.data()[0], "15000");
        assert!(!r.ends_caller());
        let k = QueueEvent::ExitWithKey {
            key: '1',
            position: 3,
            orig_position: 4,
            wait_time: Duration::from_secs(9),
        };
        assert_eq!(k.data(), ["1", "3", "4", "9", ""]);
        assert!(k.ends_caller());
    }
}
