//! Sandbox mode: a runner inside a sandbox boots from its environment alone (no runner.yaml,
//! no registration), as the control plane that forged the sandbox set it up.

use std::collections::HashMap;
use std::path::PathBuf;

use kiln_protocol::{RunnerId, UnixMillis};

use super::{ConfigDir, ConfigError, Overrides, RunnerConfig};
use crate::secret::Secret;
use crate::server_url::ServerUrl;

/// Config dir in sandbox images when `KILN_CONFIG_DIR` is not set.
pub const SANDBOX_CONFIG_DIR: &str = "/var/lib/kiln/config";

/// Token prefix of sandbox-scoped runner tokens.
const SANDBOX_TOKEN_PREFIX: &str = "kiln_sbx_";

/// How the runner is told which mode to run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Registered with `kiln-runner register`: identity in runner.yaml.
    Registered,
    /// Booted in a sandbox from `KILN_*` variables.
    Sandbox,
}

impl Mode {
    /// `--sandbox-mode`, else `KILN_RUNNER_MODE` (`sandbox` or `registered`), else registered.
    pub fn from(flag: bool, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        if flag {
            return Ok(Self::Sandbox);
        }
        match env.get("KILN_RUNNER_MODE").map(String::as_str) {
            None | Some("registered") | Some("") => Ok(Self::Registered),
            Some("sandbox") => Ok(Self::Sandbox),
            Some(other) => Err(invalid(
                "KILN_RUNNER_MODE",
                format!("{other:?} is not `sandbox` or `registered`"),
            )),
        }
    }
}

fn invalid(variable: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: variable,
        reason,
    }
}

fn required<'a>(
    env: &'a HashMap<String, String>,
    variable: &'static str,
) -> Result<&'a str, ConfigError> {
    env.get(variable)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ConfigError::Missing(format!("{variable} is not set: sandbox mode needs it"))
        })
}

/// What a sandbox runner knows besides its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxIdentity {
    /// The sandbox it serves.
    pub sandbox_id: String,
    /// When the sandbox's time is up, if it has a TTL.
    pub expires_at: Option<UnixMillis>,
}

