//! Agent shims started ahead of work, on the real binaries: one waits beside an idle
//! runner and dies with it, a killed one is replaced without losing a task, and the shim
//! starts exactly the agent its one launch line describes and refuses anything else.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::{bins, git, process_alive, wait, ControlPlane, Runner};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Shims waiting under the runner: its children running `agent-shim` with no agent.
fn waiting_shims(runner: &Runner) -> Vec<i32> {
    let parent = runner.pid().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1));
            ppid == Some(parent.as_str()) && subcommand_of(*pid).as_deref() == Some("agent-shim")
        })
        .filter(|pid| process_alive(*pid))
        .collect()
}

/// The hidden subcommand `pid` runs (its first argument).
fn subcommand_of(pid: i32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let arg = cmdline.split(|b| *b == 0).nth(1)?;
    Some(String::from_utf8_lossy(arg).into_owned())
}

/// The children of `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    let tasks = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    tasks
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

async fn one_waiting_shim(runner: &Runner) -> i32 {
    wait::until("one waiting shim", TIMEOUT, || async {
        match waiting_shims(runner)[..] {
            [pid] => Some(pid),
            _ => None,
        }
    })
    .await
}

#[tokio::test]
async fn a_waiting_shim_dies_with_a_killed_runner() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let shim = one_waiting_shim(&runner).await;
    // The runner fences its agents: the shim waits inside its namespaces, its fence's init
    // started.
    let init = wait::until("the waiting shim's fence init", TIMEOUT, || async {
        children_of(shim)
            .into_iter()
            .find(|pid| subcommand_of(*pid).as_deref() == Some("agent-init"))
    })
    .await;
    runner.kill();
    wait::until("the waiting shim and its init to exit", TIMEOUT, || async {
        (!process_alive(shim) && !process_alive(init)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_task_still_runs_when_the_waiting_shim_was_killed() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let shim = one_waiting_shim(&runner).await;
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    wait::until("the killed shim to go", TIMEOUT, || async {
        (!process_alive(shim)).then_some(())
    })
    .await;
    let id = control_plane.submit(&repo, &[], "echo started");
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(
        stdout_lines(&control_plane.events(&id, 1).await),
        ["started"]
    );
    let next = one_waiting_shim(&runner).await;
    assert_ne!(next, shim, "a new shim waits for the next agent");
}

fn shim() -> Command {
    let mut command = Command::new(bins::path("kiln-runner"));
    command
        .arg("agent-shim")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn the_shim_starts_the_agent_its_launch_line_describes() {
    let scratch = kiln_tests::scratch::tempdir();
    let workdir = scratch.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let stdin_file = scratch.path().join("prompt");
    std::fs::write(&stdin_file, "from the prompt\n").unwrap();
    let status_file = scratch.path().join("status.json");
    let launch = json!({
        "grace_ms": 1000,
        "status_file": status_file,
        "stdin_file": stdin_file,
        "workdir": workdir,
        "env": [["KILN_TEST_VALUE", "from the launch"]],
        "argv": ["sh", "-c", "pwd; echo \"$KILN_TEST_VALUE\"; cat; exit 3"],
    });
    let mut child = shim().spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{launch}").unwrap();
    // The lifeline stays open: the agent ends by itself.
    let waited = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        (child, status)
    });
    let (child, status) = tokio::time::timeout(TIMEOUT, waited)
        .await
        .expect("the shim exits")
        .unwrap();
    drop(stdin);
    assert!(status.success(), "{status}");
    let output = child.wait_with_output().unwrap();
    let expected = format!("{}\nfrom the launch\nfrom the prompt\n", workdir.display());
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    let reported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    assert_eq!(reported["code"], 3, "{reported}");
}

#[test]
fn the_shim_refuses_anything_but_one_launch_line() {
    // Closed before any launch: the runner had no work for it.
    let output = shim().stdin(Stdio::null()).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty() && output.stderr.is_empty());

    let output = shim()
        .arg("--grace-ms")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unexpected arguments [\"--grace-ms\"]"),
        "{stderr}"
    );

    for (input, said) in [
        ("not json\n", "bad launch line"),
        ("{\"argv\": [\"true\"]}", "cut short"),
    ] {
        let mut child = shim().spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{input}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(said), "{input}: {stderr}");
    }
}

#[test]
fn a_fenced_shim_refuses_a_launch_without_a_fence_and_says_so_in_its_status() {
    let scratch = kiln_tests::scratch::tempdir();
    let fences = scratch.path().join(".fences");
    // Where a fenced shim can still write once it waits: everything else is read-only.
    let status_file = fences.join("status.json");
    let launch = json!({
        "grace_ms": 1000,
        "status_file": status_file,
        "stdin_file": null,
        "workdir": scratch.path(),
        "env": [],
        "argv": ["sh", "-c", "echo ran > ran"],
    });
    let mut child = shim().arg("--fenced").arg(&fences).spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{launch}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let reported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    let said = reported["spawn_failed"].as_str().unwrap_or_default();
    assert!(said.contains("without a fence"), "{reported}");
    assert!(!scratch.path().join("ran").exists(), "the agent never ran");

    let output = Command::new(bins::path("kiln-runner"))
        .arg("agent-init")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("launch pipe"), "{stderr}");
}
