//! Spare worktrees: one checkout per recently used mirror, made while the runner waits, so
//! that a task's fresh worktree is a rename and a branch switch instead of writing every
//! file of the repository on the task's critical path (GitLab Runner and Buildkite reuse
//! build directories for the same reason).
//!
//! A spare is a detached worktree of its mirror under `<worktree base>/.spares`. Its git
//! metadata is only ever written under the mirror's lock (`git worktree add
//! --no-checkout`), because a fetch into the mirror reads every worktree's metadata; its
//! files are checked out outside the lock. A spare is dropped by moving it aside, leaving
//! its metadata whole for the next `git worktree prune`. Spares are never reused across
//! runner restarts: a crash may leave one half-written, so [`Spares::new`] moves any found
//! aside and deletes them in the background.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::mirror::LockedMirror;
use super::{git, worktree};

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

/// The slots and their mirrors' last use, under one lock.
#[derive(Debug, Default)]
struct Table {
    /// Keyed by mirror path.
    slots: HashMap<PathBuf, Slot>,
    /// Mirrors by last use, least recent first.
    recent: Vec<PathBuf>,
}

impl Table {
    fn used(&mut self, mirror: &Path) {
        self.recent.retain(|m| m != mirror);
        self.recent.push(mirror.to_owned());
    }

    /// The ready spare of the least recently used mirror: its mirror and path.
    fn least_recent_ready(&self) -> Option<(PathBuf, PathBuf)> {
        self.recent
            .iter()
            .find_map(|mirror| match self.slots.get(mirror) {
                Some(Slot::Ready { path, .. }) => Some((mirror.clone(), path.clone())),
                _ => None,
            })
    }
}

/// The runner's spare worktrees, at most one per mirror.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    limit: usize,
    table: Mutex<Table>,
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
            table: Mutex::default(),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The repositories with a spare ready to hand out, sorted.
    pub fn ready(&self) -> Vec<String> {
        let mut repos: Vec<String> = self
            .table()
            .slots
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
                let mut table = self.table();
                match table.slots.remove(&mirror.path)? {
                    Slot::Ready { path, .. } => return Some(path),
                    Slot::Making(done) => {
                        let waiting = Slot::Making(done.clone());
                        table.slots.insert(mirror.path.clone(), waiting);
                        done
                    }
                }
            };
            // Err: the maker settled the slot and dropped its sender; look again.
            let _ = making.changed().await;
        }
    }

    /// Starts making a spare of `repo` from its locked `mirror` at `commit`, unless the
    /// mirror has one or spares are off. Makes room by setting aside the least recently
    /// used spare.
    ///
    /// The spare's git metadata is written here, under the caller's lock: a `git fetch`
    /// into the mirror reads every worktree's metadata, and failed on one half-written
    /// ("failed to read worktrees/<id>/commondir"). Only the checkout of its files, which
    /// touches nothing shared, runs in the background.
    pub async fn replenish(self: &Arc<Self>, mirror: &LockedMirror, repo: &str, commit: &str) {
        if self.limit == 0 {
            return;
        }
        let (settled, done) = watch::channel(());
        let evicted = {
            let mut table = self.table();
            table.used(&mirror.path);
            if table.slots.contains_key(&mirror.path) {
                return;
            }
            let evicted = if table.slots.len() >= self.limit {
                let Some((victim, path)) = table.least_recent_ready() else {
                    return; // every slot is being made: no room now
                };
                table.slots.remove(&victim);
                Some(path)
            } else {
                None
            };
            table.slots.insert(mirror.path.clone(), Slot::Making(done));
            evicted
        };
        if let Some(path) = evicted {
            self.set_aside(&path);
        }
        let settle = Settle {
            spares: Arc::clone(self),
            mirror: mirror.path.clone(),
            _settled: settled,
        };
        let path = match self.register(&mirror.path, commit).await {
            Ok(path) => path,
            Err(error) => {
                tracing::warn!(mirror = %mirror.path.display(), %error, "cannot make a spare worktree");
                return;
            }
        };
        let repo = repo.to_owned();
        tokio::spawn(async move {
            match settle.spares.check_out(&path).await {
                Ok(()) => {
                    let ready = Slot::Ready { path, repo };
                    let mirror = settle.mirror.clone();
                    settle.spares.table().slots.insert(mirror, ready);
                }
                Err(error) => {
                    tracing::warn!(mirror = %settle.mirror.display(), %error, "cannot make a spare worktree");
                    settle.spares.set_aside(&path);
                }
            }
        });
    }

    /// Deletes the locked mirror's spare, waiting for it if it is being made (before the
    /// mirror is evicted).
    pub async fn discard_for(&self, mirror: &LockedMirror) {
        if let Some(path) = self.take(mirror).await {
            worktree::remove(&mirror.path, &path).await;
        }
    }

    /// Adds a detached worktree of `mirror` at `commit` with no files checked out: quick,
    /// for the caller holds the mirror's lock.
    async fn register(&self, mirror: &Path, commit: &str) -> Result<PathBuf, git::GitError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| git::GitError::io("create spares dir", e))?;
        let path = self.dir.join(uuid::Uuid::now_v7().to_string());
        let path_text = path.to_string_lossy();
        let args = [
            "worktree",
            "add",
            "--quiet",
            "--no-checkout",
            "--detach",
            "--",
            &path_text,
            commit,
        ];
        if let Err(error) = git::run(mirror, &args).await {
            let _ = std::fs::remove_dir_all(&path);
            return Err(error);
        }
        Ok(path)
    }

    /// Writes the files and the index of a registered spare, outside the mirror's lock.
    async fn check_out(&self, path: &Path) -> Result<(), git::GitError> {
        git::run(path, &["reset", "--hard", "--quiet"]).await?;
        // Files written in the same second as the index are "racily clean": git would re-read
        // every one of them in the task's checkout. An index written in a later second
        // settles them, off the critical path.
        tokio::time::sleep(until_the_next_second()).await;
        git::run(path, &["update-index", "-q", "--refresh"]).await?;
        Ok(())
    }

    /// Moves a spare aside and deletes it on a background thread, without the mirror's
    /// lock: its mirror's metadata stays whole until the next `git worktree prune` (under
    /// the lock, before each checkout) finds the worktree gone.
    fn set_aside(&self, path: &Path) {
        let Some(base) = self.dir.parent() else {
            return;
        };
        let stale = base.join(format!("{STALE_PREFIX}{}", uuid::Uuid::now_v7()));
        if let Err(error) = std::fs::rename(path, &stale) {
            tracing::warn!(spare = %path.display(), %error, "cannot set a spare worktree aside");
            return;
        }
        std::thread::spawn(move || {
            let _ = std::fs::remove_dir_all(stale);
        });
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
        let mut table = self.spares.table();
        if matches!(table.slots.get(&self.mirror), Some(Slot::Making(_))) {
            table.slots.remove(&self.mirror);
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

#[cfg(test)]
mod tests;
