//! An ended attempt accepts nothing: no events after its `finished`, no uploads once it
//! has reported or ended, whichever way it ended.

use kiln_control_plane::model::TaskState;
use kiln_control_plane::store::{Store, StoreError};

use super::fixtures::{finished, line, runner, task};

pub async fn an_attempt_that_reported_accepts_no_more_events_or_uploads(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    let t = task("r", 100);
    store.insert_task(&t).await.unwrap();
    store.assign(&[(t.id, worker.id)], 110).await.unwrap();
    store.start_attempt(t.id, 1, worker.id, 120).await.unwrap();
    store
        .put_artifact(t.id, 1, "diff", b"the real diff", 125)
        .await
        .unwrap();
    let end = store
        .append_events(
            t.id,
            1,
            worker.id,
            vec![line(1, "one"), finished(2)],
            1 << 20,
            130,
        )
        .await
        .unwrap();
    assert!(end.finished);

    let late = store
        .append_events(
            t.id,
            1,
            worker.id,
            vec![line(3, "after"), finished(4)],
            1 << 20,
            140,
        )
        .await;
    assert!(matches!(late, Err(StoreError::Ended { .. })), "{late:?}");
    // A resend of what is stored is still acknowledged, so the runner can forget it.
    let resent = store
        .append_events(t.id, 1, worker.id, vec![finished(2)], 1 << 20, 141)
        .await
        .unwrap();
    assert_eq!(resent.acked_seq, 2);
    assert!(resent.stored.is_empty());
    let replaced = store
        .put_artifact(t.id, 1, "diff", b"a forged diff", 150)
        .await;
    assert!(
        matches!(replaced, Err(StoreError::Ended { .. })),
        "{replaced:?}"
    );

    let seqs: Vec<u64> = store
        .events(t.id, 1, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
    let diff = store.artifact(t.id, 1, "diff").await.unwrap();
    assert_eq!(diff.as_deref(), Some(&b"the real diff"[..]));
    assert_eq!(
        store.task(t.id).await.unwrap().unwrap().state,
        TaskState::Succeeded
    );
}

pub async fn a_lost_attempt_keeps_its_late_lines_but_takes_no_upload_or_second_report(
    store: &dyn Store,
) {
    let worker = runner(store, "worker").await;
    let t = task("r", 100);
    store.insert_task(&t).await.unwrap();
    store.assign(&[(t.id, worker.id)], 110).await.unwrap();
    store.start_attempt(t.id, 1, worker.id, 120).await.unwrap();
    store.lose_attempt(t.id, 1, worker.id, 130).await.unwrap();

    let upload = store.put_artifact(t.id, 1, "bundle", b"late", 135).await;
    assert!(
        matches!(upload, Err(StoreError::Ended { .. })),
        "{upload:?}"
    );
    // Its late lines are its own log, and change nothing; its report is the last of them.
    store
        .append_events(
            t.id,
            1,
            worker.id,
            vec![line(1, "late"), finished(2)],
            1 << 20,
            140,
        )
        .await
        .unwrap();
    let second = store
        .append_events(t.id, 1, worker.id, vec![finished(3)], 1 << 20, 150)
        .await;
    assert!(
        matches!(second, Err(StoreError::Ended { .. })),
        "{second:?}"
    );
    assert_eq!(store.events(t.id, 1, 0, 100).await.unwrap().len(), 2);
    assert_eq!(store.artifact(t.id, 1, "bundle").await.unwrap(), None);
}

pub async fn a_task_no_runner_takes_ends_after_five_untaken_assignments(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    let t = task("r", 100);
    store.insert_task(&t).await.unwrap();
    for attempt in 1..=5u32 {
        let assigned = store.assign(&[(t.id, worker.id)], 110).await.unwrap();
        assert_eq!(assigned[0].attempt, attempt);
        let next = store
            .reject_attempt(t.id, attempt, worker.id, 120)
            .await
            .unwrap();
        let expected = if attempt < 5 {
            TaskState::Queued
        } else {
            TaskState::Error
        };
        assert_eq!(next, Some(expected), "after untaken assignment {attempt}");
    }
    let ended = store.task(t.id).await.unwrap().unwrap();
    assert_eq!(ended.state, TaskState::Error);
    let message = ended.outcome.unwrap().message;
    assert!(
        message.contains("no runner took its assignment"),
        "{message}"
    );
    assert!(store.queued_tasks(10).await.unwrap().is_empty());
    assert_eq!(
        store.reject_attempt(t.id, 5, worker.id, 130).await.unwrap(),
        None,
        "a second refusal of the same attempt changes nothing"
    );
}

pub async fn the_write_probe_writes_again_and_again(store: &dyn Store) {
    for now in [1, 2, 3] {
        store.probe_write(now).await.unwrap();
    }
}
