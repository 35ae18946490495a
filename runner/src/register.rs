//! `kiln-runner register`: trade a registration token for a runner identity and save it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_protocol::{RegisterRequest, RegisterResponse, RunnerId};

use crate::config::{self, ConfigDir, SavedConfig};
use crate::secret::Secret;
use crate::server_url::ServerUrl;

/// What to do when the config dir already holds a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse, naming the file: the old identity would be lost.
    Refuse,
    /// Replace it.
    Replace,
}

/// A registration to perform.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The control plane.
    pub server: ServerUrl,
    /// The registration token.
    pub token: Secret,
    /// Runner name.
    pub name: String,
    /// Capabilities offered.
    pub capabilities: Vec<String>,
    /// Labels offered.
    pub labels: BTreeMap<String, String>,
    /// Agents run at once.
    pub max_concurrent: u32,
    /// Worktree location to record, if not the default.
    pub worktree_base: Option<PathBuf>,
    /// Cache location to record, if not the default.
    pub cache_dir: Option<PathBuf>,
    /// Kill grace to record, if not the default.
    pub kill_grace: Option<String>,
    /// Private CA to trust (and record), if any.
    pub ca_cert: Option<PathBuf>,
}

/// A successful registration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Registered {
    /// The new runner id.
    pub runner_id: RunnerId,
    /// Where the identity was saved.
    pub config_file: PathBuf,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The config dir already has a runner identity.
    #[error("{0} already holds a registered runner; pass --force to replace it")]
    AlreadyRegistered(String),
    /// The control plane could not be reached.
    #[error("cannot reach control plane at {server}: {detail}")]
    Unreachable {
        /// The server.
        server: String,
        /// Why.
        detail: String,
    },
    /// The control plane said no.
    #[error("registration refused by {server} ({status}): {reason}")]
    Refused {
        /// The server.
        server: String,
        /// HTTP status.
        status: u16,
        /// Its message.
        reason: String,
    },
    /// The identity could not be saved.
    #[error("cannot write {path}: {source}")]
    Save {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Registers with the control plane and writes runner.yaml (mode 0600) in `config_dir`.
/// `capabilities` plus `agent:<preset>` for each built-in agent CLI on this machine's PATH:
/// what the runner registers with (its hello cannot add more later).
fn with_installed_agents(capabilities: &[String]) -> Vec<String> {
    let mut all = capabilities.to_vec();
    for detected in crate::presets::capabilities(&crate::presets::builtin()) {
        if !all.contains(&detected) {
            all.push(detected);
        }
    }
    all
}

pub async fn register(
    config_dir: &ConfigDir,
    registration: Registration,
    existing: Existing,
) -> Result<Registered, RegisterError> {
    let yaml = config_dir.runner_yaml();
    let already = std::fs::read_to_string(&yaml).is_ok_and(|text| text.contains("runner_token:"));
    if already && existing == Existing::Refuse {
        return Err(RegisterError::AlreadyRegistered(yaml.display().to_string()));
    }
    let server = registration.server.to_string();
    let request = RegisterRequest {
        name: registration.name.clone(),
        capabilities: with_installed_agents(&registration.capabilities),
        labels: registration.labels.clone(),
        max_concurrent: registration.max_concurrent,
    };
    let tls = crate::tls::client_config(registration.ca_cert.as_deref()).map_err(|e| {
        RegisterError::Unreachable {
            server: server.clone(),
            detail: e.to_string(),
        }
    })?;
    let http = crate::tls::http_client(&tls).map_err(|e| RegisterError::Unreachable {
        server: server.clone(),
        detail: e.to_string(),
    })?;
    let response = http
        .post(registration.server.http("/v1/runners/register"))
        .bearer_auth(registration.token.expose())
        .json(&request)
        .send()
        .await
        .map_err(|e| RegisterError::Unreachable {
            server: server.clone(),
            detail: error_chain(&e),
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(body);
        return Err(RegisterError::Refused {
            server,
            status: status.as_u16(),
            reason,
        });
    }
    let answer: RegisterResponse =
        response
            .json()
            .await
            .map_err(|e| RegisterError::Unreachable {
                server: server.clone(),
                detail: format!("unreadable answer: {e}"),
            })?;
    let saved = SavedConfig {
        server_url: server,
        runner_id: answer.runner_id,
        runner_token: Secret::new(answer.runner_token),
        name: registration.name,
        max_concurrent_agents: registration.max_concurrent,
        capabilities: registration.capabilities,
        labels: registration.labels,
        worktree_base: registration.worktree_base,
        cache_dir: registration.cache_dir,
        kill_grace: registration.kill_grace,
        ca_cert: registration.ca_cert,
    };
    let config_file = config::save(config_dir, &saved).map_err(|source| RegisterError::Save {
        path: yaml.display().to_string(),
        source,
    })?;
    Ok(Registered {
        runner_id: answer.runner_id,
        config_file,
    })
}

/// An error and its causes on one line (reqwest hides the TLS reason in the chain).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
