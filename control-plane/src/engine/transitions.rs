//! What follows a change of a task's state, decided in one place for the socket, the
//! dispatcher, liveness, reconciliation and the API alike: the task's followers are told,
//! the dispatcher is woken when the task is queued again, and its sandbox is burned when
//! it has ended.

use kiln_protocol::TaskId;

use super::Engine;
use crate::model::TaskState;
use crate::watchers::TaskUpdate;

impl Engine {
    /// Applies what follows `task` moving to `state`, as the store reported it; `None`
    /// (the store changed nothing) has no consequence.
    pub fn task_moved(&self, task: TaskId, state: Option<TaskState>) {
        let Some(state) = state else {
            return;
        };
        if state == TaskState::Queued {
            self.hub.wake_dispatcher();
        }
        if state.is_terminal() {
            self.burn_sandbox_of(task);
        }
        self.watchers.publish(task, TaskUpdate::StateChanged);
    }

    /// `task` has ended, in a state the caller does not hold: what follows any end.
    pub fn task_ended(&self, task: TaskId) {
        self.burn_sandbox_of(task);
        self.watchers.publish(task, TaskUpdate::StateChanged);
    }

    fn burn_sandbox_of(&self, task: TaskId) {
        if let Some(sandboxes) = &self.sandboxes {
            sandboxes.task_ended(self.clone(), task);
        }
    }
}
