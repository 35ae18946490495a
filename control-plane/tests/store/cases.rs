//! The cases every `Store` backend must pass, written against `dyn Store` only.

use kiln_control_plane::model::{CancelEffect, RegistrationTokenRecord, RetryEffect, TaskState};
use kiln_control_plane::store::{NewRunner, RegistrationRefusal, Store, StoreError, TaskFilter};
use kiln_control_plane::tokens::{Token, TokenKind};
use kiln_protocol::RunnerId;

use super::fixtures::{finished, line, runner, task};

pub async fn tasks_round_trip_and_list_newest_first_with_filters(store: &dyn Store) {
    let a = task("repo-a", 100);
    let mut b = task("repo-b", 200);
    b.labels.insert("team".into(), "infra".into());
    let c = task("repo-a", 300);
    for t in [&a, &b, &c] {
        store.insert_task(t).await.unwrap();
    }
    let stored = store.task(b.id).await.unwrap().expect("stored");
    assert_eq!(stored.spec, b);
    assert_eq!(stored.state, TaskState::Queued);
    assert_eq!(stored.attempt, 0);
    assert!(store
        .task(kiln_protocol::TaskId::new())
        .await
        .unwrap()
        .is_none());

    let all = TaskFilter {
        limit: 10,
        ..TaskFilter::default()
    };
    let ids: Vec<_> = store
        .tasks(&all)
        .await
        .unwrap()
        .iter()
        .map(|t| t.spec.id)
        .collect();
    assert_eq!(ids, [c.id, b.id, a.id]);
    let on_a = TaskFilter {
        repo: Some("repo-a".into()),
        ..all.clone()
    };
    assert_eq!(store.tasks(&on_a).await.unwrap().len(), 2);
    let labelled = TaskFilter {
        label: Some(("team".into(), "infra".into())),
        ..all.clone()
    };
    assert_eq!(store.tasks(&labelled).await.unwrap()[0].spec.id, b.id);
    let page_two = TaskFilter {
        before: Some(c.id),
        limit: 1,
        ..TaskFilter::default()
    };
    assert_eq!(store.tasks(&page_two).await.unwrap()[0].spec.id, b.id);
    let duplicate = store.insert_task(&a).await;
    assert!(duplicate.is_err(), "a task id is stored once");
}

pub async fn the_queue_is_by_priority_then_age(store: &dyn Store) {
    let old = task("r", 100);
    let new = task("r", 200);
    let mut urgent = task("r", 300);
    urgent.priority = 5;
    for t in [&new, &old, &urgent] {
        store.insert_task(t).await.unwrap();
    }
    let queue: Vec<_> = store
        .queued_tasks(10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.spec.id)
        .collect();
    assert_eq!(queue, [urgent.id, old.id, new.id]);
}

pub async fn registration_tokens_spend_their_uses_and_expire(store: &dyn Store) {
    let first = runner(store, "first").await;
    assert_eq!(store.runners().await.unwrap()[0].id, first.id);
    let used_up = Token::generate(TokenKind::Registration);
    let record = RegistrationTokenRecord {
        id: "once".into(),
        uses_left: Some(1),
        expires_at: None,
        created_at: 1,
    };
    store
        .create_registration_token(&record, &used_up.hash())
        .await
        .unwrap();
    let new_runner = |name: &str| NewRunner {
        record: kiln_control_plane::model::RunnerRecord {
            id: RunnerId::new(),
            name: name.to_owned(),
            ..first.clone()
        },
        token_hash: Token::generate(TokenKind::Runner).hash(),
    };
    let once = store
        .register_runner(&used_up.hash(), new_runner("a"), 5)
        .await;
    assert!(once.unwrap().is_ok());
    let twice = store
        .register_runner(&used_up.hash(), new_runner("b"), 5)
        .await;
    assert_eq!(twice.unwrap().unwrap_err(), RegistrationRefusal::UsedUp);

    let expired = Token::generate(TokenKind::Registration);
    let record = RegistrationTokenRecord {
        id: "old".into(),
        uses_left: None,
        expires_at: Some(10),
        created_at: 1,
    };
    store
        .create_registration_token(&record, &expired.hash())
        .await
        .unwrap();
    let late = store
        .register_runner(&expired.hash(), new_runner("c"), 11)
        .await;
    assert_eq!(late.unwrap().unwrap_err(), RegistrationRefusal::Expired);
    let unknown = Token::generate(TokenKind::Registration);
    let nobody = store
        .register_runner(&unknown.hash(), new_runner("d"), 11)
        .await;
    assert_eq!(nobody.unwrap().unwrap_err(), RegistrationRefusal::Unknown);
    assert_eq!(store.runners().await.unwrap().len(), 2);
}

