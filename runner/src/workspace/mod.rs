//! The runner's git work: mirrors in the cache, worktrees per attempt, and the result.

pub mod files;
mod git;
pub mod mirror;
pub mod result;
pub mod results;
pub mod sessions;
pub mod spares;
pub mod step;
pub mod worktree;

pub use git::{run as git, GitError};
