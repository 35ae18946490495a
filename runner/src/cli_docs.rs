//! Shell completions and man pages generated from a clap command, for `kiln` and
//! `kiln-runner` alike (packaging installs what these write).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

/// Prints the completion script of `command` for `shell`; with `--json`, as
/// `{"shell": ..., "script": ...}`.
pub fn print_completions(
    mut command: clap::Command,
    shell: clap_complete::Shell,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    let script = String::from_utf8(script).context("completion script is not UTF-8")?;
    let text = if json {
        let shell = shell.to_string();
        format!(
            "{}\n",
            serde_json::json!({ "shell": shell, "script": script })
        )
    } else {
        script
    };
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write the completion script")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Writes the man pages of `command` into `dir` and lists them (as JSON with `--json`).
pub fn print_man_pages(command: clap::Command, dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let written = write_man_pages(command, dir)?;
    if json {
        println!("{}", serde_json::json!({ "dir": dir, "pages": written }));
    } else {
        for page in &written {
            println!("{}", dir.join(page).display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `NAME.1` and one `NAME-SUBCOMMAND.1` page per visible subcommand into `dir`.
pub fn write_man_pages(command: clap::Command, dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = command;
    command.build();
    let mut written = Vec::new();
    write_page(&command, command.get_name(), dir, &mut written)?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("{}-{}", command.get_name(), sub.get_name());
        write_page(sub, &name, dir, &mut written)?;
    }
    Ok(written)
}

fn write_page(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_owned())
        .render(&mut bytes)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    let file = format!("{name}.1");
    let path = dir.join(&file);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(file);
    Ok(())
}
