//! Runner configuration. Precedence, lowest first: built-in defaults, `runner.yaml` in the
//! config dir, `KILN_*` environment variables, command-line flags.

mod container;
mod file;
mod paths;
pub mod sandbox;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use kiln_protocol::{validate, RunnerId};
use serde::Deserialize;

pub use file::{save, SavedConfig};
pub use paths::{default_cache_dir, default_config_dir, hostname, ConfigDir};

use crate::attempt::agent::DEFAULT_KILL_GRACE;
use crate::attempt::container::ContainerLimits;
use crate::presets::{Preset, PresetConfig};
use crate::rotation::TokenSource;
use crate::secret::Secret;
use crate::server_url::{BadServerUrl, ServerUrl};
use crate::workspace::spares::{DEFAULT_SPARE_WORKTREES, MAX_SPARE_WORKTREES};
use container::ContainerSection;

/// Files larger than this are not committed by default: 50 MiB keeps build artefacts and
/// datasets an agent leaves behind out of the result, and fits any source file.
pub const DEFAULT_MAX_COMMIT_FILE_BYTES: u64 = 50 << 20;

/// Agent output streamed per attempt by default: 512 MiB is hours of a very chatty agent,
/// and below the control plane's own default cap.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 512 << 20;

/// A fetch that moves no bytes for this long fails: a server that accepts and then says
/// nothing would otherwise hold the task (and a draining runner) as long as TCP lets it,
/// while a slow but moving fetch of a large repository is never cut.
pub const DEFAULT_FETCH_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Agents run at once when nothing says otherwise: one, as GitLab Runner's `concurrent`.
pub const DEFAULT_MAX_CONCURRENT_AGENTS: u32 = 1;

/// Most agents one runner may run at once.
pub const MAX_CONCURRENT_AGENTS_LIMIT: u32 = 256;

/// Environment variables read as configuration, and the key each sets.
const ENV_KEYS: [(&str, &str); 20] = [
    ("KILN_SERVER_URL", "server_url"),
    ("KILN_RUNNER_ID", "runner_id"),
    ("KILN_RUNNER_TOKEN", "runner_token"),
    ("KILN_RUNNER_NAME", "name"),
    ("KILN_MAX_CONCURRENT_AGENTS", "max_concurrent_agents"),
    ("KILN_CAPABILITIES", "capabilities"),
    ("KILN_WORKTREE_BASE", "worktree_base"),
    ("KILN_CACHE_DIR", "cache_dir"),
    ("KILN_KILL_GRACE", "kill_grace"),
    ("KILN_CACHE_MAX_SIZE", "cache_max_size"),
    ("KILN_DISCONNECT_AFTER_TASK", "disconnect_after_task"),
    ("KILN_DISCONNECT_AFTER_IDLE", "disconnect_after_idle"),
    ("KILN_CA_CERT", "ca_cert"),
    ("KILN_MAX_LOG_SIZE", "max_log_size"),
    ("KILN_METRICS_LISTEN", "metrics_listen"),
    ("KILN_MAX_COMMIT_FILE_SIZE", "max_commit_file_size"),
    ("KILN_SPARE_WORKTREES", "spare_worktrees"),
    ("KILN_FETCH_STALL_TIMEOUT", "fetch_stall_timeout"),
    ("KILN_AGENT_HIDDEN_PATHS", "agent_hidden_paths"),
    ("KILN_AGENT_SHARED_PATHS", "agent_shared_paths"),
];

/// Settings given as command-line flags; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--server`.
    pub server_url: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--max-concurrent`.
    pub max_concurrent_agents: Option<u32>,
    /// `--capability` (repeatable).
    pub capabilities: Option<Vec<String>>,
    /// `--label k=v` (repeatable).
    pub labels: Option<BTreeMap<String, String>>,
    /// `--worktree-base`.
    pub worktree_base: Option<PathBuf>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--kill-grace`, such as `10s`.
    pub kill_grace: Option<String>,
    /// `--cache-max-size`, such as `20GiB`.
    pub cache_max_size: Option<String>,
    /// `--disconnect-after-task`.
    pub disconnect_after_task: Option<bool>,
    /// `--disconnect-after-idle`, such as `10m`.
    pub disconnect_after_idle: Option<String>,
    /// `--ca-cert`: a private CA to trust (PEM).
    pub ca_cert: Option<PathBuf>,
    /// `--max-log-size`, such as `256M`.
    pub max_log_size: Option<String>,
    /// `--metrics-listen`, such as `127.0.0.1:9464`.
    pub metrics_listen: Option<String>,
}

