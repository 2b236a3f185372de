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

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const FILE: &str = "commit.seq";
const MAGIC: &[u8; 8] = b"OGSEAL01";
const SLOT: u64 = 512;

pub struct Seal {
    file: File,
}

/// What `commit.seq` says.
#[derive(Debug, PartialEq, Eq)]
pub enum Sealed {
    /// No file: a new data directory, or one from a version without it.
    Missing,
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
        None => Sealed::Unreadable,
    })
}

impl Seal {
    /// Opens `commit.seq`, creating it (durably: file and directory entry) if it is missing.
    pub fn open(dir: &Path, dir_handle: &File) -> io::Result<Seal> {
        let path = dir.join(FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !existed {
            // Both slots allocated now, so a later sync commits data only.
            file.set_len(2 * SLOT)?;
            file.sync_all()?;
            dir_handle.sync_all()?;
        }
        Ok(Seal { file })
    }

    /// Records `seq` as durable: one write into its slot (see the module's note on syncs).
    pub fn write(&mut self, seq: u64) -> io::Result<()> {
        let mut slot = [0u8; 20];
        slot[..8].copy_from_slice(MAGIC);
        slot[8..16].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32fast::hash(&slot[..16]);
        slot[16..].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&slot, (seq % 2) * SLOT)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_intact_slot_wins_and_a_torn_slot_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Missing);
        let handle = File::open(dir.path()).unwrap();
        let mut seal = Seal::open(dir.path(), &handle).unwrap();
        seal.write(7).unwrap();
        seal.write(8).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(8));
        // A torn write of slot 0 (seq 8): the other slot still says 7.
        seal.file.write_all_at(b"XX", 10).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Seq(7));
        seal.file.write_all_at(b"XX", SLOT + 10).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Sealed::Unreadable);
    }
}
