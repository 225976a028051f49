//! The voicemail tables: `voicemail_messages` (one row per kept message)
//! and `voicemail_pins` (PINs changed by their owners). Owns their SQL;
//! the message model and the changes are `carillon-voicemail`'s
//! ([`Message`], [`Persist`]). Files are not this module's business.

use carillon_voicemail::{Folder, Message, Persist};

use super::{Pool, Store};
use crate::error::StoreError;

const INSERT_MESSAGE: &str = "INSERT INTO voicemail_messages \
    (id, mailbox, caller_num, caller_name, received_at, duration_ms, folder, heard, path) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
const MARK_READ: &str = "UPDATE voicemail_messages SET heard = 1, \
    folder = CASE WHEN folder = 'INBOX' THEN 'Old' ELSE folder END WHERE id = $1 AND mailbox = $2";
const MOVE: &str = "UPDATE voicemail_messages SET folder = $1 WHERE id = $2 AND mailbox = $3";
const DELETE: &str = "DELETE FROM voicemail_messages WHERE id = $1 AND mailbox = $2";
const UPSERT_PIN: &str = "INSERT INTO voicemail_pins (mailbox, pin) VALUES ($1, $2) \
    ON CONFLICT (mailbox) DO UPDATE SET pin = excluded.pin";
const SELECT_MESSAGES: &str = "SELECT id, mailbox, caller_num, caller_name, received_at, \
    duration_ms, folder, heard, path FROM voicemail_messages ORDER BY mailbox, received_at, id";
const SELECT_PINS: &str = "SELECT mailbox, pin FROM voicemail_pins ORDER BY mailbox";

#[derive(sqlx::FromRow)]
struct MessageDbRow {
    id: String,
    mailbox: String,
    caller_num: String,
    caller_name: String,
    received_at: i64,
    duration_ms: i64,
    folder: String,
    heard: i64,
    path: String,
}

impl TryFrom<MessageDbRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageDbRow) -> Result<Self, StoreError> {
        let folder = Folder::parse(&r.folder).ok_or_else(|| StoreError::CorruptRow {
            column: "folder",
            reason: format!("unknown folder '{}'", r.folder),
        })?;
        Ok(Message {
            id: r.id,
            mailbox: r.mailbox,
            caller_num: r.caller_num,
            caller_name: r.caller_name,
            received_at_ms: r.received_at,
            duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
            folder,
            read: r.heard != 0,
            path: r.path.into(),
        })
    }
}

impl Store {
    /// Applies voicemail changes in order, in one transaction (a message
    /// stored twice, as after a retry, is kept once; `Discard` has no
    /// row). Returns how many rows changed.
    pub async fn apply_voicemail(&self, changes: &[Persist]) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(0);
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
            let mut changed = 0;
            for change in changes {
                let done = match change {
                    Persist::Store(m) => Some(
                        sqlx::query(INSERT_MESSAGE)
                            .bind(m.id.as_str())
                            .bind(m.mailbox.as_str())
                            .bind(m.caller_num.as_str())
                            .bind(m.caller_name.as_str())
                            .bind(m.received_at_ms)
                            .bind(i64::try_from(m.duration_ms).unwrap_or(i64::MAX))
                            .bind(m.folder.as_str())
                            .bind(i64::from(m.read))
                            .bind(m.path.display().to_string())
                            .execute(&mut *tx)
                            .await,
                    ),
                    Persist::MarkRead { mailbox, id } => Some(
                        sqlx::query(MARK_READ)
                            .bind(id.as_str())
                            .bind(mailbox.as_str())
                            .execute(&mut *tx)
                            .await,
                    ),
                    Persist::Move { mailbox, id, folder } => Some(
                        sqlx::query(MOVE)
                            .bind(folder.as_str())
                            .bind(id.as_str())
                            .bind(mailbox.as_str())
                            .execute(&mut *tx)
                            .await,
                    ),
                    Persist::Delete { mailbox, id, .. } => Some(
                        sqlx::query(DELETE)
                            .bind(id.as_str())
                            .bind(mailbox.as_str())
                            .execute(&mut *tx)
                            .await,
                    ),
                    Persist::SetPin { mailbox, pin } => Some(
                        sqlx::query(UPSERT_PIN)
                            .bind(mailbox.as_str())
                            .bind(pin.as_str())
                            .execute(&mut *tx)
                            .await,
                    ),
                    Persist::Discard { .. } => None,
                };
                if let Some(done) = done {
                    changed += done.map_err(StoreError::from_sqlx)?.rows_affected();
                }
            }
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            Ok(changed)
        })
    }

    /// Every stored message (for the switch's index at start-up).
    pub async fn load_voicemail_messages(&self) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SELECT_MESSAGES).fetch_all(pool).await
        })
        .map_err(StoreError::from_sqlx)?;
        rows.into_iter().map(Message::try_from).collect()
    }

    /// The PINs owners changed: (mailbox, pin).
    pub async fn load_voicemail_pins(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query_as(SELECT_PINS).fetch_all(pool).await
        })
        .map_err(StoreError::from_sqlx)
    }
}
