//! Scratch directories for tests, under the build's target directory rather than `/tmp`:
//! an agent's fence gives it a private `/tmp`, so files a test shares with its agents (gate
//! files, stand-in agent CLIs, repositories) must live elsewhere, as they would on a real
//! machine. The runner's own directories in there are hidden from agents all the same.

use std::path::PathBuf;

use tempfile::TempDir;

/// `target/tmp/kiln-tests` beside the test executable's profile directory.
fn base() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("executable dir").to_path_buf();
    // target/PROFILE/deps/test-… → target.
    while dir.file_name().is_some_and(|n| n != "target") && dir.parent().is_some() {
        dir = dir.parent().expect("parent").to_path_buf();
    }
    if dir.file_name().is_none_or(|n| n != "target") {
        // Not under a target directory (KILN_BIN_DIR set ups): beside the executable.
        dir = exe.parent().expect("executable dir").to_path_buf();
    }
    dir.join("tmp").join("kiln-tests")
}

/// A new scratch directory, removed when dropped.
pub fn tempdir() -> TempDir {
    let base = base();
    std::fs::create_dir_all(&base).expect("scratch base dir");
    tempfile::Builder::new()
        .prefix("t")
        .tempdir_in(&base)
        .expect("scratch dir")
}
