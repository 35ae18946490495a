//! The fence of each agent run on this runner: which of the runner's paths are hidden, and
//! the private directories (git and home overlays, `/tmp`, the run directory) of each
//! worktree, kept under `<worktree base>/.fences/` beside the worktree they serve and
//! removed with it.

use std::path::{Path, PathBuf};

use crate::fence::{FencePlan, Overlay, Shown, STATUS_FILE};
use crate::workspace::worktree;
pub use crate::workspace::worktree::remove_tree as remove_all;

/// Files of the runner's user that hold credentials for repositories and registries: an
/// agent never needs the runner's own (it has its task's secrets). Relative to `$HOME`.
const HOME_CREDENTIALS: [&str; 5] = [
    ".ssh",
    ".git-credentials",
    ".config/git/credentials",
    ".netrc",
    ".docker",
];

/// Files of a mirror that name its remote (git's config, kiln's record of the repository):
/// an agent sees copies without credentials.
const REMOTE_FILES: [&str; 2] = ["config", "kiln-origin"];

/// `text` with the user and password taken out of every URL in it, and the lines that
/// carry credentials (HTTP headers, credential helpers) dropped.
pub fn without_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.contains("extraheader") || lower.trim_start().starts_with("helper") {
            continue;
        }
        out.push_str(&strip_userinfo(line));
        out.push('\n');
    }
    out
}

