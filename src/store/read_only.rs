//! Reading a data directory without changing it (`opsgate jobs`, `audit`, `backup` while the
//! bot is stopped). sled has no read-only mode: opening writes (its config, recovery), so
//! the files are copied into a private directory and the copy is opened.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{sled_files, SledStore, StoreError};

/// A store opened on a private copy of a data directory; the copy goes with it.
pub struct ReadOnly {
    pub store: SledStore,
    _copy: tempfile::TempDir,
}

impl ReadOnly {
    /// Refuses a directory that does not exist or holds no sled log (it is never created),
    /// and one a running opsgate holds ([`StoreError::Locked`]: ask that process instead).
    pub fn open(dir: &Path) -> Result<ReadOnly, StoreError> {
        let shown = dir.display().to_string();
        if !dir.is_dir() {
            return Err(StoreError::NoDirectory(shown));
        }
        let log = dir.join(sled_files::LOG);
        if !log.is_file() {
            return Err(StoreError::NotADataDirectory(shown));
        }
        let open_error = |source| StoreError::Open {
            dir: shown.clone(),
            source,
        };
        if held_by_another_process(&log).map_err(open_error)? {
            return Err(StoreError::Locked(shown));
        }
        let copy = tempfile::Builder::new()
            .prefix("opsgate-read-")
            .tempdir()
            .map_err(open_error)?;
        copy_tree(dir, copy.path()).map_err(open_error)?;
        let store = SledStore::open(copy.path()).map_err(|e| match e {
            // Say which directory is damaged: the original, not the copy.
            StoreError::Damaged { detail, .. } => StoreError::Damaged { dir: shown, detail },
            other => other,
        })?;
        Ok(ReadOnly { store, _copy: copy })
    }
}

/// Whether another process holds sled's lock on `log` (an exclusive `flock`, taken and let go
/// at once here if it is free: no byte of the file changes).
fn held_by_another_process(log: &Path) -> io::Result<bool> {
    let file = File::open(log)?;
    // SAFETY: flock on a file descriptor we own, with constant flags.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked == 0 {
        // Closing the file releases the lock.
        return Ok(false);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(true),
        _ => Err(error),
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
