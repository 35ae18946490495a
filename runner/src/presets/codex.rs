//! Codex's `exec --json` output (tests/fixtures/agents/codex/): `thread.started` (the
//! thread a later run resumes), `turn.started`, `item.started|updated|completed` (agent
//! messages, reasoning, commands, file changes, MCP tool calls, web searches, to-do lists,
//! error items that are warnings), `turn.completed` with usage, `turn.failed`, and `error`
//! events. An `error` event is also sent for retried requests ("Reconnecting... 1/5"), so
//! it fails the run only when `turn.failed` follows or the turn never completes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kiln_protocol::{AgentEvent, Usage};
use serde_json::{json, Value};

use super::parser::{clip, count, string, text_of, Parsed, RateLimit, UsageReport};

/// One run's stream.
#[derive(Debug)]
pub struct Stream {
    /// Where the agent works, as it names it (changed files are shown relative to it).
    worktree: PathBuf,
    /// Items whose call was shown when they started.
    started: HashSet<String>,
    /// A turn began and has neither completed nor failed.
    turn_open: bool,
    /// The last `error` event's message, in case the turn dies of it.
    last_error: Option<String>,
}

impl Stream {
    pub fn new(worktree: &Path) -> Self {
        Self {
            worktree: worktree.to_path_buf(),
            started: HashSet::new(),
            turn_open: false,
            last_error: None,
        }
    }

    pub fn line(&mut self, value: &Value) -> Option<Parsed> {
        match string(value, "type")? {
            "thread.started" => Some(match string(value, "thread_id") {
                Some(id) => Parsed::events(vec![AgentEvent::Session { id: id.to_owned() }]),
                None => Parsed::quiet(),
            }),
            "turn.started" => {
                self.turn_open = true;
                self.last_error = None;
                Some(Parsed {
                    new_turn: true,
                    ..Parsed::default()
                })
            }
            "turn.completed" => {
                self.turn_open = false;
                self.last_error = None;
                Some(turn_usage(value.get("usage")))
            }
            "turn.failed" => {
                self.turn_open = false;
                let message = value
                    .get("error")
                    .and_then(|e| string(e, "message"))
                    .map(str::to_owned)
                    .or_else(|| self.last_error.take())
                    .unwrap_or_else(|| "the turn failed".to_owned());
                Some(failed(message))
            }
            "error" => {
                let message = string(value, "message")?.to_owned();
                let retried = value.get("will_retry").and_then(Value::as_bool) == Some(true);
                if !retried {
                    self.last_error = Some(message.clone());
                }
                Some(Parsed::events(vec![AgentEvent::Warning { message }]))
            }
            "item.started" | "item.updated" => Some(self.item_started(value.get("item")?)),
            "item.completed" => self.item_completed(value.get("item")?),
            _ => None,
        }
    }

    /// A turn left open with an error behind it failed of that error.
    pub fn end(&mut self) -> Option<Parsed> {
        if !std::mem::take(&mut self.turn_open) {
            return None;
        }
        self.last_error.take().map(failed)
    }

    fn item_started(&mut self, item: &Value) -> Parsed {
        let id = string(item, "id").map(str::to_owned);
        let call = match string(item, "type") {
            Some("command_execution") => Some(command_call(item)),
            Some("mcp_tool_call") => Some(mcp_call(item)),
            Some("todo_list") => Some(todo_call(item)),
            Some("web_search") => Some(search_call(item)),
            _ => None,
        };
        match call {
            Some(call) => {
                self.started.extend(id);
                Parsed::events(vec![call])
            }
            None => Parsed::quiet(),
        }
    }

    fn item_completed(&mut self, item: &Value) -> Option<Parsed> {
        let id = string(item, "id").map(str::to_owned);
        let shown = id.as_ref().is_some_and(|id| self.started.remove(id));
        let mut events = Vec::new();
        let mut call = |event: AgentEvent| {
            if !shown {
                events.push(event);
            }
        };
        match string(item, "type")? {
            "agent_message" => {
                return Some(Parsed::events(vec![AgentEvent::Text {
                    text: string(item, "text")?.to_owned(),
                }]))
            }
            // The model's thinking: neither shown as its words nor a completion signal.
            "reasoning" => return Some(Parsed::quiet()),
            "error" => {
                return Some(Parsed::events(vec![AgentEvent::Warning {
                    message: string(item, "message")?.to_owned(),
                }]))
            }
            "file_change" => return Some(Parsed::events(self.file_changes(item))),
            "command_execution" => {
                call(command_call(item));
                let exit = item.get("exit_code").and_then(Value::as_i64);
                events.push(AgentEvent::ToolResult {
                    id,
                    output: clip(string(item, "aggregated_output").unwrap_or("")),
                    is_error: exit.is_some_and(|code| code != 0)
                        || string(item, "status") == Some("failed"),
                });
            }
            "mcp_tool_call" => {
                call(mcp_call(item));
                let error = item.get("error").filter(|e| !e.is_null());
                let output = match error {
                    Some(error) => string(error, "message").unwrap_or("failed").to_owned(),
                    None => mcp_output(item.get("result")),
                };
                events.push(AgentEvent::ToolResult {
                    id,
                    output: clip(&output),
                    is_error: error.is_some() || string(item, "status") == Some("failed"),
                });
            }
            "web_search" => call(search_call(item)),
            "todo_list" => events.push(todo_call(item)),
            "collab_tool_call" => call(AgentEvent::ToolCall {
                id,
                name: format!("collab/{}", string(item, "tool").unwrap_or("call")),
                input: item.clone(),
            }),
            _ => return None,
        }
        Some(Parsed::events(events))
    }

