//! Spare worktrees: one checkout per recently used mirror, made while the runner waits, so
//! that a task's fresh worktree is a rename and a branch switch instead of writing every
//! file of the repository on the task's critical path (GitLab Runner and Buildkite reuse
//! build directories for the same reason).
//!
//! A spare is a detached worktree of its mirror under `<worktree base>/.spares`, made by
//! `git worktree add` outside the mirror's lock (git locks a worktree while it is being
//! made, so a concurrent `worktree prune` leaves it alone). Spares are never reused across
//! runner restarts: a crash may leave one half-written, so [`Spares::new`] moves any found
//! aside and deletes them in the background.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::git;
use super::mirror::LockedMirror;

/// The directory under the worktree base that holds spares.
const SPARES_DIR: &str = ".spares";

/// Prefix of a spares directory left by an earlier run, being deleted.
const STALE_PREFIX: &str = ".spares-stale-";

/// Spare worktrees kept at most when the configuration says nothing: two repositories'
/// worth of checkouts on disk is cheap next to the mirrors, and covers a runner that
/// alternates between two repositories.
pub const DEFAULT_SPARE_WORKTREES: u32 = 2;

/// How far into the next second a spare's index is refreshed: git compares file and index
/// times in whole seconds unless built with nanosecond support, so a file is only known
/// clean once the index is written in a later second. File times come from the kernel's
/// coarse clock, which lags by up to a tick (at most 10 ms): 20 ms clears it.
const RACY_MARGIN: Duration = Duration::from_millis(20);

/// Most spare worktrees a runner may be configured to keep.
pub const MAX_SPARE_WORKTREES: u32 = 64;

/// One mirror's spare.
#[derive(Debug)]
enum Slot {
    /// Being checked out; its sender is dropped once the slot is settled.
    Making(watch::Receiver<()>),
    /// Checked out at a commit, detached, and never handed out.
    Ready {
        /// The worktree.
        path: PathBuf,
        /// The repository it is a checkout of.
        repo: String,
    },
}

/// The runner's spare worktrees, at most one per mirror.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    limit: usize,
    /// Keyed by mirror path; the order of `recent` is least recently used first.
    slots: Mutex<HashMap<PathBuf, Slot>>,
    recent: Mutex<Vec<PathBuf>>,
}

