//! The start probe, the agent of the latency benchmark: prints the time it started, in
//! nanoseconds since the Unix epoch, and exits. A separate program using only std and
//! linked statically (`tests/build.rs`), so that its own start-up is as short as a
//! process's can be: no dynamic loader maps and relocates libc before `main` reads the
//! clock, and the benchmark times kiln rather than the loading of the agent.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!("{nanos}");
}
