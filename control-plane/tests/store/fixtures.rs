//! Records the conformance cases build: tasks, runners, events.

use std::collections::BTreeMap;

use kiln_control_plane::model::{
    NewTask, RegistrationTokenRecord, RunnerRecord, WorkspaceRecord, WorkspaceState,
};
use kiln_control_plane::store::{NewRunner, Store};
use kiln_control_plane::tokens::{Token, TokenKind};
use kiln_protocol::{
    Event, EventBody, LogLine, Outcome, OutcomeStatus, RunnerId, UnixMillis, WorkspaceId,
};

/// A queued task on `repo` created at `at`.
pub fn task(repo: &str, at: UnixMillis) -> NewTask {
    NewTask {
        repo: repo.to_owned(),
        created_at: at,
        max_attempts: 2,
        ..kiln_control_plane::testing::new_task()
    }
}

/// An open workspace session on `repo`, not bound to a runner yet.
pub fn session(repo: &str) -> WorkspaceRecord {
    WorkspaceRecord {
        id: WorkspaceId::new(),
        repo: repo.to_owned(),
        base_ref: None,
        branch: "kiln/session".into(),
        setup: Vec::new(),
        runner_id: None,
        state: WorkspaceState::Open,
        created_at: 1,
        closed_at: None,
    }
}

/// Registers a runner through a fresh single-use registration token.
pub async fn runner(store: &dyn Store, name: &str) -> RunnerRecord {
    let registration = Token::generate(TokenKind::Registration);
    let record = RegistrationTokenRecord {
        id: format!("reg-{name}"),
        uses_left: Some(1),
        expires_at: None,
        created_at: 1,
    };
    store
        .create_registration_token(&record, &registration.hash())
        .await
        .unwrap();
    let runner = NewRunner {
        record: runner_record(name),
        token_hash: Token::generate(TokenKind::Runner).hash(),
    };
    store
        .register_runner(&registration.hash(), runner, 2)
        .await
        .unwrap()
        .expect("registration accepted")
}

/// A stdout-free system log line event.
pub fn line(seq: u64, text: &str) -> Event {
    Event {
        seq,
        ts: 10,
        body: EventBody::Log(LogLine::system(text)),
    }
}

/// The `finished` event of a successful attempt.
pub fn finished(seq: u64) -> Event {
    Event {
        seq,
        ts: 20,
        body: EventBody::Finished {
            outcome: Outcome {
                status: OutcomeStatus::Succeeded,
                exit_code: Some(0),
                signal: None,
                message: "agent exited with code 0".into(),
                result: None,
                stop: None,
                iterations: None,
                usage: None,
                agent_session: None,
            },
        },
    }
}

/// A runner's record as registration makes it.
pub fn runner_record(name: &str) -> RunnerRecord {
    RunnerRecord {
        id: RunnerId::new(),
        name: name.to_owned(),
        capabilities: Vec::new(),
        labels: BTreeMap::new(),
        max_concurrent: 2,
        version: None,
        created_at: 1,
        last_seen_at: None,
        revoked_at: None,
        paused_at: None,
        drain_requested_at: None,
        rotation_requested_at: None,
        sandbox_id: None,
    }
}
