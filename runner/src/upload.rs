//! Uploading an attempt's artifacts (bundle, diff) to the control plane over HTTP, retrying
//! through outages so that a result is not lost to a control-plane restart.

use std::time::Duration;

use backoff::backoff::Backoff as _;
use backoff::ExponentialBackoff;
use kiln_protocol::TaskId;
use tokio_util::sync::CancellationToken;

use crate::secret::CurrentToken;
use crate::server_url::ServerUrl;

/// How long an upload keeps retrying through an unreachable or failing control plane.
/// Ten minutes covers a control-plane restart or deploy with a wide margin.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// Longest wait between upload retries.
const UPLOAD_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Time one upload request may take, for bundles up to the server's size limit.
const UPLOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends artifacts as this runner.
#[derive(Clone, Debug)]
pub struct Uploader {
    http: reqwest::Client,
    server: ServerUrl,
    token: CurrentToken,
}

impl Uploader {
    /// An uploader to `server` with the runner's `token`.
    pub fn new(http: reqwest::Client, server: ServerUrl, token: CurrentToken) -> Self {
        Self {
            http,
            server,
            token,
        }
    }

    /// Uploads `data` as artifact `kind` of the attempt. Retries transient failures until
    /// the deadline or `cancel`; a refusal (4xx) fails at once.
    pub async fn put(
        &self,
        task: TaskId,
        attempt: u32,
        kind: &str,
        data: Vec<u8>,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let url = self.server.http(&format!(
            "/v1/tasks/{task}/attempts/{attempt}/artifacts/{kind}"
        ));
        let mut backoff = ExponentialBackoff {
            max_interval: UPLOAD_MAX_BACKOFF,
            max_elapsed_time: Some(UPLOAD_DEADLINE),
            ..ExponentialBackoff::default()
        };
        loop {
            let sent = self
                .http
                .put(&url)
                .bearer_auth(self.token.get().expose())
                .timeout(UPLOAD_REQUEST_TIMEOUT)
                .body(data.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if response.status().is_client_error() => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Err(format!("upload of {kind} refused ({status}): {body}"));
                }
                Ok(response) => format!("server answered {}", response.status()),
                Err(e) => e.to_string(),
            };
            let Some(delay) = backoff.next_backoff() else {
                return Err(format!("upload of {kind} failed: {failure}"));
            };
            tracing::warn!(%task, attempt, kind, error = %failure, "upload failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Err(format!("upload of {kind} abandoned: runner stopping")),
            }
        }
    }
}
