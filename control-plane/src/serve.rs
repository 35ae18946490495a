//! `kiln serve`: open the data dir and store, make sure an admin token exists, bind, and
//! run the server until the shutdown token fires.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kiln_protocol::now_millis;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::data_dir::{DataDir, DataDirLock};
use crate::engine::ServerSettings;
use crate::model::RegistrationTokenRecord;
use crate::sandbox::{DockerProvider, SandboxSettings, Sandboxes};
use crate::server::listener::ListenOptions;
use crate::server::state::AppState;
use crate::store::{Database, Store};
use crate::tokens::{Token, TokenKind};

/// Shortest secret part of an operator-chosen admin or registration token: 32 hex
/// characters are 128 bits.
const MIN_ADMIN_SECRET_CHARS: usize = 32;

/// How `kiln serve` (and `kiln dev`) run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The data directory.
    pub data_dir: DataDir,
    /// A PostgreSQL URL to keep the store in instead of the data dir's SQLite file.
    pub database_url: Option<String>,
    /// Admin token given by the operator (`KILN_ADMIN_TOKEN`), if any.
    pub admin_token: Option<String>,
    /// Heartbeat period for runners.
    pub heartbeat_interval: Duration,
    /// Absence after which a runner's attempts are lost.
    pub lost_after: Duration,
    /// TLS certificate chain and key (PEM), to serve HTTPS and WSS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections one address may hold; `None`: all but the share kept for others.
    pub max_connections_per_address: Option<usize>,
    /// Largest artifact a runner may upload.
    pub max_upload_bytes: usize,
    /// Log text stored per attempt.
    pub max_log_bytes: u64,
    /// Time a runner has to accept an assignment.
    pub accept_deadline: Duration,
    /// Time a runner has past a timeout or cancel before the control plane ends the task.
    pub stop_grace: Duration,
    /// A registration token given by the operator (`KILN_REGISTRATION_TOKEN`), saved with
    /// unlimited uses, so that runner containers can register without a manual step.
    pub registration_token: Option<String>,
    /// How sandboxes are forged.
    pub sandbox: SandboxOptions,
    /// Pruning of finished tasks' output; `None` keeps everything.
    pub retention: Option<crate::retention::Retention>,
}

/// How `kiln serve` forges sandboxes.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// The provider; `None` turns sandboxes off.
    pub provider: Option<SandboxProviderKind>,
    /// Image used when a task names none.
    pub image: String,
    /// Docker network for sandbox containers.
    pub network: String,
    /// URL boxes reach the control plane at [default: the URL it listens on].
    pub server_url: Option<String>,
}

/// Sandbox providers built in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxProviderKind {
    /// A container per sandbox on the local Docker engine.
    Docker,
}

/// The sandbox image `docker/build.sh` makes.
pub const DEFAULT_SANDBOX_IMAGE: &str = "kiln-sandbox:latest";

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            provider: Some(SandboxProviderKind::Docker),
            image: DEFAULT_SANDBOX_IMAGE.to_owned(),
            network: "host".to_owned(),
            server_url: None,
        }
    }
}

impl ServeOptions {
    /// Options with defaults for everything but where to listen and keep data.
    pub fn new(listen: SocketAddr, data_dir: DataDir) -> Self {
        Self {
            listen,
            data_dir,
            database_url: None,
            admin_token: None,
            heartbeat_interval: crate::engine::DEFAULT_HEARTBEAT_INTERVAL,
            lost_after: crate::engine::DEFAULT_LOST_AFTER,
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: None,
            max_upload_bytes: crate::engine::DEFAULT_MAX_UPLOAD_BYTES,
            max_log_bytes: crate::engine::DEFAULT_MAX_LOG_BYTES,
            accept_deadline: crate::engine::DEFAULT_ACCEPT_DEADLINE,
            stop_grace: crate::engine::DEFAULT_STOP_GRACE,
            registration_token: None,
            sandbox: SandboxOptions::default(),
            retention: None,
        }
    }
}

/// Connections a control plane holds open at once by default: ten thousand runners plus
/// room for operators, within a typical `ulimit -n` of 65536.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

