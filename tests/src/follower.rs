//! A log follower: `kiln logs -f` run against a control plane, its output collected while
//! the test goes on; and the follow endpoint read directly, opened before the test goes on.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::control_plane::stdout_lines;
use crate::{bins, wait, ControlPlane};

/// How long a follower may take to print what is waited for.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(60);

/// `kiln logs -f --json ID`, its events collected as they come.
#[derive(Debug)]
pub struct Follower {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Follower {
    /// Follows task `id` on `control_plane`.
    pub fn start(control_plane: &ControlPlane, id: &str) -> Self {
        let mut child = Command::new(bins::path("kiln"))
            .args(["logs", "--json", "-f", id])
            .env("KILN_DATA_DIR", control_plane.data_dir())
            .env("KILN_ADMIN_TOKEN", &control_plane.admin_token)
            .env_remove("KILN_SERVER_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kiln logs -f");
        let stdout = child.stdout.take().expect("piped stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&events);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).expect("JSON event");
                collected.lock().expect("lock").push(event);
            }
        });
        Self {
            child,
            events,
            reader,
        }
    }

    /// The stdout lines it printed so far.
    pub fn lines(&self) -> Vec<String> {
        stdout_lines(&self.events.lock().expect("lock"))
    }

    /// Waits until it printed at least `count` stdout lines.
    pub async fn wait_lines(&self, count: usize) {
        wait::until(
            &format!("the follower to print {count} lines"),
            FOLLOW_TIMEOUT,
            || async { (self.lines().len() >= count).then_some(()) },
        )
        .await;
    }

    /// Waits for it to end (it ends with the task, or with its replica); its lines.
    pub fn finish(mut self) -> Vec<String> {
        let _ = self.child.wait();
        self.reader.join().expect("reader thread");
        stdout_lines(&self.events.lock().expect("lock"))
    }
}

/// Opens a follow of task `id`'s events after seq `since`: once this returns, the server
/// follows the task, so nothing that happens to it after this is missed.
pub async fn open_follow(control_plane: &ControlPlane, id: &str, since: u64) -> reqwest::Response {
    let url = format!(
        "{}/v1/tasks/{id}/events?follow=true&after_seq={since}",
        control_plane.url
    );
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(&control_plane.admin_token)
        .send()
        .await
        .expect("open the follow");
    assert!(
        response.status().is_success(),
        "follow: {}",
        response.status()
    );
    response
}

/// The events of a follow, until the server ends it.
pub async fn read_to_end(response: reqwest::Response) -> Vec<Value> {
    use futures_util::StreamExt as _;
    let mut body = response.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk.expect("follow chunk"));
    }
    String::from_utf8(text)
        .expect("UTF-8 events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect()
}
