//! Splits an agent's output into lines without ever holding more than one line's limit in
//! memory, however long the agent's lines are. The lines completed by one read go on as
//! one batch: one channel send and one wake-up per read, not per line.

use kiln_protocol::limits::MAX_LINE_BYTES;
use kiln_protocol::{LogLine, Stream};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Bytes kept per line: one more than the limit, so that `LogLine` sees the line was cut.
const KEEP_BYTES: usize = MAX_LINE_BYTES + 1;

/// Bytes read from the agent at a time: a Linux pipe's default capacity, so one read
/// takes whatever the agent could write before it would block.
const READ_BYTES: usize = 64 * 1024;

/// Most lines in one batch: one event frame's worth (`MAX_EVENTS_PER_BATCH`), so that a
/// batch pushed just under the outbox's room bound overshoots it by no more than that
/// (a 64 KiB read of empty lines would be 65,536 lines).
const LINES_PER_BATCH: usize = kiln_protocol::limits::MAX_EVENTS_PER_BATCH;

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
            if batch.len() == LINES_PER_BATCH {
                let full = std::mem::take(&mut batch);
                if lines.send(full).await.is_err() {
                    return;
                }
            }
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

    /// The batches `input` makes when a pipe hands it over `chunk` bytes at a time.
    async fn batches_in_chunks(input: Vec<u8>, chunk: usize) -> Vec<Vec<LogLine>> {
        use tokio::io::AsyncWriteExt as _;
        let (mut writer, reader) = tokio::io::duplex(chunk);
        tokio::spawn(async move { writer.write_all(&input).await.expect("write") });
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(forward(reader, Stream::Stdout, tx));
        let mut batches = Vec::new();
        while let Some(batch) = rx.recv().await {
            batches.push(batch);
        }
        batches
    }

    #[tokio::test]
    async fn lines_and_cuts_that_span_reads_come_out_as_from_one_read() {
        let mut input = b"one\ntwo\n".to_vec();
        input.extend(vec![b'y'; MAX_LINE_BYTES * 5]);
        input.extend_from_slice(b"\nafter the long one\nlast");
        let whole = split(&input).await;
        let chunked: Vec<LogLine> = batches_in_chunks(input, 1000).await.concat();
        assert_eq!(chunked, whole);
        assert_eq!(chunked.len(), 5);
        assert!(chunked[2].truncated);
        assert_eq!(chunked[2].raw_bytes().len(), MAX_LINE_BYTES);
        assert_eq!(chunked[3].line, "after the long one");
        assert_eq!(chunked[4].line, "last");
    }

    #[tokio::test]
    async fn a_read_of_short_lines_goes_in_batches_of_at_most_one_frame() {
        let batches = batches_in_chunks(vec![b'\n'; 70_000], READ_BYTES).await;
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 70_000);
        assert!(batches.iter().all(|b| b.len() <= LINES_PER_BATCH));
        assert!(batches.iter().any(|b| b.len() == LINES_PER_BATCH));
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
