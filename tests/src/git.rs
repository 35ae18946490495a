//! Real git repositories in temp dirs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A repository at `parent/name` with one commit holding `README.md`, on branch `main`.
pub fn repo(parent: &Path, name: &str) -> PathBuf {
    let path = parent.join(name);
    std::fs::create_dir_all(&path).expect("create repo dir");
    git(&path, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(path.join("README.md"), "hello\n").expect("write README");
    git(&path, &["add", "README.md"]);
    git(&path, &["commit", "--quiet", "-m", "initial"]);
    path
}
