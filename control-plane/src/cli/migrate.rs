//! `kiln migrate`: applies the database's pending migrations explicitly, with the data
//! dir locked so that no control plane runs meanwhile.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::data_dir::DataDir;
use crate::store::Database;

/// Migrates the database (`--database`, else the data dir's SQLite file) and reports what
/// was applied. SQLite is migrated with the data dir locked; PostgreSQL under the
/// migrator's advisory lock, so running replicas may stay up for additive migrations.
pub async fn migrate(
    data_dir: &DataDir,
    database_url: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let database = Database::from_arg(database_url, data_dir.database())?;
    let _lock = match database {
        Database::Sqlite(_) => Some(data_dir.lock().context(
            "cannot migrate while a control plane runs on this data dir; stop it first",
        )?),
        Database::Postgres(_) => None,
    };
    let migrated = database
        .migrate()
        .await
        .with_context(|| format!("cannot migrate database {database}"))?;
    if json {
        let report = serde_json::json!({
            "database": database.to_string(),
            "applied": migrated.applied,
            "version": migrated.version,
            "known": database.known_version(),
        });
        println!("{report}");
    } else if migrated.applied.is_empty() {
        println!(
            "{database}: up to date at schema version {}",
            migrated.version
        );
    } else {
        let applied: Vec<String> = migrated.applied.iter().map(i64::to_string).collect();
        println!(
            "{database}: applied {}; schema version {}",
            applied.join(", "),
            migrated.version
        );
    }
    Ok(ExitCode::SUCCESS)
}
