//! The systemd units, shell completions and man pages that packaging installs.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, naming the call"
)]

use std::process::Command;

use kiln_tests::bins;
use kiln_tests::docker::repo_root;

#[test]
fn systemd_analyze_verify_accepts_both_units() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, binary) in [
        ("kiln.service", "kiln"),
        ("kiln-runner.service", "kiln-runner"),
    ] {
        let text =
            std::fs::read_to_string(repo_root().join("packaging/systemd").join(unit)).unwrap();
        // verify checks that ExecStart exists: point it at the binary under test.
        let installed = format!("/usr/bin/{binary} ");
        assert!(text.contains(&installed), "{unit} runs {installed}");
        let local = format!("{} ", bins::path(binary).display());
        std::fs::write(dir.path().join(unit), text.replace(&installed, &local)).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("kiln.service"))
        .arg(dir.path().join("kiln-runner.service"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("kiln"),
        "warnings about the units: {stderr}"
    );
}

#[test]
fn units_use_a_dedicated_user_and_the_usual_hardening() {
    for (unit, user) in [
        ("kiln.service", "kiln"),
        ("kiln-runner.service", "kiln-runner"),
    ] {
        let text =
            std::fs::read_to_string(repo_root().join("packaging/systemd").join(unit)).unwrap();
        assert!(text.contains(&format!("User={user}\n")), "{unit}");
        for directive in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(text.contains(directive), "{unit} lacks {directive}");
        }
    }
    let server =
        std::fs::read_to_string(repo_root().join("packaging/systemd/kiln.service")).unwrap();
    assert!(server.contains("ProtectKernelTunables=yes\n"));
    // The runner's agents are fenced with a /proc of their own, which the kernel allows
    // only where all of /proc is visible: nothing may cover parts of it.
    let runner =
        std::fs::read_to_string(repo_root().join("packaging/systemd/kiln-runner.service")).unwrap();
    for directive in [
        "ProtectKernelTunables=yes",
        "ProtectKernelLogs=yes",
        "RestrictNamespaces=yes",
    ] {
        assert!(
            !runner.contains(directive),
            "kiln-runner.service has {directive}"
        );
    }
}

fn run(binary: &str, args: &[&str]) -> String {
    let output = Command::new(bins::path(binary))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{binary} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn both_binaries_print_completions_for_each_shell() {
    for binary in ["kiln", "kiln-runner"] {
        assert!(run(binary, &["completions", "bash"])
            .contains(&format!("_{binary}()").replace('-', "__")));
        assert!(run(binary, &["completions", "zsh"]).starts_with(&format!("#compdef {binary}")));
        assert!(run(binary, &["completions", "fish"]).contains(&format!("complete -c {binary}")));
        let json: serde_json::Value =
            serde_json::from_str(&run(binary, &["completions", "bash", "--json"])).unwrap();
        assert_eq!(json["shell"], "bash");
    }
    let output = Command::new(bins::path("kiln"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("tcsh"));
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    run("kiln", &["man", &dir.path().to_string_lossy()]);
    run("kiln-runner", &["man", &dir.path().to_string_lossy()]);
    for page in [
        "kiln",
        "kiln-submit",
        "kiln-sandboxes",
        "kiln-runner",
        "kiln-runner-run",
        "kiln-runner-register",
    ] {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}.1 is a man page"
        );
        assert!(text.contains(".SH NAME"), "{page}.1");
    }
    let submit = std::fs::read_to_string(dir.path().join("kiln-submit.1")).unwrap();
    assert!(
        submit.contains("sandbox"),
        "kiln-submit.1 documents --sandbox"
    );
}
