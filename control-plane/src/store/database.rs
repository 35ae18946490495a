//! Which database a control plane keeps its store in: the data dir's SQLite file, or a
//! PostgreSQL server named by URL (which several replicas may share).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Migrated, PostgresStore, SqliteStore, Store, StoreError};

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server; the URL may hold a password, so it is never shown whole.
    Postgres(String),
}

/// A `--database` value kiln cannot use.
#[derive(Debug, thiserror::Error)]
#[error("--database {shown}: expected a postgres:// or postgresql:// URL (leave it unset for the data dir's SQLite file)")]
pub struct UnknownDatabase {
    /// The value, with any password hidden.
    shown: String,
}

impl Database {
    /// The database `--database` names, or the data dir's SQLite file when it is unset.
    pub fn from_arg(url: Option<&str>, sqlite_file: PathBuf) -> Result<Self, UnknownDatabase> {
        match url {
            None => Ok(Self::Sqlite(sqlite_file)),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres(url.to_owned()))
            }
            Some(other) => Err(UnknownDatabase {
                shown: redacted(other),
            }),
        }
    }

    /// Opens the store, applying pending migrations.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            Self::Postgres(url) => Arc::new(PostgresStore::open(url).await?),
        })
    }

    /// Applies pending migrations and says what was done.
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        match self {
            Self::Sqlite(path) => SqliteStore::migrate(path).await,
            Self::Postgres(url) => PostgresStore::migrate(url).await,
        }
    }

    /// The newest schema version this build knows for this backend.
    pub fn known_version(&self) -> i64 {
        match self {
            Self::Sqlite(_) => SqliteStore::known_version(),
            Self::Postgres(_) => PostgresStore::known_version(),
        }
    }

    /// True for the PostgreSQL backend, which several replicas may share.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// The database as shown in logs and errors: a path, or a URL without its password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

/// `scheme://user:secret@host/db?password=secret` shown as
/// `scheme://user:***@host/db?password=***`.
fn redacted(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut shown = match head.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _secret)) => format!("{scheme}://{user}:***@{host}"),
                None => head.to_owned(),
            },
            None => head.to_owned(),
        },
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        let database = Database::from_arg(
            Some("postgres://kiln:hunter2@db.example:5432/kiln"),
            PathBuf::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            database.to_string(),
            "postgres://kiln:***@db.example:5432/kiln"
        );
        let refused = Database::from_arg(Some("mysql://root:hunter2@db/kiln"), PathBuf::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("mysql://root:***@db/kiln"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
        let in_query = Database::from_arg(
            Some("postgres:///kiln?host=/run/pg&user=kiln&password=hunter2"),
            PathBuf::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            in_query.to_string(),
            "postgres:///kiln?host=/run/pg&user=kiln&password=***"
        );
    }

    #[test]
    fn unset_means_the_data_dirs_sqlite_file() {
        let database = Database::from_arg(None, PathBuf::from("/data/kiln.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(database, Database::Sqlite(PathBuf::from("/data/kiln.db")));
        assert!(!database.is_shared());
    }
}