/// `https://user:secret@host/...` becomes `https://host/...`, wherever in the line: over
/// HTTP any user part is a credential (a token often is the user); elsewhere (`ssh://git@`)
/// only one with a password is.
fn strip_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        let scheme_start = head[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        let http = head[scheme_start..at]
            .to_ascii_lowercase()
            .starts_with("http");
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '\t', '"']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(user_end) if http || authority[..user_end].contains(':') => {
                out.push_str(&authority[user_end + 1..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Container engines' sockets: a process that reaches one is root on the host.
const ENGINE_SOCKETS: [&str; 4] = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// What every fence on this runner hides, and where its private directories go.
#[derive(Clone, Debug)]
pub struct Fencing {
    hide: Vec<PathBuf>,
    shared: Vec<PathBuf>,
    home: Option<PathBuf>,
}

/// The private directories of one worktree's fence.
#[derive(Clone, Debug)]
pub struct FenceDirs {
    root: PathBuf,
}

impl FenceDirs {
    fn join(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// One launch's run directory and status file.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The directory, fresh for the launch.
    pub path: PathBuf,
    /// Where the fence's init reports how the agent ended.
    pub status_file: PathBuf,
}

impl Fencing {
    /// The fences of a runner with these directories (`hidden` adds the operator's own
    /// paths, and `kiln dev`'s data dir; `shared` are writable in every fence).
    pub fn new(
        config_dir: &Path,
        cache_dir: &Path,
        worktree_base: &Path,
        hidden: &[PathBuf],
        shared: &[PathBuf],
    ) -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute() && h != Path::new("/"));
        let mut hide = vec![
            config_dir.to_path_buf(),
            cache_dir.to_path_buf(),
            worktree_base.to_path_buf(),
        ];
        hide.extend(hidden.iter().cloned());
        if let Some(home) = &home {
            hide.extend(HOME_CREDENTIALS.iter().map(|c| home.join(c)));
        }
        hide.extend(ENGINE_SOCKETS.iter().map(PathBuf::from));
        if let Some(agent) = std::env::var_os("SSH_AUTH_SOCK") {
            hide.push(PathBuf::from(agent));
        }
        hide.retain(|p| p.is_absolute());
        let shared = shared.iter().filter(|p| p.is_absolute()).cloned().collect();
        Self { hide, shared, home }
    }

    /// The private directories of the fence of `worktree`, made if missing (mode 0700).
    /// The first time, the git overlay gets copies of `mirror`'s files that name its
    /// remote, without the credentials a URL may carry.
    pub fn dirs(&self, worktree: &Path, mirror: &Path) -> std::io::Result<FenceDirs> {
        let dirs = FenceDirs {
            root: worktree::fence_dir_of(worktree),
        };
        let fresh = !dirs.join("git-upper").exists();
        for sub in ["git-upper", "git-work", "home-upper", "home-work", "tmp"] {
            make_private_dir(&dirs.join(sub))?;
        }
        if fresh {
            for file in REMOTE_FILES {
                if let Ok(text) = std::fs::read_to_string(mirror.join(file)) {
                    std::fs::write(
                        dirs.join("git-upper").join(file),
                        without_credentials(&text),
                    )?;
                }
            }
        }
        Ok(dirs)
    }

    /// A fresh run directory for one launch in `dirs`' fence.
    pub fn run_dir(&self, dirs: &FenceDirs) -> std::io::Result<RunDir> {
        let path = dirs.join(&format!("run-{}", uuid::Uuid::now_v7()));
        make_private_dir(&path)?;
        Ok(RunDir {
            status_file: path.join(STATUS_FILE),
            path,
        })
    }

    /// The plan of one launch: the runner's paths hidden; the worktree (and `writable`
    /// paths) shown writable and `readable` paths read-only; the mirror's git metadata and
    /// the home seen through overlays.
    pub fn plan(
        &self,
        dirs: &FenceDirs,
        run: &RunDir,
        worktree: &Path,
        mirror: Option<&Path>,
        readable: &[&Path],
        writable: &[&Path],
    ) -> FencePlan {
        let mut show = vec![
            Shown {
                path: worktree.to_path_buf(),
                writable: true,
            },
            Shown {
                path: run.path.clone(),
                writable: true,
            },
        ];
        show.extend(
            writable
                .iter()
                .map(|p| p.to_path_buf())
                .chain(self.shared.iter().cloned())
                .map(|path| Shown {
                    path,
                    writable: true,
                }),
        );
        show.extend(readable.iter().map(|p| Shown {
            path: p.to_path_buf(),
            writable: false,
        }));
        let mut overlays = Vec::new();
        if let Some(home) = &self.home {
            if home.is_dir() && !self.hide.iter().any(|h| home.starts_with(h)) {
                overlays.push(Overlay {
                    path: home.clone(),
                    upper: dirs.join("home-upper"),
                    work: dirs.join("home-work"),
                });
            }
        }
        if let Some(mirror) = mirror {
            overlays.push(Overlay {
                path: mirror.to_path_buf(),
                upper: dirs.join("git-upper"),
                work: dirs.join("git-work"),
            });
        }
        FencePlan {
            hide: self.hide.clone(),
            show,
            overlays,
            tmp: Some(dirs.join("tmp")),
            run_dir: run.path.clone(),
        }
    }

    /// Removes the fence of `worktree` with everything its agents wrote there.
    pub fn remove(&self, worktree: &Path) {
        remove_all(&worktree::fence_dir_of(worktree));
    }
}

/// A run directory for a launch outside any fence, under `<worktree base>/.runs`.
pub fn loose_run_dir(worktree_base: &Path) -> std::io::Result<RunDir> {
    let path = worktree_base
        .join(".runs")
        .join(format!("run-{}", uuid::Uuid::now_v7()));
    make_private_dir(&path)?;
    Ok(RunDir {
        status_file: path.join(STATUS_FILE),
        path,
    })
}

fn make_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn urls_lose_their_credentials_and_credential_lines_go() {
        let config = "[remote \"origin\"]\n\turl = https://bot:ghp_s3cret@github.com/acme/app.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[http]\n\textraHeader = Authorization: Bearer s3cret\n[credential]\n\thelper = store\n";
        let clean = without_credentials(config);
        assert!(!clean.contains("s3cret"), "{clean}");
        assert!(
            clean.contains("url = https://github.com/acme/app.git"),
            "{clean}"
        );
        assert!(clean.contains("fetch = +refs/heads/*"), "{clean}");
        assert_eq!(without_credentials("/srv/repos/app\n"), "/srv/repos/app\n");
        assert_eq!(
            without_credentials("ssh://git@host:22/app.git\n"),
            "ssh://git@host:22/app.git\n",
            "an ssh user is not a credential"
        );
        assert_eq!(
            without_credentials("url = https://x-token@host/app\n"),
            "url = https://host/app\n"
        );
    }
}
