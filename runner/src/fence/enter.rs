//! Entering a fence, in the shim: new user, mount, IPC and PID namespaces, every existing
//! mount made read-only and a private `/dev/shm`, while it waits (the shim's next child is
//! pid 1 of the new PID namespace, `init.rs`); then, per launch, the plan's covers, shows
//! and overlays and a private `/tmp`.

use std::collections::HashMap;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{statvfs, FsFlags};

use super::ids;
use super::plan::{FencePlan, Mount, Overlay, Shown};

/// Mount points left as they are when everything else is made read-only: the kernel's
/// views (a fresh `/proc` replaces the old one; `/dev` holds the terminals and
/// `/dev/null`, which stay writable on a read-only mount anyway).
const KEPT_WRITABLE: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Options of the tmpfs that covers a hidden directory: empty, tiny, read-only once the
/// shown paths inside it have their mount points.
const COVER_OPTIONS: &str = "mode=0755,size=64k";

fn step(what: &str, path: &Path) -> impl FnOnce(nix::Error) -> String {
    let (what, path) = (what.to_owned(), path.display().to_string());
    move |e| format!("{what} {path}: {}", e.desc())
}

/// The real objects the plan refers to, opened before anything covers them.
struct Sources(HashMap<PathBuf, OwnedFd>);

impl Sources {
    fn open(plan: &FencePlan) -> Result<Self, String> {
        let mut wanted: Vec<&Path> = Vec::new();
        wanted.extend(plan.show.iter().map(|s| s.path.as_path()));
        for overlay in &plan.overlays {
            wanted.extend([
                overlay.path.as_path(),
                overlay.upper.as_path(),
                overlay.work.as_path(),
            ]);
        }
        wanted.extend(plan.tmp.as_deref());
        let mut fds = HashMap::new();
        for path in wanted {
            match nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()) {
                Ok(fd) => {
                    fds.insert(path.to_path_buf(), fd);
                }
                // A shared path that is not there has nothing to show.
                Err(nix::errno::Errno::ENOENT) if plan.show.iter().any(|s| s.path == path) => {}
                Err(e) => return Err(step("cannot open", path)(e)),
            }
        }
        Ok(Self(fds))
    }

    /// `/proc/self/fd/N` for `path`'s descriptor: mounts name what it was before covers.
    fn magic(&self, path: &Path) -> Result<String, String> {
        self.0
            .get(path)
            .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .ok_or_else(|| format!("{} was not opened", path.display()))
    }
}

/// Enters the namespaces ahead of any launch: new user, mount, IPC and PID namespaces, every
/// existing mount read-only but `fences` (where the fences' private directories live, bound
/// writable onto itself: an overlay's upper layer must be writable), and a private
/// `/dev/shm`. The shim is single-threaded here (a multi-threaded process cannot enter a
/// new user namespace). Returns the uid and gid the shim had.
pub fn enter_ahead(fences: &Path) -> Result<(u32, u32), String> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWPID,
    )
    .map_err(|e| format!("cannot create namespaces: {}", e.desc()))?;
    // Root inside, so that the init it starts keeps the capabilities to mount /proc.
    ids::map_self(0, uid.as_raw(), 0, gid.as_raw())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(step("cannot make private", Path::new("/")))?;
    std::fs::create_dir_all(fences)
        .map_err(|e| format!("cannot make {}: {e}", fences.display()))?;
    // Mount points are listed resolved: the one kept writable must be named the same way.
    let fences = &std::fs::canonicalize(fences)
        .map_err(|e| format!("cannot resolve {}: {e}", fences.display()))?;
    mount(
        Some(fences),
        fences,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step("cannot bind", fences))?;
    read_only_everything(&[fences.to_path_buf()])?;
    if Path::new("/dev/shm").is_dir() {
        mount(
            Some("tmpfs"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        )
        .map_err(step("cannot mount a private", Path::new("/dev/shm")))?;
    }
    Ok((uid.as_raw(), gid.as_raw()))
}

