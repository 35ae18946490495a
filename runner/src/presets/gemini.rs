//! Gemini CLI's `stream-json` output: assistant `message` chunks, `tool_use`, `tool_result`,
//! `error`, and the final `result` with token stats (Gemini reports no cost).

use kiln_protocol::{AgentEvent, Usage};
use serde_json::Value;

use super::{clip, Parsed};

pub fn parse(value: &Value) -> Option<Parsed> {
    let parsed = |events: Vec<AgentEvent>, new_turn| Some(Parsed { events, new_turn });
    match value.get("type")?.as_str()? {
        "message" if value.get("role").and_then(Value::as_str) == Some("assistant") => {
            let delta = value.get("delta").and_then(Value::as_bool).unwrap_or(false);
            parsed(
                vec![AgentEvent::Text {
                    text: value.get("content")?.as_str()?.to_owned(),
                }],
                !delta,
            )
        }
        "tool_use" => parsed(
            vec![AgentEvent::ToolCall {
                id: value
                    .get("tool_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                name: value.get("tool_name")?.as_str()?.to_owned(),
                input: value.get("parameters").cloned().unwrap_or(Value::Null),
            }],
            false,
        ),
        "tool_result" => {
            let failed = value.get("status").and_then(Value::as_str) != Some("success");
            let output = value
                .get("output")
                .and_then(Value::as_str)
                .or_else(|| {
                    value
                        .get("error")
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                })
                .unwrap_or("");
            parsed(
                vec![AgentEvent::ToolResult {
                    id: value
                        .get("tool_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    output: clip(output),
                    is_error: failed,
                }],
                false,
            )
        }
        "error" => parsed(
            vec![AgentEvent::Error {
                message: value.get("message")?.as_str()?.to_owned(),
            }],
            false,
        ),
        "result" => {
            let stats = value.get("stats");
            let count = |key: &str| {
                stats
                    .and_then(|s| s.get(key))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            parsed(
                vec![AgentEvent::Result {
                    text: None,
                    is_error: value
                        .get("status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s != "success"),
                    usage: Usage {
                        turns: None,
                        input_tokens: count("input_tokens"),
                        cached_input_tokens: count("cached"),
                        output_tokens: count("output_tokens"),
                        cost_usd: None,
                    },
                }],
                false,
            )
        }
        _ => None,
    }
}
