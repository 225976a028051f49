//! [`CdrWriter`]: the task that stores CDRs (and the callers' callback
//! requests, [`CdrWriterHandle::submit_callback`]) in batches and never
//! loses one.
//!
//! ```text
//!            submit()                         DB answers
//!  switch ───────────► channel ──► [Direct] ─────────────► cdr table
//!                                     │ connection error
//!                                     ▼
//!                                 [Spooling] ── append + fsync ──► spool file
//!                                     │ retry with backoff: connect, replay
//!                                     │ spool in batches, then truncate it
//!                                     ▼
//!                                  [Direct]
//! ```
//!
//! While the spool holds anything, new records are appended to it too, so a
//! replay is a plain "insert every spooled record"; inserts ignore a
//! `uniqueid` already stored, so a replay interrupted after its commit and
//! before the truncation does not duplicate anything. Records the database
//! refuses as bad data (not a connection problem) go to `<spool>.rejected`.
//! A spool left by an earlier run is replayed at start-up.
//!
//! Callback requests take the same path as CDRs (same channel, batches,
//! spool and replay; table `callback_requests`, duplicates ignored on
//! `(uniqueid, requested_at)`), so they get the same guarantee.
//!
//! When the target is a URL the writer connects lazily, so it starts (and
//! spools) even if the database is down at boot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carillon_cdr::{CallRecord, CallbackRequest, CdrSink, WallClock};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::batch;
use crate::error::StoreError;
use crate::spool::{self, Spool};
use crate::store::{Store, StoreOptions};

/// Where a [`CdrWriter`] writes: a URL it connects to when it can, or an
/// already connected store.
#[derive(Debug, Clone)]
pub enum CdrTarget {
    Url(String),
    Store(Store),
}

impl From<&str> for CdrTarget {
    fn from(url: &str) -> Self {
        CdrTarget::Url(url.to_owned())
    }
}

impl From<String> for CdrTarget {
    fn from(url: String) -> Self {
        CdrTarget::Url(url)
    }
}

impl From<Store> for CdrTarget {
    fn from(store: Store) -> Self {
        CdrTarget::Store(store)
    }
}

/// Tuning of a [`CdrWriter`].
#[derive(Debug, Clone)]
pub struct CdrWriterConfig {
    /// Most records per insert transaction.
    pub max_batch: usize,
    /// After the first record of a quiet period, how long to keep
    /// collecting before inserting (group commit); a flush skips it.
    /// Default 200 ms: each insert transaction has a fixed cost (the
    /// SQLite worker's wake-ups, commit), which 20 ms batches paid ~50
    /// times a second at 1,000 calls per second.
    pub batch_window: Duration,
    /// First wait before retrying the database after a failure.
    pub retry_initial: Duration,
    /// Longest wait between retries (the wait doubles up to this).
    pub retry_max: Duration,
    /// Pool settings used when the target is a URL.
    pub store_options: StoreOptions,
}

impl Default for CdrWriterConfig {
    fn default() -> Self {
        CdrWriterConfig {
            max_batch: 1000,
            batch_window: Duration::from_millis(200),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            store_options: StoreOptions::default(),
        }
    }
}

/// Where the records stand after a [`CdrWriterHandle::flush`]: every record
/// submitted before the flush is in the database, in the spool file, or
/// (only if the spool file cannot be written either) counted in `unsaved`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdrFlushReport {
    /// Records waiting in the spool file for the database.
    pub spooled: u64,
    /// Records held only in memory because the spool could not be written.
    pub unsaved: u64,
}

/// What a [`CdrWriter`] has done, for metrics: read at any time without
/// asking the task (atomics it updates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdrWriterStats {
    /// CDRs inserted into the database since start (a replayed spool
    /// counts its records again; duplicates are ignored by the database).
    pub stored: u64,
    /// Rows (CDRs and callback requests) in the spool file now.
    pub spooled: u64,
}

#[derive(Debug, Default)]
struct Counters {
    stored: std::sync::atomic::AtomicU64,
    spooled: std::sync::atomic::AtomicU64,
}

/// One row the writer stores: a CDR or a callback request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Row {
    Cdr(CallRecord),
    Callback(CallbackRequest),
}

impl Row {
    /// The uniqueid of the call the row belongs to (for logs).
    fn uniqueid(&self) -> &str {
        match self {
            Row::Cdr(r) => &r.uniqueid,
            Row::Callback(c) => &c.uniqueid,
        }
    }

