//! Helpers for tests (the unit tests, the store conformance suite, the end-to-end tests):
//! records and a throwaway PostgreSQL server; not API.

pub mod postgres;

use std::collections::BTreeMap;

use kiln_protocol::TaskId;

use crate::model::{NewTask, RunOptions};

/// A queued task with a fresh id and nothing special about it.
pub fn new_task() -> NewTask {
    let id = TaskId::new();
    NewTask {
        id,
        repo: "/tmp/repo".into(),
        base_ref: None,
        branch: format!("kiln/{id}"),
        prompt: "p".into(),
        command: vec!["true".into()],
        env: BTreeMap::new(),
        secret_env: Default::default(),
        requires: Vec::new(),
        labels: BTreeMap::new(),
        priority: 0,
        timeout_ms: None,
        idle_timeout_ms: None,
        max_attempts: 1,
        created_at: 1,
        options: RunOptions::default(),
        workspace_id: None,
        sandbox_id: None,
    }
}
