//! Arguments of the `kiln` subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `kiln serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// Heartbeat period runners are asked to keep.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: std::time::Duration,
    /// Absence after which a runner's attempts are declared lost and retried.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub lost_after: std::time::Duration,
    /// TLS certificate chain (PEM) to serve HTTPS and WSS; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most connections open at once.
    #[arg(long, default_value_t = crate::serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most connections one client address may hold [default: all but a tenth of
    /// --max-connections, at least 16 kept for others]; behind a load balancer whose address
    /// every client shares, set it to --max-connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: Option<u32>,
    /// Largest result artifact (bundle, diff) a runner may upload, in bytes.
    #[arg(long, default_value_t = crate::engine::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: usize,
    /// Time a runner has to accept an assignment before it goes back to the queue.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub accept_deadline: std::time::Duration,
    /// Time a runner has, past a task's timeout or cancel, to report its attempt ended;
    /// then the control plane ends the task itself, whatever the runner does.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub stop_grace: std::time::Duration,
    /// Log text stored per attempt, in bytes; later lines keep their place, not their text.
    #[arg(long, default_value_t = crate::engine::DEFAULT_MAX_LOG_BYTES)]
    pub max_log_bytes: u64,
    /// A registration token (kiln_reg_...) to accept, with unlimited uses, so that runner
    /// containers register without a manual step.
    #[arg(
        long,
        env = "KILN_REGISTRATION_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub registration_token: Option<String>,
    /// Sandbox provider for `kiln submit --sandbox`.
    #[arg(long, value_enum, default_value = "docker")]
    pub sandbox_provider: SandboxProviderArg,
    /// Image sandboxes are forged from when a task names none.
    #[arg(long, default_value = crate::serve::DEFAULT_SANDBOX_IMAGE, value_name = "IMAGE")]
    pub sandbox_image: String,
    /// Docker network of sandbox containers (`host` reaches a control plane on loopback).
    #[arg(long, default_value = "host", value_name = "NETWORK")]
    pub sandbox_network: String,
    /// URL sandboxes reach this control plane at [default: the URL it listens on].
    #[arg(long, value_name = "URL")]
    pub sandbox_server_url: Option<String>,
    /// Delete the events and artifacts of tasks finished longer ago than this (such as
    /// 30d); task records stay. Unset keeps everything.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub retention: Option<std::time::Duration>,
    /// Time between retention passes (pruning is housekeeping: ten minutes late is fine).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration, requires = "retention")]
    pub prune_every: std::time::Duration,
    /// Threads running HTTP, WebSockets and followers (the SQLite writer has its own). One
    /// makes the fewest wake-ups between cores, the lowest latency on small machines; raise
    /// it when that thread keeps a core busy.
    #[arg(
        long,
        env = "KILN_WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=MAX_WORKER_THREADS)
    )]
    pub worker_threads: u16,
}

/// Most `--worker-threads`: far past any machine's cores, a bound on a typo.
const MAX_WORKER_THREADS: i64 = 1024;

/// `kiln serve --sandbox-provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxProviderArg {
    /// A container per sandbox on the local Docker engine.
    Docker,
    /// No sandboxes: `kiln submit --sandbox` is refused.
    None,
}

/// `kiln dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Agents the local runner runs at once.
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
}

/// `kiln token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a registration token for `kiln-runner register`.
    Create(TokenCreateArgs),
}

/// `kiln token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Registrations the token allows [default: unlimited].
    #[arg(long)]
    pub uses: Option<u32>,
    /// Lifetime, such as 1h or 7d [default: no expiry].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Option<std::time::Duration>,
}

