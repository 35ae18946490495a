//! The start probe, the agent of the latency benchmark: prints the time it started, in
//! nanoseconds since the Unix epoch, and exits. A separate program using only std, so that
//! its own start-up (loading and relocating itself) is as short as a process's can be and
//! the benchmark times kiln rather than the loading of a large binary.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!("{nanos}");
}
