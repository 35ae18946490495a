//! Preset invocations, and single lines of the three agents' JSON streams (whole
//! transcripts the real CLIs printed are replayed in `tests/fixtures.rs`).

mod fixtures;

use kiln_protocol::{AgentEvent, AgentSpec, Autonomy, TaskId, TaskSpec};

use super::parser::parse;

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
        autonomy: None,
        continue_conversation: false,
        preset: preset.into(),
        model: model.map(str::to_owned),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    })
}

fn argv(spec: &TaskSpec, enclosure: Enclosure) -> Vec<String> {
    invocation(spec, &builtin(), enclosure)
        .unwrap()
        .argv(RunArgs::default())
}

#[test]
fn each_preset_builds_its_headless_invocation() {
    let presets = builtin();
    let claude = invocation(
        &spec(agent("claude-code", Some("sonnet"), &["--max-turns", "9"])),
        &presets,
        Enclosure::Host,
    )
    .unwrap();
    assert_eq!(
        claude.argv(RunArgs::default()),
        [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            "sonnet",
            "--permission-mode",
            "acceptEdits",
            "--max-turns",
            "9"
        ]
    );
    assert!(claude.prompt_on_stdin);
    assert!(claude.env.is_empty());
    assert_eq!(
        argv(&spec(agent("codex", None, &[])), Enclosure::Host),
        [
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "-"
        ]
    );
    let gemini = invocation(
        &spec(agent("gemini", Some("pro"), &[])),
        &presets,
        Enclosure::Host,
    )
    .unwrap();
    assert_eq!(
        gemini.argv(RunArgs::default()),
        [
            "gemini",
            "--output-format",
            "stream-json",
            "--model",
            "pro",
            "--approval-mode",
            "auto_edit"
        ],
        "the prompt goes on stdin, never in argv"
    );
    assert!(gemini.prompt_on_stdin);
    assert_eq!(
        gemini.env,
        [("GEMINI_CLI_TRUST_WORKSPACE".to_owned(), "true".to_owned())]
    );
    let command = invocation(&spec(None), &presets, Enclosure::Host).unwrap();
    assert_eq!(
        (command.argv(RunArgs::default()), command.format),
        (vec!["make".to_owned()], Format::Plain)
    );
    assert!(
        invocation(&spec(agent("nope", None, &[])), &presets, Enclosure::Host)
            .unwrap_err()
            .contains("nope")
    );
}

fn with_autonomy(preset: &str, level: Autonomy) -> TaskSpec {
    let mut agent = agent(preset, None, &[]);
    if let Some(agent) = &mut agent {
        agent.autonomy = Some(level);
    }
    spec(agent)
}

