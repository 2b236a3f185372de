//! `opsgate backup` and `opsgate restore`: a consistent copy of a store in one file.
//!
//! Format: the line `opsgate-backup 1`, a line of JSON ([`Header`]), then each sled entry
//! as `key_len u32 LE | key | value_len u32 LE | value`, then the SHA-256 of everything
//! before it. Consistent because a commit cannot land while a backup is taken (both hold the
//! store's writer lock).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{next_job_id_in, Sled, SledStore, StoreError, NEXT_ID, SEQ};

pub(super) const MAGIC: &[u8] = b"opsgate-backup 1\n";
/// Entries per batch when restoring: bounds what a restore holds in memory at once.
pub(super) const RESTORE_BATCH: usize = 5_000;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    pub taken_at_ms: u64,
    pub next_job_id: u64,
    pub entries: u64,
}

/// What a backup or restore wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub entries: u64,
    pub jobs: u64,
    pub next_job_id: u64,
}

/// Passes what is written on, and hashes it.
pub(super) struct Hashing<W> {
    pub inner: W,
    pub hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SledStore {
    /// Writes a backup of everything committed so far to `out`. Holds the writer's lock
    /// throughout, so no commit lands in the middle: the copy is of one moment.
    pub fn backup(&self, out: impl Write) -> Result<BackupSummary, StoreError> {
        backup_of(&self.sled, out)
    }
}

fn backup_of(sled: &Sled, out: impl Write) -> Result<BackupSummary, StoreError> {
    let _no_commits = sled.writer();
    let io_error = |e: io::Error| StoreError::Sync(e);
    let mut entries = 0;
    for key in sled.db.iter().keys() {
        entries += u64::from(key?.as_ref() != SEQ);
    }
    let header = Header {
        taken_at_ms: crate::domain::time::now_ms(),
        next_job_id: next_job_id_in(&sled.db)?.0,
        entries,
    };
    let mut out = Hashing {
        inner: BufWriter::new(out),
        hash: Sha256::new(),
    };
    out.write_all(MAGIC).map_err(io_error)?;
    serde_json::to_writer(&mut out, &header).map_err(|e| io_error(e.into()))?;
    out.write_all(b"\n").map_err(io_error)?;
    let mut written = 0;
    let mut jobs = 0;
    for item in sled.db.iter() {
        let (key, value) = item?;
        if key.as_ref() == SEQ {
            continue;
        }
        jobs += u64::from(key.first() == Some(&super::JOB));
        for part in [key.as_ref(), value.as_ref()] {
            out.write_all(&(part.len() as u32).to_le_bytes())
                .map_err(io_error)?;
            out.write_all(part).map_err(io_error)?;
        }
        written += 1;
    }
    if written != entries {
        // Cannot happen while the writer's lock is held; checked, not assumed.
        return Err(io_error(io::Error::other(
            "the store changed while the backup was taken",
        )));
    }
    let digest = out.hash.finalize_reset();
    out.inner.write_all(&digest).map_err(io_error)?;
    out.inner.flush().map_err(io_error)?;
    Ok(BackupSummary {
        entries,
        jobs,
        next_job_id: header.next_job_id,
    })
}

/// Restores the backup `file` into `dir`, which must be empty or not exist. Job IDs go on
/// after every ID the backed-up bot may have given out since the backup was taken (see
/// [`next_id_after_restore`]), so that no ID is ever used twice.
pub fn restore(file: &Path, dir: &Path) -> Result<BackupSummary, String> {
    refuse_non_empty(dir)?;
    let header = verify(file)?;
    let store = SledStore::open(dir).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(File::open(file).map_err(|e| read_error(file, e))?);
    skip_header(&mut reader).map_err(|e| read_error(file, e))?;
    let mut batch = sled::Batch::default();
    let mut jobs = 0;
    for n in 0..header.entries {
        let key = field(&mut reader).map_err(|e| read_error(file, e))?;
        let value = field(&mut reader).map_err(|e| read_error(file, e))?;
        jobs += u64::from(key.first() == Some(&super::JOB));
        batch.insert(key.as_slice(), value.as_slice());
        if (n + 1) % RESTORE_BATCH as u64 == 0 {
            store
                .apply(std::mem::take(&mut batch))
                .map_err(|e| e.to_string())?;
        }
    }
    let next_job_id = next_id_after_restore(header.next_job_id, crate::domain::time::now_ms());
    batch.insert(NEXT_ID, &next_job_id.to_be_bytes());
    store.apply(batch).map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())?;
    Ok(BackupSummary {
        entries: header.entries,
        jobs,
        next_job_id,
    })
}

/// A restore or a migration writes only into a new or empty directory.
pub(super) fn refuse_non_empty(dir: &Path) -> Result<(), String> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!(
            "{} is not empty: restore into a new or empty directory (nothing was changed)",
            dir.display()
        ));
    }
    Ok(())
}

/// Takes one entry (key, value) of a store as sled holds it, for a migration or a restore.
pub type EntrySink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), String> + 'a;