/// `kiln submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Repository: a URL, or a path on the runner's machine (not with --session).
    #[arg(long, required_unless_present = "session")]
    pub repo: Option<String>,
    /// Run in this workspace session (its repository, ref, branch and worktree).
    #[arg(long, value_name = "SESSION", conflicts_with_all = ["repo", "base_ref", "branch"])]
    pub session: Option<String>,
    /// Ref to start from [default: the repository's default branch].
    #[arg(long = "ref", visible_alias = "base", value_name = "REF")]
    pub base_ref: Option<String>,
    /// Branch for the result [default: kiln/<task-id>].
    #[arg(long)]
    pub branch: Option<String>,
    /// The prompt.
    #[arg(long, conflicts_with = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file (- for stdin).
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    /// Environment variable KEY=VALUE for the agent (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Secret variable NAME=VALUE, or NAME to take its value from this shell's environment
    /// (repeatable); redacted from the log and never shown again.
    #[arg(long = "secret-env", value_name = "NAME[=VALUE]")]
    pub secret_env: Vec<String>,
    /// Capability the runner must have (repeatable).
    #[arg(long = "require", value_name = "CAP")]
    pub requires: Vec<String>,
    /// Label KEY=VALUE the runner must have (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Overall time limit, such as 30m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Limit on time without output, such as 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<std::time::Duration>,
    /// Most attempts if runners are lost [default: 2].
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// How the agent runs.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Run the task in a fresh sandbox from this provider (such as docker), burned when
    /// the task ends.
    #[arg(long, value_name = "PROVIDER", conflicts_with = "session")]
    pub sandbox: Option<String>,
    /// Sandbox image [default: the control plane's --sandbox-image].
    #[arg(long, value_name = "IMAGE", requires = "sandbox")]
    pub image: Option<String>,
    /// Sandbox lifetime, such as 30m; the box is burned after it even if the task runs on
    /// [default: 30m].
    #[arg(long, value_parser = humantime::parse_duration, requires = "sandbox")]
    pub sandbox_ttl: Option<std::time::Duration>,
    /// Wait for the task to end; exit 3 unless it succeeded.
    #[arg(long)]
    pub wait: bool,
    /// Print the log as it streams, then exit like --wait.
    #[arg(long)]
    pub follow: bool,
    /// The agent command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `kiln tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only tasks in this state (queued, assigned, running, succeeded, failed, cancelled,
    /// timed_out, error, lost).
    #[arg(long)]
    pub state: Option<String>,
    /// Only tasks on this repository (as submitted).
    #[arg(long)]
    pub repo: Option<String>,
    /// Only tasks that had an attempt on this runner id.
    #[arg(long)]
    pub runner: Option<String>,
    /// Only tasks with this label KEY=VALUE.
    #[arg(long)]
    pub label: Option<String>,
    /// At most this many per page (newest first).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Start after this task id (the `next` hint of the previous page).
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
}

/// `kiln runners`.
#[derive(Debug, Args)]
pub struct RunnersArgs {
    /// What to do; nothing lists the runners.
    #[command(subcommand)]
    pub action: Option<RunnersCommand>,
}

/// `kiln runners ...`.
#[derive(Debug, Subcommand)]
pub enum RunnersCommand {
    /// Stop new work; the runner exits when its tasks end.
    Drain {
        /// The runner id.
        id: String,
        /// Cancel what still runs after this long, such as 30m.
        #[arg(long, value_parser = humantime::parse_duration)]
        deadline: Option<std::time::Duration>,
    },
    /// Give the runner no new work until resumed (it stays connected).
    Pause {
        /// The runner id.
        id: String,
    },
    /// Undo pause (and a drain not yet delivered).
    Resume {
        /// The runner id.
        id: String,
    },
    /// Give the runner a new token (it saves it itself) and retire the old one.
    Rotate {
        /// The runner id.
        id: String,
    },
    /// Refuse the runner's token for good and close its connection now.
    Revoke {
        /// The runner id.
        id: String,
    },
    /// Set the capabilities and labels tasks are placed by (a runner's own hello cannot).
    Update {
        /// The runner id.
        id: String,
        /// A capability, repeatable; together they replace the runner's capabilities.
        #[arg(long = "capability", value_name = "CAP")]
        capabilities: Vec<String>,
        /// Remove every capability.
        #[arg(long, conflicts_with = "capabilities")]
        no_capabilities: bool,
        /// A label KEY=VALUE, repeatable; together they replace the runner's labels.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Remove every label.
        #[arg(long, conflicts_with = "labels")]
        no_labels: bool,
    },
}

/// `kiln sandboxes`.
#[derive(Debug, Args)]
pub struct SandboxesArgs {
    /// What to do; nothing lists the live sandboxes.
    #[command(subcommand)]
    pub action: Option<SandboxesCommand>,
}

/// `kiln sandboxes ...`.
#[derive(Debug, Subcommand)]
pub enum SandboxesCommand {
    /// Destroy a sandbox now; a task still running in it is cancelled.
    Burn {
        /// The sandbox id.
        id: String,
    },
}

/// `kiln completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `kiln man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into.
    pub dir: PathBuf,
}

/// A command on one task.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The task id.
    pub id: String,
}

/// `kiln cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The task id.
    pub id: String,
    /// Why, shown in the task's log.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `kiln logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task id.
    pub id: String,
    /// Keep printing until the task ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Attempt to show [default: the latest].
    #[arg(long)]
    pub attempt: Option<u32>,
    /// Start after this seq.
    #[arg(long, default_value_t = 0)]
    pub since_seq: u64,
}