    /// What the row is (for logs).
    fn kind(&self) -> &'static str {
        match self {
            Row::Cdr(_) => "CDR",
            Row::Callback(_) => "callback request",
        }
    }
}

/// Inserts a batch of rows: its CDRs, then its callback requests (each in
/// one transaction; a replay of what was committed is ignored).
async fn insert_rows(store: &Store, rows: &[Row]) -> Result<(), StoreError> {
    let mut cdrs = Vec::with_capacity(rows.len());
    let mut callbacks = Vec::new();
    for row in rows {
        match row {
            Row::Cdr(r) => cdrs.push(r),
            Row::Callback(c) => callbacks.push(c),
        }
    }
    store.insert_cdr_refs(&cdrs).await?;
    store.insert_callback_refs(&callbacks).await?;
    Ok(())
}

enum Msg {
    Row(Box<Row>),
    Flush(oneshot::Sender<CdrFlushReport>),
}

/// Starts CDR writer tasks.
#[derive(Debug)]
pub struct CdrWriter;

impl CdrWriter {
    /// Spawns the writer with default tuning on the current tokio runtime.
    pub fn spawn(
        target: impl Into<CdrTarget>,
        spool_path: PathBuf,
        clock: impl WallClock + Send + Sync + 'static,
    ) -> CdrWriterHandle {
        CdrWriter::spawn_with(target, spool_path, clock, CdrWriterConfig::default())
    }

    /// Spawns the writer on the current tokio runtime.
    pub fn spawn_with(
        target: impl Into<CdrTarget>,
        spool_path: PathBuf,
        clock: impl WallClock + Send + Sync + 'static,
        config: CdrWriterConfig,
    ) -> CdrWriterHandle {
        let clock: Arc<dyn WallClock + Send + Sync> = Arc::new(clock);
        let (tx, rx) = mpsc::unbounded_channel();
        let (url, store) = match target.into() {
            CdrTarget::Url(url) => (Some(url), None),
            CdrTarget::Store(store) => (None, Some(store)),
        };
        let backoff = config.retry_initial;
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            counters: Arc::clone(&counters),
            url,
            store,
            spool: Spool::new(spool_path.clone()),
            clock: Arc::clone(&clock),
            config,
            spooled: 0,
            unsaved: Vec::new(),
            retry_at: None,
            backoff,
        };
        tokio::spawn(worker.run(rx));
        CdrWriterHandle {
            tx,
            spool_path: Arc::new(spool_path),
            clock,
            counters,
        }
    }
}

/// Sends records to a [`CdrWriter`]. Cheap to clone.
#[derive(Clone)]
pub struct CdrWriterHandle {
    tx: mpsc::UnboundedSender<Msg>,
    spool_path: Arc<PathBuf>,
    clock: Arc<dyn WallClock + Send + Sync>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for CdrWriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdrWriterHandle")
            .field("spool_path", &self.spool_path)
            .finish()
    }
}

impl CdrWriterHandle {
    /// Returns once every record submitted before this call is saved (in the
    /// database or fsync'd in the spool), with where they stand. If the
    /// writer task is gone, reports nothing pending.
    pub async fn flush(&self) -> CdrFlushReport {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_err() {
            return CdrFlushReport::default();
        }
        rx.await.unwrap_or_default()
    }

    /// CDRs stored and rows spooled, as last published by the task.
    pub fn stats(&self) -> CdrWriterStats {
        use std::sync::atomic::Ordering::Relaxed;
        CdrWriterStats {
            stored: self.counters.stored.load(Relaxed),
            spooled: self.counters.spooled.load(Relaxed),
        }
    }

    /// The spool file this writer uses.
    pub fn spool_path(&self) -> &Path {
        &self.spool_path
    }

    /// Queues a caller's callback request for the `callback_requests`
    /// table without waiting, with the same guarantees as a CDR (batched,
    /// spooled while the database is down, replayed later).
    pub fn submit_callback(&self, request: CallbackRequest) {
        self.submit_row(Row::Callback(request));
    }

    /// Queues a row without waiting. Should the writer task be gone
    /// (runtime shutting down), the row is appended to the spool file
    /// right here rather than dropped.
    fn submit_row(&self, row: Row) {
        let sent = self.tx.send(Msg::Row(Box::new(row)));
        if let Err(mpsc::error::SendError(Msg::Row(row))) = sent {
            let now = self.clock.now_unix_ms();
            if let Err(e) = spool::append_blocking(&self.spool_path, &[*row], now) {
                tracing::error!(error = %e, spool = %self.spool_path.display(), "CDR writer gone and spool unwritable: record lost");
            }
        }
    }
}

