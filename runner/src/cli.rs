//! Command-line interface of `kiln-runner`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kiln-runner: runs AI coding agents for a kiln control plane.
///
/// Exit codes: 0 success; 1 error; 2 bad usage or configuration; 3 `status`: no daemon is
/// running; 4 the control plane refused this runner (bad or revoked token).
#[derive(Debug, Parser)]
#[command(name = "kiln-runner", version)]
pub struct Cli {
    /// Directory of runner.yaml and the status socket.
    #[arg(long, global = true, env = "KILN_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
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
    pub log_format: crate::logging::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exchange a registration token for a runner identity, saved in runner.yaml.
    Register(RegisterArgs),
    /// Run the daemon: connect, take tasks, run agents.
    Run(RunArgs),
    /// Show whether the daemon is running and connected, and what it runs.
    Status,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for kiln-runner and its subcommands into a directory.
    #[command(hide = true)]
    Man {
        /// Directory to write the pages into.
        dir: PathBuf,
    },
}

/// Settings shared by `register` and `run`.
#[derive(Debug, Args)]
pub struct RunnerSettings {
    /// Runner name (default: hostname).
    #[arg(long)]
    pub name: Option<String>,
    /// A capability this runner offers (repeatable).
    #[arg(long = "capability", value_name = "CAP")]
    pub capabilities: Vec<String>,
    /// A label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Agents run at once.
    #[arg(long = "max-concurrent", value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// Where task worktrees are made.
    #[arg(long, value_name = "DIR")]
    pub worktree_base: Option<PathBuf>,
    /// Where repository mirrors are kept.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Time an agent gets between SIGTERM and SIGKILL, such as 10s.
    #[arg(long, value_name = "DURATION")]
    pub kill_grace: Option<String>,
    /// A private CA certificate (PEM) to trust for https:// and wss:// servers.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl RunnerSettings {
    /// Labels as a map, if any were given.
    pub fn label_map(&self) -> Option<BTreeMap<String, String>> {
        (!self.labels.is_empty()).then(|| self.labels.iter().cloned().collect())
    }

    /// Capabilities, if any were given.
    pub fn capability_list(&self) -> Option<Vec<String>> {
        (!self.capabilities.is_empty()).then(|| self.capabilities.clone())
    }
}

/// `kiln-runner register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Control plane URL (http://, https://, ws:// or wss://).
    #[arg(long, env = "KILN_SERVER_URL")]
    pub server: String,
    /// Registration token from `kiln token create`.
    #[arg(long, env = "KILN_REGISTRATION_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Replace an existing registration in the config dir.
    #[arg(long)]
    pub force: bool,
    /// Runner settings recorded with the registration.
    #[command(flatten)]
    pub settings: RunnerSettings,
}

/// `kiln-runner run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Control plane URL, overriding runner.yaml.
    #[arg(long)]
    pub server: Option<String>,
    /// Evict least recently used mirrors beyond this cache size, such as 20GiB.
    #[arg(long, value_name = "SIZE")]
    pub cache_max_size: Option<String>,
    /// Boot from the environment alone, inside a sandbox (also KILN_RUNNER_MODE=sandbox).
    #[arg(long)]
    pub sandbox_mode: bool,
    /// Run even as root (agents then run as root too). Prefer a dedicated user.
    #[arg(long, env = "KILN_ALLOW_ROOT")]
    pub allow_root: bool,
    /// Take one task, finish it, then exit (for ephemeral hosts).
    #[arg(long)]
    pub disconnect_after_task: bool,
    /// Exit after idling this long, such as 10m (for ephemeral hosts).
    #[arg(long, value_name = "DURATION")]
    pub disconnect_after_idle: Option<String>,
    /// Agent output streamed per attempt, such as 256M; later lines are counted, not sent.
    #[arg(long, value_name = "SIZE")]
    pub max_log_size: Option<String>,
    /// Serve Prometheus `/metrics` and JSON `/status` over HTTP on this address, such as
    /// 127.0.0.1:9464 (no token: bind it where only the monitoring can reach).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Settings overriding runner.yaml and the environment.
    #[command(flatten)]
    pub settings: RunnerSettings,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("label {text:?} is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("label {text:?} has an empty key"));
    }
    Ok((key.to_owned(), value.to_owned()))
}
