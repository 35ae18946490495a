//! Writing runner.yaml: atomically, mode 0600 (it holds the runner token).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use kiln_protocol::RunnerId;

use super::ConfigDir;
use crate::atomic_file::{self, SECRET_MODE};
use crate::secret::Secret;

/// What `kiln-runner register` records.
#[derive(Clone, Debug)]
pub struct SavedConfig {
    /// The control plane.
    pub server_url: String,
    /// The runner's id.
    pub runner_id: RunnerId,
    /// The runner's token.
    pub runner_token: Secret,
    /// The runner's name.
    pub name: String,
    /// Agents run at once.
    pub max_concurrent_agents: u32,
    /// Capabilities offered.
    pub capabilities: Vec<String>,
    /// Labels offered.
    pub labels: BTreeMap<String, String>,
    /// Worktree location, if not the default.
    pub worktree_base: Option<PathBuf>,
    /// Cache location, if not the default.
    pub cache_dir: Option<PathBuf>,
    /// SIGTERM-to-SIGKILL grace, if not the default.
    pub kill_grace: Option<String>,
    /// Private CA to trust, if any.
    pub ca_cert: Option<PathBuf>,
}

/// A YAML scalar: JSON string quoting is valid YAML double-quoted style.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn render(config: &SavedConfig) -> String {
    let mut yaml =
        String::from("# kiln runner configuration, written by `kiln-runner register`.\n");
    yaml.push_str("# It holds this runner's token: keep it mode 0600.\n");
    let mut line = |key: &str, value: String| yaml.push_str(&format!("{key}: {value}\n"));
    line("server_url", quoted(&config.server_url));
    line("runner_id", quoted(&config.runner_id.to_string()));
    line("runner_token", quoted(config.runner_token.expose()));
    line("name", quoted(&config.name));
    line(
        "max_concurrent_agents",
        config.max_concurrent_agents.to_string(),
    );
    let capabilities: Vec<String> = config.capabilities.iter().map(|c| quoted(c)).collect();
    line("capabilities", format!("[{}]", capabilities.join(", ")));
    let labels: Vec<String> = config
        .labels
        .iter()
        .map(|(k, v)| format!("{}: {}", quoted(k), quoted(v)))
        .collect();
    line("labels", format!("{{{}}}", labels.join(", ")));
    if let Some(path) = &config.worktree_base {
        line("worktree_base", quoted(&path.to_string_lossy()));
    }
    if let Some(path) = &config.cache_dir {
        line("cache_dir", quoted(&path.to_string_lossy()));
    }
    if let Some(grace) = &config.kill_grace {
        line("kill_grace", quoted(grace));
    }
    if let Some(path) = &config.ca_cert {
        line("ca_cert", quoted(&path.to_string_lossy()));
    }
    yaml
}

/// Writes runner.yaml in `dir`, replacing any earlier one atomically.
pub fn save(dir: &ConfigDir, config: &SavedConfig) -> io::Result<PathBuf> {
    let path = dir.runner_yaml();
    atomic_file::write(&path, render(config).as_bytes(), SECRET_MODE)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, RunnerConfig};

    #[test]
    fn saved_file_loads_back_with_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let config_dir = ConfigDir::new(dir.path());
        let saved = SavedConfig {
            server_url: "http://127.0.0.1:7700".into(),
            runner_id: RunnerId::new(),
            runner_token: Secret::new("kiln_rnr_x\"y"),
            name: "box: one".into(),
            max_concurrent_agents: 3,
            capabilities: vec!["docker".into(), "gpu".into()],
            labels: BTreeMap::from([("zone".into(), "eu #1".into())]),
            worktree_base: None,
            cache_dir: Some("/var/cache/kiln".into()),
            kill_grace: Some("3s".into()),
            ca_cert: None,
        };
        save(&config_dir, &saved).unwrap();
        let env = Default::default();
        let loaded = RunnerConfig::load_with_env(&config_dir, &env, &Overrides::default()).unwrap();
        assert_eq!(loaded.runner_id, Some(saved.runner_id));
        assert_eq!(loaded.runner_token, Some(saved.runner_token));
        assert_eq!(loaded.name, saved.name);
        assert_eq!(loaded.max_concurrent_agents, 3);
        assert_eq!(loaded.capabilities, saved.capabilities);
        assert_eq!(loaded.labels, saved.labels);
        assert_eq!(loaded.cache_dir, PathBuf::from("/var/cache/kiln"));
        assert_eq!(
            loaded.worktree_base,
            PathBuf::from("/var/cache/kiln/worktrees")
        );
    }
}
