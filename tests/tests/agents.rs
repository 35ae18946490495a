//! Agent presets on the real binaries, with `kiln-fake-agent` as `claude`, `codex` and
//! `gemini` replaying transcripts the real CLIs printed: for each one, the events, turns,
//! usage, outcome and stop reason kiln makes of it; what each preset passes (argv, stdin,
//! environment); logs rendered; placement by installed agent.

use std::time::Duration;

use kiln_tests::agents::{agent_kinds, argv_of, AgentFleet, FakeAgent};
use kiln_tests::{git, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(90);

/// What kiln must make of one transcript.
struct Expected {
    fixture: &'static str,
    preset: &'static str,
    state: &'static str,
    stop: &'static str,
    /// Words the outcome's message holds.
    message: &'static str,
    kinds: &'static [&'static str],
    turns: u64,
    /// Uncached input, cache read, cache write, output.
    tokens: (u64, u64, u64, u64),
    cost: Option<f64>,
}

const S: &str = "session";
const TRANSCRIPTS: &[Expected] = &[
    Expected {
        fixture: "claude/permission-allow-2.1.226.jsonl",
        preset: "claude-code",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "tool_call", "tool_result", "text", "result"],
        turns: 2,
        tokens: (18, 66_670, 548, 491),
        cost: Some(0.009_825),
    },
    Expected {
        fixture: "claude/permission-deny-2.1.226.jsonl",
        preset: "claude-code",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "tool_call", "tool_result", "text", "result"],
        turns: 2,
        tokens: (18, 60_280, 6_835, 536),
        cost: Some(0.022_062_25),
    },
    Expected {
        fixture: "claude/subagents-multiblock-2.1.289.jsonl",
        preset: "claude-code",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[
            S,
            "tool_call",
            "tool_result",
            "text",
            "tool_call",
            "tool_result",
            "text",
            "result",
        ],
        turns: 8,
        tokens: (16, 207_375, 14_239, 1_384),
        cost: Some(0.460_437_4),
    },
    Expected {
        fixture: "claude/api-error-400-2.1.289.jsonl",
        preset: "claude-code",
        state: "failed",
        stop: "agent_error",
        message: "the agent reported a failure: API Error: 400 probe: invalid request",
        kinds: &[S, "error", "result"],
        turns: 1,
        tokens: (0, 0, 0, 0),
        cost: Some(0.0),
    },
    Expected {
        fixture: "codex/docs-exec-sample.jsonl",
        preset: "codex",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "tool_call", "tool_result", "text", "result"],
        turns: 1,
        tokens: (315, 24_448, 0, 122),
        cost: None,
    },
    Expected {
        fixture: "codex/tooluse-0.142.5.jsonl",
        preset: "codex",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "tool_call", "tool_result", "text", "result"],
        turns: 1,
        tokens: (12_730, 16_128, 0, 196),
        cost: None,
    },
    Expected {
        fixture: "codex/reasoning-0.147.0.jsonl",
        preset: "codex",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "text", "result"],
        turns: 1,
        tokens: (17_792, 0, 0, 3_333),
        cost: None,
    },
    Expected {
        fixture: "codex/failure-0.142.5.jsonl",
        preset: "codex",
        state: "failed",
        stop: "agent_error",
        message: "requires a newer version of Codex",
        kinds: &[S, "warning", "warning", "error"],
        turns: 1,
        tokens: (0, 0, 0, 0),
        cost: None,
    },
    Expected {
        fixture: "codex/rollout-budget-error-issue-37676.jsonl",
        preset: "codex",
        state: "failed",
        stop: "agent_error",
        message: "shared rollout token budget exhausted",
        kinds: &[S, "warning", "text", "warning", "error"],
        turns: 1,
        tokens: (0, 0, 0, 0),
        cost: None,
    },
    Expected {
        fixture: "gemini/stdin-web-search-oneshot.jsonl",
        preset: "gemini",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "tool_call", "tool_result", "text", "text", "result"],
        turns: 2,
        tokens: (18_609, 13_673, 0, 76),
        cost: None,
    },
    Expected {
        fixture: "gemini/snapshot-tool-roundtrip.jsonl",
        preset: "gemini",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "text", "tool_call", "tool_result", "text"],
        turns: 2,
        tokens: (0, 0, 0, 0),
        cost: None,
    },
    Expected {
        fixture: "gemini/snapshot-loop-detected-warning.jsonl",
        preset: "gemini",
        state: "succeeded",
        stop: "exited",
        message: "exited with code 0",
        kinds: &[S, "warning"],
        turns: 0,
        tokens: (0, 0, 0, 0),
        cost: None,
    },
    Expected {
        fixture: "gemini/snapshot-max-session-turns-error.jsonl",
        preset: "gemini",
        state: "failed",
        stop: "agent_error",
        message: "the agent reported a failure: Maximum session turns exceeded",
        kinds: &[S, "error"],
        turns: 0,
        tokens: (0, 0, 0, 0),
        cost: None,
    },
];

