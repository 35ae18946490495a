//! `kiln-runner`: parses the command line, handles signals, and runs the chosen command.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use kiln_runner::cli::{Cli, Command, RegisterArgs, RunArgs};
use kiln_runner::config::sandbox::Mode;
use kiln_runner::config::{default_config_dir, ConfigDir, Overrides, RunnerConfig};
use kiln_runner::daemon::{self, DaemonError, Signals};
use kiln_runner::register::{self, Existing, Registration};
use kiln_runner::secret::Secret;
use kiln_runner::server_url::ServerUrl;
use kiln_runner::{cli_docs, exit, signals, status};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = kiln_runner::hidden::dispatch(&args) {
        return code;
    }
    // The token may sit in this process's environment (sandbox mode): make /proc/PID/environ
    // and ptrace off-limits to agents running as the same user. Children (the shim, the
    // agent) get the attribute back on exec.
    if let Err(error) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("warning: cannot make the runner undumpable: {error}");
    }
    let cli = Cli::parse();
    kiln_runner::logging::init(cli.log_format, "info");
    // One thread for all async work: the runner's work is waiting on sockets, pipes and
    // timers, with git and file work on blocking threads, and a task's path from `assign`
    // to the agent's launch then crosses no core (on these VMs a wake-up of an idle core is
    // tens of µs; the no-checkout latency row fell by about 0.1 ms).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return exit::report(
                &anyhow::anyhow!("cannot start async runtime: {e}"),
                cli.json,
            )
        }
    };
    match runtime.block_on(dispatch(cli.command, config_dir(cli.config_dir), cli.json)) {
        Ok(code) => code,
        Err(error) => exit::report(&error, cli.json),
    }
}

fn config_dir(flag: Option<std::path::PathBuf>) -> ConfigDir {
    ConfigDir::new(flag.unwrap_or_else(default_config_dir))
}

async fn dispatch(command: Command, dir: ConfigDir, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        Command::Register(args) => register(args, &dir, json).await,
        Command::Run(args) => run(args, &dir).await,
        Command::Status => status(&dir, json).await,
        Command::Completions { shell } => cli_docs::print_completions(Cli::command(), shell, json),
        Command::Man { dir } => cli_docs::print_man_pages(Cli::command(), &dir, json),
    }
}

async fn register(args: RegisterArgs, dir: &ConfigDir, json: bool) -> anyhow::Result<ExitCode> {
    let server = ServerUrl::parse(&args.server).map_err(exit::usage)?;
    let flags = Overrides {
        name: args.settings.name.clone(),
        max_concurrent_agents: args.settings.max_concurrent,
        capabilities: args.settings.capability_list(),
        labels: args.settings.label_map(),
        kill_grace: args.settings.kill_grace.clone(),
        ca_cert: args.settings.ca_cert.clone(),
        ..Overrides::default()
    };
    // Validate the settings the same way `run` will read them back.
    let settings = RunnerConfig::load(dir, &flags).map_err(exit::usage)?;
    let registration = Registration {
        server,
        token: Secret::new(args.token),
        name: settings.name,
        capabilities: settings.capabilities,
        labels: settings.labels,
        max_concurrent: settings.max_concurrent_agents,
        worktree_base: args.settings.worktree_base,
        cache_dir: args.settings.cache_dir,
        kill_grace: args.settings.kill_grace,
        ca_cert: args.settings.ca_cert,
    };
    let existing = if args.force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let registered = register::register(dir, registration, existing).await?;
    if json {
        println!("{}", serde_json::to_string(&registered)?);
    } else {
        println!(
            "registered runner {} (identity saved in {})",
            registered.runner_id,
            registered.config_file.display()
        );
        println!("start it with: kiln-runner run");
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(args: RunArgs, dir: &ConfigDir) -> anyhow::Result<ExitCode> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let (config, sandbox) = match Mode::from(args.sandbox_mode, &env).map_err(exit::usage)? {
        // A sandbox is disposable and isolated: it may run as root.
        Mode::Sandbox => {
            let (config, sandbox) = RunnerConfig::from_sandbox_env(&env).map_err(exit::usage)?;
            (config, Some(sandbox))
        }
        Mode::Registered => (registered_config(args, dir)?, None),
    };
    let signals = Signals::default();
    tokio::spawn(signals::forward(signals.clone()));
    match daemon::run(config, sandbox, signals).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(DaemonError::Refused(refused)) => Err(exit::refused(refused)),
        Err(DaemonError::Config(e)) => Err(exit::usage(e)),
        Err(other) => Err(other).context("runner stopped"),
    }
}

async fn status(dir: &ConfigDir, json: bool) -> anyhow::Result<ExitCode> {
    let socket = dir.status_socket();
    let Some(report) = status::query(&socket).await else {
        if json {
            println!(
                "{}",
                serde_json::json!({ "running": false, "socket": socket })
            );
        } else {
            println!(
                "kiln-runner is not running (no daemon answers on {})",
                socket.display()
            );
        }
        return Ok(ExitCode::from(exit::NOT_RUNNING));
    };
    let report = report.map_err(anyhow::Error::msg)?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["running_daemon"] = serde_json::Value::Bool(true);
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    let link = if report.link.connected {
        format!("connected to {}", report.server_url)
    } else {
        let why = report.link.last_error.as_deref().unwrap_or("connecting");
        format!("not connected to {} ({why})", report.server_url)
    };
    println!("kiln-runner {} (pid {}) {}", report.name, report.pid, link);
    if report.draining {
        println!("draining: taking no new work");
    }
    if !report.agents.is_empty() {
        println!("agents: {}", report.agents);
    }
    if let Some(address) = &report.metrics_address {
        println!("metrics: http://{address}/metrics, status: http://{address}/status");
    }
    println!(
        "attempts: {}/{} running",
        report.running.len(),
        report.max_concurrent
    );
    for attempt in &report.running {
        let phase = attempt.phase.map_or("starting", |p| p.as_str());
        println!(
            "  {} attempt {}  {}  {}",
            attempt.task_id, attempt.attempt, phase, attempt.repo
        );
    }
    if !report.spare_worktrees.is_empty() {
        println!("spare worktrees: {}", report.spare_worktrees.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn registered_config(args: RunArgs, dir: &ConfigDir) -> anyhow::Result<RunnerConfig> {
    let allow_root = args.allow_root;
    let flags = Overrides {
        server_url: args.server,
        name: args.settings.name.clone(),
        max_concurrent_agents: args.settings.max_concurrent,
        capabilities: args.settings.capability_list(),
        labels: args.settings.label_map(),
        worktree_base: args.settings.worktree_base.clone(),
        cache_dir: args.settings.cache_dir.clone(),
        kill_grace: args.settings.kill_grace.clone(),
        cache_max_size: args.cache_max_size,
        disconnect_after_task: args.disconnect_after_task.then_some(true),
        disconnect_after_idle: args.disconnect_after_idle,
        ca_cert: args.settings.ca_cert.clone(),
        max_log_size: args.max_log_size,
        metrics_listen: args.metrics_listen,
    };
    let config = RunnerConfig::load(dir, &flags).map_err(exit::usage)?;
    if nix::unistd::geteuid().is_root() && !allow_root {
        return Err(exit::usage(
            "refusing to run as root: agents would run as root too; run kiln-runner as a dedicated user, or pass --allow-root",
        ));
    }
    Ok(config)
}
