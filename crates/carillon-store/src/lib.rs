//! Persistence for Carillon: registrar bindings and call detail records in
//! SQLite (the default) or PostgreSQL, through sqlx.
//!
//! This is an I/O crate (tokio, sqlx, files). It owns:
//! - [`Store`]: the connection pool, the embedded migrations
//!   (`migrations/sqlite`, `migrations/postgres`) and every SQL statement;
//! - [`BindingWriter`]: write-behind of registrar binding changes, so the
//!   signalling loop never awaits the database;
//! - [`CdrWriter`]: batched CDR inserts with a local spool file that keeps
//!   records while the database is unreachable and replays them later; the
//!   callers' callback requests (table `callback_requests`) take the same
//!   path;
//! - the queue engine's tables (`store/queue.rs`): `queue_members`
//!   (dynamic members and pauses, restored at start) and `queue_log`
//!   (app_queue's queue log), written and read by [`Store`] methods
//!   (not run by the binary until the `Queue` application is wired);
//! - the voicemail tables (`voicemail_messages`, `voicemail_pins`):
//!   [`Store::apply_voicemail`] and the loads of the switch's index;
//! - [`SystemClock`]: the real [`carillon_cdr::WallClock`].
//!
//! It does not own REGISTER semantics (`carillon-registrar`) nor the record
//! model (`carillon-cdr`). Queries are built at run time (`sqlx::query` with
//! binds), so building needs no `DATABASE_URL`.
//!
//! Tests: SQLite tests always run (temporary directories). PostgreSQL tests
//! run when `CARILLON_TEST_PG_URL` is set; `tests/pg-setup.sh` (run as root)
//! installs and starts a server and prints that URL. The PostgreSQL outage
//! test points a writer at a closed local port, then opens a TCP forwarder to
//! the real server on it, closes it under live connections and opens it
//! again, so no shared server is ever stopped.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod batch;
mod binding_writer;
mod bindings;
mod cdr_writer;
mod clock;
mod error;
mod spool;
mod store;

pub use binding_writer::{BindingWriter, BindingWriterConfig, BindingWriterHandle};
pub use bindings::{BindingChange, BindingRow};
pub use cdr_writer::{
    CdrFlushReport, CdrTarget, CdrWriter, CdrWriterConfig, CdrWriterHandle, CdrWriterStats,
};
pub use clock::SystemClock;
pub use error::StoreError;
pub use spool::SpoolEntry;
pub use store::queue::{
    utc_text, QueueLogQuery, QueueLogRow, StoredQueueMember, QUEUE_LOG_ROWS_PER_STATEMENT,
};
pub use store::{
    Backend, CallbackQuery, CdrQuery, CdrSearch, Store, StoreOptions, StoredCallbackRequest,
};
