//! Two `kiln serve` replicas on one real PostgreSQL database: a task submitted to one runs
//! on a runner connected to the other; a watcher on either sees every line; a replica
//! killed mid-task loses and repeats nothing; a lost runner is declared lost once.

use std::time::Duration;

use kiln_control_plane::testing::postgres::TestPostgres;
use kiln_tests::control_plane::stdout_lines;
use kiln_tests::follower::Follower;
use kiln_tests::prometheus::samples;
use kiln_tests::{git, wait, ControlPlane, Proxy, Runner};
use serde_json::Value;
use sqlx::Connection as _;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The operator's admin token, shared by the replicas.
const ADMIN_TOKEN: &str = "kiln_adm_0123456789abcdef0123456789abcdef";

/// An agent that prints `per_phase` numbered lines, then waits for gate file `<phase>`
/// before the next phase, and commits a file at the end.
fn gated_printer(per_phase: u32, phases: u32) -> String {
    format!(
        r#"
        n=0
        for phase in $(seq 1 {phases}); do
            for i in $(seq 1 {per_phase}); do n=$((n+1)); echo "line $n"; done
            if [ $phase -lt {phases} ]; then
                while [ ! -e "$GATES/$phase" ]; do sleep 0.02; done
            fi
        done
        echo done > result.txt && git add result.txt && git commit -qm "agent result"
        "#
    )
}

fn numbered(count: u32) -> Vec<String> {
    (1..=count).map(|n| format!("line {n}")).collect()
}

/// Two replicas on a fresh database of a throwaway server.
async fn two_replicas(extra: &[&str]) -> (TestPostgres, ControlPlane, ControlPlane) {
    let (server, _, first, second) = two_replicas_on(extra).await;
    (server, first, second)
}

/// Two replicas, and the URL of their database.
async fn two_replicas_on(extra: &[&str]) -> (TestPostgres, String, ControlPlane, ControlPlane) {
    let server = TestPostgres::start();
    let database = server.fresh_database().await;
    let first = ControlPlane::start_replica(&database, ADMIN_TOKEN, extra).await;
    let second = ControlPlane::start_replica(&database, ADMIN_TOKEN, extra).await;
    (server, database, first, second)
}

