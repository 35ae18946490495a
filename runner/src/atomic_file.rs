//! Atomic file writes: write a temp file beside the target, fsync it, rename it over the
//! target, fsync the directory. A reader sees the old file or the new one, never half.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// File mode for files that hold secrets: owner read/write only.
pub const SECRET_MODE: u32 = 0o600;

/// File mode for ordinary files.
pub const PUBLIC_MODE: u32 = 0o644;

/// Whether a write must survive a crash of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// Synced to disk before the call returns (config, tokens).
    Synced,
    /// Atomic for readers but left to the page cache: files that a crash makes useless
    /// anyway, such as the agent shim's status file. Saves two fsyncs per agent.
    Scratch,
}

/// Atomically replaces `path` with `contents`, created with `mode`, and syncs it to disk.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace(path, contents, mode, Durability::Synced)
}

/// Atomically replaces `path` with `contents`, created with `mode`, without syncing: for
/// files that do not outlive the process that needs them.
pub fn write_scratch(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    replace(path, contents, mode, Durability::Scratch)
}

fn replace(path: &Path, contents: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        // The mode given to open() is masked by the umask; set it exactly.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(contents)?;
        if durability == Durability::Scratch {
            return fs::rename(&temp, path);
        }
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn writes_with_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.yaml");
        write(&path, b"one", SECRET_MODE).unwrap();
        write(&path, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn scratch_writes_replace_with_exact_mode_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.prompt");
        write_scratch(&path, b"one", SECRET_MODE).unwrap();
        write_scratch(&path, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
