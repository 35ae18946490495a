//! Agent presets on the real binaries, with stand-in agent CLIs that speak each agent's
//! real JSON stream: parsing, usage totals, placement by installed agent, plain lines kept.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{agents, git, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A Claude Code stand-in: records its argv and stdin, prints a stream-json session.
const CLAUDE: &str = r#"
printf '%s\n' "$@" > "$RECORD/argv"
cat > "$RECORD/stdin"
printf '%s\n' '{"type":"system","subtype":"init","session_id":"s1","model":"sonnet","tools":["Bash"]}'
printf '%s\n' '{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"I will add the file."},{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"echo hi > claude.txt"}}]}}'
echo hi > claude.txt
printf '%s\n' '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"done","is_error":false}]}}'
echo 'a plain line that is not JSON'
printf '%s\n' '{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"Added claude.txt.","total_cost_usd":0.0125,"usage":{"input_tokens":1200,"cache_read_input_tokens":800,"output_tokens":300}}'
"#;

const CODEX: &str = r#"
printf '%s\n' "$@" > "$RECORD/argv"
cat > "$RECORD/stdin"
printf '%s\n' '{"type":"thread.started","thread_id":"t1"}'
printf '%s\n' '{"type":"turn.started"}'
printf '%s\n' '{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"thinking"}}'
printf '%s\n' '{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"README.md\n","exit_code":0,"status":"completed"}}'
echo codex > codex.txt
printf '%s\n' '{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"codex.txt","kind":"add"}],"status":"completed"}}'
printf '%s\n' '{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Created codex.txt."}}'
printf '%s\n' '{"type":"turn.completed","usage":{"input_tokens":500,"cached_input_tokens":100,"output_tokens":50}}'
"#;

const GEMINI: &str = r#"
printf '%s\n' "$@" > "$RECORD/argv"
printf '%s\n' '{"type":"init","timestamp":"2025-01-01T00:00:00Z","session_id":"g1","model":"gemini-2.5-pro"}'
printf '%s\n' '{"type":"message","role":"user","content":"prompt","timestamp":"2025-01-01T00:00:00Z"}'
printf '%s\n' '{"type":"tool_use","tool_name":"write_file","tool_id":"w1","parameters":{"file_path":"gemini.txt"},"timestamp":"2025-01-01T00:00:01Z"}'
echo gemini > gemini.txt
printf '%s\n' '{"type":"tool_result","tool_id":"w1","status":"success","output":"ok","timestamp":"2025-01-01T00:00:02Z"}'
printf '%s\n' '{"type":"message","role":"assistant","content":"Wrote gemini.txt.","delta":true,"timestamp":"2025-01-01T00:00:03Z"}'
printf '%s\n' '{"type":"result","status":"success","stats":{"total_tokens":70,"input_tokens":60,"output_tokens":10,"duration_ms":5,"tool_calls":1},"timestamp":"2025-01-01T00:00:04Z"}'
"#;

struct Setup {
    control_plane: ControlPlane,
    runner: Runner,
    record: std::path::PathBuf,
    repo: std::path::PathBuf,
}

async fn setup() -> Setup {
    let control_plane = ControlPlane::start().await;
    let bin = control_plane.scratch().join("bin");
    agents::install(&bin, "claude", CLAUDE);
    agents::install(&bin, "codex", CODEX);
    agents::install(&bin, "gemini", GEMINI);
    let record = control_plane.scratch().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let path = agents::path_with(&bin);
    let mut runner = Runner::register_with_env(
        &control_plane,
        "agents",
        &["--max-concurrent", "2"],
        &[("PATH", &path)],
    );
    runner.start_with_env(&[("PATH", &path)]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    Setup {
        control_plane,
        runner,
        record,
        repo,
    }
}

fn agent_events(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["kind"] == "agent").collect()
}

