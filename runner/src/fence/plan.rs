//! What an agent's fence hides and shows, as plain data the runner sends the shim, and the
//! order in which the shim mounts it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the agent sees of the machine: everything, read-only, except what is hidden, shown
/// back, seen through an overlay, or private.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencePlan {
    /// Covered, so the agent finds nothing there: a directory by an empty read-only tmpfs,
    /// a file (a socket, a credentials file) by `/dev/null`. Paths that do not exist are
    /// skipped.
    pub hide: Vec<PathBuf>,
    /// Bound back at the same path: inside what is hidden, or writable where everything
    /// else is read-only.
    pub show: Vec<Shown>,
    /// Seen through an overlay: the real directory underneath, never written; the agent's
    /// writes go to a private upper directory.
    pub overlays: Vec<Overlay>,
    /// Writable by the agent: the private directory bound over `/tmp` and `/var/tmp`.
    pub tmp: Option<PathBuf>,
    /// The launch's private directory, where the init (or the shim, if the fence could
    /// not be made) writes the agent's status (shown writable).
    pub run_dir: PathBuf,
}

/// A path shown back inside a hidden one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    /// The path, the same inside and outside.
    pub path: PathBuf,
    /// Whether the agent may write to it.
    pub writable: bool,
}

/// A directory seen through an overlay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// The directory, the same inside and outside.
    pub path: PathBuf,
    /// Where the agent's writes to it go.
    pub upper: PathBuf,
    /// The overlay's scratch directory, beside `upper` on the same file system.
    pub work: PathBuf,
}

/// One mount the shim makes, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// Cover a path.
    Hide(PathBuf),
    /// Bind a path back.
    Show(Shown),
    /// Mount an overlay on a directory.
    Overlay(Overlay),
    /// Bind a private directory over a shared one (`/tmp`): what was there is not seen.
    Private {
        /// The private directory.
        source: PathBuf,
        /// What it replaces.
        target: PathBuf,
    },
}

/// The shared scratch directories a fence replaces with its private `tmp`.
pub const SHARED_SCRATCH: [&str; 2] = ["/tmp", "/var/tmp"];

impl Mount {
    fn path(&self) -> &Path {
        match self {
            Self::Hide(path) => path,
            Self::Show(shown) => &shown.path,
            Self::Overlay(overlay) => &overlay.path,
            Self::Private { target, .. } => target,
        }
    }
}

impl FencePlan {
    /// The mounts in the order they are made: a path before the paths inside it (so that
    /// a cover never hides what is shown inside it, and an overlay is in place before what
    /// it holds is hidden); a cover inside another is dropped, and so is a read-only path
    /// shown where nothing hides it.
    pub fn mounts(&self) -> Vec<Mount> {
        let inside_hidden = |path: &Path, other: Option<&Path>| {
            self.hide
                .iter()
                .any(|h| path.starts_with(h) && Some(h.as_path()) != other)
        };
        let mut mounts: Vec<Mount> = Vec::new();
        for hidden in &self.hide {
            if !inside_hidden(hidden, Some(hidden))
                && !mounts.contains(&Mount::Hide(hidden.clone()))
            {
                mounts.push(Mount::Hide(hidden.clone()));
            }
        }
        mounts.extend(
            self.show
                .iter()
                .filter(|s| s.writable || inside_hidden(&s.path, None))
                .cloned()
                .map(Mount::Show),
        );
        mounts.extend(self.overlays.iter().cloned().map(Mount::Overlay));
        // A private /tmp goes before what is hidden or shown inside it (a worktree may live
        // under /tmp): those are mounted on top of it.
        if let Some(tmp) = &self.tmp {
            mounts.extend(SHARED_SCRATCH.iter().map(|target| Mount::Private {
                source: tmp.clone(),
                target: PathBuf::from(target),
            }));
        }
        // Stable: at one depth, covers before what is shown.
        mounts.sort_by_key(|m| m.path().components().count());
        mounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(path: &str) -> Shown {
        Shown {
            path: path.into(),
            writable: true,
        }
    }

    #[test]
    fn outer_paths_come_first_and_needless_mounts_are_dropped() {
        let plan = FencePlan {
            hide: vec![
                "/home/r/.cache/kiln".into(),
                "/home/r/.cache/kiln/spool".into(),
                "/home/r/.ssh".into(),
            ],
            show: vec![
                shown("/home/r/.cache/kiln/worktrees/t-1"),
                // Read-only and hidden by nothing: no mount needed.
                Shown {
                    path: "/srv/elsewhere".into(),
                    writable: false,
                },
            ],
            overlays: vec![
                Overlay {
                    path: "/home/r".into(),
                    upper: "/u".into(),
                    work: "/w".into(),
                },
                Overlay {
                    path: "/home/r/.cache/kiln/mirrors/app.git".into(),
                    upper: "/u2".into(),
                    work: "/w2".into(),
                },
            ],
            tmp: Some("/private".into()),
            ..FencePlan::default()
        };
        let order: Vec<String> = plan
            .mounts()
            .iter()
            .map(|m| match m {
                Mount::Hide(p) => format!("hide {}", p.display()),
                Mount::Show(s) => format!("show {}", s.path.display()),
                Mount::Overlay(o) => format!("overlay {}", o.path.display()),
                Mount::Private { target, .. } => format!("private {}", target.display()),
            })
            .collect();
        assert_eq!(
            order,
            [
                "private /tmp",
                "overlay /home/r",
                "private /var/tmp",
                "hide /home/r/.ssh",
                "hide /home/r/.cache/kiln",
                "show /home/r/.cache/kiln/worktrees/t-1",
                "overlay /home/r/.cache/kiln/mirrors/app.git",
            ]
        );
    }
}