/// Every entry of the store but the commit counter, in key order, for a migration.
impl SledStore {
    pub(super) fn for_each_entry(&self, f: &mut EntrySink<'_>) -> Result<(), String> {
        for item in self.sled.db.iter() {
            let (key, value) = item.map_err(|e| StoreError::from(e).to_string())?;
            if key.as_ref() != SEQ {
                f(&key, &value)?;
            }
        }
        Ok(())
    }
}

/// The bot that was backed up may have given out IDs after the backup; nothing records how
/// many. IDs are consecutive from 1, so the restored store continues at the current time in
/// milliseconds since 1970 (13 digits), above any count of jobs a bot can reach, and a later
/// restore continues above that unless more than one job per millisecond was requested on
/// average in between.
pub(super) fn next_id_after_restore(backed_up: u64, now_ms: u64) -> u64 {
    backed_up.max(now_ms)
}

pub(super) fn read_error(file: &Path, e: io::Error) -> String {
    format!("cannot read backup {}: {e}", file.display())
}

/// Checks the magic line, the header and the checksum, reading the file once.
pub(super) fn verify(file: &Path) -> Result<Header, String> {
    let damaged = |why: &str| format!("{} is not a usable opsgate backup: {why}", file.display());
    let bytes_len = std::fs::metadata(file)
        .map_err(|e| read_error(file, e))?
        .len();
    if bytes_len < (MAGIC.len() + 32) as u64 {
        return Err(damaged("too short"));
    }
    let mut reader = BufReader::new(File::open(file).map_err(|e| read_error(file, e))?);
    let mut hash = Sha256::new();
    let mut left = bytes_len - 32;
    let mut chunk = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = chunk.len().min(left as usize);
        reader
            .read_exact(&mut chunk[..want])
            .map_err(|e| read_error(file, e))?;
        hash.update(&chunk[..want]);
        left -= want as u64;
    }
    let mut digest = [0u8; 32];
    reader
        .read_exact(&mut digest)
        .map_err(|e| read_error(file, e))?;
    if hash.finalize().as_slice() != digest {
        return Err(damaged(
            "its checksum does not match (truncated or changed)",
        ));
    }
    let mut reader = BufReader::new(File::open(file).map_err(|e| read_error(file, e))?);
    skip_magic(&mut reader).map_err(|_| damaged("it does not start with `opsgate-backup 1`"))?;
    let mut line = String::new();
    io::BufRead::read_line(&mut reader, &mut line).map_err(|e| read_error(file, e))?;
    serde_json::from_str(&line).map_err(|e| damaged(&format!("unreadable header: {e}")))
}

fn skip_magic(reader: &mut impl Read) -> io::Result<()> {
    let mut magic = [0u8; MAGIC.len()];
    reader.read_exact(&mut magic)?;
    if magic != MAGIC {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad magic"));
    }
    Ok(())
}

pub(super) fn skip_header(reader: &mut BufReader<File>) -> io::Result<()> {
    skip_magic(reader)?;
    let mut line = String::new();
    io::BufRead::read_line(reader, &mut line)?;
    Ok(())
}

pub(super) fn field(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobId;

    #[test]
    fn a_backup_restores_every_entry_and_ids_go_on_above_the_old_ones() {
        let live = tempfile::tempdir().unwrap();
        let store = SledStore::open(live.path()).unwrap();
        let mut batch = sled::Batch::default();
        batch.insert(b"j-one", b"first");
        batch.insert(super::super::message_key("m-1"), &3u64.to_be_bytes());
        batch.insert(NEXT_ID, &4u64.to_be_bytes());
        store.apply(batch).unwrap();
        store.flush().unwrap();
        let file = live.path().join("backup");
        let summary = store.backup(File::create(&file).unwrap()).unwrap();
        assert_eq!(summary.entries, 3);

        let restored = tempfile::tempdir().unwrap();
        let target = restored.path().join("data");
        let summary = restore(&file, &target).unwrap();
        assert!(summary.next_job_id > 1_000_000_000_000, "{summary:?}");
        let store = SledStore::open(&target).unwrap();
        assert_eq!(store.job_for_message("m-1").unwrap(), Some(JobId(3)));
        assert_eq!(
            store.read(|db| Ok(db.get(b"j-one")?)).unwrap().as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(store.next_job_id().unwrap(), JobId(summary.next_job_id));
    }

    #[test]
    fn restore_refuses_a_non_empty_directory_and_a_damaged_file() {
        let live = tempfile::tempdir().unwrap();
        let store = SledStore::open(&live.path().join("data")).unwrap();
        let file = live.path().join("backup");
        store.backup(File::create(&file).unwrap()).unwrap();
        let error = restore(&file, &live.path().join("data")).unwrap_err();
        assert!(error.contains("is not empty"), "{error}");

        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let error = restore(&file, &live.path().join("other")).unwrap_err();
        assert!(error.contains("checksum does not match"), "{error}");
        assert!(!live.path().join("other").exists());
    }

    #[test]
    fn ids_after_a_restore_are_above_both_the_backup_and_the_clock() {
        assert_eq!(next_id_after_restore(5, 1_000), 1_000);
        assert_eq!(next_id_after_restore(5_000, 1_000), 5_000);
    }
}
