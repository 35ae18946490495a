//! The Docker provider: one container per sandbox on this machine's engine, labelled with
//! its sandbox and owner so that a restarted control plane can reap orphans.

use std::process::Stdio;

use async_trait::async_trait;
use tokio::process::Command;

use super::{ForgeSpec, LiveBox, Provider, ProviderError};

/// Label holding a container's sandbox id.
const SANDBOX_LABEL: &str = "kiln.sandbox";

/// Label holding the owning control plane.
const OWNER_LABEL: &str = "kiln.owner";

/// Runs sandboxes as Docker containers.
#[derive(Clone, Debug)]
pub struct DockerProvider {
    /// Network mode for the containers (`host` lets them reach a control plane on loopback).
    pub network: String,
    /// Owner label, so several control planes on one engine leave each other's boxes alone.
    pub owner: String,
}

async fn docker(args: &[String]) -> Result<String, ProviderError> {
    docker_with_env(args, &[]).await
}

/// Runs docker with `env` set on the client, so values (the sandbox token) never appear
/// on a command line; `--env NAME` forwards them.
async fn docker_with_env(
    args: &[String],
    env: &[(String, String)],
) -> Result<String, ProviderError> {
    let output = Command::new("docker")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ProviderError(format!("cannot run docker: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ProviderError(format!(
            "docker {} failed: {}",
            args.first().map_or("", String::as_str),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn docker_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("docker").is_file()))
}

#[async_trait]
impl Provider for DockerProvider {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn forge(&self, spec: &ForgeSpec) -> Result<String, ProviderError> {
        let name = format!("kiln-sandbox-{}", spec.sandbox_id);
        let mut args: Vec<String> = vec![
            "run".into(),
            "--detach".into(),
            "--rm".into(),
            // No init process: the runner is PID 1, undumpable, so an agent in the box
            // cannot read the token from PID 1's environment.
            "--name".into(),
            name.clone(),
            "--label".into(),
            format!("{SANDBOX_LABEL}={}", spec.sandbox_id),
            "--label".into(),
            format!("{OWNER_LABEL}={}", self.owner),
            "--label".into(),
            format!("kiln.expires-at={}", spec.expires_at),
            "--network".into(),
            self.network.clone(),
        ];
        for (key, _) in &spec.env {
            args.extend(["--env".into(), key.clone()]);
        }
        for path in &spec.read_only_mounts {
            let path = path
                .to_str()
                .filter(|p| !p.contains([',', '"', '\n']))
                .ok_or_else(|| {
                    ProviderError(format!(
                        "cannot mount {} into a container: its path has a comma, quote or newline",
                        path.display()
                    ))
                })?;
            args.extend([
                "--mount".into(),
                format!("type=bind,source={path},target={path},readonly"),
            ]);
        }
        args.push(spec.image.clone());
        docker_with_env(&args, &spec.env).await?;
        Ok(name)
    }

    async fn burn(&self, handle: &str) -> Result<(), ProviderError> {
        match docker(&["rm".into(), "--force".into(), handle.into()]).await {
            Ok(_) => Ok(()),
            Err(e) if e.0.contains("No such container") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn live(&self) -> Result<Vec<LiveBox>, ProviderError> {
        if !docker_installed() {
            // No engine client, no containers: nothing to reap.
            return Ok(Vec::new());
        }
        let listing = docker(&[
            "ps".into(),
            "--all".into(),
            "--filter".into(),
            format!("label={OWNER_LABEL}={}", self.owner),
            "--format".into(),
            format!("{{{{.Names}}}}\t{{{{.Label \"{SANDBOX_LABEL}\"}}}}"),
        ])
        .await?;
        Ok(listing
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let (handle, sandbox) = line.split_once('\t').unwrap_or((line, ""));
                LiveBox {
                    handle: handle.to_owned(),
                    sandbox_id: sandbox.parse().ok(),
                }
            })
            .collect())
    }
}
