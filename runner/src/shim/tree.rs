//! The shim's process tree: every process descended from the shim, found through /proc.
//! Because the shim is a child subreaper, a descendant whose parent dies is re-parented to
//! the shim, so it stays in this tree even after `setsid` or double-forking.

use std::collections::HashMap;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Parent of every process now visible in /proc.
fn parents() -> HashMap<i32, i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which is in parentheses and may hold spaces.
            let after_name = &stat[stat.rfind(')')? + 1..];
            let ppid = after_name.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// Every live descendant of `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let parents = parents();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (&pid, &ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// Sends `signal` to every descendant of `root`. Returns how many were signalled.
pub fn signal_all(root: i32, signal: Signal) -> usize {
    let targets = descendants(root);
    for pid in &targets {
        let _ = kill(Pid::from_raw(*pid), signal);
    }
    targets.len()
}

/// Reaps every exited child without blocking (the shim adopts orphans as a subreaper).
pub fn reap_exited() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}
