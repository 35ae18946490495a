//! `kiln`: parses the command line, handles signals, and runs the chosen command.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};
use kiln_control_plane::cli::client::ApiClient;
use kiln_control_plane::cli::{self, exit, Cli, Command, SandboxProviderArg, TokenCommand};
use kiln_control_plane::data_dir::DataDir;
use kiln_control_plane::retention::Retention;
use kiln_control_plane::serve::{self, SandboxOptions, SandboxProviderKind, ServeOptions};
use kiln_runner::cli_docs;
use kiln_runner::daemon::Signals;
use tokio::runtime::{Builder, Runtime};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = kiln_runner::hidden::dispatch(&args) {
        return code;
    }
    let cli = Cli::parse();
    let is_server = matches!(cli.command, Command::Serve(_) | Command::Dev(_));
    kiln_runner::logging::init(cli.log_format, if is_server { "info" } else { "warn" });
    let runtime = match runtime_for(&cli.command) {
        Ok(runtime) => runtime,
        Err(e) => {
            return exit::report(
                &anyhow::anyhow!("cannot start async runtime: {e}"),
                cli.json,
            )
        }
    };
    let json = cli.json;
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => exit::report(&error, json),
    }
}

/// The runtime `command` runs on: one thread, unless `kiln serve --worker-threads` asks
/// for more. (`kiln dev`'s control plane and runner share the one thread.)
fn runtime_for(command: &Command) -> std::io::Result<Runtime> {
    let threads = match command {
        Command::Serve(args) => usize::from(args.worker_threads),
        _ => 1,
    };
    if threads == 1 {
        return Builder::new_current_thread().enable_all().build();
    }
    Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("kiln-worker")
        .enable_all()
        .build()
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = DataDir::new(cli.data_dir.clone().unwrap_or_else(DataDir::default_path));
    let client = || {
        ApiClient::resolve(
            cli.server.clone(),
            cli.token.clone(),
            cli.ca_cert.as_deref(),
            &data_dir,
        )
    };
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => {
            let retention = match args.retention {
                Some(keep) if keep.is_zero() => {
                    anyhow::bail!("--retention 0s would delete every finished task's output at once; give an age such as 30d")
                }
                Some(keep) => Some(Retention {
                    keep,
                    every: args.prune_every,
                }),
                None => None,
            };
            let options = ServeOptions {
                retention,
                admin_token: cli.token.clone(),
                heartbeat_interval: args.heartbeat_interval,
                lost_after: args.lost_after,
                tls: args.tls_cert.zip(args.tls_key),
                max_connections: args.max_connections,
                max_connections_per_address: args
                    .max_connections_per_address
                    .and_then(|n| usize::try_from(n).ok()),
                max_upload_bytes: args.max_upload_bytes,
                max_log_bytes: args.max_log_bytes,
                accept_deadline: args.accept_deadline,
                stop_grace: args.stop_grace,
                registration_token: args.registration_token,
                database_url: args.database.url,
                sandbox: SandboxOptions {
                    provider: match args.sandbox_provider {
                        SandboxProviderArg::Docker => Some(SandboxProviderKind::Docker),
                        SandboxProviderArg::None => None,
                    },
                    image: args.sandbox_image,
                    network: args.sandbox_network,
                    server_url: args.sandbox_server_url,
                },
                ..ServeOptions::new(args.listen, data_dir.clone())
            };
            let shutdown = CancellationToken::new();
            let prepared = serve::prepare(&options, shutdown.clone()).await?;
            tracing::info!(url = %prepared.url, data_dir = %data_dir.path().display(), "kiln control plane listening");
            let signals = Signals::default();
            tokio::spawn(kiln_runner::signals::forward(signals.clone()));
            tokio::spawn(async move {
                signals.drain.cancelled().await;
                shutdown.cancel();
            });
            prepared.run().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(args) => {
            let options = ServeOptions {
                admin_token: cli.token.clone(),
                ..ServeOptions::new(args.listen, data_dir.clone())
            };
            let signals = Signals::default();
            tokio::spawn(kiln_runner::signals::forward(signals.clone()));
            kiln_control_plane::dev::run(options, args.slots, signals).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            cli::migrate::migrate(&data_dir, args.database.url.as_deref(), json).await
        }
        Command::Token(TokenCommand::Create(args)) => {
            cli::token_create(&client()?, args, json).await
        }
        Command::Submit(args) => cli::submit(&client()?, *args, json).await,
        Command::Tasks(args) => cli::tasks(&client()?, args, json).await,
        Command::Task(args) => cli::show(&client()?, args, json).await,
        Command::Logs(args) => cli::logs(&client()?, args, json).await,
        Command::Cancel(args) => cli::cancel(&client()?, args, json).await,
        Command::Runners(args) => cli::runners(&client()?, args, json).await,
        Command::Retry(args) => cli::retry(&client()?, args, json).await,
        Command::Diff(args) => cli::diff(&client()?, args, json).await,
        Command::Fetch(args) => cli::fetch(&client()?, args, json).await,
        Command::Apply(args) => cli::apply(&client()?, args, json).await,
        Command::Session(command) => cli::session(&client()?, command, json).await,
        Command::Exec(args) => cli::exec(&client()?, args, json).await,
        Command::Files(args) => cli::files(&client()?, args, json).await,
        Command::Sandboxes(args) => cli::sandboxes(&client()?, args, json).await,
        Command::Completions(args) => cli_docs::print_completions(Cli::command(), args.shell, json),
        Command::Man(args) => cli_docs::print_man_pages(Cli::command(), &args.dir, json),
    }
}
