//! Reading a data directory without changing it (`opsgate jobs`, `audit`, `backup` while the
//! bot is stopped). sled has no read-only mode: opening writes (its config, recovery), so
//! the files are copied into a private directory and the copy is opened.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{sled_files, SledStore, StoreError};

/// A store opened on a private copy of a data directory; the copy goes with it.
pub struct ReadOnly {
    pub store: SledStore,
    _copy: tempfile::TempDir,
}

impl ReadOnly {
    /// Refuses a directory that does not exist or holds no sled log (it is never created),
    /// and one a running opsgate holds ([`StoreError::Locked`]: ask that process instead).
    /// Damage is refused as opening the directory itself would refuse it, and every error
    /// names the operator's directory, never the private copy.
    pub fn open(dir: &Path) -> Result<ReadOnly, StoreError> {
        let shown = dir.display().to_string();
        if !dir.is_dir() {
            return Err(StoreError::NoDirectory(shown));
        }
        // What opening refuses before sled sees the directory, on the directory itself: the
        // copy would show the same, but under the copy's name.
        sled_files::inspect(dir, &shown)?;
        let log = dir.join(sled_files::LOG);
        if !log.exists() {
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
            .map_err(|e| {
                let temp = std::env::temp_dir();
                let what = format!("making a private copy in {}", temp.display());
                copy_error(&shown, what, e)
            })?;
        copy_tree(dir, copy.path(), Path::new("")).map_err(|(file, e)| {
            let what = format!("copying `{}` to {}", file.display(), copy.path().display());
            copy_error(&shown, what, e)
        })?;
        let store =
            SledStore::open(copy.path()).map_err(|e| as_original(e, copy.path(), &shown))?;
        Ok(ReadOnly { store, _copy: copy })
    }
}

/// A failure of the private copy (reading the original, or writing the copy), told as
/// "cannot open data directory D: {what}: {source}".
fn copy_error(shown: &str, what: String, source: io::Error) -> StoreError {
    StoreError::Open {
        dir: shown.to_string(),
        source: io::Error::new(source.kind(), format!("{what}: {source}")),
    }
}

/// An error from opening the copy at `copy`, told of the operator's directory `shown`.
fn as_original(error: StoreError, copy: &Path, shown: &str) -> StoreError {
    let shown = shown.to_string();
    match error {
        StoreError::Damaged { detail, .. } => StoreError::Damaged { dir: shown, detail },
        StoreError::File { file, source, .. } => StoreError::File {
            dir: shown,
            file,
            source,
        },
        StoreError::Open { source, .. } => StoreError::Open { dir: shown, source },
        StoreError::Locked(_) => StoreError::Locked(shown),
        StoreError::NoDirectory(_) => StoreError::NoDirectory(shown),
        StoreError::NotADataDirectory(_) => StoreError::NotADataDirectory(shown),
        // Writes made opening the copy (sled's recovery, `commit.seq`): they are the copy's.
        StoreError::Sync(source) => copy_error(
            &shown,
            format!("opening its private copy in {}", copy.display()),
            source,
        ),
        other => other,
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

/// Copies the tree at `from` into `to`; on failure, says which file (relative to the root
/// of the copy, `rel` so far) it was copying.
fn copy_tree(from: &Path, to: &Path, rel: &Path) -> Result<(), (PathBuf, io::Error)> {
    let entries = std::fs::read_dir(from).map_err(|e| (rel.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (rel.to_path_buf(), e))?;
        let name = rel.join(entry.file_name());
        let target = to.join(entry.file_name());
        let is_dir = entry.file_type().map_err(|e| (name.clone(), e))?.is_dir();
        if is_dir {
            std::fs::create_dir_all(&target).map_err(|e| (name.clone(), e))?;
            copy_tree(&entry.path(), &target, &name)?;
        } else {
            std::fs::copy(entry.path(), target).map_err(|e| (name, e))?;
        }
    }
    Ok(())
}