impl Spares {
    /// Spares under `worktree_base`, at most `limit` of them (0 keeps none). Spares left by
    /// an earlier run are moved aside now and deleted in the background.
    pub fn new(worktree_base: &Path, limit: u32) -> Arc<Self> {
        let dir = worktree_base.join(SPARES_DIR);
        clear_leftovers(worktree_base, &dir);
        Arc::new(Self {
            dir,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            slots: Mutex::default(),
            recent: Mutex::default(),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The repositories with a spare ready to hand out, sorted.
    pub fn ready(&self) -> Vec<String> {
        let mut repos: Vec<String> = self
            .slots()
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready { repo, .. } => Some(repo.clone()),
                Slot::Making(_) => None,
            })
            .collect();
        repos.sort();
        repos
    }

    /// Hands out the locked mirror's spare, waiting for it if it is being made. The caller
    /// owns the returned worktree.
    pub async fn take(&self, mirror: &LockedMirror) -> Option<PathBuf> {
        loop {
            let mut making = {
                let mut slots = self.slots();
                match slots.remove(&mirror.path)? {
                    Slot::Ready { path, .. } => return Some(path),
                    Slot::Making(done) => {
                        slots.insert(mirror.path.clone(), Slot::Making(done.clone()));
                        done
                    }
                }
            };
            // Err: the maker settled the slot and dropped its sender; look again.
            let _ = making.changed().await;
        }
    }

    /// Starts making a spare of `repo` from its `mirror` at `commit` in the background,
    /// unless the mirror has one or spares are off. Makes room by deleting the least
    /// recently used spare.
    pub fn replenish(self: &Arc<Self>, mirror: &Path, repo: &str, commit: &str) {
        if self.limit == 0 {
            return;
        }
        self.used(mirror);
        let (settled, done) = watch::channel(());
        let evicted = {
            let mut slots = self.slots();
            if slots.contains_key(mirror) {
                return;
            }
            let evicted = if slots.len() >= self.limit {
                let Some((victim, path)) = self.least_recent_ready(&slots) else {
                    return; // every slot is being made: no room now
                };
                slots.remove(&victim);
                Some((victim, path))
            } else {
                None
            };
            slots.insert(mirror.to_owned(), Slot::Making(done));
            evicted
        };
        if let Some((victim, path)) = evicted {
            tokio::spawn(async move { discard(&victim, path).await });
        }
        let settle = Settle {
            spares: Arc::clone(self),
            mirror: mirror.to_owned(),
            _settled: settled,
        };
        let (repo, commit) = (repo.to_owned(), commit.to_owned());
        tokio::spawn(async move {
            match settle.spares.make(&settle.mirror, &commit).await {
                Ok(path) => {
                    let ready = Slot::Ready { path, repo };
                    settle.spares.slots().insert(settle.mirror.clone(), ready);
                }
                Err(error) => {
                    tracing::warn!(mirror = %settle.mirror.display(), %error, "cannot make a spare worktree");
                }
            }
        });
    }

    /// Deletes the locked mirror's spare, waiting for it if it is being made (before the
    /// mirror is evicted).
    pub async fn discard_for(&self, mirror: &LockedMirror) {
        if let Some(path) = self.take(mirror).await {
            discard(&mirror.path, path).await;
        }
    }

    fn used(&self, mirror: &Path) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|m| m != mirror);
        recent.push(mirror.to_owned());
    }

    fn least_recent_ready(&self, slots: &HashMap<PathBuf, Slot>) -> Option<(PathBuf, PathBuf)> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut candidates: Vec<(&PathBuf, &PathBuf)> = slots
            .iter()
            .filter_map(|(mirror, slot)| match slot {
                Slot::Ready { path, .. } => Some((mirror, path)),
                Slot::Making(_) => None,
            })
            .collect();
        candidates.sort_by_key(|(mirror, _)| recent.iter().position(|m| m == *mirror));
        candidates
            .first()
            .map(|(mirror, path)| ((*mirror).clone(), (*path).clone()))
    }

    async fn make(&self, mirror: &Path, commit: &str) -> Result<PathBuf, git::GitError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| git::GitError::io("create spares dir", e))?;
        let path = self.dir.join(uuid::Uuid::now_v7().to_string());
        let path_text = path.to_string_lossy();
        let added = git::run(
            mirror,
            &[
                "worktree", "add", "--quiet", "--detach", "--", &path_text, commit,
            ],
        )
        .await;
        if let Err(error) = added {
            let _ = std::fs::remove_dir_all(&path);
            return Err(error);
        }
        // Files written in the same second as the index are "racily clean": git would re-read
        // every one of them in the task's checkout. An index written in a later second
        // settles them, off the critical path.
        tokio::time::sleep(until_the_next_second()).await;
        if let Err(error) = git::run(&path, &["update-index", "-q", "--refresh"]).await {
            discard(mirror, path).await;
            return Err(error);
        }
        Ok(path)
    }
}

/// Settles a mirror's slot when its maker ends, however it ends (a panic included): a slot
/// still marked as being made is cleared, and dropping the sender wakes whoever waits.
struct Settle {
    spares: Arc<Spares>,
    mirror: PathBuf,
    _settled: watch::Sender<()>,
}

impl Drop for Settle {
    fn drop(&mut self) {
        let mut slots = self.spares.slots();
        if matches!(slots.get(&self.mirror), Some(Slot::Making(_))) {
            slots.remove(&self.mirror);
        }
    }
}

/// How long until the wall clock is safely into the next whole second.
fn until_the_next_second() -> Duration {
    let into_this_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_nanos(u64::from(1_000_000_000 - into_this_second)) + RACY_MARGIN
}

/// Deletes a spare and its git metadata. A failure leaves metadata for the next prune.
async fn discard(mirror: &Path, path: PathBuf) {
    let path_text = path.to_string_lossy().into_owned();
    if git::run(mirror, &["worktree", "remove", "--force", "--", &path_text])
        .await
        .is_err()
    {
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
    }
}

/// Moves spares (and stale directories) of an earlier run aside and deletes them on a
/// background thread; their mirrors' metadata goes with the next `git worktree prune`.
fn clear_leftovers(worktree_base: &Path, dir: &Path) {
    if dir.exists() {
        let stale = worktree_base.join(format!("{STALE_PREFIX}{}", uuid::Uuid::now_v7()));
        if let Err(error) = std::fs::rename(dir, &stale) {
            tracing::warn!(dir = %dir.display(), %error, "cannot move old spare worktrees aside");
        }
    }
    let Ok(entries) = std::fs::read_dir(worktree_base) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(STALE_PREFIX)
        })
        .map(|entry| entry.path())
        .collect();
    if !stale.is_empty() {
        std::thread::spawn(move || {
            for path in stale {
                let _ = std::fs::remove_dir_all(path);
            }
        });
    }
}
