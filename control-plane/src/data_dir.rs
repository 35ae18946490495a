//! The control plane's data directory: the SQLite database, the admin token file for the
//! local operator, the address file the CLI reads, and a lock so that only one control
//! plane uses the directory at a time.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kiln_runner::atomic_file::{self, PUBLIC_MODE, SECRET_MODE};
use nix::fcntl::{Flock, FlockArg};

/// A control plane's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir(PathBuf);

/// Holds the data dir's lock for as long as it lives.
#[derive(Debug)]
pub struct DataDirLock {
    _lock: Flock<File>,
}

impl DataDir {
    /// Uses `path`, made absolute (`kiln dev`'s runner hides it from agents by path).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(kiln_runner::config::absolute(path.into()))
    }

    /// `$XDG_DATA_HOME/kiln` or `~/.local/share/kiln` (`$KILN_DATA_DIR` is read by the CLI).
    pub fn default_path() -> PathBuf {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        std::env::var_os("XDG_DATA_HOME")
            .map_or_else(|| home.join(".local/share"), PathBuf::from)
            .join("kiln")
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.0.join("kiln.db")
    }

    /// The admin token for the local operator, mode 0600.
    pub fn admin_token_file(&self) -> PathBuf {
        self.0.join("admin.token")
    }

    /// The URL the running control plane listens on.
    pub fn server_url_file(&self) -> PathBuf {
        self.0.join("server.url")
    }

    /// Creates the directory (mode 0700) and takes its lock, failing if another control
    /// plane holds it.
    pub fn lock(&self) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(&self.0)
            .with_context(|| format!("cannot create data dir {}", self.0.display()))?;
        let _ =
            std::fs::set_permissions(&self.0, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let path = self.0.join("kiln.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            anyhow::anyhow!(
                "data dir {} is in use by another kiln control plane ({errno})",
                self.0.display()
            )
        })?;
        Ok(DataDirLock { _lock: lock })
    }

    /// Saves the admin token for the local operator (0600, atomic).
    pub fn write_admin_token(&self, token: &str) -> anyhow::Result<()> {
        let path = self.admin_token_file();
        atomic_file::write(&path, format!("{token}\n").as_bytes(), SECRET_MODE)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Records where the control plane listens, for the CLI.
    pub fn write_server_url(&self, url: &str) -> anyhow::Result<()> {
        let path = self.server_url_file();
        atomic_file::write(&path, format!("{url}\n").as_bytes(), PUBLIC_MODE)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// A random id for this control plane, made once and kept: it labels the sandboxes it
    /// owns, so that control planes sharing a Docker engine leave each other's alone.
    pub fn instance_id(&self) -> anyhow::Result<String> {
        let path = self.0.join("instance.id");
        if let Some(id) = read_trimmed(&path) {
            return Ok(id);
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        atomic_file::write(&path, format!("{id}\n").as_bytes(), PUBLIC_MODE)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(id)
    }

    /// The admin token saved for the local operator, if readable.
    pub fn read_admin_token(&self) -> Option<String> {
        read_trimmed(&self.admin_token_file())
    }

    /// The URL a control plane using this dir last listened on.
    pub fn read_server_url(&self) -> Option<String> {
        read_trimmed(&self.server_url_file())
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
