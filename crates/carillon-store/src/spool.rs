//! The CDR spool: a JSON-lines file of [`SpoolEntry`]s (CDRs) and callback
//! request entries (`{"spooled_at_ms":…,"callback":{…}}`) that holds rows
//! while the database cannot take them. Each append is written whole and
//! fsync'd before it counts as saved. The file is emptied only after every
//! record in it has been committed to the database, so a crash in between
//! replays records that are already stored, which the insert ignores
//! (`ON CONFLICT DO NOTHING` on `uniqueid`, and on `(uniqueid,
//! requested_at)` for callback requests): nothing is lost or duplicated.
//!
//! Lines that cannot be parsed (a write cut short by a crash) and records
//! the database rejects as bad data go to `<spool>.rejected` for a person to
//! look at, instead of blocking the spool forever.

use std::io::Write;
use std::path::{Path, PathBuf};

use carillon_cdr::{CallRecord, CallbackRequest};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::cdr_writer::Row;

/// One CDR line of the spool file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolEntry {
    /// Wall-clock time the record was spooled, unix milliseconds.
    pub spooled_at_ms: i64,
    /// The record.
    pub record: CallRecord,
}

/// One callback request line of the spool file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CallbackSpoolEntry {
    spooled_at_ms: i64,
    callback: CallbackRequest,
}

/// Any line of the spool file (a CDR line has `record`, a callback
/// request line `callback`).
#[derive(Deserialize)]
#[serde(untagged)]
enum SpoolLine {
    Cdr(SpoolEntry),
    Callback(CallbackSpoolEntry),
}

/// What a spool file holds.
#[derive(Debug, Default)]
pub(crate) struct SpoolContents {
    pub(crate) records: Vec<Row>,
    pub(crate) bad_lines: Vec<String>,
}

/// The spool file and its companion `.rejected` file.
#[derive(Debug)]
pub(crate) struct Spool {
    path: PathBuf,
    rejected: PathBuf,
}

pub(crate) fn rejected_path(spool: &Path) -> PathBuf {
    let mut name = spool
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".rejected");
    spool.with_file_name(name)
}

fn encode(records: &[Row], now_ms: i64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    for row in records {
        match row {
            Row::Cdr(record) => {
                let entry = SpoolEntry {
                    spooled_at_ms: now_ms,
                    record: record.clone(),
                };
                serde_json::to_writer(&mut buf, &entry)?;
            }
            Row::Callback(callback) => {
                let entry = CallbackSpoolEntry {
                    spooled_at_ms: now_ms,
                    callback: callback.clone(),
                };
                serde_json::to_writer(&mut buf, &entry)?;
            }
        }
        buf.push(b'\n');
    }
    Ok(buf)
}

async fn append_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

/// Appends records synchronously (for the rare case where the writer task
/// is gone and the caller must not lose the record).
pub(crate) fn append_blocking(path: &Path, records: &[Row], now_ms: i64) -> std::io::Result<()> {
    let bytes = encode(records, now_ms)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(&bytes)?;
    file.sync_all()
}

impl Spool {
    pub(crate) fn new(path: PathBuf) -> Self {
        let rejected = rejected_path(&path);
        Spool { path, rejected }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and fsyncs the records.
    pub(crate) async fn append(&self, records: &[Row], now_ms: i64) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        append_file(&self.path, &encode(records, now_ms)?).await
    }

    /// Reads every entry; a missing file is an empty spool.
    pub(crate) async fn read(&self) -> std::io::Result<SpoolContents> {
        let text = match tokio::fs::read(&self.path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SpoolContents::default())
            }
            Err(e) => return Err(e),
        };
        let mut contents = SpoolContents::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<SpoolLine>(line) {
                Ok(SpoolLine::Cdr(entry)) => contents.records.push(Row::Cdr(entry.record)),
                Ok(SpoolLine::Callback(entry)) => {
                    contents.records.push(Row::Callback(entry.callback))
                }
                Err(_) => contents.bad_lines.push(line.to_owned()),
            }
        }
        Ok(contents)
    }

    /// Empties the spool file (and fsyncs the truncation).
    pub(crate) async fn truncate(&self) -> std::io::Result<()> {
        match tokio::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .await
        {
            Ok(file) => {
                file.set_len(0).await?;
                file.sync_all().await
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Keeps records the database refused, for a person to look at.
    pub(crate) async fn reject_records(&self, records: &[Row], now_ms: i64) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        append_file(&self.rejected, &encode(records, now_ms)?).await
    }

    /// Keeps unreadable spool lines as they were.
    pub(crate) async fn reject_lines(&self, lines: &[String]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        append_file(&self.rejected, &bytes).await
    }
}
