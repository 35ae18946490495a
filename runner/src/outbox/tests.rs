//! Outbox behaviour: seqs, resend after reconnect, acks, spilling and recovery.

use kiln_protocol::limits::MAX_EVENTS_PER_BATCH;
use kiln_protocol::{LogLine, Outcome, OutcomeStatus};

use super::*;

fn log(text: &str) -> EventBody {
    EventBody::Log(LogLine::system(text))
}

fn finished() -> EventBody {
    EventBody::Finished {
        outcome: Outcome {
            status: OutcomeStatus::Succeeded,
            exit_code: Some(0),
            signal: None,
            message: String::new(),
            result: None,
            stop: None,
            iterations: None,
            usage: None,
            agent_session: None,
        },
    }
}

fn seqs(batches: &[Batch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.events.iter().map(|e| e.seq))
        .collect()
}

#[test]
fn seqs_count_from_one_and_are_sent_once_per_connection() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 1);
    assert_eq!(outbox.push(key, log("a")), 1);
    assert_eq!(outbox.push(key, log("b")), 2);
    assert_eq!(seqs(&outbox.take_unsent(usize::MAX)), [1, 2]);
    assert!(outbox.take_unsent(usize::MAX).is_empty());
}

#[test]
fn rewind_resends_exactly_the_unacked() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 1);
    for text in ["a", "b", "c"] {
        outbox.push(key, log(text));
    }
    outbox.take_unsent(usize::MAX);
    outbox.ack(key, 1);
    outbox.rewind();
    assert_eq!(seqs(&outbox.take_unsent(usize::MAX)), [2, 3]);
}

#[test]
fn finished_stream_is_forgotten_once_fully_acked() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 2);
    outbox.push(key, log("a"));
    outbox.push(key, finished());
    outbox.ack(key, 1);
    assert_eq!(outbox.announce().len(), 1);
    outbox.ack(key, 2);
    assert!(outbox.is_empty());
}

#[test]
fn batches_respect_the_event_limit() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 1);
    for _ in 0..(MAX_EVENTS_PER_BATCH + 5) {
        outbox.push(key, log("x"));
    }
    let batches = outbox.take_unsent(usize::MAX);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].events.len(), MAX_EVENTS_PER_BATCH);
    assert_eq!(
        seqs(&batches),
        (1..=(MAX_EVENTS_PER_BATCH as u64 + 5)).collect::<Vec<_>>()
    );
}

#[test]
fn announce_lists_open_streams_with_last_seq() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 1);
    outbox.open(key);
    assert_eq!(outbox.announce()[0].last_seq, 0);
    outbox.push(key, log("a"));
    assert_eq!(outbox.announce()[0].last_seq, 1);
}

/// Sends everything, acknowledging each window of batches as the control plane would.
fn send_all_acking_each_window(outbox: &Outbox, key: AttemptKey) -> Vec<u64> {
    let mut sent = Vec::new();
    loop {
        let window = seqs(&outbox.take_unsent(usize::MAX));
        let Some(&last) = window.last() else {
            return sent;
        };
        sent.extend(window);
        outbox.ack(key, last);
    }
}

fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn events_beyond_the_memory_bound_spill_to_disk_and_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::with_spool(dir.path().to_path_buf()).unwrap();
    let key = (TaskId::new(), 1);
    let total = MEMORY_EVENTS_PER_ATTEMPT as u64 + 100;
    for i in 0..total {
        outbox.push(key, log(&format!("line {i}")));
    }
    assert_eq!(
        segment_files(dir.path()),
        1,
        "the first 10k events went to a segment"
    );
    let sent = send_all_acking_each_window(&outbox, key);
    assert_eq!(sent, (1..=total).collect::<Vec<_>>());
    outbox.push(key, finished());
    outbox.ack(key, total + 1);
    assert!(outbox.is_empty());
    assert_eq!(
        segment_files(dir.path()),
        0,
        "acknowledged segments are deleted"
    );
}

#[test]
fn a_restarted_runner_recovers_persisted_events_of_an_abandoned_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let key = (TaskId::new(), 2);
    {
        let outbox = Outbox::with_spool(dir.path().to_path_buf()).unwrap();
        for text in ["a", "b", "c", "d", "e"] {
            outbox.push(key, log(text));
        }
        outbox.ack(key, 2);
        outbox.persist();
    }
    let outbox = Outbox::with_spool(dir.path().to_path_buf()).unwrap();
    let announced = outbox.announce();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].last_seq, 5);
    assert_eq!(announced[0].state, HeldState::Abandoned);
    assert_eq!(seqs(&outbox.take_unsent(usize::MAX)), [3, 4, 5]);
    outbox.ack(key, 5);
    assert!(outbox.is_empty(), "an abandoned stream ends once delivered");
    assert_eq!(segment_files(dir.path()), 0);
}

#[test]
fn a_recovered_finished_attempt_is_announced_as_finished() {
    let dir = tempfile::tempdir().unwrap();
    let key = (TaskId::new(), 1);
    {
        let outbox = Outbox::with_spool(dir.path().to_path_buf()).unwrap();
        outbox.push(key, log("a"));
        outbox.push(key, finished());
        outbox.persist();
    }
    let outbox = Outbox::with_spool(dir.path().to_path_buf()).unwrap();
    assert_eq!(outbox.announce()[0].state, HeldState::Finished);
    let batches = outbox.take_unsent(usize::MAX);
    assert!(batches[0].events.last().unwrap().is_finished());
}

#[test]
fn a_full_window_holds_new_events_until_an_ack_and_they_go_as_one_batch() {
    let outbox = Outbox::default();
    let key = (TaskId::new(), 1);
    for n in 0..BATCHES_IN_FLIGHT {
        outbox.push(key, log(&format!("line {n}")));
        assert_eq!(outbox.take_unsent(usize::MAX).len(), 1);
    }
    for n in 0..10 {
        outbox.push(key, log(&format!("held {n}")));
    }
    assert!(
        outbox.take_unsent(usize::MAX).is_empty(),
        "nothing is sent while {BATCHES_IN_FLIGHT} batches are unacknowledged"
    );
    outbox.ack(key, 1);
    let batches = outbox.take_unsent(usize::MAX);
    assert_eq!(batches.len(), 1, "the held events go together");
    let first_held = BATCHES_IN_FLIGHT as u64 + 1;
    assert_eq!(
        seqs(&batches),
        (first_held..first_held + 10).collect::<Vec<_>>()
    );
    // A reconnect resends everything unacknowledged, window or not.
    outbox.rewind();
    let resent = outbox.take_unsent(usize::MAX);
    assert_eq!(seqs(&resent).first(), Some(&2));
    assert_eq!(seqs(&resent).last(), Some(&(first_held + 9)));
}
