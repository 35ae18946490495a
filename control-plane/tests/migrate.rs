//! `kiln migrate` on the real binary, on SQLite and on a real PostgreSQL server: applies
//! what is pending, is idempotent, and both it and `kiln serve` refuse a database that a
//! newer kiln migrated.

use std::process::{Command, Output};

use kiln_control_plane::testing::postgres::TestPostgres;
use serde_json::Value;
use sqlx::{Connection as _, PgConnection, SqliteConnection};

fn kiln(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_DATA_DIR", data_dir)
        .env_remove("KILN_ADMIN_TOKEN")
        .output()
        .expect("run kiln")
}

fn report(output: &Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON report")
}

/// Runs `kiln migrate --json` twice on `database` (extra arguments) and checks the first
/// run applied every known version and the second nothing; returns the known version.
fn migrate_twice(database: &[&str], data_dir: &std::path::Path) -> i64 {
    let args = [&["migrate", "--json"][..], database].concat();
    let first = report(&kiln(&args, data_dir));
    let known = first["known"].as_i64().expect("known version");
    let applied: Vec<i64> =
        serde_json::from_value(first["applied"].clone()).expect("applied versions");
    assert_eq!(applied, (1..=known).collect::<Vec<_>>());
    assert_eq!(first["version"], known);
    let again = report(&kiln(&args, data_dir));
    assert_eq!(again["applied"], serde_json::json!([]));
    known
}

/// Checks that `kiln migrate` and `kiln serve` both refuse the database (a newer kiln
/// recorded version `known + 1` in it).
fn assert_newer_refused(database: &[&str], data_dir: &std::path::Path, known: i64) {
    for args in [&["migrate"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let refused = kiln(&[args, database].concat(), data_dir);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {refused:?}");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains(&format!(
                "version {}, newer than this kiln knows ({known})",
                known + 1
            )),
            "{args:?}: {said}"
        );
    }
}

#[tokio::test]
async fn migrate_applies_once_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let known = migrate_twice(&[], dir.path());

    // A newer kiln has been here.
    let database = dir.path().join("kiln.db");
    let mut connection = SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (?, 'from the future', TRUE, x'00', 0)",
    )
    .bind(known + 1)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    assert_newer_refused(&[], dir.path(), known);
}

#[tokio::test]
async fn postgres_migrates_once_and_a_newer_schema_is_refused() {
    let server = TestPostgres::start();
    let url = server.fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let database = ["--database", url.as_str()];
    let known = migrate_twice(&database, dir.path());

    let mut connection = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'from the future', TRUE, '\\x00', 0)",
    )
    .bind(known + 1)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    assert_newer_refused(&database, dir.path(), known);
}

#[test]
fn a_database_url_kiln_cannot_use_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let refused = kiln(
        &["migrate", "--database", "mysql://root:hunter2@db/kiln"],
        dir.path(),
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("mysql://root:***@db/kiln"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}
