//! One line of agent output as it travels: cut to the line limit, and kept lossless when it
//! is not UTF-8.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::limits::{MAX_LINE_BYTES, TRUNCATION_MARKER};

/// Which output stream of the agent a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// The agent's standard output.
    Stdout,
    /// The agent's standard error.
    Stderr,
    /// A message from the runner itself about the task (checkout, commit, upload).
    System,
}

/// How [`LogLine::line`] encodes the bytes the agent wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineEncoding {
    /// The line is the agent's bytes, which were valid UTF-8.
    #[default]
    Utf8,
    /// The agent's bytes were not UTF-8; the line is their standard base64.
    Base64,
}

impl LineEncoding {
    fn is_utf8(&self) -> bool {
        *self == LineEncoding::Utf8
    }
}

/// A line of output, without its line terminator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The stream the line was written to.
    pub stream: Stream,
    /// The text of the line, encoded as `encoding` says.
    pub line: String,
    /// Absent for UTF-8 text; `base64` when the raw bytes were not UTF-8.
    #[serde(default, skip_serializing_if = "LineEncoding::is_utf8")]
    pub encoding: LineEncoding,
    /// True when the line was longer than [`MAX_LINE_BYTES`] and was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl LogLine {
    /// Builds a line from raw bytes (terminator already removed), cutting it at
    /// [`MAX_LINE_BYTES`] and base64-encoding it when it is not UTF-8.
    pub fn from_bytes(stream: Stream, raw: &[u8]) -> Self {
        let truncated = raw.len() > MAX_LINE_BYTES;
        let kept = &raw[..raw.len().min(MAX_LINE_BYTES)];
        match std::str::from_utf8(kept) {
            Ok(text) => Self::utf8(stream, text, truncated),
            // A cut may have split a multi-byte character: keep the valid prefix as text.
            Err(e) if truncated && e.error_len().is_none() => {
                let text = std::str::from_utf8(&kept[..e.valid_up_to()]).unwrap_or_default();
                Self::utf8(stream, text, truncated)
            }
            Err(_) => Self {
                stream,
                line: base64::engine::general_purpose::STANDARD.encode(kept),
                encoding: LineEncoding::Base64,
                truncated,
            },
        }
    }

    /// A line of text written by the runner itself.
    pub fn system(text: impl Into<String>) -> Self {
        Self::utf8(Stream::System, &text.into(), false)
    }

    fn utf8(stream: Stream, text: &str, truncated: bool) -> Self {
        let mut line = text.to_owned();
        if truncated {
            line.push_str(TRUNCATION_MARKER);
        }
        Self {
            stream,
            line,
            encoding: LineEncoding::Utf8,
            truncated,
        }
    }

    /// The bytes the agent wrote (up to the cut, without the marker).
    pub fn raw_bytes(&self) -> Vec<u8> {
        match self.encoding {
            LineEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&self.line)
                .unwrap_or_default(),
            LineEncoding::Utf8 => {
                let text = match self.truncated {
                    true => self
                        .line
                        .strip_suffix(TRUNCATION_MARKER)
                        .unwrap_or(&self.line),
                    false => &self.line,
                };
                text.as_bytes().to_vec()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_utf8_line_is_kept_verbatim() {
        let line = LogLine::from_bytes(Stream::Stdout, "héllo".as_bytes());
        assert_eq!(line.line, "héllo");
        assert_eq!(line.encoding, LineEncoding::Utf8);
        assert!(!line.truncated);
    }

    #[test]
    fn long_line_is_cut_with_marker() {
        let raw = vec![b'x'; MAX_LINE_BYTES + 10];
        let line = LogLine::from_bytes(Stream::Stdout, &raw);
        assert!(line.truncated);
        assert!(line.line.ends_with(TRUNCATION_MARKER));
        assert_eq!(line.raw_bytes().len(), MAX_LINE_BYTES);
    }

    #[test]
    fn cut_inside_a_multibyte_char_stays_text() {
        let mut raw = vec![b'x'; MAX_LINE_BYTES - 1];
        raw.extend_from_slice("é".as_bytes());
        let line = LogLine::from_bytes(Stream::Stderr, &raw);
        assert_eq!(line.encoding, LineEncoding::Utf8);
        assert_eq!(line.raw_bytes().len(), MAX_LINE_BYTES - 1);
    }

    #[test]
    fn invalid_utf8_round_trips_through_base64() {
        let raw = [0xff, 0xfe, b'a', 0x80];
        let line = LogLine::from_bytes(Stream::Stdout, &raw);
        assert_eq!(line.encoding, LineEncoding::Base64);
        assert_eq!(line.raw_bytes(), raw);
    }
}
