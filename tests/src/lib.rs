//! Harness for kiln's end-to-end tests: starts the real `kiln` and `kiln-runner` binaries
//! on 127.0.0.1 with port 0, in temp dirs, with real git repositories, and waits on
//! conditions with deadlines (never fixed sleeps).

pub mod bins;
pub mod control_plane;
pub mod git;
pub mod runner;
pub mod wait;

pub use control_plane::ControlPlane;
pub use runner::Runner;
