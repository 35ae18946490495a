//! The per-attempt output budget: past it, lines are counted instead of streamed, with one
//! visible note where the cut happened and a summary at the end.

use kiln_protocol::LogLine;

/// Counts the agent's output against a byte limit.
#[derive(Debug)]
pub struct LogBudget {
    limit: u64,
    used: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl LogBudget {
    /// A budget of `limit` bytes of line text.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// The lines to stream for `line`: itself, a note (the first time the limit is hit), or
    /// nothing.
    pub fn admit(&mut self, line: LogLine) -> Vec<LogLine> {
        let size = line.line.len() as u64;
        if self.dropped_lines == 0 && self.used + size <= self.limit {
            self.used += size;
            return vec![line];
        }
        self.dropped_lines += 1;
        self.dropped_bytes += size;
        match self.dropped_lines {
            1 => vec![LogLine::system(format!(
                "output limit of {} bytes reached; further lines are counted, not streamed",
                self.limit
            ))],
            _ => Vec::new(),
        }
    }

    /// Counts `size` bytes of a structured event: true if it may be streamed.
    pub fn admit_bytes(&mut self, size: usize) -> bool {
        let size = size as u64;
        if self.dropped_lines == 0 && self.used + size <= self.limit {
            self.used += size;
            return true;
        }
        self.dropped_lines += 1;
        self.dropped_bytes += size;
        false
    }

    /// What was dropped, if anything.
    pub fn summary(&self) -> Option<String> {
        (self.dropped_lines > 0).then(|| {
            format!(
                "{} line(s), {} byte(s) of output were not streamed (limit {} bytes)",
                self.dropped_lines, self.dropped_bytes, self.limit
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use kiln_protocol::Stream;

    use super::*;

    #[test]
    fn past_the_limit_lines_are_counted_with_one_note() {
        let mut budget = LogBudget::new(10);
        let line = |t: &str| LogLine::from_bytes(Stream::Stdout, t.as_bytes());
        assert_eq!(budget.admit(line("12345")).len(), 1);
        assert_eq!(budget.admit(line("12345")).len(), 1);
        let note = budget.admit(line("x"));
        assert!(note[0].line.contains("output limit of 10 bytes"));
        assert!(budget.admit(line("yy")).is_empty());
        assert_eq!(
            budget.summary().unwrap(),
            "2 line(s), 3 byte(s) of output were not streamed (limit 10 bytes)"
        );
    }
}
