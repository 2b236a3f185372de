//! How sled is opened, and how it is made durable at a checkpoint.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{journal, StoreError};

/// sled's log segment size, which is also the size of its IO buffers, for new data
/// directories. sled writes a buffer out with a `sync_file_range` each time one fills, and a
/// journal `fdatasync` that meets such a write waits for it at the disk. At sled's default of
/// 512 KiB that was a burst every ~60 one-at-a-time commands and the slowest commands of the
/// run; 128 KiB buffers put the same bytes on the disk in pieces a quarter the size
/// (BENCHMARKS.md). sled stores an item bigger than a quarter of a segment (32 KiB) as a
/// blob file (see [`sync_blobs`]); a node of ordinary job records is well below that.
const SEGMENT_SIZE: usize = 128 * 1024;

/// How long opening waits for a lock that is about to be let go (see [`open`]).
const LOCK_GRACE: Duration = Duration::from_millis(500);

/// Opens sled, waiting briefly if its lock is held. sled lets go of its lock file only when
/// its last buffered write, running on sled's own thread pool, has finished: a moment after
/// the last handle is dropped. A reopen right after a close (a restart in one process, a
/// test) may find it still held; another running opsgate holds it for longer than the wait.
pub(super) fn open(dir: &Path, shown: &str) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    let segment_size = segment_size(dir);
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .segment_size(segment_size)
            // The bot keeps its working set in memory; sled's cache only serves history reads.
            .cache_capacity(4 * 1024 * 1024)
            // The journal makes writes durable; sled is flushed by checkpoints, not a timer.
            .flush_every_ms(None)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_GRACE {
                    return Err(StoreError::Locked(shown.to_string()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(StoreError::Open {
                    dir: shown.to_string(),
                    source,
                })
            }
        }
    }
}

/// sled refuses to open a directory with another segment size than the one it was created
/// with, which it records in `conf`: directories from before [`SEGMENT_SIZE`] keep theirs.
fn segment_size(dir: &Path) -> usize {
    // `conf` is lines of text followed by a binary checksum.
    std::fs::read(dir.join("conf"))
        .ok()
        .and_then(|conf| {
            String::from_utf8_lossy(&conf)
                .lines()
                .find_map(|line| line.strip_prefix("segment_size:")?.trim().parse().ok())
        })
        .unwrap_or(SEGMENT_SIZE)
}

/// sled made durable: its flush, its blob files, then the `fdatasync` its flush lacks
/// (spacejam/sled#1452) of `log`, sled's one log file (`db` in the data directory).
pub(super) fn checkpoint(db: sled::Db, dir: &Path, log: File) -> journal::Checkpoint {
    let blobs = dir.join("blobs");
    Arc::new(move || {
        db.flush().map_err(io::Error::other)?;
        sync_blobs(&blobs)?;
        log.sync_data()
    })
}

/// sled writes an item too big for its log into a file of its own and never syncs it, so a
/// checkpoint does. There are normally none: this is a directory listing.
fn sync_blobs(blobs: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(blobs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut synced = false;
    for entry in entries {
        let path = entry?.path();
        match File::open(&path).and_then(|f| f.sync_all()) {
            Ok(()) => synced = true,
            // sled removed it since the listing: nothing to keep.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if synced {
        File::open(blobs)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directories_get_small_segments_and_old_ones_keep_theirs() {
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(segment_size(fresh.path()), SEGMENT_SIZE);
        drop(open(fresh.path(), "fresh").unwrap());
        assert_eq!(segment_size(fresh.path()), SEGMENT_SIZE);

        // A directory sled created with its default of 512 KiB still opens.
        let old = tempfile::tempdir().unwrap();
        drop(sled::Config::new().path(old.path()).open().unwrap());
        assert_eq!(segment_size(old.path()), 512 * 1024);
        let db = open(old.path(), "old").unwrap();
        db.insert(b"k", b"v").unwrap();
    }

    #[test]
    fn items_too_big_for_the_log_survive_a_checkpoint_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; SEGMENT_SIZE / 2];
        {
            let db = open(dir.path(), "dir").unwrap();
            db.insert(b"big", big.as_slice()).unwrap();
            let log = File::open(dir.path().join("db")).unwrap();
            checkpoint(db, dir.path(), log)().unwrap();
        }
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert!(blobs > 0, "the value was not stored as a blob");
        let db = open(dir.path(), "dir").unwrap();
        assert_eq!(db.get(b"big").unwrap().as_deref(), Some(big.as_slice()));
    }
}
