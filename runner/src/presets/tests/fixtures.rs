//! Whole transcripts that the real CLIs printed (tests/fixtures/agents/, sources in each
//! README), replayed through the parsers: the events, turns, usage, words, failure,
//! session and rate limit each one must come to.

use std::path::{Path, PathBuf};

use kiln_protocol::{AgentEvent, Usage};

use super::super::{Format, Parser, RateLimit, UsageReport};

/// What a whole transcript came to.
#[derive(Debug, Default)]
struct Replayed {
    events: Vec<AgentEvent>,
    turns: u64,
    usage: Usage,
    /// The top-level agent's words, where a completion signal may be.
    words: String,
    failure: Option<String>,
    rate_limit: Option<RateLimit>,
    session: Option<String>,
    /// Lines no parser took (kept as log lines).
    plain: usize,
}

fn fixture(cli: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/agents")
        .join(cli)
        .join(name)
}

fn replay(format: Format, cli: &str, name: &str) -> Replayed {
    let text = std::fs::read_to_string(fixture(cli, name)).unwrap();
    let mut parser = Parser::new(format, Path::new("/home/user/project"));
    let mut replayed = Replayed::default();
    let mut parsed_lines: Vec<_> = text
        .lines()
        .map(|line| match parser.line(line) {
            Some(parsed) => Some(parsed),
            None => {
                replayed.plain += 1;
                None
            }
        })
        .collect();
    parsed_lines.push(parser.end());
    for parsed in parsed_lines.into_iter().flatten() {
        replayed.turns += u64::from(parsed.new_turn);
        match parsed.usage {
            Some(UsageReport::Total(usage)) => replayed.usage = usage,
            Some(UsageReport::Increment(usage)) => replayed.usage.add(&usage),
            None => {}
        }
        replayed.failure = parsed.failure.or(replayed.failure);
        replayed.rate_limit = parsed.rate_limit.or(replayed.rate_limit);
        for event in &parsed.events {
            match event {
                AgentEvent::Text { text } if !parsed.aside => replayed.words.push_str(text),
                AgentEvent::Session { id } => replayed.session = Some(id.clone()),
                _ => {}
            }
        }
        replayed.events.extend(parsed.events);
    }
    replayed
}

fn kinds(events: &[AgentEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            AgentEvent::Text { .. } => "text",
            AgentEvent::ToolCall { .. } => "call",
            AgentEvent::ToolResult { .. } => "result",
            AgentEvent::FileChange { .. } => "file",
            AgentEvent::Error { .. } => "error",
            AgentEvent::Warning { .. } => "warning",
            AgentEvent::Session { .. } => "session",
            AgentEvent::Result { .. } => "final",
        })
        .collect()
}

fn tokens(usage: &Usage) -> (u64, u64, u64, u64, Option<u64>) {
    (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
    )
}

#[test]
fn claude_counts_one_turn_per_model_call_and_keeps_cache_writes() {
    let run = replay(
        Format::ClaudeCode,
        "claude",
        "permission-allow-2.1.226.jsonl",
    );
    assert_eq!(
        run.turns, 2,
        "thinking and tool_use lines of one call are one turn"
    );
    assert_eq!(run.usage.turns, Some(2));
    assert_eq!(tokens(&run.usage), (18, 66_670, 548, 491, None));
    assert_eq!(run.usage.cost_usd, Some(0.009_825));
    assert_eq!(
        kinds(&run.events),
        ["session", "call", "result", "text", "final"]
    );
    assert_eq!(run.words, "Done. Created `hello.txt` with content `hi`.");
    assert_eq!((run.failure, run.rate_limit), (None, None));
    assert_eq!(run.plain, 1, "the SDK's control_request stays a log line");

    let denied = replay(
        Format::ClaudeCode,
        "claude",
        "permission-deny-2.1.226.jsonl",
    );
    assert_eq!(denied.turns, 2);
    assert_eq!(tokens(&denied.usage), (18, 60_280, 6_835, 536, None));
    assert!(matches!(
        &denied.events[2],
        AgentEvent::ToolResult { is_error: true, output, .. } if output.contains("permission denied")
    ));
    assert_eq!(
        denied.session.as_deref(),
        Some("73094031-e29e-409e-bbcc-ec1a75506b3d")
    );
}

#[test]
fn claude_subagents_are_not_the_agent_speaking() {
    let run = replay(
        Format::ClaudeCode,
        "claude",
        "subagents-multiblock-2.1.289.jsonl",
    );
    assert_eq!(run.turns, 3, "two lines share msg_011CfiQs9GSQdQu1WXPn3Mdx");
    assert_eq!(
        run.usage.turns,
        Some(8),
        "the CLI's own count wins where it is higher"
    );
    assert_eq!(tokens(&run.usage), (16, 207_375, 14_239, 1_384, Some(0)));
    assert_eq!(run.usage.cost_usd, Some(0.460_437_4));
    assert!(
        !run.words.contains("Report your model"),
        "the subagent's prompt is not the agent's words"
    );
    assert!(run.words.starts_with("All five agents are done."));
    assert_eq!(run.failure, None);
}

