//! `kiln logs`: print (and follow) a task's events.

use std::io::Write as _;
use std::process::ExitCode;

use futures_util::StreamExt as _;
use kiln_protocol::{AgentEvent, EventBody, LineEncoding, Stream};

use super::client::ApiClient;
use super::LogsArgs;
use crate::api_types::AttemptEvent;

/// How to print events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Print {
    /// stdout lines to stdout, stderr and kiln's own lines to stderr.
    Human,
    /// One JSON event per line on stdout.
    Json,
    /// Nothing: just wait for the end.
    Nothing,
}

/// `kiln logs ID [-f]`.
pub async fn logs(client: &ApiClient, args: LogsArgs, json: bool) -> anyhow::Result<ExitCode> {
    let print = if json { Print::Json } else { Print::Human };
    stream(
        client,
        &args.id,
        args.attempt,
        args.since_seq,
        args.follow,
        print,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a task's events from the API and prints them as they arrive.
pub async fn stream(
    client: &ApiClient,
    id: &str,
    attempt: Option<u32>,
    after_seq: u64,
    follow: bool,
    print: Print,
) -> anyhow::Result<()> {
    let mut path = format!("/v1/tasks/{id}/events?after_seq={after_seq}&follow={follow}");
    if let Some(attempt) = attempt {
        path.push_str(&format!("&attempt={attempt}"));
    }
    let response = client.get_stream(&path).await?;
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk?);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let event: AttemptEvent = serde_json::from_slice(&line)?;
            show(&event, print);
        }
    }
    Ok(())
}

fn show(event: &AttemptEvent, print: Print) {
    match print {
        Print::Nothing => {}
        Print::Json => {
            println!("{}", serde_json::to_string(event).unwrap_or_default());
        }
        Print::Human => match &event.event.body {
            EventBody::Log(line) => {
                let bytes = line.raw_bytes();
                let mut text = match line.encoding {
                    LineEncoding::Utf8 => line.line.clone().into_bytes(),
                    LineEncoding::Base64 => bytes,
                };
                text.push(b'\n');
                let _ = match line.stream {
                    Stream::Stdout => std::io::stdout().write_all(&text),
                    Stream::Stderr => std::io::stderr().write_all(&text),
                    Stream::System => {
                        std::io::stderr().write_all(&[b"[kiln] ", text.as_slice()].concat())
                    }
                };
            }
            EventBody::Status { phase, until } => match until {
                Some(until) => eprintln!(
                    "[kiln] attempt {}: {} until {}",
                    event.attempt,
                    phase.as_str(),
                    super::render::time(Some(*until))
                ),
                None => eprintln!("[kiln] attempt {}: {}", event.attempt, phase.as_str()),
            },
            EventBody::Agent(agent) => eprintln!("{}", describe(agent)),
            EventBody::Finished { outcome } => {
                eprintln!(
                    "[kiln] attempt {} {}: {}",
                    event.attempt,
                    outcome.status.as_str(),
                    outcome.message
                );
            }
        },
    }
}

/// One line for an agent event: who did what.
fn describe(event: &AgentEvent) -> String {
    match event {
        AgentEvent::Text { text } => format!("agent: {text}"),
        AgentEvent::ToolCall { name, input, .. } => {
            let input = input.to_string();
            format!("agent → {name} {}", super::render::clip(&input, 160))
        }
        AgentEvent::ToolResult {
            output, is_error, ..
        } => {
            let first = output.lines().next().unwrap_or("");
            let more = output.lines().count().saturating_sub(1);
            let tail = if more > 0 {
                format!(" (+{more} lines)")
            } else {
                String::new()
            };
            let mark = if *is_error { "✗" } else { "←" };
            format!("  {mark} {}{tail}", super::render::clip(first, 160))
        }
        AgentEvent::FileChange { path, change } => format!("agent ✎ {change} {path}"),
        AgentEvent::Error { message } => format!("agent ✗ {message}"),
        AgentEvent::Warning { message } => format!("agent ! {message}"),
        AgentEvent::Session { id } => format!("agent session {id}"),
        AgentEvent::Result {
            text,
            is_error,
            usage,
        } => {
            let verdict = if *is_error { "failed" } else { "done" };
            let text = text.as_deref().map_or(String::new(), |t| {
                format!(": {}", super::render::clip(t, 200))
            });
            format!("agent {verdict}{text} [{}]", super::render::usage(usage))
        }
    }
}