#[tokio::test]
async fn claude_code_streams_typed_events_and_usage_and_keeps_plain_lines() {
    let s = setup().await;
    let runners = s.control_plane.get("/v1/runners").await;
    let capabilities = runners[0]["capabilities"].as_array().unwrap();
    for agent in ["agent:claude-code", "agent:codex", "agent:gemini"] {
        assert!(
            capabilities.contains(&agent.into()),
            "{agent} advertised: {capabilities:?}"
        );
    }
    let env = format!("RECORD={}", s.record.display());
    let id = s.control_plane.submit(
        &s.repo,
        &[
            "--agent",
            "claude-code",
            "--model",
            "sonnet",
            "--agent-arg",
            "--max-turns",
            "--agent-arg",
            "3",
            "--prompt",
            "Add a file.",
            "--env",
            &env,
        ],
        "unused",
    );
    let task = s.control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let argv = std::fs::read_to_string(s.record.join("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            "sonnet",
            "--max-turns",
            "3"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(s.record.join("stdin")).unwrap(),
        "Add a file.",
        "prompt on stdin"
    );

    let events = s.control_plane.events(&id, 1).await;
    let agent: Vec<&str> = agent_events(&events)
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(agent, ["text", "tool_call", "tool_result", "result"]);
    let stdout = stdout_lines(&events);
    assert!(
        stdout.contains(&"a plain line that is not JSON".to_owned()),
        "unparsed lines are kept: {stdout:?}"
    );
    assert!(
        stdout.iter().any(|l| l.contains("\"subtype\":\"init\"")),
        "unknown JSON is kept as a line"
    );
    let usage = &task["outcome"]["usage"];
    assert_eq!(
        (
            usage["turns"].as_u64(),
            usage["input_tokens"].as_u64(),
            usage["output_tokens"].as_u64()
        ),
        (Some(2), Some(1200), Some(300))
    );
    assert_eq!(usage["cost_usd"].as_f64(), Some(0.0125));
    assert_eq!(task["outcome"]["stop"], "exited");

    let shown = s.control_plane.kiln_ok(&["task", &id]);
    assert!(
        shown.contains("usage     2 turn(s), 1200 tokens in (800 cached), 300 out, $0.0125"),
        "{shown}"
    );
    let logs = s.control_plane.kiln(&["logs", &id]);
    let rendered = String::from_utf8_lossy(&logs.stderr);
    assert!(
        rendered.contains("agent: I will add the file."),
        "{rendered}"
    );
    assert!(rendered.contains("agent → Bash"), "{rendered}");
    assert!(
        rendered.contains("agent done: Added claude.txt."),
        "{rendered}"
    );
    let json = s.control_plane.kiln_ok(&["logs", &id, "--json"]);
    assert!(
        json.lines().any(|l| l.contains("\"event\":\"tool_call\"")),
        "--json gives the raw events"
    );
    drop(s.runner);
}

#[tokio::test]
async fn codex_and_gemini_streams_are_parsed_too() {
    let s = setup().await;
    let env = format!("RECORD={}", s.record.display());
    let codex = s.control_plane.submit(
        &s.repo,
        &[
            "--agent",
            "codex",
            "--prompt",
            "Make codex.txt",
            "--env",
            &env,
        ],
        "unused",
    );
    let task = s.control_plane.wait_terminal(&codex, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        std::fs::read_to_string(s.record.join("stdin")).unwrap(),
        "Make codex.txt"
    );
    let events = s.control_plane.events(&codex, 1).await;
    let kinds: Vec<&str> = agent_events(&events)
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["tool_call", "tool_result", "file_change", "text", "result"]
    );
    assert_eq!(task["outcome"]["usage"]["output_tokens"], 50);
    assert!(
        task["outcome"]["usage"]["cost_usd"].is_null(),
        "kiln never prices tokens"
    );

    let gemini = s.control_plane.submit(
        &s.repo,
        &[
            "--agent",
            "gemini",
            "--model",
            "gemini-2.5-pro",
            "--prompt",
            "Make gemini.txt",
            "--env",
            &env,
        ],
        "unused",
    );
    let task = s.control_plane.wait_terminal(&gemini, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let argv = std::fs::read_to_string(s.record.join("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "--output-format",
            "stream-json",
            "--model",
            "gemini-2.5-pro",
            "--prompt",
            "Make gemini.txt"
        ]
    );
    let events = s.control_plane.events(&gemini, 1).await;
    let kinds: Vec<&str> = agent_events(&events)
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["tool_call", "tool_result", "text", "result"]);
    assert_eq!(task["outcome"]["usage"]["input_tokens"], 60);
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
