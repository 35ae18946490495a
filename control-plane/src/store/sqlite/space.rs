//! Free space on the disk that holds the database: too little, and the store is not ready
//! (SQLite still writes into the WAL's existing space on a full disk, so one small write
//! proves little).

use std::path::Path;

use crate::store::StoreError;

/// Bytes kept free on the database's disk: a task with a maximal prompt and a few batches
/// of events; a disk with less is full for kiln's purposes.
pub const MIN_FREE_BYTES: u64 = 16 << 20;

/// Fails with [`StoreError::DiskFull`] when the disk holding `directory` has less than
/// [`MIN_FREE_BYTES`] free for an unprivileged writer.
pub fn check(directory: &Path) -> Result<(), StoreError> {
    let stats = nix::sys::statvfs::statvfs(directory).map_err(|e| {
        StoreError::GroupFailed(format!(
            "cannot read the free space of {}: {e}",
            directory.display()
        ))
    })?;
    let free = stats
        .blocks_available()
        .saturating_mul(stats.fragment_size());
    if free < MIN_FREE_BYTES {
        return Err(StoreError::DiskFull {
            path: directory.display().to_string(),
            free,
            needed: MIN_FREE_BYTES,
        });
    }
    Ok(())
}
