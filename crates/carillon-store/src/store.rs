//! [`Store`]: one sqlx pool on SQLite or PostgreSQL, the embedded
//! migrations, and every SQL statement of the project.
//!
//! URL forms: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`
//! (parent directory and file are created, WAL journal) and
//! `postgres://user:pass@host:port/db` (or `postgresql://`).
//! Statements use `$n` placeholders, which both backends accept, and are
//! checked at run time, not at build time.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use carillon_cdr::{CallRecord, CallbackRequest, Disposition};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::bindings::{BindingChange, BindingRow};
use crate::error::StoreError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a connection before reporting the database
    /// unavailable.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Filter for [`Store::fetch_cdrs`]: records whose start lies in
/// `[since_ms, until_ms)`, oldest first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrQuery {
    pub since_ms: i64,
    pub until_ms: i64,
    pub limit: u32,
}

impl Default for CdrQuery {
    fn default() -> Self {
        CdrQuery {
            since_ms: i64::MIN,
            until_ms: i64::MAX,
            limit: 1000,
        }
    }
}

/// Filter and page of [`Store::search_cdrs`] (the management API's CDR
/// query): records whose start lies in `[since_ms, until_ms)`, with the
/// given `src`, `dst` and `disposition` when set, oldest start first
/// (ties by uniqueid, so pages are stable), skipping `offset`, at most
/// `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrSearch {
    pub since_ms: i64,
    pub until_ms: i64,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub disposition: Option<Disposition>,
    pub limit: u32,
    pub offset: u64,
}

