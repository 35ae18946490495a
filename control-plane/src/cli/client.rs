//! The CLI's HTTP client: finds the control plane and the admin token, and turns HTTP
//! errors into messages and exit codes.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::exit::{self, Exit};
use crate::api_types::ErrorBody;
use crate::data_dir::DataDir;

/// Where the CLI looks when nothing else names a server.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// A client of one control plane's API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
    token_hint: PathBuf,
}

impl ApiClient {
    /// Resolves the server (flag, env, data dir's server.url, default) and the admin token
    /// (flag, env, data dir's admin.token); trusts the system roots plus `ca_cert`.
    pub fn resolve(
        server: Option<String>,
        token: Option<String>,
        ca_cert: Option<&std::path::Path>,
        data_dir: &DataDir,
    ) -> anyhow::Result<Self> {
        let server = server
            .or_else(|| data_dir.read_server_url())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let server = server.trim_end_matches('/').to_owned();
        let tls =
            kiln_runner::tls::client_config(ca_cert).map_err(|e| Exit::with(exit::USAGE, e))?;
        let http = kiln_runner::tls::http_client(&tls)?;
        Ok(Self {
            http,
            server,
            token: token.or_else(|| data_dir.read_admin_token()),
            token_hint: data_dir.admin_token_file(),
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let token = self.token.as_deref().ok_or_else(|| {
            Exit::with(
                exit::UNAUTHORIZED,
                format!(
                    "no admin token: pass --token, set KILN_ADMIN_TOKEN, or run where `kiln serve` wrote {}",
                    self.token_hint.display()
                ),
            )
        })?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(token))
    }

    /// Sends a request and checks its status.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| {
            Exit::with(
                exit::ERROR,
                format!(
                    "cannot reach control plane at {}: {} (is `kiln serve` running?)",
                    self.server,
                    kiln_runner::register::error_chain(&e)
                ),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&body).map_or(body, |b| b.error);
        Err(Exit::with(exit::for_status(status.as_u16()), message))
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.send(self.request(reqwest::Method::GET, path)?).await?;
        Ok(response.json().await?)
    }

    /// `POST path` with a JSON body, answer as JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let response = self
            .send(self.request(reqwest::Method::POST, path)?.json(body))
            .await?;
        Ok(response.json().await?)
    }

    /// `GET path` as raw bytes.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self.send(self.request(reqwest::Method::GET, path)?).await?;
        Ok(response.bytes().await?.to_vec())
    }

    /// `GET path`, returning the response for streaming.
    pub async fn get_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.send(self.request(reqwest::Method::GET, path)?).await
    }
}
