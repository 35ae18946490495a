//! Claude Code's `stream-json` output (tests/fixtures/agents/claude/): `system` lines (the
//! session's id in `init`, API retries), `assistant` lines (one per content block, the
//! blocks of one model call sharing `message.id`), `user` lines (tool results),
//! `rate_limit_event`s and the final `result` with turns, usage and cost. Lines with
//! `parent_tool_use_id` set are a subagent's: its tool calls are shown, its words are not
//! the agent's. A synthetic `assistant` line with a top-level `error` is an API error.

use std::collections::HashSet;

use kiln_protocol::{AgentEvent, StopReason, UnixMillis, Usage};
use serde_json::Value;

use super::limits;
use super::parser::{clip, count, string, text_of, Parsed, RateLimit, UsageReport};

/// One run's stream.
#[derive(Debug, Default)]
pub struct Stream {
    /// Ids of the top-level model calls seen: one turn each, however many lines.
    calls: HashSet<String>,
    /// When the provider's limit resets, from the last rejected `rate_limit_event`.
    resets_at: Option<UnixMillis>,
}

impl Stream {
    pub fn line(&mut self, value: &Value) -> Option<Parsed> {
        match string(value, "type")? {
            "system" => Some(system(value)),
            "rate_limit_event" => {
                let info = value.get("rate_limit_info");
                if info.and_then(|i| string(i, "status")) == Some("rejected") {
                    self.resets_at = info
                        .and_then(|i| i.get("resetsAt"))
                        .and_then(Value::as_i64)
                        .map(|seconds| seconds.saturating_mul(1000));
                }
                Some(Parsed::quiet())
            }
            "assistant" => self.assistant(value),
            "user" => user(value),
            "result" => Some(self.result(value)),
            _ => None,
        }
    }

    fn assistant(&mut self, value: &Value) -> Option<Parsed> {
        let message = value.get("message")?;
        let content = message.get("content")?.as_array()?;
        let subagent = value
            .get("parent_tool_use_id")
            .is_some_and(|p| !p.is_null());
        if let Some(kind) = string(value, "error") {
            // The CLI's own message about a failed API call, not the model's words.
            let text = text_of(message.get("content").unwrap_or(&Value::Null));
            let mut parsed = Parsed::events(vec![AgentEvent::Error {
                message: text.clone(),
            }]);
            if kind == "rate_limit" || limits::is_rate_limit(&text) {
                parsed.rate_limit = Some(self.limit(&text));
            }
            return Some(parsed);
        }
        let events = content
            .iter()
            .filter_map(|part| match string(part, "type")? {
                "text" if !subagent => Some(AgentEvent::Text {
                    text: string(part, "text")?.to_owned(),
                }),
                "tool_use" => Some(AgentEvent::ToolCall {
                    id: string(part, "id").map(str::to_owned),
                    name: string(part, "name")?.to_owned(),
                    input: part.get("input").cloned().unwrap_or(Value::Null),
                }),
                _ => None,
            })
            .collect();
        let new_turn = !subagent
            && match string(message, "id") {
                Some(id) => self.calls.insert(id.to_owned()),
                None => true,
            };
        Some(Parsed {
            events,
            new_turn,
            aside: subagent,
            ..Parsed::default()
        })
    }

    fn result(&mut self, value: &Value) -> Parsed {
        let usage = value.get("usage");
        let reasoning = usage
            .and_then(|u| u.get("output_tokens_details"))
            .and_then(|d| d.get("thinking_tokens"))
            .and_then(Value::as_u64);
        let usage = Usage {
            turns: value.get("num_turns").and_then(Value::as_u64),
            input_tokens: count(usage, "input_tokens"),
            cache_read_tokens: count(usage, "cache_read_input_tokens"),
            cache_write_tokens: count(usage, "cache_creation_input_tokens"),
            output_tokens: count(usage, "output_tokens"),
            reasoning_tokens: reasoning,
            cost_usd: value.get("total_cost_usd").and_then(Value::as_f64),
        };
        let text = string(value, "result").map(str::to_owned);
        let subtype = string(value, "subtype").unwrap_or("success");
        // An API error is `subtype: success` with `is_error: true`; a turn or budget limit
        // is an `error_*` subtype whatever `is_error` says.
        let failed = value
            .get("is_error")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || subtype != "success";
        let failure = failed.then(|| failure_message(value, subtype, text.as_deref()));
        let limited = value.get("api_error_status").and_then(Value::as_u64) == Some(429)
            || failure.as_deref().is_some_and(limits::is_rate_limit);
        let rate_limit = match (&failure, limited) {
            (Some(message), true) => Some(self.limit(message)),
            _ => None,
        };
        let exhausted = match subtype {
            "error_max_turns" => Some(StopReason::TurnLimit),
            "error_max_budget_usd" => Some(StopReason::CostLimit),
            _ => None,
        };
        Parsed {
            events: vec![AgentEvent::Result {
                text,
                is_error: failed,
                usage: usage.clone(),
            }],
            usage: Some(UsageReport::Total(usage)),
            failure,
            rate_limit,
            exhausted,
            ..Parsed::default()
        }
    }

    fn limit(&self, message: &str) -> RateLimit {
        RateLimit {
            resets_at: self
                .resets_at
                .or_else(|| limits::reset_time(message, jiff::Timestamp::now())),
            message: message.to_owned(),
        }
    }
}

/// The agent's own words for a failed run: the result text, its `errors`, or what the
/// subtype means.
fn failure_message(value: &Value, subtype: &str, text: Option<&str>) -> String {
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        return text.to_owned();
    }
    let errors: Vec<&str> = value
        .get("errors")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    match subtype {
        "error_max_turns" => "reached the maximum number of turns".to_owned(),
        "error_max_budget_usd" => "reached its budget (--max-budget-usd)".to_owned(),
        "error_during_execution" => "an error during execution".to_owned(),
        other => format!("ended with {other}"),
    }
}

fn system(value: &Value) -> Parsed {
    match string(value, "subtype") {
        Some("init") => match string(value, "session_id") {
            Some(id) => Parsed::events(vec![AgentEvent::Session { id: id.to_owned() }]),
            None => Parsed::quiet(),
        },
        Some("api_retry") => Parsed::events(vec![AgentEvent::Warning {
            message: format!(
                "retrying an API request (attempt {} of {}, status {})",
                count(Some(value), "attempt"),
                count(Some(value), "max_retries"),
                value
                    .get("error_status")
                    .map_or_else(|| "unknown".to_owned(), Value::to_string)
            ),
        }]),
        // Hooks, background tasks: the CLI's bookkeeping.
        _ => Parsed::quiet(),
    }
}

fn user(value: &Value) -> Option<Parsed> {
    let content = value.get("message")?.get("content")?;
    let subagent = value
        .get("parent_tool_use_id")
        .is_some_and(|p| !p.is_null());
    let events: Vec<AgentEvent> = content
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter(|part| string(part, "type") == Some("tool_result"))
                .map(|part| AgentEvent::ToolResult {
                    id: string(part, "tool_use_id").map(str::to_owned),
                    output: clip(&text_of(part.get("content").unwrap_or(&Value::Null))),
                    is_error: part
                        .get("is_error")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    // A subagent's prompt, or the CLI's replay of the user's, has no results: nothing is
    // shown, and it is never the agent speaking.
    Some(Parsed {
        aside: subagent || events.is_empty(),
        events,
        ..Parsed::default()
    })
}
