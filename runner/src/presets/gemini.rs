//! Gemini CLI's `stream-json` output (tests/fixtures/agents/gemini/): `init` (the session a
//! later run resumes), the CLI's echo of the prompt as a `user` message, assistant
//! `message` chunks (every one `delta: true`), `tool_use`, `tool_result`, `error` events
//! (severity `warning` or `error`) and the final `result` with token stats (no cost). A
//! `result` with `status: "error"` carries the error that ended the run.

use kiln_protocol::{AgentEvent, Usage};
use serde_json::Value;

use super::parser::{clip, count, string, Parsed, RateLimit, UsageReport};

/// One run's stream.
#[derive(Debug, Default)]
pub struct Stream {
    /// The model is answering: its chunks and tool calls belong to the turn counted when
    /// the first of them arrived. A prompt or a tool's result ends it.
    answering: bool,
    /// An `error` event of severity `error`: the run failed of it, whatever `result` says.
    fatal: Option<String>,
}

impl Stream {
    pub fn line(&mut self, value: &Value) -> Option<Parsed> {
        match string(value, "type")? {
            "init" => {
                self.answering = false;
                Some(match string(value, "session_id") {
                    Some(id) => Parsed::events(vec![AgentEvent::Session { id: id.to_owned() }]),
                    None => Parsed::quiet(),
                })
            }
            "message" if string(value, "role") == Some("assistant") => {
                let text = string(value, "content")?.to_owned();
                Some(Parsed {
                    events: vec![AgentEvent::Text { text }],
                    new_turn: self.answer(),
                    ..Parsed::default()
                })
            }
            // The CLI's echo of the prompt: not the agent's words.
            "message" => {
                self.answering = false;
                Some(Parsed {
                    aside: true,
                    ..Parsed::default()
                })
            }
            "tool_use" => Some(Parsed {
                events: vec![AgentEvent::ToolCall {
                    id: string(value, "tool_id").map(str::to_owned),
                    name: string(value, "tool_name")?.to_owned(),
                    input: value.get("parameters").cloned().unwrap_or(Value::Null),
                }],
                new_turn: self.answer(),
                ..Parsed::default()
            }),
            "tool_result" => {
                self.answering = false;
                Some(Parsed::events(vec![tool_result(value)]))
            }
            "error" => Some(self.error(value)),
            "result" => Some(self.result(value)),
            _ => None,
        }
    }

    /// True when this chunk or call starts the model's answer.
    fn answer(&mut self) -> bool {
        !std::mem::replace(&mut self.answering, true)
    }

    fn error(&mut self, value: &Value) -> Parsed {
        let message = string(value, "message")
            .unwrap_or("an error without a message")
            .to_owned();
        if string(value, "severity") == Some("warning") {
            return Parsed::events(vec![AgentEvent::Warning { message }]);
        }
        self.fatal = Some(message.clone());
        let mut parsed = Parsed::events(vec![AgentEvent::Error {
            message: message.clone(),
        }]);
        parsed.rate_limit = RateLimit::detect(&message);
        parsed.failure = Some(message);
        parsed
    }

    fn result(&mut self, value: &Value) -> Parsed {
        let stats = value.get("stats");
        let cached = count(stats, "cached");
        // `input` is the uncached part; older CLIs report only `input_tokens`, cache
        // included.
        let uncached = stats
            .and_then(|s| s.get("input"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| count(stats, "input_tokens").saturating_sub(cached));
        let usage = Usage {
            turns: None,
            input_tokens: uncached,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            output_tokens: count(stats, "output_tokens"),
            reasoning_tokens: None,
            cost_usd: None,
        };
        let reported = (string(value, "status") == Some("error")).then(|| {
            value
                .get("error")
                .and_then(|e| string(e, "message"))
                .unwrap_or("the run ended with an error")
                .to_owned()
        });
        let failure = reported.or_else(|| self.fatal.take());
        Parsed {
            events: vec![AgentEvent::Result {
                text: None,
                is_error: failure.is_some(),
                usage: usage.clone(),
            }],
            usage: Some(UsageReport::Total(usage)),
            rate_limit: failure.as_deref().and_then(RateLimit::detect),
            failure,
            ..Parsed::default()
        }
    }
}

fn tool_result(value: &Value) -> AgentEvent {
    let failed = string(value, "status") != Some("success");
    let error = value.get("error").and_then(|e| string(e, "message"));
    let output = match (string(value, "output"), error) {
        (Some(output), _) if !output.is_empty() => output,
        (_, Some(error)) => error,
        (output, None) => output.unwrap_or(""),
    };
    AgentEvent::ToolResult {
        id: string(value, "tool_id").map(str::to_owned),
        output: clip(output),
        is_error: failed,
    }
}