#[test]
fn autonomy_maps_to_each_clis_current_flags() {
    let flags = |preset: &str, level, enclosure| {
        let argv = argv(&with_autonomy(preset, level), enclosure);
        argv[argv.len().min(
            argv.iter()
                .position(|a| {
                    a.starts_with("--permission-mode")
                        || a == "--sandbox"
                        || a.starts_with("--dangerously")
                        || a == "--approval-mode"
                })
                .unwrap_or(argv.len()),
        )..]
            .iter()
            .filter(|a| *a != "-")
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    use Autonomy::{Edit, Full, ReadOnly};
    use Enclosure::{Box, Host};
    assert_eq!(
        flags("claude-code", ReadOnly, Host),
        "--permission-mode dontAsk"
    );
    assert_eq!(
        flags("claude-code", Edit, Host),
        "--permission-mode acceptEdits"
    );
    assert_eq!(
        flags("claude-code", Full, Box),
        "--permission-mode bypassPermissions"
    );
    assert_eq!(flags("codex", ReadOnly, Host), "--sandbox read-only");
    assert_eq!(flags("codex", ReadOnly, Box), "--sandbox read-only");
    assert_eq!(flags("codex", Full, Host), "--sandbox danger-full-access");
    assert_eq!(
        flags("codex", Edit, Box),
        "--dangerously-bypass-approvals-and-sandbox",
        "in a box, the box is codex's fence"
    );
    assert_eq!(flags("gemini", ReadOnly, Host), "--approval-mode default");
    assert_eq!(flags("gemini", Full, Host), "--approval-mode yolo");
    let deprecated = [
        "--full-auto",
        "--yolo",
        "-y",
        "--dangerously-skip-permissions",
    ];
    for preset in ["claude-code", "codex", "gemini"] {
        for level in [ReadOnly, Edit, Full] {
            for enclosure in [Host, Box] {
                let argv = argv(&with_autonomy(preset, level), enclosure);
                assert!(
                    !argv.iter().any(|a| deprecated.contains(&a.as_str())),
                    "{preset} {level:?} {enclosure:?}: {argv:?}"
                );
            }
        }
    }
    let boxed = invocation(&with_autonomy("claude-code", Full), &builtin(), Box).unwrap();
    assert_eq!(boxed.env, [("IS_SANDBOX".to_owned(), "1".to_owned())]);
    let host = invocation(&with_autonomy("claude-code", Full), &builtin(), Host).unwrap();
    assert!(host.env.is_empty(), "only a box says it is a sandbox");
    let mut own = spec(None);
    own.agent = Some(AgentSpec {
        autonomy: Some(Full),
        ..agent(COMMAND, None, &[]).unwrap()
    });
    assert!(invocation(&own, &builtin(), Host)
        .unwrap_err()
        .contains("not the task's own command"));
}

#[test]
fn a_run_adds_the_budget_left_and_the_conversation_it_resumes() {
    let claude = invocation(
        &spec(agent("claude-code", None, &[])),
        &builtin(),
        Enclosure::Host,
    )
    .unwrap();
    let argv = claude.argv(RunArgs {
        resume: Some("s-1"),
        budget_usd: Some(0.25),
    });
    assert_eq!(
        argv[argv.len() - 4..],
        ["--max-budget-usd", "0.2500", "--resume", "s-1"]
    );
    let codex = invocation(
        &spec(agent("codex", None, &[])),
        &builtin(),
        Enclosure::Host,
    )
    .unwrap();
    let argv = codex.argv(RunArgs {
        resume: Some("t-1"),
        budget_usd: Some(1.0),
    });
    assert_eq!(
        argv,
        [
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "resume",
            "t-1",
            "-"
        ],
        "codex has no budget flag; a resumed run is `exec resume ID -`"
    );
    let gemini = invocation(
        &spec(agent("gemini", None, &[])),
        &builtin(),
        Enclosure::Host,
    )
    .unwrap();
    assert!(gemini
        .argv(RunArgs {
            resume: Some("g-1"),
            budget_usd: None
        })
        .ends_with(&["--resume".to_owned(), "g-1".to_owned()]));
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
        parse(Format::ClaudeCode, r#"{"type":"control_request"}"#),
        None
    );
    assert_eq!(
        parse(
            Format::ClaudeCode,
            r#"{"type":"system","subtype":"hook_started"}"#
        ),
        Some(Parsed::quiet()),
        "the CLI's bookkeeping is understood and not shown"
    );
    assert_eq!(parse(Format::Plain, r#"{"type":"assistant"}"#), None);
}

/// Item shapes from openai/codex `codex-rs/exec/src/exec_events.rs` @ 08a1f30 (no published
/// transcript holds these item types): each becomes the event the docs promise.
#[test]
fn every_codex_item_type_becomes_an_event() {
    let mut stream = Parser::new(Format::Codex, std::path::Path::new("/work/tree"));
    let mut line = |text: &str| stream.line(text).unwrap().events;
    let change = r#"{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"/work/tree/src/a.rs","kind":"add"},{"path":"/work/tree/old.rs","kind":"delete"},{"path":"/elsewhere/b.rs","kind":"update"}],"status":"completed"}}"#;
    assert_eq!(
        line(change),
        [
            AgentEvent::FileChange {
                path: "src/a.rs".into(),
                change: "add".into()
            },
            AgentEvent::FileChange {
                path: "old.rs".into(),
                change: "delete".into()
            },
            AgentEvent::FileChange {
                path: "/elsewhere/b.rs".into(),
                change: "update".into()
            },
        ],
        "paths in the worktree are made relative to it"
    );
    let started = r#"{"type":"item.started","item":{"id":"item_3","type":"mcp_tool_call","server":"docs","tool":"search","arguments":{"q":"x"},"status":"in_progress"}}"#;
    assert!(
        matches!(&line(started)[..], [AgentEvent::ToolCall { name, .. }] if name == "docs/search")
    );
    let failed = r#"{"type":"item.completed","item":{"id":"item_3","type":"mcp_tool_call","server":"docs","tool":"search","arguments":{"q":"x"},"result":null,"error":{"message":"server gone"},"status":"failed"}}"#;
    assert_eq!(
        line(failed),
        [AgentEvent::ToolResult {
            id: Some("item_3".into()),
            output: "server gone".into(),
            is_error: true
        }],
        "a call shown when it started is not shown twice"
    );
    let answered = r#"{"type":"item.completed","item":{"id":"item_4","type":"mcp_tool_call","server":"docs","tool":"search","arguments":{},"result":{"content":[{"type":"text","text":"found"}],"structured_content":null},"error":null,"status":"completed"}}"#;
    assert!(
        matches!(&line(answered)[..], [AgentEvent::ToolCall { .. }, AgentEvent::ToolResult { output, is_error: false, .. }] if output == "found")
    );
    let search = r#"{"type":"item.completed","item":{"id":"item_5","type":"web_search","query":"rust jiff","action":{"type":"search","query":"rust jiff"}}}"#;
    assert!(
        matches!(&line(search)[..], [AgentEvent::ToolCall { name, .. }] if name == "web_search")
    );
    let todo = r#"{"type":"item.updated","item":{"id":"item_6","type":"todo_list","items":[{"text":"a","completed":true}]}}"#;
    assert!(matches!(&line(todo)[..], [AgentEvent::ToolCall { name, .. }] if name == "todo_list"));
    let warning = r#"{"type":"item.completed","item":{"id":"item_7","type":"error","message":"model rerouted: a -> b"}}"#;
    assert_eq!(
        line(warning),
        [AgentEvent::Warning {
            message: "model rerouted: a -> b".into()
        }]
    );
    let retried = r#"{"type":"error","message":"Reconnecting... 1/5","will_retry":true}"#;
    assert!(matches!(&line(retried)[..], [AgentEvent::Warning { .. }]));
    let thinking = r#"{"type":"item.completed","item":{"id":"item_8","type":"reasoning","text":"<promise>COMPLETE</promise>"}}"#;
    assert!(
        line(thinking).is_empty(),
        "reasoning is not the agent's words"
    );
}
