//! The operator command line. Every command but `serve` and `dev` is a client of the HTTP
//! API under `/v1`.

mod args;
pub mod client;
pub mod exit;
mod files;
mod fleet;
mod logs;
pub mod migrate;
mod render;
mod results;
mod sandboxes;
mod session;
mod tasks;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use args::*;
pub use files::files;
pub use fleet::{runners, token_create};
pub use logs::logs;
pub use results::{apply, diff, fetch};
pub use sandboxes::sandboxes;
pub use session::{exec, session};
pub use tasks::{cancel, retry, show, submit, tasks};

/// kiln: dispatch AI coding agents to a fleet of runners.
///
/// Exit codes: 0 success; 1 error (for example the control plane is unreachable); 2 bad
/// usage or input; 3 the task did not succeed (`submit --wait/--follow`); 4 not found;
/// 5 not authorized (missing or wrong admin token).
#[derive(Debug, Parser)]
#[command(name = "kiln", version)]
pub struct Cli {
    /// Control plane URL [default: from the data dir's server.url, else http://127.0.0.1:7700].
    #[arg(long, global = true, env = "KILN_SERVER_URL", value_name = "URL")]
    pub server: Option<String>,
    /// Admin token [default: the data dir's admin.token].
    #[arg(
        long,
        global = true,
        env = "KILN_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// A private CA certificate (PEM) to trust for an https:// control plane.
    #[arg(long, global = true, env = "KILN_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Data directory of the control plane [default: ~/.local/share/kiln].
    #[arg(long, global = true, env = "KILN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Format of the diagnostic log on stderr.
    #[arg(
        long,
        global = true,
        env = "KILN_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: kiln_runner::logging::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Serve(Box<ServeArgs>),
    /// Run a control plane and one local runner, ready to take tasks.
    Dev(DevArgs),
    /// Apply the database's pending schema migrations (`serve` also applies them).
    Migrate(args::MigrateArgs),
    /// Manage registration tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Queue a task.
    Submit(Box<SubmitArgs>),
    /// List tasks.
    Tasks(TasksArgs),
    /// Show one task and its attempts.
    Task(TaskArgs),
    /// Print a task's log.
    Logs(LogsArgs),
    /// Cancel a task: stop its agent (SIGTERM, grace, SIGKILL) or drop it from the queue.
    Cancel(CancelArgs),
    /// List runners, or drain, pause, resume or revoke one.
    Runners(RunnersArgs),
    /// Queue a finished task again for a new attempt.
    Retry(TaskArgs),
    /// Print the diff a task produced.
    Diff(TaskArgs),
    /// Import a task's result branch into a local clone.
    Fetch(FetchArgs),
    /// Merge a task's result onto the current branch of a local clone.
    Apply(FetchArgs),
    /// Workspace sessions: several tasks in one worktree on one runner.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Run a command in a session's worktree and stream its output.
    Exec(ExecArgs),
    /// Files in the live worktree of a running task or an open session.
    Files(FilesArgs),
    /// List live sandboxes with their TTL left, or burn one.
    Sandboxes(SandboxesArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write man pages for kiln and its subcommands into a directory.
    #[command(hide = true)]
    Man(ManArgs),
}
