//! Retention: every so often, delete the events and artifacts of tasks that finished more
//! than the configured age ago. Task rows stay (marked `pruned_at`); live tasks are never
//! touched. Each pass is counted in `/metrics`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kiln_protocol::now_millis;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::store::{Pruned, StoreError};

/// Tasks pruned per transaction: bounds how long one pass holds the store's writer.
const TASKS_PER_TRANSACTION: u32 = 100;

/// How long to keep the output of finished tasks, and how often to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Output of tasks finished longer ago than this is deleted.
    pub keep: Duration,
    /// Time between passes.
    pub every: Duration,
}

/// Prunes at start and then every `retention.every`, until `shutdown`.
pub async fn run(state: Engine, retention: Retention, shutdown: CancellationToken) {
    loop {
        match prune_once(&state, retention.keep).await {
            Ok(pruned) if pruned.tasks > 0 => tracing::info!(
                tasks = pruned.tasks,
                event_chunks = pruned.event_chunks,
                artifact_bytes = pruned.artifact_bytes,
                "pruned the output of finished tasks"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "retention pass failed; will try again"),
        }
        tokio::select! {
            () = tokio::time::sleep(retention.every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One pass: prunes every task that is due, a transaction at a time.
async fn prune_once(state: &Engine, keep: Duration) -> Result<Pruned, StoreError> {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let mut total = Pruned::default();
    loop {
        let now = now_millis();
        let pruned = state
            .store
            .prune_finished(now.saturating_sub(keep_ms), now, TASKS_PER_TRANSACTION)
            .await?;
        let metrics = &state.metrics;
        metrics
            .pruned_tasks
            .fetch_add(pruned.tasks, Ordering::Relaxed);
        metrics
            .pruned_event_chunks
            .fetch_add(pruned.event_chunks, Ordering::Relaxed);
        metrics
            .pruned_artifact_bytes
            .fetch_add(pruned.artifact_bytes, Ordering::Relaxed);
        total.tasks += pruned.tasks;
        total.event_chunks += pruned.event_chunks;
        total.artifact_bytes += pruned.artifact_bytes;
        if pruned.tasks < u64::from(TASKS_PER_TRANSACTION) {
            return Ok(total);
        }
    }
}
