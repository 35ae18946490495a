//! A log follower: `kiln logs -f` run against a control plane, its output collected while
//! the test goes on.

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
