//! Forging a sandboxed task's box at submit: the checks, its runner identity and token,
//! the TTL, and the store records, all written before the box is forged in the background.

use kiln_protocol::{now_millis, validate, RunnerId, SandboxId};

use super::{Engine, EngineError};
use crate::api_types::SandboxRequest;
use crate::model::{NewTask, RunnerRecord, SandboxRecord, SandboxState};
use crate::sandbox::manager::{DEFAULT_SANDBOX_TTL, MAX_SANDBOX_TTL};
use crate::store::NewRunner;
use crate::tokens::{Token, TokenKind};

/// Stores `task` with a new sandbox and forges the box in the background.
impl Engine {
    /// Stores `task` with a new sandbox and forges the box in the background.
    pub async fn forge_for(
        &self,
        mut task: NewTask,
        request: &SandboxRequest,
    ) -> Result<NewTask, EngineError> {
        let sandboxes = self.sandboxes.as_ref().ok_or_else(|| {
            EngineError::Refused("this control plane has no sandbox provider".into())
        })?;
        if request.provider != sandboxes.provider_name() {
            return Err(EngineError::Refused(format!(
                "sandbox.provider {:?} is not available here (have: {})",
                request.provider,
                sandboxes.provider_name()
            )));
        }
        if task.workspace_id.is_some() {
            return Err(EngineError::Refused(
            "sandbox: a task in a workspace session runs on the session's runner, not in a sandbox"
                .into(),
        ));
        }
        if task.options.container.is_some() {
            return Err(EngineError::Refused(
                "sandbox: the box is the container; drop container (--container-image)".into(),
            ));
        }
        if let Some(image) = &request.image {
            validate::image(image)
                .map_err(|reason| EngineError::Refused(format!("sandbox.image {reason}")))?;
        }
        let mounts = local_repository(&task.repo)?;
        let ttl = request
            .ttl_ms
            .map_or(DEFAULT_SANDBOX_TTL, std::time::Duration::from_millis);
        if ttl.is_zero() || ttl > MAX_SANDBOX_TTL {
            return Err(EngineError::Refused(format!(
                "sandbox.ttl_ms must be more than 0 and at most {}",
                MAX_SANDBOX_TTL.as_millis()
            )));
        }
        let now = now_millis();
        let id = SandboxId::new();
        let token = Token::generate(TokenKind::Sandbox);
        let runner = RunnerRecord {
            id: RunnerId::new(),
            name: format!("sandbox-{id}"),
            // The box exists for this task: its runner is given what the task asks for (its
            // hello cannot add anything).
            capabilities: task.requires.clone(),
            labels: task.labels.clone(),
            max_concurrent: 1,
            version: None,
            created_at: now,
            last_seen_at: None,
            revoked_at: None,
            paused_at: None,
            drain_requested_at: None,
            rotation_requested_at: None,
            sandbox_id: Some(id),
        };
        let sandbox = SandboxRecord {
            id,
            task_id: task.id,
            runner_id: runner.id,
            provider: request.provider.clone(),
            image: request
                .image
                .clone()
                .unwrap_or_else(|| sandboxes.settings.default_image.clone()),
            handle: None,
            state: SandboxState::Forging,
            expires_at: now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            created_at: now,
            burned_at: None,
            reason: None,
        };
        // A box runs one attempt: a lost box is not retried in another.
        task.max_attempts = 1;
        task.sandbox_id = Some(id);
        let new_runner = NewRunner {
            record: runner,
            token_hash: token.hash(),
        };
        self.store
            .create_sandbox(&task, &sandbox, &new_runner)
            .await?;
        sandboxes.forge(self.clone(), sandbox, token.expose().to_owned(), mounts);
        Ok(task)
    }
}

/// A repository on this machine (a path or `file://` URL) is mounted read-only into the
/// box at the same path; it must be a git repository, so nothing else (a socket, `/`) is.
fn local_repository(repo: &str) -> Result<Vec<std::path::PathBuf>, EngineError> {
    let path = std::path::Path::new(repo.strip_prefix("file://").unwrap_or(repo));
    if !path.is_absolute() {
        return Ok(Vec::new());
    }
    let is_repository = path.join(".git").exists() || path.join("HEAD").is_file();
    if !path.is_dir() || !is_repository {
        return Err(EngineError::Refused(format!(
            "repo {repo:?} is not a git repository on the control plane's machine, so it cannot be mounted into a sandbox"
        )));
    }
    Ok(vec![path.to_path_buf()])
}
