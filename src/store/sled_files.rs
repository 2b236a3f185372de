//! sled's files: how sled is opened safely, and how what it wrote is made durable.
//!
//! sled 0.34's own flush ends in `sync_file_range`, which neither flushes the disk's write
//! cache nor commits the file's size (spacejam/sled#1452), writes blob files it never syncs,
//! and renames snapshot files without syncing their directory. [`Durability::sync`] closes
//! each of those gaps after sled's flush.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::seal::{self, Sealed};
use super::StoreError;

/// sled's log segment size for new data directories: sled's own default. Every group ends in
/// a flush, so sled's IO buffers are written per group whatever their size; the segment size
/// decides how often the log file grows by a segment, and which items become blob files (a
/// quarter segment, 128 KiB, far above our largest node). The journal era's 128 KiB, chosen
/// to keep buffer writes small, showed a worse POST p99 tail here (BENCHMARKS.md).
const SEGMENT_SIZE: usize = 512 * 1024;

/// How long opening waits for a lock that is about to be let go (see [`open`]).
const LOCK_GRACE: Duration = Duration::from_millis(500);

/// sled's one log file in the data directory.
pub(super) const LOG: &str = "db";
/// sled's configuration file, and its directory of items too big for the log.
const CONF: &str = "conf";
const BLOBS: &str = "blobs";

/// What opening sees of a data directory before sled does, and the damage it refuses
/// there, with the file named: an entry of the wrong kind where sled or `commit.seq` keeps
/// a file or a directory (sled and the kernel would say only "Is a directory"),
/// `commit.seq` unreadable, or `db` gone while `commit.seq` says commits were made durable.
/// Reads only, so it serves `opsgate jobs` on the operator's own directory too.
pub(super) fn inspect(dir: &Path, shown: &str) -> Result<Sealed, StoreError> {
    check_kinds(dir, shown)?;
    let sealed = seal::read(dir).map_err(|source| file_error(shown, seal::FILE, source))?;
    match sealed {
        Sealed::Unreadable => Err(damaged(
            shown,
            format!("both slots of `{}` are unreadable", seal::FILE),
        )),
        Sealed::Seq(s) if s > 0 && !dir.join(LOG).exists() => {
            Err(damaged(shown, "sled's log file `db` is missing".into()))
        }
        _ => Ok(sealed),
    }
}

/// Whether `name`, in the data directory, must be a directory (`Some(true)`) or a file.
fn kind_of(name: &str) -> Option<bool> {
    match name {
        BLOBS => Some(true),
        LOG | CONF | seal::FILE | seal::NEW => Some(false),
        _ if name.starts_with("snap.") => Some(false),
        _ => None,
    }
}

/// Refuses, as damage, an entry that is not of the kind sled or `commit.seq` keeps under
/// its name (a file, or the directory `blobs` holding files only).
fn check_kinds(dir: &Path, shown: &str) -> Result<(), StoreError> {
    let open_error = |source| StoreError::Open {
        dir: shown.to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(open_error)? {
        let name = entry.map_err(open_error)?.file_name();
        let name = name.to_string_lossy();
        let Some(must_be_dir) = kind_of(&name) else {
            continue;
        };
        check_kind(dir, &name, must_be_dir, shown)?;
        if must_be_dir {
            for blob in
                std::fs::read_dir(dir.join(&*name)).map_err(|e| file_error(shown, &name, e))?
            {
                let blob = blob.map_err(|e| file_error(shown, &name, e))?.file_name();
                check_kind(
                    dir,
                    &format!("{name}/{}", blob.to_string_lossy()),
                    false,
                    shown,
                )?;
            }
        }
    }
    Ok(())
}

/// `rel` (under `dir`) is a directory if `must_be_dir`, else a regular file (links are
/// followed, as sled follows them).
fn check_kind(dir: &Path, rel: &str, must_be_dir: bool, shown: &str) -> Result<(), StoreError> {
    let meta = match std::fs::metadata(dir.join(rel)) {
        Ok(meta) => meta,
        // Gone since the listing (sled renames and removes files of its own).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_error(shown, rel, e)),
    };
    let is = if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a file"
    } else {
        "neither a file nor a directory"
    };
    match (must_be_dir, meta.is_dir(), meta.is_file()) {
        (true, true, _) | (false, _, true) => Ok(()),
        (true, ..) => Err(damaged(shown, format!("`{rel}` is {is}, not a directory"))),
        (false, ..) => Err(damaged(shown, format!("`{rel}` is {is}, not a file"))),
    }
}

