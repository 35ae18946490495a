//! Codex's `exec --json` output: `item.completed` items (agent messages, command
//! executions, file changes, MCP tool calls), per-turn usage in `turn.completed`, errors.

use kiln_protocol::{AgentEvent, Usage};
use serde_json::{json, Value};

use super::{clip, Parsed};

pub fn parse(value: &Value) -> Option<Parsed> {
    let parsed = |events: Vec<AgentEvent>| {
        Some(Parsed {
            events,
            new_turn: false,
        })
    };
    match value.get("type")?.as_str()? {
        "turn.started" => Some(Parsed {
            events: vec![],
            new_turn: true,
        }),
        "turn.completed" => {
            let usage = value.get("usage");
            let count = |key: &str| {
                usage
                    .and_then(|u| u.get(key))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            parsed(vec![AgentEvent::Result {
                text: None,
                is_error: false,
                usage: Usage {
                    turns: Some(1),
                    input_tokens: count("input_tokens"),
                    cached_input_tokens: count("cached_input_tokens"),
                    output_tokens: count("output_tokens"),
                    cost_usd: None,
                },
            }])
        }
        "turn.failed" => parsed(vec![AgentEvent::Error {
            message: value
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("turn failed")
                .to_owned(),
        }]),
        "error" => parsed(vec![AgentEvent::Error {
            message: value.get("message")?.as_str()?.to_owned(),
        }]),
        "item.completed" => item(value.get("item")?).and_then(parsed),
        _ => None,
    }
}

fn item(item: &Value) -> Option<Vec<AgentEvent>> {
    let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
    match item.get("type")?.as_str()? {
        "agent_message" => Some(vec![AgentEvent::Text {
            text: item.get("text")?.as_str()?.to_owned(),
        }]),
        "command_execution" => {
            let exit = item.get("exit_code").and_then(Value::as_i64);
            Some(vec![
                AgentEvent::ToolCall {
                    id: id.clone(),
                    name: "command".into(),
                    input: json!({ "command": item.get("command").cloned().unwrap_or(Value::Null) }),
                },
                AgentEvent::ToolResult {
                    id,
                    output: clip(
                        item.get("aggregated_output")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    ),
                    is_error: exit.is_some_and(|code| code != 0),
                },
            ])
        }
        "file_change" => Some(
            item.get("changes")?
                .as_array()?
                .iter()
                .filter_map(|change| {
                    Some(AgentEvent::FileChange {
                        path: change.get("path")?.as_str()?.to_owned(),
                        change: change
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("update")
                            .to_owned(),
                    })
                })
                .collect(),
        ),
        "mcp_tool_call" => Some(vec![AgentEvent::ToolCall {
            id,
            name: format!(
                "{}/{}",
                item.get("server").and_then(Value::as_str).unwrap_or("mcp"),
                item.get("tool").and_then(Value::as_str).unwrap_or("tool")
            ),
            input: item.get("arguments").cloned().unwrap_or(Value::Null),
        }]),
        "error" => Some(vec![AgentEvent::Error {
            message: item.get("message")?.as_str()?.to_owned(),
        }]),
        _ => None,
    }
}
