//! Registration tokens, runner tokens and `kiln-runner status`, on the real binaries.

use std::time::Duration;

use kiln_tests::{bins, ControlPlane, Runner};

#[tokio::test]
async fn a_single_use_registration_token_is_refused_the_second_time() {
    let control_plane = ControlPlane::start().await;
    let token = control_plane.registration_token(1);
    let register = |dir: &std::path::Path| {
        std::process::Command::new(bins::path("kiln-runner"))
            .args([
                "register",
                "--server",
                &control_plane.url,
                "--name",
                "r",
                "--token",
                &token,
            ])
            .arg("--config-dir")
            .arg(dir)
            .output()
            .unwrap()
    };
    let scratch = control_plane.scratch();
    let first = register(&scratch.join("one"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = register(&scratch.join("two"));
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("registration token has no uses left"),
        "{stderr}"
    );
    assert!(
        !scratch.join("two/runner.yaml").exists(),
        "nothing written on refusal"
    );

    let runners: serde_json::Value = control_plane.get("/v1/runners").await;
    assert_eq!(runners.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_expired_registration_token_is_refused() {
    let control_plane = ControlPlane::start().await;
    let created = control_plane
        .post(
            "/v1/registration-tokens",
            &serde_json::json!({ "ttl_ms": 1 }),
        )
        .await;
    let token = created["token"].as_str().unwrap();
    let output = std::process::Command::new(bins::path("kiln-runner"))
        .args([
            "register",
            "--server",
            &control_plane.url,
            "--name",
            "r",
            "--token",
            token,
        ])
        .arg("--config-dir")
        .arg(control_plane.scratch().join("r"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("registration token has expired"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_admin_token_file_is_private_and_only_its_hash_is_stored() {
    use std::os::unix::fs::PermissionsExt as _;
    let control_plane = ControlPlane::start().await;
    let file = control_plane.data_dir().join("admin.token");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(control_plane.admin_token.starts_with("kiln_adm_"));
    let secret = &control_plane.admin_token["kiln_adm_".len()..];
    for name in ["kiln.db", "kiln.db-wal"] {
        let bytes = std::fs::read(control_plane.data_dir().join(name)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(secret),
            "{name} holds the admin token in clear"
        );
    }
    assert!(
        !control_plane.log().contains(secret),
        "the admin token was logged"
    );
}

#[tokio::test]
async fn runner_yaml_is_private_and_holds_no_registration_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let control_plane = ControlPlane::start().await;
    let runner = Runner::register(&control_plane, "box-1", &[]);
    let yaml = runner.config_dir().join("runner.yaml");
    let mode = std::fs::metadata(&yaml).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(text.contains("runner_token: \"kiln_rnr_"), "{text}");
    assert!(!text.contains("kiln_reg_"), "{text}");
}

#[tokio::test]
async fn a_wrong_runner_token_is_refused_and_the_runner_stops_at_once() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    let yaml = runner.config_dir().join("runner.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let start = text.find("kiln_rnr_").unwrap();
    let forged = format!(
        "{}kiln_rnr_{}{}",
        &text[..start],
        "0".repeat(64),
        &text[start + 73..]
    );
    std::fs::write(&yaml, forged).unwrap();
    runner.start();
    let status = runner.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(
        status.code(),
        Some(4),
        "exit code 4: refused by the control plane"
    );
    let log = runner.log();
    assert!(log.contains("runner token is not valid"), "{log}");
    assert!(log.contains("not retrying"), "{log}");
    let attempts = control_plane
        .log()
        .matches("runner token is not valid")
        .count();
    assert_eq!(attempts, 1, "one refused attempt, no retry storm");
}

#[tokio::test]
async fn status_reports_the_connection_and_says_when_no_daemon_runs() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-1", &[]);
    let before = runner.status();
    assert_eq!(before.status.code(), Some(3));
    runner.start_connected(&control_plane).await;
    let output = runner.status();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["name"], "box-1");
    assert_eq!(report["link"]["connected"], true);
    assert_eq!(report["running"].as_array().unwrap().len(), 0);
    runner.kill();
    assert_eq!(runner.status().status.code(), Some(3));
}

#[tokio::test]
async fn the_runner_refuses_to_run_as_root_unless_told_to() {
    let control_plane = ControlPlane::start().await;
    let runner = Runner::register(&control_plane, "box-1", &[]);
    let mut plain = runner
        .command(&["run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if nix::unistd::geteuid().is_root() {
        let output = plain.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("refusing to run as root"), "{stderr}");
        assert!(stderr.contains("--allow-root"), "{stderr}");
    } else {
        // Not root: nothing to refuse; the runner comes online.
        runner.wait_online(&control_plane).await;
        plain.kill().unwrap();
        plain.wait().unwrap();
    }
}