/// `kiln fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The task id.
    pub id: String,
    /// The clone to import into [default: the current directory].
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
}

/// `--autonomy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AutonomyArg {
    /// Read and answer only.
    ReadOnly,
    /// Edit files in the worktree.
    Edit,
    /// Everything, without prompts or the CLI's own sandbox.
    Full,
}

impl From<AutonomyArg> for kiln_protocol::Autonomy {
    fn from(arg: AutonomyArg) -> Self {
        match arg {
            AutonomyArg::ReadOnly => Self::ReadOnly,
            AutonomyArg::Edit => Self::Edit,
            AutonomyArg::Full => Self::Full,
        }
    }
}

/// The agent preset, its loop and its budgets (`kiln submit`).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent preset: claude-code, codex, gemini, command (the default: the command after --),
    /// or one the runner defines.
    #[arg(long, value_name = "PRESET")]
    pub agent: Option<String>,
    /// Model to ask the agent for.
    #[arg(long)]
    pub model: Option<String>,
    /// Extra argument for the agent CLI (repeatable).
    #[arg(long = "agent-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
    /// What the agent may do on its own: read-only, edit (the default: edit files in the
    /// worktree) or full (no prompts, no CLI sandbox), mapped to its CLI's flags.
    #[arg(long, value_enum, requires = "agent")]
    pub autonomy: Option<AutonomyArg>,
    /// Continue the agent's conversation: later iterations of the loop, and later tasks
    /// of the session, resume the conversation the last run recorded.
    #[arg(long = "continue", requires = "agent")]
    pub continue_conversation: bool,
    /// Run the agent again in the same worktree until it prints --completion-signal, at most
    /// this many times (a commit after each).
    #[arg(long, requires = "completion_signal")]
    pub max_iterations: Option<u32>,
    /// Text that means the agent is done (looked for in its parsed output).
    #[arg(long, value_name = "TEXT")]
    pub completion_signal: Option<String>,
    /// Time an agent that printed the signal has to exit, such as 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub completion_grace: Option<std::time::Duration>,
    /// Most turns (as the agent reports them) over all iterations.
    #[arg(long)]
    pub max_turns: Option<u64>,
    /// Most cost in US dollars (as the agent reports it) over all iterations.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Push the result branch to the repository's remote (with the runner's credentials).
    #[arg(long)]
    pub push: bool,
    /// Run the agent in a container from IMAGE, seeing only its worktree (needs a runner
    /// with capability docker).
    #[arg(long, value_name = "IMAGE")]
    pub container_image: Option<String>,
}

/// `kiln session ...`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a session; prints its id.
    Create {
        /// Repository: a URL, or a path on the runner's machine.
        #[arg(long)]
        repo: String,
        /// Ref to start from.
        #[arg(long = "ref", value_name = "REF")]
        base_ref: Option<String>,
        /// Branch for the session's commits [default: kiln/session-<id>].
        #[arg(long)]
        branch: Option<String>,
        /// Shell command run once before the session's first task (repeatable).
        #[arg(long = "setup", value_name = "CMD")]
        setup: Vec<String>,
    },
    /// Show a session.
    Show {
        /// The session id.
        id: String,
    },
    /// Close a session: cancel its queued tasks and remove its worktree.
    Close {
        /// The session id.
        id: String,
    },
}

/// `kiln exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The session id.
    pub session: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `kiln files`.
#[derive(Debug, Args)]
pub struct FilesArgs {
    /// A running task's id, or an open session's id.
    pub id: String,
    /// What to do.
    #[command(subcommand)]
    pub action: FilesCommand,
}

/// `kiln files ID ...`.
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// List a directory.
    Ls {
        /// The directory [default: the worktree's root].
        #[arg(default_value = ".")]
        path: String,
    },
    /// Copy a file out (to stdout, or to --output).
    Get {
        /// The file in the worktree.
        path: String,
        /// Where to write it.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Copy a local file in.
    Put {
        /// The local file.
        local: PathBuf,
        /// Where in the worktree.
        path: String,
    },
    /// Delete a file.
    Rm {
        /// The file in the worktree.
        path: String,
    },
}

/// `--database`: where the store lives.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DatabaseArg {
    /// PostgreSQL URL (postgres://user:password@host/db) to keep the store in, shared by
    /// every replica; unset keeps it in the data dir's SQLite file.
    #[arg(
        long = "database",
        env = "KILN_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: Option<String>,
}

/// `kiln migrate`.
#[derive(Clone, Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArg,
}
