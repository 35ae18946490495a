//! Delivering an operator's control to a runner, written once: carried out here when the
//! runner's connection is here, else relayed to the replica that holds it. Callers record
//! the request in the store first, so a runner connected nowhere gets it when it next
//! connects, and a replica carries out only what the store bears out.

use kiln_protocol::{CloseCode, RunnerId, ServerMessage};

use super::Engine;
use crate::replicas::RunnerAction;
use crate::store::StoreError;

impl Engine {
    /// Delivers `action` to `runner`, wherever its connection is.
    pub async fn deliver(&self, runner: RunnerId, action: RunnerAction) -> Result<(), StoreError> {
        if !self.carry_out_here(runner, &action).await? {
            self.relay(runner, action).await;
        }
        Ok(())
    }

    /// Carries out `action` on `runner` if its connection is here; false when it is not.
    pub async fn carry_out_here(
        &self,
        runner: RunnerId,
        action: &RunnerAction,
    ) -> Result<bool, StoreError> {
        if self.hub.live(runner).is_none() {
            return Ok(false);
        }
        let delivered = match action {
            RunnerAction::Cancel {
                task_id,
                attempt,
                reason,
            } => {
                let message = ServerMessage::Cancel {
                    task_id: *task_id,
                    attempt: *attempt,
                    reason: reason.clone(),
                };
                self.hub.send(runner, message)
            }
            RunnerAction::Drain => {
                let sent = self.hub.send(runner, ServerMessage::Drain);
                if sent {
                    self.hub.set_draining(runner);
                    // Delivered: it must not drain again when it next connects.
                    self.store.set_drain_requested(runner, None).await?;
                }
                sent
            }
            RunnerAction::Pause => {
                self.hub.set_paused(runner, true);
                true
            }
            RunnerAction::Resume => {
                self.hub.set_paused(runner, false);
                true
            }
            RunnerAction::Revoke => {
                self.hub
                    .close(runner, CloseCode::Revoked, "runner token revoked")
            }
            RunnerAction::Rotate => {
                self.send_new_token(runner).await?;
                true
            }
            RunnerAction::Retag => {
                if let Some(record) = self.store.runner(runner).await? {
                    self.hub
                        .set_tags(runner, &record.capabilities, &record.labels);
                }
                true
            }
            RunnerAction::CloseWorkspace { workspace_id } => {
                let message = ServerMessage::CloseWorkspace {
                    workspace_id: *workspace_id,
                };
                self.hub.send(runner, message)
            }
        };
        Ok(delivered)
    }
}