/// The runner's configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or has a value of the wrong type.
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    /// A value is of the right type but not acceptable.
    #[error("{key} {reason}")]
    Invalid {
        /// The key, as in runner.yaml.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The server URL is malformed.
    #[error("server_url: {0}")]
    ServerUrl(#[from] BadServerUrl),
    /// A setting needed to connect is missing.
    #[error("{0}")]
    Missing(String),
}

#[derive(Debug, Deserialize)]
struct Layered {
    server_url: Option<String>,
    runner_id: Option<RunnerId>,
    runner_token: Option<Secret>,
    name: Option<String>,
    max_concurrent_agents: u32,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    worktree_base: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    kill_grace: Option<String>,
    cache_max_size: Option<String>,
    #[serde(default)]
    disconnect_after_task: bool,
    disconnect_after_idle: Option<String>,
    ca_cert: Option<PathBuf>,
    max_log_size: Option<String>,
    metrics_listen: Option<String>,
    max_commit_file_size: Option<String>,
    spare_worktrees: Option<u32>,
    fetch_stall_timeout: Option<String>,
    #[serde(default)]
    agent_hidden_paths: Vec<PathBuf>,
    #[serde(default)]
    agent_shared_paths: Vec<PathBuf>,
    #[serde(default)]
    presets: BTreeMap<String, PresetConfig>,
    #[serde(default)]
    container: ContainerSection,
}

/// The runner's settings after all layers are merged and checked.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Where runner.yaml and the status socket live.
    pub config_dir: ConfigDir,
    /// The control plane, if known.
    pub server_url: Option<ServerUrl>,
    /// This runner's id, once registered.
    pub runner_id: Option<RunnerId>,
    /// This runner's token, once registered.
    pub runner_token: Option<Secret>,
    /// Name shown to operators.
    pub name: String,
    /// Agents run at once.
    pub max_concurrent_agents: u32,
    /// Capabilities offered to tasks.
    pub capabilities: Vec<String>,
    /// Labels offered to tasks.
    pub labels: BTreeMap<String, String>,
    /// Where task worktrees are made.
    pub worktree_base: PathBuf,
    /// Where repository mirrors are kept.
    pub cache_dir: PathBuf,
    /// Time an agent gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Mirror cache size above which unused mirrors are evicted, least recently used first.
    pub cache_max_bytes: Option<u64>,
    /// Exit after one task (for ephemeral hosts).
    pub disconnect_after_task: bool,
    /// Exit after idling this long (for ephemeral hosts).
    pub disconnect_after_idle: Option<Duration>,
    /// A private CA to trust besides the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Agent output streamed per attempt.
    pub max_log_bytes: u64,
    /// Files larger than this are left out of result commits.
    pub max_commit_file_bytes: u64,
    /// Agent presets: the built-in ones plus those in runner.yaml.
    pub presets: Vec<Preset>,
    /// Limits of agent containers (the docker executor).
    pub container_limits: ContainerLimits,
    /// Where to serve `/metrics` and `/status` over HTTP, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Worktrees checked out ahead of tasks, at most one per repository (0: none).
    pub spare_worktrees: u32,
    /// A fetch over HTTP that moves no bytes for this long has stalled and fails.
    pub fetch_stall_timeout: Duration,
    /// Paths hidden from agents besides the runner's own directories and credentials.
    pub agent_hidden_paths: Vec<PathBuf>,
    /// Paths every agent sees and may write (shared caches): what one writes there, the
    /// others can read.
    pub agent_shared_paths: Vec<PathBuf>,
}

/// What the runner needs to connect: where, and as whom.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The control plane.
    pub server_url: ServerUrl,
    /// This runner's token.
    pub token: Secret,
}

