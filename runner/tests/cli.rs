//! The `kiln-runner` binary's refusals, each with its documented exit code and a message
//! that names the file, key or value at fault.

use std::process::{Command, Output};

fn runner(args: &[&str], config_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln-runner"))
        .args(args)
        .arg("--config-dir")
        .arg(config_dir)
        .env_remove("KILN_SERVER_URL")
        .env_remove("KILN_RUNNER_TOKEN")
        .env_remove("KILN_MAX_CONCURRENT_AGENTS")
        .env("KILN_ALLOW_ROOT", "true")
        .output()
        .expect("run kiln-runner")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_config_value_of_the_wrong_type_names_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("runner.yaml");
    std::fs::write(&yaml, "max_concurrent_agents: plenty\n").unwrap();
    let output = runner(&["run"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    for needle in [
        "max_concurrent_agents",
        "plenty",
        &yaml.display().to_string(),
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
}

#[test]
fn run_before_register_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = runner(&["run"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("kiln-runner register"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn status_without_a_daemon_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let output = runner(&["status", "--json"], dir.path());
    assert_eq!(output.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["running"], false);
}

#[test]
fn register_with_a_malformed_server_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = runner(
        &[
            "register",
            "--server",
            "localhost:7700",
            "--token",
            "kiln_reg_x",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("has no scheme"),
        "{}",
        stderr(&output)
    );
}
