//! Conformance cases for writes that race: two replicas (or two connections of one) doing
//! the same thing at once must not make it happen twice, nor deadlock.

use kiln_control_plane::model::{NewTask, TaskState};
use kiln_control_plane::store::Store;
use kiln_protocol::Event;

use super::fixtures::{finished, line, runner, session, task};

/// Log bytes an attempt may store in these cases: far above what they write.
const LOG_CAP: u64 = 1 << 20;

pub async fn racing_assignments_give_each_task_once(store: &dyn Store) {
    let one = runner(store, "race-1").await;
    let two = runner(store, "race-2").await;
    let tasks: Vec<NewTask> = (0..40).map(|i| task("/tmp/race", 100 + i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let to = |runner| tasks.iter().map(|t| (t.id, runner)).collect::<Vec<_>>();
    let (first, second) = (to(one.id), to(two.id));
    let (a, b) = tokio::join!(store.assign(&first, 1_000), store.assign(&second, 1_000));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), tasks.len(), "each task assigned once");
    for t in &tasks {
        let attempts = store.attempts(t.id).await.unwrap();
        assert_eq!(attempts.len(), 1, "task {}: {attempts:?}", t.id);
    }
}

pub async fn racing_appends_store_each_event_once(store: &dyn Store) {
    let worker = runner(store, "race-worker").await;
    let t = task("/tmp/race", 100);
    store.insert_task(&t).await.unwrap();
    store.assign(&[(t.id, worker.id)], 110).await.unwrap();
    assert!(store.start_attempt(t.id, 1, worker.id, 120).await.unwrap());
    let events: Vec<Event> = (1..=100).map(|seq| line(seq, &format!("l{seq}"))).collect();
    let (a, b) = tokio::join!(
        store.append_events(t.id, 1, worker.id, events.clone(), LOG_CAP, 130),
        store.append_events(t.id, 1, worker.id, events.clone(), LOG_CAP, 130),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.stored.len() + b.stored.len(),
        100,
        "stored once between them"
    );
    assert_eq!((a.acked_seq, b.acked_seq), (100, 100));
    let stored = store.events(t.id, 1, 0, 1_000).await.unwrap();
    let seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
}

pub async fn ending_a_task_as_its_runner_finishes_it_ends_it_once(store: &dyn Store) {
    let worker = runner(store, "race-ender").await;
    for round in 0..10 {
        let t = task("/tmp/race", 100 + round);
        store.insert_task(&t).await.unwrap();
        store.assign(&[(t.id, worker.id)], 110).await.unwrap();
        assert!(store.start_attempt(t.id, 1, worker.id, 120).await.unwrap());
        let last = [line(1, "last words"), finished(2)];
        let (ended, appended) = tokio::join!(
            store.end_task(t.id, TaskState::TimedOut, "its sandbox expired", 130),
            store.append_events(t.id, 1, worker.id, last.to_vec(), LOG_CAP, 130),
        );
        let ended = ended.unwrap(); // a deadlock would be an error here
        let appended = appended.unwrap();
        assert_eq!(appended.acked_seq, 2, "its events are stored either way");
        let record = store.task(t.id).await.unwrap().expect("stored");
        let expected = if ended {
            TaskState::TimedOut
        } else {
            TaskState::Succeeded
        };
        assert_eq!(record.state, expected, "round {round}: {record:?}");
    }
}

pub async fn racing_placements_in_one_session_assign_one_task(store: &dyn Store) {
    let (one, two) = (
        runner(store, "place-1").await,
        runner(store, "place-2").await,
    );
    // A new session each round: two submits of its first task race for it.
    for round in 0..10 {
        let session = session("/tmp/race");
        store.create_workspace(&session).await.unwrap();
        let step = |at| NewTask {
            workspace_id: Some(session.id),
            ..task("/tmp/race", at)
        };
        let (a, b) = (step(100 + round), step(100 + round));
        let (placed_a, placed_b) = tokio::join!(
            store.insert_and_assign(&a, one.id, 1_000),
            store.insert_and_assign(&b, two.id, 1_000)
        );
        let placed: Vec<_> = [placed_a.unwrap(), placed_b.unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert!(
            placed.len() <= 1,
            "round {round}: one session task at a time: {placed:?}"
        );
        // End the round's tasks, so that the queue is empty for the next round.
        for t in [&a, &b] {
            store
                .end_task(t.id, TaskState::Cancelled, "next round", 2_000)
                .await
                .unwrap();
        }
    }
}
