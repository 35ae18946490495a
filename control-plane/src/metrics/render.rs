//! `/metrics` in Prometheus' text format: the fleet and queue read at scrape time, plus
//! the counters and histograms kept as things happen.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use kiln_protocol::now_millis;

use crate::api_types::RunnerState;
use crate::engine::Engine;
use crate::model::TaskState;
use crate::store::StoreError;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The whole exposition.
pub async fn render(state: &Engine) -> Result<String, StoreError> {
    let mut out = String::new();
    let runners = state.store.runners().await?;
    let states: Vec<RunnerState> = runners
        .iter()
        .map(|r| state.runner_state(r, state.hub.live(r.id).as_ref()))
        .collect();
    // Every state is listed, so that one with no runners reads 0 rather than vanishing.
    header(
        &mut out,
        "kiln_runners",
        "gauge",
        "Registered runners by state.",
    );
    for wanted in RunnerState::ALL {
        let count = states.iter().filter(|&&s| s == wanted).count();
        let _ = writeln!(out, "kiln_runners{{state=\"{}\"}} {count}", wanted.as_str());
    }

    let stats = state.store.stats().await?;
    let count_of = |wanted: TaskState| {
        stats
            .tasks_by_state
            .iter()
            .find(|(state, _)| *state == wanted)
            .map_or(0, |(_, count)| *count)
    };
    header(&mut out, "kiln_tasks", "gauge", "Tasks by state.");
    for wanted in TaskState::ALL {
        let _ = writeln!(out, "kiln_tasks{{state=\"{wanted}\"}} {}", count_of(wanted));
    }
    let queued = count_of(TaskState::Queued);
    header(
        &mut out,
        "kiln_queue_depth",
        "gauge",
        "Tasks waiting for a runner.",
    );
    let _ = writeln!(out, "kiln_queue_depth {queued}");
    let age = stats.oldest_queued_at.map_or(0.0, |submitted| {
        now_millis().saturating_sub(submitted).max(0) as f64 / 1000.0
    });
    header(
        &mut out,
        "kiln_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest queued task (0 when the queue is empty).",
    );
    let _ = writeln!(out, "kiln_queue_oldest_age_seconds {age}");
    header(
        &mut out,
        "kiln_store_bytes",
        "gauge",
        "Size of the database.",
    );
    let _ = writeln!(out, "kiln_store_bytes {}", stats.bytes);

    let metrics = &state.metrics;
    header(
        &mut out,
        "kiln_events_ingested_total",
        "counter",
        "Events from runners stored by this control plane.",
    );
    let _ = writeln!(
        out,
        "kiln_events_ingested_total {}",
        metrics.events_ingested.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "kiln_websocket_connections",
        "gauge",
        "Open runner connections to this control plane.",
    );
    let _ = writeln!(
        out,
        "kiln_websocket_connections {}",
        metrics.websocket_connections()
    );
    for (name, help, counter) in [
        (
            "kiln_pruned_tasks_total",
            "Finished tasks whose events and artifacts retention deleted.",
            &metrics.pruned_tasks,
        ),
        (
            "kiln_pruned_event_chunks_total",
            "Stored event chunks retention deleted.",
            &metrics.pruned_event_chunks,
        ),
        (
            "kiln_pruned_artifact_bytes_total",
            "Artifact bytes retention deleted.",
            &metrics.pruned_artifact_bytes,
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }
    metrics.dispatch_latency.render(
        &mut out,
        "kiln_dispatch_latency_seconds",
        "Submit to assignment of each task's first attempt.",
    );
    if let Some(latency) = state.store.commit_latency() {
        latency.render(
            &mut out,
            "kiln_store_commit_seconds",
            "Time of each store commit (a group of writes).",
        );
    }
    Ok(out)
}
