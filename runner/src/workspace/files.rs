//! File requests in a live worktree (`kiln files`): list, read, write, delete, never outside
//! the worktree. Absolute paths, `..`, paths into `.git`, and symlinks that lead out are
//! refused, naming the path.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use kiln_protocol::{FileEntry, FileOp, FileResult};

/// Largest file read or written through a request: its base64 must fit in one frame.
pub const MAX_TRANSFER_BYTES: u64 = kiln_protocol::limits::MAX_FILE_BYTES as u64;

/// Carries out `op` in the worktree at `root`.
pub fn apply(root: &Path, op: &FileOp) -> FileResult {
    match run(root, op) {
        Ok(result) => result,
        Err(error) => FileResult::Failed { error },
    }
}

fn run(root: &Path, op: &FileOp) -> Result<FileResult, String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("worktree {} is not available: {e}", root.display()))?;
    match op {
        FileOp::List { path } => {
            let dir = inside(&root, path, Existing::Required)?;
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| format!("{path}: {e}"))? {
                let entry = entry.map_err(|e| format!("{path}: {e}"))?;
                let meta = entry
                    .path()
                    .symlink_metadata()
                    .map_err(|e| format!("{path}: {e}"))?;
                let kind = if meta.file_type().is_symlink() {
                    "symlink"
                } else if meta.is_dir() {
                    "dir"
                } else {
                    "file"
                };
                entries.push(FileEntry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    kind: kind.into(),
                    size: if meta.is_file() { meta.len() } else { 0 },
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(FileResult::Listed { entries })
        }
        FileOp::Read { path } => {
            let file = inside(&root, path, Existing::Required)?;
            let meta = std::fs::metadata(&file).map_err(|e| format!("{path}: {e}"))?;
            if !meta.is_file() {
                return Err(format!("{path} is not a file"));
            }
            if meta.len() > MAX_TRANSFER_BYTES {
                return Err(format!(
                    "{path} is {} bytes; the limit is {MAX_TRANSFER_BYTES}",
                    meta.len()
                ));
            }
            let bytes = std::fs::read(&file).map_err(|e| format!("{path}: {e}"))?;
            Ok(FileResult::Read {
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        }
        FileOp::Write { path, data } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("data for {path} is not base64: {e}"))?;
            if bytes.len() as u64 > MAX_TRANSFER_BYTES {
                return Err(format!(
                    "data for {path} is over {MAX_TRANSFER_BYTES} bytes"
                ));
            }
            let file = inside(&root, path, Existing::Optional)?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                // Never follow a symlink planted at the final component.
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&file)
                .map_err(|e| format!("{path}: {e}"))?;
            out.write_all(&bytes).map_err(|e| format!("{path}: {e}"))?;
            Ok(FileResult::Written)
        }
        FileOp::Delete { path } => {
            let file = inside(&root, path, Existing::Required)?;
            if file == root {
                return Err("refusing to delete the worktree itself".into());
            }
            std::fs::remove_file(&file).map_err(|e| format!("{path}: {e}"))?;
            Ok(FileResult::Deleted)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    Required,
    Optional,
}

/// Resolves `relative` under `root` (canonical), refusing anything that leaves it.
fn inside(root: &Path, relative: &str, existing: Existing) -> Result<PathBuf, String> {
    let refuse = |why: &str| Err(format!("path {relative:?} {why}"));
    let path = Path::new(relative);
    if relative.is_empty() || relative.contains('\0') {
        return refuse("is empty or has a NUL byte");
    }
    if path.is_absolute() {
        return refuse("is absolute; give a path inside the worktree");
    }
    let mut normal = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            _ => return refuse("leaves the worktree (..)"),
        }
    }
    if normal.first().is_some_and(|first| *first == ".git") {
        return refuse("is inside .git");
    }
    let joined: PathBuf = normal
        .iter()
        .fold(root.to_path_buf(), |p, part| p.join(part));
    match joined.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(_) => refuse("leads outside the worktree through a symlink"),
        Err(_) if existing == Existing::Required => refuse("does not exist"),
        Err(_) => {
            // A new file: its parent must exist inside the worktree (made if missing, one
            // checked level at a time).
            let parent = joined.parent().unwrap_or(root);
            let mut ancestor = parent.to_path_buf();
            while !ancestor.exists() {
                ancestor = ancestor
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
            }
            let real = ancestor
                .canonicalize()
                .map_err(|e| format!("path {relative:?}: {e}"))?;
            if !real.starts_with(root) {
                return refuse("leads outside the worktree through a symlink");
            }
            std::fs::create_dir_all(parent).map_err(|e| format!("path {relative:?}: {e}"))?;
            let real_parent = parent
                .canonicalize()
                .map_err(|e| format!("path {relative:?}: {e}"))?;
            if !real_parent.starts_with(root) {
                return refuse("leads outside the worktree through a symlink");
            }
            Ok(real_parent.join(joined.file_name().unwrap_or_default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &str, text: &str) -> FileOp {
        FileOp::Write {
            path: path.into(),
            data: base64::engine::general_purpose::STANDARD.encode(text),
        }
    }

    fn failed(result: FileResult) -> String {
        match result {
            FileResult::Failed { error } => error,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn writes_reads_lists_and_deletes_inside() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            apply(dir.path(), &write("a/b.txt", "hi")),
            FileResult::Written
        );
        let FileResult::Read { data } = apply(
            dir.path(),
            &FileOp::Read {
                path: "a/b.txt".into(),
            },
        ) else {
            panic!("read")
        };
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
            b"hi"
        );
        let FileResult::Listed { entries } = apply(dir.path(), &FileOp::List { path: ".".into() })
        else {
            panic!("list")
        };
        assert_eq!(entries[0].name, "a");
        assert_eq!(
            apply(
                dir.path(),
                &FileOp::Delete {
                    path: "a/b.txt".into()
                }
            ),
            FileResult::Deleted
        );
    }

    #[test]
    fn absolute_dotdot_git_and_escaping_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        let cases = [
            (
                FileOp::Read {
                    path: "/etc/passwd".into(),
                },
                "is absolute",
            ),
            (
                FileOp::Read {
                    path: "../x".into(),
                },
                "leaves the worktree",
            ),
            (
                FileOp::Read {
                    path: "a/../../x".into(),
                },
                "leaves the worktree",
            ),
            (
                FileOp::Read {
                    path: ".git/config".into(),
                },
                "inside .git",
            ),
            (
                FileOp::Read {
                    path: "out/secret".into(),
                },
                "through a symlink",
            ),
            (
                FileOp::Read {
                    path: "link".into(),
                },
                "through a symlink",
            ),
            (write("out/new.txt", "x"), "through a symlink"),
            (
                FileOp::Delete {
                    path: "out/secret".into(),
                },
                "through a symlink",
            ),
        ];
        for (op, reason) in cases {
            let error = failed(apply(dir.path(), &op));
            assert!(error.contains(reason), "{op:?}: {error}");
        }
        assert!(outside.path().join("secret").exists());
        assert!(!outside.path().join("new.txt").exists());
    }
}