impl RunnerConfig {
    /// Loads the layers from `config_dir`, the process environment and `flags`.
    pub fn load(config_dir: &ConfigDir, flags: &Overrides) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_with_env(config_dir, &env, flags)
    }

    /// Like [`RunnerConfig::load`], with the environment given explicitly.
    pub fn load_with_env(
        config_dir: &ConfigDir,
        env: &HashMap<String, String>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        // Renamed to what the `KILN` source maps to each key (KILN_RUNNER_NAME sets `name`).
        let known_env: HashMap<String, String> = ENV_KEYS
            .iter()
            .filter_map(|(var, key)| {
                env.get(*var)
                    .map(|v| (format!("KILN_{}", key.to_uppercase()), v.clone()))
            })
            .collect();
        let layered: Layered = Config::builder()
            .set_default("max_concurrent_agents", DEFAULT_MAX_CONCURRENT_AGENTS)?
            .add_source(
                File::from(config_dir.runner_yaml())
                    .format(FileFormat::Yaml)
                    .required(false),
            )
            .add_source(
                Environment::with_prefix("KILN")
                    .source(Some(known_env))
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("capabilities")
                    .with_list_parse_key("agent_hidden_paths")
                    .with_list_parse_key("agent_shared_paths"),
            )
            .set_override_option("server_url", flags.server_url.clone())?
            .set_override_option("name", flags.name.clone())?
            .set_override_option("max_concurrent_agents", flags.max_concurrent_agents)?
            .set_override_option("capabilities", flags.capabilities.clone())?
            .set_override_option(
                "labels",
                flags
                    .labels
                    .clone()
                    .map(|l| l.into_iter().collect::<config::Map<String, String>>()),
            )?
            .set_override_option("worktree_base", path_text(&flags.worktree_base))?
            .set_override_option("cache_dir", path_text(&flags.cache_dir))?
            .set_override_option("kill_grace", flags.kill_grace.clone())?
            .set_override_option("cache_max_size", flags.cache_max_size.clone())?
            .set_override_option("disconnect_after_task", flags.disconnect_after_task)?
            .set_override_option("disconnect_after_idle", flags.disconnect_after_idle.clone())?
            .set_override_option("ca_cert", path_text(&flags.ca_cert))?
            .set_override_option("max_log_size", flags.max_log_size.clone())?
            .set_override_option("metrics_listen", flags.metrics_listen.clone())?
            .build()?
            .try_deserialize()?;
        Self::check(config_dir, layered)
    }

    fn check(config_dir: &ConfigDir, layered: Layered) -> Result<Self, ConfigError> {
        let invalid = |key, reason| ConfigError::Invalid { key, reason };
        let name = layered.name.unwrap_or_else(paths::hostname);
        validate::name(&name).map_err(|r| invalid("name", r))?;
        if !(1..=MAX_CONCURRENT_AGENTS_LIMIT).contains(&layered.max_concurrent_agents) {
            return Err(invalid(
                "max_concurrent_agents",
                format!(
                    "is {}; it must be 1 to {MAX_CONCURRENT_AGENTS_LIMIT}",
                    layered.max_concurrent_agents
                ),
            ));
        }
        for capability in &layered.capabilities {
            validate::name(capability)
                .map_err(|r| invalid("capabilities", format!("{capability:?} {r}")))?;
        }
        let server_url = layered
            .server_url
            .as_deref()
            .map(ServerUrl::parse)
            .transpose()?;
        let kill_grace = values::duration("kill_grace", layered.kill_grace.as_deref())?
            .unwrap_or(DEFAULT_KILL_GRACE);
        let disconnect_after_idle = values::duration(
            "disconnect_after_idle",
            layered.disconnect_after_idle.as_deref(),
        )?;
        let cache_max_bytes = values::size("cache_max_size", layered.cache_max_size.as_deref())?;
        let max_commit_file_bytes = values::size(
            "max_commit_file_size",
            layered.max_commit_file_size.as_deref(),
        )?
        .unwrap_or(DEFAULT_MAX_COMMIT_FILE_BYTES);
        let presets =
            crate::presets::all(&layered.presets).map_err(|reason| ConfigError::Invalid {
                key: "presets",
                reason,
            })?;
        let max_log_bytes = values::size("max_log_size", layered.max_log_size.as_deref())?
            .unwrap_or(DEFAULT_MAX_LOG_BYTES);
        let container_limits = container::limits(&layered.container)?;
        let metrics_listen = layered
            .metrics_listen
            .as_deref()
            .map(|text| {
                text.parse().map_err(|_| {
                    invalid(
                        "metrics_listen",
                        format!("{text:?} is not an address such as 127.0.0.1:9464"),
                    )
                })
            })
            .transpose()?;
        let spare_worktrees = layered.spare_worktrees.unwrap_or(DEFAULT_SPARE_WORKTREES);
        if spare_worktrees > MAX_SPARE_WORKTREES {
            return Err(invalid(
                "spare_worktrees",
                format!("is {spare_worktrees}; it must be 0 to {MAX_SPARE_WORKTREES}"),
            ));
        }
        let fetch_stall_timeout = values::duration(
            "fetch_stall_timeout",
            layered.fetch_stall_timeout.as_deref(),
        )?
        .unwrap_or(DEFAULT_FETCH_STALL_TIMEOUT);
        if fetch_stall_timeout < Duration::from_secs(1) {
            return Err(invalid(
                "fetch_stall_timeout",
                "must be at least 1s (git counts it in whole seconds)".to_owned(),
            ));
        }
        // Paths are made absolute here: agents and their shims run from elsewhere, and a
        // fence must hide exactly these directories.
        let cache_dir = absolute(layered.cache_dir.unwrap_or_else(default_cache_dir));
        let worktree_base = absolute(
            layered
                .worktree_base
                .unwrap_or_else(|| cache_dir.join("worktrees")),
        );
        Ok(Self {
            config_dir: config_dir.clone(),
            server_url,
            runner_id: layered.runner_id,
            runner_token: layered.runner_token,
            name,
            max_concurrent_agents: layered.max_concurrent_agents,
            capabilities: layered.capabilities,
            labels: layered.labels,
            worktree_base,
            cache_dir,
            kill_grace,
            cache_max_bytes,
            disconnect_after_task: layered.disconnect_after_task,
            disconnect_after_idle,
            ca_cert: layered.ca_cert,
            max_log_bytes,
            max_commit_file_bytes,
            presets,
            container_limits,
            metrics_listen,
            spare_worktrees,
            fetch_stall_timeout,
            agent_hidden_paths: layered
                .agent_hidden_paths
                .into_iter()
                .map(absolute)
                .collect(),
            agent_shared_paths: layered
                .agent_shared_paths
                .into_iter()
                .map(absolute)
                .collect(),
        })
    }

    /// Where the token came from: the environment (`KILN_RUNNER_TOKEN`) wins over the file.
    pub fn token_source(&self) -> TokenSource {
        match std::env::var_os("KILN_RUNNER_TOKEN") {
            Some(_) => TokenSource::Environment,
            None => TokenSource::File(self.config_dir.clone()),
        }
    }

    /// Where to connect and with what token, or which setting is missing.
    pub fn identity(&self) -> Result<Identity, ConfigError> {
        let yaml = self.config_dir.runner_yaml();
        let server_url = self.server_url.clone().ok_or_else(|| {
            ConfigError::Missing(format!(
                "no server URL: run `kiln-runner register`, set KILN_SERVER_URL, or add server_url to {}",
                yaml.display()
            ))
        })?;
        let token = self.runner_token.clone().ok_or_else(|| {
            ConfigError::Missing(format!(
                "no runner token: run `kiln-runner register`, or set KILN_RUNNER_TOKEN (looked in {})",
                yaml.display()
            ))
        })?;
        Ok(Identity { server_url, token })
    }
}

/// `path` resolved against the working directory if it is relative.
pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn path_text(path: &Option<PathBuf>) -> Option<String> {
    path.as_deref()
        .map(Path::to_string_lossy)
        .map(|p| p.into_owned())
}

#[cfg(test)]
mod tests;
