//! Redacting a task's secret values from every line its agent prints: verbatim, base64 (at
//! any alignment, both alphabets), and split over consecutive lines of one stream (a value
//! cut in two, or base64 wrapped over several lines). A line that ends with the start of a
//! secret is held back for the line that may finish it; if none comes in time it goes out
//! with that start redacted, and the rest is still redacted from the head of the next line.
//! A line cut at the line limit loses the start of a secret at its end the same way.

mod needles;

use std::time::Duration;

use kiln_protocol::{LogLine, Stream};
use tokio::time::Instant;

use needles::{Continued, Partial};
pub use needles::{Needles, MIN_SECRET_LEN, REDACTED};

/// How long a line that ends with the start of a secret waits for the next line, which may
/// hold the rest, before it goes out with that start redacted.
const HOLD_FOR: Duration = Duration::from_millis(250);

/// One output stream's state: lines held back, and the secrets its text ends inside.
#[derive(Debug, Default)]
struct Pending {
    /// Lines (already redacted within themselves) held back, oldest first.
    held: Vec<Vec<u8>>,
    /// The partial matches the stream's text ends with (its held lines or, once they went
    /// out, the redacted lines before).
    partials: Vec<Partial>,
    /// When the held lines go out anyway.
    until: Option<Instant>,
}

impl Pending {
    fn longest(&self) -> usize {
        self.partials.iter().map(|p| p.len).max().unwrap_or(0)
    }

    /// The held lines, with the last `tail` bytes of their text redacted.
    fn release(&mut self, stream: Stream, tail: usize) -> Vec<LogLine> {
        let mut held = std::mem::take(&mut self.held);
        redact_tail(&mut held, tail);
        self.until = None;
        held.iter()
            .map(|bytes| LogLine::from_bytes(stream, bytes))
            .collect()
    }
}

/// Replaces the last `tail` bytes of `lines`' text with one [`REDACTED`], where it starts.
fn redact_tail(lines: &mut [Vec<u8>], tail: usize) {
    if tail == 0 {
        return;
    }
    let mut left = tail;
    for index in (0..lines.len()).rev() {
        let line = &mut lines[index];
        if line.len() >= left || index == 0 {
            let start = line.len().saturating_sub(left);
            line.truncate(start);
            line.extend_from_slice(REDACTED.as_bytes());
            return;
        }
        left -= line.len();
        line.clear();
    }
}

/// The redactor of one agent run.
#[derive(Debug, Default)]
pub struct Redactor {
    needles: Needles,
    stdout: Pending,
    stderr: Pending,
}

