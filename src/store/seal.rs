//! `commit.seq`: the number of the last commit made durable, kept outside sled so that
//! opening can tell a sled log that lost acknowledged writes (truncated, overwritten,
//! deleted) from one that holds them all. sled itself cannot: it takes a damaged log for a
//! torn tail and opens with less.
//!
//! Two 512-byte slots, each `magic (8) | seq u64 LE | crc32 of the 16 bytes before`, written
//! alternately, each time after sled is durable: a torn write can damage only the slot being
//! written, and the other still holds an earlier number, which sled is never behind.
//!
//! A group's write is not synced on its own: whatever state of the file a crash or a power
//! cut leaves, every number in it was written after sled held that commit durably, so it is
//! never ahead of sled, and a kill (the common crash) loses nothing of it. A power cut may
//! leave an older number, which only makes the check less sharp for that one opening. It is
//! synced when the store opens and when it closes cleanly.
//!
//! The file is created whole (see [`Seal::open`]): written under a temporary name with
//! commit 0 in both slots, synced, and only then renamed into place, so no crash or full
//! disk leaves a `commit.seq` without a readable slot. Until the rename there is no
//! `commit.seq`, which is what a new directory has; a leftover temporary file is never
//! read, and is replaced by the next creation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const FILE: &str = "commit.seq";
/// `commit.seq` while it is being created.
pub const NEW: &str = "commit.seq.new";
const MAGIC: &[u8; 8] = b"OGSEAL01";
const SLOT: u64 = 512;

pub struct Seal {
    file: File,
}

/// What `commit.seq` says.
#[derive(Debug, PartialEq, Eq)]
pub enum Sealed {
    /// No file: a new data directory, one from a version without it, or one whose
    /// `commit.seq` was never finished (it is created under another name).
    Missing,
    /// A file of at most two slots that holds nothing but zeros. This version never makes
    /// one; earlier versions did, when a crash or a full disk cut short the file's creation
    /// (both slots were allocated and synced before the first was written). No commit
    /// number was ever in it, so it says no more than a missing file.
    NeverWritten,
    /// Both slots are damaged.
    Unreadable,
    Seq(u64),
}

pub fn read(dir: &Path) -> io::Result<Sealed> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Sealed::Missing),
        Err(e) => return Err(e),
    };
    let slot = |i: u64| {
        let at = (i * SLOT) as usize;
        let raw = bytes.get(at..at + 20)?;
        let crc = u32::from_le_bytes(raw[16..20].try_into().ok()?);
        (&raw[..8] == MAGIC && crc32fast::hash(&raw[..16]) == crc)
            .then(|| u64::from_le_bytes(raw[8..16].try_into().unwrap_or_default()))
    };
    Ok(match slot(0).max(slot(1)) {
        Some(seq) => Sealed::Seq(seq),
        None if bytes.len() as u64 <= 2 * SLOT && bytes.iter().all(|&b| b == 0) => {
            Sealed::NeverWritten
        }
        None => Sealed::Unreadable,
    })
}

/// The bytes of one slot holding `seq`.
fn slot(seq: u64) -> [u8; 20] {
    let mut slot = [0u8; 20];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&slot[..16]);
    slot[16..].copy_from_slice(&crc.to_le_bytes());
    slot
}

impl Seal {
    /// Opens `commit.seq` as [`read`] found it; when that was [`Sealed::Missing`] or
    /// [`Sealed::NeverWritten`], creates it first: commit 0 in both slots is written to
    /// [`NEW`] and synced, [`NEW`] is renamed to `commit.seq` (replacing a never-written
    /// one), and the directory is synced. Whenever this is cut short (a kill, a power cut,
    /// a full disk), `commit.seq` is as it was, or complete and readable: the rename comes
    /// after the sync. Commit 0 is never ahead of sled, and with both slots readable, a
    /// torn write of one slot later still leaves the other.
    pub fn open(dir: &Path, dir_handle: &File, found: &Sealed) -> io::Result<Seal> {
        let path = dir.join(FILE);
        let file = match found {
            Sealed::Missing | Sealed::NeverWritten => {
                let new = dir.join(NEW);
                let created = create(&new).and_then(|file| {
                    std::fs::rename(&new, &path)?;
                    dir_handle.sync_all()?;
                    Ok(file)
                });
                if created.is_err() {
                    // Never read; the next creation would replace it anyway. On a full
                    // disk this gives the space back.
                    let _ = std::fs::remove_file(&new);
                }
                created?
            }
            Sealed::Unreadable | Sealed::Seq(_) => {
                OpenOptions::new().read(true).write(true).open(&path)?
            }
        };
        Ok(Seal { file })
    }

