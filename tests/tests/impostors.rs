//! A runner's hello cannot claim what it was not given: capabilities and labels come from
//! its registration, and change only through an operator (`kiln runners update`).

use std::time::Duration;

use kiln_tests::raw;
use kiln_tests::{git, ControlPlane};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_hello_cannot_claim_capabilities_or_labels_only_an_operator_gives_them() {
    let control_plane = ControlPlane::start().await;
    let (id, token) = control_plane.register_raw("plain", 1).await;
    let mut socket = raw::connect(&control_plane.url, &token)
        .await
        .expect("connect");
    let mut hello = raw::hello(1, json!([]));
    hello["capabilities"] = json!(["gpu"]);
    hello["labels"] = json!({"team": "payments"});
    raw::send(&mut socket, hello.to_string()).await;
    assert_eq!(
        raw::next(&mut socket).await.expect("welcome")["type"],
        "welcome"
    );

    let repo = git::repo(&control_plane.scratch(), "app");
    let task = control_plane.submit(
        &repo,
        &["--require", "gpu", "--label", "team=payments"],
        "true",
    );
    let shown = control_plane.kiln_ok(&["task", &task]);
    assert!(
        shown.contains("no connected runner has capability gpu"),
        "the claim did not count: {shown}"
    );
    let runners = control_plane.get("/v1/runners").await;
    assert_eq!(runners[0]["capabilities"], json!([]), "{runners}");
    assert_eq!(runners[0]["labels"], json!({}), "{runners}");
    let nothing = tokio::time::timeout(Duration::from_millis(500), raw::next(&mut socket)).await;
    assert!(
        !matches!(&nothing, Ok(Ok(frame)) if frame["type"] == "assign"),
        "a claimed capability drew the task: {nothing:?}"
    );

    control_plane.kiln_ok(&[
        "runners",
        "update",
        &id,
        "--capability",
        "gpu",
        "--label",
        "team=payments",
    ]);
    let assign = tokio::time::timeout(TIMEOUT, async {
        loop {
            let frame = raw::next(&mut socket).await.expect("a frame");
            if frame["type"] == "assign" {
                return frame;
            }
        }
    })
    .await
    .expect("the operator's update places the task");
    assert_eq!(assign["task"]["task_id"], task.as_str());
    let runners = control_plane.get("/v1/runners").await;
    assert_eq!(runners[0]["capabilities"], json!(["gpu"]), "{runners}");
}

/// The runner's token, from its runner.yaml.
fn runner_token(runner: &kiln_tests::Runner) -> String {
    let yaml =
        std::fs::read_to_string(runner.config_dir().join("runner.yaml")).expect("runner.yaml");
    yaml.lines()
        .find_map(|l| l.strip_prefix("runner_token:"))
        .map(|t| t.trim().trim_matches('"').to_owned())
        .expect("a runner token")
}

/// What an attacker's agent does: look for its runner among the processes, read its
/// config, environment, spool and mirrors, and list the other worktrees.
const TAKEOVER: &str = r#"
echo "runner-processes=$(for d in /proc/[0-9]*; do tr '\0' ' ' < "$d/cmdline" 2>/dev/null; echo; done | grep -c '[k]iln-runner run')"
cat "$CONFIG_DIR/runner.yaml" 2>/dev/null | sed 's/^/yaml: /'
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done | grep '^KILN_RUNNER' | sed 's/^/environ: /'
ls "$CACHE_DIR" "$CACHE_DIR/spool" 2>/dev/null | sed 's/^/cache: /'
ls -a "$WORKTREES" 2>/dev/null | grep -v '^\.*$' | sed 's/^/worktree: /'
sed 's/^/mirror: /' "$(git rev-parse --git-common-dir)/config"
echo done
"#;

