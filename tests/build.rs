//! Builds the latency benchmark's start probe (`start-probe/main.rs`) as a static
//! executable: cargo links every binary of a package alike, and only this one must start
//! without the dynamic loader. `kiln-bench` finds it at `KILN_START_PROBE`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "start-probe/main.rs";

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let probe = out_dir.join("kiln-start-probe");
    let rustc = env::var_os("RUSTC").expect("cargo sets RUSTC");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(&rustc)
        .args(["--edition=2021", "--crate-name=kiln_start_probe", "-O"])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["--target", &target, SOURCE, "-o"])
        .arg(&probe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", rustc.to_string_lossy()));
    assert!(
        status.success(),
        "building {SOURCE} statically failed ({status}); it needs the C library's static \
         archive (libc.a, Debian's libc6-dev)"
    );
    println!("cargo::rustc-env=KILN_START_PROBE={}", probe.display());
}