impl CdrSink for CdrWriterHandle {
    /// Queues the record without waiting (see [`CdrWriterHandle::submit_callback`]
    /// for what happens when the writer task is gone).
    fn submit(&self, record: CallRecord) {
        self.submit_row(Row::Cdr(record));
    }
}

struct Worker {
    /// Published for [`CdrWriterHandle::stats`].
    counters: Arc<Counters>,
    url: Option<String>,
    store: Option<Store>,
    spool: Spool,
    clock: Arc<dyn WallClock + Send + Sync>,
    config: CdrWriterConfig,
    /// Records in the spool file.
    spooled: u64,
    /// Records neither stored nor spooled (spool unwritable).
    unsaved: Vec<Row>,
    /// When to try the database again; `Some` while anything is pending.
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// How inserting a list of records ended.
enum Outcome {
    /// Every record is stored (or rejected as bad data).
    Done,
    /// The database went away; these records are not stored.
    Unavailable(Vec<Row>),
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        match self.spool.read().await {
            Ok(contents) => {
                let n = contents.records.len() + contents.bad_lines.len();
                self.spooled = u64::try_from(n).unwrap_or(u64::MAX);
                if n > 0 {
                    tracing::info!(records = n, spool = %self.spool.path().display(), "replaying CDR spool from an earlier run");
                    self.retry_at = Some(Instant::now());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, spool = %self.spool.path().display(), "cannot read CDR spool");
                self.spooled = 1; // unknown contents: keep retrying it
                self.retry_at = Some(Instant::now());
            }
        }
        let mut open = true;
        while open || self.retry_at.is_some() {
            let mut batch = Vec::new();
            let mut waiters = Vec::new();
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    None => open = false,
                    Some(msg) => {
                        let max = self.config.max_batch;
                        batch::gather(&mut rx, msg, self.config.batch_window, |msg| {
                            match msg {
                                Msg::Row(r) => batch.push(*r),
                                Msg::Flush(w) => waiters.push(w),
                            }
                            !waiters.is_empty() || batch.len() >= max
                        })
                        .await;
                    }
                },
                () = sleep_until_opt(self.retry_at) => {
                    self.recover().await;
                }
            }
            if !batch.is_empty() {
                self.save(batch).await;
            }
            self.counters
                .spooled
                .store(self.spooled, std::sync::atomic::Ordering::Relaxed);
            let report = self.report();
            for w in waiters {
                let _ = w.send(report);
            }
            if !open && self.retry_at.is_some() {
                // Shutting down: everything is saved (database or spool);
                // the next start replays the spool.
                if self.unsaved.is_empty() {
                    break;
                }
                self.spill(Vec::new()).await;
                if self.unsaved.is_empty() {
                    break;
                }
            }
        }
        if !self.unsaved.is_empty() {
            tracing::error!(
                records = self.unsaved.len(),
                "CDR writer stopping with unsaved records: lost"
            );
        }
    }

    fn report(&self) -> CdrFlushReport {
        CdrFlushReport {
            spooled: self.spooled,
            unsaved: u64::try_from(self.unsaved.len()).unwrap_or(u64::MAX),
        }
    }

    fn backlog(&self) -> bool {
        self.spooled > 0 || !self.unsaved.is_empty()
    }

    /// Stores fresh records, or spools them while a backlog exists or the
    /// database is down.
    async fn save(&mut self, batch: Vec<Row>) {
        if self.backlog() {
            self.spill(batch).await;
            return;
        }
        let Some(store) = self.connected().await else {
            self.spill(batch).await;
            return;
        };
        if let Outcome::Unavailable(rest) = self.insert_all(&store, batch).await {
            self.spill(rest).await;
        }
    }

    /// Appends records (and any earlier unsaved ones) to the spool.
    async fn spill(&mut self, records: Vec<Row>) {
        let mut all = std::mem::take(&mut self.unsaved);
        all.extend(records);
        if all.is_empty() {
            return;
        }
        match self.spool.append(&all, self.clock.now_unix_ms()).await {
            Ok(()) => {
                self.spooled = self
                    .spooled
                    .saturating_add(u64::try_from(all.len()).unwrap_or(u64::MAX));
                tracing::warn!(
                    records = all.len(),
                    spooled = self.spooled,
                    "database unavailable: CDRs spooled"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, spool = %self.spool.path().display(), "cannot write CDR spool; keeping records in memory");
                self.unsaved = all;
            }
        }
        if self.retry_at.is_none() {
            self.schedule_retry();
        }
    }

    /// Tries the database again: unsaved records first, then the spool.
    async fn recover(&mut self) {
        self.retry_at = None;
        let Some(store) = self.connected().await else {
            self.schedule_retry();
            return;
        };
        if !self.unsaved.is_empty() {
            let unsaved = std::mem::take(&mut self.unsaved);
            if let Outcome::Unavailable(rest) = self.insert_all(&store, unsaved).await {
                self.unsaved = rest;
                self.schedule_retry();
                return;
            }
        }
        if self.spooled > 0 {
            let contents = match self.spool.read().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, spool = %self.spool.path().display(), "cannot read CDR spool");
                    self.schedule_retry();
                    return;
                }
            };
            if let Err(e) = self.spool.reject_lines(&contents.bad_lines).await {
                tracing::error!(error = %e, "cannot keep unreadable spool lines; leaving the spool as is");
                self.schedule_retry();
                return;
            }
            if !contents.bad_lines.is_empty() {
                tracing::error!(
                    lines = contents.bad_lines.len(),
                    "unreadable CDR spool lines moved to the .rejected file"
                );
            }
            let n = contents.records.len();
            if let Outcome::Unavailable(_) = self.insert_all(&store, contents.records).await {
                // Keep the whole spool; what was committed is ignored on the next replay.
                self.schedule_retry();
                return;
            }
            if let Err(e) = self.spool.truncate().await {
                tracing::error!(error = %e, "cannot truncate CDR spool; it will be replayed again (duplicates are ignored)");
                self.schedule_retry();
                return;
            }
            tracing::info!(records = n, "CDR spool replayed into the database");
            self.spooled = 0;
        }
        self.backoff = self.config.retry_initial;
    }

    fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.retry_max);
    }

    /// The store, connecting first if the target is a URL not yet reached.
    async fn connected(&mut self) -> Option<Store> {
        if let Some(store) = &self.store {
            return Some(store.clone());
        }
        let url = self.url.as_deref()?;
        match Store::connect_with(url, &self.config.store_options).await {
            Ok(store) => {
                tracing::info!(backend = ?store.backend(), "CDR writer connected");
                self.store = Some(store.clone());
                Some(store)
            }
            Err(e) => {
                tracing::warn!(error = %e, "CDR database not reachable");
                None
            }
        }
    }

    /// Inserts records in batches; bad records go to the rejected file.
    async fn insert_all(&self, store: &Store, records: Vec<Row>) -> Outcome {
        let max = self.config.max_batch.max(1);
        let mut offset = 0;
        while offset < records.len() {
            let end = (offset + max).min(records.len());
            let chunk = records.get(offset..end).unwrap_or_default();
            match insert_rows(store, chunk).await {
                Ok(()) => self.count_stored(chunk),
                Err(e) if e.is_connection() => {
                    tracing::warn!(error = %e, "CDR insert failed: database unavailable");
                    return Outcome::Unavailable(records.into_iter().skip(offset).collect());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "CDR batch refused; inserting one by one");
                    for (i, record) in chunk.iter().enumerate() {
                        match insert_rows(store, std::slice::from_ref(record)).await {
                            Ok(()) => self.count_stored(std::slice::from_ref(record)),
                            Err(e) if e.is_connection() => {
                                return Outcome::Unavailable(
                                    records.into_iter().skip(offset + i).collect(),
                                );
                            }
                            Err(e) => self.reject(record, &e).await,
                        }
                    }
                }
            }
            offset = end;
        }
        Outcome::Done
    }

    fn count_stored(&self, rows: &[Row]) {
        let cdrs = rows.iter().filter(|r| matches!(r, Row::Cdr(_))).count();
        self.counters.stored.fetch_add(
            u64::try_from(cdrs).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    async fn reject(&self, record: &Row, err: &StoreError) {
        tracing::error!(uniqueid = %record.uniqueid(), kind = record.kind(), error = %err, "database refused the row; kept in the .rejected file");
        if let Err(e) = self
            .spool
            .reject_records(std::slice::from_ref(record), self.clock.now_unix_ms())
            .await
        {
            tracing::error!(uniqueid = %record.uniqueid(), kind = record.kind(), error = %e, "cannot write the .rejected file: record lost");
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
