//! The files API against an agent that races it: a directory and a symlink out of the
//! worktree swapped back and forth with `renameat2(RENAME_EXCHANGE)`, symlinks planted at
//! the names requested, a symlink to `.git`, entries vanishing mid-listing. No request
//! reads or writes outside the worktree, or through `.git`.

use std::time::Duration;

use kiln_tests::{git, wait, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The agent: makes `d/` (with `f` saying "inside") and `s` (a symlink to $OUTSIDE, whose
/// `f` says what must never be read), then swaps the two names as fast as it can, and
/// churns entries in `churn/`, until $GATE appears.
const RACER: &str = r#"
mkdir -p d churn && echo inside > d/f
ln -s "$OUTSIDE" s
ln -s .git gitlink
python3 - <<'PY'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print("racing", flush=True)
n = 0
while not os.path.exists(os.environ["GATE"]):
    libc.renameat2(AT_FDCWD, b"d", AT_FDCWD, b"s", RENAME_EXCHANGE)
    n += 1
    name = "churn/e%d" % (n % 50)
    if os.path.exists(name):
        os.remove(name)
    else:
        open(name, "w").close()
print("swapped", n, "times", flush=True)
PY
"#;

#[tokio::test]
async fn a_racing_agent_cannot_make_file_requests_leave_its_worktree() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let outside = control_plane.scratch().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f"), "OUTSIDE-SECRET\n").unwrap();
    let gate = control_plane.scratch().join("gate");
    let env_outside = format!("OUTSIDE={}", outside.display());
    let env_gate = format!("GATE={}", gate.display());
    let id = control_plane.submit(&repo, &["--env", &env_outside, "--env", &env_gate], RACER);
    wait::until("the agent to start racing", TIMEOUT, || async {
        let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&id, 1).await);
        lines.iter().any(|l| l == "racing").then_some(())
    })
    .await;

    let mut inside_reads = 0;
    for _ in 0..200 {
        let got = control_plane.kiln(&["files", &id, "get", "d/f"]);
        let text = String::from_utf8_lossy(&got.stdout);
        assert!(!text.contains("OUTSIDE"), "a read left the worktree");
        inside_reads += usize::from(text == "inside\n");
    }
    let local = control_plane.scratch().join("payload");
    std::fs::write(&local, "written by kiln files\n").unwrap();
    let local = local.to_string_lossy().into_owned();
    for n in 0..100 {
        let _ = control_plane.kiln(&["files", &id, "put", &local, &format!("d/put{n}")]);
    }
    for _ in 0..50 {
        let listed = control_plane.kiln(&["files", &id, "ls", "churn"]);
        assert!(
            listed.status.success(),
            "a listing fails as entries come and go: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let through_git = control_plane.kiln(&["files", &id, "get", "gitlink"]);
    assert!(!through_git.status.success());
    assert!(String::from_utf8_lossy(&through_git.stderr).contains("symlink"));
    let over_git = control_plane.kiln(&["files", &id, "put", &local, "gitlink/config"]);
    assert!(!over_git.status.success());
    std::fs::write(&gate, "").unwrap();
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");

    let left: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["f"], "nothing was written outside the worktree");
    assert_eq!(
        std::fs::read_to_string(outside.join("f")).unwrap(),
        "OUTSIDE-SECRET\n"
    );
    assert!(inside_reads > 0, "some reads found the real directory");
}

#[tokio::test]
async fn deleting_a_symlink_deletes_the_link_not_its_target() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let target = control_plane.scratch().join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    let gate = control_plane.scratch().join("gate");
    let script = format!(
        r#"ln -s {} link; echo kept > inner.txt; ln -s inner.txt ilink; echo ready; while [ ! -e {} ]; do sleep 0.05; done; ls link 2>/dev/null || echo link-gone; ls ilink 2>/dev/null || echo ilink-gone; cat inner.txt"#,
        target.display(),
        gate.display()
    );
    let id = control_plane.submit(&repo, &[], &script);
    wait::until("the link to be planted", TIMEOUT, || async {
        let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&id, 1).await);
        lines.iter().any(|l| l == "ready").then_some(())
    })
    .await;
    control_plane.kiln_ok(&["files", &id, "rm", "link"]);
    control_plane.kiln_ok(&["files", &id, "rm", "ilink"]);
    std::fs::write(&gate, "").unwrap();
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&id, 1).await);
    for expected in ["link-gone", "ilink-gone", "kept"] {
        assert!(lines.iter().any(|l| l == expected), "{expected}: {lines:?}");
    }
}
