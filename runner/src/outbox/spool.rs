//! The outbox's disk segments: runs of consecutive events of one attempt, each written
//! atomically as one NDJSON file named `<task>-<attempt>-<first>-<last>.ndjson`.

use std::io;
use std::path::{Path, PathBuf};

use kiln_protocol::{Event, TaskId};

use super::AttemptKey;

/// A segment on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Seq of its first event.
    pub first: u64,
    /// Seq of its last event.
    pub last: u64,
    /// Its file.
    pub path: PathBuf,
}

fn file_name(key: AttemptKey, first: u64, last: u64) -> String {
    format!("{}-{}-{first:020}-{last:020}.ndjson", key.0, key.1)
}

fn parse_name(name: &str) -> Option<(AttemptKey, u64, u64)> {
    let stem = name.strip_suffix(".ndjson")?;
    let mut parts = stem.rsplitn(4, '-');
    let last = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse().ok()?;
    let task: TaskId = parts.next()?.parse().ok()?;
    Some(((task, attempt), first, last))
}

/// Writes `events` (consecutive, non-empty) as a new segment in `dir`.
pub fn write(dir: &Path, key: AttemptKey, events: &[Event]) -> io::Result<Segment> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty segment"));
    };
    let mut text = Vec::new();
    for event in events {
        serde_json::to_writer(&mut text, event)?;
        text.push(b'\n');
    }
    let path = dir.join(file_name(key, first.seq, last.seq));
    crate::atomic_file::write(&path, &text, crate::atomic_file::SECRET_MODE)?;
    Ok(Segment {
        first: first.seq,
        last: last.seq,
        path,
    })
}

/// Reads a segment's events.
pub fn read(segment: &Segment) -> io::Result<Vec<Event>> {
    let text = std::fs::read(&segment.path)?;
    text.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).map_err(io::Error::from))
        .collect()
}

/// Every segment in `dir`, by attempt, in seq order. Leftover temp files are removed;
/// files that are not segments are left alone and reported.
pub fn scan(dir: &Path) -> io::Result<Vec<(AttemptKey, Segment)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        match parse_name(&name) {
            Some((key, first, last)) => found.push((
                key,
                Segment {
                    first,
                    last,
                    path: entry.path(),
                },
            )),
            None => {
                tracing::warn!(file = %entry.path().display(), "not an outbox segment; ignored")
            }
        }
    }
    found.sort_by_key(|(key, segment)| (*key, segment.first));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let key = (TaskId::new(), 3);
        let name = file_name(key, 7, 12);
        assert_eq!(parse_name(&name), Some((key, 7, 12)));
        assert_eq!(parse_name("junk.ndjson"), None);
    }
}
