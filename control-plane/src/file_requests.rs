//! File requests relayed to runners: the API waits for the runner's answer, matched by
//! request id and checked to come from the runner that was asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kiln_protocol::{FileOp, FileResult, FileTarget, RunnerId, ServerMessage};
use tokio::sync::oneshot;

use crate::hub::Hub;

/// Time a runner has to answer a file request. File operations are local and small.
pub const FILE_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a file request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum FileRequestError {
    /// The runner is not connected.
    #[error("runner {0} is not connected")]
    Offline(RunnerId),
    /// The runner did not answer in time.
    #[error("runner {0} did not answer within {1:?}")]
    Timeout(RunnerId, Duration),
}

/// Requests waiting for their answer.
#[derive(Debug, Default)]
pub struct FileRequests {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, (RunnerId, oneshot::Sender<FileResult>)>>,
}

impl FileRequests {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (RunnerId, oneshot::Sender<FileResult>)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `op` on `target` to `runner` and waits for its answer.
    pub async fn request(
        &self,
        hub: &Hub,
        runner: RunnerId,
        target: FileTarget,
        op: FileOp,
    ) -> Result<FileResult, FileRequestError> {
        let request_id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (answer, answered) = oneshot::channel();
        self.lock().insert(request_id, (runner, answer));
        if !hub.send(
            runner,
            ServerMessage::FileRequest {
                request_id,
                target,
                op,
            },
        ) {
            self.lock().remove(&request_id);
            return Err(FileRequestError::Offline(runner));
        }
        let result = tokio::time::timeout(FILE_REQUEST_TIMEOUT, answered).await;
        self.lock().remove(&request_id);
        match result {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) | Err(_) => Err(FileRequestError::Timeout(runner, FILE_REQUEST_TIMEOUT)),
        }
    }

    /// Delivers `runner`'s answer. False if no such request is waiting for that runner.
    pub fn answer(&self, runner: RunnerId, request_id: u64, result: FileResult) -> bool {
        let mut pending = self.lock();
        if pending
            .get(&request_id)
            .is_none_or(|(asked, _)| *asked != runner)
        {
            return false;
        }
        pending
            .remove(&request_id)
            .is_some_and(|(_, answer)| answer.send(result).is_ok())
    }
}
