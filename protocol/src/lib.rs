//! kiln's wire protocol: the plain-data types that the runner and the control plane exchange.
//!
//! Everything here is serde data with no I/O, so both sides, the tests and any third-party
//! client agree on one definition. `docs/protocol.md` explains the protocol in prose; the
//! snapshot test in `tests/snapshots.rs` pins the JSON of every message.

mod agent;
mod close;
pub mod decode;
mod event;
mod event_de;
mod files;
mod ids;
pub mod limits;
mod line;
mod messages;
mod registration;
mod task;
pub mod validate;

pub use agent::{AgentEvent, AgentSpec, Autonomy, Usage};
pub use close::CloseCode;
pub use event::{
    DiffStat, Event, EventBody, Outcome, OutcomeStatus, Phase, StopReason, TaskResult,
};
pub use files::{FileEntry, FileOp, FileResult, FileTarget};
pub use ids::{ConnectionId, RunnerId, SandboxId, TaskId, WorkspaceId};
pub use line::{LineEncoding, LogLine, Stream};
pub use messages::{
    AckedSeq, AttemptRef, HeldState, Hello, RunnerMessage, RunningAttempt, ServerMessage, Welcome,
};
pub use registration::{RegisterRequest, RegisterResponse};
pub use task::{ContainerSpec, TaskSpec, WorkspaceSpec};

/// Version of this protocol. A runner whose `hello.protocol` differs is refused with
/// [`CloseCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch: the one timestamp format on the wire.
pub type UnixMillis = i64;

/// Current wall-clock time as [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// The wall-clock time `duration` ago, as [`UnixMillis`].
pub fn millis_ago(duration: std::time::Duration) -> UnixMillis {
    let duration = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    now_millis().saturating_sub(duration)
}
