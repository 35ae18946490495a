//! Messages for the control plane that are not attempt events: small notices (such as "I
//! now mirror this repository") and answers to file requests, made on a blocking thread.
//! Sent on the current connection, or the next one: a new connection's hello carries the
//! notices' facts anyway, and the control plane ignores an answer to a request it no
//! longer waits for.

use std::sync::Mutex;

use kiln_protocol::RunnerMessage;
use tokio::sync::Notify;

/// Most notices kept while waiting for a connection; beyond it the oldest go (hello repeats
/// their content anyway).
const MAX_PENDING: usize = 256;

/// Pending notices.
#[derive(Debug, Default)]
pub struct Notices {
    pending: Mutex<Vec<RunnerMessage>>,
    ready: Notify,
}

impl Notices {
    /// Queues a notice.
    pub fn post(&self, message: RunnerMessage) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() == MAX_PENDING {
            pending.remove(0);
        }
        pending.push(message);
        drop(pending);
        self.ready.notify_one();
    }

    /// Takes every pending notice.
    pub fn take(&self) -> Vec<RunnerMessage> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until a notice may be pending.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}
