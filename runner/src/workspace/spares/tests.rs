//! Spares against real git repositories.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Spares;
use crate::workspace::mirror::Mirrors;
use crate::workspace::result;

/// How long a spare of a one-file repository may take to check out.
const READY_WITHIN: Duration = Duration::from_secs(20);

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[tokio::test]
async fn a_spare_is_registered_in_its_mirror_before_the_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    git(&source, &["init", "--quiet"]);
    std::fs::write(source.join("README"), "hello\n").unwrap();
    git(&source, &["add", "README"]);
    git(&source, &["commit", "--quiet", "-m", "first"]);
    let repo = source.to_string_lossy().into_owned();
    let mirrors = Mirrors::new(
        &dir.path().join("cache"),
        std::time::Duration::from_secs(60),
    );
    let spares: Arc<Spares> = Spares::new(&dir.path().join("worktrees"), 2);

    let mirror = mirrors.lock(&repo).await;
    mirrors.fetch(&mirror, &repo).await.unwrap();
    let commit = result::resolve_base(&mirror.path, None).unwrap();
    spares.replenish(&mirror, &repo, &commit).await;

    // What a fetch into the mirror reads of every worktree is whole once the lock is free,
    // although the spare's files are still being checked out.
    let registered: Vec<_> = std::fs::read_dir(mirror.path.join("worktrees"))
        .expect("the spare's metadata")
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(registered.len(), 1, "{registered:?}");
    for file in ["commondir", "gitdir", "HEAD"] {
        assert!(registered[0].join(file).exists(), "{file} missing");
    }
    drop(mirror);

    let deadline = Instant::now() + READY_WITHIN;
    while spares.ready() != [repo.clone()] {
        assert!(Instant::now() < deadline, "the spare never became ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mirror = mirrors.lock(&repo).await;
    let spare = spares.take(&mirror).await.expect("the spare");
    assert_eq!(
        std::fs::read_to_string(spare.join("README")).unwrap(),
        "hello\n"
    );
}