fn file_error(shown: &str, file: &str, source: io::Error) -> StoreError {
    StoreError::File {
        dir: shown.to_string(),
        file: file.to_string(),
        source,
    }
}

/// Opens sled, waiting briefly if its lock is held. sled lets go of its lock file only when
/// its last buffered write, running on sled's own thread pool, has finished: a moment after
/// the last handle is dropped. A reopen right after a close (a restart in one process, a
/// test) may find it still held; another running opsgate holds it for longer than the wait.
///
/// A panic inside sled while it recovers (it has index panics on some damaged logs) becomes
/// [`StoreError::Damaged`], with no backtrace.
pub(super) fn open(dir: &Path, shown: &str) -> Result<sled::Db, StoreError> {
    remove_unfinished_snapshots(dir, shown)?;
    let started = Instant::now();
    let segment_size = segment_size(dir);
    loop {
        let opened = quietly(|| {
            sled::Config::new()
                .path(dir)
                .segment_size(segment_size)
                // The bot keeps its working set in memory; sled's cache only serves history.
                .cache_capacity(4 * 1024 * 1024)
                // Every group is flushed by the engine (Store::flush); no timer is needed.
                .flush_every_ms(None)
                .open()
        });
        match opened {
            Err(panic) => return Err(damaged(shown, format!("sled panicked: {panic}"))),
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(io))) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_GRACE {
                    return Err(StoreError::Locked(shown.to_string()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(Err(sled::Error::Io(source))) => {
                return Err(StoreError::Open {
                    dir: shown.to_string(),
                    source,
                })
            }
            Ok(Err(other)) => {
                // sled's errors end in a debug rendering of an empty backtrace.
                let text = other.to_string();
                let text = text.trim_end().trim_end_matches("backtrace ()").trim_end();
                return Err(damaged(shown, format!("sled cannot read it: {text}")));
            }
        }
    }
}

/// A handle on sled whose drop never panics. sled 0.34 flushes and syncs its log when its
/// last handle goes, and panics if that fails (an `unwrap` in its `Log::drop`): after an
/// opening that failed on a sync, the process would end in sled's backtrace instead of the
/// error. Opening holds one of these from before any other handle, so that on an error it
/// is dropped last; the error that ended the opening is the one reported.
pub(super) struct QuietDrop(Option<sled::Db>);

impl QuietDrop {
    pub fn new(db: sled::Db) -> QuietDrop {
        QuietDrop(Some(db))
    }
}

impl std::ops::Deref for QuietDrop {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for QuietDrop {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            if let Err(panic) = quietly(move || drop(db)) {
                tracing::debug!("sled panicked as its last handle went: {panic}");
            }
        }
    }
}

fn damaged(shown: &str, detail: String) -> StoreError {
    StoreError::Damaged {
        dir: shown.to_string(),
        detail,
    }
}

/// sled writes a snapshot to `snap.N.generating`, syncs it, then renames it to `snap.N`. A
/// crash before the rename leaves the `.generating` file, which sled 0.34.7 then takes for
/// its newest snapshot (spacejam/sled#1527, #1533) and fails or panics on. Such a file is
/// never needed: until the rename, the previous snapshot and the log are still complete.
fn remove_unfinished_snapshots(dir: &Path, shown: &str) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Open {
                dir: shown.to_string(),
                source,
            })
        }
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing a snapshot that sled never finished writing");
            std::fs::remove_file(entry.path()).map_err(|source| StoreError::Open {
                dir: shown.to_string(),
                source,
            })?;
            removed = true;
        }
    }
    if removed {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::Sync)?;
    }
    Ok(())
}

