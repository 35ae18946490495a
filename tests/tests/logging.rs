//! Structured logs on the real binaries: with `--log-format json` every line both daemons
//! write is one JSON object with a level, a target and fields.

use std::time::Duration;

use kiln_tests::{git, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Parses every line of `log` as a JSON log record and returns the messages.
fn messages(name: &str, log: &str) -> Vec<String> {
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name} wrote a line that is not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(record[field].is_string(), "{name}: no {field} in {line}");
        }
        let message = record["fields"]["message"].as_str().unwrap_or_default();
        messages.push(message.to_owned());
    }
    messages
}

#[tokio::test]
async fn both_daemons_write_one_json_object_per_line() {
    let control_plane = ControlPlane::start_with(&["--log-format", "json"]).await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_with(&["--log-format", "json"]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &[], "echo hello");
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded");

    let server = messages("kiln serve", &control_plane.log());
    assert!(
        server.iter().any(|m| m == "task assigned"),
        "the assignment is logged: {server:?}"
    );
    let daemon = messages("kiln-runner run", &runner.log());
    assert!(
        daemon.iter().any(|m| m == "attempt accepted"),
        "the acceptance is logged: {daemon:?}"
    );
}