#[test]
fn claude_api_errors_and_usage_limits_are_failures_with_the_clis_words() {
    let run = replay(Format::ClaudeCode, "claude", "api-error-400-2.1.289.jsonl");
    assert_eq!(
        run.failure.as_deref(),
        Some("API Error: 400 probe: invalid request"),
        "subtype success with is_error true is a failure"
    );
    assert_eq!(run.rate_limit, None, "a 400 is not a rate limit");
    assert_eq!(
        run.words, "",
        "the CLI's synthetic error line is not the model's words"
    );

    let limited = replay(
        Format::ClaudeCode,
        "claude",
        "usage-limit-oauth-2.1.289.jsonl",
    );
    let limit = limited.rate_limit.expect("the 429 is a rate limit");
    assert_eq!(
        limit.resets_at,
        Some(1_791_179_511_000),
        "the rejected rate_limit_event's resetsAt, in milliseconds"
    );
    assert!(limit.message.contains("You've hit your session limit"));
    assert_eq!(
        limited.session.as_deref(),
        Some("232d6957-45aa-465f-968e-824a5ff69f1c")
    );
}

#[test]
fn codex_items_become_events_and_usage_is_split_into_kilns_shape() {
    let run = replay(Format::Codex, "codex", "docs-exec-sample.jsonl");
    assert_eq!(
        kinds(&run.events),
        ["session", "call", "result", "text", "final"]
    );
    assert_eq!(run.turns, 1);
    assert_eq!(
        tokens(&run.usage),
        (315, 24_448, 0, 122, None),
        "cached tokens are counted inside codex's input_tokens"
    );
    let tools = replay(Format::Codex, "codex", "tooluse-0.142.5.jsonl");
    assert_eq!(
        kinds(&tools.events),
        ["session", "call", "result", "text", "final"]
    );
    assert_eq!(tokens(&tools.usage), (12_730, 16_128, 0, 196, Some(87)));
    let thinking = replay(Format::Codex, "codex", "reasoning-0.147.0.jsonl");
    assert_eq!(kinds(&thinking.events), ["session", "text", "final"]);
    assert_eq!(thinking.usage.reasoning_tokens, Some(1_957));
    assert!(!thinking.words.is_empty());
    let stdin = replay(
        Format::Codex,
        "codex",
        "stdin-prompt-issue-open-design-2268.jsonl",
    );
    assert_eq!((stdin.words.as_str(), stdin.failure), ("Hello.", None));
    let hello = replay(Format::Codex, "codex", "success-0.142.5.jsonl");
    assert_eq!(tokens(&hello.usage), (11_880, 2_432, 0, 32, Some(25)));
}

#[test]
fn codex_errors_are_warnings_until_the_turn_fails() {
    let run = replay(Format::Codex, "codex", "failure-0.142.5.jsonl");
    assert_eq!(
        kinds(&run.events),
        ["session", "warning", "warning", "error"]
    );
    assert!(run
        .failure
        .as_deref()
        .is_some_and(|f| f.contains("requires a newer version of Codex")));
    let budget = replay(
        Format::Codex,
        "codex",
        "rollout-budget-error-issue-37676.jsonl",
    );
    assert_eq!(
        budget.failure.as_deref(),
        Some("shared rollout token budget exhausted")
    );
    assert_eq!(budget.words, "ok");
}

#[test]
fn gemini_counts_turns_skips_its_echo_and_reports_uncached_input() {
    let run = replay(Format::Gemini, "gemini", "stdin-web-search-oneshot.jsonl");
    assert_eq!(
        run.turns, 2,
        "a tool call's turn, then the answer's; deltas are one turn"
    );
    assert_eq!(
        run.words, "Bogotá is the capital and largest city of Colombia.",
        "the echo of the prompt is not the agent's words"
    );
    assert_eq!(
        tokens(&run.usage),
        (18_609, 13_673, 0, 76, None),
        "input_tokens 32282 counts the 13673 cached"
    );
    assert_eq!(
        run.session.as_deref(),
        Some("b35ecd66-4ed8-43cd-b73b-9dd2eb9b2f4e")
    );
    let tools = replay(Format::Gemini, "gemini", "snapshot-tool-roundtrip.jsonl");
    assert_eq!(
        kinds(&tools.events),
        ["session", "text", "call", "result", "text"]
    );
    assert_eq!(tools.turns, 2);
    assert!(!tools.words.contains("Stream test"));
}

#[test]
fn gemini_error_events_fail_the_run_and_warnings_do_not() {
    let warned = replay(
        Format::Gemini,
        "gemini",
        "snapshot-loop-detected-warning.jsonl",
    );
    assert_eq!(kinds(&warned.events), ["session", "warning"]);
    assert_eq!(warned.failure, None);
    let failed = replay(
        Format::Gemini,
        "gemini",
        "snapshot-max-session-turns-error.jsonl",
    );
    assert_eq!(
        failed.failure.as_deref(),
        Some("Maximum session turns exceeded")
    );
}

/// No published transcript holds a `result` with `status: "error"`; this line has the
/// shape `handleError` in google-gemini/gemini-cli@5411f113
/// (packages/cli/src/utils/errors.ts) prints, with the quota text errorParsing.ts makes.
#[test]
fn a_gemini_error_result_is_a_failure_and_a_quota_is_a_rate_limit() {
    let mut parser = Parser::new(Format::Gemini, Path::new("/w"));
    let line = r#"{"type":"result","timestamp":"2026-03-12T10:00:00.000Z","status":"error","error":{"type":"Error","message":"[API Error: You have exhausted your daily quota on this model.]"},"stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0,"duration_ms":0,"tool_calls":0}}"#;
    let parsed = parser.line(line).unwrap();
    assert!(parsed
        .failure
        .as_deref()
        .is_some_and(|f| f.contains("exhausted your daily quota")));
    let limit = parsed.rate_limit.expect("a quota is a rate limit");
    assert_eq!(limit.resets_at, None, "a daily quota names no reset time");
}
