//! File requests: the control plane reads and writes files in a live worktree through the
//! runner that holds it (`kiln files`). Paths are relative to the worktree and never leave it.

use serde::{Deserialize, Serialize};

use crate::ids::{TaskId, WorkspaceId};

/// Whose worktree a request is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum FileTarget {
    /// The worktree of a running attempt.
    Task {
        /// The task.
        task_id: TaskId,
        /// The attempt.
        attempt: u32,
    },
    /// The worktree of an open workspace session.
    Workspace {
        /// The session.
        workspace_id: WorkspaceId,
    },
}

/// What to do. Paths are relative to the worktree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FileOp {
    /// List a directory.
    List {
        /// The directory (`.` for the root).
        path: String,
    },
    /// Read a file.
    Read {
        /// The file.
        path: String,
    },
    /// Create or replace a file (parent directories are made).
    Write {
        /// The file.
        path: String,
        /// Its new contents, standard base64.
        data: String,
    },
    /// Delete a file.
    Delete {
        /// The file.
        path: String,
    },
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name.
    pub name: String,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    /// Size in bytes (files).
    pub size: u64,
}

/// The answer to a file request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum FileResult {
    /// A directory's entries.
    Listed {
        /// The entries, by name.
        entries: Vec<FileEntry>,
    },
    /// A file's contents, standard base64.
    Read {
        /// The contents.
        data: String,
    },
    /// The file was written.
    Written,
    /// The file was deleted.
    Deleted,
    /// The request failed; the message says why (a refused path names the path).
    Failed {
        /// Why.
        error: String,
    },
}
