//! kiln-runner: the daemon that takes tasks from a kiln control plane and runs each agent in
//! its own git worktree.

pub mod atomic_file;
pub mod attempt;
pub mod cli;
pub mod cli_docs;
pub mod config;
pub mod connection;
pub mod daemon;
pub mod exit;
pub mod fence;
pub mod hidden;
pub mod logging;
pub mod metrics;
pub mod notices;
pub mod outbox;
pub mod presets;
pub mod register;
pub mod rotation;
pub mod running;
pub mod secret;
pub mod server_url;
pub mod shim;
pub mod signals;
pub mod status;
pub mod tls;
pub mod upload;
pub mod workspace;
