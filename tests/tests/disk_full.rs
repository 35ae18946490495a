//! A control plane whose disk fills up: `/readyz` says it cannot write, a submit that
//! cannot be stored says the disk is full (and stores nothing), and both recover once
//! space is freed. The data dir is a small tmpfs mounted in a user and mount namespace of
//! the test's own (`unshare`), reached from outside through `/proc/PID/root`.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kiln_tests::{bins, git, wait};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A `kiln serve` on its own small tmpfs.
struct Cramped {
    child: Child,
    /// The tmpfs as seen from outside the namespace.
    outside: PathBuf,
    url: String,
    token: String,
    http: reqwest::Client,
    _root: tempfile::TempDir,
}

impl Drop for Cramped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cramped {
    async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().join("small");
        std::fs::create_dir(&mount).unwrap();
        let log = std::fs::File::create(root.path().join("serve.log")).unwrap();
        let child = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "--propagation", "private"])
            .args(["sh", "-c"])
            .arg(r#"mount -t tmpfs -o size=40m kiln-small "$0" && exec "$1" serve --listen 127.0.0.1:0 --sandbox-provider none --data-dir "$0/data""#)
            .arg(&mount)
            .arg(bins::path("kiln"))
            .env("KILN_LOG", "info")
            .env_remove("KILN_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("unshare (util-linux)");
        let outside = PathBuf::from(format!("/proc/{}/root", child.id()))
            .join(mount.strip_prefix("/").unwrap());
        let data = outside.join("data");
        let url = wait::until("kiln serve to write server.url", TIMEOUT, || async {
            std::fs::read_to_string(data.join("server.url"))
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .await;
        let token = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            child,
            outside,
            url,
            token,
            http: reqwest::Client::new(),
            _root: root,
        }
    }

    async fn ready(&self) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn tasks(&self) -> usize {
        let page: Value = self
            .http
            .get(format!("{}/v1/tasks", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["tasks"].as_array().map_or(0, Vec::len)
    }

    fn submit(&self, repo: &Path, prompt_file: &Path) -> std::process::Output {
        Command::new(bins::path("kiln"))
            .arg("submit")
            .arg("--repo")
            .arg(repo)
            .arg("--prompt-file")
            .arg(prompt_file)
            .args(["--", "true"])
            .env("KILN_SERVER_URL", &self.url)
            .env("KILN_ADMIN_TOKEN", &self.token)
            .output()
            .unwrap()
    }

    /// Writes a file into the tmpfs until no space is left.
    fn fill(&self) -> PathBuf {
        let path = self.outside.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 1 << 20];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
                return path;
            }
        }
    }
}

#[tokio::test]
async fn a_full_disk_makes_the_control_plane_unready_and_says_so_until_space_is_freed() {
    let cramped = Cramped::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let repo = git::repo(scratch.path(), "app");
    let prompt = scratch.path().join("prompt.md");
    std::fs::write(&prompt, "p".repeat(1000 * 1024)).unwrap();
    wait::until("the control plane to be ready", TIMEOUT, || async {
        (cramped.ready().await.0 == 200).then_some(())
    })
    .await;
    let first = cramped.submit(&repo, &prompt);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    let filler = cramped.fill();
    let (status, body) = cramped.ready().await;
    assert_eq!(
        (status, body.as_str()),
        (503, "store cannot write: the disk is full")
    );
    let refused = cramped.submit(&repo, &prompt);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("disk is full"),
        "the error says why: {stderr}"
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert_eq!(
        cramped.tasks().await,
        1,
        "nothing of the refused submit was stored"
    );

    std::fs::remove_file(filler).unwrap();
    wait::until("the control plane to be ready again", TIMEOUT, || async {
        (cramped.ready().await.0 == 200).then_some(())
    })
    .await;
    let again = cramped.submit(&repo, &prompt);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(cramped.tasks().await, 2);
}
