//! Stand-in agent CLIs for tests: small shell scripts named like the real ones (`claude`,
//! `codex`, `gemini`) that print the real JSON stream formats.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Writes an executable script `name` into `bin`.
pub fn install(bin: &Path, name: &str, script: &str) -> PathBuf {
    std::fs::create_dir_all(bin).expect("bin dir");
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write agent");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod agent");
    path
}

/// `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