/// Runner connections `replica` holds, from its `/metrics`.
async fn connections(replica: &ControlPlane) -> u64 {
    let text = reqwest::get(format!("{}/metrics", replica.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let open = samples(&text)["kiln_websocket_connections"];
    open as u64
}

async fn wait_stdout_lines(replica: &ControlPlane, id: &str, count: usize) {
    wait::until(&format!("{count} stdout lines stored"), TIMEOUT, || async {
        (stdout_lines(&replica.events(id, 1).await).len() >= count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_replica_killed_mid_task_loses_and_repeats_nothing() {
    let (_server, mut a, b) = two_replicas(&[]).await;
    // The runner reaches the replicas through a balancer: first A, then (A dead) B.
    let balancer = Proxy::start(&a.url).await;
    let mut runner = Runner::register(&b, "box-1", &[]);
    runner.start_with(&["--server", &balancer.url]);
    runner.wait_online(&a).await;
    assert_eq!(
        (connections(&a).await, connections(&b).await),
        (1, 0),
        "on A"
    );
    let runners = b.get("/v1/runners").await;
    assert_eq!(
        runners[0]["state"], "online",
        "B sees it online on A: {runners}"
    );

    let repo = git::repo(&b.scratch(), "app");
    let gates = b.scratch().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let env = format!("GATES={}", gates.display());
    // Submitted to B; dispatched by A, where the runner is.
    let id = b.submit(&repo, &["--env", &env], &gated_printer(400, 3));
    let on_b = Follower::start(&b, &id);
    let on_a = Follower::start(&a, &id);
    wait_stdout_lines(&b, &id, 400).await;
    // Lines A stored reach a watcher on B while they stream.
    on_b.wait_lines(400).await;
    on_a.wait_lines(400).await;

    a.kill();
    balancer.retarget(&b.url);
    balancer.cut();
    std::fs::write(gates.join("1"), "").unwrap();
    wait_stdout_lines(&b, &id, 800).await;
    std::fs::write(gates.join("2"), "").unwrap();

    let task = b.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        task["attempts"].as_array().unwrap().len(),
        1,
        "nothing ran twice"
    );
    let events = b.events(&id, 1).await;
    assert_eq!(
        stdout_lines(&events),
        numbered(1200),
        "every line once, in order"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let diff = b.kiln_ok(&["diff", &id]);
    assert!(diff.contains("result.txt"), "the result arrived: {diff}");

    // The watcher on B saw every line once; the one on A, the lines until A died.
    let on_b = tokio::task::spawn_blocking(move || on_b.finish())
        .await
        .expect("join");
    assert_eq!(on_b, numbered(1200));
    let on_a = tokio::task::spawn_blocking(move || on_a.finish())
        .await
        .expect("join");
    assert_eq!(on_a, numbered(on_a.len() as u32), "in order, none twice");
}

#[tokio::test]
async fn a_runner_that_dies_is_declared_lost_once_across_replicas() {
    let (_server, a, b) = two_replicas(&["--lost-after", "2s"]).await;
    let mut runner = Runner::register(&a, "box-1", &[]);
    runner.start_connected(&a).await;
    let repo = git::repo(&a.scratch(), "app");
    let id = a.submit(&repo, &["--max-attempts", "2"], "echo started; sleep 300");
    wait_stdout_lines(&a, &id, 1).await;

    runner.kill();
    // The API reads the task, then its attempts: wait on the task, read first.
    let task = wait::until("the task to stop running", TIMEOUT, || async {
        let task = b.task(&id).await;
        (task["state"] != "running").then_some(task)
    })
    .await;
    assert_eq!(task["state"], "queued", "{task}");
    assert_eq!(task["attempts"][0]["state"], "lost", "{task}");
    assert_eq!(task["attempts"].as_array().unwrap().len(), 1, "{task}");
    // Both replicas were watching for it; one declared it lost.
    let said = |replica: &ControlPlane| replica.log().matches("attempt lost").count();
    assert_eq!(
        said(&a) + said(&b),
        1,
        "declared lost once:\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
}

#[tokio::test]
async fn a_runner_lost_with_its_replica_is_declared_lost_by_the_leader() {
    let (_server, mut a, b) = two_replicas(&["--lost-after", "2s"]).await;
    let mut runner = Runner::register(&a, "box-1", &[]);
    runner.start_connected(&a).await;
    let repo = git::repo(&a.scratch(), "app");
    let id = a.submit(&repo, &["--max-attempts", "2"], "echo started; sleep 300");
    wait_stdout_lines(&a, &id, 1).await;

    // The runner and the replica holding it die together: no timer of A will fire.
    runner.kill();
    a.kill();
    let task = wait::until("the task to stop running", TIMEOUT, || async {
        let task = b.task(&id).await;
        (task["state"] != "running").then_some(task)
    })
    .await;
    assert_eq!(task["state"], "queued", "{task}");
    assert_eq!(task["attempts"][0]["state"], "lost", "{task}");
    assert!(
        b.log().contains("no replica has heard from this runner"),
        "B's leader sweep declared it"
    );
}

#[tokio::test]
async fn a_runner_that_moves_to_another_replica_is_not_lost_by_the_one_it_left() {
    let (_server, a, b) = two_replicas(&["--lost-after", "2s"]).await;
    let balancer = Proxy::start(&a.url).await;
    let mut runner = Runner::register(&a, "box-1", &[]);
    runner.start_with(&["--server", &balancer.url]);
    wait::until("the runner on A", TIMEOUT, || async {
        (connections(&a).await == 1).then_some(())
    })
    .await;
    let repo = git::repo(&a.scratch(), "app");
    let gates = a.scratch().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let env = format!("GATES={}", gates.display());
    let id = a.submit(&repo, &["--env", &env], &gated_printer(100, 2));
    wait_stdout_lines(&a, &id, 100).await;

    // The balancer moves the runner to B; A still runs and its timer for it is due in 2 s.
    balancer.retarget(&b.url);
    balancer.cut();
    wait::until("the runner on B", TIMEOUT, || async {
        (connections(&b).await == 1).then_some(())
    })
    .await;
    wait::until("A's timer for the runner to fire", TIMEOUT, || async {
        a.log()
            .contains("runner went to another replica")
            .then_some(())
    })
    .await;
    std::fs::write(gates.join("1"), "").unwrap();

    let task = b.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        task["attempts"].as_array().unwrap().len(),
        1,
        "not lost: {task}"
    );
    assert_eq!(stdout_lines(&b.events(&id, 1).await), numbered(200));
}

#[tokio::test]
async fn an_operator_on_one_replica_controls_a_runner_on_the_other() {
    let (_server, database, a, b) = two_replicas_on(&[]).await;
    let mut runner = Runner::register(&a, "box-1", &[]);
    runner.start_connected(&a).await;
    assert_eq!(
        (connections(&a).await, connections(&b).await),
        (1, 0),
        "on A"
    );
    let repo = git::repo(&a.scratch(), "app");

    // A notification that no operator's request stands behind changes nothing.
    let mut forger = sqlx::PgConnection::connect(&database)
        .await
        .expect("connect");
    let forged = serde_json::json!({"runner": runner.id, "action": "revoke"});
    sqlx::query("SELECT pg_notify('kiln_runner', $1)")
        .bind(forged.to_string())
        .execute(&mut forger)
        .await
        .expect("notify");
    wait::until("A to ignore the forged control", TIMEOUT, || async {
        a.log()
            .contains("not recorded in the store; ignored")
            .then_some(())
    })
    .await;
    assert_eq!(connections(&a).await, 1, "still connected");

    // A cancel given to B stops the agent running on A's runner.
    let id = a.submit(&repo, &[], "echo started; sleep 300");
    wait_stdout_lines(&a, &id, 1).await;
    b.kiln_ok(&["cancel", &id]);
    let task = b.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "cancelled", "{task}");

    // A rotation asked of B: A makes the token, the runner saves it and confirms.
    b.kiln_ok(&["runners", "rotate", &runner.id]);
    wait::until("the runner to confirm its new token", TIMEOUT, || async {
        let runners = b.get("/v1/runners").await;
        runners[0]["rotation_requested_at"].is_null().then_some(())
    })
    .await;
    assert!(
        a.log().contains("the old one is retired"),
        "rotated through A"
    );

    // A session closed on B: the runner on A removes its worktree.
    let created = a.kiln_ok(&["session", "create", "--repo", &repo.to_string_lossy()]);
    let session = created.trim().to_owned();
    let step = a.kiln_ok(&[
        "submit",
        "--json",
        "--session",
        &session,
        "--",
        "touch",
        "step",
    ]);
    let step: Value = serde_json::from_str(&step).expect("submit JSON");
    let step = a
        .wait_terminal(step["id"].as_str().expect("id"), TIMEOUT)
        .await;
    assert_eq!(step["state"], "succeeded", "{step}");
    let worktree = runner.worktree_base().join(format!("ws-{session}"));
    assert!(worktree.join("step").exists(), "the session's worktree");
    // File contents are not relayed: B says where to ask.
    let files = b.kiln(&["files", &session, "ls", "."]);
    assert!(!files.status.success(), "{files:?}");
    let said = String::from_utf8_lossy(&files.stderr);
    assert!(said.contains("not relayed between replicas"), "{said}");
    assert!(a.kiln_ok(&["files", &session, "ls", "."]).contains("step"));
    b.kiln_ok(&["session", "close", &session]);
    wait::until("the session's worktree to be removed", TIMEOUT, || async {
        (!worktree.exists()).then_some(())
    })
    .await;

    // A drain asked of B: the runner stops taking work and exits.
    b.kiln_ok(&["runners", "drain", &runner.id]);
    let status = runner.wait_exit(TIMEOUT).await;
    assert!(status.success(), "drained and exited: {status}");
    let record = &b.get("/v1/runners").await[0];
    assert!(
        record["drain_requested_at"].is_null(),
        "delivered: {record}"
    );
}

#[tokio::test]
async fn a_replica_whose_database_goes_away_is_not_ready_but_stays_alive() {
    let server = TestPostgres::start_owned();
    let database = server.fresh_database().await;
    let a = ControlPlane::start_replica(&database, ADMIN_TOKEN, &[]).await;
    let probe = |path: &'static str| {
        let url = format!("{}{path}", a.url);
        async move {
            reqwest::get(url)
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(probe("/readyz").await, 200);
    drop(server); // the PostgreSQL server stops
    wait::until("/readyz to fail", TIMEOUT, || async {
        (probe("/readyz").await == 503).then_some(())
    })
    .await;
    assert_eq!(probe("/healthz").await, 200, "alive, only not ready");
}

#[tokio::test]
async fn a_cancel_whose_notification_was_lost_still_reaches_the_runner() {
    let (_server, database, a, _b) = two_replicas_on(&[]).await;
    let mut runner = Runner::register(&a, "box-1", &[]);
    runner.start_connected(&a).await;
    let repo = git::repo(&a.scratch(), "app");
    let id = a.submit(&repo, &[], "echo started; sleep 300");
    wait_stdout_lines(&a, &id, 1).await;

    // Another replica recorded the cancel, and its notification never arrived.
    let mut db = sqlx::PgConnection::connect(&database)
        .await
        .expect("connect");
    sqlx::query("UPDATE tasks SET cancel_requested_at = $1 WHERE id = $2")
        .bind(kiln_protocol::now_millis())
        .bind(&id)
        .execute(&mut db)
        .await
        .expect("record the cancel");
    let task = a.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "cancelled", "{task}");
    let events = a.events(&id, 1).await;
    let told = kiln_tests::control_plane::lines_of(&events, "system")
        .iter()
        .filter(|line| line.starts_with("cancel requested"))
        .count();
    assert_eq!(told, 1, "the runner logs the cancel once: {events:?}");
}

#[tokio::test]
async fn a_drain_whose_notification_was_lost_still_reaches_the_runner() {
    let (_server, database, a, _b) = two_replicas_on(&[]).await;
    let mut runner = Runner::register(&a, "box-1", &[]);
    runner.start_connected(&a).await;

    // Another replica recorded the drain, and its notification never arrived.
    let mut db = sqlx::PgConnection::connect(&database)
        .await
        .expect("connect");
    sqlx::query("UPDATE runners SET drain_requested_at = $1 WHERE id = $2")
        .bind(kiln_protocol::now_millis())
        .bind(&runner.id)
        .execute(&mut db)
        .await
        .expect("record the drain");
    let status = runner.wait_exit(TIMEOUT).await;
    assert!(status.success(), "drained and exited: {status}");
    let record = &a.get("/v1/runners").await[0];
    assert!(
        record["drain_requested_at"].is_null(),
        "delivered once: {record}"
    );
}
