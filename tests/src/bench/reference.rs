//! The references kiln is measured against in the same run: loopback TCP, a bare process
//! spawn, and git's own checkout commands.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::setup::now_nanos;
use super::stats::Samples;

/// Round trips of one byte over loopback TCP (both ends in this process).
pub async fn loopback_round_trip(count: usize) -> Samples {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        let mut byte = [0u8; 1];
        while socket.read_exact(&mut byte).await.is_ok() {
            if socket.write_all(&byte).await.is_err() {
                break;
            }
        }
    });
    let mut client = TcpStream::connect(address).await.expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let mut samples = Samples::new();
    let mut byte = [7u8; 1];
    for _ in 0..count {
        let start = Instant::now();
        client.write_all(&byte).await.expect("write");
        client.read_exact(&mut byte).await.expect("read");
        samples.push(start.elapsed());
    }
    drop(client);
    let _ = echo.await;
    samples
}

/// Bytes per second through one loopback TCP connection, in 64 KiB writes.
pub async fn loopback_throughput(total_bytes: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let sink = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buffer = vec![0u8; 64 * 1024];
        let mut received = 0;
        while let Ok(n) = socket.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            received += n;
        }
        received
    });
    let mut client = TcpStream::connect(address).await.expect("connect");
    let chunk = vec![b'x'; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total_bytes {
        client.write_all(&chunk).await.expect("write");
        sent += chunk.len();
    }
    client.shutdown().await.expect("shutdown");
    let received = sink.await.expect("sink");
    received as f64 / start.elapsed().as_secs_f64()
}

/// Time from asking to spawn the start probe (std uses posix_spawn) until the probe runs
/// and reads the clock: the floor of "submit → agent started" on this machine.
pub fn spawn_probe(probe: &Path, count: usize) -> Samples {
    let mut samples = Samples::new();
    for _ in 0..count {
        let start = now_nanos();
        let output = Command::new(probe).output().expect("run the start probe");
        let started: u128 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the start probe prints its start time");
        let nanos = u64::try_from(started.saturating_sub(start)).unwrap_or(u64::MAX);
        samples.push(Duration::from_nanos(nanos));
    }
    samples
}

/// Median time of `git worktree add` of `repo`'s HEAD into a new directory (new branch),
/// the worktree removed between runs.
pub fn git_worktree_add(repo: &Path, scratch: &Path, runs: usize) -> Duration {
    let mut samples = Samples::new();
    for run in 0..runs {
        let path = scratch.join(format!("reference-worktree-{run}"));
        let branch = format!("reference/{run}");
        let start = Instant::now();
        git(
            repo,
            &[
                "worktree",
                "add",
                "--quiet",
                "-b",
                &branch,
                &path.to_string_lossy(),
                "HEAD",
            ],
        );
        samples.push(start.elapsed());
        git(
            repo,
            &["worktree", "remove", "--force", &path.to_string_lossy()],
        );
    }
    samples.p50()
}

/// Median time of `git clone --local` of `repo` into a new directory.
pub fn git_clone_local(repo: &Path, scratch: &Path, runs: usize) -> Duration {
    let mut samples = Samples::new();
    for run in 0..runs {
        let path = scratch.join(format!("reference-clone-{run}"));
        let start = Instant::now();
        git(
            scratch,
            &[
                "clone",
                "--quiet",
                "--local",
                &repo.to_string_lossy(),
                &path.to_string_lossy(),
            ],
        );
        samples.push(start.elapsed());
        let _ = std::fs::remove_dir_all(&path);
    }
    samples.p50()
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} failed");
}
