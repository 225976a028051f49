//! [`StoreError`]: what can go wrong talking to the database, split so that
//! callers can tell "the database is not reachable now, try later / spool"
//! ([`StoreError::is_connection`]) from "the database refused this data".

use std::path::PathBuf;

/// Errors of [`crate::Store`] operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite://…` nor `postgres://…`, or is malformed.
    #[error("bad database URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The directory for a SQLite file could not be created.
    #[error("cannot create database directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database could not be reached or dropped the connection (I/O,
    /// TLS, pool timeout, server shutting down, SQLite file busy or unopenable).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A migration failed for a reason other than connectivity.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database rejected a statement or its data.
    #[error("database rejected the request: {0}")]
    Data(#[source] sqlx::Error),
    /// A stored row could not be turned back into our types.
    #[error("stored row has a bad {column}: {reason}")]
    CorruptRow {
        column: &'static str,
        reason: String,
    },
}

impl StoreError {
    /// True when the failure is about reaching the database, not about the
    /// data: retrying later may succeed.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::CreateDir { .. }
        )
    }

    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        if is_connection_error(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Data(err)
        }
    }

    pub(crate) fn from_migrate(err: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match err {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)
                if is_connection_error(&e) =>
            {
                StoreError::Unavailable(e)
            }
            other => StoreError::Migrate(other),
        }
    }
}

/// Classifies a sqlx error as a connectivity problem.
fn is_connection_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else { return false };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i32>().is_ok_and(is_unavailable_sqlite_code)
            } else {
                is_unavailable_pg_code(&code)
            }
        }
        _ => false,
    }
}

/// SQLite (extended) result codes that mean "not usable now" rather than
/// "bad data".
fn is_unavailable_sqlite_code(code: i32) -> bool {
    // The primary code is the low byte of the extended code.
    matches!(
        code & 0xff,
        5 /* BUSY */ | 6 /* LOCKED */ | 8 /* READONLY */ | 10 /* IOERR */
            | 13 /* FULL */ | 14 /* CANTOPEN */ | 15 /* PROTOCOL */
    )
}

/// PostgreSQL SQLSTATEs that mean "not reachable now" rather than "bad data".
fn is_unavailable_pg_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("28") // invalid authorization: fix config, then it works
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code == "53300" // too many connections
        || code == "3D000" // database does not exist (yet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_pool_timeouts_are_connection_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(StoreError::from_sqlx(sqlx::Error::Io(io)).is_connection());
        assert!(StoreError::from_sqlx(sqlx::Error::PoolTimedOut).is_connection());
    }

    #[test]
    fn missing_rows_and_decode_failures_are_data_errors() {
        assert!(!StoreError::from_sqlx(sqlx::Error::RowNotFound).is_connection());
        assert!(!StoreError::from_sqlx(sqlx::Error::ColumnNotFound("x".into())).is_connection());
    }

    #[test]
    fn shutdown_and_busy_codes_mean_unavailable_but_constraint_codes_do_not() {
        assert!(is_unavailable_pg_code("57P01"));
        assert!(is_unavailable_pg_code("08006"));
        assert!(!is_unavailable_pg_code("23505")); // unique_violation
        assert!(!is_unavailable_pg_code("22021")); // bad byte sequence
        assert!(is_unavailable_sqlite_code(5)); // SQLITE_BUSY
        assert!(is_unavailable_sqlite_code(261)); // SQLITE_BUSY_RECOVERY
        assert!(!is_unavailable_sqlite_code(2067)); // SQLITE_CONSTRAINT_UNIQUE
    }
}
