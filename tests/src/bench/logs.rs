//! Log lines end to end: an agent prints 100-byte lines; the runner streams them; the
//! control plane stores them; one watcher follows the task. Throughput is measured with an
//! agent printing flat out; latency with one printing at a steady rate below capacity
//! (flat out, latency only measures how long the queue has grown).

use std::time::{Duration, Instant};

use serde_json::json;

use super::reference;
use super::report::Row;
use super::setup::{now_nanos, probe_program, Stack};
use super::stats::{ms, per_second, Samples};

/// Bytes per line, newline included (the target's unit).
pub const LINE_BYTES: usize = 100;

/// Every Nth line's latency is sampled (all lines are counted).
const SAMPLE_EVERY: usize = 10;

/// Lines per second of the paced agent in the latency run: 40% of the target rate, a load
/// a healthy pipeline absorbs without a queue.
const PACED_RATE: usize = 100_000;

/// Longest latency run, in lines (three seconds at [`PACED_RATE`]).
const PACED_LINES: usize = 300_000;

/// What the watcher saw of one task's lines.
struct Followed {
    received: usize,
    rate: f64,
    latency: Samples,
}

/// Runs the probe agent with `probe_args`, follows its task and times every line.
async fn follow_lines(stack: &Stack, repo: &std::path::Path, probe_args: &[String]) -> Followed {
    let mut command = vec![
        probe_program().to_string_lossy().into_owned(),
        "probe".to_owned(),
        "lines".to_owned(),
    ];
    command.extend_from_slice(probe_args);
    let task = stack
        .submit(&json!({ "repo": repo, "command": command }))
        .await;
    let mut received = 0usize;
    let mut first: Option<u128> = None;
    let mut latency = Samples::new();
    let started = Instant::now();
    stack
        .follow(&task, |line| {
            // The probe's lines start with their time; the runner's own lines do not.
            if !line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                return;
            }
            // Only sampled lines are timed: the watcher's own cost is part of the pipeline.
            let sampled = received % SAMPLE_EVERY == 0;
            received += 1;
            if !sampled {
                return;
            }
            let Some(sent) = line.split(' ').next().and_then(|t| t.parse::<u128>().ok()) else {
                return;
            };
            let now = now_nanos();
            first.get_or_insert(sent);
            latency.push(Duration::from_nanos(
                u64::try_from(now.saturating_sub(sent)).unwrap_or(0),
            ));
        })
        .await;
    let span = first.map_or(started.elapsed(), |first| {
        Duration::from_nanos(u64::try_from(now_nanos().saturating_sub(first)).unwrap_or(0))
    });
    Followed {
        received,
        rate: received as f64 / span.as_secs_f64(),
        latency,
    }
}

/// The log rows for `lines` lines.
pub async fn run(lines: usize, database: Option<&str>) -> Vec<Row> {
    let stack = Stack::start(1, database).await;
    let repo = crate::git::repo(&stack.control_plane.scratch(), "logs");
    let flat_out = follow_lines(&stack, &repo, &[lines.to_string()]).await;
    assert_eq!(flat_out.received, lines, "every line reached the watcher");
    let paced_lines = lines.min(PACED_LINES);
    let paced = follow_lines(
        &stack,
        &repo,
        &[paced_lines.to_string(), PACED_RATE.to_string()],
    )
    .await;
    assert_eq!(
        paced.received, paced_lines,
        "every paced line reached the watcher"
    );
    let (rate, latency) = (flat_out.rate, paced.latency);
    let tcp = reference::loopback_throughput(256 << 20).await / LINE_BYTES as f64;
    let rtt = reference::loopback_round_trip(2000).await;
    vec![
        Row::new(
            "log lines end to end (100 B, agent → runner → store → watcher)",
            "≥ 250,000 lines/s",
            format!("{} ({} lines)", per_second(rate), lines),
            Some(rate >= 250_000.0),
        )
        .against(
            format!("loopback TCP {} (100 B units)", per_second(tcp)),
            rate / tcp,
        ),
        Row::new(
            &format!("line → watcher latency (agent printing {PACED_RATE} lines/s)"),
            "p99 ≤ 250 ms",
            format!(
                "p50 {}, p99 {} (flat out, queued: p50 {}, p99 {})",
                ms(latency.p50()),
                ms(latency.p99()),
                ms(flat_out.latency.p50()),
                ms(flat_out.latency.p99())
            ),
            Some(latency.p99() <= Duration::from_millis(250)),
        )
        .against(
            format!("loopback TCP round trip p50 {}", ms(rtt.p50())),
            latency.p99().as_secs_f64() / rtt.p50().as_secs_f64(),
        ),
    ]
}

/// `kiln-bench probe lines N [RATE]`: prints N lines of exactly [`LINE_BYTES`] bytes,
/// each starting with the time it was written (ns since the epoch); flat out, or RATE
/// lines per second in one-millisecond bursts.
pub fn print_lines(count: usize, rate: Option<usize>) {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let pad = "x".repeat(LINE_BYTES);
    let burst = rate.map_or(256, |rate| (rate / 1000).max(1));
    let started = Instant::now();
    for i in 0..count {
        let stamp = now_nanos();
        // 19-digit time, space, padding, newline: LINE_BYTES in all.
        let _ = writeln!(out, "{stamp:019} {}", &pad[..LINE_BYTES - 21]);
        if i % burst == burst - 1 {
            let _ = out.flush();
            if rate.is_some() {
                let tick = Duration::from_millis(((i + 1) / burst) as u64);
                std::thread::sleep(tick.saturating_sub(started.elapsed()));
            }
        }
    }
    let _ = out.flush();
}
