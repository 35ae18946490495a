//! What a connected fleet costs: idle memory of both daemons, and the control plane's
//! memory and CPU as simulated idle runners (heartbeats included) grow to 10,000.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::process::{cpu_seconds, raise_open_files, rss_kib};
use super::report::Row;
use super::setup::Stack;
use super::sim::{self, Behaviour, Counters};
use crate::{wait, ControlPlane};

/// Time every level is held before it is measured: two default heartbeat periods.
const SETTLE: Duration = Duration::from_secs(10);

/// Simulated runners connecting at once (below the control plane's per-address cap on
/// handshakes in progress).
const CONNECT_BATCH: usize = 32;

/// One level of the fleet: runners, control-plane RSS, CPU share.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Level {
    /// Connected idle runners.
    pub runners: usize,
    /// Control plane resident memory, KiB.
    pub rss_kib: u64,
    /// Control plane CPU use over the settle window, as a fraction of one core.
    pub cpu: f64,
}

/// Idle RSS of a real runner and of a control plane with one runner.
pub async fn idle_daemons(database: Option<&str>) -> Vec<Row> {
    let stack = Stack::start(1, database).await;
    tokio::time::sleep(SETTLE).await;
    let runner = rss_kib(u32::try_from(stack.runner.pid()).unwrap_or(0));
    let control_plane = rss_kib(stack.control_plane.pid().unwrap_or(0));
    vec![
        Row::new(
            "runner daemon idle RSS",
            "≤ 10 MiB",
            mib(runner),
            Some(runner <= 10 * 1024),
        ),
        Row::new(
            "control plane idle RSS (one runner connected)",
            "≤ 20 MiB",
            mib(control_plane),
            Some(control_plane <= 20 * 1024),
        ),
    ]
}

/// Grows a fleet of idle simulated runners through `levels`, measuring each.
pub async fn scale(levels: &[usize], database: Option<&str>) -> (Vec<Row>, Vec<Level>) {
    let limit = raise_open_files();
    let largest = levels.iter().copied().max().unwrap_or(0);
    let control_plane = ControlPlane::start_bench_on(database).await;
    let pid = control_plane.pid().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty = rss_kib(pid);
    let registration = control_plane.registration_token(u32::try_from(largest).unwrap_or(u32::MAX));
    let tokens = sim::register(&control_plane.url, &registration, "idle", largest, 1).await;
    let counters = Arc::new(Counters::default());
    let mut fleet = Vec::new();
    let mut measured = Vec::new();
    let mut tokens = tokens.into_iter();
    for &level in levels {
        while fleet.len() < level {
            let batch: Vec<String> = tokens
                .by_ref()
                .take(CONNECT_BATCH.min(level - fleet.len()))
                .collect();
            let target = (fleet.len() + batch.len()) as u64;
            for token in batch {
                fleet.push(sim::spawn(
                    &control_plane.url,
                    token,
                    Behaviour::Idle,
                    Arc::clone(&counters),
                ));
            }
            wait::until(
                "a batch of simulated runners welcomed",
                Duration::from_secs(60),
                || async { (counters.welcomed.load(Ordering::Relaxed) >= target).then_some(()) },
            )
            .await;
        }
        let cpu_before = cpu_seconds(pid);
        tokio::time::sleep(SETTLE).await;
        let cpu = (cpu_seconds(pid) - cpu_before) / SETTLE.as_secs_f64();
        measured.push(Level {
            runners: level,
            rss_kib: rss_kib(pid),
            cpu,
        });
    }
    for runner in fleet {
        runner.abort();
    }
    let mut rows = vec![Row::new(
        "control plane idle RSS (no runners)",
        "≤ 20 MiB",
        mib(empty),
        Some(empty <= 20 * 1024),
    )];
    if let Some(thousand) = measured.iter().find(|l| l.runners == 1000) {
        rows.push(Row::new(
            "control plane RSS with 1,000 idle runners",
            "≤ 50 MiB",
            mib(thousand.rss_kib),
            Some(thousand.rss_kib <= 50 * 1024),
        ));
    }
    if let Some(top) = measured.last() {
        let per = (top.rss_kib.saturating_sub(empty)) as f64 / top.runners.max(1) as f64;
        rows.push(Row::new(
            &format!(
                "idle runner connections held ({} open files allowed)",
                limit
            ),
            "≥ 10,000 at ≤ 20 KB each",
            format!(
                "{} at {per:.1} KiB each, {:.1}% of a core",
                top.runners,
                top.cpu * 100.0
            ),
            Some(top.runners >= 10_000 && per * 1.024 <= 20.0),
        ));
    }
    (rows, measured)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