pub async fn an_attempt_runs_streams_idempotently_and_finishes_the_task(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    let t = task("r", 100);
    store.insert_task(&t).await.unwrap();
    let assigned = store.assign(&[(t.id, worker.id)], 110).await.unwrap();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].attempt, 1);
    assert!(store.queued_tasks(10).await.unwrap().is_empty());
    assert!(store.start_attempt(t.id, 1, worker.id, 120).await.unwrap());
    assert_eq!(
        store.task(t.id).await.unwrap().unwrap().state,
        TaskState::Running
    );
    store.touch_runner(worker.id, 125).await.unwrap();
    let silent = |before| store.silent_runners_with_open_attempts(before);
    assert!(
        silent(124).await.unwrap().is_empty(),
        "heard from after 124"
    );
    assert_eq!(silent(125).await.unwrap(), [worker.id], "not after 125");

    let first = [line(1, "one"), line(2, "two")];
    let appended = store
        .append_events(t.id, 1, worker.id, first.to_vec(), 1 << 20, 130)
        .await
        .unwrap();
    assert_eq!(appended.acked_seq, 2);
    assert_eq!(appended.stored.len(), 2);
    // A resend after a reconnect stores nothing twice.
    let again = store
        .append_events(t.id, 1, worker.id, first.to_vec(), 1 << 20, 131)
        .await
        .unwrap();
    assert_eq!(again.acked_seq, 2);
    assert!(again.stored.is_empty());
    // Past a gap nothing is stored; the ack says where the stream stands.
    let gap = store
        .append_events(t.id, 1, worker.id, vec![line(4, "four")], 1 << 20, 132)
        .await
        .unwrap();
    assert_eq!(gap.acked_seq, 2);
    assert!(gap.stored.is_empty());

    let stranger = runner(store, "stranger").await;
    let refused = store
        .append_events(t.id, 1, stranger.id, vec![line(3, "x")], 1 << 20, 133)
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotYours { .. })),
        "{refused:?}"
    );

    let end = store
        .append_events(
            t.id,
            1,
            worker.id,
            vec![line(3, "three"), finished(4)],
            1 << 20,
            140,
        )
        .await
        .unwrap();
    assert!(end.finished);
    assert_eq!(end.acked_seq, 4);
    let done = store.task(t.id).await.unwrap().unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.finished_at, Some(140));
    let seqs: Vec<u64> = store
        .events(t.id, 1, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let tail: Vec<u64> = store
        .events(t.id, 1, 2, 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(tail, [3]);
}

pub async fn rejected_and_lost_attempts_requeue_until_attempts_run_out(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    let t = task("r", 100);
    store.insert_task(&t).await.unwrap();
    store.assign(&[(t.id, worker.id)], 110).await.unwrap();
    store.reject_attempt(t.id, 1, worker.id, 111).await.unwrap();
    assert_eq!(
        store.task(t.id).await.unwrap().unwrap().state,
        TaskState::Queued
    );

    // max_attempts is 2, and only started attempts count.
    for (attempt, expected) in [(2, TaskState::Queued), (3, TaskState::Lost)] {
        let assigned = store.assign(&[(t.id, worker.id)], 120).await.unwrap();
        assert_eq!(assigned[0].attempt, attempt);
        assert!(store
            .start_attempt(t.id, attempt, worker.id, 121)
            .await
            .unwrap());
        assert_eq!(store.open_attempts(worker.id).await.unwrap().len(), 1);
        let state = store
            .lose_attempt(t.id, attempt, worker.id, 130)
            .await
            .unwrap();
        assert_eq!(state, Some(expected));
        assert!(store
            .lose_attempt(t.id, attempt, worker.id, 131)
            .await
            .unwrap()
            .is_none());
    }
    assert!(store.open_attempts(worker.id).await.unwrap().is_empty());
    assert_eq!(store.attempts(t.id).await.unwrap().len(), 3);
}

pub async fn cancel_and_retry_follow_the_task_state(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    let queued = task("r", 100);
    let running = task("r", 101);
    store.insert_task(&queued).await.unwrap();
    store.insert_task(&running).await.unwrap();
    store.assign(&[(running.id, worker.id)], 110).await.unwrap();
    store
        .start_attempt(running.id, 1, worker.id, 111)
        .await
        .unwrap();

    assert_eq!(
        store.request_cancel(queued.id, 120).await.unwrap(),
        CancelEffect::Cancelled
    );
    assert_eq!(
        store.request_cancel(queued.id, 121).await.unwrap(),
        CancelEffect::AlreadyEnded(TaskState::Cancelled)
    );
    assert_eq!(
        store.request_cancel(running.id, 122).await.unwrap(),
        CancelEffect::StopAttempt {
            runner: worker.id,
            attempt: 1
        }
    );
    assert!(
        store.cancels_unheeded(122).await.unwrap().is_empty(),
        "not before it was asked"
    );
    let unheeded = store.cancels_unheeded(123).await.unwrap();
    assert_eq!(
        unheeded
            .iter()
            .map(|a| (a.task_id, a.attempt))
            .collect::<Vec<_>>(),
        [(running.id, 1)],
        "the running attempt whose cancel its runner has not acted on"
    );
    assert_eq!(
        store.retry_task(running.id, 123).await.unwrap(),
        RetryEffect::StillLive(TaskState::Running)
    );
    assert_eq!(
        store.retry_task(queued.id, 124).await.unwrap(),
        RetryEffect::Queued
    );
    assert_eq!(
        store.task(queued.id).await.unwrap().unwrap().state,
        TaskState::Queued
    );
}

pub async fn retention_prunes_only_old_finished_tasks(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    let old = task("r", 100);
    let live = task("r", 101);
    for t in [&old, &live] {
        store.insert_task(t).await.unwrap();
        store.assign(&[(t.id, worker.id)], 110).await.unwrap();
        store.start_attempt(t.id, 1, worker.id, 111).await.unwrap();
        store
            .append_events(t.id, 1, worker.id, vec![line(1, "kept?")], 1 << 20, 112)
            .await
            .unwrap();
    }
    // Uploaded before its report, as a runner does: an attempt that reported takes none.
    store
        .put_artifact(old.id, 1, "diff", b"patch", 199)
        .await
        .unwrap();
    store
        .append_events(old.id, 1, worker.id, vec![finished(2)], 1 << 20, 200)
        .await
        .unwrap();

    let too_early = store.prune_finished(150, 1000, 10).await.unwrap();
    assert_eq!(too_early.tasks, 0, "finished after the cutoff");
    let pruned = store.prune_finished(300, 1000, 10).await.unwrap();
    assert_eq!(pruned.tasks, 1);
    assert_eq!(pruned.artifact_bytes, 5);
    assert!(pruned.event_chunks >= 1);
    assert!(store.events(old.id, 1, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.task(old.id).await.unwrap().unwrap().pruned_at,
        Some(1000)
    );
    assert_eq!(
        store.events(live.id, 1, 0, 10).await.unwrap().len(),
        1,
        "running: untouched"
    );
    assert_eq!(
        store.prune_finished(300, 1001, 10).await.unwrap().tasks,
        0,
        "pruned once"
    );

    let stats = store.stats().await.unwrap();
    let count = |state| {
        stats
            .tasks_by_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count(TaskState::Succeeded), 1);
    assert_eq!(count(TaskState::Running), 1);
    assert!(stats.bytes > 0);
}

pub async fn runners_are_touched_paused_and_revoked(store: &dyn Store) {
    let worker = runner(store, "worker").await;
    store.touch_runner(worker.id, 500).await.unwrap();
    assert_eq!(
        store.runner(worker.id).await.unwrap().unwrap().last_seen_at,
        Some(500)
    );
    let idle = runner(store, "idle").await;
    let drained = runner(store, "drained").await;
    let controlled = |since| async move {
        let found = store.runners_under_control(since).await.unwrap();
        found.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert!(controlled(0).await.is_empty(), "nothing asked yet");
    assert!(store.set_paused(worker.id, Some(600)).await.unwrap());
    assert_eq!(
        store.runner(worker.id).await.unwrap().unwrap().paused_at,
        Some(600)
    );
    assert!(store
        .set_drain_requested(drained.id, Some(650))
        .await
        .unwrap());
    let mut expected = vec![worker.id, drained.id];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(controlled(0).await, expected);
    assert!(store.set_paused(worker.id, None).await.unwrap());
    assert!(store.set_drain_requested(drained.id, None).await.unwrap());
    assert!(!store.set_paused(RunnerId::new(), None).await.unwrap());
    assert!(store.revoke_runner(worker.id, 700).await.unwrap());
    assert_eq!(
        store.runner(worker.id).await.unwrap().unwrap().revoked_at,
        Some(700)
    );
    assert_eq!(controlled(699).await, [worker.id], "revoked since 699");
    assert!(controlled(700).await.is_empty(), "not revoked after 700");
    assert!(!controlled(0).await.contains(&idle.id));
}

pub async fn a_batch_of_tasks_is_stored_all_or_none(store: &dyn Store) {
    let first = task("r", 100);
    store.insert_task(&first).await.unwrap();
    let batch = [task("r", 101), first.clone(), task("r", 102)];
    assert!(
        store.insert_tasks(&batch).await.is_err(),
        "a duplicate id fails the batch"
    );
    for t in [&batch[0], &batch[2]] {
        assert!(
            store.task(t.id).await.unwrap().is_none(),
            "nothing of a failed batch is kept"
        );
    }
    let good = [task("r", 103), task("r", 104)];
    store.insert_tasks(&good).await.unwrap();
    assert_eq!(store.queued_tasks(10).await.unwrap().len(), 3);
}
