//! `kiln dev`: a control plane on embedded SQLite plus one registered local runner in the
//! same process, ready to take tasks.

use std::sync::Arc;

use anyhow::Context as _;
use kiln_protocol::now_millis;
use kiln_runner::config::{ConfigDir, Overrides, RunnerConfig};
use kiln_runner::daemon::{self, Signals};
use kiln_runner::register::{self, Existing, Registration};
use kiln_runner::secret::Secret;
use kiln_runner::server_url::ServerUrl;
use tokio_util::sync::CancellationToken;

use crate::data_dir::DataDir;
use crate::model::RegistrationTokenRecord;
use crate::serve::{self, ServeOptions};
use crate::store::Store;
use crate::tokens::{Token, TokenKind};

/// Lifetime of the registration token the dev runner uses: it is spent at once.
const DEV_REGISTRATION_TTL_MS: i64 = 60_000;

/// Runs until `signals` drain the runner; then stops the server.
pub async fn run(options: ServeOptions, slots: u32, signals: Signals) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let prepared = serve::prepare(&options, shutdown.clone()).await?;
    let url = prepared.url.clone();
    let store = Arc::clone(&prepared.state.engine.store);
    let server = tokio::spawn(prepared.run());

    let runner_dir = ConfigDir::new(options.data_dir.path().join("dev-runner"));
    let overrides = Overrides {
        server_url: Some(url.clone()),
        max_concurrent_agents: Some(slots),
        ..Overrides::default()
    };
    ensure_registered(&*store, &runner_dir, &url, slots).await?;
    let mut config =
        RunnerConfig::load(&runner_dir, &overrides).context("dev runner configuration")?;
    // The data dir holds the admin token and the database: no agent may read them.
    config
        .agent_hidden_paths
        .push(options.data_dir.path().to_path_buf());
    print_banner(&url, &options.data_dir, &config);
    let result = daemon::run(config, None, signals)
        .await
        .context("dev runner stopped");
    shutdown.cancel();
    server.await.context("server task failed")??;
    result
}

/// Registers the dev runner through the real registration endpoint, unless runner.yaml
/// already holds a token this control plane knows.
async fn ensure_registered(
    store: &dyn Store,
    dir: &ConfigDir,
    url: &str,
    slots: u32,
) -> anyhow::Result<()> {
    let existing = RunnerConfig::load(dir, &Overrides::default())
        .ok()
        .and_then(|c| c.runner_token);
    if let Some(token) = existing {
        let known = store
            .runner_by_token(&Token::from_secret(token.expose()).hash())
            .await?;
        if known.is_some_and(|r| r.revoked_at.is_none()) {
            return Ok(());
        }
    }
    let token = Token::generate(TokenKind::Registration);
    let now = now_millis();
    let record = RegistrationTokenRecord {
        id: uuid::Uuid::now_v7().to_string(),
        uses_left: Some(1),
        expires_at: Some(now + DEV_REGISTRATION_TTL_MS),
        created_at: now,
    };
    store
        .create_registration_token(&record, &token.hash())
        .await?;
    let base = dir.path();
    let registration = Registration {
        server: ServerUrl::parse(url)?,
        token: Secret::new(token.expose()),
        name: format!("dev-{}", kiln_runner::config::hostname()),
        capabilities: Vec::new(),
        labels: Default::default(),
        max_concurrent: slots,
        worktree_base: Some(base.join("worktrees")),
        cache_dir: Some(base.join("cache")),
        kill_grace: None,
        ca_cert: None,
    };
    register::register(dir, registration, Existing::Replace).await?;
    Ok(())
}

fn print_banner(url: &str, data_dir: &DataDir, config: &RunnerConfig) {
    let default_dir = data_dir.path() == DataDir::default_path();
    println!(
        "kiln dev: control plane at {url} with local runner {} ({} slots)",
        config.name, config.max_concurrent_agents
    );
    println!("  data dir  {}", data_dir.path().display());
    if !default_dir {
        println!(
            "  in another shell first: export KILN_DATA_DIR={}",
            data_dir.path().display()
        );
    }
    println!();
    println!("Submit a task from any git repository:");
    println!("  kiln submit --repo . --follow -- sh -c 'echo hello from kiln > HELLO.md'");
    println!("Then: kiln tasks | kiln logs -f ID | kiln diff ID | kiln fetch ID");
    println!("Ctrl-C stops (running tasks finish first; press again to cancel them).");
}
