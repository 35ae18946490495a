//! A real, throwaway PostgreSQL server for tests: `initdb` into a temp dir, the server on a
//! Unix socket in that dir (no TCP port to collide on), stopped and deleted on drop. Uses
//! the server binaries of Debian's `postgresql` package (`.ci/run` installs it); as root,
//! the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
//! With `KILN_TEST_POSTGRES_URL` set, tests use that server instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

/// Time a fresh server gets to accept connections (initdb is separate and synchronous).
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// What the server logs once it accepts connections.
const READY: &str = "database system is ready to accept connections";

/// Environment variable naming an existing server to use instead of starting one.
pub const URL_VARIABLE: &str = "KILN_TEST_POSTGRES_URL";

/// Databases made by this process, for unique names.
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL server for one test (or one test binary).
#[derive(Debug)]
pub struct TestPostgres {
    /// The server's base URL (database `postgres`).
    base: String,
    /// The server we started, if we started one.
    owned: Option<(Child, tempfile::TempDir)>,
}

impl TestPostgres {
    /// Starts a fresh server (or uses `KILN_TEST_POSTGRES_URL`). Panics with a clear message
    /// when PostgreSQL is not installed: a test that needs it must not pass without it.
    pub fn start() -> Self {
        if let Ok(base) = std::env::var(URL_VARIABLE) {
            return Self { base, owned: None };
        }
        Self::start_owned()
    }

    /// Starts a fresh server of our own, whatever `KILN_TEST_POSTGRES_URL` says: for tests
    /// that stop it.
    pub fn start_owned() -> Self {
        let bin = server_bin_dir().unwrap_or_else(|| {
            panic!("PostgreSQL server binaries (initdb, postgres) not found: install Debian's postgresql package, or set {URL_VARIABLE}")
        });
        let dir = tempfile::Builder::new()
            .prefix("kiln-pg")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a temp dir for postgres: {e}"));
        let owner = run_as_user();
        if let Some(user) = &owner {
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap_or_else(|e| {
                panic!("cannot hand {} to postgres: {e}", dir.path().display())
            });
        }
        let data = dir.path().join("data");
        let status = as_server_user(owner.as_ref(), &bin.join("initdb"))
            .args(["-U", "postgres", "-A", "trust", "-N", "--no-instructions"])
            .args(["-E", "UTF8", "--locale=C.UTF-8", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(status.success(), "initdb failed: {status}");
        let log = std::fs::File::create(dir.path().join("server.log"))
            .unwrap_or_else(|e| panic!("cannot create the postgres log: {e}"));
        let child = as_server_user(owner.as_ref(), &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        let base = format!(
            "postgres:///postgres?host={}&user=postgres",
            dir.path().display()
        );
        let server = Self {
            base,
            owned: Some((child, dir)),
        };
        server.wait_until_ready();
        server
    }

    /// A new, empty database on the server, as a URL.
    pub async fn fresh_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("kiln_test_{}_{n}", std::process::id());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.base)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test postgres: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        self.url_of(&name)
    }

    /// The URL of database `name` on this server: the base URL with its database swapped.
    pub fn url_of(&self, name: &str) -> String {
        let (head, query) = match self.base.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (self.base.as_str(), None),
        };
        let Some((server, _database)) = head.rsplit_once('/') else {
            panic!("{URL_VARIABLE} is not a URL ending in /DATABASE");
        };
        match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        }
    }

    fn wait_until_ready(&self) {
        let Some((_, dir)) = &self.owned else {
            return;
        };
        let log = dir.path().join("server.log");
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while !std::fs::read_to_string(&log).is_ok_and(|text| text.contains(READY)) {
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready within {STARTUP_DEADLINE:?}; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let Some((child, _dir)) = &mut self.owned else {
            return;
        };
        // SIGQUIT: immediate shutdown; the data is thrown away with the dir.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
        }
        let _ = child.wait();
    }
}

/// The directory holding `initdb` and `postgres`: on PATH, else the newest under
/// /usr/lib/postgresql (Debian keeps them off PATH).
fn server_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|bin| version_of(bin));
    versions.pop()
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or(0)
}

/// The user to run the server as: `postgres` when we are root, else ourselves.
fn run_as_user() -> Option<User> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = User::from_name("postgres")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("running as root, and there is no postgres user to run the test server as: install Debian's postgresql package"));
    Some(user)
}

fn as_server_user(owner: Option<&User>, program: &Path) -> Command {
    match owner {
        None => Command::new(program),
        Some(user) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg("--clear-groups")
                .arg(program);
            command
        }
    }
}
