//! Splits an agent's output into lines without ever holding more than one line's limit in
//! memory, however long the agent's lines are. The lines completed by one read go on as
//! one batch: one channel send and one wake-up per read, not per line.

use kiln_protocol::limits::MAX_LINE_BYTES;
use kiln_protocol::{LogLine, Stream};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Bytes kept per line: one more than the limit, so that `LogLine` sees the line was cut.
const KEEP_BYTES: usize = MAX_LINE_BYTES + 1;

/// Bytes read from the agent at a time; also bounds one batch of lines.
const READ_BYTES: usize = 64 * 1024;

/// Reads `source` to its end, sending its lines (without their `\n`) to `lines`, those
/// completed by one read together.
pub async fn forward(
    source: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::Sender<Vec<LogLine>>,
) {
    let mut reader = BufReader::with_capacity(READ_BYTES, source);
    let mut line = Vec::new();
    while let Ok(available) = reader.fill_buf().await {
        if available.is_empty() {
            break;
        }
        let mut batch = Vec::new();
        let mut rest = available;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            keep(&mut line, &rest[..end]);
            batch.push(LogLine::from_bytes(stream, &line));
            line.clear();
            rest = &rest[end + 1..];
        }
        keep(&mut line, rest);
        let consumed = available.len();
        reader.consume(consumed);
        if !batch.is_empty() && lines.send(batch).await.is_err() {
            return;
        }
    }
    if !line.is_empty() {
        let _ = lines.send(vec![LogLine::from_bytes(stream, &line)]).await;
    }
}

/// Adds `bytes` to the line being read, up to what a line keeps.
fn keep(line: &mut Vec<u8>, bytes: &[u8]) {
    let room = KEEP_BYTES.saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split(input: &[u8]) -> Vec<LogLine> {
        let (tx, mut rx) = mpsc::channel(64);
        forward(input, Stream::Stdout, tx).await;
        let mut lines = Vec::new();
        while let Some(batch) = rx.recv().await {
            lines.extend(batch);
        }
        lines
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_an_unterminated_tail() {
        let lines = split(b"one\ntwo\n\nthree").await;
        let texts: Vec<_> = lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(texts, ["one", "two", "", "three"]);
    }

    #[tokio::test]
    async fn a_huge_line_is_cut_and_the_next_line_survives() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 3];
        input.extend_from_slice(b"\nnext\n");
        let lines = split(&input).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[0].truncated);
        assert_eq!(lines[0].raw_bytes().len(), MAX_LINE_BYTES);
        assert_eq!(lines[1].line, "next");
    }
}
