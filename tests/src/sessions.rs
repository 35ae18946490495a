//! Workspace sessions through the CLI: made for a repository, tasks submitted into them.

use std::path::Path;

use serde_json::Value;

use crate::ControlPlane;

/// `kiln session create --repo REPO` plus `extra`; the session's id.
pub fn create(control_plane: &ControlPlane, repo: &Path, extra: &[&str]) -> String {
    let repo = repo.to_string_lossy();
    let mut args = vec!["session", "create", "--repo", &repo];
    args.extend_from_slice(extra);
    control_plane.kiln_ok(&args).trim().to_owned()
}

/// Submits `sh -c script` into session `session`; the task's id.
pub fn submit_in(control_plane: &ControlPlane, session: &str, script: &str) -> String {
    let output = control_plane.kiln_ok(&[
        "submit",
        "--json",
        "--session",
        session,
        "--",
        "sh",
        "-c",
        script,
    ]);
    let task: Value = serde_json::from_str(&output).expect("submit JSON");
    task["id"].as_str().expect("task id").to_owned()
}
