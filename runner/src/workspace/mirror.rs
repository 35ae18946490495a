//! One bare mirror per repository in the runner's cache, fetched under a per-repository
//! lock so that concurrent tasks on one repository never corrupt it.
//!
//! The mirror keeps the remote's branches under `refs/remotes/origin/*`, so a pruning fetch
//! never touches the `kiln/*` branches that task worktrees have checked out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use super::git::{self, GitError};
use super::spares::Spares;

/// File inside a mirror that records which repository it mirrors.
const ORIGIN_FILE: &str = "kiln-origin";

/// File whose mtime records when a mirror was last used, for LRU eviction.
const LAST_USED_FILE: &str = "kiln-last-used";

/// What a fetch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The mirror did not exist and was made.
    Created,
    /// The mirror existed and was brought up to date.
    Updated,
}

fn touch(mirror: &Path) {
    if mirror.exists() {
        let _ = std::fs::write(mirror.join(LAST_USED_FILE), b"");
    }
}

/// The runner's mirror cache.
#[derive(Debug)]
pub struct Mirrors {
    root: PathBuf,
    /// A fetch over HTTP that moves no bytes for this long fails.
    stall_after: Duration,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// A mirror, locked for the holder's exclusive use.
#[derive(Debug)]
pub struct LockedMirror {
    /// The bare repository.
    pub path: PathBuf,
    _guard: OwnedMutexGuard<()>,
}

impl Mirrors {
    /// A cache rooted at `cache_dir/mirrors` whose HTTP fetches fail once they move no
    /// bytes for `stall_after`.
    pub fn new(cache_dir: &Path, stall_after: Duration) -> Self {
        Self {
            root: cache_dir.join("mirrors"),
            stall_after,
            locks: Mutex::default(),
        }
    }

    /// Where `repo`'s mirror lives: readable slug plus a stable hash of the full string.
    pub fn path_for(&self, repo: &str) -> PathBuf {
        let slug: String = repo
            .rsplit(['/', ':'])
            .find(|part| !part.is_empty())
            .unwrap_or("repo")
            .trim_end_matches(".git")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.root
            .join(format!("{slug}-{:016x}.git", fnv1a(repo.as_bytes())))
    }

    /// Locks `repo`'s mirror, waiting for any other task using it.
    pub async fn lock(&self, repo: &str) -> LockedMirror {
        let path = self.path_for(repo);
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(path.clone()).or_default())
        };
        LockedMirror {
            _guard: lock.lock_owned().await,
            path,
        }
    }

    /// Creates or updates the locked mirror of `repo` from its remote.
    pub async fn fetch(&self, mirror: &LockedMirror, repo: &str) -> Result<Fetched, GitError> {
        touch(&mirror.path);
        if mirror.path.join("HEAD").exists() {
            update(&mirror.path, self.stall_after).await?;
            return Ok(Fetched::Updated);
        }
        // Build the mirror in a temp dir and rename it into place: a failed first fetch
        // never leaves a half-made mirror behind.
        std::fs::create_dir_all(&self.root).map_err(|e| io_error("create mirror dir", e))?;
        let temp = tempfile::Builder::new()
            .prefix(".new-mirror-")
            .tempdir_in(&self.root)
            .map_err(|e| io_error("create temp mirror", e))?;
        git::run(temp.path(), &["init", "--bare", "--quiet"]).await?;
        git::run(temp.path(), &["remote", "add", "origin", repo]).await?;
        std::fs::write(temp.path().join(ORIGIN_FILE), repo)
            .map_err(|e| io_error("write origin", e))?;
        update(temp.path(), self.stall_after).await?;
        let _ = std::fs::remove_dir_all(&mirror.path);
        std::fs::rename(temp.keep(), &mirror.path)
            .map_err(|e| io_error("move mirror into place", e))?;
        touch(&mirror.path);
        Ok(Fetched::Created)
    }

    /// Removes the least recently used mirrors that no task is using until the cache is at
    /// most `max_bytes`. Returns the repositories evicted.
    pub async fn evict_over(&self, max_bytes: u64, spares: &Spares) -> Vec<String> {
        let root = self.root.clone();
        let mut mirrors = tokio::task::spawn_blocking(move || cached_mirrors(&root))
            .await
            .unwrap_or_default();
        let mut total: u64 = mirrors.iter().map(|m| m.bytes).sum();
        mirrors.sort_by_key(|m| m.last_used);
        let mut evicted = Vec::new();
        for mirror in mirrors {
            if total <= max_bytes {
                break;
            }
            let lock = {
                let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
                Arc::clone(locks.entry(mirror.path.clone()).or_default())
            };
            // In use by a fetch or checkout right now, or holding a task's worktree: keep.
            let Ok(guard) = lock.try_lock_owned() else {
                continue;
            };
            let locked = LockedMirror {
                path: mirror.path.clone(),
                _guard: guard,
            };
            spares.discard_for(&locked).await;
            // Metadata of worktrees deleted by hand (or by a crash) must not pin the mirror.
            let _ = git::run(&mirror.path, &["worktree", "prune"]).await;
            if has_worktrees(&mirror.path) {
                continue;
            }
            let doomed = self
                .root
                .join(format!(".evicting-{}", uuid::Uuid::now_v7()));
            if std::fs::rename(&mirror.path, &doomed).is_err() {
                continue;
            }
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(doomed)).await;
            total = total.saturating_sub(mirror.bytes);
            tracing::info!(repo = %mirror.origin, bytes = mirror.bytes, "evicted mirror from the cache");
            evicted.push(mirror.origin);
        }
        evicted
    }

    /// Repositories with a mirror in the cache, for affinity.
    pub fn cached_projects(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut projects: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_to_string(entry.path().join(ORIGIN_FILE)).ok())
            .collect();
        projects.sort();
        projects
    }
}