#[tokio::test]
async fn every_transcript_replays_through_the_real_binaries() {
    let s = AgentFleet::start().await;
    let submitted: Vec<(&Expected, FakeAgent, String)> = TRANSCRIPTS
        .iter()
        .enumerate()
        .map(|(n, expected)| {
            let fake = s.fake(&format!("fake-{n}"), &[expected.fixture]);
            let id = s.submit(expected.preset, &fake, &["--prompt", "Do the task."]);
            (expected, fake, id)
        })
        .collect();
    for (expected, fake, id) in &submitted {
        let name = expected.fixture;
        let task = s.control_plane.wait_terminal(id, TIMEOUT).await;
        let outcome = &task["outcome"];
        assert_eq!(
            (task["state"].as_str(), outcome["stop"].as_str()),
            (Some(expected.state), Some(expected.stop)),
            "{name}: {task}"
        );
        let message = outcome["message"].as_str().unwrap();
        assert!(message.contains(expected.message), "{name}: {message}");
        let events = s.control_plane.events(id, 1).await;
        assert_eq!(agent_kinds(&events), expected.kinds, "{name}");
        let usage = &outcome["usage"];
        let count = |key: &str| usage[key].as_u64().unwrap_or(0);
        assert_eq!(
            usage["turns"].as_u64().unwrap_or(0),
            expected.turns,
            "{name}: {usage}"
        );
        assert_eq!(
            (
                count("input_tokens"),
                count("cache_read_tokens"),
                count("cache_write_tokens"),
                count("output_tokens")
            ),
            expected.tokens,
            "{name}: {usage}"
        );
        assert_eq!(usage["cost_usd"].as_f64(), expected.cost, "{name}: {usage}");
        let runs = fake.recorded();
        assert_eq!(runs.len(), 1, "{name}: one run");
        assert_eq!(
            runs[0]["stdin"], "Do the task.",
            "{name}: the prompt on stdin"
        );
        let argv = argv_of(&runs[0]);
        assert!(
            !argv.iter().any(|a| a == "Do the task."),
            "{name}: the prompt is never in argv: {argv:?}"
        );
        let autonomy = match expected.preset {
            "claude-code" => ["--permission-mode", "acceptEdits"],
            "codex" => ["--sandbox", "workspace-write"],
            _ => ["--approval-mode", "auto_edit"],
        };
        assert!(
            argv.windows(2).any(|w| w == autonomy),
            "{name}: edit autonomy by default: {argv:?}"
        );
        if expected.preset == "gemini" {
            assert_eq!(
                runs[0]["env"]["GEMINI_CLI_TRUST_WORKSPACE"], "true",
                "{name}: the worktree is trusted, or gemini exits 55"
            );
        }
        if expected.state == "succeeded" {
            assert!(
                task["outcome"]["result"]["commits"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()),
                "{name}: the agent's file is committed: {task}"
            );
        }
    }
}

#[tokio::test]
async fn logs_and_kiln_task_show_the_parsed_stream() {
    let s = AgentFleet::start().await;
    let fake = s.fake("fake", &["claude/permission-allow-2.1.226.jsonl"]);
    let id = s.submit("claude-code", &fake, &["--prompt", "Make hello.txt"]);
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        task["outcome"]["agent_session"], "25f505f3-79a7-4119-8ffa-23ce6efc7560",
        "the conversation is recorded on the attempt"
    );
    let shown = s.control_plane.kiln_ok(&["task", &id]);
    assert!(
        shown.contains(
            "2 turn(s), 18 tokens in (+66670 cache read, +548 cache write), 491 out, $0.0098"
        ),
        "{shown}"
    );
    let logs = s.control_plane.kiln(&["logs", &id]);
    let rendered = String::from_utf8_lossy(&logs.stderr);
    assert!(rendered.contains("agent → Write"), "{rendered}");
    assert!(
        rendered.contains("agent: Done. Created `hello.txt` with content `hi`."),
        "{rendered}"
    );
    let events = s.control_plane.events(&id, 1).await;
    let stdout = kiln_tests::control_plane::stdout_lines(&events);
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("\"type\":\"control_request\"")),
        "JSON no parser knows is kept as a line: {stdout:?}"
    );
}

#[tokio::test]
async fn autonomy_and_budget_reach_each_cli_as_its_own_flags() {
    let s = AgentFleet::start().await;
    let claude = s.fake("claude", &["claude/permission-deny-2.1.226.jsonl"]);
    let id = s.submit(
        "claude-code",
        &claude,
        &[
            "--autonomy",
            "read-only",
            "--max-cost",
            "0.5",
            "--prompt",
            "Look.",
        ],
    );
    s.control_plane.wait_terminal(&id, TIMEOUT).await;
    let codex = s.fake("codex", &["codex/success-0.142.5.jsonl"]);
    let id = s.submit("codex", &codex, &["--autonomy", "full", "--prompt", "Go."]);
    s.control_plane.wait_terminal(&id, TIMEOUT).await;
    let argv = |fake: &FakeAgent| argv_of(&fake.recorded()[0]);
    let claude = argv(&claude);
    assert!(
        claude.join(" ").contains("--permission-mode dontAsk")
            && claude.join(" ").contains("--max-budget-usd 0.5000"),
        "{claude:?}"
    );
    let codex = argv(&codex);
    assert_eq!(
        codex,
        ["exec", "--json", "--sandbox", "danger-full-access", "-"],
        "no deprecated --full-auto or --yolo"
    );
}

#[tokio::test]
async fn a_task_goes_only_where_its_agent_is_installed() {
    let control_plane = ControlPlane::start().await;
    let mut plain = Runner::register(&control_plane, "plain", &[]);
    plain.start_with_env(&[("PATH", "/usr/bin:/bin")]);
    plain.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &["--agent", "claude-code"], "unused");
    let task = control_plane.task(&id).await;
    assert_eq!(task["state"], "queued");
    assert_eq!(
        task["waiting_reason"],
        "no connected runner has capability agent:claude-code"
    );
    assert!(task["requires"]
        .as_array()
        .unwrap()
        .contains(&"agent:claude-code".into()));
}
