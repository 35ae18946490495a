//! The two message enums: what a runner sends and what the control plane sends.
//!
//! Every frame is one JSON text message, internally tagged by `type` in `snake_case`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::files::{FileOp, FileResult, FileTarget};
use crate::ids::{ConnectionId, RunnerId, TaskId, WorkspaceId};
use crate::task::TaskSpec;

/// Messages from a runner to the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunnerMessage {
    /// First frame of every connection: who the runner is and what it still runs.
    Hello(Hello),
    /// Periodic liveness and load report.
    Heartbeat {
        /// Attempts running now.
        running: u32,
        /// Attempts the runner could still take.
        free_slots: u32,
    },
    /// The runner took an assignment and is starting it.
    Accepted {
        /// The task assigned.
        task_id: TaskId,
        /// The attempt assigned.
        attempt: u32,
    },
    /// The runner will not run an assignment.
    Rejected {
        /// The task assigned.
        task_id: TaskId,
        /// The attempt assigned.
        attempt: u32,
        /// Why, for the operator.
        reason: String,
    },
    /// The runner takes no new work from now on (it is draining before it exits).
    Draining,
    /// The runner saved the token from `rotate`; the old one may be retired.
    Rotated,
    /// The answer to a `file_request`.
    FileResponse {
        /// The request answered.
        request_id: u64,
        /// What happened.
        result: FileResult,
    },
    /// The runner now holds a mirror of this repository (for placement affinity).
    Mirrored {
        /// The repository, as given in the task.
        repo: String,
    },
    /// Events of one attempt, in `seq` order.
    Events {
        /// The task the events belong to.
        task_id: TaskId,
        /// The attempt the events belong to.
        attempt: u32,
        /// The events, each with its `seq`.
        events: Vec<Event>,
    },
}

/// Messages from the control plane to a runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `hello`: the session is open.
    Welcome(Welcome),
    /// Run this attempt of a task.
    Assign {
        /// What to run.
        task: Box<TaskSpec>,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Stop this attempt.
    Cancel {
        /// The task to stop.
        task_id: TaskId,
        /// The attempt to stop.
        attempt: u32,
        /// Why, for the task's log.
        reason: String,
    },
    /// Events of an attempt up to `seq` are durable; the runner may forget them.
    Ack {
        /// The task acknowledged.
        task_id: TaskId,
        /// The attempt acknowledged.
        attempt: u32,
        /// Highest contiguous seq stored.
        seq: u64,
    },
    /// Take no new work; finish what is running.
    Drain,
    /// Replace the runner token with this one: save it, then answer `rotated`. The old
    /// token stays valid until then.
    Rotate {
        /// The new runner token (`kiln_rnr_...`).
        runner_token: String,
    },
    /// Close a workspace session: remove its worktree.
    CloseWorkspace {
        /// The session.
        workspace_id: WorkspaceId,
    },
    /// Read or change a file in a live worktree; answered by `file_response`.
    FileRequest {
        /// Echoed in the response.
        request_id: u64,
        /// Whose worktree.
        target: FileTarget,
        /// What to do.
        op: FileOp,
    },
    /// The previous frame was refused; the session goes on.
    Error {
        /// What was wrong with it.
        message: String,
    },
}

/// The runner's opening frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the runner speaks: [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The runner software's version, for the operator.
    pub version: String,
    /// The runner's name.
    pub name: String,
    /// Capabilities offered now (may differ from registration).
    pub capabilities: Vec<String>,
    /// Labels offered now.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Most attempts run at once.
    pub max_concurrent: u32,
    /// Set when the runner lives in a sandbox forged for specific tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// Repositories the runner holds a mirror of.
    #[serde(default)]
    pub cached_projects: Vec<String>,
    /// Attempts still running or with events not yet acknowledged.
    #[serde(default)]
    pub running: Vec<RunningAttempt>,
    /// Workspace sessions whose worktree the runner holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceId>,
}

/// An attempt a runner still holds when it says hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningAttempt {
    /// The task.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Highest seq the runner has produced for it.
    pub last_seq: u64,
    /// Whether its agent still runs.
    pub state: HeldState,
}

/// Why a runner still holds an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldState {
    /// Its agent is running.
    Running,
    /// It ended; events up to its `finished` event await acknowledgement.
    Finished,
    /// The runner restarted while it ran: its agent is gone and no `finished` will come.
    /// Its remaining events are still delivered.
    Abandoned,
}

/// The control plane's answer to `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The runner's id, as the control plane knows it.
    pub runner_id: RunnerId,
    /// Id of this connection (`session_id` on the wire).
    #[serde(rename = "session_id")]
    pub connection_id: ConnectionId,
    /// Send a heartbeat this often.
    pub heartbeat_interval_ms: u64,
    /// For each announced attempt, the highest seq already stored; resend the rest.
    pub acked: Vec<AckedSeq>,
    /// Announced attempts the control plane has no record of for this runner: stop them
    /// and discard their events, which no one will accept.
    #[serde(default)]
    pub unknown: Vec<AttemptRef>,
}

/// Names one attempt of one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRef {
    /// The task.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: u32,
}

/// How far the control plane has stored an attempt's events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedSeq {
    /// The task.
    pub task_id: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Highest contiguous seq stored (0 when none).
    pub seq: u64,
}
