//! File requests in a live worktree (`kiln files`): list, read, write, delete, never outside
//! the worktree, whatever the agent does to it meanwhile. Paths are resolved by the kernel
//! beneath the worktree with no symlink followed (`beneath.rs`), never checked and then
//! opened; a write replaces the file by rename (so it cannot write through a link planted
//! at its name), and a delete removes the name, never what a symlink points at.

mod beneath;

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;

use base64::Engine as _;
use kiln_protocol::{FileEntry, FileOp, FileResult};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use beneath::{Relative, Root};

/// Largest file read or written through a request: its base64 must fit in one frame.
pub const MAX_TRANSFER_BYTES: u64 = kiln_protocol::limits::MAX_FILE_BYTES as u64;

/// Mode of a file a request creates: what git checks out for a regular file.
const NEW_FILE_MODE: u32 = 0o644;

/// Carries out `op` in the worktree at `root`.
pub fn apply(root: &Path, op: &FileOp) -> FileResult {
    match run(root, op) {
        Ok(result) => result,
        Err(error) => FileResult::Failed { error },
    }
}

fn run(root: &Path, op: &FileOp) -> Result<FileResult, String> {
    let root = Root::at(root)?;
    match op {
        FileOp::List { path } => list(&root, &Relative::parse(path)?),
        FileOp::Read { path } => read(&root, &Relative::parse(path)?),
        FileOp::Write { path, data } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("data for {path} is not base64: {e}"))?;
            if bytes.len() as u64 > MAX_TRANSFER_BYTES {
                return Err(format!(
                    "data for {path} is {} bytes, over the limit of {MAX_TRANSFER_BYTES}",
                    bytes.len()
                ));
            }
            write(&root, &Relative::parse(path)?, &bytes)
        }
        FileOp::Delete { path } => delete(&root, &Relative::parse(path)?),
    }
}

fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFLNK => "symlink",
        SFlag::S_IFDIR => "dir",
        _ => "file",
    }
}

fn list(root: &Root, path: &Relative) -> Result<FileResult, String> {
    let fd = root.open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
    let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| path.error(e))?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|e| path.error(e))?;
        let name = entry.file_name().to_owned();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name);
        }
    }
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let stat = match fstatat(dir.as_fd(), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Gone since it was listed: the agent is still at work.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(path.error(e)),
        };
        let kind = kind_of(stat.st_mode);
        entries.push(FileEntry {
            name: name.to_string_lossy().into_owned(),
            kind: kind.into(),
            size: if kind == "file" {
                u64::try_from(stat.st_size).unwrap_or(0)
            } else {
                0
            },
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FileResult::Listed { entries })
}

fn read(root: &Root, path: &Relative) -> Result<FileResult, String> {
    // Non-blocking: a FIFO the agent put there must not hang the request.
    let fd = root.open(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())?;
    let stat = nix::sys::stat::fstat(&fd).map_err(|e| path.error(e))?;
    if SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(format!("{path} is not a file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_TRANSFER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() as u64 > MAX_TRANSFER_BYTES {
        return Err(format!(
            "{path} is over {MAX_TRANSFER_BYTES} bytes, the limit"
        ));
    }
    Ok(FileResult::Read {
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn write(root: &Root, path: &Relative, bytes: &[u8]) -> Result<FileResult, String> {
    let (parent, name) = root.parent_of(path, beneath::Parents::Create)?;
    let mode = match fstatat(&parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) if kind_of(stat.st_mode) == "dir" => return Err(format!("{path} is a directory")),
        Ok(stat) => stat.st_mode & 0o777,
        Err(_) => NEW_FILE_MODE,
    };
    let scratch = format!(".kiln-put-{}", uuid::Uuid::now_v7());
    let file = nix::fcntl::openat(
        &parent,
        scratch.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| path.error(e))?;
    let written = write_all(file, bytes).and_then(|()| {
        nix::fcntl::renameat(&parent, scratch.as_str(), &parent, name.as_os_str())
            .map_err(std::io::Error::from)
    });
    if let Err(e) = written {
        let _ = nix::unistd::unlinkat(&parent, scratch.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(format!("{path}: {e}"));
    }
    Ok(FileResult::Written)
}

fn write_all(file: OwnedFd, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::File::from(file).write_all(bytes)
}

fn delete(root: &Root, path: &Relative) -> Result<FileResult, String> {
    let (parent, name) = root.parent_of(path, beneath::Parents::Existing)?;
    match nix::unistd::unlinkat(&parent, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(FileResult::Deleted),
        Err(Errno::EISDIR) => Err(format!("{path} is a directory; delete files only")),
        Err(e) => Err(path.error(e)),
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

    #[test]
    fn links_are_never_followed_and_a_deleted_link_is_only_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "s").unwrap();
        std::fs::write(dir.path().join(".git"), "gitdir: /elsewhere\n").unwrap();
        std::os::unix::fs::symlink(".git", dir.path().join("pointer")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link")).unwrap();
        std::fs::hard_link(&secret, dir.path().join("hard")).unwrap();
        let read = |path: &str| apply(dir.path(), &FileOp::Read { path: path.into() });
        assert!(
            failed(read("pointer")).contains("symlink"),
            "a symlink to .git"
        );
        assert!(failed(read(".git")).contains("inside .git"));
        assert_eq!(
            apply(dir.path(), &write("pointer", "overwritten")),
            FileResult::Written,
            "a write replaces the link itself"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".git")).unwrap(),
            "gitdir: /elsewhere\n"
        );
        assert_eq!(
            apply(dir.path(), &write("hard", "new")),
            FileResult::Written
        );
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "s",
            "not written through a hard link"
        );
        assert_eq!(
            apply(
                dir.path(),
                &FileOp::Delete {
                    path: "link".into()
                }
            ),
            FileResult::Deleted
        );
        assert!(secret.exists(), "deleting a symlink leaves its target");
        assert!(dir.path().join("link").symlink_metadata().is_err());
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("pipe"), Mode::from_bits_truncate(0o600)).unwrap();
        let error = failed(apply(
            dir.path(),
            &FileOp::Read {
                path: "pipe".into(),
            },
        ));
        assert!(error.contains("not a file"), "{error}");
    }
}
