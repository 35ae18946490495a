//! The completion loop, the completion grace, and turn and cost budgets, each ending with
//! its own stop reason.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::time::Duration;

use kiln_tests::{agents, git, ControlPlane, Runner};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn runner_with_agents(control_plane: &ControlPlane, scripts: &[(&str, &str)]) -> Runner {
    let bin = control_plane.scratch().join("bin");
    for (name, script) in scripts {
        agents::install(&bin, name, script);
    }
    let path = agents::path_with(&bin);
    let mut runner = Runner::register_with_env(
        control_plane,
        "box",
        &["--kill-grace", "1s"],
        &[("PATH", &path)],
    );
    runner.start_with_env(&[("PATH", &path)]);
    runner.wait_online(control_plane).await;
    runner
}

fn commits(task: &Value) -> usize {
    task["outcome"]["result"]["commits"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn the_agent_runs_again_until_its_completion_signal_with_a_commit_each_time() {
    let control_plane = ControlPlane::start().await;
    let _runner = runner_with_agents(&control_plane, &[]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    // Each run appends a line; the third run says it is done.
    let script = r#"
        echo "run" >> progress.txt
        n=$(wc -l < progress.txt)
        echo "working, run $n"
        if [ "$n" -ge 3 ]; then echo "all done <promise>COMPLETE</promise>"; fi
    "#;
    let id = control_plane.submit(
        &repo,
        &[
            "--max-iterations",
            "5",
            "--completion-signal",
            "<promise>COMPLETE</promise>",
        ],
        script,
    );
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["outcome"]["stop"], "completed");
    assert_eq!(task["outcome"]["iterations"], 3);
    assert_eq!(commits(&task), 3, "one commit per iteration");
}

#[tokio::test]
async fn iterations_run_out_when_the_signal_only_appears_in_raw_json() {
    let control_plane = ControlPlane::start().await;
    // The signal is inside a tool call's input: that is not the agent saying it is done.
    let claude = r#"
        cat > /dev/null
        printf '%s\n' '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t","name":"Bash","input":{"command":"echo DONE-SIGNAL"}}]}}'
        printf '%s\n' '{"type":"result","subtype":"success","num_turns":1,"result":"not yet","usage":{}}'
    "#;
    let _runner = runner_with_agents(&control_plane, &[("claude", claude)]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(
        &repo,
        &[
            "--agent",
            "claude-code",
            "--max-iterations",
            "2",
            "--completion-signal",
            "DONE-SIGNAL",
        ],
        "x",
    );
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["outcome"]["stop"], "iterations_exhausted");
    assert_eq!(task["outcome"]["iterations"], 2);
    assert_eq!(
        task["outcome"]["usage"]["turns"], 2,
        "usage is summed over iterations"
    );
}

#[tokio::test]
async fn an_agent_that_says_it_is_done_but_never_exits_is_stopped_after_the_grace() {
    let control_plane = ControlPlane::start().await;
    let _runner = runner_with_agents(&control_plane, &[]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let id = control_plane.submit(
        &repo,
        &[
            "--completion-signal",
            "FINISHED",
            "--completion-grace",
            "1s",
        ],
        "echo result > out.txt; echo FINISHED; sleep 1000",
    );
    let task = control_plane
        .wait_terminal(&id, Duration::from_secs(20))
        .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["outcome"]["stop"], "completed_after_grace");
    assert_eq!(commits(&task), 1, "its work is committed");
}

#[tokio::test]
async fn turn_and_cost_budgets_stop_the_agent_with_their_own_reasons() {
    let control_plane = ControlPlane::start().await;
    let claude = r#"
        cat > /dev/null
        for i in 1 2 3 4 5 6; do
            printf '%s\n' '{"type":"assistant","message":{"content":[{"type":"text","text":"turn"}]}}'
            sleep 0.2
        done
        printf '%s\n' '{"type":"result","subtype":"success","num_turns":6,"total_cost_usd":0.6,"usage":{}}'
    "#;
    let _runner = runner_with_agents(&control_plane, &[("claude", claude)]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let turns = control_plane.submit(&repo, &["--agent", "claude-code", "--max-turns", "2"], "x");
    let task = control_plane.wait_terminal(&turns, TIMEOUT).await;
    assert_eq!(task["outcome"]["stop"], "turn_limit", "{task}");
    assert_eq!(task["state"], "failed");

    let cost = control_plane.submit(
        &repo,
        &[
            "--agent",
            "claude-code",
            "--max-cost",
            "1.0",
            "--max-iterations",
            "5",
            "--completion-signal",
            "never",
        ],
        "x",
    );
    let task = control_plane.wait_terminal(&cost, TIMEOUT).await;
    assert_eq!(task["outcome"]["stop"], "cost_limit", "{task}");
    assert_eq!(
        task["outcome"]["iterations"], 2,
        "the second run's reported cost crossed the budget"
    );
}