impl Default for CdrSearch {
    fn default() -> Self {
        CdrSearch {
            since_ms: i64::MIN,
            until_ms: i64::MAX,
            src: None,
            dst: None,
            disposition: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// Filter for [`Store::fetch_callback_requests`]: requests made in
/// `[since_ms, until_ms)`, with `status` if given, oldest first, at most
/// `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    pub since_ms: i64,
    pub until_ms: i64,
    /// Only requests in this status (`pending` when just stored).
    pub status: Option<String>,
    pub limit: u32,
}

impl Default for CallbackQuery {
    fn default() -> Self {
        CallbackQuery {
            since_ms: i64::MIN,
            until_ms: i64::MAX,
            status: None,
            limit: 1000,
        }
    }
}

/// A stored callback request: the request, its row id and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCallbackRequest {
    /// Row id, assigned by the database.
    pub id: i64,
    /// `pending` until something works on it.
    pub status: String,
    pub request: CallbackRequest,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A connection pool with migrations applied. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend;
/// the body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

// The queue engine's tables (after the macro: the module uses it).
pub(crate) mod queue;

const UPSERT_BINDING_HEAD: &str = "INSERT INTO bindings \
    (aor, contact, instance, reg_id, source, path, call_id, cseq, expires_at, q, user_agent) ";
const UPSERT_BINDING_TAIL: &str = " ON CONFLICT (aor, contact) DO UPDATE SET \
    instance = excluded.instance, reg_id = excluded.reg_id, source = excluded.source, \
    path = excluded.path, call_id = excluded.call_id, cseq = excluded.cseq, \
    expires_at = excluded.expires_at, q = excluded.q, user_agent = excluded.user_agent";
/// Most rows in one multi-row upsert (11 bound values each: 704 values,
/// far below SQLite's 32,766 and PostgreSQL's 65,535 limits).
pub const UPSERT_ROWS_PER_STATEMENT: usize = 64;
/// Values bound per upserted row.
const UPSERT_VALUES_PER_ROW: usize = 11;

/// The upsert statement for `rows` rows (1 to [`UPSERT_ROWS_PER_STATEMENT`])
/// on `backend`, written once per row count for the process: building it
/// per batch with `QueryBuilder` formatted every placeholder (~1,800
/// instructions per row, callgrind on `binding_write_count`, 8 % of that
/// example's total). SQLite gets anonymous `?` placeholders:
/// numbered ones make sqlx look each one up by name, a walk of the whole
/// parameter list per value (measured 14 µs per row instead of 3).
fn upsert_sql(backend: Backend, rows: usize) -> &'static str {
    type Table = std::sync::OnceLock<Vec<String>>;
    static SQLITE: Table = Table::new();
    static POSTGRES: Table = Table::new();
    let (table, numbered) = match backend {
        Backend::Sqlite => (&SQLITE, false),
        Backend::Postgres => (&POSTGRES, true),
    };
    let all = table.get_or_init(|| {
        (0..=UPSERT_ROWS_PER_STATEMENT)
            .map(|n| {
                let mut sql = String::from(UPSERT_BINDING_HEAD);
                sql.push_str("VALUES ");
                for r in 0..n {
                    sql.push_str(if r == 0 { "(" } else { ", (" });
                    for v in 0..UPSERT_VALUES_PER_ROW {
                        if v > 0 {
                            sql.push_str(", ");
                        }
                        if numbered {
                            sql.push('$');
                            sql.push_str(&(r * UPSERT_VALUES_PER_ROW + v + 1).to_string());
                        } else {
                            sql.push('?');
                        }
                    }
                    sql.push(')');
                }
                sql.push_str(UPSERT_BINDING_TAIL);
                sql
            })
            .collect()
    });
    all.get(rows).map_or("", String::as_str)
}

/// One statement of [`Store::apply_bindings`].
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Upserts(Vec<&'a BindingRow>),
    Remove { aor: &'a str, contact: &'a str },
    RemoveAor { aor: &'a str },
}

/// Groups changes into statements, in order: consecutive upserts share a
/// statement until the row limit or a repeated `(aor, contact)` (one
/// statement may not touch a row twice: PostgreSQL refuses it, and the
/// order of the two would be lost).
fn plan_binding_statements(changes: &[BindingChange]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut run: Vec<&BindingRow> = Vec::new();
    let mut keys: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for change in changes {
        match change {
            BindingChange::Upsert(b) => {
                let key = (&*b.aor, &*b.contact);
                if run.len() >= UPSERT_ROWS_PER_STATEMENT || keys.contains(&key) {
                    steps.push(Step::Upserts(std::mem::take(&mut run)));
                    keys.clear();
                }
                keys.insert(key);
                run.push(b);
            }
            BindingChange::Remove { aor, contact } => {
                if !run.is_empty() {
                    steps.push(Step::Upserts(std::mem::take(&mut run)));
                    keys.clear();
                }
                steps.push(Step::Remove { aor, contact });
            }
            BindingChange::RemoveAor { aor } => {
                if !run.is_empty() {
                    steps.push(Step::Upserts(std::mem::take(&mut run)));
                    keys.clear();
                }
                steps.push(Step::RemoveAor { aor });
            }
        }
    }
    if !run.is_empty() {
        steps.push(Step::Upserts(run));
    }
    steps
}
const REMOVE_BINDING: &str = "DELETE FROM bindings WHERE aor = $1 AND contact = $2";
const REMOVE_AOR: &str = "DELETE FROM bindings WHERE aor = $1";
const SELECT_BINDINGS: &str = "SELECT aor, contact, instance, reg_id, source, path, call_id, \
    cseq, expires_at, q, user_agent FROM bindings WHERE expires_at > $1 ORDER BY aor, contact";
const PURGE_BINDINGS: &str = "DELETE FROM bindings WHERE expires_at <= $1";

const INSERT_CDR_HEAD: &str = "INSERT INTO cdr \
    (uniqueid, linkedid, start_ms, answer_ms, end_ms, duration, billsec, src, dst, clid, \
    dcontext, channel, dstchannel, trunk, disposition, hangup_cause, accountcode, userfield, recording) ";
const INSERT_CDR_TAIL: &str = " ON CONFLICT (uniqueid) DO NOTHING";
/// Most CDRs in one multi-row insert (19 bound values each).
pub const CDR_ROWS_PER_STATEMENT: usize = 32;
const SELECT_CDRS: &str = "SELECT uniqueid, linkedid, start_ms, answer_ms, end_ms, src, dst, \
    clid, dcontext, channel, dstchannel, trunk, disposition, hangup_cause, accountcode, userfield, \
    recording FROM cdr WHERE start_ms >= $1 AND start_ms < $2 ORDER BY start_ms, uniqueid LIMIT $3";
const SEARCH_CDRS: &str = "SELECT uniqueid, linkedid, start_ms, answer_ms, end_ms, src, dst, \
    clid, dcontext, channel, dstchannel, trunk, disposition, hangup_cause, accountcode, userfield, \
    recording FROM cdr WHERE start_ms >= $1 AND start_ms < $2 \
    AND (CAST($3 AS TEXT) IS NULL OR src = $3) AND (CAST($4 AS TEXT) IS NULL OR dst = $4) \
    AND (CAST($5 AS TEXT) IS NULL OR disposition = $5) \
    ORDER BY start_ms, uniqueid LIMIT $6 OFFSET $7";
const COUNT_CDRS: &str = "SELECT COUNT(*) FROM cdr";

const INSERT_CALLBACK_HEAD: &str = "INSERT INTO callback_requests \
    (uniqueid, caller_num, number, alt_number, language, requested_at, context, exten) ";
const INSERT_CALLBACK_TAIL: &str = " ON CONFLICT (uniqueid, requested_at) DO NOTHING";
/// Most callback requests in one multi-row insert (8 bound values each).
pub const CALLBACK_ROWS_PER_STATEMENT: usize = 64;
const SELECT_CALLBACKS: &str = "SELECT id, uniqueid, caller_num, number, alt_number, language, \
    requested_at, context, exten, status FROM callback_requests \
    WHERE requested_at >= $1 AND requested_at < $2 AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
    ORDER BY requested_at, id LIMIT $4";

/// A binding row as the database returns it.
#[derive(sqlx::FromRow)]
struct BindingDbRow {
    aor: String,
    contact: String,
    instance: Option<String>,
    reg_id: Option<i64>,
    source: Option<String>,
    path: String,
    call_id: String,
    cseq: i64,
    expires_at: i64,
    q: Option<f32>,
    user_agent: Option<String>,
}

impl TryFrom<BindingDbRow> for BindingRow {
    type Error = StoreError;

    fn try_from(r: BindingDbRow) -> Result<Self, StoreError> {
        let reg_id =
            r.reg_id
                .map(u32::try_from)
                .transpose()
                .map_err(|e| StoreError::CorruptRow {
                    column: "reg_id",
                    reason: e.to_string(),
                })?;
        let cseq = u32::try_from(r.cseq).map_err(|e| StoreError::CorruptRow {
            column: "cseq",
            reason: e.to_string(),
        })?;
        let path: Vec<String> =
            serde_json::from_str(&r.path).map_err(|e| StoreError::CorruptRow {
                column: "path",
                reason: e.to_string(),
            })?;
        Ok(BindingRow {
            aor: r.aor.into(),
            contact: r.contact.into(),
            instance: r.instance,
            reg_id,
            source: r.source.map(Into::into),
            path,
            call_id: r.call_id.into(),
            cseq,
            expires_at: r.expires_at,
            q: r.q,
            user_agent: r.user_agent.map(Into::into),
        })
    }
}

/// A CDR row as the database returns it.
#[derive(sqlx::FromRow)]
struct CdrDbRow {
    uniqueid: String,
    linkedid: String,
    start_ms: i64,
    answer_ms: Option<i64>,
    end_ms: i64,
    src: String,
    dst: String,
    clid: String,
    dcontext: String,
    channel: String,
    dstchannel: String,
    trunk: Option<String>,
    disposition: String,
    hangup_cause: i32,
    accountcode: Option<String>,
    userfield: Option<String>,
    recording: Option<String>,
}

impl TryFrom<CdrDbRow> for CallRecord {
    type Error = StoreError;

    fn try_from(r: CdrDbRow) -> Result<Self, StoreError> {
        let disposition =
            Disposition::from_str(&r.disposition).map_err(|e| StoreError::CorruptRow {
                column: "disposition",
                reason: e.to_string(),
            })?;
        let hangup_cause = u16::try_from(r.hangup_cause).map_err(|e| StoreError::CorruptRow {
            column: "hangup_cause",
            reason: e.to_string(),
        })?;
        Ok(CallRecord {
            uniqueid: r.uniqueid,
            linkedid: r.linkedid,
            start_ms: r.start_ms,
            answer_ms: r.answer_ms,
            end_ms: r.end_ms,
            src: r.src,
            dst: r.dst,
            clid: r.clid,
            dcontext: r.dcontext,
            channel: r.channel,
            dstchannel: r.dstchannel,
            trunk: r.trunk,
            disposition,
            hangup_cause,
            accountcode: r.accountcode,
            userfield: r.userfield,
            recording: r.recording,
        })
    }
}

/// A callback request row as the database returns it.
#[derive(sqlx::FromRow)]
struct CallbackDbRow {
    id: i64,
    uniqueid: String,
    caller_num: String,
    number: String,
    alt_number: Option<String>,
    language: String,
    requested_at: i64,
    context: Option<String>,
    exten: Option<String>,
    status: String,
}

impl From<CallbackDbRow> for StoredCallbackRequest {
    fn from(r: CallbackDbRow) -> Self {
        StoredCallbackRequest {
            id: r.id,
            status: r.status,
            request: CallbackRequest {
                uniqueid: r.uniqueid,
                caller_num: r.caller_num,
                number: r.number,
                alt_number: r.alt_number,
                language: r.language,
                requested_at: r.requested_at,
                context: r.context,
                exten: r.exten,
            },
        }
    }
}

/// Which backend a URL names, and for SQLite the file path.
enum Target<'a> {
    Sqlite(&'a str),
    Postgres,
}

fn parse_url(url: &str) -> Result<Target<'_>, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(invalid("no file path after sqlite://"));
        }
        Ok(Target::Sqlite(path))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Target::Postgres)
    } else {
        Err(invalid(
            "expected sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB",
        ))
    }
}

