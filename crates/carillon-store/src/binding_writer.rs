//! [`BindingWriter`]: write-behind of registrar binding changes.
//!
//! The signalling task calls [`BindingWriterHandle::submit`], which only
//! queues. The writer task drains the queue, coalesces changes to the same
//! `(aor, contact)` (see `bindings::Coalescer`), and applies them in
//! transactions of at most `max_batch` changes, after a short batch window
//! (group commit) unless someone is waiting in [`BindingWriterHandle::flush`]. If the database is
//! unavailable the pending changes stay queued (still coalescing) and are
//! retried with backoff; changes the database refuses as bad data are logged
//! and dropped one by one so they cannot block the rest. Expired bindings
//! are purged every `purge_interval`.
//!
//! ```text
//!  submit ─► channel ─► coalesce ─► apply (tx) ──ok──► answer flush waiters
//!                          ▲            │ unavailable
//!                          └── backoff ─┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use carillon_cdr::WallClock;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::batch;
use crate::bindings::{BindingChange, Coalescer};
use crate::clock::SystemClock;
use crate::store::{Store, StoreOptions};

/// Tuning of a [`BindingWriter`].
#[derive(Debug, Clone)]
pub struct BindingWriterConfig {
    /// Most changes per transaction.
    pub max_batch: usize,
    /// After the first change of a quiet period, how long to keep
    /// collecting before writing (group commit: under load one transaction
    /// and a few multi-row statements carry hundreds of registrations,
    /// instead of a database round trip each). A flush request skips it.
    pub batch_window: Duration,
    /// How often expired bindings are deleted.
    pub purge_interval: Duration,
    /// First wait before retrying after the database was unavailable.
    pub retry_initial: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
}

impl Default for BindingWriterConfig {
    fn default() -> Self {
        BindingWriterConfig {
            // Measured with `benches/examples/binding_write_count.rs`
            // (SQLite): CPU per written row 3.7 µs in batches of 200 (a
            // 20 ms window at 10,000 registrations/s), 3.1 µs in batches
            // of 1,000. Changes not yet written when the process dies
            // are at most one window old (a SIGTERM flushes them), and a
            // phone puts its binding back at its next refresh.
            max_batch: 2000,
            batch_window: Duration::from_millis(100),
            purge_interval: Duration::from_secs(60),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }
}

enum Msg {
    Change(BindingChange),
    Flush(oneshot::Sender<()>),
}

/// Starts binding writer tasks.
#[derive(Debug)]
pub struct BindingWriter;

impl BindingWriter {
    /// Spawns the writer with default tuning and the system clock.
    pub fn spawn(store: Store) -> BindingWriterHandle {
        BindingWriter::spawn_with(store, BindingWriterConfig::default(), SystemClock)
    }

    /// Spawns the writer on the current tokio runtime.
    pub fn spawn_with(
        store: Store,
        config: BindingWriterConfig,
        clock: impl WallClock + Send + Sync + 'static,
    ) -> BindingWriterHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let target = Target::Connected(store);
        tokio::spawn(run(target, config, Arc::new(clock), rx));
        BindingWriterHandle { tx }
    }

    /// Spawns a writer for a database that was not reachable yet: changes
    /// queue (coalescing) while it retries the connection with backoff; once
    /// connected (migrations run), the store is sent on `connected` so the
    /// caller can restore what was stored before the outage.
    pub fn spawn_unconnected(
        url: String,
        options: StoreOptions,
        config: BindingWriterConfig,
        clock: impl WallClock + Send + Sync + 'static,
        connected: oneshot::Sender<Store>,
    ) -> BindingWriterHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let target = Target::Url {
            url,
            options,
            connected: Some(connected),
        };
        tokio::spawn(run(target, config, Arc::new(clock), rx));
        BindingWriterHandle { tx }
    }
}

/// The database a writer writes to.
enum Target {
    Connected(Store),
    /// Not reached yet.
    Url {
        url: String,
        options: StoreOptions,
        connected: Option<oneshot::Sender<Store>>,
    },
}