impl Redactor {
    /// A redactor for `secrets`; those too short to redact are returned too.
    pub fn new(secrets: &[String]) -> (Self, Vec<String>) {
        let (needles, too_short) = Needles::new(secrets);
        let redactor = Self {
            needles,
            ..Self::default()
        };
        (redactor, too_short)
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Takes a line and returns the lines now safe to emit.
    pub fn push(&mut self, line: LogLine) -> Vec<LogLine> {
        if self.is_empty() || line.stream == Stream::System {
            return vec![line];
        }
        let stream = line.stream;
        let needles = &self.needles;
        let pending = match stream {
            Stream::Stderr => &mut self.stderr,
            _ => &mut self.stdout,
        };
        let raw = line.raw_bytes();
        let mut bytes = needles.redact(&raw).into_owned();
        let mut out = Vec::new();
        let mut completed = 0;
        let mut extended = Vec::new();
        for &partial in &pending.partials {
            match needles.continues(partial, &bytes) {
                Some(Continued::Completes(rest)) => completed = completed.max(rest),
                Some(Continued::Extends) => extended.push(Partial {
                    needle: partial.needle,
                    len: partial.len + bytes.len(),
                }),
                None => {}
            }
        }
        if completed > 0 {
            // A secret began before this line and ends in it: redact both parts.
            let tail = pending.longest();
            out.extend(pending.release(stream, tail));
            bytes.drain(..completed);
        } else if !extended.is_empty() {
            // The whole line is more of a secret.
            if line.truncated {
                let tail = pending.longest() + bytes.len();
                pending.held.push(bytes);
                pending.partials.clear();
                let mut lines = pending.release(stream, tail);
                if let Some(last) = lines.last_mut() {
                    *last = rebuilt(stream, &last.raw_bytes(), true);
                }
                out.extend(lines);
                return out;
            }
            pending.held.push(bytes);
            pending.partials = extended;
            pending.until.get_or_insert(Instant::now() + HOLD_FOR);
            return out;
        } else {
            // What was held was not a secret after all.
            out.extend(pending.release(stream, 0));
        }
        pending.partials = needles.starts_at_end(&bytes);
        if pending.partials.is_empty() {
            out.push(rebuilt(stream, &bytes, line.truncated));
        } else if line.truncated {
            // The rest of the secret was cut away with the rest of the line.
            let tail = pending.longest();
            pending.partials.clear();
            let mut lines = vec![bytes];
            redact_tail(&mut lines, tail);
            out.push(rebuilt(stream, &fit_line_limit(lines.remove(0)), true));
        } else {
            pending.held.push(bytes);
            pending.until = Some(Instant::now() + HOLD_FOR);
        }
        out
    }

    /// When held lines must be released, if any are held.
    pub fn release_at(&self) -> Option<Instant> {
        match (self.stdout.until, self.stderr.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Releases every held line, the start of a secret at its end redacted. The stream
    /// still remembers that start: if the next line holds the rest, that is redacted too.
    pub fn flush(&mut self) -> Vec<LogLine> {
        let mut out = Vec::new();
        for (stream, pending) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            if !pending.held.is_empty() {
                let tail = pending.longest();
                out.extend(pending.release(stream, tail));
            }
        }
        out
    }
}

/// `bytes`, which end with [`REDACTED`], shortened before the marker to fit the line limit
/// (a cut line is at the limit already, and the marker may be longer than what it hides).
fn fit_line_limit(mut bytes: Vec<u8>) -> Vec<u8> {
    let limit = kiln_protocol::limits::MAX_LINE_BYTES;
    if bytes.len() <= limit {
        return bytes;
    }
    let marker = bytes.split_off(bytes.len() - REDACTED.len());
    bytes.truncate(limit - REDACTED.len());
    // Never leave half a character before the marker.
    while bytes.last().is_some_and(|b| b & 0xC0 == 0x80) {
        bytes.pop();
    }
    if bytes.last().is_some_and(|b| *b >= 0xC0) {
        bytes.pop();
    }
    bytes.extend_from_slice(&marker);
    bytes
}

/// A line from redacted bytes, still marked as cut if the original was.
fn rebuilt(stream: Stream, bytes: &[u8], truncated: bool) -> LogLine {
    let mut line = LogLine::from_bytes(stream, bytes);
    if truncated && !line.truncated {
        line.truncated = true;
        if line.encoding == kiln_protocol::LineEncoding::Utf8 {
            line.line.push_str(kiln_protocol::limits::TRUNCATION_MARKER);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const SECRET: &str = "sup3r-s3cret-value";

    fn lines(redactor: &mut Redactor, texts: &[&str]) -> Vec<String> {
        let mut out: Vec<LogLine> = texts
            .iter()
            .flat_map(|t| redactor.push(LogLine::from_bytes(Stream::Stdout, t.as_bytes())))
            .collect();
        out.extend(redactor.flush());
        out.into_iter().map(|l| l.line).collect()
    }

    fn redactor() -> Redactor {
        Redactor::new(&[SECRET.to_owned()]).0
    }

    #[test]
    fn verbatim_occurrences_are_redacted() {
        assert_eq!(
            lines(&mut redactor(), &[&format!("key={SECRET}; again {SECRET}")]),
            ["key=[redacted]; again [redacted]"]
        );
    }

    #[test]
    fn base64_at_any_alignment_is_redacted() {
        for prefix in ["", "x", "xy", "xyz"] {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{SECRET} tail"));
            let out = lines(&mut redactor(), &[&encoded]).concat();
            assert!(out.contains(REDACTED), "{prefix:?}: {out}");
            let core = &needles::base64_forms(SECRET.as_bytes())[0];
            assert!(!out
                .as_bytes()
                .windows(core.len())
                .any(|w| w == core.as_slice()));
        }
    }

    #[test]
    fn a_secret_split_across_two_lines_is_redacted_in_both() {
        let out = lines(
            &mut redactor(),
            &["token: sup3r-s3c", "ret-value and more", "next"],
        );
        assert_eq!(out, ["token: [redacted]", " and more", "next"]);
    }

    #[test]
    fn a_held_line_that_is_not_a_split_comes_out_unchanged_and_in_order() {
        let mut redactor = redactor();
        let mut out: Vec<String> = ["ends with sup", "unrelated"]
            .iter()
            .flat_map(|t| redactor.push(LogLine::from_bytes(Stream::Stdout, t.as_bytes())))
            .map(|l| l.line)
            .collect();
        out.extend(redactor.flush().into_iter().map(|l| l.line));
        assert_eq!(out, ["ends with sup", "unrelated"]);
    }

    #[test]
    fn a_split_whose_second_half_comes_late_is_redacted_in_both() {
        let mut redactor = redactor();
        let first = redactor.push(LogLine::from_bytes(Stream::Stdout, b"token: sup3r-s3c"));
        assert!(first.is_empty(), "held for the rest");
        // No next line in time: the start goes out redacted, and is remembered.
        let released: Vec<String> = redactor.flush().into_iter().map(|l| l.line).collect();
        assert_eq!(released, ["token: [redacted]"]);
        let second = redactor.push(LogLine::from_bytes(Stream::Stdout, b"ret-value after"));
        let second: Vec<String> = second.into_iter().map(|l| l.line).collect();
        assert_eq!(second, [" after"]);
    }

    #[test]
    fn base64_wrapped_over_several_lines_is_redacted() {
        let long = "a-much-longer-secret-value-that-spans-lines-0123456789-abcdefghij";
        let (mut redactor, _) = Redactor::new(&[long.to_owned()]);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("prefix {long} suffix"));
        let wrapped: Vec<&str> = encoded
            .as_bytes()
            .chunks(20)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        assert!(wrapped.len() >= 5);
        let out = lines(&mut redactor, &wrapped).concat();
        let core = &needles::base64_forms(long.as_bytes())[0];
        for window in core.windows(12) {
            assert!(
                !out.as_bytes().windows(12).any(|w| w == window),
                "a piece of the encoded secret is left: {out}"
            );
        }
        assert!(out.contains(REDACTED), "{out}");
    }

    #[test]
    fn a_secret_cut_by_the_line_limit_loses_its_start_too() {
        let limit = kiln_protocol::limits::MAX_LINE_BYTES;
        let mut raw = vec![b'x'; limit - 8];
        raw.extend_from_slice(SECRET.as_bytes());
        let out = lines(&mut redactor(), &[std::str::from_utf8(&raw).unwrap()]);
        assert_eq!(out.len(), 1);
        assert!(
            !out[0].contains("sup3r-s3"),
            "the start of the secret is left"
        );
        assert!(out[0].contains(REDACTED));
        assert!(out[0].ends_with(kiln_protocol::limits::TRUNCATION_MARKER));
    }

    #[test]
    fn strings_a_preset_decoded_are_redacted_whatever_their_escapes() {
        let (needles, _) = Needles::new(&["pa\\ss\"wo\u{e9}rd".to_owned()]);
        let line = r#"{"text":"key=pa\\ss\"wo\u00e9rd","pa\\ss\"wo\u00e9rd":1}"#;
        assert!(
            !needles.redact(line.as_bytes()).contains(&b'['),
            "escaped: no raw match"
        );
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        needles.redact_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"text": "key=[redacted]", "[redacted]": 1})
        );
    }

    #[test]
    fn short_secrets_are_reported_not_redacted() {
        let (redactor, too_short) = Redactor::new(&["ab".to_owned()]);
        assert!(redactor.is_empty());
        assert_eq!(too_short, ["ab"]);
    }
}