impl Store {
    /// Connects with default [`StoreOptions`] and runs the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, &StoreOptions::default()).await
    }

    /// Connects and runs the migrations of the URL's backend.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let pool = match parse_url(url)? {
            Target::Sqlite(path) => {
                let path = Path::new(path);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(dir).await.map_err(|source| {
                        StoreError::CreateDir {
                            path: dir.to_path_buf(),
                            source,
                        }
                    })?;
                }
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                SQLITE_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(StoreError::from_migrate)?;
                Pool::Sqlite(pool)
            }
            Target::Postgres => {
                let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                POSTGRES_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(StoreError::from_migrate)?;
                Pool::Postgres(pool)
            }
        };
        Ok(Store { pool })
    }

    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection; later calls fail with
    /// [`StoreError::Unavailable`].
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Bindings that have not expired at `now_unix` (seconds), ordered by
    /// AOR then contact.
    pub async fn load_bindings(&self, now_unix: i64) -> Result<Vec<BindingRow>, StoreError> {
        let rows: Vec<BindingDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SELECT_BINDINGS).bind(now_unix).fetch_all(pool).await
        })
        .map_err(StoreError::from_sqlx)?;
        rows.into_iter().map(BindingRow::try_from).collect()
    }

    /// Applies the changes in order, in one transaction: all or nothing.
    /// Runs of upserts with distinct `(aor, contact)` keys go out as
    /// multi-row statements of up to [`UPSERT_ROWS_PER_STATEMENT`] rows (one
    /// round trip to the database each instead of one per row).
    pub async fn apply_bindings(&self, changes: &[BindingChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let steps = plan_binding_statements(changes);
        let backend = self.backend();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
            for step in steps {
                match step {
                    Step::Upserts(rows) => {
                        let mut paths = Vec::with_capacity(rows.len());
                        for b in &rows {
                            paths.push(if b.path.is_empty() {
                                std::borrow::Cow::Borrowed("[]")
                            } else {
                                std::borrow::Cow::Owned(serde_json::to_string(&b.path).map_err(|e| {
                                    StoreError::CorruptRow { column: "path", reason: e.to_string() }
                                })?)
                            });
                        }
                        let mut q = sqlx::query(upsert_sql(backend, rows.len()));
                        for (b, path) in rows.iter().zip(&paths) {
                            q = q
                                .bind(&*b.aor)
                                .bind(&*b.contact)
                                .bind(b.instance.as_deref())
                                .bind(b.reg_id.map(i64::from))
                                .bind(b.source.as_deref())
                                .bind(path.as_ref())
                                .bind(&*b.call_id)
                                .bind(i64::from(b.cseq))
                                .bind(b.expires_at)
                                .bind(b.q)
                                .bind(b.user_agent.as_deref());
                        }
                        q.execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                    }
                    Step::Remove { aor, contact } => {
                        sqlx::query(REMOVE_BINDING)
                            .bind(aor)
                            .bind(contact)
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::from_sqlx)?;
                    }
                    Step::RemoveAor { aor } => {
                        sqlx::query(REMOVE_AOR)
                            .bind(aor)
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::from_sqlx)?;
                    }
                }
            }
            tx.commit().await.map_err(StoreError::from_sqlx)
        })
    }

    /// Deletes bindings that expired at or before `now_unix` (seconds);
    /// returns how many.
    pub async fn purge_expired(&self, now_unix: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(PURGE_BINDINGS)
                .bind(now_unix)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::from_sqlx)
    }

    /// Inserts the records in one transaction, skipping any whose uniqueid
    /// is already stored; returns how many were new.
    /// Records go out as multi-row statements of up to
    /// [`CDR_ROWS_PER_STATEMENT`]; a uniqueid already stored is skipped.
    pub async fn insert_cdrs(&self, records: &[CallRecord]) -> Result<u64, StoreError> {
        let refs: Vec<&CallRecord> = records.iter().collect();
        self.insert_cdr_refs(&refs).await
    }

    /// [`Store::insert_cdrs`] of borrowed records (the writer's batches mix
    /// CDRs and callback requests).
    pub(crate) async fn insert_cdr_refs(&self, records: &[&CallRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
            let mut inserted = 0;
            for chunk in records.chunks(CDR_ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(INSERT_CDR_HEAD);
                q.push_values(chunk, |mut v, r| {
                    v.push_bind(r.uniqueid.as_str())
                        .push_bind(r.linkedid.as_str())
                        .push_bind(r.start_ms)
                        .push_bind(r.answer_ms)
                        .push_bind(r.end_ms)
                        .push_bind(r.duration())
                        .push_bind(r.billsec())
                        .push_bind(r.src.as_str())
                        .push_bind(r.dst.as_str())
                        .push_bind(r.clid.as_str())
                        .push_bind(r.dcontext.as_str())
                        .push_bind(r.channel.as_str())
                        .push_bind(r.dstchannel.as_str())
                        .push_bind(r.trunk.as_deref())
                        .push_bind(r.disposition.as_str())
                        .push_bind(i32::from(r.hangup_cause))
                        .push_bind(r.accountcode.as_deref())
                        .push_bind(r.userfield.as_deref())
                        .push_bind(r.recording.as_deref());
                });
                q.push(INSERT_CDR_TAIL);
                let done = q.build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                inserted += done.rows_affected();
            }
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            Ok(inserted)
        })
    }

    /// Number of stored CDRs.
    pub async fn cdr_count(&self) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(COUNT_CDRS).fetch_one(pool).await
        })
        .map_err(StoreError::from_sqlx)?;
        u64::try_from(count).map_err(|e| StoreError::CorruptRow {
            column: "count",
            reason: e.to_string(),
        })
    }

    /// CDRs matching the query, oldest start first.
    pub async fn fetch_cdrs(&self, query: &CdrQuery) -> Result<Vec<CallRecord>, StoreError> {
        let rows: Vec<CdrDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SELECT_CDRS)
                .bind(query.since_ms)
                .bind(query.until_ms)
                .bind(i64::from(query.limit))
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from_sqlx)?;
        rows.into_iter().map(CallRecord::try_from).collect()
    }

    /// CDRs matching the search, oldest start first, one page of it.
    pub async fn search_cdrs(&self, search: &CdrSearch) -> Result<Vec<CallRecord>, StoreError> {
        let offset = i64::try_from(search.offset).unwrap_or(i64::MAX);
        let rows: Vec<CdrDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SEARCH_CDRS)
                .bind(search.since_ms)
                .bind(search.until_ms)
                .bind(search.src.as_deref())
                .bind(search.dst.as_deref())
                .bind(search.disposition.map(Disposition::as_str))
                .bind(i64::from(search.limit))
                .bind(offset)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from_sqlx)?;
        rows.into_iter().map(CallRecord::try_from).collect()
    }

    /// Inserts the callback requests in one transaction (status
    /// `pending`), skipping any already stored (same uniqueid and
    /// requested_at, as after a spool replay); returns how many were new.
    pub async fn insert_callback_requests(
        &self,
        requests: &[CallbackRequest],
    ) -> Result<u64, StoreError> {
        let refs: Vec<&CallbackRequest> = requests.iter().collect();
        self.insert_callback_refs(&refs).await
    }

    /// [`Store::insert_callback_requests`] of borrowed requests.
    pub(crate) async fn insert_callback_refs(
        &self,
        requests: &[&CallbackRequest],
    ) -> Result<u64, StoreError> {
        if requests.is_empty() {
            return Ok(0);
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from_sqlx)?;
            let mut inserted = 0;
            for chunk in requests.chunks(CALLBACK_ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(INSERT_CALLBACK_HEAD);
                q.push_values(chunk, |mut v, r| {
                    v.push_bind(r.uniqueid.as_str())
                        .push_bind(r.caller_num.as_str())
                        .push_bind(r.number.as_str())
                        .push_bind(r.alt_number.as_deref())
                        .push_bind(r.language.as_str())
                        .push_bind(r.requested_at)
                        .push_bind(r.context.as_deref())
                        .push_bind(r.exten.as_deref());
                });
                q.push(INSERT_CALLBACK_TAIL);
                let done = q.build().execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                inserted += done.rows_affected();
            }
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            Ok(inserted)
        })
    }

    /// Callback requests matching the query, oldest first.
    pub async fn fetch_callback_requests(
        &self,
        query: &CallbackQuery,
    ) -> Result<Vec<StoredCallbackRequest>, StoreError> {
        let rows: Vec<CallbackDbRow> = on_pool!(self, pool => {
            sqlx::query_as(SELECT_CALLBACKS)
                .bind(query.since_ms)
                .bind(query.until_ms)
                .bind(query.status.as_deref())
                .bind(i64::from(query.limit))
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from_sqlx)?;
        Ok(rows.into_iter().map(StoredCallbackRequest::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upsert_for_n_rows_has_n_times_eleven_placeholders_in_order() {
        let pg = |n| upsert_sql(Backend::Postgres, n);
        assert!(pg(1).contains("VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT"));
        assert!(
            pg(3).contains("($23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33) ON CONFLICT")
        );
        assert!(!pg(3).contains("$34"));
        let full = pg(UPSERT_ROWS_PER_STATEMENT);
        assert!(full.contains(&format!("${}) ON", UPSERT_ROWS_PER_STATEMENT * 11)));
        assert_eq!(pg(UPSERT_ROWS_PER_STATEMENT + 1), "");
        let lite = upsert_sql(Backend::Sqlite, 2);
        assert!(lite.contains("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT"));
        assert!(!lite.contains('$'));
    }

    #[test]
    fn sqlite_urls_yield_the_file_path_without_query() {
        assert!(matches!(
            parse_url("sqlite://var/c.db?mode=rwc"),
            Ok(Target::Sqlite("var/c.db"))
        ));
        assert!(matches!(
            parse_url("sqlite:///abs/c.db"),
            Ok(Target::Sqlite("/abs/c.db"))
        ));
        assert!(matches!(
            parse_url("postgresql://u@h/db"),
            Ok(Target::Postgres)
        ));
    }

    #[test]
    fn upsert_runs_are_grouped_and_split_at_removes_repeats_and_the_row_limit() {
        let row = |aor: &str, contact: &str| BindingRow {
            aor: aor.into(),
            contact: contact.into(),
            instance: None,
            reg_id: None,
            source: None,
            path: vec![],
            call_id: "c".into(),
            cseq: 1,
            expires_at: 10,
            q: None,
            user_agent: None,
        };
        let mut changes = vec![
            BindingChange::Upsert(row("a", "1")),
            BindingChange::Upsert(row("b", "1")),
            BindingChange::Upsert(row("a", "1")),
            BindingChange::Remove {
                aor: "b".into(),
                contact: "1".into(),
            },
            BindingChange::Upsert(row("c", "1")),
            BindingChange::RemoveAor { aor: "c".into() },
        ];
        for i in 0..(UPSERT_ROWS_PER_STATEMENT + 1) {
            changes.push(BindingChange::Upsert(row("d", &i.to_string())));
        }
        let sizes: Vec<String> = plan_binding_statements(&changes)
            .iter()
            .map(|s| match s {
                Step::Upserts(rows) => format!("U{}", rows.len()),
                Step::Remove { .. } => "R".into(),
                Step::RemoveAor { .. } => "A".into(),
            })
            .collect();
        assert_eq!(
            sizes,
            [
                "U2",
                "U1",
                "R",
                "U1",
                "A",
                &format!("U{UPSERT_ROWS_PER_STATEMENT}"),
                "U1"
            ]
        );
    }

    #[test]
    fn unknown_schemes_and_empty_paths_are_rejected() {
        assert!(matches!(
            parse_url("mysql://x"),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_url("sqlite://"),
            Err(StoreError::InvalidUrl { .. })
        ));
    }
}

mod voicemail;
