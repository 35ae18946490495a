//! Preset invocations and the three agents' JSON streams, from recorded sample lines.

use kiln_protocol::{AgentEvent, AgentSpec, TaskId, TaskSpec};

use super::*;

fn spec(agent: Option<AgentSpec>) -> TaskSpec {
    TaskSpec {
        task_id: TaskId::new(),
        repo: "/r".into(),
        base_ref: None,
        branch: "kiln/x".into(),
        prompt: "Fix it.".into(),
        command: vec!["make".into()],
        agent,
        env: Default::default(),
        secret_env: Default::default(),
        timeout_ms: None,
        idle_timeout_ms: None,
        max_iterations: None,
        completion_signal: None,
        completion_grace_ms: None,
        max_turns: None,
        max_cost_usd: None,
        push: false,
        workspace: None,
        container: None,
    }
}

fn agent(preset: &str, model: Option<&str>, args: &[&str]) -> Option<AgentSpec> {
    Some(AgentSpec {
        preset: preset.into(),
        model: model.map(str::to_owned),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    })
}

#[test]
fn each_preset_builds_its_headless_invocation() {
    let presets = builtin();
    let claude = invocation(
        &spec(agent("claude-code", Some("sonnet"), &["--max-turns", "9"])),
        &presets,
    )
    .unwrap();
    assert_eq!(
        claude.argv,
        [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            "sonnet",
            "--max-turns",
            "9"
        ]
    );
    assert!(claude.prompt_on_stdin);
    let codex = invocation(&spec(agent("codex", None, &[])), &presets).unwrap();
    assert_eq!(codex.argv, ["codex", "exec", "--json", "-"]);
    let gemini = invocation(&spec(agent("gemini", Some("pro"), &[])), &presets).unwrap();
    assert_eq!(
        gemini.argv,
        [
            "gemini",
            "--output-format",
            "stream-json",
            "--model",
            "pro",
            "--prompt",
            "Fix it."
        ]
    );
    assert!(!gemini.prompt_on_stdin);
    let command = invocation(&spec(None), &presets).unwrap();
    assert_eq!(
        (command.argv, command.format),
        (vec!["make".to_owned()], Format::Plain)
    );
    assert!(invocation(&spec(agent("nope", None, &[])), &presets)
        .unwrap_err()
        .contains("nope"));
}

#[test]
fn operators_add_presets_in_runner_yaml() {
    let configured = BTreeMap::from([(
        "aider".to_owned(),
        PresetConfig {
            program: "aider".into(),
            args: vec!["--yes".into()],
            model_flag: Some("--model".into()),
            prompt: Some("flag:--message".into()),
            format: Format::Plain,
        },
    )]);
    let presets = all(&configured).unwrap();
    let aider = invocation(&spec(agent("aider", None, &[])), &presets).unwrap();
    assert_eq!(aider.argv, ["aider", "--yes", "--message", "Fix it."]);
    let bad = BTreeMap::from([(
        "x".to_owned(),
        PresetConfig {
            program: "x".into(),
            args: vec![],
            model_flag: None,
            prompt: Some("carrier-pigeon".into()),
            format: Format::Plain,
        },
    )]);
    assert!(all(&bad).unwrap_err().contains("presets.x.prompt"));
}

#[test]
fn claude_stream_json_becomes_typed_events() {
    let text = r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"Looking."},{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]}}"#;
    let parsed = parse(Format::ClaudeCode, text).unwrap();
    assert!(parsed.new_turn);
    assert_eq!(
        parsed.events[0],
        AgentEvent::Text {
            text: "Looking.".into()
        }
    );
    assert!(matches!(&parsed.events[1], AgentEvent::ToolCall { name, .. } if name == "Bash"));
    let result = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"a.txt","is_error":false}]}}"#;
    assert!(
        matches!(&parse(Format::ClaudeCode, result).unwrap().events[0], AgentEvent::ToolResult { output, .. } if output == "a.txt")
    );
    let done = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"Done.","total_cost_usd":0.25,"usage":{"input_tokens":100,"cache_read_input_tokens":40,"output_tokens":20}}"#;
    let AgentEvent::Result { usage, text, .. } =
        &parse(Format::ClaudeCode, done).unwrap().events[0]
    else {
        panic!("result event")
    };
    assert_eq!(
        (
            usage.turns,
            usage.input_tokens,
            usage.output_tokens,
            usage.cost_usd
        ),
        (Some(3), 100, 20, Some(0.25))
    );
    assert_eq!(text.as_deref(), Some("Done."));
}

#[test]
fn codex_json_becomes_typed_events() {
    let command = r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"a\n","exit_code":1,"status":"completed"}}"#;
    let events = parse(Format::Codex, command).unwrap().events;
    assert!(matches!(
        &events[1],
        AgentEvent::ToolResult { is_error: true, .. }
    ));
    let change = r#"{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"src/a.rs","kind":"update"}]}}"#;
    assert_eq!(
        parse(Format::Codex, change).unwrap().events,
        [AgentEvent::FileChange {
            path: "src/a.rs".into(),
            change: "update".into()
        }]
    );
    let turn = r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":5,"output_tokens":3}}"#;
    assert!(
        matches!(&parse(Format::Codex, turn).unwrap().events[0], AgentEvent::Result { usage, .. } if usage.output_tokens == 3 && usage.cost_usd.is_none())
    );
}

#[test]
fn gemini_stream_json_becomes_typed_events() {
    let tool =
        r#"{"type":"tool_use","tool_name":"read_file","tool_id":"t1","parameters":{"path":"a"}}"#;
    assert!(
        matches!(&parse(Format::Gemini, tool).unwrap().events[0], AgentEvent::ToolCall { name, .. } if name == "read_file")
    );
    let result = r#"{"type":"result","status":"success","stats":{"input_tokens":7,"output_tokens":2,"total_tokens":9}}"#;
    assert!(
        matches!(&parse(Format::Gemini, result).unwrap().events[0], AgentEvent::Result { usage, .. } if usage.input_tokens == 7)
    );
}

#[test]
fn what_no_parser_knows_stays_a_plain_line() {
    assert_eq!(parse(Format::ClaudeCode, "plain text"), None);
    assert_eq!(parse(Format::ClaudeCode, "{not json"), None);
    assert_eq!(
        parse(Format::ClaudeCode, r#"{"type":"system","subtype":"init"}"#),
        None
    );
    assert_eq!(parse(Format::Plain, r#"{"type":"assistant"}"#), None);
}
