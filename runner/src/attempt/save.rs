//! Saving an attempt's result: the agent's leftovers committed and the branch bundled in the
//! agent's view (a git step), the bundle imported into the runner's results repository,
//! where the commits, diffstat and patch are read and from where the branch is pushed;
//! then the bundle and the diff uploaded.

use std::path::Path;

use kiln_protocol::{Phase, TaskResult};

use super::{blocking, outcome, Attempt};
use crate::workspace::result;
use crate::workspace::step::Step;

impl Attempt {
    /// Commits leftovers, summarises, and uploads bundle and diff when there are commits.
    pub(super) async fn save_result(
        &self,
        path: &Path,
        base: &str,
        bundle_base: &str,
    ) -> Result<TaskResult, String> {
        let message = outcome::commit_message(&self.spec, self.number, None);
        let limit = self.shared.max_commit_file_bytes;
        let step = Step::Save {
            message,
            max_file_bytes: limit,
            branch: self.spec.branch.clone(),
            bundle_base: bundle_base.to_owned(),
            bundle: Default::default(),
        };
        let stepped = self.step(path, step).await?;
        let (answer, bundle) = (stepped.answer, stepped.bundle);
        if !answer.skipped.is_empty() {
            self.say(format!(
                "not committed (over {limit} bytes): {}",
                answer.skipped.join(", ")
            ));
        }
        let mut saved = TaskResult {
            branch: self.spec.branch.clone(),
            base_commit: base.to_owned(),
            head_commit: answer.head.clone(),
            commits: Vec::new(),
            diffstat: Default::default(),
            bundle_uploaded: false,
            pushed: false,
            skipped_files: answer.skipped,
        };
        let Some(bundle) = bundle.filter(|_| answer.head != base) else {
            self.say("the agent changed nothing");
            return Ok(saved);
        };
        let name = format!("{}-{}", self.spec.task_id, self.number);
        let repo = self.import(&bundle, &name).await?;
        let (results, head, base_commit) = (repo.clone(), answer.head.clone(), base.to_owned());
        let (summary, diff) = blocking(move || {
            let summary =
                result::summarize(&results, &head, &base_commit).map_err(|e| e.to_string())?;
            let diff = result::patch(&results, &base_commit, &head).map_err(|e| e.to_string())?;
            Ok((summary, diff))
        })
        .await?;
        saved.commits = summary.commits;
        saved.diffstat = summary.diffstat;
        if saved.commits.is_empty() {
            self.say("the agent changed nothing");
            self.shared.results.forget(&repo, &name).await;
            return Ok(saved);
        }
        self.phase(Phase::Uploading);
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
            let refspec = format!("+{}:refs/heads/{}", answer.head, self.spec.branch);
            let pushed =
                crate::workspace::git(&repo, &["push", "--quiet", &self.spec.repo, &refspec])
                    .await
                    .map_err(|e| format!("push of {} failed: {e}", self.spec.branch));
            self.shared.results.forget(&repo, &name).await;
            pushed?;
            saved.pushed = true;
            self.say(format!("pushed {} to the repository", self.spec.branch));
        } else {
            self.shared.results.forget(&repo, &name).await;
        }
        Ok(saved)
    }

    /// Writes `bundle` to a scratch file and fetches it into the results repository.
    async fn import(&self, bundle: &[u8], name: &str) -> Result<std::path::PathBuf, String> {
        let file = tempfile::Builder::new()
            .prefix(".result-")
            .suffix(".bundle")
            .tempfile_in(&self.shared.worktree_base)
            .map_err(|e| format!("cannot make a bundle file: {e}"))?;
        std::fs::write(file.path(), bundle).map_err(|e| format!("cannot write the bundle: {e}"))?;
        let mirror = self.shared.mirrors.path_for(&self.spec.repo);
        self.shared
            .results
            .import(&mirror, file.path(), &self.spec.branch, name)
            .await
            .map_err(|e| format!("cannot import the result: {e}"))
    }
}
