//! Tokens on the real binaries: rotation without re-registering, and no token ever in a log.

use std::time::Duration;

use kiln_tests::{git, wait, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

fn runner_token(runner: &Runner) -> String {
    let yaml =
        std::fs::read_to_string(runner.config_dir().join("runner.yaml")).expect("runner.yaml");
    let line = yaml
        .lines()
        .find(|l| l.starts_with("runner_token:"))
        .expect("token line");
    line.split('"').nth(1).expect("quoted token").to_owned()
}

async fn connect_status(control_plane: &ControlPlane, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/runners/connect", control_plane.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_rotated_token_is_saved_by_the_runner_and_the_old_one_retired() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let old = runner_token(&runner);
    control_plane.kiln_ok(&["runners", "rotate", &runner.id]);
    let new = wait::until("runner.yaml to hold a new token", TIMEOUT, || async {
        let token = runner_token(&runner);
        (token != old).then_some(token)
    })
    .await;
    assert!(new.starts_with("kiln_rnr_"));
    wait::until("the old token to be refused", TIMEOUT, || async {
        (connect_status(&control_plane, &old).await == 401).then_some(())
    })
    .await;
    assert_ne!(
        connect_status(&control_plane, &new).await,
        401,
        "the new token is accepted"
    );

    // After a restart the runner connects with the saved token and works.
    runner.kill();
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo after rotation");
    assert_eq!(
        control_plane.wait_terminal(&id, TIMEOUT).await["state"],
        "succeeded"
    );
}

/// A secret env value given to the task below; it must appear in no log either.
const SECRET_VALUE: &str = "supersecret-value-42";

#[tokio::test]
async fn no_token_or_secret_appears_in_any_log_at_any_level() {
    // Every level of every crate: the WebSocket library's own tracing prints whole frames
    // (assignments with secret values, rotations with new tokens) at trace.
    let control_plane = ControlPlane::start_logging("trace").await;
    let registration = control_plane.registration_token(5);
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_with_env(&[("KILN_LOG", "trace")]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let secret = format!("API_KEY={SECRET_VALUE}");
    let id = control_plane.submit(&repo, &["--secret-env", &secret], "echo hello");
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let old = runner_token(&runner);
    control_plane.kiln_ok(&["runners", "rotate", &runner.id]);
    let rotated = wait::until("the rotation", TIMEOUT, || async {
        let token = runner_token(&runner);
        (token != old).then_some(token)
    })
    .await;
    // A refused connection with a wrong token is logged too; its value must not be.
    let forged = format!("kiln_rnr_{}", "ab".repeat(32));
    let _ = reqwest::Client::new()
        .get(format!("{}/v1/runners/connect", control_plane.url))
        .bearer_auth(&forged)
        .send()
        .await;
    let logs = format!("{}\n{}", control_plane.log(), runner.log());
    assert!(
        logs.contains("request refused"),
        "the refusal itself is logged"
    );
    assert!(
        control_plane.log().contains("sqlx::query"),
        "KILN_LOG took effect: the database driver's debug records are there"
    );
    assert!(
        !logs.contains(SECRET_VALUE),
        "the task's secret value appears in a log"
    );
    for token in [
        &control_plane.admin_token,
        &registration,
        &old,
        &rotated,
        &forged,
    ] {
        let secret = &token[9..];
        assert!(
            !logs.contains(secret),
            "a token's secret part appears in a log"
        );
    }
}
