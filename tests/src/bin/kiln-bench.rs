//! `kiln-bench`: runs kiln's benchmark suite against the release binaries and prints the
//! table of target, measured, reference and ratio (docs/performance.md).
//!
//! Usage: `kiln-bench [--smoke] [--json] [--only latency|logs|throughput|fleet]
//! [--database postgres://...]`. `--smoke` runs every section with tiny sizes (CI checks
//! that it completes, never a timing); `--json` prints one JSON object instead of the
//! tables; `--database` runs the control planes on that PostgreSQL database instead of
//! SQLite. The binary is also the log probe agent (`kiln-bench probe lines N [RATE]`); the
//! latency probe is the small, statically linked `kiln-start-probe` (`tests/build.rs`).
//! Exit codes: 0 done (whether or not targets were met); 2 bad usage.

use std::process::ExitCode;

use kiln_tests::bench::{fleet, latency, logs, report, throughput};

/// How much each section does.
struct Sizes {
    latency_runs: usize,
    log_lines: usize,
    tasks: usize,
    fleet_levels: &'static [usize],
}

const FULL: Sizes = Sizes {
    latency_runs: 50,
    log_lines: 500_000,
    tasks: 10_000,
    fleet_levels: &[1000, 5000, 10_000],
};

const SMOKE: Sizes = Sizes {
    latency_runs: 3,
    log_lines: 2000,
    tasks: 200,
    fleet_levels: &[50],
};

const SECTIONS: [&str; 4] = ["latency", "logs", "throughput", "fleet"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("probe") {
        return probe(&args[1..]);
    }
    let mut smoke = false;
    let mut output = Output::Tables;
    let mut only = None;
    let mut database = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--json" => output = Output::Json,
            "--only" => match rest.next() {
                Some(section) if SECTIONS.contains(&section.as_str()) => {
                    only = Some(section.clone())
                }
                other => return usage(&format!("--only takes one of {SECTIONS:?}, not {other:?}")),
            },
            "--database" => match rest.next() {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    database = Some(url.clone())
                }
                _ => return usage("--database takes a postgres:// URL"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let sizes = if smoke { SMOKE } else { FULL };
    // One thread: the bench shares the machine's two cores with kiln, and cross-core
    // wake-ups would cost more than they give.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kiln-bench: cannot start async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = Plan {
        sizes: &sizes,
        only: only.as_deref(),
        smoke,
        output,
        database: database.as_deref(),
    };
    runtime.block_on(run(&plan));
    ExitCode::SUCCESS
}

/// How the results are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Markdown tables, as in docs/performance.md.
    Tables,
    /// One JSON object: `machine`, `smoke`, `rows`, `fleet`.
    Json,
}

/// What one run of the suite does.
struct Plan<'a> {
    sizes: &'a Sizes,
    only: Option<&'a str>,
    smoke: bool,
    output: Output,
    /// A PostgreSQL URL for the control planes; `None` is SQLite.
    database: Option<&'a str>,
}

async fn run(plan: &Plan<'_>) {
    let Plan {
        sizes,
        only,
        smoke,
        output,
        database,
    } = *plan;
    let wanted = |section: &str| only.is_none_or(|o| o == section);
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut levels = Vec::new();
    if wanted("latency") {
        eprintln!(
            "==> latency: submit to agent started ({} runs each)",
            sizes.latency_runs
        );
        rows.extend(latency::run(sizes.latency_runs, database).await);
    }
    if wanted("throughput") {
        eprintln!(
            "==> throughput: {} tasks through 50 simulated runners",
            sizes.tasks
        );
        rows.extend(throughput::run(sizes.tasks, database).await);
    }
    if wanted("logs") {
        eprintln!("==> logs: {} lines agent to watcher", sizes.log_lines);
        rows.extend(logs::run(sizes.log_lines, database).await);
    }
    if wanted("fleet") {
        eprintln!(
            "==> fleet: idle daemons, then {:?} idle simulated runners",
            sizes.fleet_levels
        );
        rows.extend(fleet::idle_daemons(database).await);
        let (fleet_rows, measured) = fleet::scale(sizes.fleet_levels, database).await;
        rows.extend(fleet_rows);
        levels = measured;
    }
    if output == Output::Json {
        let report = serde_json::json!({
            "machine": report::machine(),
            "smoke": smoke,
            "store": if database.is_some() { "postgresql" } else { "sqlite" },
            "rows": rows,
            "fleet": levels,
        });
        println!("{report}");
        eprintln!(
            "kiln-bench: done in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        return;
    }
    println!(
        "kiln-bench{} on {}, store {}",
        if smoke { " --smoke" } else { "" },
        report::machine(),
        if database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!();
    report::print(&rows);
    if !levels.is_empty() {
        println!();
        println!("| idle runners | control plane RSS | CPU (share of one core) |");
        println!("|---|---|---|");
        for level in &levels {
            println!(
                "| {} | {:.1} MiB | {:.1}% |",
                level.runners,
                level.rss_kib as f64 / 1024.0,
                level.cpu * 100.0
            );
        }
    }
    eprintln!(
        "kiln-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The probe agent.
fn probe(args: &[String]) -> ExitCode {
    match args {
        [what, count, rate @ ..] if what == "lines" && rate.len() <= 1 => {
            let Ok(count) = count.parse() else {
                return usage(&format!("probe lines needs a count, not {count:?}"));
            };
            let rate = match rate.first().map(|r| r.parse::<usize>()) {
                None => None,
                Some(Ok(rate)) if rate > 0 => Some(rate),
                Some(_) => return usage(&format!("probe lines: bad rate {rate:?}")),
            };
            logs::print_lines(count, rate);
            ExitCode::SUCCESS
        }
        _ => usage("probe takes `lines N [RATE]`"),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("kiln-bench: {message}");
    eprintln!("usage: kiln-bench [--smoke] [--json] [--only latency|logs|throughput|fleet] [--database postgres://...]");
    ExitCode::from(2)
}
