//! Saving an attempt's result: commit what the agent left, summarise, upload the bundle
//! and the diff, and push the branch when asked.

use std::path::Path;

use kiln_protocol::{Phase, TaskResult};

use super::{blocking, outcome, Attempt};
use crate::workspace::result;

impl Attempt {
    /// Commits leftovers, summarises, and uploads bundle and diff when there are commits.
    pub(super) async fn save_result(
        &self,
        path: &Path,
        base: &str,
        bundle_base: &str,
    ) -> Result<TaskResult, String> {
        let message = outcome::commit_message(&self.spec, self.number, None);
        let (worktree, branch, base_commit) =
            (path.to_owned(), self.spec.branch.clone(), base.to_owned());
        let limit = self.shared.max_commit_file_bytes;
        let (summary, skipped) = blocking(move || {
            let (_, skipped) =
                result::commit_leftovers(&worktree, &message, limit).map_err(|e| e.to_string())?;
            let summary =
                result::summarize(&worktree, &branch, &base_commit).map_err(|e| e.to_string())?;
            Ok((summary, skipped))
        })
        .await?;
        if !skipped.is_empty() {
            self.say(format!(
                "not committed (over {limit} bytes): {}",
                skipped.join(", ")
            ));
        }
        let mut saved = TaskResult {
            branch: self.spec.branch.clone(),
            base_commit: base.to_owned(),
            head_commit: summary.head.clone(),
            commits: summary.commits,
            diffstat: summary.diffstat,
            bundle_uploaded: false,
            pushed: false,
            skipped_files: skipped,
        };
        if saved.commits.is_empty() {
            self.say("the agent changed nothing");
            return Ok(saved);
        }
        self.phase(Phase::Uploading);
        let bundle = self.bundle(path, bundle_base).await?;
        let (worktree, head, base_commit) = (path.to_owned(), summary.head, base.to_owned());
        let diff = blocking(move || {
            result::patch(&worktree, &base_commit, &head).map_err(|e| e.to_string())
        })
        .await?;
        let uploader = &self.shared.uploader;
        let abort = &self.shared.abort;
        uploader
            .put(self.spec.task_id, self.number, "bundle", bundle, abort)
            .await?;
        uploader
            .put(self.spec.task_id, self.number, "diff", diff, abort)
            .await?;
        saved.bundle_uploaded = true;
        self.say(format!(
            "uploaded {} commit(s) on {}",
            saved.commits.len(),
            saved.branch
        ));
        if self.spec.push {
            let refspec = format!("+refs/heads/{0}:refs/heads/{0}", self.spec.branch);
            crate::workspace::git(path, &["push", "--quiet", "origin", &refspec])
                .await
                .map_err(|e| format!("push of {} failed: {e}", self.spec.branch))?;
            saved.pushed = true;
            self.say(format!("pushed {} to the repository", self.spec.branch));
        }
        Ok(saved)
    }

    async fn bundle(&self, path: &Path, base: &str) -> Result<Vec<u8>, String> {
        let file =
            tempfile::NamedTempFile::new().map_err(|e| format!("cannot make bundle file: {e}"))?;
        let file_path = file.path().to_string_lossy().into_owned();
        let branch_ref = format!("refs/heads/{}", self.spec.branch);
        let exclude = format!("^{base}");
        crate::workspace::git(
            path,
            &[
                "bundle",
                "create",
                "--quiet",
                &file_path,
                &branch_ref,
                &exclude,
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
        std::fs::read(file.path()).map_err(|e| format!("cannot read bundle: {e}"))
    }
}
