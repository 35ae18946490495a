//! Secrets: values of secret env vars never appear in the stored log (verbatim, base64, or
//! split across lines) nor in the API; the runner's own token never reaches the agent.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

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

/// A secret that every JSON encoder escapes: a quote, a backslash, and a character that
/// `ensure_ascii` encoders write as `\u00e9`.
const ESCAPED_SECRET: &str = r#"pa"ss\wörd-9f3k2"#;

/// A stand-in Claude Code printing stream-json (Python's `json.dumps`, as Claude's SDK
/// writers escape) whose text, tool call, tool result and final result carry the secret.
const ESCAPING_CLAUDE: &str = r#"
cat > /dev/null
python3 - <<'PY'
import json, os
key = os.environ["API_KEY"]
for line in [
    {"type": "system", "subtype": "init", "session_id": "s1", "model": "sonnet", "tools": ["Bash"]},
    {"type": "assistant", "message": {"id": "m1", "content": [
        {"type": "text", "text": "The key is " + key},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "echo " + key, key: 1}}]}},
    {"type": "user", "message": {"content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "printed " + key, "is_error": False}]}},
    {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1,
     "result": "Done with " + key, "total_cost_usd": 0.01, "usage": {"input_tokens": 1, "output_tokens": 1}},
]:
    print(json.dumps(line))
PY
"#;

/// Every event chunk the control plane stored (the `event_chunks` table of its SQLite
/// file), as one text. The task's own row holds the secret by design (it is sent to the
/// runner); the events must not.
async fn stored_events(control_plane: &ControlPlane) -> String {
    let url = format!(
        "sqlite://{}?mode=ro",
        control_plane.data_dir().join("kiln.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM event_chunks")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    bodies.concat()
}

#[tokio::test]
async fn secrets_written_with_json_escapes_are_redacted_from_parsed_agent_events() {
    let control_plane = ControlPlane::start().await;
    let bin = control_plane.scratch().join("bin");
    kiln_tests::agents::install(&bin, "claude", ESCAPING_CLAUDE);
    let path = kiln_tests::agents::path_with(&bin);
    let mut runner = Runner::register_with_env(&control_plane, "box", &[], &[("PATH", &path)]);
    runner.start_with_env(&[("PATH", &path)]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let secret = format!("API_KEY={ESCAPED_SECRET}");
    let repo_arg = repo.to_string_lossy();
    let output = control_plane.kiln_ok(&[
        "submit",
        "--json",
        "--repo",
        &repo_arg,
        "--agent",
        "claude-code",
        "--secret-env",
        &secret,
        "--prompt",
        "go",
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&output).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = control_plane
        .wait_terminal(&id, Duration::from_secs(60))
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let events = control_plane.events(&id, 1).await;
    let agent: Vec<&serde_json::Value> = events.iter().filter(|e| e["kind"] == "agent").collect();
    assert!(agent.len() >= 4, "the stream was parsed: {events:?}");
    let shown = serde_json::to_string(&events).unwrap();
    assert!(shown.contains("The key is [redacted]"), "{shown}");
    assert!(shown.contains("Done with [redacted]"), "{shown}");
    let logs = control_plane.kiln_ok(&["logs", "--json", &id]);
    let stored = stored_events(&control_plane).await;
    for (place, text) in [
        ("the API", shown.as_bytes()),
        ("kiln logs", logs.as_bytes()),
        ("the stored events", stored.as_bytes()),
    ] {
        for form in [ESCAPED_SECRET, "ss\\\\w\\u00f6rd-9f3k2", "w\u{f6}rd-9f3k2"] {
            assert!(
                memchr::memmem::find(text, form.as_bytes()).is_none(),
                "{form:?} is in {place}"
            );
        }
    }
}

/// A secret long enough that its base64 wraps over several 76-column lines.
const LONG_SECRET: &str = "k1-long-secret-value-that-is-wrapped-over-lines-by-base64-0123456789";

#[tokio::test]
async fn secrets_split_late_cut_at_the_line_limit_or_wrapped_in_base64_are_redacted() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let script = r#"
        head=$(printf '%s' "$API_KEY" | cut -c1-30); tail=$(printf '%s' "$API_KEY" | cut -c31-)
        printf 'token: %s\n' "$head"; sleep 1; printf '%s after the pause\n' "$tail"
        printf 'x%.0s' $(seq 16370); printf '%s\n' "$API_KEY"
        printf 'header %s trailer' "$API_KEY" | base64
        echo end
    "#;
    let secret = format!("API_KEY={LONG_SECRET}");
    let id = control_plane.submit(&repo, &["--secret-env", &secret], script);
    let task = control_plane
        .wait_terminal(&id, Duration::from_secs(60))
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let stdout = stdout_lines(&control_plane.events(&id, 1).await);
    assert_eq!(stdout[0], "token: [redacted]", "{:?}", &stdout[..2]);
    assert_eq!(stdout[1], " after the pause", "{:?}", &stdout[..2]);
    assert!(
        stdout[2].contains("[redacted]"),
        "the cut line: {}",
        &stdout[2][16300..]
    );
    assert_eq!(stdout.last().map(String::as_str), Some("end"));
    let all = stdout.concat();
    for piece in [&LONG_SECRET[..12], &LONG_SECRET[30..42], &LONG_SECRET[..16]] {
        assert!(!all.contains(piece), "{piece:?} leaked");
    }
    let wrapped: String = stdout[3..stdout.len() - 1].concat();
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("header {LONG_SECRET} trailer"));
    for window in encoded.as_bytes()[12..encoded.len() - 16].chunks(12) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(
            !wrapped.contains(window),
            "{window:?} of the base64 is left: {wrapped}"
        );
    }
}
