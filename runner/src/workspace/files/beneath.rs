//! Paths inside a worktree, resolved by the kernel: `openat2` from the worktree's directory
//! with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so that no `..`, symlink, magic link or
//! rename racing the lookup can lead out of it.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// A rename racing a lookup makes the kernel answer `EAGAIN`: try again this many times.
const RACE_RETRIES: usize = 8;

/// A path given by a request, checked by its words: relative, no `..`, nothing in `.git`.
#[derive(Debug)]
pub struct Relative {
    text: String,
    parts: Vec<OsString>,
}

impl fmt::Display for Relative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Relative {
    /// Checks `text`; `.` is the worktree itself.
    pub fn parse(text: &str) -> Result<Self, String> {
        let refuse = |why: &str| Err(format!("path {text:?} {why}"));
        if text.is_empty() || text.contains('\0') {
            return refuse("is empty or has a NUL byte");
        }
        let path = Path::new(text);
        if path.is_absolute() {
            return refuse("is absolute; give a path inside the worktree");
        }
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) if part.as_bytes() == b".git" => {
                    return refuse("is inside .git");
                }
                Component::Normal(part) => parts.push(part.to_owned()),
                Component::CurDir => {}
                _ => return refuse("leaves the worktree (..)"),
            }
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// What a failure of the system call means, naming the path.
    pub fn error(&self, errno: Errno) -> String {
        let path = &self.text;
        match errno {
            Errno::ELOOP => format!("path {path:?} goes through a symlink; give the real path"),
            Errno::EXDEV => format!("path {path:?} leads outside the worktree"),
            Errno::ENOENT => format!("path {path:?} does not exist"),
            Errno::ENOTDIR => {
                format!("path {path:?} goes through something that is not a directory")
            }
            other => format!("{path}: {}", other.desc()),
        }
    }

    fn joined(parts: &[OsString]) -> OsString {
        let mut joined = OsString::from(".");
        for part in parts {
            joined.push("/");
            joined.push(part);
        }
        joined
    }
}

/// Whether missing directories on the way to a file are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parents {
    /// Make them (writing a new file).
    Create,
    /// They must exist.
    Existing,
}

/// The worktree's directory, opened once per request.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens the worktree at `path` (itself never through a symlink).
    pub fn at(path: &Path) -> Result<Self, String> {
        nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(|fd| Self { fd })
        .map_err(|e| format!("worktree {} is not available: {}", path.display(), e.desc()))
    }

    /// Opens `path` beneath the worktree with `flags`.
    pub fn open(&self, path: &Relative, flags: OFlag, mode: Mode) -> Result<OwnedFd, String> {
        self.open_parts(&path.parts, flags, mode)
            .map_err(|e| path.error(e))
    }

    fn open_parts(&self, parts: &[OsString], flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        let joined = Relative::joined(parts);
        let mut tries = 0;
        loop {
            match nix::fcntl::openat2(&self.fd, joined.as_os_str(), how) {
                Err(Errno::EAGAIN) if tries < RACE_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// The directory that holds `path`'s last part, and that part; with
    /// [`Parents::Create`], missing directories are made one level at a time.
    pub fn parent_of(
        &self,
        path: &Relative,
        parents: Parents,
    ) -> Result<(OwnedFd, OsString), String> {
        let Some((name, dirs)) = path.parts.split_last() else {
            return Err(format!("path {:?} is the worktree itself", path.text));
        };
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        for depth in 1..=dirs.len() {
            match self.open_parts(&dirs[..depth], dir_flags, Mode::empty()) {
                Ok(_) => {}
                Err(Errno::ENOENT) if parents == Parents::Create => {
                    let above = self
                        .open_parts(&dirs[..depth - 1], dir_flags, Mode::empty())
                        .map_err(|e| path.error(e))?;
                    match nix::sys::stat::mkdirat(
                        &above,
                        dirs[depth - 1].as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(path.error(e)),
                    }
                }
                Err(e) => return Err(path.error(e)),
            }
        }
        let parent = self
            .open_parts(dirs, dir_flags, Mode::empty())
            .map_err(|e| path.error(e))?;
        Ok((parent, name.clone()))
    }
}
