//! What a migration run did, and the refusal to run against a schema newer than the build.

use super::StoreError;

/// What a migration run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Versions applied by this run, oldest first.
    pub applied: Vec<i64>,
    /// The schema version now.
    pub version: i64,
}

impl Migrated {
    /// Refuses a database whose newest applied version (`applied` is oldest first) is past
    /// `known`: this build would misread it.
    pub fn refuse_newer(applied: &[i64], known: i64) -> Result<(), StoreError> {
        match applied.last() {
            Some(&found) if found > known => Err(StoreError::NewerSchema { found, known }),
            _ => Ok(()),
        }
    }

    /// The run that took the database from `before` to `after` applied versions.
    pub fn between(before: &[i64], after: &[i64]) -> Self {
        Self {
            applied: after
                .iter()
                .copied()
                .filter(|v| !before.contains(v))
                .collect(),
            version: after.last().copied().unwrap_or(0),
        }
    }
}
