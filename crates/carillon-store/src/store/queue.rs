//! The queue engine's tables (issue 15): `queue_members` (dynamic members
//! and every member's pause, so both survive a restart) and `queue_log`
//! (app_queue's queue log, Asterisk's realtime column names).
//!
//! Owns the statements and the row types. It takes the engine's outputs
//! as they are ([`carillon_queue::MemberChange`], a
//! [`carillon_queue::QueueLogEntry`] stamped with wall time) and gives
//! back [`carillon_queue::PersistedMember`]s for
//! `Engine::restore_member`. Not wired into the binary yet: the switch
//! runs the engine only once the `Queue` application is wired.

use std::collections::BTreeMap;

use carillon_queue::{MemberChange, PersistedMember, QueueLogEntry};

use super::{Pool, Store};
use crate::error::StoreError;

/// One `queue_log` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogRow {
    /// Unix ms (UTC).
    pub time_ms: i64,
    pub callid: String,
    pub queuename: String,
    pub agent: String,
    pub event: String,
    pub data: [String; 5],
}

impl QueueLogRow {
    /// The engine's entry, stamped with the wall time it happened at.
    pub fn from_entry(entry: &QueueLogEntry, time_ms: i64) -> QueueLogRow {
        QueueLogRow {
            time_ms,
            callid: entry.callid.clone(),
            queuename: entry.queue.clone(),
            agent: entry.agent.clone(),
            event: entry.event.name().to_owned(),
            data: entry.event.data(),
        }
    }
}

/// A stored member row: what the engine restores, and when its pause began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQueueMember {
    pub member: PersistedMember,
    /// Unix ms the current pause began (kept across re-saves while paused).
    pub paused_at: Option<i64>,
    pub updated_at: i64,
}

/// Filter for [`Store::fetch_queue_log`]: rows with `since_ms <= time_ms <
/// until_ms`, oldest first (then in insertion order).
#[derive(Debug, Clone)]
pub struct QueueLogQuery {
    pub since_ms: i64,
    pub until_ms: i64,
    pub queue: Option<String>,
    pub limit: u32,
}

impl Default for QueueLogQuery {
    fn default() -> Self {
        QueueLogQuery {
            since_ms: 0,
            until_ms: i64::MAX,
            queue: None,
            limit: 10_000,
        }
    }
}

/// Most queue log rows in one multi-row insert (11 bound values each).
pub const QUEUE_LOG_ROWS_PER_STATEMENT: usize = 64;

const INSERT_QUEUE_LOG_HEAD: &str = "INSERT INTO queue_log \
    (time_ms, time, callid, queuename, agent, event, data1, data2, data3, data4, data5) ";
const SELECT_QUEUE_LOG: &str = "SELECT time_ms, callid, queuename, agent, event, \
    data1, data2, data3, data4, data5 FROM queue_log \
    WHERE time_ms >= $1 AND time_ms < $2 AND (CAST($3 AS TEXT) IS NULL OR queuename = $3) \
    ORDER BY time_ms, id LIMIT $4";
const UPSERT_MEMBER: &str = "INSERT INTO queue_members \
    (queue, interface, membername, penalty, skills, dynamic, pause_reason, paused_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
    ON CONFLICT (queue, interface) DO UPDATE SET membername = excluded.membername, \
    penalty = excluded.penalty, skills = excluded.skills, dynamic = excluded.dynamic, \
    paused_at = CASE WHEN queue_members.pause_reason IS NOT NULL \
        AND excluded.pause_reason IS NOT NULL THEN queue_members.paused_at \
        ELSE excluded.paused_at END, \
    pause_reason = excluded.pause_reason, updated_at = excluded.updated_at";
const DELETE_MEMBER: &str = "DELETE FROM queue_members WHERE queue = $1 AND interface = $2";
const SELECT_MEMBERS: &str = "SELECT queue, interface, membername, penalty, skills, dynamic, \
    pause_reason, paused_at, updated_at FROM queue_members ORDER BY queue, interface";

#[derive(sqlx::FromRow)]
struct QueueLogDbRow {
    time_ms: i64,
    callid: String,
    queuename: String,
    agent: String,
    event: String,
    data1: String,
    data2: String,
    data3: String,
    data4: String,
    data5: String,
}

