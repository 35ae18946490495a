//! Where the runner keeps its files by default.

use std::path::{Path, PathBuf};

/// The runner's config directory: runner.yaml and the status socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigDir(PathBuf);

impl ConfigDir {
    /// Uses `path` as the config dir (made absolute: a fence hides it by path).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(super::absolute(path.into()))
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `runner.yaml`: identity and settings, mode 0600.
    pub fn runner_yaml(&self) -> PathBuf {
        self.0.join("runner.yaml")
    }

    /// The Unix socket `kiln-runner status` asks.
    pub fn status_socket(&self) -> PathBuf {
        self.0.join("runner.sock")
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// `$KILN_CONFIG_DIR` is handled by the CLI; this is the fallback: `$XDG_CONFIG_HOME/kiln`
/// or `~/.config/kiln`.
pub fn default_config_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map_or_else(|| home().join(".config"), PathBuf::from)
        .join("kiln")
}

/// `$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`: mirrors and worktrees.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map_or_else(|| home().join(".cache"), PathBuf::from)
        .join("kiln")
}

/// This machine's hostname, the default runner name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kiln-runner".to_owned())
}
