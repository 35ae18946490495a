//! TLS end to end: `kiln serve --tls-cert --tls-key`, a runner and the CLI trusting a
//! private CA with `--ca-cert`, and clear refusals for a client that does not trust it.

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{bins, git, ControlPlane, Runner};

#[tokio::test]
async fn a_task_runs_over_https_and_wss_with_a_private_ca() {
    let control_plane = ControlPlane::start_tls().await;
    assert!(
        control_plane.url.starts_with("https://"),
        "{}",
        control_plane.url
    );
    let mut runner = Runner::register(&control_plane, "box", &[]);
    let yaml = std::fs::read_to_string(runner.config_dir().join("runner.yaml")).unwrap();
    assert!(
        yaml.contains("ca_cert:"),
        "the CA is remembered for `run`: {yaml}"
    );
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo over tls > tls.txt; echo done");
    let task = control_plane
        .wait_terminal(&id, Duration::from_secs(60))
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        task["outcome"]["result"]["bundle_uploaded"], true,
        "uploads use TLS too"
    );
    assert_eq!(stdout_lines(&control_plane.events(&id, 1).await), ["done"]);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused_clearly() {
    let control_plane = ControlPlane::start_tls().await;
    let token = control_plane.registration_token(1);
    let output = std::process::Command::new(bins::path("kiln-runner"))
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
        .arg(control_plane.scratch().join("untrusting"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    let cli = std::process::Command::new(bins::path("kiln"))
        .args([
            "tasks",
            "--server",
            &control_plane.url,
            "--token",
            &control_plane.admin_token,
        ])
        .env_remove("KILN_CA_CERT")
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
