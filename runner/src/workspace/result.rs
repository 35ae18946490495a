//! What an attempt leaves in git, read and written with libgit2: resolving the base,
//! committing what the agent left uncommitted, and summarising the commits.

use std::path::Path;

use git2::{DiffFormat, IndexAddOption, Oid, Repository, Signature};
use kiln_protocol::DiffStat;

/// Name and email on commits kiln makes for the agent.
const COMMITTER_NAME: &str = "kiln";
const COMMITTER_EMAIL: &str = "kiln@localhost";

/// A git step on the result failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ResultError {
    what: String,
    #[source]
    source: git2::Error,
}

fn step(what: impl Into<String>) -> impl FnOnce(git2::Error) -> ResultError {
    let what = what.into();
    move |source| ResultError { what, source }
}

/// The commits an attempt produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Tip of the result branch.
    pub head: String,
    /// Commits after the base, oldest first.
    pub commits: Vec<String>,
    /// Size of the change.
    pub diffstat: DiffStat,
}

/// Resolves the ref to start from in a mirror: a remote branch, a tag or a commit id; or
/// the remote's default branch when none is given.
pub fn resolve_base(mirror: &Path, base_ref: Option<&str>) -> Result<String, String> {
    let repo = Repository::open_bare(mirror).map_err(|e| format!("cannot open mirror: {e}"))?;
    let candidates: Vec<String> = match base_ref {
        None => vec!["refs/remotes/origin/HEAD".into()],
        Some(name) => vec![
            format!("refs/remotes/origin/{name}"),
            format!("refs/tags/{name}"),
            name.to_owned(),
        ],
    };
    for candidate in &candidates {
        let Ok(object) = repo.revparse_single(candidate) else {
            continue;
        };
        if let Ok(commit) = object.peel_to_commit() {
            return Ok(commit.id().to_string());
        }
    }
    Err(match base_ref {
        None => "the repository has no default branch (is it empty?)".into(),
        Some(name) => format!("base ref {name:?} is not a branch, tag or commit of the repository"),
    })
}

/// Commits everything the agent left in the worktree (honouring .gitignore) on top of
/// HEAD, except files larger than `max_file_bytes`. Returns the new commit (`None` when
/// there was nothing to commit) and the files left out.
pub fn commit_leftovers(
    worktree: &Path,
    message: &str,
    max_file_bytes: u64,
) -> Result<(Option<String>, Vec<String>), ResultError> {
    let repo = Repository::open(worktree).map_err(step("open worktree"))?;
    let mut index = repo.index().map_err(step("read index"))?;
    let mut skipped = Vec::new();
    let mut too_large = |path: &Path, _: &[u8]| -> i32 {
        let size = std::fs::metadata(worktree.join(path)).map_or(0, |m| m.len());
        if size > max_file_bytes {
            skipped.push(path.to_string_lossy().into_owned());
            1
        } else {
            0
        }
    };
    index
        .add_all(["*"], IndexAddOption::DEFAULT, Some(&mut too_large))
        .map_err(step("stage new and changed files"))?;
    index
        .update_all(["*"], None)
        .map_err(step("stage deleted files"))?;
    index.write().map_err(step("write index"))?;
    let tree_id = index.write_tree().map_err(step("write tree"))?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(step("read HEAD"))?;
    if head.tree_id() == tree_id {
        return Ok((None, skipped));
    }
    let tree = repo.find_tree(tree_id).map_err(step("find tree"))?;
    let signature =
        Signature::now(COMMITTER_NAME, COMMITTER_EMAIL).map_err(step("make signature"))?;
    let commit = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &[&head],
        )
        .map_err(step("commit"))?;
    Ok((Some(commit.to_string()), skipped))
}

/// The commit the worktree's HEAD points at.
pub fn head(worktree: &Path) -> Result<String, ResultError> {
    let repo = Repository::open(worktree).map_err(step("open worktree"))?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(step("read HEAD"))?;
    Ok(head.id().to_string())
}

/// Points `branch` at the worktree's HEAD (in case the agent moved HEAD elsewhere) and
/// returns that commit.
pub fn pin_branch(worktree: &Path, branch: &str) -> Result<String, ResultError> {
    let repo = Repository::open(worktree).map_err(step("open worktree"))?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(step("read HEAD"))?;
    let branch_ref = format!("refs/heads/{branch}");
    let on_branch = repo
        .head()
        .ok()
        .and_then(|h| h.name().ok().map(str::to_owned))
        == Some(branch_ref.clone());
    if !on_branch {
        repo.reference(&branch_ref, head.id(), true, "kiln: result of the attempt")
            .map_err(step(format!("point {branch} at HEAD")))?;
    }
    Ok(head.id().to_string())
}

/// Summarises the commits from `base` to `head` in the repository at `repo`.
pub fn summarize(repo: &Path, head: &str, base: &str) -> Result<Summary, ResultError> {
    let repo = Repository::open(repo).map_err(step("open the results repository"))?;
    let head = Oid::from_str(head)
        .and_then(|oid| repo.find_commit(oid))
        .map_err(step("find the result's head"))?;
    let base_oid = Oid::from_str(base).map_err(step("parse base commit"))?;
    let mut walk = repo.revwalk().map_err(step("walk commits"))?;
    walk.push(head.id()).map_err(step("walk from HEAD"))?;
    walk.hide(base_oid).map_err(step("hide base"))?;
    let mut commits: Vec<String> = walk
        .collect::<Result<Vec<Oid>, _>>()
        .map_err(step("walk commits"))?
        .into_iter()
        .map(|oid| oid.to_string())
        .collect();
    commits.reverse();
    let base_tree = repo
        .find_commit(base_oid)
        .and_then(|c| c.tree())
        .map_err(step("base tree"))?;
    let head_tree = head.tree().map_err(step("head tree"))?;
    let diff = repo
        .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), None)
        .map_err(step("diff"))?;
    let stats = diff.stats().map_err(step("diffstat"))?;
    Ok(Summary {
        head: head.id().to_string(),
        commits,
        diffstat: DiffStat {
            files_changed: stats.files_changed() as u64,
            insertions: stats.insertions() as u64,
            deletions: stats.deletions() as u64,
        },
    })
}

/// The unified diff from `base` to `head` in the repository at `repo`, for `kiln diff`.
pub fn patch(repo: &Path, base: &str, head: &str) -> Result<Vec<u8>, ResultError> {
    let repo = Repository::open(repo).map_err(step("open the results repository"))?;
    let tree_of = |id: &str| {
        Oid::from_str(id)
            .and_then(|oid| repo.find_commit(oid))
            .and_then(|c| c.tree())
    };
    let base_tree = tree_of(base).map_err(step("base tree"))?;
    let head_tree = tree_of(head).map_err(step("head tree"))?;
    let diff = repo
        .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), None)
        .map_err(step("diff"))?;
    let mut text = Vec::new();
    diff.print(DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            text.push(line.origin() as u8);
        }
        text.extend_from_slice(line.content());
        true
    })
    .map_err(step("render diff"))?;
    Ok(text)
}
