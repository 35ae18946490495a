//! Conformance cases for workspace sessions and per-task sandboxes.

use kiln_control_plane::model::{
    SandboxRecord, SandboxState, TaskState, WorkspaceRecord, WorkspaceState,
};
use kiln_control_plane::store::{NewRunner, Store};
use kiln_control_plane::tokens::{Token, TokenKind};
use kiln_protocol::{RunnerId, SandboxId, WorkspaceId};

use super::fixtures::{runner, task};

pub async fn workspaces_bind_to_their_first_runner_and_end_their_queue(store: &dyn Store) {
    let runner = runner(store, "ws-runner").await;
    let session = WorkspaceRecord {
        id: WorkspaceId::new(),
        repo: "/tmp/repo".into(),
        base_ref: Some("main".into()),
        branch: "kiln/session".into(),
        setup: vec![vec!["make".into(), "deps".into()]],
        runner_id: None,
        state: WorkspaceState::Open,
        created_at: 10,
        closed_at: None,
    };
    store.create_workspace(&session).await.unwrap();
    assert_eq!(
        store.workspace(session.id).await.unwrap(),
        Some(session.clone())
    );
    let mut first = task("/tmp/repo", 20);
    first.workspace_id = Some(session.id);
    let mut second = task("/tmp/repo", 30);
    second.workspace_id = Some(session.id);
    store.insert_task(&first).await.unwrap();
    store.insert_task(&second).await.unwrap();

    store.assign(&[(first.id, runner.id)], 40).await.unwrap();
    let bound = store.workspace(session.id).await.unwrap().expect("stored");
    assert_eq!(
        bound.runner_id,
        Some(runner.id),
        "bound to its first runner"
    );
    assert_eq!(store.busy_workspaces().await.unwrap(), [session.id]);
    let second_too = store.assign(&[(second.id, runner.id)], 45).await.unwrap();
    assert!(second_too.is_empty(), "a session runs one task at a time");
    assert_eq!(store.open_workspaces_of(runner.id).await.unwrap(), [bound]);

    assert_eq!(
        store
            .end_workspace(session.id, WorkspaceState::Lost, 50)
            .await
            .unwrap(),
        Some(vec![second.id]),
        "the queued task it ended"
    );
    assert_eq!(
        store
            .end_workspace(session.id, WorkspaceState::Closed, 60)
            .await
            .unwrap(),
        None,
        "an ended session ends nothing"
    );
    let ended = store.workspace(session.id).await.unwrap().expect("stored");
    assert_eq!(
        (ended.state, ended.closed_at),
        (WorkspaceState::Lost, Some(50))
    );
    let queued = store.task(second.id).await.unwrap().expect("stored");
    assert_eq!(
        queued.state,
        TaskState::Error,
        "its queued task ended with it"
    );
    let assigned = store.task(first.id).await.unwrap().expect("stored");
    assert_eq!(
        assigned.state,
        TaskState::Assigned,
        "a task on its runner is the runner's"
    );
    assert!(store
        .open_workspaces_of(runner.id)
        .await
        .unwrap()
        .is_empty());
}

pub async fn sandboxes_forge_and_burn_with_their_runner(store: &dyn Store) {
    let mut boxed = task("/tmp/repo", 10);
    let sandbox = SandboxRecord {
        id: SandboxId::new(),
        task_id: boxed.id,
        runner_id: RunnerId::new(),
        provider: "docker".into(),
        image: "kiln-sandbox:latest".into(),
        handle: None,
        state: SandboxState::Forging,
        expires_at: 1_000,
        created_at: 10,
        burned_at: None,
        reason: None,
    };
    boxed.sandbox_id = Some(sandbox.id);
    let token = Token::generate(TokenKind::Runner);
    let mut identity = super::fixtures::runner_record("sandbox-runner");
    identity.id = sandbox.runner_id;
    identity.sandbox_id = Some(sandbox.id);
    let new_runner = NewRunner {
        record: identity,
        token_hash: token.hash(),
    };
    store
        .create_sandbox(&boxed, &sandbox, &new_runner)
        .await
        .unwrap();
    assert_eq!(
        store.sandbox(sandbox.id).await.unwrap(),
        Some(sandbox.clone())
    );
    assert_eq!(
        store.sandbox_of_task(boxed.id).await.unwrap(),
        Some(sandbox.clone())
    );
    let task = store.task(boxed.id).await.unwrap().expect("its task");
    assert_eq!(task.spec.sandbox_id, Some(sandbox.id));
    let its_runner = store
        .runner_by_token(&token.hash())
        .await
        .unwrap()
        .expect("identity");
    assert_eq!(its_runner.sandbox_id, Some(sandbox.id));

    assert!(store
        .sandbox_forged(sandbox.id, "container-1")
        .await
        .unwrap());
    assert!(!store
        .sandbox_forged(sandbox.id, "container-2")
        .await
        .unwrap());
    assert_eq!(store.live_sandboxes().await.unwrap().len(), 1);
    assert!(store
        .end_sandbox(sandbox.id, SandboxState::Burned, "task ended", 99)
        .await
        .unwrap());
    assert!(!store
        .end_sandbox(sandbox.id, SandboxState::Failed, "again", 100)
        .await
        .unwrap());
    let burned = store.sandbox(sandbox.id).await.unwrap().expect("kept");
    assert_eq!(burned.handle.as_deref(), Some("container-1"));
    assert_eq!(
        (burned.state, burned.burned_at),
        (SandboxState::Burned, Some(99))
    );
    assert_eq!(burned.reason.as_deref(), Some("task ended"));
    assert!(store.live_sandboxes().await.unwrap().is_empty());
    let revoked = store
        .runner(sandbox.runner_id)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(
        revoked.revoked_at,
        Some(99),
        "its runner identity is revoked"
    );
}
