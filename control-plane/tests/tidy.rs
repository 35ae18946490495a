//! The control plane's layers point one way: nothing but the web layer (`server/`) and
//! the composition roots that start it knows of HTTP. This test reads the sources, in the
//! manner of rust-analyzer's tidy tests, and names every file that breaks the rule.

use std::path::{Path, PathBuf};

/// Files that may use the web layer: the web layer itself, and the roots that start it.
const WEB_LAYER: [&str; 4] = ["server/", "serve.rs", "dev.rs", "main.rs"];

/// What using the web layer looks like in a source file.
const WEB_MARKS: [&str; 3] = ["axum", "crate::server", "tower::"];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_domain_never_imports_the_web_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(
        files.len() > 50,
        "read the control plane's sources from {}",
        root.display()
    );
    let mut offenders = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        if WEB_LAYER
            .iter()
            .any(|allowed| relative.starts_with(allowed))
        {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(mark) = WEB_MARKS.iter().find(|mark| code.contains(*mark)) {
                offenders.push(format!(
                    "src/{relative}:{}: uses {mark}: {}",
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the engine, store and model must not depend on the web layer:\n{}",
        offenders.join("\n")
    );
}
