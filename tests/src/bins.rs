//! Finding the binaries under test: beside this test executable's `deps/` directory, as
//! `cargo test --workspace` builds them, or in `$KILN_BIN_DIR`.

use std::path::PathBuf;

/// Path of a workspace binary (`kiln` or `kiln-runner`).
pub fn path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("KILN_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // Test executables live in target/PROFILE/deps, binaries (kiln-bench) beside
            // the others in target/PROFILE.
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe.parent().expect("executable dir");
            match dir.file_name() {
                Some(name) if name == "deps" => {
                    dir.parent().expect("target profile dir").to_path_buf()
                }
                _ => dir.to_path_buf(),
            }
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run the tests with `cargo test --workspace` so that it is built",
        path.display()
    );
    path
}