/// Makes one launch's mounts, once its plan is known: covers, shows, overlays and the
/// private `/tmp`, then the covers made read-only.
pub fn mount_plan(plan: &FencePlan) -> Result<(), String> {
    // Opened in this mount namespace (a bind or an overlay takes its source only from the
    // caller's own), before anything covers them.
    let sources = Sources::open(plan)?;
    let mut covers = Vec::new();
    for planned in plan.mounts() {
        match planned {
            Mount::Hide(path) => {
                if hide(&path)? {
                    covers.push(path);
                }
            }
            Mount::Show(shown) => show(&shown, &sources)?,
            Mount::Overlay(overlay) => overlay_on(&overlay, &sources)?,
            Mount::Private { source, target } => {
                if target.is_dir() {
                    bind(&sources.magic(&source)?, &target, true)?;
                }
            }
        }
    }
    for cover in covers {
        remount_read_only(&cover)?;
    }
    Ok(())
}

/// Every mount point in this namespace, from `/proc/self/mountinfo`.
fn mount_points() -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .map(PathBuf::from)
        .collect())
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("0");
            out.push(u8::from_str_radix(octal, 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes every mount read-only but the kernel's views and the fence's own (`made`), so the
/// agent writes only where the plan lets it (not the runner's other files, nor the system
/// when the runner is root).
fn read_only_everything(made: &[PathBuf]) -> Result<(), String> {
    for point in mount_points()? {
        if KEPT_WRITABLE.iter().any(|kept| point.starts_with(kept)) || made.contains(&point) {
            continue;
        }
        // A mount point another mount hides, or one that vanished: nothing to see there.
        let _ = remount_read_only(&point);
    }
    Ok(())
}

/// The flags a remount must keep: in a user namespace, those the mount came with are
/// locked, and a remount that drops one is refused.
fn kept_flags(path: &Path) -> MsFlags {
    let Ok(stats) = statvfs(path) else {
        return MsFlags::empty();
    };
    let flags = stats.flags();
    let mut kept = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(fs) {
            kept |= ms;
        }
    }
    kept
}

fn remount_read_only(path: &Path) -> Result<(), String> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | kept_flags(path);
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(step("cannot make read-only", path))
}

/// Covers `path`; false if there is nothing there to cover.
fn hide(path: &Path) -> Result<bool, String> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(COVER_OPTIONS),
        )
        .map_err(step("cannot hide", path))?;
        return Ok(true);
    }
    if meta.file_type().is_symlink() {
        // A link leads elsewhere; what it leads to is hidden or not on its own account.
        return Ok(false);
    }
    bind("/dev/null", path, false)?;
    Ok(false)
}

/// Makes the mount point for a shown `path` inside a cover: a directory, or an empty file.
fn make_mount_point(path: &Path, is_dir: bool) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let made = match (is_dir, path.parent()) {
        (true, _) => std::fs::create_dir_all(path),
        (false, Some(parent)) => {
            std::fs::create_dir_all(parent).and_then(|()| std::fs::write(path, b""))
        }
        (false, None) => Ok(()),
    };
    made.map_err(|e| format!("cannot make the mount point {}: {e}", path.display()))
}

fn show(shown: &Shown, sources: &Sources) -> Result<(), String> {
    if !sources.0.contains_key(&shown.path) {
        return Ok(());
    }
    let source = sources.magic(&shown.path)?;
    let is_dir = std::fs::metadata(&source)
        .map(|m| m.is_dir())
        .unwrap_or(true);
    make_mount_point(&shown.path, is_dir)?;
    bind(&source, &shown.path, shown.writable)
}

fn bind(source: &str, target: &Path, writable: bool) -> Result<(), String> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step("cannot show", target))?;
    if writable {
        // What is shown writable is writable even where its file system was made
        // read-only above.
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | kept_flags(target);
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .map_err(step("cannot make writable", target))
    } else {
        remount_read_only(target)
    }
}

fn overlay_on(overlay: &Overlay, sources: &Sources) -> Result<(), String> {
    make_mount_point(&overlay.path, true)?;
    let options = format!(
        "userxattr,lowerdir={},upperdir={},workdir={}",
        sources.magic(&overlay.path)?,
        sources.magic(&overlay.upper)?,
        sources.magic(&overlay.work)?
    );
    mount(
        Some("overlay"),
        &overlay.path,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(step("cannot mount an overlay on", &overlay.path))
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
