//! Watching an agent's output as it streams: parse it with the preset's parser, stream the
//! result, notice the completion signal in the agent's own words, add up the usage it
//! reports, keep what it says about its session, failure or rate limit, and say when a
//! turn or cost budget is used up.

use kiln_protocol::{AgentEvent, EventBody, LineEncoding, LogLine, StopReason, Stream, Usage};

use super::budget::LogBudget;
use super::redact::Needles;
use crate::presets::{Parsed, Parser, RateLimit, UsageReport};

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

/// What one run of the agent said about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Usage this run reported.
    pub usage: Usage,
    /// True once the completion signal appeared.
    pub signaled: bool,
    /// The agent said the run failed, in these words (redacted).
    pub failure: Option<String>,
    /// The agent stopped at its provider's limit.
    pub rate_limit: Option<RateLimit>,
    /// The conversation it named, for a later run to resume.
    pub session: Option<String>,
    /// It stopped itself at a budget it was given.
    pub exhausted: Option<StopReason>,
}

/// Watches one run of the agent.
pub struct Watcher<'a> {
    parser: Parser,
    /// The task's secrets, redacted again from what the parser decodes: an escape in the
    /// JSON (`\"`, `\\`, `\u00e9`) hides a secret from the redaction of the raw line.
    needles: Needles,
    signal: Option<&'a str>,
    recent_text: String,
    budgets: Budgets,
    earlier: Usage,
    /// What the run said so far.
    pub report: Report,
    /// Turns seen starting in this run.
    pub turns_started: u64,
    log: &'a mut LogBudget,
    emit: &'a mut (dyn FnMut(EventBody) + Send),
}

impl std::fmt::Debug for Watcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("parser", &self.parser)
            .finish_non_exhaustive()
    }
}

impl<'a> Watcher<'a> {
    /// A watcher for one run; `earlier` is the usage of the attempt's earlier runs.
    pub fn new(
        parser: Parser,
        needles: Needles,
        signal: Option<&'a str>,
        budgets: Budgets,
        earlier: Usage,
        log: &'a mut LogBudget,
        emit: &'a mut (dyn FnMut(EventBody) + Send),
    ) -> Self {
        Self {
            parser,
            needles,
            signal: signal.filter(|s| !s.is_empty()),
            recent_text: String::new(),
            budgets,
            earlier,
            report: Report::default(),
            turns_started: 0,
            log,
            emit,
        }
    }

    /// Handles one (already redacted) line.
    pub fn on_line(&mut self, line: LogLine) -> Verdict {
        let parsed = match (line.stream, line.encoding) {
            (Stream::Stdout, LineEncoding::Utf8) => self.parser.line(&line.line),
            _ => None,
        };
        match parsed {
            Some(parsed) => self.apply(parsed),
            None => {
                // For a JSON format, what is not its JSON (stderr, a stray print) is not
                // the agent speaking.
                if !self.parser.is_structured() {
                    self.notice_text(&line.line);
                }
                for admitted in self.log.admit(line) {
                    (self.emit)(EventBody::Log(admitted));
                }
            }
        }
        self.verdict()
    }

    /// Handles the end of the output, once the agent has exited, and returns the report.
    pub fn finish(mut self) -> Report {
        if let Some(parsed) = self.parser.end() {
            self.apply(parsed);
        }
        self.report
    }

    fn apply(&mut self, parsed: Parsed) {
        self.turns_started += u64::from(parsed.new_turn);
        match parsed.usage {
            Some(UsageReport::Total(usage)) => self.report.usage = usage,
            Some(UsageReport::Increment(usage)) => self.report.usage.add(&usage),
            None => {}
        }
        if let Some(failure) = parsed.failure {
            self.report.failure = Some(self.needles.redact_text(&failure).into_owned());
        }
        self.report.exhausted = parsed.exhausted.or(self.report.exhausted);
        if let Some(mut limit) = parsed.rate_limit {
            limit.message = self.needles.redact_text(&limit.message).into_owned();
            self.report.rate_limit = Some(limit);
        }
        for event in parsed.events {
            let event = self.redacted(event);
            match &event {
                AgentEvent::Text { text } if !parsed.aside => self.notice_text(text),
                AgentEvent::Result {
                    text: Some(text), ..
                } if !parsed.aside => self.notice_text(text),
                AgentEvent::Session { id } => self.report.session = Some(id.clone()),
                _ => {}
            }
            let size = serde_json::to_string(&event).map_or(0, |s| s.len());
            if self.log.admit_bytes(size) {
                (self.emit)(EventBody::Agent(event));
            }
        }
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
            self.report.signaled = true;
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
        let reported = self.report.usage.turns.unwrap_or(0);
        self.earlier.turns.unwrap_or(0) + reported.max(self.turns_started)
    }

    fn cost(&self) -> f64 {
        self.earlier.cost_usd.unwrap_or(0.0) + self.report.usage.cost_usd.unwrap_or(0.0)
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
        if self.report.signaled {
            return Verdict::Completed;
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use kiln_protocol::Stream;

    use super::*;
    use crate::presets::Format;

    fn line(text: &str) -> LogLine {
        LogLine::from_bytes(Stream::Stdout, text.as_bytes())
    }

    #[test]
    fn the_signal_counts_in_parsed_text_but_not_in_raw_json() {
        let mut log = LogBudget::new(u64::MAX);
        let mut out = Vec::new();
        let mut emit = |e: EventBody| out.push(e);
        let mut watcher = Watcher::new(
            Parser::new(Format::ClaudeCode, std::path::Path::new("/")),
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
        assert!(watcher.finish().signaled);
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
            Parser::new(Format::ClaudeCode, std::path::Path::new("/")),
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
            Parser::new(Format::ClaudeCode, std::path::Path::new("/")),
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
