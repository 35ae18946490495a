//! Workspace sessions held by this runner: one worktree per session, kept between the
//! session's tasks (with installed dependencies and build output) until it is closed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use kiln_protocol::WorkspaceId;

/// One open workspace session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Its worktree.
    pub path: PathBuf,
    /// Its repository (for the mirror lock when it is removed).
    pub repo: String,
    /// The commit the session started from: bundles of its tasks carry every commit since.
    pub base: String,
    /// The commit the session's last task left HEAD at, when known. Only the session's
    /// tasks move HEAD (file requests never write into `.git`), so the next task starts
    /// there without opening the repository to read it.
    pub head: Option<String>,
    /// The conversation each agent preset last recorded here, for `--continue`.
    pub conversations: std::collections::BTreeMap<String, String>,
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Workspaces {
    open: Mutex<HashMap<WorkspaceId, Workspace>>,
}

impl Workspaces {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkspaceId, Workspace>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's worktree, if open here.
    pub fn get(&self, id: WorkspaceId) -> Option<Workspace> {
        self.lock().get(&id).cloned()
    }

    /// Records an open session.
    pub fn insert(&self, id: WorkspaceId, workspace: Workspace) {
        self.lock().insert(id, workspace);
    }

    /// Records where the session's last task left HEAD (`None`: not known, read it).
    pub fn set_head(&self, id: WorkspaceId, head: Option<String>) {
        if let Some(workspace) = self.lock().get_mut(&id) {
            workspace.head = head;
        }
    }

    /// Records the conversation `preset`'s agent last named in the session.
    pub fn set_conversation(&self, id: WorkspaceId, preset: &str, conversation: String) {
        if let Some(workspace) = self.lock().get_mut(&id) {
            workspace
                .conversations
                .insert(preset.to_owned(), conversation);
        }
    }

    /// Forgets a session, returning it so its worktree can be removed.
    pub fn remove(&self, id: WorkspaceId) -> Option<Workspace> {
        self.lock().remove(&id)
    }

    /// The sessions open here, for hello.
    pub fn ids(&self) -> Vec<WorkspaceId> {
        let mut ids: Vec<WorkspaceId> = self.lock().keys().copied().collect();
        ids.sort();
        ids
    }
}

/// Where session `id`'s worktree goes under `base`.
pub fn path_for(base: &std::path::Path, id: WorkspaceId) -> PathBuf {
    base.join(format!("ws-{id}"))
}