thread_local! {
    /// Set while [`quietly`] runs: the panic hook records the message instead of printing.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, turning a panic into its message, printed nowhere.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let caught = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                if c.is_some() {
                    let at = info
                        .location()
                        .map(|l| format!(" at {l}"))
                        .unwrap_or_default();
                    *c = Some(format!("{}{at}", panic_text(info.payload())));
                    true
                } else {
                    false
                }
            });
            if !caught {
                previous(info);
            }
        }));
    });
    CAUGHT.with(|c| *c.borrow_mut() = Some(String::new()));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    let message = CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_default();
    result.map_err(|_| message)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
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

/// Makes durable what sled has written: see [`Durability::sync`].
pub(super) struct Durability {
    db: sled::Db,
    log: File,
    dir: File,
    path: PathBuf,
    blobs: PathBuf,
    /// The data directory's entries (name, inode) as of its last sync; `None` before the
    /// first one.
    synced_entries: Option<Vec<(OsString, u64)>>,
    /// Blob files already synced: a blob never changes once written.
    synced_blobs: HashSet<OsString>,
}

impl Durability {
    /// Also makes the directory as it is now durable: a new directory's `conf` (which sled
    /// writes without a sync) and the entries of its files.
    pub fn new(db: sled::Db, dir: &Path) -> io::Result<Durability> {
        let log = File::open(dir.join(LOG))?;
        let dir_handle = File::open(dir)?;
        if let Ok(conf) = File::open(dir.join("conf")) {
            conf.sync_all()?;
        }
        let mut durability = Durability {
            db,
            log,
            dir: dir_handle,
            path: dir.to_path_buf(),
            blobs: dir.join("blobs"),
            synced_entries: None,
            synced_blobs: HashSet::new(),
        };
        durability.sync()?;
        Ok(durability)
    }

    pub fn dir(&self) -> &File {
        &self.dir
    }

    /// Everything applied to sled so far, durable: sled's flush, then an `fdatasync` of its
    /// log, a sync of each new blob file, and of the directory if its entries changed.
    pub fn sync(&mut self) -> io::Result<()> {
        self.db.flush().map_err(io::Error::other)?;
        self.log.sync_data()?;
        self.sync_new_blobs()?;
        self.sync_dir_if_changed().map(drop)
    }

    /// Syncs the data directory if an entry was added, removed or renamed since its last
    /// sync; says whether it did. sled 0.34 changes the directory only while opening
    /// (`conf`, snapshot renames), so a group normally needs no directory sync, and every
    /// sync is a flush of the disk's write cache: syncing it per group doubled the flushes
    /// (BENCHMARKS.md). The listing is read before the sync, so a change racing with it is
    /// seen by the next one.
    fn sync_dir_if_changed(&mut self) -> io::Result<bool> {
        use std::os::unix::fs::DirEntryExt;
        let mut entries = std::fs::read_dir(&self.path)?
            .map(|entry| entry.map(|e| (e.file_name(), e.ino())))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort_unstable();
        if self.synced_entries.as_ref() == Some(&entries) {
            return Ok(false);
        }
        self.dir.sync_all()?;
        self.synced_entries = Some(entries);
        Ok(true)
    }

