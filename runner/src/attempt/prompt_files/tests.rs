//! Prompt files: the one made ahead is the one written, a missing one is made on the spot,
//! and every file is private to the runner's user.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

/// The one file `PromptFiles::prepare` made in `dir`.
fn made_ahead(dir: &Path) -> PathBuf {
    let made: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    assert_eq!(made.len(), 1, "one file made ahead: {made:?}");
    made[0].path()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_file_made_ahead_is_the_one_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = PromptFiles::new(dir.path());
    files.prepare();
    let ahead = made_ahead(dir.path());
    assert_eq!(
        fs::read(&ahead).unwrap(),
        b"",
        "empty until an attempt writes it"
    );
    assert_eq!(mode(&ahead), 0o600);

    let written = files.write(b"fix the bug").unwrap();
    assert_eq!(written, ahead);
    assert_eq!(fs::read(&written).unwrap(), b"fix the bug");
    let second = files.write(b"and the next one").unwrap();
    assert_ne!(second, written, "a file is used once");
    assert_eq!(fs::read(&second).unwrap(), b"and the next one");
    assert_eq!(mode(&second), 0o600);
}

#[test]
fn a_file_made_ahead_that_vanished_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let files = PromptFiles::new(&dir.path().join("worktrees"));
    files.prepare();
    fs::remove_file(made_ahead(&dir.path().join("worktrees"))).unwrap();
    let written = files.write(b"prompt").unwrap();
    assert_eq!(fs::read(&written).unwrap(), b"prompt");
}

#[test]
fn a_symlink_in_place_of_the_file_made_ahead_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let files = PromptFiles::new(dir.path());
    files.prepare();
    let ahead = made_ahead(dir.path());
    let target = dir.path().join("elsewhere");
    fs::write(&target, "untouched").unwrap();
    fs::remove_file(&ahead).unwrap();
    std::os::unix::fs::symlink(&target, &ahead).unwrap();
    let written = files.write(b"prompt").unwrap();
    assert_ne!(written, ahead);
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
}

#[test]
fn a_file_linked_in_place_of_the_file_made_ahead_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let files = PromptFiles::new(&dir.path().join("worktrees"));
    files.prepare();
    let ahead = made_ahead(&dir.path().join("worktrees"));
    let token = dir.path().join("token");
    fs::write(&token, "secret").unwrap();
    fs::remove_file(&ahead).unwrap();
    fs::hard_link(&token, &ahead).unwrap();
    let written = files.write(b"prompt").unwrap();
    assert_ne!(written, ahead);
    assert_eq!(fs::read(&token).unwrap(), b"secret");
    assert_eq!(fs::read(&written).unwrap(), b"prompt");
}

#[test]
fn a_file_made_ahead_that_was_written_into_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let files = PromptFiles::new(dir.path());
    files.prepare();
    let ahead = made_ahead(dir.path());
    fs::write(&ahead, "injected instructions").unwrap();
    let written = files.write(b"prompt").unwrap();
    assert_ne!(written, ahead);
    assert_eq!(fs::read(&written).unwrap(), b"prompt");
}

#[test]
fn files_a_previous_run_left_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join(format!("{PREFIX}old"));
    fs::write(&left, "stale prompt").unwrap();
    let other = dir.path().join("a-worktree");
    fs::create_dir(&other).unwrap();
    let _files = PromptFiles::new(dir.path());
    assert!(!left.exists());
    assert!(other.exists(), "only prompt files are removed");
}
