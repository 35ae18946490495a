//! Harness for kiln's end-to-end tests: starts the real `kiln` and `kiln-runner` binaries
//! on 127.0.0.1 with port 0, in temp dirs, with real git repositories, and waits on
//! conditions with deadlines (never fixed sleeps).

pub mod agents;
pub mod bench;
pub mod bins;
pub mod browser;
pub mod certs;
pub mod control_plane;
pub mod docker;
pub mod follower;
pub mod git;
pub mod processes;
pub mod prometheus;
pub mod proxy;
pub mod raw;
pub mod runner;
pub mod scratch;
pub mod sessions;
pub mod wait;

pub use control_plane::ControlPlane;
pub use proxy::Proxy;
pub use runner::Runner;

/// True while a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}
