//! A TCP proxy on 127.0.0.1 that a test can pause (hold every byte, like a dead link) and
//! cut (close every connection), to fault the runner's link to the control plane.

use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Buffer per direction of a proxied connection.
const CHUNK: usize = 16 * 1024;

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, to give the runner as its server.
    pub url: String,
    paused: watch::Sender<bool>,
    target: Arc<std::sync::Mutex<String>>,
    connections: Arc<std::sync::Mutex<JoinSet<()>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies to `target` (`http://host:port`).
    pub async fn start(target: &str) -> Self {
        let target = Arc::new(std::sync::Mutex::new(
            target.trim_start_matches("http://").to_owned(),
        ));
        let current = Arc::clone(&target);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let (paused, watch_paused) = watch::channel(false);
        let connections = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let tracked = Arc::clone(&connections);
        let acceptor = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = current.lock().expect("lock").clone();
                let paused = watch_paused.clone();
                tracked.lock().expect("lock").spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(&target).await {
                        pipe_both(inbound, outbound, paused).await;
                    }
                });
            }
        });
        Self {
            url,
            paused,
            target,
            connections,
            acceptor,
        }
    }

    /// Holds all traffic (existing and new connections) until `resume`.
    pub fn pause(&self) {
        let _ = self.paused.send(true);
    }

    /// Lets traffic flow again.
    pub fn resume(&self) {
        let _ = self.paused.send(false);
    }

    /// Sends new connections to `target` (`http://host:port`), as a load balancer does when
    /// a backend dies; open connections stay where they are.
    pub fn retarget(&self, target: &str) {
        *self.target.lock().expect("lock") = target.trim_start_matches("http://").to_owned();
    }

    /// Closes every open connection at once.
    pub fn cut(&self) {
        self.connections.lock().expect("lock").abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

async fn pipe_both(inbound: TcpStream, outbound: TcpStream, paused: watch::Receiver<bool>) {
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::select! {
        () = pipe(in_read, out_write, paused.clone()) => {}
        () = pipe(out_read, in_write, paused) => {}
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        if paused.wait_for(|p| !p).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            // Paused while waiting to read: stop reading until resumed.
            _ = paused.wait_for(|p| *p) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !p).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
