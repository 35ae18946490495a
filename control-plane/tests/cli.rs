//! The `kiln` binary's refusals: bad input, no server, no token, each with its documented
//! exit code and a message that names what is wrong.

use std::process::{Command, Output};

fn kiln(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_DATA_DIR", data_dir)
        .env_remove("KILN_SERVER_URL")
        .env_remove("KILN_ADMIN_TOKEN")
        .output()
        .expect("run kiln")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn submit_without_a_command_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = kiln(
        &["submit", "--repo", ".", "--token", "kiln_adm_x"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no agent command"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there in a test sandbox.
    let output = kiln(
        &[
            "tasks",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "kiln_adm_x",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot reach control plane at http://127.0.0.1:9"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_admin_token_says_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let output = kiln(&["tasks", "--server", "http://127.0.0.1:9"], dir.path());
    assert_eq!(output.status.code(), Some(5));
    let message = stderr(&output);
    assert!(message.contains("no admin token"), "{message}");
    assert!(
        message.contains(&dir.path().join("admin.token").display().to_string()),
        "{message}"
    );
}

#[test]
fn errors_are_json_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let output = kiln(
        &["tasks", "--json", "--server", "http://127.0.0.1:9"],
        dir.path(),
    );
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["exit_code"], 5);
    assert!(error["error"].as_str().unwrap().contains("no admin token"));
}
