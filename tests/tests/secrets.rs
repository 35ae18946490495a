//! Secrets: values of secret env vars never appear in the stored log (verbatim, base64, or
//! split across lines) nor in the API; the runner's own token never reaches the agent.

use std::time::Duration;

use base64::Engine as _;
use kiln_tests::control_plane::{lines_of, stdout_lines};
use kiln_tests::{git, ControlPlane, Runner};

const SECRET: &str = "sup3r-s3cret-value-42";

#[tokio::test]
async fn secret_values_are_redacted_from_every_line_and_hidden_by_the_api() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        echo "key=$API_KEY"
        echo "to stderr: $API_KEY" >&2
        printf 'split: sup3r-s3cr\net-value-42 after\n'
        printf 'xy%s' "$API_KEY" | base64 -w0; echo
        printf '%s' "$API_KEY" | base64 -w0; echo
        echo "nothing secret here"
    "#;
    let secret = format!("API_KEY={SECRET}");
    let id = control_plane.submit(&repo, &["--secret-env", &secret], script);
    let task = control_plane
        .wait_terminal(&id, Duration::from_secs(60))
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let events = control_plane.events(&id, 1).await;
    let all = serde_json::to_string(&events).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
    for leak in [SECRET, &encoded[..encoded.len() - 4], "sup3r-s3cr"] {
        assert!(!all.contains(leak), "{leak:?} leaked into the log: {all}");
    }
    let stdout = stdout_lines(&events);
    assert_eq!(stdout[0], "key=[redacted]");
    assert_eq!(stdout[1], "split: [redacted]");
    assert_eq!(
        stdout[2],
        "et-value-42 after".replace("et-value-42", ""),
        "the split tail is gone"
    );
    assert!(
        stdout[3].contains("[redacted]") && stdout[4].contains("[redacted]"),
        "{stdout:?}"
    );
    assert_eq!(stdout[5], "nothing secret here");
    assert_eq!(lines_of(&events, "stderr"), ["to stderr: [redacted]"]);

    let shown = serde_json::to_string(&control_plane.task(&id).await).unwrap();
    assert!(
        !shown.contains(SECRET),
        "the API never returns secret values: {shown}"
    );
    assert!(shown.contains("API_KEY"), "the names are shown: {shown}");
}

#[tokio::test]
async fn the_runner_token_and_config_never_reach_the_agent_environment() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    let yaml = std::fs::read_to_string(runner.config_dir().join("runner.yaml")).unwrap();
    let token = yaml
        .lines()
        .find(|l| l.starts_with("runner_token:"))
        .and_then(|l| l.split('"').nth(1))
        .unwrap()
        .to_owned();
    // The runner itself gets its token and config dir from the environment here.
    runner.start_with_env(&[
        ("KILN_RUNNER_TOKEN", &token),
        ("KILN_CONFIG_DIR", &runner.config_dir().to_string_lossy()),
    ]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "env");
    let task = control_plane
        .wait_terminal(&id, Duration::from_secs(60))
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let environment = stdout_lines(&control_plane.events(&id, 1).await);
    assert!(
        environment.iter().any(|l| l.starts_with("KILN_TASK_ID=")),
        "{environment:?}"
    );
    for line in &environment {
        assert!(
            !line.contains(&token[9..]),
            "the runner token reached the agent"
        );
        assert!(!line.starts_with("KILN_RUNNER_TOKEN="), "{line}");
        assert!(!line.starts_with("KILN_CONFIG_DIR="), "{line}");
    }
}
