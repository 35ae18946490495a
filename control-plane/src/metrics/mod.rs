//! Prometheus metrics of the control plane: counters and histograms updated where things
//! happen, and gauges read from the store and the hub when `/metrics` is scraped.

mod histogram;
mod render;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

pub use histogram::Histogram;
pub use render::render;

/// The control plane's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events stored from runners.
    pub events_ingested: AtomicU64,
    /// Open runner WebSocket connections.
    websocket_connections: AtomicI64,
    /// Submit to assignment of each task's first attempt.
    pub dispatch_latency: Histogram,
    /// Tasks whose output retention deleted.
    pub pruned_tasks: AtomicU64,
    /// Event chunks retention deleted.
    pub pruned_event_chunks: AtomicU64,
    /// Artifact bytes retention deleted.
    pub pruned_artifact_bytes: AtomicU64,
}

impl Metrics {
    /// Counts a runner connection until the guard drops.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.websocket_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(self))
    }

    pub(crate) fn websocket_connections(&self) -> i64 {
        self.websocket_connections.load(Ordering::Relaxed)
    }
}

/// One open runner connection, counted while it lives.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.websocket_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
