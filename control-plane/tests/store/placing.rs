//! Conformance cases for a task assigned in the transaction that stores it: it is, only
//! when nothing queued goes first and its session is free for that runner.

use kiln_control_plane::model::{AttemptState, NewTask, TaskState};
use kiln_control_plane::store::Store;
use kiln_protocol::TaskId;

use super::fixtures::{runner, session, task};

/// The task's state and attempt number as stored.
async fn stored(store: &dyn Store, id: TaskId) -> (TaskState, u32) {
    let task = store.task(id).await.unwrap().expect("stored");
    (task.state, task.attempt)
}

pub async fn a_task_is_assigned_as_it_is_stored_only_when_nothing_queued_goes_first(
    store: &dyn Store,
) {
    let runner = runner(store, "placing").await;
    let first = task("/tmp/repo", 10);
    let attempt = store
        .insert_and_assign(&first, runner.id, 20)
        .await
        .unwrap()
        .expect("an empty queue: assigned at once");
    assert_eq!(
        (attempt.task_id, attempt.attempt, attempt.runner_id),
        (first.id, 1, runner.id)
    );
    assert_eq!(
        (attempt.state, attempt.assigned_at),
        (AttemptState::Assigned, 20)
    );
    assert_eq!(stored(store, first.id).await, (TaskState::Assigned, 1));
    assert_eq!(store.attempts(first.id).await.unwrap(), [attempt]);

    let waiting = task("/tmp/repo", 30);
    store.insert_task(&waiting).await.unwrap();
    let behind = task("/tmp/repo", 40);
    let placed = store
        .insert_and_assign(&behind, runner.id, 50)
        .await
        .unwrap();
    assert_eq!(
        placed, None,
        "a queued task of the same priority goes first"
    );
    assert_eq!(stored(store, behind.id).await, (TaskState::Queued, 0));
    assert!(store.attempts(behind.id).await.unwrap().is_empty());

    let urgent = NewTask {
        priority: 5,
        ..task("/tmp/repo", 60)
    };
    let placed = store
        .insert_and_assign(&urgent, runner.id, 70)
        .await
        .unwrap();
    assert!(placed.is_some(), "nothing queued is as urgent");
    assert_eq!(stored(store, urgent.id).await, (TaskState::Assigned, 1));
    let queue: Vec<TaskId> = store
        .queued_tasks(10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.spec.id)
        .collect();
    assert_eq!(queue, [waiting.id, behind.id]);
}

pub async fn a_session_task_is_assigned_as_it_is_stored_only_when_its_session_is_free(
    store: &dyn Store,
) {
    let (mine, other) = (runner(store, "mine").await, runner(store, "other").await);
    let session = session("/tmp/repo");
    store.create_workspace(&session).await.unwrap();
    let step = |at| NewTask {
        workspace_id: Some(session.id),
        ..task("/tmp/repo", at)
    };

    let first = step(20);
    let placed = store.insert_and_assign(&first, mine.id, 25).await.unwrap();
    assert!(placed.is_some(), "an idle, unbound session");
    let bound = store.workspace(session.id).await.unwrap().expect("stored");
    assert_eq!(bound.runner_id, Some(mine.id), "bound to its first runner");

    let second = step(30);
    let placed = store.insert_and_assign(&second, mine.id, 35).await.unwrap();
    assert_eq!(placed, None, "the session has a task assigned");
    assert_eq!(stored(store, second.id).await, (TaskState::Queued, 0));

    assert!(store
        .end_task(first.id, TaskState::Succeeded, "done", 40)
        .await
        .unwrap());
    let urgent = NewTask {
        priority: 9,
        ..step(42)
    };
    let placed = store.insert_and_assign(&urgent, mine.id, 43).await.unwrap();
    assert_eq!(
        placed, None,
        "a task of the session is queued, if less urgent"
    );
    store.request_cancel(second.id, 45).await.unwrap();
    store.request_cancel(urgent.id, 45).await.unwrap();
    let third = step(50);
    let placed = store.insert_and_assign(&third, other.id, 55).await.unwrap();
    assert_eq!(placed, None, "the session belongs to another runner");
    assert_eq!(stored(store, third.id).await, (TaskState::Queued, 0));

    store.request_cancel(third.id, 60).await.unwrap();
    let fourth = step(70);
    let placed = store.insert_and_assign(&fourth, mine.id, 75).await.unwrap();
    assert!(placed.is_some(), "idle again, on its own runner");
    assert_eq!(stored(store, fourth.id).await, (TaskState::Assigned, 1));
}
