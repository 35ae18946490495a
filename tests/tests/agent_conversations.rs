//! An agent's conversation across runs, on the real binaries with `kiln-fake-agent`
//! replaying real transcripts: the completion signal counts only in the agent's own
//! words; a rate limit is waited out and the conversation resumed within the same attempt
//! (and cancel or the timeout still end it); `--continue` resumes the recorded
//! conversation in the loop's next iteration and in a session's next task.

use std::time::Duration;

use kiln_tests::agents::{argv_of, AgentFleet};
use kiln_tests::{sessions, wait};

const TIMEOUT: Duration = Duration::from_secs(90);

/// The id in the usage-limit transcript's `init`.
const LIMITED_SESSION: &str = "232d6957-45aa-465f-968e-824a5ff69f1c";

/// What the runner tells a conversation resumed after a rate limit
/// (runner/src/attempt/rate_limit.rs).
const RESUME_PROMPT: &str =
    "The rate limit that stopped you has reset. Continue the task where you left off.\n";

fn resumes(argv: &[String], flag: &str, id: &str) -> bool {
    argv.windows(2).any(|w| w[0] == flag && w[1] == id)
}

#[tokio::test]
async fn the_completion_signal_is_not_taken_from_the_echo_of_the_prompt() {
    let s = AgentFleet::start().await;
    let fake = s.fake("gemini", &["gemini/stdin-web-search-oneshot.jsonl"]);
    let signal = "<promise>COMPLETE</promise>";
    let prompt = format!("Find the capital, then print {signal} when done.");
    let id = s.submit(
        "gemini",
        &fake,
        &[
            "--prompt",
            &prompt,
            "--completion-signal",
            signal,
            "--max-iterations",
            "2",
        ],
    );
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(
        (task["state"].as_str(), task["outcome"]["stop"].as_str()),
        (Some("failed"), Some("iterations_exhausted")),
        "gemini echoed the prompt, signal included, but never said it: {task}"
    );
    let runs = fake.recorded();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["stdin"], prompt);

    let claude = s.fake("claude", &["claude/permission-allow-2.1.226.jsonl"]);
    let id = s.submit(
        "claude-code",
        &claude,
        &[
            "--prompt",
            "Make hello.txt",
            "--completion-signal",
            "Created `hello.txt`",
            "--max-iterations",
            "3",
        ],
    );
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["outcome"]["stop"], "completed", "{task}");
    assert_eq!(claude.recorded().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_the_conversation_resumed_in_the_same_attempt() {
    let s = AgentFleet::start().await;
    let fake = s
        .fake(
            "limited",
            &[
                "claude/usage-limit-oauth-2.1.289.jsonl",
                "claude/permission-allow-2.1.226.jsonl",
            ],
        )
        .resetting_in(2);
    let id = s.submit("claude-code", &fake, &["--prompt", "Make hello.txt"]);
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["attempt"], 1, "the wait used up no attempt: {task}");
    let runs = fake.recorded();
    assert_eq!(runs.len(), 2, "one run, then one resumed run");
    assert!(!argv_of(&runs[0]).contains(&"--resume".to_owned()));
    assert!(
        resumes(&argv_of(&runs[1]), "--resume", LIMITED_SESSION),
        "{:?}",
        argv_of(&runs[1])
    );
    assert_eq!(runs[1]["stdin"], RESUME_PROMPT);
    let events = s.control_plane.events(&id, 1).await;
    let waited = events
        .iter()
        .find(|e| e["kind"] == "status" && e["phase"] == "rate_limited")
        .expect("a rate_limited status event");
    assert!(waited["until"].as_i64().is_some(), "{waited}");
    let logs = String::from_utf8_lossy(&s.control_plane.kiln(&["logs", &id]).stderr).into_owned();
    assert!(
        logs.contains("waiting for the agent's rate limit until"),
        "{logs}"
    );
    assert_eq!(task["outcome"]["agent_session"], LIMITED_SESSION);
    assert_eq!(
        task["attempts"][0]["rate_limited_until"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn cancel_and_the_timeout_end_a_rate_limit_wait() {
    let s = AgentFleet::start().await;
    let limited = ["claude/usage-limit-oauth-2.1.289.jsonl"];
    let fake = s.fake("waits", &limited).resetting_in(3_600);
    let id = s.submit("claude-code", &fake, &["--prompt", "Make hello.txt"]);
    let reason = wait::until("the task to wait for the rate limit", TIMEOUT, || async {
        let task = s.control_plane.task(&id).await;
        let reason = task["waiting_reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        reason.contains("rate limit").then_some(reason)
    })
    .await;
    assert!(
        reason.starts_with("waiting for the agent's rate limit until"),
        "{reason}"
    );
    let shown = s.control_plane.kiln_ok(&["task", &id]);
    assert!(
        shown.contains("waiting   waiting for the agent's rate limit until"),
        "{shown}"
    );
    s.control_plane.kiln_ok(&["cancel", &id]);
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "cancelled", "{task}");
    assert!(
        task["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled while waiting for the agent's rate limit"),
        "{task}"
    );
    assert_eq!(fake.recorded().len(), 1, "nothing ran after the cancel");

    let short = s.fake("short", &limited).resetting_in(3_600);
    let id = s.submit(
        "claude-code",
        &short,
        &["--prompt", "Make hello.txt", "--timeout", "10m"],
    );
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(
        (task["state"].as_str(), task["outcome"]["stop"].as_str()),
        (Some("failed"), Some("rate_limited")),
        "a reset after the timeout is not waited for: {task}"
    );
    assert!(task["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("You've hit your session limit"));
}

#[tokio::test]
async fn continue_resumes_the_recorded_conversation_in_the_next_iteration() {
    let s = AgentFleet::start().await;
    let cases = [
        (
            "claude-code",
            "claude/permission-allow-2.1.226.jsonl",
            "--resume",
            "25f505f3-79a7-4119-8ffa-23ce6efc7560",
        ),
        (
            "codex",
            "codex/success-0.142.5.jsonl",
            "resume",
            "019fe041-fb59-77a0-bce2-6d07f49e917c",
        ),
        (
            "gemini",
            "gemini/stdin-web-search-oneshot.jsonl",
            "--resume",
            "b35ecd66-4ed8-43cd-b73b-9dd2eb9b2f4e",
        ),
    ];
    for (preset, fixture, flag, conversation) in cases {
        let loop_args = [
            "--prompt",
            "Keep going.",
            "--completion-signal",
            "NEVER SAID",
            "--max-iterations",
            "2",
        ];
        let fake = s.fake(&format!("{preset}-continue"), &[fixture]);
        let mut args = loop_args.to_vec();
        args.push("--continue");
        let id = s.submit(preset, &fake, &args);
        let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
        assert_eq!(task["outcome"]["stop"], "iterations_exhausted", "{task}");
        let runs = fake.recorded();
        assert_eq!(runs.len(), 2, "{preset}");
        assert!(!resumes(&argv_of(&runs[0]), flag, conversation));
        assert!(
            resumes(&argv_of(&runs[1]), flag, conversation),
            "{preset}: {:?}",
            argv_of(&runs[1])
        );
        let fresh = s.fake(&format!("{preset}-fresh"), &[fixture]);
        let id = s.submit(preset, &fresh, &loop_args);
        s.control_plane.wait_terminal(&id, TIMEOUT).await;
        assert!(
            !resumes(&argv_of(&fresh.recorded()[1]), flag, conversation),
            "{preset}: without --continue each iteration starts afresh"
        );
    }
}

#[tokio::test]
async fn continue_resumes_the_sessions_last_conversation_in_its_next_task() {
    let s = AgentFleet::start().await;
    let session = sessions::create(&s.control_plane, &s.repo, &[]);
    let fake = s.fake("session", &["claude/permission-allow-2.1.226.jsonl"]);
    let args = ["--continue", "--prompt", "Next step."];
    let first = s.submit_in(&session, "claude-code", &fake, &args);
    let task = s.control_plane.wait_terminal(&first, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let second = s.submit_in(&session, "claude-code", &fake, &args);
    let task = s.control_plane.wait_terminal(&second, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let runs = fake.recorded();
    assert_eq!(runs.len(), 2);
    assert!(!argv_of(&runs[0]).contains(&"--resume".to_owned()));
    assert!(
        resumes(
            &argv_of(&runs[1]),
            "--resume",
            "25f505f3-79a7-4119-8ffa-23ce6efc7560"
        ),
        "{:?}",
        argv_of(&runs[1])
    );
}
