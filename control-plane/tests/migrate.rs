//! `kiln migrate` on the real binary: applies what is pending, is idempotent, and both it
//! and `kiln serve` refuse a database that a newer kiln migrated.

use std::process::{Command, Output};

use serde_json::Value;
use sqlx::{Connection as _, SqliteConnection};

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

#[tokio::test]
async fn migrate_applies_once_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = report(&kiln(&["migrate", "--json"], dir.path()));
    let known = first["known"].as_i64().expect("known version");
    let applied: Vec<i64> = serde_json::from_value(first["applied"].clone()).unwrap();
    assert_eq!(applied, (1..=known).collect::<Vec<_>>());
    assert_eq!(first["version"], known);
    let again = report(&kiln(&["migrate", "--json"], dir.path()));
    assert_eq!(again["applied"], serde_json::json!([]));

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

    for args in [&["migrate"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let refused = kiln(args, dir.path());
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
