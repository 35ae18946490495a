//! A stand-in for the `claude`, `codex` and `gemini` CLIs (installed under those names):
//! it replays transcripts the real CLIs printed (tests/fixtures/agents/) and behaves as
//! they do where kiln depends on it. It reads the prompt as each CLI does, refuses what
//! each refuses (Claude's bypass as root without `IS_SANDBOX=1`, Gemini's untrusted
//! folder with exit 55, a resume of a conversation it never had), echoes the real prompt
//! where Gemini echoes it, keeps the resumed id as the CLIs do, and records its argv,
//! stdin and environment for the test to check.
//!
//! Set by the test, in the task's env:
//! - `KILN_FAKE_AGENT_DIR`: where runs are recorded (`run-N.json`) and conversations kept;
//! - `KILN_FAKE_AGENT_RUNS`: fixtures (`claude/x.jsonl,...`), run N replays the Nth, the
//!   last one repeating;
//! - `KILN_FAKE_AGENT_RESETS_IN`: seconds from now for the `resetsAt` of Claude's
//!   `rate_limit_event` (the recorded one is in the past).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/agents");

/// What the CLI prints and how it exits when it refuses to start.
struct Refusal {
    stderr: String,
    code: u8,
}

fn refuse(stderr: impl Into<String>, code: u8) -> Result<Run, Refusal> {
    Err(Refusal {
        stderr: stderr.into(),
        code,
    })
}

/// What one run does, once its arguments are accepted.
struct Run {
    /// The conversation it continues.
    resumed: Option<String>,
    /// The prompt as the CLI received it.
    prompt: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = Path::new(&args[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(dir) = std::env::var_os("KILN_FAKE_AGENT_DIR").map(PathBuf::from) else {
        eprintln!("kiln-fake-agent: KILN_FAKE_AGENT_DIR is not set");
        return ExitCode::from(2);
    };
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let number = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("run-"))
            })
            .count()
        })
        .unwrap_or(0);
    record(&dir, number, &cli, &args[1..], &stdin);
    let known = conversations(&dir);
    let accepted = match cli.as_str() {
        "claude" => claude(&args[1..], &stdin, &known),
        "codex" => codex(&args[1..], &stdin, &known),
        "gemini" => gemini(&args[1..], &stdin, &known),
        other => refuse(format!("kiln-fake-agent: no CLI named {other:?}"), 2),
    };
    let run = match accepted {
        Ok(run) => run,
        Err(refusal) => {
            eprintln!("{}", refusal.stderr);
            return ExitCode::from(refusal.code);
        }
    };
    let fixture = fixture_for(number);
    let text = match std::fs::read_to_string(Path::new(FIXTURES).join(&fixture)) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("kiln-fake-agent: cannot read fixture {fixture}: {e}");
            return ExitCode::from(2);
        }
    };
    // The agent's work, so that the attempt has something to commit.
    let _ = std::fs::write(format!("fake-{cli}-{number}.txt"), &run.prompt);
    replay(&cli, &text, &run, &dir)
}

fn fixture_for(number: usize) -> String {
    let runs = std::env::var("KILN_FAKE_AGENT_RUNS").unwrap_or_default();
    let runs: Vec<&str> = runs.split(',').filter(|r| !r.is_empty()).collect();
    runs.get(number)
        .or(runs.last())
        .map_or_else(String::new, |r| (*r).to_owned())
}

fn record(dir: &Path, number: usize, cli: &str, args: &[String], stdin: &str) {
    let env: serde_json::Map<String, Value> = ["IS_SANDBOX", "GEMINI_CLI_TRUST_WORKSPACE"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), json!(v))))
        .collect();
    let record = json!({ "cli": cli, "argv": args, "stdin": stdin, "env": env });
    let path = dir.join(format!("run-{number}.json"));
    let partial = dir.join(format!(".run-{number}.json.partial"));
    let _ = std::fs::write(&partial, record.to_string());
    let _ = std::fs::rename(partial, path);
}

