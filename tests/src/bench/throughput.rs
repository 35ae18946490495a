//! Tasks dispatched and finished end to end: many small submits against simulated runners
//! that finish each assignment at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::json;

use super::report::Row;
use super::sim::{self, Behaviour, Counters};
use super::stats::per_second;
use crate::{wait, ControlPlane};

/// Simulated runners (the target's fleet).
const RUNNERS: usize = 50;

/// Assignments each simulated runner takes at once.
const SLOTS: u32 = 4;

/// Submits in flight at once, as a busy dispatching server would have.
const SUBMIT_CONCURRENCY: usize = 32;

/// The throughput row for `tasks` tasks.
pub async fn run(tasks: usize) -> Vec<Row> {
    let control_plane = ControlPlane::start_bench(&[]).await;
    let registration = control_plane.registration_token(u32::try_from(RUNNERS).unwrap_or(u32::MAX));
    let tokens = sim::register(&control_plane.url, &registration, "worker", RUNNERS, SLOTS).await;
    let counters = Arc::new(Counters::default());
    let fleet: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            sim::spawn(
                &control_plane.url,
                token,
                Behaviour::Worker { slots: SLOTS },
                Arc::clone(&counters),
            )
        })
        .collect();
    wait::until(
        "simulated runners welcomed",
        Duration::from_secs(60),
        || async { (counters.welcomed.load(Ordering::Relaxed) == RUNNERS as u64).then_some(()) },
    )
    .await;

    let http = reqwest::Client::new();
    let url = format!("{}/v1/tasks", control_plane.url);
    let body = json!({ "repo": "https://example.com/bench/app.git", "command": ["true"] });
    let start = Instant::now();
    futures_util::stream::iter(0..tasks)
        .map(|_| {
            let request = http
                .post(&url)
                .bearer_auth(&control_plane.admin_token)
                .json(&body);
            async move {
                let response = request.send().await.expect("submit");
                assert!(
                    response.status().is_success(),
                    "submit: {}",
                    response.status()
                );
            }
        })
        .buffer_unordered(SUBMIT_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let submitted = start.elapsed();
    wait::until("every task finished", Duration::from_secs(600), || async {
        (counters.finished.load(Ordering::Relaxed) >= tasks as u64).then_some(())
    })
    .await;
    let elapsed = start.elapsed();
    for runner in fleet {
        runner.abort();
    }
    let rate = tasks as f64 / elapsed.as_secs_f64();
    let submit_rate = tasks as f64 / submitted.as_secs_f64();
    vec![Row::new(
        &format!("tasks dispatched and finished end to end ({RUNNERS} simulated runners)"),
        "≥ 2,000 tasks/s",
        format!(
            "{} ({tasks} tasks; submits alone {})",
            per_second(rate),
            per_second(submit_rate)
        ),
        Some(rate >= 2000.0),
    )]
}
