//! Cancelling a task: ended at once when queued, or its runner told to stop it (here, or
//! through the replica that holds the runner).

use kiln_protocol::{now_millis, TaskId};

use super::Engine;
use crate::model::CancelEffect;
use crate::store::StoreError;
use crate::watchers::TaskUpdate;

impl Engine {
    /// Cancels `id` for `reason`.
    pub async fn cancel_task(&self, id: TaskId, reason: String) -> Result<(), StoreError> {
        match self.store.request_cancel(id, now_millis()).await? {
            CancelEffect::StopAttempt { runner, attempt } => {
                let action = crate::replicas::RunnerAction::cancel(id, attempt, &reason);
                self.deliver(runner, action).await?;
                self.watchers.publish(id, TaskUpdate::StateChanged);
            }
            CancelEffect::Cancelled => self.task_ended(id),
            CancelEffect::AlreadyEnded(_) => self.watchers.publish(id, TaskUpdate::StateChanged),
        }
        Ok(())
    }
}