    fn file_changes(&self, item: &Value) -> Vec<AgentEvent> {
        let failed = string(item, "status") == Some("failed");
        let Some(changes) = item.get("changes").and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut events: Vec<AgentEvent> = changes
            .iter()
            .filter_map(|change| {
                Some(AgentEvent::FileChange {
                    path: self.relative(string(change, "path")?),
                    change: string(change, "kind").unwrap_or("update").to_owned(),
                })
            })
            .collect();
        if failed {
            events.push(AgentEvent::Warning {
                message: "the file changes above failed to apply".to_owned(),
            });
        }
        events
    }

    /// `path` relative to the worktree when it is inside it.
    fn relative(&self, path: &str) -> String {
        match Path::new(path).strip_prefix(&self.worktree) {
            Ok(inside) if !inside.as_os_str().is_empty() => inside.to_string_lossy().into_owned(),
            _ => path.to_owned(),
        }
    }
}

/// `turn.completed`'s usage in kiln's shape: Codex counts cached (and cache-written)
/// input inside `input_tokens`, and reasoning inside `output_tokens`.
fn turn_usage(usage: Option<&Value>) -> Parsed {
    let cached = count(usage, "cached_input_tokens");
    let written = count(usage, "cache_write_input_tokens");
    let reasoning = usage
        .and_then(|u| u.get("reasoning_output_tokens"))
        .and_then(Value::as_u64);
    let usage = Usage {
        turns: Some(1),
        input_tokens: count(usage, "input_tokens").saturating_sub(cached + written),
        cache_read_tokens: cached,
        cache_write_tokens: written,
        output_tokens: count(usage, "output_tokens"),
        reasoning_tokens: reasoning,
        cost_usd: None,
    };
    Parsed {
        events: vec![AgentEvent::Result {
            text: None,
            is_error: false,
            usage: usage.clone(),
        }],
        usage: Some(UsageReport::Increment(usage)),
        ..Parsed::default()
    }
}

fn failed(message: String) -> Parsed {
    let rate_limit = RateLimit::detect(&message);
    Parsed {
        events: vec![AgentEvent::Error {
            message: message.clone(),
        }],
        failure: Some(message),
        rate_limit,
        ..Parsed::default()
    }
}

fn command_call(item: &Value) -> AgentEvent {
    AgentEvent::ToolCall {
        id: string(item, "id").map(str::to_owned),
        name: "command".into(),
        input: json!({ "command": item.get("command").cloned().unwrap_or(Value::Null) }),
    }
}

fn mcp_call(item: &Value) -> AgentEvent {
    AgentEvent::ToolCall {
        id: string(item, "id").map(str::to_owned),
        name: format!(
            "{}/{}",
            string(item, "server").unwrap_or("mcp"),
            string(item, "tool").unwrap_or("tool")
        ),
        input: item.get("arguments").cloned().unwrap_or(Value::Null),
    }
}

fn search_call(item: &Value) -> AgentEvent {
    AgentEvent::ToolCall {
        id: string(item, "id").map(str::to_owned),
        name: "web_search".into(),
        input: json!({
            "query": item.get("query").cloned().unwrap_or(Value::Null),
            "action": item.get("action").cloned().unwrap_or(Value::Null),
        }),
    }
}

fn todo_call(item: &Value) -> AgentEvent {
    AgentEvent::ToolCall {
        id: string(item, "id").map(str::to_owned),
        name: "todo_list".into(),
        input: json!({ "items": item.get("items").cloned().unwrap_or(Value::Null) }),
    }
}

/// An MCP result's text content, or its structured content as JSON.
fn mcp_output(result: Option<&Value>) -> String {
    let Some(result) = result.filter(|r| !r.is_null()) else {
        return String::new();
    };
    let text = text_of(result.get("content").unwrap_or(&Value::Null));
    if !text.is_empty() {
        return text;
    }
    result
        .get("structured_content")
        .filter(|s| !s.is_null())
        .map(Value::to_string)
        .unwrap_or_default()
}