/// A mirror on disk, for eviction.
#[derive(Debug)]
struct CachedMirror {
    path: PathBuf,
    origin: String,
    bytes: u64,
    last_used: std::time::SystemTime,
}

fn cached_mirrors(root: &Path) -> Vec<CachedMirror> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let origin = std::fs::read_to_string(path.join(ORIGIN_FILE)).ok()?;
            let last_used = std::fs::metadata(path.join(LAST_USED_FILE))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            Some(CachedMirror {
                bytes: dir_size(&path),
                path,
                origin,
                last_used,
            })
        })
        .collect()
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// A mirror whose `worktrees/` is not empty has a task's worktree checked out.
fn has_worktrees(mirror: &Path) -> bool {
    std::fs::read_dir(mirror.join("worktrees")).is_ok_and(|mut d| d.next().is_some())
}

/// Fewer bytes a second than this, for the stall time, is a stalled fetch.
const STALLED_BYTES_PER_SECOND: u32 = 1;

async fn update(mirror: &Path, stall_after: Duration) -> Result<(), GitError> {
    let limit = format!("http.lowSpeedLimit={STALLED_BYTES_PER_SECOND}");
    let time = format!("http.lowSpeedTime={}", stall_after.as_secs().max(1));
    let fetch = [
        "-c", &limit, "-c", &time, "fetch", "--quiet", "--prune", "--tags", "origin",
    ];
    git::run(mirror, &fetch).await?;
    // An empty remote has no HEAD to point at; the base ref check reports that later.
    let _ = git::run(mirror, &["remote", "set-head", "origin", "--auto"]).await;
    Ok(())
}

fn io_error(what: &str, error: std::io::Error) -> GitError {
    GitError::io(what, error)
}

/// FNV-1a: a tiny hash that stays the same across Rust versions, so mirror paths do too.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_are_readable_distinct_and_stable() {
        let mirrors = Mirrors::new(Path::new("/cache"), Duration::from_secs(60));
        let a = mirrors.path_for("https://example.com/acme/app.git");
        let b = mirrors.path_for("/srv/other/app");
        assert!(
            a.to_string_lossy().starts_with("/cache/mirrors/app-"),
            "{}",
            a.display()
        );
        assert_ne!(a, b);
        assert_eq!(a, mirrors.path_for("https://example.com/acme/app.git"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
