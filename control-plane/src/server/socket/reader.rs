//! Reads and decodes a runner's frames on a task of their own, a few frames ahead of the
//! connection, so that decoding the next event batch overlaps storing the last one. The
//! channel is small: when the connection falls behind, the reader stops reading the socket
//! and TCP pushes back on the runner.

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt as _;
use kiln_protocol::RunnerMessage;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Frames decoded ahead of the connection: with one more held by the reader while the
/// channel is full, up to three wait (at most 3 × 4 MiB on a busy connection), enough to
/// keep decoding going while the connection stores a batch.
const FRAMES_AHEAD: usize = 2;

/// A frame from the runner, decoded.
pub enum Inbound {
    /// A protocol message. Boxed: the channel allocates its slots in blocks of 32, and
    /// an unboxed message would make that block 8 KiB per idle connection.
    Message(Box<RunnerMessage>),
    /// A frame that is not one; the reason is sent back to the runner.
    Refused(String),
    /// A ping or pong: the runner is alive.
    Control,
    /// The runner sent a close frame.
    Closing,
}

/// The reading task; aborted when dropped, with the connection.
pub struct Reader {
    /// The decoded frames, in the order they came.
    pub frames: mpsc::Receiver<Inbound>,
    task: JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts reading `stream`. `frames` ends when the socket does.
pub fn start(stream: SplitStream<WebSocket>) -> Reader {
    let (tx, frames) = mpsc::channel(FRAMES_AHEAD);
    let task = tokio::spawn(read(stream, tx));
    Reader { frames, task }
}

async fn read(mut stream: SplitStream<WebSocket>, frames: mpsc::Sender<Inbound>) {
    while let Some(Ok(message)) = stream.next().await {
        let inbound = decode(message);
        let closing = matches!(inbound, Inbound::Closing);
        if frames.send(inbound).await.is_err() || closing {
            return;
        }
    }
}

fn decode(message: Message) -> Inbound {
    match message {
        Message::Text(text) => match kiln_protocol::decode::runner_frame(text.as_bytes()) {
            Ok(message) => Inbound::Message(Box::new(message)),
            Err(e) => Inbound::Refused(e.to_string()),
        },
        Message::Binary(_) => Inbound::Refused("binary frames are not part of the protocol".into()),
        Message::Ping(_) | Message::Pong(_) => Inbound::Control,
        Message::Close(_) => Inbound::Closing,
    }
}
