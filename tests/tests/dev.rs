//! `kiln dev`, the README's first command: a control plane and a local runner that take a
//! task with no other setup, and stop cleanly on Ctrl-C.

use std::process::{Command, Stdio};
use std::time::Duration;

use kiln_tests::git;
use kiln_tests::{bins, wait};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[tokio::test]
async fn kiln_dev_runs_a_task_end_to_end_and_stops_on_ctrl_c() {
    let root = kiln_tests::scratch::tempdir();
    let data = root.path().join("data");
    let repo = git::repo(root.path(), "app");
    let mut dev = Command::new(bins::path("kiln"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("KILN_DATA_DIR", &data)
        .env_remove("KILN_ADMIN_TOKEN")
        .env_remove("KILN_SERVER_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url_file = data.join("server.url");
    wait::until("kiln dev to listen", Duration::from_secs(20), || async {
        url_file.exists().then_some(())
    })
    .await;
    let kiln = |args: &[&str]| {
        Command::new(bins::path("kiln"))
            .args(args)
            .current_dir(&repo)
            .env("KILN_DATA_DIR", &data)
            .env_remove("KILN_ADMIN_TOKEN")
            .env_remove("KILN_SERVER_URL")
            .output()
            .unwrap()
    };
    let submitted = kiln(&[
        "submit",
        "--repo",
        ".",
        "--wait",
        "--json",
        "--",
        "sh",
        "-c",
        "echo hi > HELLO.md",
    ]);
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let task: serde_json::Value = serde_json::from_slice(&submitted.stdout).unwrap();
    assert_eq!(task["state"], "succeeded");
    assert_eq!(task["outcome"]["result"]["diffstat"]["files_changed"], 1);

    // Its agents cannot read the data dir: the admin token, the database, the runner's
    // own config.
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let snoop = format!(
        "cat {0}/admin.token {0}/dev-runner/runner.yaml 2>&1; ls {0} 2>&1; echo snooped",
        data.display()
    );
    let snooped = kiln(&[
        "submit", "--repo", ".", "--wait", "--json", "--", "sh", "-c", &snoop,
    ]);
    assert!(
        snooped.status.success(),
        "{}",
        String::from_utf8_lossy(&snooped.stderr)
    );
    let task: serde_json::Value = serde_json::from_slice(&snooped.stdout).unwrap();
    let id = task["id"].as_str().unwrap();
    let logs = String::from_utf8_lossy(&kiln(&["logs", id]).stdout).into_owned();
    assert!(logs.contains("snooped"), "{logs}");
    assert!(
        !logs.contains(admin.trim()),
        "an agent read kiln dev's admin token: {logs}"
    );
    assert!(!logs.contains("runner_token"), "{logs}");
    assert!(!logs.contains("kiln.db"), "{logs}");

    kill(
        Pid::from_raw(i32::try_from(dev.id()).unwrap()),
        Signal::SIGINT,
    )
    .unwrap();
    let status = wait::until("kiln dev to exit", Duration::from_secs(20), || {
        let status = dev.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(status.success(), "{status}");
}
