//! Placement on the real binaries: filters, affinity, priorities, and a queued task that
//! starts the moment a matching runner arrives.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{git, wait, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn runner_of(control_plane: &ControlPlane, id: &str) -> String {
    let task = control_plane.wait_terminal(id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    task["attempts"][0]["runner_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_placement_satisfies_capabilities_and_labels() {
    let control_plane = ControlPlane::start().await;
    let mut docker_eu = Runner::register(
        &control_plane,
        "docker-eu",
        &[
            "--capability",
            "docker",
            "--label",
            "zone=eu",
            "--max-concurrent",
            "2",
        ],
    );
    let mut gpu_us = Runner::register(
        &control_plane,
        "gpu-us",
        &[
            "--capability",
            "gpu",
            "--label",
            "zone=us",
            "--max-concurrent",
            "2",
        ],
    );
    let mut plain = Runner::register(&control_plane, "plain", &["--max-concurrent", "2"]);
    for runner in [&mut docker_eu, &mut gpu_us, &mut plain] {
        runner.start_connected(&control_plane).await;
    }
    let repo = git::repo(&control_plane.scratch(), "app");
    let cases: Vec<(&[&str], Vec<&str>)> = vec![
        (&["--require", "docker"], vec![&docker_eu.id]),
        (&["--require", "gpu"], vec![&gpu_us.id]),
        (&["--label", "zone=eu"], vec![&docker_eu.id]),
        (
            &["--label", "zone=us", "--require", "gpu"],
            vec![&gpu_us.id],
        ),
        (&[], vec![&docker_eu.id, &gpu_us.id, &plain.id]),
    ];
    let mut submitted = Vec::new();
    for (flags, allowed) in &cases {
        for _ in 0..2 {
            submitted.push((
                control_plane.submit(&repo, flags, "echo ok"),
                allowed.clone(),
                *flags,
            ));
        }
    }
    for (id, allowed, flags) in submitted {
        let runner = runner_of(&control_plane, &id).await;
        assert!(
            allowed.contains(&runner.as_str()),
            "{flags:?} ran on {runner}"
        );
    }
}

#[tokio::test]
async fn affinity_sends_a_task_to_the_runner_that_mirrors_its_repository() {
    let control_plane = ControlPlane::start().await;
    let mut warm = Runner::register(&control_plane, "warm", &["--label", "name=warm"]);
    let mut cold = Runner::register(&control_plane, "cold", &[]);
    cold.start_connected(&control_plane).await;
    warm.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    // Pinned by label, the first task makes `warm` mirror the repository; `warm` is then
    // the more recently busy runner, so without affinity `cold` would win.
    let first = control_plane.submit(&repo, &["--label", "name=warm"], "echo first");
    assert_eq!(runner_of(&control_plane, &first).await, warm.id);
    wait::until("warm to report its mirror", TIMEOUT, || async {
        let runners = control_plane.get("/v1/runners").await;
        let runners = runners.as_array()?;
        let warm_runner = runners.iter().find(|r| r["id"] == warm.id.as_str())?;
        (!warm_runner["cached_projects"].as_array()?.is_empty()).then_some(())
    })
    .await;
    for _ in 0..3 {
        let next = control_plane.submit(&repo, &[], "echo again");
        assert_eq!(
            runner_of(&control_plane, &next).await,
            warm.id,
            "affinity wins"
        );
    }
    let other_repo = git::repo(&control_plane.scratch(), "other");
    let elsewhere = control_plane.submit(&other_repo, &[], "echo other");
    assert_eq!(
        runner_of(&control_plane, &elsewhere).await,
        cold.id,
        "no affinity: longest idle wins"
    );
}

#[tokio::test]
async fn higher_priority_runs_first_then_oldest() {
    let control_plane = ControlPlane::start().await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let order = control_plane.scratch().join("order");
    let env = format!("ORDER={}", order.display());
    let script = r#"echo "$NAME" >> "$ORDER""#;
    for (name, priority) in [
        ("low-1", "0"),
        ("high", "10"),
        ("low-2", "0"),
        ("mid", "5"),
        ("negative", "-1"),
    ] {
        let name_env = format!("NAME={name}");
        control_plane.submit(
            &repo,
            &["--priority", priority, "--env", &env, "--env", &name_env],
            script,
        );
    }
    let mut runner = Runner::register(&control_plane, "solo", &["--max-concurrent", "1"]);
    runner.start_connected(&control_plane).await;
    let ran = wait::until("all five tasks to run", TIMEOUT, || async {
        let text = std::fs::read_to_string(&order).ok()?;
        (text.lines().count() == 5).then_some(text)
    })
    .await;
    assert_eq!(
        ran.lines().collect::<Vec<_>>(),
        ["high", "mid", "low-1", "low-2", "negative"]
    );
}

#[tokio::test]
async fn a_queued_task_says_why_it_waits_and_starts_the_moment_a_matching_runner_registers() {
    let control_plane = ControlPlane::start().await;
    let mut plain = Runner::register(&control_plane, "plain", &[]);
    plain.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(&repo, &["--require", "gpu"], "echo on the gpu box");
    let detail: Value = control_plane.task(&id).await;
    assert_eq!(detail["state"], "queued");
    assert_eq!(
        detail["waiting_reason"],
        "no connected runner has capability gpu"
    );
    let shown = control_plane.kiln_ok(&["task", &id]);
    assert!(
        shown.contains("waiting   no connected runner has capability gpu"),
        "{shown}"
    );

    let mut gpu = Runner::register(&control_plane, "gpu", &["--capability", "gpu"]);
    gpu.start_connected(&control_plane).await;
    // Dispatch is pushed on connect: the task is assigned at once, with no polling interval.
    wait::until(
        "the task to be assigned",
        Duration::from_secs(2),
        || async {
            let task = control_plane.task(&id).await;
            (task["attempts"].as_array()?.len() == 1).then_some(())
        },
    )
    .await;
    assert_eq!(runner_of(&control_plane, &id).await, gpu.id);
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 1).await),
        ["on the gpu box"]
    );
}
