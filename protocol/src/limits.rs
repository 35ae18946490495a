//! Limits both sides enforce. Each is a constant so that the runner, the control plane and
//! the docs agree on one number.

/// Largest WebSocket frame either side accepts. Sized to carry a maximal prompt inside an
/// `assign` with room to spare, while keeping a hostile peer from making us buffer much.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Largest prompt a task may carry. Prompts are text written by people or programs; 1 MiB
/// is far beyond any real one and well inside [`MAX_FRAME_BYTES`].
pub const MAX_PROMPT_BYTES: usize = 1024 * 1024;

/// Largest file read or written through a file request (`kiln files`). Its base64 fits
/// one frame with room to spare.
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// Longest log line kept whole. Longer lines are cut at this many bytes and end with
/// [`TRUNCATION_MARKER`] so the reader sees that something was dropped.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Appended to a line cut at [`MAX_LINE_BYTES`].
pub const TRUNCATION_MARKER: &str = " [kiln: line truncated]";

/// Most events in one `events` frame. Bounds the work of one store transaction; large
/// enough that a fast agent needs few transactions (a frame of 4,096 100-byte lines is
/// about 700 KB, within [`MAX_BATCH_BYTES`] after encoding overhead).
pub const MAX_EVENTS_PER_BATCH: usize = 4096;

/// Most payload bytes in one `events` frame, so a batch of long lines stays well under
/// [`MAX_FRAME_BYTES`] even after JSON escaping doubles it.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Longest runner name, task branch name or capability accepted.
pub const MAX_NAME_BYTES: usize = 200;

/// Most capabilities or labels one runner may announce.
pub const MAX_CAPABILITIES: usize = 64;
