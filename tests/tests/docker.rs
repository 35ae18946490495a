//! Images, compose, per-task sandboxes, the docker executor and the .deb, on this
//! machine's Docker engine with images built here from Debian's packages.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use kiln_tests::control_plane::stdout_lines;
use kiln_tests::docker::{
    self, containers_matching, docker_ok, open_up, sandbox_image, sandbox_of, wait_box_gone,
    Compose,
};
use kiln_tests::{bins, git, raw, wait, ControlPlane, Runner};
use serde_json::{json, Value};

/// Time for a task in a fresh container: forging the box and connecting take seconds.
const TIMEOUT: Duration = Duration::from_secs(120);

fn random_hex() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kiln_at(url: &str, token: &str, args: &[&str]) -> String {
    let output = Command::new(bins::path("kiln"))
        .args(["--server", url, "--token", token, "--json"])
        .args(args)
        .env_remove("KILN_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn compose_runs_a_control_plane_and_two_runners_that_take_tasks() {
    docker::images();
    let scratch = tempfile::tempdir().unwrap();
    let repo = git::repo(scratch.path(), "app");
    open_up(scratch.path());
    let admin = format!("kiln_adm_{}", random_hex());
    let project = format!("kilntest{}", std::process::id());
    let compose = Compose::up(
        &project,
        &[
            ("KILN_ADMIN_TOKEN", admin.clone()),
            (
                "KILN_REGISTRATION_TOKEN",
                format!("kiln_reg_{}", random_hex()),
            ),
            ("KILN_PUBLISH", "127.0.0.1:".to_owned()),
            ("KILN_REPOS", scratch.path().to_string_lossy().into_owned()),
        ],
    );
    let url = format!("http://{}", compose.port("kiln", 7700));

    let online = wait::until("both runner containers online", TIMEOUT, || async {
        let output = Command::new(bins::path("kiln"))
            .args(["--server", &url, "--token", &admin, "--json", "runners"])
            .output()
            .ok()?;
        let runners: Vec<Value> = serde_json::from_slice(&output.stdout).ok()?;
        let names: BTreeSet<String> = runners
            .iter()
            .filter(|r| r["state"] == "online")
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(
        online,
        BTreeSet::from(["runner-1".into(), "runner-2".into()])
    );

    let repo_url = format!(
        "file:///repos/{}",
        repo.file_name().unwrap().to_string_lossy()
    );
    let ids: Vec<String> = (0..4)
        .map(|i| {
            let script = format!("sleep 1; echo from-task-{i} > out.txt");
            let created = kiln_at(
                &url,
                &admin,
                &["submit", "--repo", &repo_url, "--", "sh", "-c", &script],
            );
            serde_json::from_str::<Value>(&created).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut runners = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let task = wait::until(&format!("task {id} to end"), TIMEOUT, || async {
            let task: Value = serde_json::from_str(&kiln_at(&url, &admin, &["task", id])).ok()?;
            let state = task["state"].as_str()?.to_owned();
            (!["queued", "assigned", "running"].contains(&state.as_str())).then_some(task)
        })
        .await;
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(task["attempts"].as_array().unwrap().len(), 1, "{task}");
        runners.insert(
            task["attempts"][0]["runner_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let diff = Command::new(bins::path("kiln"))
            .args(["--server", &url, "--token", &admin, "diff", id])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&diff.stdout).contains(&format!("+from-task-{i}")));
    }
    assert_eq!(runners.len(), 2, "both runners should have taken tasks");

    // The runners in the image fence their agents: an agent cannot read its runner's
    // config and token.
    let status = compose.run(&["exec", "-T", "runner-1", "kiln-runner", "status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    assert_eq!(status["agents"], "fenced", "{status}");
    let script = "cat /var/lib/kiln-runner/config/runner.yaml || echo no-config";
    let created = kiln_at(
        &url,
        &admin,
        &["submit", "--repo", &repo_url, "--", "sh", "-c", script],
    );
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = wait::until("the snooping task to end", TIMEOUT, || async {
        let task: Value = serde_json::from_str(&kiln_at(&url, &admin, &["task", &id])).ok()?;
        let state = task["state"].as_str()?.to_owned();
        (!["queued", "assigned", "running"].contains(&state.as_str())).then_some(task)
    })
    .await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let logs = kiln_at(&url, &admin, &["logs", &id]);
    assert!(logs.contains("no-config"), "{logs}");
    assert!(
        !logs.contains("runner_token"),
        "an agent read its runner's token: {logs}"
    );
}

#[tokio::test]
async fn a_sandbox_task_runs_in_its_own_container_which_is_burned_after_success_and_failure() {
    docker::images();
    let control_plane = ControlPlane::start_with(&["--sandbox-image", &sandbox_image()]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    open_up(&control_plane.scratch());
    // No runner is registered: only the box's own runner can take these tasks.
    let succeeds = control_plane.submit(
        &repo,
        &["--sandbox", "docker", "--sandbox-ttl", "10m"],
        "test -f /.dockerenv && echo in-a-container; id -un; echo sandboxed > proof.txt; \
         for f in /proc/[0-9]*/environ; do grep -qs kiln_sbx_ \"$f\" && echo SAW-SANDBOX-TOKEN; done; true",
    );
    let fails = control_plane.submit(&repo, &["--sandbox", "docker"], "echo failing; exit 3");
    let (succeeds_box, fails_box) = (
        sandbox_of(&control_plane, &succeeds).await,
        sandbox_of(&control_plane, &fails).await,
    );
    assert_ne!(succeeds_box, fails_box);

    let task = control_plane.wait_terminal(&succeeds, TIMEOUT).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    let lines = stdout_lines(&control_plane.events(&succeeds, 1).await);
    assert!(lines.contains(&"in-a-container".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&"kiln".to_owned()),
        "ran as the image's user: {lines:?}"
    );
    assert!(
        !lines.contains(&"SAW-SANDBOX-TOKEN".to_owned()),
        "the agent read the box's token: {lines:?}"
    );
    let diff = control_plane.kiln_ok(&["diff", &succeeds]);
    assert!(diff.contains("+sandboxed"), "{diff}");
    let failed = control_plane.wait_terminal(&fails, TIMEOUT).await;
    assert_eq!(failed["state"], "failed", "{failed}");

    for sandbox in [&succeeds_box, &fails_box] {
        wait_box_gone(sandbox).await;
    }
    wait::until("both sandboxes to leave the live list", TIMEOUT, || async {
        let live: Vec<Value> =
            serde_json::from_str(&control_plane.kiln_ok(&["sandboxes", "--json"])).ok()?;
        live.is_empty().then_some(())
    })
    .await;
    for task in [&succeeds, &fails] {
        let attempts = control_plane.task(task).await["attempts"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(attempts, 1, "task {task} ran once");
    }
    let retry = control_plane.kiln(&["retry", &fails]);
    assert!(!retry.status.success());
    assert!(
        String::from_utf8_lossy(&retry.stderr).contains("burned"),
        "{retry:?}"
    );
}

#[tokio::test]
async fn sandbox_requests_that_cannot_work_are_refused_naming_the_field() {
    let control_plane = ControlPlane::start_with(&["--sandbox-image", &sandbox_image()]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let repo = repo.to_string_lossy();
    let refusals = [
        (
            vec!["--sandbox", "docker", "--image=-privileged"],
            "sandbox.image",
        ),
        (
            vec!["--sandbox", "docker", "--container-image", "agent:1"],
            "container",
        ),
        (vec!["--sandbox", "kubernetes"], "sandbox.provider"),
    ];
    for (flags, field) in refusals {
        let mut args = vec!["submit", "--repo", &repo];
        args.extend(flags.iter().copied());
        args.extend(["--", "true"]);
        let output = control_plane.kiln(&args);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(field),
            "{flags:?}: {output:?}"
        );
    }
    let not_a_repo = control_plane.kiln(&[
        "submit",
        "--repo",
        "file:///var/run",
        "--sandbox",
        "docker",
        "--",
        "true",
    ]);
    assert_eq!(not_a_repo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_a_repo.stderr).contains("not a git repository"));
    let tasks: Value = serde_json::from_str(&control_plane.kiln_ok(&["tasks", "--json"])).unwrap();
    assert_eq!(
        tasks["tasks"].as_array().unwrap().len(),
        0,
        "nothing half-made: {tasks}"
    );
}

#[tokio::test]
async fn a_killed_control_plane_still_has_its_sandbox_burned_by_ttl_and_orphans_reaped() {
    docker::images();
    let mut control_plane = ControlPlane::start_with(&["--sandbox-image", &sandbox_image()]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    open_up(&control_plane.scratch());
    let task = control_plane.submit(
        &repo,
        &["--sandbox", "docker", "--sandbox-ttl", "20s"],
        "echo started; sleep 600",
    );
    let sandbox = sandbox_of(&control_plane, &task).await;
    control_plane.wait_events(&task, 1, 1, TIMEOUT).await;
    wait::until("the agent to start", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&task, 1).await)
            .contains(&"started".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(
        containers_matching(&format!("label=kiln.sandbox={sandbox}")).len(),
        1
    );

    control_plane.kill();
    // The TTL inside the box ends it with nobody to tell it to.
    wait_box_gone(&sandbox).await;

    // A box this control plane owns but no longer knows: reaped on start.
    let owner = std::fs::read_to_string(control_plane.data_dir().join("instance.id")).unwrap();
    let orphan = format!("kiln-orphan-{}", std::process::id());
    docker_ok(&[
        "run",
        "--detach",
        "--rm",
        "--name",
        &orphan,
        "--label",
        &format!("kiln.owner={}", owner.trim()),
        "--label",
        "kiln.sandbox=01a208c7-0000-7000-8000-000000000000",
        "--entrypoint",
        "sleep",
        &sandbox_image(),
        "600",
    ]);
    control_plane.launch().await;
    wait::until("the orphan container to be reaped", TIMEOUT, || async {
        containers_matching(&format!("name={orphan}"))
            .is_empty()
            .then_some(())
    })
    .await;

    let ended = control_plane.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(ended["state"], "timed_out", "{ended}");
    assert_eq!(
        ended["attempts"].as_array().unwrap().len(),
        1,
        "ran once: {ended}"
    );
    let live: Vec<Value> =
        serde_json::from_str(&control_plane.kiln_ok(&["sandboxes", "--json"])).unwrap();
    assert!(live.is_empty(), "{live:?}");
}

#[tokio::test]
async fn the_docker_executor_sees_only_its_worktree_within_limits() {
    docker::images();
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "dock", &["--capability", "docker"]);
    let config = runner.config_dir().join("runner.yaml");
    let mut yaml = std::fs::read_to_string(&config).unwrap();
    yaml.push_str("container:\n  memory: 256M\n  pids: 64\n");
    std::fs::write(&config, yaml).unwrap();
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");

    let script = format!(
        "cat {config} && echo READ-CONFIG; env | grep -q kiln_rnr_ && echo SAW-TOKEN; \
         echo visible=$VISIBLE; pwd; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         echo made-in-a-container > made.txt",
        config = config.display()
    );
    let task = control_plane.submit(
        &repo,
        &[
            "--container-image",
            &sandbox_image(),
            "--env",
            "VISIBLE=yes",
        ],
        &script,
    );
    let ended = control_plane.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
    let lines = stdout_lines(&control_plane.events(&task, 1).await);
    assert!(!lines.contains(&"READ-CONFIG".to_owned()), "{lines:?}");
    assert!(!lines.contains(&"SAW-TOKEN".to_owned()), "{lines:?}");
    assert!(lines.contains(&"visible=yes".to_owned()), "{lines:?}");
    assert!(lines.contains(&"/workspace".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&(256u64 << 20).to_string()),
        "memory limit: {lines:?}"
    );
    assert!(lines.contains(&"64".to_owned()), "pids limit: {lines:?}");
    let diff = control_plane.kiln_ok(&["diff", &task]);
    assert!(diff.contains("+made-in-a-container"), "{diff}");
    assert!(
        containers_matching(&format!("label=kiln.runner={}", runner.id)).is_empty(),
        "the agent container is removed"
    );
}

#[tokio::test]
async fn the_deb_installs_in_a_clean_container_and_runs() {
    docker::images();
    let out = tempfile::tempdir().unwrap();
    let bin_dir = bins::path("kiln").parent().unwrap().to_path_buf();
    let built = Command::new(docker::repo_root().join("packaging/deb/build.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "packaging/deb/build.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    open_up(out.path());
    let mount = format!("{}:/pkg:ro", out.path().display());
    let check = "dpkg -i /pkg/*.deb >/dev/null \
        && kiln-runner --version && kiln --version \
        && test -f /lib/systemd/system/kiln.service \
        && test -f /lib/systemd/system/kiln-runner.service \
        && test -f /usr/share/man/man1/kiln-runner.1.gz \
        && test -f /usr/share/man/man1/kiln-submit.1.gz \
        && test -f /usr/share/bash-completion/completions/kiln \
        && test -f /usr/share/zsh/vendor-completions/_kiln-runner \
        && id -u kiln-runner >/dev/null && id -u kiln >/dev/null && echo installed";
    let output = docker_ok(&[
        "run",
        "--rm",
        "--volume",
        &mount,
        "kiln-base:bookworm",
        "sh",
        "-c",
        check,
    ]);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        output.contains(&format!("kiln-runner {version}")),
        "{output}"
    );
    assert!(output.contains(&format!("kiln {version}")), "{output}");
    assert!(output.trim_end().ends_with("installed"), "{output}");
}

#[tokio::test]
async fn a_sandbox_token_opens_only_its_own_sandbox_runner() {
    docker::images();
    let control_plane = ControlPlane::start_with(&["--sandbox-image", &sandbox_image()]).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    open_up(&control_plane.scratch());
    let task = control_plane.submit(&repo, &["--sandbox", "docker"], "echo started; sleep 600");
    let sandbox = sandbox_of(&control_plane, &task).await;
    let container = wait::until("the sandbox container", TIMEOUT, || async {
        containers_matching(&format!("label=kiln.sandbox={sandbox}")).pop()
    })
    .await;
    let env = docker_ok(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &container,
    ]);
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let token = var("KILN_RUNNER_TOKEN");
    assert!(token.starts_with("kiln_sbx_"), "a sandbox-scoped token");
    wait::until("the agent to start in its box", TIMEOUT, || async {
        stdout_lines(&control_plane.events(&task, 1).await)
            .contains(&"started".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(var("KILN_SANDBOX_ID"), sandbox);

    // Claiming another sandbox, or none, is refused at hello.
    for claimed in [json!("01a208c7-0000-7000-8000-000000000001"), Value::Null] {
        let mut socket = raw::connect(&control_plane.url, &token).await.unwrap();
        let mut hello = raw::hello(1, json!([]));
        hello["sandbox_id"] = claimed.clone();
        raw::send(&mut socket, hello.to_string()).await;
        let closed = tokio::time::timeout(Duration::from_secs(20), raw::next(&mut socket)).await;
        assert_eq!(
            closed.unwrap().err(),
            Some(Some(4002)),
            "claiming {claimed}"
        );
    }
    // It is no operator token.
    let api = reqwest::Client::new()
        .get(format!("{}/v1/tasks", control_plane.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    // The task still runs in its box, untouched by the refused connections.
    assert_eq!(control_plane.task(&task).await["state"], "running");
    control_plane.kiln_ok(&["cancel", &task]);
    let ended = control_plane.wait_terminal(&task, TIMEOUT).await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
    wait_box_gone(&sandbox).await;
    assert!(
        !control_plane.log().contains(&token),
        "the sandbox token is never logged"
    );
}