/// A control plane that has bound its socket and is ready to run.
pub struct Prepared {
    /// Where it listens.
    pub url: String,
    /// Its shared state.
    pub state: AppState,
    listener: TcpListener,
    listen: ListenOptions,
    retention: Option<crate::retention::Retention>,
    database: Database,
    _lock: DataDirLock,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Opens everything and binds, so that callers know the address before serving.
pub async fn prepare(
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<Prepared> {
    let lock = options.data_dir.lock()?;
    let database =
        Database::from_arg(options.database_url.as_deref(), options.data_dir.database())?;
    if database.is_shared() && options.lost_after < options.heartbeat_interval * 2 {
        anyhow::bail!(
            "--lost-after {} must be at least twice --heartbeat-interval ({}) on a shared database: replicas know a runner on another replica is alive only by its heartbeats",
            humantime::format_duration(options.lost_after),
            humantime::format_duration(options.heartbeat_interval)
        );
    }
    let store = database
        .open()
        .await
        .with_context(|| format!("cannot open database {database}"))?;
    ensure_admin_token(&*store, &options.data_dir, options.admin_token.as_deref()).await?;
    if let Some(given) = &options.registration_token {
        ensure_registration_token(&*store, given).await?;
    }
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr().context("cannot read bound address")?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(crate::server::tls::server_config(cert, key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{address}");
    options.data_dir.write_server_url(&url)?;
    let settings = ServerSettings {
        heartbeat_interval: options.heartbeat_interval,
        lost_after: options.lost_after,
        max_upload_bytes: options.max_upload_bytes,
        max_log_bytes: options.max_log_bytes,
        accept_deadline: options.accept_deadline,
        stop_grace: options.stop_grace,
        secure_cookies: tls.is_some(),
    };
    let mut engine = crate::engine::Engine::new(store, settings, shutdown);
    engine.sandboxes = sandboxes(&options.sandbox, &options.data_dir, &url)?;
    if let Database::Postgres(shared) = &database {
        engine.peers = Some(
            crate::replicas::Peers::connect(shared)
                .await
                .with_context(|| format!("cannot connect to database {database}"))?,
        );
    }
    Ok(Prepared {
        url,
        state: AppState::around(engine),
        retention: options.retention,
        database,
        listener,
        listen: ListenOptions {
            tls,
            max_connections: options.max_connections,
            max_per_address: options.max_connections_per_address.unwrap_or_else(|| {
                crate::server::listener::default_per_address(options.max_connections)
            }),
        },
        _lock: lock,
    })
}

impl Prepared {
    /// Serves until the shutdown token fires, then waits for the background tasks.
    pub async fn run(self) -> anyhow::Result<()> {
        let engine = self.state.engine.clone();
        let replicas_on = match &self.database {
            Database::Postgres(url) => Some(url.as_str()),
            _ => None,
        };
        let background = crate::engine::Background {
            replicas_on,
            retention: self.retention,
        };
        engine.start_background(background).await;
        crate::server::run(
            self.listener,
            self.state,
            self.listen,
            engine.shutdown.clone(),
        )
        .await;
        engine.stop_background().await;
        Ok(())
    }
}

fn sandboxes(
    options: &SandboxOptions,
    data_dir: &DataDir,
    url: &str,
) -> anyhow::Result<Option<Sandboxes>> {
    let Some(SandboxProviderKind::Docker) = options.provider else {
        return Ok(None);
    };
    let provider = DockerProvider {
        network: options.network.clone(),
        owner: data_dir.instance_id()?,
    };
    let settings = SandboxSettings {
        default_image: options.image.clone(),
        server_url: options.server_url.clone().unwrap_or_else(|| url.to_owned()),
    };
    Ok(Some(Sandboxes::new(Arc::new(provider), settings)))
}

/// Saves the operator's registration token (idempotent), refusing one that is not one.
async fn ensure_registration_token(store: &dyn Store, given: &str) -> anyhow::Result<()> {
    let token = Token::from_secret(given);
    let prefix = TokenKind::Registration.prefix();
    if !token.is_kind(TokenKind::Registration) {
        anyhow::bail!("KILN_REGISTRATION_TOKEN must start with {prefix}");
    }
    if token.expose().len() < prefix.len() + MIN_ADMIN_SECRET_CHARS {
        anyhow::bail!("KILN_REGISTRATION_TOKEN is too short: give at least {MIN_ADMIN_SECRET_CHARS} random characters after {prefix}");
    }
    let hash = token.hash();
    let record = RegistrationTokenRecord {
        id: format!("operator-{}", &hash.0[..16]),
        uses_left: None,
        expires_at: None,
        created_at: now_millis(),
    };
    store.create_registration_token(&record, &hash).await?;
    Ok(())
}

/// Makes sure an admin token exists: the operator's from `KILN_ADMIN_TOKEN`, or one made
/// on first start and saved (0600) in the data dir. Only its hash goes in the store.
async fn ensure_admin_token(
    store: &dyn Store,
    data_dir: &DataDir,
    given: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(given) = given {
        let token = Token::from_secret(given);
        let prefix = TokenKind::Admin.prefix();
        if !token.is_kind(TokenKind::Admin) {
            anyhow::bail!("KILN_ADMIN_TOKEN must start with {prefix}");
        }
        if token.expose().len() < prefix.len() + MIN_ADMIN_SECRET_CHARS {
            anyhow::bail!("KILN_ADMIN_TOKEN is too short: give at least {MIN_ADMIN_SECRET_CHARS} random characters after {prefix}");
        }
        store.add_admin_token(&token.hash(), now_millis()).await?;
        return Ok(());
    }
    if store.has_admin_token().await? {
        return Ok(());
    }
    let token = Token::generate(TokenKind::Admin);
    data_dir.write_admin_token(token.expose())?;
    store.add_admin_token(&token.hash(), now_millis()).await?;
    tracing::info!(file = %data_dir.admin_token_file().display(), "admin token created");
    Ok(())
}