#[derive(sqlx::FromRow)]
struct MemberDbRow {
    queue: String,
    interface: String,
    membername: Option<String>,
    penalty: i32,
    skills: String,
    dynamic: i32,
    pause_reason: Option<String>,
    paused_at: Option<i64>,
    updated_at: i64,
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of unix ms, as Asterisk's `time`.
pub fn utc_text(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{ms:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn skills_json(skills: &BTreeMap<String, u32>) -> String {
    serde_json::to_string(skills).unwrap_or_else(|_| "{}".to_owned())
}

impl TryFrom<MemberDbRow> for StoredQueueMember {
    type Error = StoreError;

    fn try_from(r: MemberDbRow) -> Result<Self, StoreError> {
        let skills: BTreeMap<String, u32> =
            serde_json::from_str(&r.skills).map_err(|e| StoreError::CorruptRow {
                column: "queue_members.skills",
                reason: format!("{} in {}: {e}", r.interface, r.queue),
            })?;
        Ok(StoredQueueMember {
            member: PersistedMember {
                queue: r.queue,
                interface: r.interface,
                name: r.membername,
                penalty: u32::try_from(r.penalty).unwrap_or(0),
                skills,
                dynamic: r.dynamic != 0,
                paused: r.pause_reason,
            },
            paused_at: r.paused_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    /// Appends queue log rows in one transaction; returns how many.
    pub async fn insert_queue_log(&self, rows: &[QueueLogRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
            let mut inserted = 0;
            for chunk in rows.chunks(QUEUE_LOG_ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(INSERT_QUEUE_LOG_HEAD);
                q.push_values(chunk, |mut v, r| {
                    v.push_bind(r.time_ms)
                        .push_bind(utc_text(r.time_ms))
                        .push_bind(r.callid.as_str())
                        .push_bind(r.queuename.as_str())
                        .push_bind(r.agent.as_str())
                        .push_bind(r.event.as_str());
                    for d in &r.data {
                        v.push_bind(d.as_str());
                    }
                });
                let done = q.build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                inserted += done.rows_affected();
            }
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            Ok(inserted)
        })
    }

    /// Queue log rows matching the query, oldest first.
    pub async fn fetch_queue_log(
        &self,
        query: &QueueLogQuery,
    ) -> Result<Vec<QueueLogRow>, StoreError> {
        let rows: Vec<QueueLogDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SELECT_QUEUE_LOG)
                .bind(query.since_ms)
                .bind(query.until_ms)
                .bind(query.queue.as_deref())
                .bind(i64::from(query.limit))
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|r| QueueLogRow {
                time_ms: r.time_ms,
                callid: r.callid,
                queuename: r.queuename,
                agent: r.agent,
                event: r.event,
                data: [r.data1, r.data2, r.data3, r.data4, r.data5],
            })
            .collect())
    }

    /// Applies the engine's member changes in order, in one transaction;
    /// `now_ms` stamps `updated_at` and the start of a new pause.
    pub async fn apply_queue_members(
        &self,
        changes: &[MemberChange],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
            for change in changes {
                match change {
                    MemberChange::Upsert(m) => {
                        sqlx::query(UPSERT_MEMBER)
                            .bind(m.queue.as_str())
                            .bind(m.interface.as_str())
                            .bind(m.name.as_deref())
                            .bind(i32::try_from(m.penalty).unwrap_or(i32::MAX))
                            .bind(skills_json(&m.skills))
                            .bind(i32::from(m.dynamic))
                            .bind(m.paused.as_deref())
                            .bind(m.paused.as_ref().map(|_| now_ms))
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::from_sqlx)?;
                    }
                    MemberChange::Remove { queue, interface } => {
                        sqlx::query(DELETE_MEMBER)
                            .bind(queue.as_str())
                            .bind(interface.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::from_sqlx)?;
                    }
                }
            }
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            Ok(())
        })
    }

    /// Every stored member row, by queue then interface (for
    /// `Engine::restore_member` at start).
    pub async fn load_queue_members(&self) -> Result<Vec<StoredQueueMember>, StoreError> {
        let rows: Vec<MemberDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SELECT_MEMBERS).fetch_all(pool).await
        })
        .map_err(StoreError::from_sqlx)?;
        rows.into_iter().map(StoredQueueMember::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_matches_known_instants() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc_text(1_800_000_000_123), "2027-01-15 08:00:00.123");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(utc_text(-1), "1969-12-31 23:59:59.999");
    }
}
