//! Splits an agent's output into lines without ever holding more than one line's limit in
//! memory, however long the agent's lines are.

use kiln_protocol::limits::MAX_LINE_BYTES;
use kiln_protocol::{LogLine, Stream};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Bytes kept per line: one more than the limit, so that `LogLine` sees the line was cut.
const KEEP_BYTES: usize = MAX_LINE_BYTES + 1;

/// Reads `source` to its end, sending each line (without its `\n`) to `lines`.
pub async fn forward(source: impl AsyncRead + Unpin, stream: Stream, lines: mpsc::Sender<LogLine>) {
    let mut reader = BufReader::new(source);
    let mut line = Vec::new();
    while let Ok(available) = reader.fill_buf().await {
        if available.is_empty() {
            break;
        }
        let (chunk, ends_line) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        let room = KEEP_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = chunk.len() + usize::from(ends_line);
        reader.consume(consumed);
        if ends_line {
            let done = LogLine::from_bytes(stream, &std::mem::take(&mut line));
            if lines.send(done).await.is_err() {
                return;
            }
        }
    }
    if !line.is_empty() {
        let _ = lines.send(LogLine::from_bytes(stream, &line)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split(input: &[u8]) -> Vec<LogLine> {
        let (tx, mut rx) = mpsc::channel(64);
        forward(input, Stream::Stdout, tx).await;
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
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
