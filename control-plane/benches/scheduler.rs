//! Scheduler benchmark: 10,000 queued tasks placed on 500 simulated runners.
//!
//! `cargo bench -p kiln-control-plane --bench scheduler`
//!
//! Prints placements per second for the pure placement function, and for the full round
//! the dispatcher does: read the queue from SQLite, place, and persist every attempt in
//! one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kiln_control_plane::model::{NewTask, RunnerRecord};
use kiln_control_plane::scheduler::{self, QueuedTask, RunnerSlots};
use kiln_control_plane::store::{NewRunner, SqliteStore, Store};
use kiln_control_plane::tokens::{Token, TokenKind};
use kiln_protocol::{RunnerId, TaskId};

const TASKS: usize = 10_000;
const RUNNERS: usize = 500;
const SLOTS_PER_RUNNER: u32 = 20;
const REPOS: usize = 50;

fn runners(ids: &[RunnerId]) -> Vec<RunnerSlots> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| RunnerSlots {
            id: *id,
            capabilities: [
                "git".to_owned(),
                if i % 5 == 0 { "gpu" } else { "cpu" }.to_owned(),
            ]
            .into(),
            labels: BTreeMap::from([("zone".to_owned(), format!("z{}", i % 3))]),
            running: 0,
            free: SLOTS_PER_RUNNER,
            cached_projects: BTreeSet::from([format!("repo-{}", i % REPOS)]),
            idle_since: i as i64,
            draining: false,
            paused: false,
            stale: false,
            sandbox: false,
        })
        .collect()
}

fn task(i: usize) -> NewTask {
    NewTask {
        id: TaskId::new(),
        repo: format!("repo-{}", i % REPOS),
        base_ref: None,
        branch: format!("kiln/bench-{i}"),
        prompt: String::new(),
        command: vec!["true".into()],
        env: BTreeMap::new(),
        secret_env: Default::default(),
        requires: if i % 10 == 0 {
            vec!["gpu".into()]
        } else {
            vec![]
        },
        labels: BTreeMap::new(),
        priority: (i % 7) as i64,
        timeout_ms: None,
        idle_timeout_ms: None,
        max_attempts: 2,
        created_at: i as i64,
        options: Default::default(),
        workspace_id: None,
        sandbox_id: None,
    }
}

fn queued(task: &NewTask) -> QueuedTask {
    QueuedTask {
        id: task.id,
        repo: task.repo.clone(),
        requires: task.requires.clone(),
        labels: task.labels.clone(),
        refused_by: Vec::new(),
        pinned: None,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let runner_ids: Vec<RunnerId> = (0..RUNNERS).map(|_| RunnerId::new()).collect();
    let tasks: Vec<NewTask> = (0..TASKS).map(task).collect();
    let candidates: Vec<QueuedTask> = tasks.iter().map(queued).collect();
    let slots = runners(&runner_ids);

    let start = Instant::now();
    let placements = scheduler::place(&candidates, &slots);
    let pure = start.elapsed();
    assert_eq!(placements.len(), TASKS, "every task placed");

    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .expect("store");
    for (i, id) in runner_ids.iter().enumerate() {
        let record = RunnerRecord {
            id: *id,
            name: format!("sim-{i}"),
            capabilities: vec![],
            labels: BTreeMap::new(),
            max_concurrent: SLOTS_PER_RUNNER,
            version: None,
            created_at: 0,
            last_seen_at: None,
            revoked_at: None,
            paused_at: None,
            drain_requested_at: None,
            rotation_requested_at: None,
            sandbox_id: None,
        };
        let token = Token::generate(TokenKind::Registration);
        let record_token = kiln_control_plane::model::RegistrationTokenRecord {
            id: format!("t{i}"),
            uses_left: Some(1),
            expires_at: None,
            created_at: 0,
        };
        store
            .create_registration_token(&record_token, &token.hash())
            .await
            .expect("token");
        let new = NewRunner {
            record,
            token_hash: Token::generate(TokenKind::Runner).hash(),
        };
        store
            .register_runner(&token.hash(), new, 0)
            .await
            .expect("runner")
            .expect("accepted");
    }
    for task in &tasks {
        store.insert_task(task).await.expect("insert");
    }

    let start = Instant::now();
    let queue = store.queued_tasks(TASKS as u32).await.expect("queue");
    let read = start.elapsed();
    let candidates: Vec<QueuedTask> = queue.iter().map(|t| queued(&t.spec)).collect();
    let placements = scheduler::place(&candidates, &slots);
    let pairs: Vec<_> = placements.iter().map(|p| (p.task, p.runner)).collect();
    let persist_start = Instant::now();
    let attempts = store.assign(&pairs, 1).await.expect("assign");
    let persist = persist_start.elapsed();
    let total = start.elapsed();
    assert_eq!(attempts.len(), TASKS);

    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!(
        "scheduler benchmark: {TASKS} queued tasks, {RUNNERS} runners x {SLOTS_PER_RUNNER} slots"
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!("| step | time | placements/s |");
    println!("|---|---|---|");
    println!(
        "| place() only (pure) | {:.1} ms | {:.0} |",
        pure.as_secs_f64() * 1e3,
        rate(TASKS, pure)
    );
    println!(
        "| read queue (SQLite) | {:.1} ms | |",
        read.as_secs_f64() * 1e3
    );
    println!(
        "| persist attempts (one transaction) | {:.1} ms | |",
        persist.as_secs_f64() * 1e3
    );
    println!(
        "| read + place + persist | {:.1} ms | {:.0} |",
        total.as_secs_f64() * 1e3,
        rate(TASKS, total)
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into())
}
