//! Watching an agent's output as it streams: parse it with the preset, stream the result,
//! notice the completion signal, add up the usage the agent reports, and say when a turn or
//! cost budget is used up.

use kiln_protocol::{AgentEvent, EventBody, LineEncoding, LogLine, StopReason, Stream, Usage};

use super::budget::LogBudget;
use super::redact::Needles;
use crate::presets::{self, Format};

/// What the agent loop should do after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep going.
    Continue,
    /// The completion signal appeared: the agent may finish, within the grace period.
    Completed,
    /// A budget is used up: stop the agent.
    Stop(StopReason),
}

/// Limits that span all iterations of an attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct Budgets {
    /// Most turns.
    pub max_turns: Option<u64>,
    /// Most cost in US dollars.
    pub max_cost_usd: Option<f64>,
}

/// Watches one run of the agent.
pub struct Watcher<'a> {
    format: Format,
    /// The task's secrets, redacted again from what the preset decodes: an escape in the
    /// JSON (`\"`, `\\`, `\u00e9`) hides a secret from the redaction of the raw line.
    needles: Needles,
    signal: Option<&'a str>,
    recent_text: String,
    budgets: Budgets,
    earlier: Usage,
    /// Usage this run reported.
    pub usage: Usage,
    /// Turns seen starting in this run.
    pub turns_started: u64,
    /// True once the completion signal appeared.
    pub signaled: bool,
    log: &'a mut LogBudget,
    emit: &'a mut (dyn FnMut(EventBody) + Send),
}

impl std::fmt::Debug for Watcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl<'a> Watcher<'a> {
    /// A watcher for one run; `earlier` is the usage of the attempt's earlier runs.
    pub fn new(
        format: Format,
        needles: Needles,
        signal: Option<&'a str>,
        budgets: Budgets,
        earlier: Usage,
        log: &'a mut LogBudget,
        emit: &'a mut (dyn FnMut(EventBody) + Send),
    ) -> Self {
        Self {
            format,
            needles,
            signal: signal.filter(|s| !s.is_empty()),
            recent_text: String::new(),
            budgets,
            earlier,
            usage: Usage::default(),
            turns_started: 0,
            signaled: false,
            log,
            emit,
        }
    }

    /// Handles one (already redacted) line.
    pub fn on_line(&mut self, line: LogLine) -> Verdict {
        let parsed = match (line.stream, line.encoding) {
            (Stream::Stdout, LineEncoding::Utf8) => presets::parse(self.format, &line.line),
            _ => None,
        };
        let Some(parsed) = parsed else {
            self.notice_text(&line.line);
            for admitted in self.log.admit(line) {
                (self.emit)(EventBody::Log(admitted));
            }
            return self.verdict();
        };
        self.turns_started += u64::from(parsed.new_turn);
        for event in parsed.events {
            let event = self.redacted(event);
            match &event {
                AgentEvent::Text { text } => self.notice_text(text),
                AgentEvent::Result { text, usage, .. } => {
                    if let Some(text) = text {
                        self.notice_text(text);
                    }
                    self.usage.add(usage);
                }
                _ => {}
            }
            let size = serde_json::to_string(&event).map_or(0, |s| s.len());
            if self.log.admit_bytes(size) {
                (self.emit)(EventBody::Agent(event));
            }
        }
        self.verdict()
    }

    /// `event` with the task's secrets redacted from every string in it.
    fn redacted(&self, event: AgentEvent) -> AgentEvent {
        if self.needles.is_empty() {
            return event;
        }
        let Ok(mut value) = serde_json::to_value(&event) else {
            return event;
        };
        self.needles.redact_json(&mut value);
        serde_json::from_value(value).unwrap_or(event)
    }

    fn notice_text(&mut self, text: &str) {
        let Some(signal) = self.signal else { return };
        self.recent_text.push_str(text);
        if self.recent_text.contains(signal) {
            self.signaled = true;
        }
        let keep = signal.len() * 2;
        if self.recent_text.len() > keep {
            let cut = self.recent_text.len() - keep;
            let cut = (cut..self.recent_text.len())
                .find(|i| self.recent_text.is_char_boundary(*i))
                .unwrap_or(0);
            self.recent_text.drain(..cut);
        }
    }

    /// Turns used so far over all runs, as best known.
    pub fn turns(&self) -> u64 {
        let reported = self.usage.turns.unwrap_or(0);
        self.earlier.turns.unwrap_or(0) + reported.max(self.turns_started)
    }

    fn cost(&self) -> f64 {
        self.earlier.cost_usd.unwrap_or(0.0) + self.usage.cost_usd.unwrap_or(0.0)
    }

    fn verdict(&self) -> Verdict {
        if self.budgets.max_turns.is_some_and(|max| self.turns() > max) {
            return Verdict::Stop(StopReason::TurnLimit);
        }
        if self
            .budgets
            .max_cost_usd
            .is_some_and(|max| self.cost() > max)
        {
            return Verdict::Stop(StopReason::CostLimit);
        }
        if self.signaled {
            return Verdict::Completed;
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use kiln_protocol::Stream;

    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine::from_bytes(Stream::Stdout, text.as_bytes())
    }

    #[test]
    fn the_signal_counts_in_parsed_text_but_not_in_raw_json() {
        let mut log = LogBudget::new(u64::MAX);
        let mut out = Vec::new();
        let mut emit = |e: EventBody| out.push(e);
        let mut watcher = Watcher::new(
            Format::ClaudeCode,
            Needles::default(),
            Some("DONE!"),
            Budgets::default(),
            Usage::default(),
            &mut log,
            &mut emit,
        );
        let tool = r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t","name":"Bash","input":{"command":"echo DONE!"}}]}}"#;
        assert_eq!(
            watcher.on_line(line(tool)),
            Verdict::Continue,
            "the signal inside a tool's input is not the agent saying it"
        );
        let text = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"All good. DONE!"}]}}"#;
        assert_eq!(watcher.on_line(line(text)), Verdict::Completed);
    }

    #[test]
    fn turn_and_cost_budgets_stop_the_run() {
        let mut log = LogBudget::new(u64::MAX);
        let mut emit = |_e: EventBody| {};
        let budgets = Budgets {
            max_turns: Some(1),
            max_cost_usd: None,
        };
        let mut watcher = Watcher::new(
            Format::ClaudeCode,
            Needles::default(),
            None,
            budgets,
            Usage::default(),
            &mut log,
            &mut emit,
        );
        let turn = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}"#;
        assert_eq!(watcher.on_line(line(turn)), Verdict::Continue);
        assert_eq!(
            watcher.on_line(line(turn)),
            Verdict::Stop(StopReason::TurnLimit)
        );

        let mut log = LogBudget::new(u64::MAX);
        let mut emit = |_e: EventBody| {};
        let budgets = Budgets {
            max_turns: None,
            max_cost_usd: Some(0.5),
        };
        let earlier = Usage {
            cost_usd: Some(0.4),
            ..Usage::default()
        };
        let mut watcher = Watcher::new(
            Format::ClaudeCode,
            Needles::default(),
            None,
            budgets,
            earlier,
            &mut log,
            &mut emit,
        );
        let result = r#"{"type":"result","subtype":"success","num_turns":1,"total_cost_usd":0.2,"usage":{}}"#;
        assert_eq!(
            watcher.on_line(line(result)),
            Verdict::Stop(StopReason::CostLimit)
        );
    }
}
