//! `kiln migrate`: applies the database's pending migrations explicitly, with the data
//! dir locked so that no control plane runs meanwhile.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::data_dir::DataDir;
use crate::store::SqliteStore;

/// Migrates the data dir's database and reports what was applied.
pub async fn migrate(data_dir: &DataDir, json: bool) -> anyhow::Result<ExitCode> {
    let _lock = data_dir
        .lock()
        .context("cannot migrate while a control plane runs on this data dir; stop it first")?;
    let database = data_dir.database();
    let migrated = SqliteStore::migrate(&database)
        .await
        .with_context(|| format!("cannot migrate database {}", database.display()))?;
    if json {
        let report = serde_json::json!({
            "database": database,
            "applied": migrated.applied,
            "version": migrated.version,
            "known": SqliteStore::known_version(),
        });
        println!("{report}");
    } else if migrated.applied.is_empty() {
        println!(
            "{}: up to date at schema version {}",
            database.display(),
            migrated.version
        );
    } else {
        let applied: Vec<String> = migrated.applied.iter().map(i64::to_string).collect();
        println!(
            "{}: applied {}; schema version {}",
            database.display(),
            applied.join(", "),
            migrated.version
        );
    }
    Ok(ExitCode::SUCCESS)
}
