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

/// Batches in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// Tasks per `POST /v1/tasks/batch` in the batched run.
const BATCH: usize = 100;

/// How the tasks are submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Submission {
    /// One `POST /v1/tasks` each, 32 in flight.
    OneByOne,
    /// `POST /v1/tasks/batch` of [`BATCH`] tasks, 4 in flight.
    Batched,
}

/// The throughput rows for `tasks` tasks: submitted one by one, then in batches.
pub async fn run(tasks: usize, database: Option<&str>) -> Vec<Row> {
    vec![
        measure(tasks, Submission::OneByOne, database).await,
        measure(tasks, Submission::Batched, database).await,
    ]
}

/// Submits `tasks` tasks and waits until all have finished.
async fn submit_all(control_plane: &ControlPlane, tasks: usize, how: Submission) {
    let http = reqwest::Client::new();
    let task = json!({ "repo": "https://example.com/bench/app.git", "command": ["true"] });
    let (path, per_request, in_flight) = match how {
        Submission::OneByOne => ("/v1/tasks", 1, SUBMIT_CONCURRENCY),
        Submission::Batched => ("/v1/tasks/batch", BATCH, BATCHES_IN_FLIGHT),
    };
    let url = format!("{}{path}", control_plane.url);
    let requests = tasks.div_ceil(per_request);
    futures_util::stream::iter(0..requests)
        .map(|n| {
            let count = per_request.min(tasks - n * per_request);
            let body = match how {
                Submission::OneByOne => task.clone(),
                Submission::Batched => json!({ "tasks": vec![task.clone(); count] }),
            };
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
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
}

async fn measure(tasks: usize, how: Submission, database: Option<&str>) -> Row {
    let control_plane = ControlPlane::start_bench_on(database).await;
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

    let start = Instant::now();
    submit_all(&control_plane, tasks, how).await;
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
    let submitted_how = match how {
        Submission::OneByOne => "one by one",
        Submission::Batched => "in batches of 100",
    };
    Row::new(
        &format!(
            "tasks dispatched and finished end to end ({RUNNERS} simulated runners, submitted {submitted_how})"
        ),
        "≥ 2,000 tasks/s",
        format!(
            "{} ({tasks} tasks; submits alone {})",
            per_second(rate),
            per_second(submit_rate)
        ),
        Some(rate >= 2000.0),
    )
}
