//! Exit codes of `kiln`. Errors carry their code; `main` prints them.

pub use kiln_runner::exit::{report, Exit};

/// Something failed (for example the control plane is unreachable).
pub const ERROR: u8 = 1;
/// Bad usage or input.
pub const USAGE: u8 = 2;
/// The task ended without succeeding.
pub const TASK_FAILED: u8 = 3;
/// The task, runner or artifact does not exist.
pub const NOT_FOUND: u8 = 4;
/// Missing or wrong admin token.
pub const UNAUTHORIZED: u8 = 5;

/// The exit code for an HTTP error status.
pub fn for_status(status: u16) -> u8 {
    match status {
        401 | 403 => UNAUTHORIZED,
        404 => NOT_FOUND,
        400 | 413 | 422 => USAGE,
        _ => ERROR,
    }
}