    /// There are normally none: this is a listing of an empty directory.
    fn sync_new_blobs(&mut self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = false;
        for entry in entries {
            let entry = entry?;
            if self.synced_blobs.contains(&entry.file_name()) {
                continue;
            }
            match File::open(entry.path()).and_then(|f| f.sync_all()) {
                Ok(()) => {
                    self.synced_blobs.insert(entry.file_name());
                    synced = true;
                }
                // sled removed it since the listing: nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if synced {
            File::open(&self.blobs)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directories_get_sleds_default_segments_and_old_ones_keep_theirs() {
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(segment_size(fresh.path()), SEGMENT_SIZE);
        drop(open(fresh.path(), "fresh").unwrap());
        assert_eq!(segment_size(fresh.path()), SEGMENT_SIZE);

        // A directory made with the journal era's 128 KiB segments still opens.
        let old = tempfile::tempdir().unwrap();
        let config = sled::Config::new()
            .path(old.path())
            .segment_size(128 * 1024);
        drop(config.open().unwrap());
        assert_eq!(segment_size(old.path()), 128 * 1024);
        let db = open(old.path(), "old").unwrap();
        db.insert(b"k", b"v").unwrap();
    }

    #[test]
    fn the_directory_is_synced_when_its_entries_change_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), "dir").unwrap();
        let mut durability = Durability::new(db.clone(), dir.path()).unwrap();
        db.insert(b"k", b"v").unwrap();
        durability.sync().unwrap();
        assert!(
            !durability.sync_dir_if_changed().unwrap(),
            "nothing changed"
        );

        let added = dir.path().join("added");
        std::fs::write(&added, b"x").unwrap();
        assert!(durability.sync_dir_if_changed().unwrap(), "a new entry");
        assert!(!durability.sync_dir_if_changed().unwrap());
        let renamed = dir.path().join("renamed");
        std::fs::rename(&added, &renamed).unwrap();
        assert!(durability.sync_dir_if_changed().unwrap(), "a rename");
        // The same names, one of them now another file: replaced by a rename.
        let replacement = dir.path().join("replacement");
        std::fs::write(&replacement, b"y").unwrap();
        assert!(durability.sync_dir_if_changed().unwrap());
        std::fs::rename(&replacement, &renamed).unwrap();
        std::fs::write(&replacement, b"z").unwrap();
        assert!(
            durability.sync_dir_if_changed().unwrap(),
            "a replaced entry"
        );
        std::fs::remove_file(&renamed).unwrap();
        assert!(durability.sync_dir_if_changed().unwrap(), "a removal");
    }

    #[test]
    fn items_too_big_for_the_log_survive_a_sync_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; SEGMENT_SIZE / 2];
        {
            let db = open(dir.path(), "dir").unwrap();
            let mut durability = Durability::new(db.clone(), dir.path()).unwrap();
            db.insert(b"big", big.as_slice()).unwrap();
            durability.sync().unwrap();
            assert!(!durability.synced_blobs.is_empty(), "no blob was synced");
        }
        let db = open(dir.path(), "dir").unwrap();
        assert_eq!(db.get(b"big").unwrap().as_deref(), Some(big.as_slice()));
    }

    #[test]
    fn an_unfinished_snapshot_is_removed_before_sled_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path(), "dir").unwrap();
            db.insert(b"k", b"v").unwrap();
            db.flush().unwrap();
        }
        let leftover = dir.path().join("snap.FFFFFFFFFFFFFFFF.generating");
        std::fs::write(&leftover, b"half a snapshot").unwrap();
        let db = open(dir.path(), "dir").unwrap();
        assert!(!leftover.exists());
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn an_entry_of_the_wrong_kind_is_damage_that_names_it_and_others_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), "dir").unwrap());
        std::fs::create_dir(dir.path().join("notes")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"the operator's").unwrap();
        assert_eq!(inspect(dir.path(), "dir").unwrap(), Sealed::Missing);
        for name in ["blobs/7", "snap.00000000000000FF.generating", seal::NEW] {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            let error = inspect(dir.path(), "dir").unwrap_err();
            assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
            let named = format!("`{name}` is a directory, not a file");
            assert!(error.to_string().contains(&named), "{error}");
            std::fs::remove_dir(&path).unwrap();
        }
    }

    #[test]
    fn a_panic_is_caught_without_printing_and_later_panics_still_print() {
        let caught = quietly(|| -> () { panic!("inside sled") });
        assert!(caught.unwrap_err().contains("inside sled"));
        assert_eq!(quietly(|| 5), Ok(5));
    }
}
