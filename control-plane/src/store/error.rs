//! Errors of the store and the reasons a registration is refused.

use std::fmt;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or was unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The writer thread's connection failed (`sqlite/writer`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A row held a value this version cannot read.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table of the row.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The referenced record does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of record.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The runner asked to change an attempt that is not its own.
    #[error("attempt {attempt} of task {task} is not assigned to runner {runner}")]
    NotYours {
        /// The task.
        task: String,
        /// The attempt.
        attempt: u32,
        /// The runner that asked.
        runner: String,
    },
    /// The attempt has ended (it reported `finished`, or was lost or cancelled): it accepts
    /// no more events or uploads.
    #[error("attempt {attempt} of task {task} has ended: it accepts no more {what}")]
    Ended {
        /// The task.
        task: String,
        /// The attempt.
        attempt: u32,
        /// What it was sent: `events`, `bundle`, `diff`.
        what: String,
    },
    /// The disk that holds the database has (almost) no space left.
    #[error("the disk holding {path} has {free} bytes free, under the {needed} a write needs")]
    DiskFull {
        /// The database's directory.
        path: String,
        /// Bytes free for kiln.
        free: u64,
        /// The least kept free.
        needed: u64,
    },
    /// The transaction a grouped write was part of could not begin or commit.
    #[error("database error: {0}")]
    GroupFailed(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// A newer kiln migrated the database: this one would misread it.
    #[error("the database's schema is version {found}, newer than this kiln knows ({known}): run the newer kiln, or upgrade this one")]
    NewerSchema {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

/// Why a registration token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationRefusal {
    /// No such token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// All of its uses are spent.
    UsedUp,
}

impl fmt::Display for RegistrationRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "registration token is not valid",
            Self::Expired => "registration token has expired",
            Self::UsedUp => "registration token has no uses left",
        })
    }
}

/// SQLite's message for `SQLITE_FULL`, which the group writer's errors carry as text.
const SQLITE_FULL_MESSAGE: &str = "database or disk is full";

/// PostgreSQL's SQLSTATE for a full disk (`disk_full`).
const POSTGRES_DISK_FULL: &str = "53100";

/// SQLite's primary result code for a full disk (`SQLITE_FULL`).
const SQLITE_FULL_CODE: &str = "13";

impl StoreError {
    /// True when the write failed because the database's disk is full: nothing was stored,
    /// and nothing will be until space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(error)) => {
                matches!(
                    error.code().as_deref(),
                    Some(POSTGRES_DISK_FULL | SQLITE_FULL_CODE)
                ) || error.message().contains(SQLITE_FULL_MESSAGE)
            }
            Self::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => {
                error.code == rusqlite::ErrorCode::DiskFull
            }
            Self::GroupFailed(message) => message.contains(SQLITE_FULL_MESSAGE),
            Self::DiskFull { .. } => true,
            _ => false,
        }
    }
}
