//! Cutting an attempt's unsent events into batches within the protocol's limits, reading
//! a spilled segment once while it is sent.

use kiln_protocol::limits::{MAX_BATCH_BYTES, MAX_EVENTS_PER_BATCH};
use kiln_protocol::{Event, EventBody};

use super::{spool, Loaded, Stream};

/// The next events after `sent`, from disk segments first, within the batch limits.
pub(super) fn next_batch(stream: &mut Stream) -> Vec<Event> {
    let mut events = Vec::new();
    let mut bytes = 0;
    let sent = stream.sent;
    // The first segment holding unsent events, read once and kept while it is sent.
    if let Some(segment) = stream.segments.iter().find(|s| s.last > sent) {
        if stream
            .loaded
            .as_ref()
            .is_none_or(|l| l.last != segment.last)
        {
            let read = spool::read(segment).unwrap_or_else(|e| {
                tracing::error!(file = %segment.path.display(), error = %e, "cannot read spooled events");
                Vec::new()
            });
            stream.loaded = Some(Loaded {
                last: segment.last,
                events: read,
            });
        }
    }
    let from_disk = stream
        .loaded
        .iter()
        .filter(|l| l.last > sent)
        .flat_map(|l| l.events.iter());
    for event in from_disk.chain(stream.memory.iter()) {
        if event.seq <= sent + events.len() as u64 {
            continue;
        }
        if event.seq != sent + events.len() as u64 + 1 {
            break; // never send past a gap (the next segment comes in the next batch)
        }
        let size = event_size(event);
        if !events.is_empty()
            && (events.len() == MAX_EVENTS_PER_BATCH || bytes + size > MAX_BATCH_BYTES)
        {
            break;
        }
        bytes += size;
        events.push(event.clone());
    }
    events
}

/// Approximate encoded size: the line text dominates.
pub(super) fn event_size(event: &Event) -> usize {
    match &event.body {
        EventBody::Log(line) => line.line.len() * 2 + 64,
        _ => 512,
    }
}