impl RunnerConfig {
    /// The configuration of a runner in a sandbox, from the environment alone: defaults plus
    /// `KILN_SERVER_URL`, `KILN_RUNNER_ID`, `KILN_RUNNER_TOKEN`, `KILN_SANDBOX_ID`, and the
    /// optional `KILN_SANDBOX_WORKTREE_BASE`, `KILN_WORKTREE_BASE`, `KILN_CONFIG_DIR`,
    /// `KILN_SANDBOX_EXPIRES_AT` (Unix ms). Every error names the variable.
    pub fn from_sandbox_env(
        env: &HashMap<String, String>,
    ) -> Result<(Self, SandboxIdentity), ConfigError> {
        let server_url = ServerUrl::parse(required(env, "KILN_SERVER_URL")?)
            .map_err(|e| invalid("KILN_SERVER_URL", e.to_string()))?;
        let runner_id: RunnerId = required(env, "KILN_RUNNER_ID")?
            .parse()
            .map_err(|_| invalid("KILN_RUNNER_ID", "is not a runner id (a UUID)".into()))?;
        let token = required(env, "KILN_RUNNER_TOKEN")?;
        if !token.starts_with(SANDBOX_TOKEN_PREFIX) {
            return Err(invalid(
                "KILN_RUNNER_TOKEN",
                format!("is not a sandbox token ({SANDBOX_TOKEN_PREFIX}...)"),
            ));
        }
        let sandbox_id = required(env, "KILN_SANDBOX_ID")?;
        kiln_protocol::validate::name(sandbox_id).map_err(|r| invalid("KILN_SANDBOX_ID", r))?;
        let expires_at = env
            .get("KILN_SANDBOX_EXPIRES_AT")
            .map(|v| {
                v.parse::<UnixMillis>().map_err(|_| {
                    invalid(
                        "KILN_SANDBOX_EXPIRES_AT",
                        format!("{v:?} is not Unix milliseconds"),
                    )
                })
            })
            .transpose()?;
        let config_dir = ConfigDir::new(
            env.get("KILN_CONFIG_DIR")
                .map_or_else(|| PathBuf::from(SANDBOX_CONFIG_DIR), PathBuf::from),
        );
        let worktree_base = env
            .get("KILN_SANDBOX_WORKTREE_BASE")
            .or_else(|| env.get("KILN_WORKTREE_BASE"))
            .map(PathBuf::from);
        // Only the sandbox variables count: a stray runner.yaml is ignored.
        let empty = tempfile::tempdir()
            .map_err(|e| ConfigError::Missing(format!("cannot make a temp dir: {e}")))?;
        let flags = Overrides {
            worktree_base,
            ..Overrides::default()
        };
        let mut sandbox_env: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "KILN_CACHE_DIR"
                        | "KILN_MAX_CONCURRENT_AGENTS"
                        | "KILN_KILL_GRACE"
                        | "KILN_CAPABILITIES"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sandbox_env.insert("KILN_RUNNER_NAME".into(), format!("sandbox-{sandbox_id}"));
        let mut config = Self::load_with_env(&ConfigDir::new(empty.path()), &sandbox_env, &flags)?;
        config.config_dir = config_dir;
        config.server_url = Some(server_url);
        config.runner_id = Some(runner_id);
        config.runner_token = Some(Secret::new(token));
        let identity = SandboxIdentity {
            sandbox_id: sandbox_id.to_owned(),
            expires_at,
        };
        Ok((config, identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn complete() -> HashMap<String, String> {
        env(&[
            ("KILN_SERVER_URL", "http://127.0.0.1:7700"),
            ("KILN_RUNNER_ID", "01930000-0000-7000-8000-000000000002"),
            ("KILN_RUNNER_TOKEN", "kiln_sbx_abc"),
            ("KILN_SANDBOX_ID", "01930000-0000-7000-8000-000000000003"),
            ("KILN_SANDBOX_WORKTREE_BASE", "/work"),
            ("KILN_SANDBOX_EXPIRES_AT", "1700000000000"),
        ])
    }

    #[test]
    fn boots_from_the_environment_alone() {
        let (config, identity) = RunnerConfig::from_sandbox_env(&complete()).unwrap();
        assert_eq!(config.worktree_base, PathBuf::from("/work"));
        assert_eq!(
            config.config_dir.path(),
            std::path::Path::new(SANDBOX_CONFIG_DIR)
        );
        assert!(config.identity().is_ok());
        assert_eq!(identity.expires_at, Some(1_700_000_000_000));
    }

    #[test]
    fn each_missing_or_bad_variable_is_named() {
        for variable in [
            "KILN_SERVER_URL",
            "KILN_RUNNER_ID",
            "KILN_RUNNER_TOKEN",
            "KILN_SANDBOX_ID",
        ] {
            let mut env = complete();
            env.remove(variable);
            let error = RunnerConfig::from_sandbox_env(&env)
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{error}");
        }
        for (variable, bad) in [
            ("KILN_SERVER_URL", "nowhere"),
            ("KILN_RUNNER_ID", "seven"),
            ("KILN_RUNNER_TOKEN", "kiln_rnr_x"),
            ("KILN_SANDBOX_EXPIRES_AT", "soon"),
        ] {
            let mut env = complete();
            env.insert(variable.into(), bad.into());
            let error = RunnerConfig::from_sandbox_env(&env)
                .unwrap_err()
                .to_string();
            assert!(error.contains(variable), "{error}");
        }
        let error = Mode::from(false, &env(&[("KILN_RUNNER_MODE", "cloud")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("KILN_RUNNER_MODE"), "{error}");
    }
}
