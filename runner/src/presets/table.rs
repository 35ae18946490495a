//! The presets kiln knows out of the box, with the flags each CLI takes in 2026 (sources and
//! versions: tests/fixtures/agents/FLAGS.md and docs/agents.md).

use std::collections::BTreeMap;

use kiln_protocol::Autonomy;

use super::{Format, Preset, PromptVia, Resume};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn levels(read_only: &[&str], edit: &[&str], full: &[&str]) -> BTreeMap<Autonomy, Vec<String>> {
    BTreeMap::from([
        (Autonomy::ReadOnly, strings(read_only)),
        (Autonomy::Edit, strings(edit)),
        (Autonomy::Full, strings(full)),
    ])
}

/// Claude Code: `-p` with `stream-json` needs `--verbose`; the prompt is read from stdin.
/// Headless, `default` denies every tool that needs permission, so the levels are
/// `dontAsk` (read-only tools only), `acceptEdits` and `bypassPermissions`, which Claude
/// refuses as root unless `IS_SANDBOX=1` says the machine is a sandbox.
fn claude() -> Preset {
    Preset {
        name: "claude-code".into(),
        program: "claude".into(),
        args: strings(&["-p", "--output-format", "stream-json", "--verbose"]),
        model_flag: Some("--model".into()),
        tail: vec![],
        prompt: PromptVia::Stdin,
        format: Format::ClaudeCode,
        autonomy: levels(
            &["--permission-mode", "dontAsk"],
            &["--permission-mode", "acceptEdits"],
            &["--permission-mode", "bypassPermissions"],
        ),
        autonomy_in_box: BTreeMap::new(),
        env_in_box: BTreeMap::from([(
            Autonomy::Full,
            vec![("IS_SANDBOX".to_owned(), "1".to_owned())],
        )]),
        budget_flag: Some("--max-budget-usd".into()),
        resume: Resume::Flag("--resume".into()),
        env: vec![],
    }
}

/// Codex: `exec --json` reads the prompt from stdin at `-`, and a resumed run is
/// `codex exec [options] resume ID -`. Its own sandbox (`--sandbox`) needs kernel features
/// a box may not give it, so in a box `edit` and `full` use the bypass flag: the box is
/// the fence.
fn codex() -> Preset {
    let bypass = ["--dangerously-bypass-approvals-and-sandbox"];
    Preset {
        name: "codex".into(),
        program: "codex".into(),
        args: strings(&["exec", "--json"]),
        model_flag: Some("--model".into()),
        tail: strings(&["-"]),
        prompt: PromptVia::Stdin,
        format: Format::Codex,
        autonomy: levels(
            &["--sandbox", "read-only"],
            &["--sandbox", "workspace-write"],
            &["--sandbox", "danger-full-access"],
        ),
        autonomy_in_box: BTreeMap::from([
            (Autonomy::Edit, strings(&bypass)),
            (Autonomy::Full, strings(&bypass)),
        ]),
        env_in_box: BTreeMap::new(),
        budget_flag: None,
        resume: Resume::Subcommand("resume".into()),
        env: vec![],
    }
}

/// Gemini CLI: headless whenever stdin is not a terminal, reading the prompt from it (no
/// `--prompt`, whose value would show in `ps` and cannot pass 128 KiB). A folder it was not
/// told to trust ends the run with exit 55 before any output, and every worktree is new:
/// `GEMINI_CLI_TRUST_WORKSPACE=true` trusts it (`--skip-trust` acts after the folder's
/// settings are already dropped).
fn gemini() -> Preset {
    Preset {
        name: "gemini".into(),
        program: "gemini".into(),
        args: strings(&["--output-format", "stream-json"]),
        model_flag: Some("--model".into()),
        tail: vec![],
        prompt: PromptVia::Stdin,
        format: Format::Gemini,
        autonomy: levels(
            &["--approval-mode", "default"],
            &["--approval-mode", "auto_edit"],
            &["--approval-mode", "yolo"],
        ),
        autonomy_in_box: BTreeMap::new(),
        env_in_box: BTreeMap::new(),
        budget_flag: None,
        resume: Resume::Flag("--resume".into()),
        env: vec![("GEMINI_CLI_TRUST_WORKSPACE".to_owned(), "true".to_owned())],
    }
}

/// The presets kiln knows out of the box.
pub fn builtin() -> Vec<Preset> {
    vec![claude(), codex(), gemini()]
}