#[tokio::test]
async fn an_agent_cannot_find_its_runner_or_read_its_token_config_spool_or_mirror_credentials() {
    let control_plane = ControlPlane::start().await;
    let mut runner = kiln_tests::Runner::register(&control_plane, "box", &[]);
    let token = runner_token(&runner);
    // The runner gets its token from its environment too, as in sandbox mode.
    runner.start_with_env(&[("KILN_RUNNER_TOKEN", &token)]);
    runner.wait_online(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    // A first task makes the mirror; then it is given a credential, as an operator's
    // fetch setup might.
    let first = control_plane.submit(&repo, &[], "true");
    control_plane.wait_terminal(&first, TIMEOUT).await;
    let mirrors = runner.root.path().join("cache").join("mirrors");
    let mirror = std::fs::read_dir(&mirrors)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut config = std::fs::read_to_string(mirror.join("config")).unwrap();
    config.push_str("[http]\n\textraHeader = Authorization: Bearer hunter2-credential\n");
    std::fs::write(mirror.join("config"), config).unwrap();
    let env = [
        format!("CONFIG_DIR={}", runner.config_dir().display()),
        format!("CACHE_DIR={}", runner.root.path().join("cache").display()),
        format!("WORKTREES={}", runner.worktree_base().display()),
    ];
    let mut args = Vec::new();
    for pair in &env {
        args.extend(["--env", pair.as_str()]);
    }
    let id = control_plane.submit(&repo, &args, TAKEOVER);
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&id, 1).await);
    let all = lines.join("\n");
    assert!(lines.iter().any(|l| l == "done"), "the agent ran: {all}");
    assert!(
        lines.iter().any(|l| l == "runner-processes=0"),
        "the agent saw its runner: {all}"
    );
    assert!(
        !all.contains(&token[9..]),
        "the agent read the runner's token: {all}"
    );
    assert!(
        all.contains("mirror: "),
        "the agent reads its repository's config: {all}"
    );
    for leak in ["yaml: ", "environ: ", "spool", "results", "hunter2"] {
        assert!(!all.contains(leak), "{leak}: {all}");
    }
    // What it sees of the runner's directories is the skeleton its own paths are shown
    // in: its worktree, its prompt, its fence's run directory, its mirror's mount point.
    let worktrees: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("worktree: "))
        .collect();
    assert!(
        worktrees
            .iter()
            .all(|l| l.ends_with(&format!("{id}-1")) || l.starts_with("worktree: .")),
        "the agent sees only its own worktree: {worktrees:?}"
    );
}

/// Waits for `$GATE`, holding its secret and prompt, while the other task looks for them.
const HOLDER: &str = r#"echo ready; while [ ! -e "$GATE" ]; do sleep 0.05; done; echo released"#;

/// Looks for the other task: its environment in every process, its worktree, its prompt.
const SNOOPER: &str = r#"
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done | grep -c 'supersecret' | sed 's/^/secrets-seen=/'
ls "$OTHER_WORKTREE" 2>/dev/null | sed 's/^/other-worktree: /'
cat "$WORKTREES"/.prompt-* 2>/dev/null | sed 's/^/prompt: /'
grep -rh 'PROMPT-OF-A' "$WORKTREES" 2>/dev/null | sed 's/^/found: /'
echo done
"#;

#[tokio::test]
async fn an_agent_cannot_read_another_tasks_environment_worktree_or_prompt() {
    let control_plane = ControlPlane::start().await;
    let mut runner =
        kiln_tests::Runner::register(&control_plane, "box", &["--max-concurrent", "2"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let gate = control_plane.scratch().join("gate");
    let gate_env = format!("GATE={}", gate.display());
    let holder = control_plane.submit(
        &repo,
        &[
            "--env",
            &gate_env,
            "--secret-env",
            "API_KEY=supersecret-value-42",
            "--prompt",
            "PROMPT-OF-A: keep this private",
        ],
        HOLDER,
    );
    kiln_tests::wait::until("the first agent to run", TIMEOUT, || async {
        let lines =
            kiln_tests::control_plane::stdout_lines(&control_plane.events(&holder, 1).await);
        lines.iter().any(|l| l == "ready").then_some(())
    })
    .await;
    let other = runner.worktree_base().join(format!("{holder}-1"));
    let snoop_env = [
        format!("OTHER_WORKTREE={}", other.display()),
        format!("WORKTREES={}", runner.worktree_base().display()),
    ];
    let snooper = control_plane.submit(
        &repo,
        &["--env", &snoop_env[0], "--env", &snoop_env[1]],
        SNOOPER,
    );
    let snooped = control_plane.wait_terminal(&snooper, TIMEOUT).await;
    assert_eq!(snooped["state"], "succeeded", "{snooped}");
    std::fs::write(&gate, "").unwrap();
    let held = control_plane.wait_terminal(&holder, TIMEOUT).await;
    assert_eq!(held["state"], "succeeded", "{held}");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&snooper, 1).await);
    let all = lines.join("\n");
    assert!(lines.iter().any(|l| l == "done"), "{all}");
    assert!(lines.iter().any(|l| l == "secrets-seen=0"), "{all}");
    assert!(!all.contains("supersecret"), "{all}");
    for leak in ["other-worktree: ", "prompt: ", "found: "] {
        assert!(!all.contains(leak), "{leak}: {all}");
    }
}

