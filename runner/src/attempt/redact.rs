//! Redacting a task's secret values from every line its agent prints: verbatim, base64 (at
//! any alignment, both alphabets), and split across two consecutive lines of one stream.

use std::time::Duration;

use base64::Engine as _;
use kiln_protocol::{LogLine, Stream};
use tokio::time::Instant;

/// Replaces each redacted occurrence.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not redacted: a two-letter value would blank out half of
/// every line. The task is told so in its log.
pub const MIN_SECRET_LEN: usize = 4;

/// A line ending in the start of a secret is held back this long for the next line, which
/// may hold the rest.
const HOLD_FOR: Duration = Duration::from_millis(250);

/// Shortest tail of a line that counts as "the start of a secret".
const MIN_SPLIT_PART: usize = 3;

/// The redactor of one agent run.
#[derive(Debug, Default)]
pub struct Redactor {
    needles: Vec<Vec<u8>>,
    held: Option<(Stream, Vec<u8>, Instant)>,
}

impl Redactor {
    /// A redactor for `secrets`; those too short to redact are returned too.
    pub fn new(secrets: &[String]) -> (Self, Vec<String>) {
        let mut needles = Vec::new();
        let mut too_short = Vec::new();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_LEN {
                too_short.push(secret.clone());
                continue;
            }
            needles.push(secret.as_bytes().to_vec());
            needles.extend(base64_forms(secret.as_bytes()));
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        (
            Self {
                needles,
                held: None,
            },
            too_short,
        )
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
        let mut current = line.raw_bytes();
        let mut out = Vec::new();
        if let Some((stream, mut previous, _)) = self.held.take() {
            if stream == line.stream {
                self.redact_across(&mut previous, &mut current);
            }
            out.push(LogLine::from_bytes(
                stream,
                &redact(&self.needles, &previous),
            ));
        }
        let current = redact(&self.needles, &current);
        if !line.truncated && self.ends_with_secret_start(&current) {
            self.held = Some((line.stream, current, Instant::now() + HOLD_FOR));
        } else {
            out.push(rebuilt(line.stream, &current, line.truncated));
        }
        out
    }

    /// When a held line must be released, if one is held.
    pub fn release_at(&self) -> Option<Instant> {
        self.held.as_ref().map(|(_, _, at)| *at)
    }

    /// Releases a held line.
    pub fn flush(&mut self) -> Vec<LogLine> {
        self.held
            .take()
            .map(|(stream, bytes, _)| LogLine::from_bytes(stream, &bytes))
            .into_iter()
            .collect()
    }

    fn ends_with_secret_start(&self, line: &[u8]) -> bool {
        self.needles
            .iter()
            .any(|needle| (MIN_SPLIT_PART..needle.len()).any(|n| line.ends_with(&needle[..n])))
    }

    /// Redacts a secret that starts at the end of `first` and ends at the start of `second`.
    fn redact_across(&self, first: &mut Vec<u8>, second: &mut Vec<u8>) {
        for needle in &self.needles {
            for split in MIN_SPLIT_PART..needle.len() {
                let (head, tail) = needle.split_at(split);
                if first.ends_with(head) && second.starts_with(tail) {
                    first.truncate(first.len() - head.len());
                    first.extend_from_slice(REDACTED.as_bytes());
                    second.drain(..tail.len());
                    return;
                }
            }
        }
    }
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

fn redact(needles: &[Vec<u8>], line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    'scan: while i < line.len() {
        for needle in needles {
            if line[i..].starts_with(needle) {
                out.extend_from_slice(REDACTED.as_bytes());
                i += needle.len();
                continue 'scan;
            }
        }
        out.push(line[i]);
        i += 1;
    }
    out
}

/// The parts of `secret`'s base64 encodings that do not depend on neighbouring bytes, for
/// each of the three alignments it can have inside a longer encoded text.
fn base64_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let engines = [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut forms = Vec::new();
    for engine in engines {
        for offset in 0..3usize {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(secret);
            let encoded = engine.encode(&bytes).into_bytes();
            let first = (8 * offset).div_ceil(6);
            let end = (8 * (offset + secret.len())) / 6;
            if end > first + MIN_SECRET_LEN {
                forms.push(encoded[first..end].to_vec());
            }
        }
    }
    forms
}

#[cfg(test)]
mod tests {
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
            let core = &base64_forms(SECRET.as_bytes())[0];
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
        let out = lines(&mut redactor(), &["ends with sup", "unrelated"]);
        assert_eq!(out, ["ends with sup", "unrelated"]);
    }

    #[test]
    fn short_secrets_are_reported_not_redacted() {
        let (redactor, too_short) = Redactor::new(&["ab".to_owned()]);
        assert!(redactor.is_empty());
        assert_eq!(too_short, ["ab"]);
    }
}