impl Target {
    /// The store, connecting first if needed; `None` while unreachable.
    async fn store(&mut self) -> Option<Store> {
        match self {
            Target::Connected(s) => Some(s.clone()),
            Target::Url {
                url,
                options,
                connected,
            } => match Store::connect_with(url, options).await {
                Ok(store) => {
                    tracing::info!(backend = ?store.backend(), "binding writer connected to the database");
                    if let Some(tx) = connected.take() {
                        let _ = tx.send(store.clone());
                    }
                    *self = Target::Connected(store.clone());
                    Some(store)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "binding database still unreachable");
                    None
                }
            },
        }
    }
}

/// Queues binding changes for a [`BindingWriter`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BindingWriterHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl BindingWriterHandle {
    /// Queues a change without waiting.
    pub fn submit(&self, change: BindingChange) {
        if self.tx.send(Msg::Change(change)).is_err() {
            tracing::error!("binding writer is gone; change dropped");
        }
    }

    /// Returns once every change submitted before this call is committed.
    /// Waits as long as the database stays unavailable; returns at once if
    /// the writer task is gone.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(
    mut target: Target,
    config: BindingWriterConfig,
    clock: Arc<dyn WallClock + Send + Sync>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let max_batch = config.max_batch.max(1);
    let mut pending = Coalescer::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut retry_at: Option<Instant> = None;
    let mut backoff = config.retry_initial;
    let mut purge = tokio::time::interval(config.purge_interval.max(Duration::from_millis(1)));
    purge.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut open = true;
    loop {
        tokio::select! {
            msg = rx.recv(), if open => match msg {
                None => open = false,
                Some(msg) => {
                    batch::gather(&mut rx, msg, config.batch_window, |msg| {
                        match msg {
                            Msg::Change(c) => pending.push(c),
                            Msg::Flush(w) => waiters.push(w),
                        }
                        !waiters.is_empty() || pending.len() >= max_batch
                    })
                    .await;
                }
            },
            () = sleep_until_opt(retry_at) => retry_at = None,
            _ = purge.tick() => {
                let Some(store) = target.store().await else { continue };
                match store.purge_expired(clock.now_unix_secs()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(bindings = n, "purged expired bindings"),
                    Err(e) => tracing::warn!(error = %e, "binding purge failed"),
                }
            }
        }
        if retry_at.is_some() {
            continue;
        }
        if !pending.is_empty() {
            let changes = pending.take();
            let applied = match target.store().await {
                Some(store) => apply(&store, changes, max_batch).await,
                None => Some(changes),
            };
            match applied {
                None => backoff = config.retry_initial,
                Some(rest) => {
                    tracing::warn!(
                        changes = rest.len(),
                        "database unavailable; binding changes kept for retry"
                    );
                    for c in rest {
                        pending.push(c);
                    }
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(config.retry_max);
                    continue;
                }
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if !open && pending.is_empty() {
            break;
        }
    }
}

/// Applies changes in transactions of `max_batch`; returns the changes not
/// committed because the database became unavailable.
async fn apply(
    store: &Store,
    changes: Vec<BindingChange>,
    max_batch: usize,
) -> Option<Vec<BindingChange>> {
    let mut offset = 0;
    while offset < changes.len() {
        let end = (offset + max_batch).min(changes.len());
        let chunk = changes.get(offset..end).unwrap_or_default();
        match store.apply_bindings(chunk).await {
            Ok(()) => {}
            Err(e) if e.is_connection() => {
                tracing::debug!(error = %e, "binding batch failed");
                return Some(changes.into_iter().skip(offset).collect());
            }
            Err(e) => {
                tracing::warn!(error = %e, "binding batch refused; applying one by one");
                for (i, change) in chunk.iter().enumerate() {
                    match store.apply_bindings(std::slice::from_ref(change)).await {
                        Ok(()) => {}
                        Err(e) if e.is_connection() => {
                            return Some(changes.into_iter().skip(offset + i).collect());
                        }
                        Err(e) => {
                            tracing::error!(error = %e, change = ?change, "binding change refused by the database; dropped")
                        }
                    }
                }
            }
        }
        offset = end;
    }
    None
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
