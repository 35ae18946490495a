//! kiln-runner: the daemon that takes tasks from a kiln control plane and runs each agent in
//! its own git worktree.

pub mod atomic_file;
pub mod config;
pub mod secret;
pub mod server_url;
