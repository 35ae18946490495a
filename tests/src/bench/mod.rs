//! kiln-bench: measures kiln against its performance targets and the machine's own limits
//! (loopback TCP, a bare spawn, git's checkout), with the real binaries on 127.0.0.1.

pub mod fleet;
pub mod latency;
pub mod logs;
pub mod process;
pub mod reference;
pub mod report;
pub mod setup;
pub mod sim;
pub mod stats;
pub mod throughput;
