//! The fleet as the engine sees it: where a runner is, and handing a runner a new token.

use kiln_protocol::{millis_ago, RunnerId, ServerMessage};

use super::Engine;
use crate::api_types::RunnerState;
use crate::hub::LiveRunner;
use crate::model::RunnerRecord;
use crate::store::StoreError;
use crate::tokens::{Token, TokenKind};

/// Heartbeats a runner on another replica may miss before this replica shows it offline.
const HEARTBEATS_MISSED_ELSEWHERE: u32 = 3;

impl Engine {
    /// Where a registered runner is, from its record and its live connection to this
    /// replica (if any); with replicas, a runner another replica heard from lately is
    /// online there.
    pub fn runner_state(&self, runner: &RunnerRecord, live: Option<&LiveRunner>) -> RunnerState {
        match (&runner.revoked_at, live) {
            (Some(_), _) => RunnerState::Revoked,
            (None, None) if self.connected_elsewhere(runner) => match runner.paused_at {
                Some(_) => RunnerState::Paused,
                None => RunnerState::Online,
            },
            (None, None) => RunnerState::Offline,
            (None, Some(live)) if live.draining => RunnerState::Draining,
            (None, Some(_)) if runner.paused_at.is_some() => RunnerState::Paused,
            (None, Some(_)) => RunnerState::Online,
        }
    }

    /// True when the store is shared and the runner heartbeated lately (to another
    /// replica).
    fn connected_elsewhere(&self, runner: &RunnerRecord) -> bool {
        let window = self.settings.heartbeat_interval * HEARTBEATS_MISSED_ELSEWHERE;
        self.peers.is_some() && runner.heard_since(millis_ago(window))
    }

    /// Makes a new token for `runner`, stores its hash and sends it over the runner's
    /// connection.
    pub async fn send_new_token(&self, runner: RunnerId) -> Result<(), StoreError> {
        let token = Token::generate(TokenKind::Runner);
        self.store.rotate_token(runner, &token.hash()).await?;
        let message = ServerMessage::Rotate {
            runner_token: token.expose().to_owned(),
        };
        if !self.hub.send(runner, message) {
            tracing::info!(%runner, "runner left before its new token was sent; it gets another when it connects");
        }
        Ok(())
    }
}