fn conversations(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("conversations"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn value_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

/// Claude Code 2.1: `-p` with `stream-json` needs `--verbose`; bypass as root needs
/// `IS_SANDBOX=1`; `--resume` needs a conversation it had.
fn claude(args: &[String], stdin: &str, known: &[String]) -> Result<Run, Refusal> {
    if !has(args, "-p") && !has(args, "--print") {
        return refuse("kiln-fake-agent: only headless (-p) runs are replayed", 2);
    }
    if value_after(args, "--output-format") == Some("stream-json") && !has(args, "--verbose") {
        return refuse(
            "Error: When using --print, --output-format=stream-json requires --verbose",
            1,
        );
    }
    let bypass = value_after(args, "--permission-mode") == Some("bypassPermissions")
        || has(args, "--dangerously-skip-permissions");
    let sandboxed = std::env::var("IS_SANDBOX").is_ok_and(|v| v == "1");
    if bypass && nix::unistd::geteuid().is_root() && !sandboxed {
        return refuse(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
            1,
        );
    }
    let resumed = value_after(args, "--resume").map(str::to_owned);
    if let Some(id) = &resumed {
        if !known.contains(id) {
            return refuse(format!("No conversation found with session ID: {id}"), 1);
        }
    }
    if stdin.trim().is_empty() {
        return refuse(
            "Error: Input must be provided either through stdin or as a prompt argument when using --print",
            1,
        );
    }
    Ok(Run {
        resumed,
        prompt: stdin.to_owned(),
    })
}

/// Codex exec: `-` reads the prompt from stdin; `exec [options] resume ID -` continues a
/// thread.
fn codex(args: &[String], stdin: &str, known: &[String]) -> Result<Run, Refusal> {
    if args.first().map(String::as_str) != Some("exec") || !has(args, "--json") {
        return refuse("kiln-fake-agent: only `codex exec --json` is replayed", 2);
    }
    if has(args, "--full-auto") {
        eprintln!("warning: `--full-auto` is deprecated; use `--sandbox workspace-write` instead.");
    }
    let resumed = value_after(args, "resume").map(str::to_owned);
    if let Some(id) = &resumed {
        if !known.contains(id) {
            return refuse(
                format!("Error: thread/resume failed: no rollout found for thread id {id}"),
                1,
            );
        }
    }
    eprintln!("Reading prompt from stdin...");
    if stdin.trim().is_empty() {
        return refuse("No prompt provided via stdin.", 1);
    }
    Ok(Run {
        resumed,
        prompt: stdin.to_owned(),
    })
}

/// Gemini CLI: an untrusted folder exits 55 before any output; stdin is the prompt
/// (`--prompt` is appended to it); `--resume` needs a session it had.
fn gemini(args: &[String], stdin: &str, known: &[String]) -> Result<Run, Refusal> {
    let trusted = std::env::var("GEMINI_CLI_TRUST_WORKSPACE").is_ok_and(|v| v == "true")
        || has(args, "--skip-trust");
    if !trusted {
        let untrusted =
            Path::new(FIXTURES).join("gemini/untrusted-workspace-issue-paperclip-5690.stderr.txt");
        let text = std::fs::read_to_string(untrusted).unwrap_or_default();
        return refuse(text.trim_end().to_owned(), 55);
    }
    let flag = value_after(args, "--prompt").or_else(|| value_after(args, "-p"));
    let prompt = match (stdin.is_empty(), flag) {
        (false, Some(flag)) => format!("{stdin}\n\n{flag}"),
        (false, None) => stdin.to_owned(),
        (true, Some(flag)) => flag.to_owned(),
        (true, None) => {
            return refuse(
                "No input provided via stdin. Input can be provided by piping data into gemini or using the --prompt option.",
                42,
            )
        }
    };
    let resumed = value_after(args, "--resume").map(str::to_owned);
    if let Some(id) = &resumed {
        if !known.contains(id) {
            return refuse(
                format!("Error resuming session: Invalid session identifier \"{id}\"."),
                42,
            );
        }
    }
    Ok(Run { resumed, prompt })
}

/// Prints the transcript, as the CLI would have for this run, and exits as it would.
fn replay(cli: &str, text: &str, run: &Run, dir: &Path) -> ExitCode {
    let resets_in: Option<i64> = std::env::var("KILN_FAKE_AGENT_RESETS_IN")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut failed = false;
    let mut turn_open = false;
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        let Ok(mut value) = serde_json::from_str::<Value>(line) else {
            let _ = writeln!(out, "{line}");
            continue;
        };
        let mut changed = false;
        if let Some(id) = conversation_of(cli, &value) {
            match &run.resumed {
                // A resumed run keeps the conversation's id.
                Some(resumed) => {
                    set_conversation(cli, &mut value, resumed);
                    changed = true;
                }
                None => remember(dir, &id),
            }
        }
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        if cli == "gemini" && kind == "message" && value["role"] == "user" {
            value["content"] = json!(run.prompt);
            changed = true;
        }
        if let (Some(secs), "rate_limit_event") = (resets_in, kind.as_str()) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            value["rate_limit_info"]["resetsAt"] = json!(now + secs);
            changed = true;
        }
        match (cli, kind.as_str()) {
            ("claude", "result") => failed = value["is_error"] == true,
            ("codex", "turn.started") => turn_open = true,
            ("codex", "turn.completed") => turn_open = false,
            ("codex", "turn.failed") => failed = true,
            ("gemini", "result") => failed = value["status"] == "error",
            _ => {}
        }
        let printed = if changed {
            value.to_string()
        } else {
            line.to_owned()
        };
        let _ = writeln!(out, "{printed}");
    }
    let _ = out.flush();
    if failed || (cli == "codex" && turn_open) {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn conversation_of(cli: &str, value: &Value) -> Option<String> {
    let id = match (cli, value["type"].as_str()?) {
        ("claude", "system") if value["subtype"] == "init" => &value["session_id"],
        ("codex", "thread.started") => &value["thread_id"],
        ("gemini", "init") => &value["session_id"],
        _ => return None,
    };
    id.as_str().map(str::to_owned)
}

fn set_conversation(cli: &str, value: &mut Value, id: &str) {
    let key = if cli == "codex" {
        "thread_id"
    } else {
        "session_id"
    };
    value[key] = json!(id);
}

fn remember(dir: &Path, id: &str) {
    let mut file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("conversations"))
    {
        Ok(file) => file,
        Err(_) => return,
    };
    let _ = writeln!(file, "{id}");
}
