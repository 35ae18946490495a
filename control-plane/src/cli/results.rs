//! `kiln diff` and `kiln fetch`: a task's result, from the artifacts its runner uploaded.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::client::ApiClient;
use super::exit::{self, Exit};
use super::{FetchArgs, TaskArgs};
use kiln_protocol::TaskResult;

use crate::api_types::TaskDetail;

/// `kiln diff ID`.
pub async fn diff(client: &ApiClient, args: TaskArgs, json: bool) -> anyhow::Result<ExitCode> {
    let patch = client
        .get_bytes(&format!("/v1/tasks/{}/artifacts/diff", args.id))
        .await?;
    if json {
        let text = String::from_utf8_lossy(&patch);
        println!(
            "{}",
            serde_json::json!({ "task_id": args.id, "diff": text })
        );
    } else {
        std::io::stdout().write_all(&patch)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln fetch ID`: downloads the bundle and fetches its branch into the clone.
pub async fn fetch(client: &ApiClient, args: FetchArgs, json: bool) -> anyhow::Result<ExitCode> {
    let result = download(client, &args).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "branch": result.branch, "head_commit": result.head_commit })
        );
    } else {
        println!(
            "fetched {} ({} commit(s)) at {}",
            result.branch,
            result.commits.len(),
            result.head_commit
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln apply ID`: fetches the result and merges it onto the clone's current branch.
pub async fn apply(client: &ApiClient, args: FetchArgs, json: bool) -> anyhow::Result<ExitCode> {
    let result = download(client, &args).await?;
    let message = format!("Merge kiln task {} ({})", args.id, result.branch);
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(&args.repo)
        .args(["merge", "--no-edit", "-m", &message, &result.head_commit])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run git: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        return Err(Exit::with(
            exit::ERROR,
            format!(
                "merging {} into {} failed (resolve it, or `git merge --abort`): {} {}",
                result.branch,
                args.repo.display(),
                stdout.trim(),
                stderr.trim()
            ),
        ));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "merged": result.head_commit, "branch": result.branch })
        );
    } else {
        println!(
            "merged {} ({} commit(s)) into the current branch",
            result.branch,
            result.commits.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Imports the task's result branch into the clone from its bundle.
async fn download(client: &ApiClient, args: &FetchArgs) -> anyhow::Result<TaskResult> {
    let detail: TaskDetail = client.get(&format!("/v1/tasks/{}", args.id)).await?;
    let result = detail
        .task
        .outcome
        .as_ref()
        .and_then(|o| o.result.clone())
        .filter(|r| !r.commits.is_empty())
        .ok_or_else(|| {
            Exit::with(
                exit::NOT_FOUND,
                format!("task {} has no commits to fetch", args.id),
            )
        })?;
    let bundle = client
        .get_bytes(&format!("/v1/tasks/{}/artifacts/bundle", args.id))
        .await?;
    let file = tempfile::Builder::new().suffix(".bundle").tempfile()?;
    std::fs::write(file.path(), &bundle)?;
    let refspec = format!("+refs/heads/{0}:refs/heads/{0}", result.branch);
    git_fetch(&args.repo, file.path(), &refspec, &result.base_commit)?;
    Ok(result)
}

fn git_fetch(repo: &Path, bundle: &Path, refspec: &str, base: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fetch", "--quiet"])
        .arg(bundle)
        .arg(refspec)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run git: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("prerequisite") || stderr.contains("lacks these prerequisite") {
        format!("; this clone lacks the task's base commit {base}: fetch it from the task's repository first")
    } else {
        String::new()
    };
    Err(Exit::with(
        exit::ERROR,
        format!(
            "git fetch into {} failed: {}{hint}",
            repo.display(),
            stderr.trim()
        ),
    ))
}
