//! Claude Code's `stream-json` output: `assistant` messages (text, tool_use), `user`
//! messages (tool_result), and the final `result` with turns, usage and cost.

use kiln_protocol::{AgentEvent, Usage};
use serde_json::Value;

use super::{clip, text_of, Parsed};

pub fn parse(value: &Value) -> Option<Parsed> {
    match value.get("type")?.as_str()? {
        "assistant" => {
            let content = value.get("message")?.get("content")?.as_array()?;
            let events = content
                .iter()
                .filter_map(|part| match part.get("type")?.as_str()? {
                    "text" => Some(AgentEvent::Text {
                        text: part.get("text")?.as_str()?.to_owned(),
                    }),
                    "tool_use" => Some(AgentEvent::ToolCall {
                        id: part.get("id").and_then(Value::as_str).map(str::to_owned),
                        name: part.get("name")?.as_str()?.to_owned(),
                        input: part.get("input").cloned().unwrap_or(Value::Null),
                    }),
                    _ => None,
                })
                .collect();
            Some(Parsed {
                events,
                new_turn: true,
            })
        }
        "user" => {
            let content = value.get("message")?.get("content")?.as_array()?;
            let events: Vec<AgentEvent> = content
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str) == Some("tool_result"))
                .map(|part| AgentEvent::ToolResult {
                    id: part
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    output: clip(&text_of(part.get("content").unwrap_or(&Value::Null))),
                    is_error: part
                        .get("is_error")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
                .collect();
            (!events.is_empty()).then_some(Parsed {
                events,
                new_turn: false,
            })
        }
        "result" => {
            let usage = value.get("usage");
            let count = |key: &str| {
                usage
                    .and_then(|u| u.get(key))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            let failed = value
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || value
                    .get("subtype")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s != "success");
            Some(Parsed {
                events: vec![AgentEvent::Result {
                    text: value
                        .get("result")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    is_error: failed,
                    usage: Usage {
                        turns: value.get("num_turns").and_then(Value::as_u64),
                        input_tokens: count("input_tokens"),
                        cached_input_tokens: count("cache_read_input_tokens"),
                        output_tokens: count("output_tokens"),
                        cost_usd: value.get("total_cost_usd").and_then(Value::as_f64),
                    },
                }],
                new_turn: false,
            })
        }
        _ => None,
    }
}
