//! Prompt files made ahead of work. Creating a file was the slowest step left between an
//! assignment and its agent: 0.3–1.1 ms on this machine's ext4 after an idle moment, and
//! most while a journal commit runs, as the control plane's commit of the accept does at
//! that very moment. So the next attempt's file exists, empty and private, before the
//! attempt is assigned, and the attempt only writes into it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::atomic_file::SECRET_MODE;

/// Names of prompt files start with this; the rest is unique.
const PREFIX: &str = ".prompt-";

/// Where prompt files are made, and the one ready for the next attempt (kept open: it is
/// written through this descriptor, never reopened by its name).
#[derive(Debug)]
pub struct PromptFiles {
    dir: PathBuf,
    ready: Mutex<Option<(PathBuf, File)>>,
}

impl PromptFiles {
    /// Prompt files in `dir`. Those a previous run of the runner left behind are removed.
    pub fn new(dir: &Path) -> Self {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Self {
            dir: dir.to_owned(),
            ready: Mutex::default(),
        }
    }

    /// Makes the next attempt's file unless one is ready. A failure is only logged: the
    /// attempt then makes its own, and reports the error if that fails too.
    pub fn prepare(&self) {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if ready.is_some() {
            return;
        }
        match self.create() {
            Ok(made) => *ready = Some(made),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot make a prompt file ahead of work");
            }
        }
    }

    /// A file holding `prompt`, readable by this user only: the one made ahead if its name
    /// still leads to it untouched, else a new one. The caller removes it when the attempt
    /// is over.
    pub fn write(&self, prompt: &[u8]) -> io::Result<PathBuf> {
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (path, mut file) = match ready.filter(|(path, file)| untouched(path, file)) {
            Some(made_ahead) => made_ahead,
            None => self.create()?,
        };
        if let Err(error) = file.write_all(prompt) {
            let _ = fs::remove_file(&path);
            return Err(error);
        }
        Ok(path)
    }

    /// Creates a new, empty file with a unique name (never through a link), mode 0600
    /// whatever the umask.
    fn create(&self) -> io::Result<(PathBuf, File)> {
        fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{PREFIX}{}", uuid::Uuid::now_v7()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SECRET_MODE)
            .open(&path)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(SECRET_MODE))?;
        Ok((path, file))
    }
}

/// True when `path` still names `file`, which is empty and has no other name: nothing
/// was written into it, and it was not swapped for another file or linked elsewhere in
/// the meantime (the directory is shared with the agents' worktrees).
fn untouched(path: &Path, file: &File) -> bool {
    let (Ok(named), Ok(open)) = (fs::symlink_metadata(path), file.metadata()) else {
        return false;
    };
    named.dev() == open.dev() && named.ino() == open.ino() && open.len() == 0 && open.nlink() == 1
}

#[cfg(test)]
mod tests;
