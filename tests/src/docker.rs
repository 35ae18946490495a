//! The local Docker engine for the image, sandbox, executor and packaging tests: images
//! built once per test process from this checkout's binaries, and compose projects that are
//! torn down on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::bins;

/// Tag of the images the tests build, so that they never replace an operator's `latest`.
pub const TAG: &str = "test";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `docker args` and returns its output.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Runs `docker args`, asserting success; returns stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Names of the containers (running or not) that pass a `docker ps` filter such as
/// `label=kiln.sandbox=ID` or `name=NAME`.
pub fn containers_matching(filter: &str) -> Vec<String> {
    docker_ok(&["ps", "--all", "--filter", filter, "--format", "{{.Names}}"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Builds the base images (if missing) and `kiln`, `kiln-runner` and `kiln-sandbox` with
/// tag [`TAG`] from the binaries under test, once per test process.
pub fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bin_dir = bins::path("kiln")
            .parent()
            .expect("binary dir")
            .to_path_buf();
        let output = Command::new(repo_root().join("docker/build.sh"))
            .arg("--bin-dir")
            .arg(&bin_dir)
            .args(["--tag", TAG])
            .output()
            .expect("run docker/build.sh");
        assert!(
            output.status.success(),
            "docker/build.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// A `docker-compose` project from docker/compose.yaml, taken down (with its volumes) on
/// drop.
#[derive(Debug)]
pub struct Compose {
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    /// Starts the project named `project` with `env` (KILN_ADMIN_TOKEN and the like).
    pub fn up(project: &str, env: &[(&str, String)]) -> Self {
        let compose = Self {
            project: project.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        };
        let output = compose.run(&["up", "--detach"]);
        assert!(
            output.status.success(),
            "docker-compose up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        compose
    }

    /// Runs `docker-compose ARGS` in this project.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(repo_root().join("docker/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("KILN_TAG", TAG)
            .output()
            .expect("run docker-compose")
    }

    /// The host address a service's port is published on, such as `127.0.0.1:32768`.
    pub fn port(&self, service: &str, port: u16) -> String {
        let output = self.run(&["port", service, &port.to_string()]);
        assert!(output.status.success(), "docker-compose port failed");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The project's logs, for failure reports.
    pub fn logs(&self) -> String {
        let output = self.run(&["logs", "--no-color", "--tail", "40"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- docker-compose logs ---\n{}", self.logs());
        }
        let _ = self.run(&["down", "--volumes", "--timeout", "5"]);
    }
}

/// Time for a sandbox to come or go: forging the box and connecting take seconds.
const SANDBOX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The sandbox image built by [`images`].
pub fn sandbox_image() -> String {
    format!("kiln-sandbox:{TAG}")
}

/// Makes `path` and everything under it readable by the unprivileged users of the
/// containers (temp dirs are 0700).
pub fn open_up(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut dir = Some(path);
    while let Some(current) = dir {
        if current == std::path::Path::new("/") || current == std::env::temp_dir() {
            break;
        }
        let mode = std::fs::metadata(current)
            .expect("metadata")
            .permissions()
            .mode();
        std::fs::set_permissions(current, std::fs::Permissions::from_mode(mode | 0o755))
            .expect("chmod");
        dir = current.parent();
    }
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(path)
        .status()
        .expect("chmod -R");
    assert!(status.success());
}

/// The sandbox id of a sandboxed task.
pub async fn sandbox_of(control_plane: &crate::ControlPlane, task: &str) -> String {
    let task = control_plane.task(task).await;
    task["sandbox_id"].as_str().expect("sandbox_id").to_owned()
}

/// Waits until the container of `sandbox` is gone.
pub async fn wait_box_gone(sandbox: &str) {
    let label = format!("label=kiln.sandbox={sandbox}");
    crate::wait::until(
        &format!("the container of sandbox {sandbox} to be gone"),
        SANDBOX_TIMEOUT,
        || async { containers_matching(&label).is_empty().then_some(()) },
    )
    .await;
}
