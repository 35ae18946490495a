//! `POST /v1/tasks/batch`: many tasks queued in one request and one transaction, all or
//! none, for servers that dispatch work in bulk.

use std::collections::hash_map::{Entry, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kiln_protocol::{now_millis, WorkspaceId};

use super::body::JsonBody;
use crate::api_types::{BatchSubmitRequest, TaskPage};
use crate::model::{TaskRecord, WorkspaceRecord};
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::task_input::{self, InvalidField};

/// Most tasks in one batch: one batch is one transaction on the store's writer, and this
/// bounds how long it holds it (about 10 ms of inserts).
pub const MAX_BATCH_TASKS: usize = 1000;

/// Largest batch body: 1,000 tasks with 16 KiB of prompt and settings each.
pub const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;

pub async fn submit(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<BatchSubmitRequest, MAX_BATCH_BODY_BYTES>,
) -> Result<(StatusCode, Json<TaskPage>), ApiError> {
    if batch.tasks.is_empty() || batch.tasks.len() > MAX_BATCH_TASKS {
        return Err(ApiError::BadRequest(format!(
            "tasks has {} entries; a batch holds 1 to {MAX_BATCH_TASKS}",
            batch.tasks.len()
        )));
    }
    let now = now_millis();
    let mut tasks = Vec::with_capacity(batch.tasks.len());
    // A batch's tasks often share one session: read each session once.
    let mut sessions: HashMap<WorkspaceId, WorkspaceRecord> = HashMap::new();
    for (index, request) in batch.tasks.into_iter().enumerate() {
        let in_batch = |error: InvalidField| InvalidField {
            field: format!("tasks[{index}].{}", error.field),
            reason: error.reason,
        };
        if request.sandbox.is_some() {
            return Err(in_batch(InvalidField {
                field: "sandbox".into(),
                reason: "cannot be batched: submit sandboxed tasks one at a time".into(),
            })
            .into());
        }
        let workspace = match request.workspace_id {
            Some(id) => match sessions.entry(id) {
                Entry::Occupied(known) => Some(known.into_mut()),
                Entry::Vacant(slot) => {
                    let found = state.engine.store.workspace(id).await?.ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "tasks[{index}].workspace_id: session {id} not found"
                        ))
                    })?;
                    Some(slot.insert(found))
                }
            },
            None => None,
        };
        let task = task_input::new_task(request, workspace.as_deref(), now).map_err(in_batch)?;
        tasks.push(task);
    }
    state.engine.store.insert_tasks(&tasks).await?;
    state.engine.hub.wake_dispatcher();
    tracing::info!(tasks = tasks.len(), "batch of tasks queued");
    let records = tasks.into_iter().map(TaskRecord::queued).collect();
    Ok((
        StatusCode::CREATED,
        Json(TaskPage {
            tasks: records,
            next_before: None,
        }),
    ))
}
