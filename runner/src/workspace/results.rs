//! The runner's results repositories: one bare repository per mirror under
//! `<cache>/results`, borrowing the mirror's objects, into which each attempt's bundle is
//! fetched. The runner reads a result (its commits, diffstat and patch) and pushes it from
//! here, never from the worktree, whose git metadata the agent controlled. Results are
//! kept out of the mirror, which every later agent of the repository can read.

use std::path::{Path, PathBuf};

use super::git::{self, GitError};

/// The results repositories.
#[derive(Debug)]
pub struct Results {
    root: PathBuf,
}

impl Results {
    /// Results repositories under `cache_dir/results`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            root: cache_dir.join("results"),
        }
    }

    /// Fetches `branch` from `bundle` into the results repository of `mirror` as `name`;
    /// returns the repository.
    pub async fn import(
        &self,
        mirror: &Path,
        bundle: &Path,
        branch: &str,
        name: &str,
    ) -> Result<PathBuf, GitError> {
        let repo = self.repository_of(mirror).await?;
        let refspec = format!("+refs/heads/{branch}:refs/kiln/{name}");
        let bundle_text = bundle.to_string_lossy();
        git::run(
            &repo,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                &bundle_text,
                &refspec,
            ],
        )
        .await?;
        Ok(repo)
    }

    /// Forgets an imported result once it is uploaded and pushed (a later gc drops it).
    pub async fn forget(&self, repo: &Path, name: &str) {
        let _ = git::run(repo, &["update-ref", "-d", &format!("refs/kiln/{name}")]).await;
    }

    /// The results repository of `mirror`, made if missing: bare, with the mirror's
    /// objects as an alternate so a bundle needs only the attempt's own commits.
    async fn repository_of(&self, mirror: &Path) -> Result<PathBuf, GitError> {
        let name = mirror.file_name().unwrap_or_default();
        let repo = self.root.join(name);
        if repo.join("HEAD").exists() {
            return Ok(repo);
        }
        std::fs::create_dir_all(&self.root).map_err(|e| GitError::io("create results dir", e))?;
        let temp = tempfile::Builder::new()
            .prefix(".new-results-")
            .tempdir_in(&self.root)
            .map_err(|e| GitError::io("create results repository", e))?;
        git::run(temp.path(), &["init", "--bare", "--quiet"]).await?;
        let alternates = format!("{}\n", mirror.join("objects").display());
        std::fs::write(temp.path().join("objects/info/alternates"), alternates)
            .map_err(|e| GitError::io("write alternates", e))?;
        // Another attempt may have made it meanwhile: either one will do.
        if std::fs::rename(temp.keep(), &repo).is_err() && !repo.join("HEAD").exists() {
            return Err(GitError::io(
                "move results repository into place",
                std::io::Error::other(repo.display().to_string()),
            ));
        }
        Ok(repo)
    }
}
