//! Applying a token rotation from the control plane: save the new token to runner.yaml
//! (atomically, 0600), then use it for every later connection and upload.

use crate::config::ConfigDir;
use crate::secret::{CurrentToken, Secret};

/// Where the runner's token came from, which decides where a new one is saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// runner.yaml in the config dir: the new token replaces the old one there.
    File(ConfigDir),
    /// `KILN_RUNNER_TOKEN`: the process uses the new token, but cannot save it.
    Environment,
}

/// Saves and adopts `token`. An error means it was not saved: the runner must not confirm.
pub fn apply(source: &TokenSource, current: &CurrentToken, token: Secret) -> Result<(), String> {
    if let TokenSource::File(dir) = source {
        let path = dir.runner_yaml();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let quoted = serde_json::to_string(token.expose()).map_err(|e| e.to_string())?;
        let mut replaced = false;
        let lines: Vec<String> = text
            .lines()
            .map(
                |line| match line.trim_start().starts_with("runner_token:") {
                    true => {
                        replaced = true;
                        format!("runner_token: {quoted}")
                    }
                    false => line.to_owned(),
                },
            )
            .collect();
        if !replaced {
            return Err(format!(
                "{} has no runner_token line to replace",
                path.display()
            ));
        }
        let contents = lines.join("\n") + "\n";
        crate::atomic_file::write(&path, contents.as_bytes(), crate::atomic_file::SECRET_MODE)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    } else {
        tracing::warn!("runner token rotated, but it came from KILN_RUNNER_TOKEN: update that variable before the next restart");
    }
    current.set(token);
    Ok(())
}
