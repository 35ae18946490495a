//! The byte strings a task's secrets show up as (each value verbatim, and the parts of its
//! base64 that do not depend on neighbouring bytes), and the searches the redactor makes
//! with them: inside one text, at the end of a line, and at the start of the next.

use std::borrow::Cow;

use base64::Engine as _;

/// Replaces each redacted occurrence.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not redacted: a two-letter value would blank out half of
/// every line. The task is told so in its log.
pub const MIN_SECRET_LEN: usize = 4;

/// Shortest part of a secret that counts as its start at the end of a line, or as its rest
/// at the start of the next. Shorter parts say little of a secret and match too much text.
pub const MIN_SPLIT_PART: usize = 3;

/// A partial match: the text so far ends with the first `len` bytes of needle `needle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    /// Which needle.
    pub needle: usize,
    /// How many of its bytes have been seen.
    pub len: usize,
}

/// How a line goes on with a partial match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continued {
    /// The line starts with the rest of the needle: these many bytes of it.
    Completes(usize),
    /// The whole line is more of the needle, which goes on after it.
    Extends,
}

/// The needles of one task's secrets, longest first.
#[derive(Clone, Debug, Default)]
pub struct Needles {
    list: Vec<Vec<u8>>,
}

impl Needles {
    /// The needles of `secrets`; the values too short to redact are returned too.
    pub fn new(secrets: &[String]) -> (Self, Vec<String>) {
        let mut list = Vec::new();
        let mut too_short = Vec::new();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_LEN {
                too_short.push(secret.clone());
                continue;
            }
            list.push(secret.as_bytes().to_vec());
            list.extend(base64_forms(secret.as_bytes()));
        }
        list.sort_by_key(|n| std::cmp::Reverse(n.len()));
        list.dedup();
        (Self { list }, too_short)
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `bytes` with every whole needle inside it replaced by [`REDACTED`].
    pub fn redact<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.list.iter().any(|n| contains(bytes, n)) {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        'scan: while i < bytes.len() {
            for needle in &self.list {
                if bytes[i..].starts_with(needle) {
                    out.extend_from_slice(REDACTED.as_bytes());
                    i += needle.len();
                    continue 'scan;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        Cow::Owned(out)
    }

    /// `text` with every whole needle replaced. A needle is valid UTF-8 (a secret) or
    /// ASCII (base64), so a match never splits a character and the result is text.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// Every needle whose start (at least [`MIN_SPLIT_PART`] bytes, not all of it) `bytes`
    /// ends with.
    pub fn starts_at_end(&self, bytes: &[u8]) -> Vec<Partial> {
        let mut found = Vec::new();
        for (index, needle) in self.list.iter().enumerate() {
            let longest = needle.len().saturating_sub(1).min(bytes.len());
            for len in (MIN_SPLIT_PART..=longest).rev() {
                if bytes.ends_with(&needle[..len]) {
                    found.push(Partial { needle: index, len });
                }
            }
        }
        found
    }

    /// How `line` goes on with `partial`, if it does.
    pub fn continues(&self, partial: Partial, line: &[u8]) -> Option<Continued> {
        let rest = &self.list[partial.needle][partial.len..];
        if line.starts_with(rest) {
            return Some(Continued::Completes(rest.len()));
        }
        (!line.is_empty() && rest.starts_with(line)).then_some(Continued::Extends)
    }

    /// Redacts every string (and object key) inside `value`.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => {
                if let Cow::Owned(clean) = self.redact_text(text) {
                    *text = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_json(item)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.redact_json(&mut item);
                    map.insert(self.redact_text(&key).into_owned(), item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// The parts of `secret`'s base64 encodings that do not depend on neighbouring bytes, for
/// each of the three alignments it can have inside a longer encoded text.
pub fn base64_forms(secret: &[u8]) -> Vec<Vec<u8>> {
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
