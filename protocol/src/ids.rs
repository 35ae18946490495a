//! Typed identifiers, so a task id can never be passed where a runner id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identifies a task for its whole life, across all of its attempts.
    TaskId
);
uuid_id!(
    /// Identifies a registered runner; stable across its connections.
    RunnerId
);
uuid_id!(
    /// Identifies one WebSocket connection of a runner; new on every reconnect (`session_id`
    /// on the wire).
    ConnectionId
);
uuid_id!(
    /// Identifies a sandbox forged for a task.
    SandboxId
);
uuid_id!(
    /// Identifies a workspace session (`kiln session`): one worktree for a series of tasks.
    WorkspaceId
);