/// Plants a hook and git config in the repository's shared metadata, which the runner's
/// own git commands (the next checkout) would run.
const PLANTER: &str = r#"
common="$(git rev-parse --git-common-dir)"
printf '#!/bin/sh\ntouch "%s"\n' "$MARKER" > "$common/hooks/post-checkout" && chmod +x "$common/hooks/post-checkout" && echo planted-hook
git config core.fsmonitor "touch $MARKER" && echo planted-config
git config --get core.fsmonitor
"#;

#[tokio::test]
async fn what_an_agent_writes_in_git_metadata_never_reaches_the_runner_or_the_next_task() {
    let control_plane = ControlPlane::start().await;
    let mut runner = kiln_tests::Runner::register(&control_plane, "box", &[]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let marker = control_plane.scratch().join("hook-ran");
    let marker_env = format!("MARKER={}", marker.display());
    let first = control_plane.submit(&repo, &["--env", &marker_env], PLANTER);
    let task = control_plane.wait_terminal(&first, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&first, 1).await);
    assert!(lines.iter().any(|l| l == "planted-hook"), "{lines:?}");
    // The next task on the repository: a checkout (which runs post-checkout hooks) and git
    // commands in the worktree.
    let second = control_plane.submit(
        &repo,
        &[],
        "git status --short; git config --get core.fsmonitor || echo clean-config",
    );
    let task = control_plane.wait_terminal(&second, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&second, 1).await);
    assert!(
        lines.iter().any(|l| l == "clean-config"),
        "the next agent saw the planted config: {lines:?}"
    );
    assert!(
        !marker.exists(),
        "a hook or config the agent planted ran outside its fence"
    );
    let mirrors = runner.root.path().join("cache").join("mirrors");
    for entry in std::fs::read_dir(&mirrors).unwrap() {
        let mirror = entry.unwrap().path();
        assert!(
            !mirror.join("hooks/post-checkout").exists(),
            "{}",
            mirror.display()
        );
        let config = std::fs::read_to_string(mirror.join("config")).unwrap_or_default();
        assert!(!config.contains("fsmonitor"), "{config}");
    }
}

/// Lets every user through the directories down to `path` (tempfile makes them 0700), so
/// that an unprivileged runner reaches the test's repository.
fn open_path(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for dir in path.ancestors() {
        if dir.file_name().is_some_and(|n| n == "target") {
            break;
        }
        let mode = std::fs::metadata(dir).map_or(0o755, |m| m.permissions().mode());
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o755));
    }
}

#[tokio::test]
async fn an_unprivileged_runner_fences_its_agents_too() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test starts a runner as nobody, which needs root (CI runs as root)"
    );
    let control_plane = ControlPlane::start().await;
    let mut runner = kiln_tests::Runner::register(&control_plane, "nobody", &[]);
    let token = runner_token(&runner);
    let repo = git::repo(&control_plane.scratch(), "app");
    open_path(&repo);
    // A local origin is checked for its owner by git (safe.directory): give it to the
    // runner's user, as a real remote would not ask.
    let given = std::process::Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(&repo)
        .status()
        .unwrap();
    assert!(given.success());
    runner.start_unprivileged(65534, 65534);
    runner.wait_online(&control_plane).await;
    let status: serde_json::Value =
        serde_json::from_slice(&runner.status().stdout).unwrap_or_default();
    assert_eq!(status["agents"], "fenced", "{status}");
    let env = format!("CONFIG_DIR={}", runner.config_dir().display());
    let id = control_plane.submit(
        &repo,
        &["--env", &env],
        r#"id -u; cat "$CONFIG_DIR/runner.yaml" 2>/dev/null | sed 's/^/yaml: /'; echo changed > CHANGED.md; echo done"#,
    );
    let task = control_plane.wait_terminal(&id, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let lines = kiln_tests::control_plane::stdout_lines(&control_plane.events(&id, 1).await);
    assert_eq!(
        lines,
        ["65534", "done"],
        "the agent runs as the runner's user and sees no config"
    );
    assert!(!lines.join("\n").contains(&token[9..]));
    assert_eq!(
        task["outcome"]["result"]["diffstat"]["files_changed"], 1,
        "{task}"
    );
}