    /// Records `seq` as durable: one write into its slot (see the module's note on syncs).
    pub fn write(&mut self, seq: u64) -> io::Result<()> {
        self.file.write_all_at(&slot(seq), (seq % 2) * SLOT)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Writes `path` anew, whole (both slots, every byte, so that no later write in it needs
/// space), holding commit 0, and syncs it.
fn create(path: &Path) -> io::Result<File> {
    let mut image = [0u8; 2 * SLOT as usize];
    image[..20].copy_from_slice(&slot(0));
    image[SLOT as usize..SLOT as usize + 20].copy_from_slice(&slot(0));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all_at(&image, 0)?;
    file.sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_intact_slot_wins_and_a_torn_slot_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Missing);
        let handle = File::open(dir.path()).unwrap();
        let mut seal = Seal::open(dir.path(), &handle, &Sealed::Missing).unwrap();
        assert_eq!(
            read(dir.path()).unwrap(),
            Sealed::Seq(0),
            "created readable"
        );
        seal.write(7).unwrap();
        seal.write(8).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(8));
        // A torn write of slot 0 (seq 8): the other slot still says 7.
        seal.file.write_all_at(b"XX", 10).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(7));
        seal.file.write_all_at(b"XX", SLOT + 10).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Unreadable);
    }

    #[test]
    fn a_new_file_holds_commit_zero_in_both_slots_so_a_torn_first_write_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let handle = File::open(dir.path()).unwrap();
        let mut seal = Seal::open(dir.path(), &handle, &Sealed::Missing).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE)).unwrap().len(),
            2 * SLOT
        );
        seal.write(2).unwrap();
        seal.file.write_all_at(b"XX", 10).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(0));
    }

    /// What an interrupted creation can leave: by this version, nothing under `commit.seq`
    /// and perhaps part of `commit.seq.new`; by earlier ones, `commit.seq` empty or all
    /// zeros. Each reads as never written, and opening creates the file whole.
    #[test]
    fn every_state_an_interrupted_creation_leaves_reads_as_never_written() {
        type Files<'a> = &'a [(&'a str, &'a [u8])];
        let leftovers: [(&str, Files); 5] = [
            ("a partial temporary file", &[(NEW, b"OGSEAL01\x07")]),
            ("an empty temporary file", &[(NEW, b"")]),
            ("an empty commit.seq", &[(FILE, b"")]),
            (
                "commit.seq as earlier versions allocated it",
                &[(FILE, &[0; 1024])],
            ),
            (
                "both, as a power cut before the rename leaves them",
                &[(FILE, &[0; 1024]), (NEW, &[0; 1024])],
            ),
        ];
        for (what, files) in leftovers {
            let dir = tempfile::tempdir().unwrap();
            for (name, bytes) in files {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            let found = read(dir.path()).unwrap();
            assert!(
                matches!(found, Sealed::Missing | Sealed::NeverWritten),
                "{what}: {found:?}"
            );
            let handle = File::open(dir.path()).unwrap();
            let mut seal = Seal::open(dir.path(), &handle, &found).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(0), "{what}");
            assert!(!dir.path().join(NEW).exists(), "{what}: {NEW} is left");
            seal.write(3).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(3), "{what}");
        }
    }

    #[test]
    fn anything_else_without_a_readable_slot_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let mut garbled = vec![0u8; 1024];
        garbled[700] = 1;
        for bytes in [garbled, vec![0; 1025], b"OGSEAL01".to_vec()] {
            std::fs::write(dir.path().join(FILE), &bytes).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Sealed::Unreadable, "{bytes:?}");
        }
    }
}
