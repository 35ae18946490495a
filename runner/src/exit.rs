//! Exit codes of `kiln-runner` and how errors are printed (shared with `kiln`).

use std::process::ExitCode;

/// Something failed.
pub const ERROR: u8 = 1;
/// Bad usage or configuration.
pub const USAGE: u8 = 2;
/// `status`: no daemon answers.
pub const NOT_RUNNING: u8 = 3;
/// The control plane refused this runner.
pub const REFUSED: u8 = 4;

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process exit code.
    pub code: u8,
    message: String,
}

impl Exit {
    /// An error that exits with `code`.
    pub fn with(code: u8, message: impl std::fmt::Display) -> anyhow::Error {
        Exit {
            code,
            message: message.to_string(),
        }
        .into()
    }
}

/// Wraps a configuration or usage error.
pub fn usage(error: impl std::fmt::Display) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: error.to_string(),
    }
    .into()
}

/// Wraps a refusal by the control plane.
pub fn refused(error: impl std::fmt::Display) -> anyhow::Error {
    Exit {
        code: REFUSED,
        message: format!("{error}; not retrying"),
    }
    .into()
}

/// Prints `error` (as JSON with `--json`) and returns its exit code.
pub fn report(error: &anyhow::Error, json: bool) -> ExitCode {
    let code = error.downcast_ref::<Exit>().map_or(ERROR, |e| e.code);
    let message = format!("{error:#}");
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": message, "exit_code": code })
        );
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(code)
}
