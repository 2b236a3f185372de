//! The write-ahead journal that makes a group of writes durable with one cheap `fdatasync`.
//!
//! sled's own flush costs two syncs and a hand-off to its IO thread (see `Store::flush`), so
//! the hot path does not use it. Instead each durable group becomes one record appended to a
//! journal segment, and only that record is synced. sled is made durable behind the journal,
//! on a background thread, whenever the journal moves to its other segment ("checkpoint").
//!
//! Two segment files, `journal.0` and `journal.1`, each [`SEGMENT_SIZE`] bytes, written full of
//! zeros once and then overwritten in place: the file never grows, so `fdatasync` has only
//! data to write, no size or extent to commit. A segment is reused only after the checkpoint
//! that followed it has finished, so every record that sled may not have yet stays readable.
//!
//! A record is `[payload length u32][crc32 u32][lsn u64][payload]`, little-endian. Record
//! numbers (LSNs) are consecutive; a segment's valid records are those from its start whose
//! checksum holds and whose LSN follows the previous one. Anything else (zeros, a torn write,
//! records left from the segment's previous use) ends the segment.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes per segment. Big enough for a few hundred commands between checkpoints, small enough
/// that writing it full of zeros on a first start costs a few milliseconds.
pub const SEGMENT_SIZE: u64 = 2 * 1024 * 1024;

const HEADER: usize = 16;

/// Makes sled durable up to everything applied to it so far.
pub type Checkpoint = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// The records found on opening, by segment: what recovery must replay into sled.
pub struct Recovered {
    buffers: [Vec<u8>; 2],
    /// (lsn, segment, payload range), sorted by lsn.
    records: Vec<(u64, usize, Range<usize>)>,
}

impl Recovered {
    /// The highest record number seen, so that new records never reuse one.
    pub fn last_lsn(&self) -> u64 {
        self.records.last().map_or(0, |r| r.0)
    }

    /// Payloads of the records from `first` on, in order. `Err` names the missing record when
    /// the journal holds later records but not `first` itself: records were lost.
    pub fn from(&self, first: u64) -> Result<Vec<(u64, &[u8])>, u64> {
        let mut out = Vec::new();
        let mut expected = first;
        for (lsn, segment, range) in &self.records {
            if *lsn < expected {
                continue;
            }
            if *lsn != expected {
                return Err(expected);
            }
            out.push((*lsn, &self.buffers[*segment][range.clone()]));
            expected += 1;
        }
        Ok(out)
    }
}

pub struct Journal {
    dir: PathBuf,
    segments: [File; 2],
    /// Whether each segment is known to be SEGMENT_SIZE bytes of written blocks.
    prepared: [bool; 2],
    active: usize,
    offset: u64,
    next_lsn: u64,
    /// The next record: HEADER bytes, then the payload staged so far.
    pending: Vec<u8>,
    /// The group outgrew a segment: its writes are made durable by a checkpoint instead.
    oversized: bool,
    checkpoint: Checkpoint,
    /// The checkpoint (or a segment's preparation) running in the background, if any. The
    /// inactive segment may be written only after it has finished.
    background: Option<JoinHandle<io::Result<()>>>,
}

impl Journal {
    /// Opens (creating if needed) the segments in `dir` and reads their records. Nothing is
    /// written until [`Journal::start`].
    pub fn open(dir: &Path, checkpoint: Checkpoint) -> io::Result<(Journal, Recovered)> {
        let open = |i: usize| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(segment_path(dir, i))
        };
        let segments = [open(0)?, open(1)?];
        let mut buffers = [Vec::new(), Vec::new()];
        let mut prepared = [false; 2];
        let mut records = Vec::new();
        for i in 0..2 {
            let len = segments[i].metadata()?.len();
            prepared[i] = len == SEGMENT_SIZE;
            let mut buf = vec![0u8; len as usize];
            segments[i].read_exact_at(&mut buf, 0)?;
            for (lsn, range) in scan(&buf) {
                records.push((lsn, i, range));
            }
            buffers[i] = buf;
        }
        records.sort_by_key(|r| r.0);
        let mut pending = Vec::with_capacity(64 * 1024);
        pending.resize(HEADER, 0);
        let journal = Journal {
            dir: dir.to_path_buf(),
            segments,
            prepared,
            active: 0,
            offset: 0,
            next_lsn: 1,
            pending,
            oversized: false,
            checkpoint,
            background: None,
        };
        Ok((journal, Recovered { buffers, records }))
    }

    /// Begins writing at record `next_lsn`, at the start of segment 0. Only call this once
    /// every record read on opening is durable in sled: both segments are overwritten.
    pub fn start(&mut self, next_lsn: u64) -> io::Result<()> {
        self.next_lsn = next_lsn.max(1);
        self.active = 0;
        self.offset = 0;
        if !self.prepared[0] {
            prepare(&self.segments[0])?;
            sync_dir(&self.dir)?;
            self.prepared[0] = true;
        }
        if !self.prepared[1] {
            let file = self.segments[1].try_clone()?;
            let dir = self.dir.clone();
            self.background = Some(spawn(move || {
                prepare(&file)?;
                sync_dir(&dir)
            })?);
            self.prepared[1] = true;
        }
        Ok(())
    }

    /// The number of the record that the writes staged now will belong to.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Adds writes (already applied to sled) to the next record.
    pub fn stage(&mut self, ops: &[u8]) {
        if self.oversized {
            return;
        }
        if (self.pending.len() + ops.len()) as u64 > SEGMENT_SIZE {
            // Too big for any segment: `commit` makes sled itself durable instead.
            self.oversized = true;
            self.pending.truncate(HEADER);
            self.pending.shrink_to(64 * 1024);
            return;
        }
        self.pending.extend_from_slice(ops);
    }

    /// Makes everything staged durable: one record, one `fdatasync`.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.pending.len() == HEADER && !self.oversized {
            return Ok(());
        }
        if self.oversized {
            // sled holds every staged write; make it durable, then write an empty record so
            // that record numbers stay consecutive.
            self.wait_for_background()?;
            (self.checkpoint)()?;
            self.oversized = false;
        }
        let len = self.pending.len();
        if self.offset + len as u64 > SEGMENT_SIZE {
            self.switch_segment()?;
        }
        let payload_len = (len - HEADER) as u32;
        let lsn = self.next_lsn;
        let crc = checksum(lsn, &self.pending[HEADER..]);
        self.pending[0..4].copy_from_slice(&payload_len.to_le_bytes());
        self.pending[4..8].copy_from_slice(&crc.to_le_bytes());
        self.pending[8..16].copy_from_slice(&lsn.to_le_bytes());
        let file = &self.segments[self.active];
        file.write_all_at(&self.pending, self.offset)?;
        file.sync_data()?;
        self.offset += len as u64;
        self.next_lsn += 1;
        self.pending.truncate(HEADER);
        Ok(())
    }

    /// Makes sled durable now, so that no record needs replaying (a clean shutdown).
    pub fn checkpoint_now(&mut self) -> io::Result<()> {
        self.wait_for_background()?;
        (self.checkpoint)()
    }

    /// Moves to the other segment and starts the checkpoint that frees this one.
    fn switch_segment(&mut self) -> io::Result<()> {
        // The other segment still holds records sled may not have until its checkpoint ends.
        self.wait_for_background()?;
        let checkpoint = self.checkpoint.clone();
        self.background = Some(spawn(move || checkpoint())?);
        self.active ^= 1;
        self.offset = 0;
        Ok(())
    }

    fn wait_for_background(&mut self) -> io::Result<()> {
        match self.background.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("journal checkpoint thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    /// The background thread holds the database open; a reopen in this process must not
    /// find it still locked.
    fn drop(&mut self) {
        if let Err(e) = self.wait_for_background() {
            tracing::error!(error = %e, "journal checkpoint failed");
        }
    }
}

fn segment_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("journal.{i}"))
}

fn spawn(
    work: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<JoinHandle<io::Result<()>>> {
    std::thread::Builder::new()
        .name("opsgate-checkpoint".into())
        .spawn(work)
}

/// A record's checksum covers its number too, so a stale record cannot pass for a new one.
fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The valid records of one segment, from its start: (lsn, payload range).
fn scan(buf: &[u8]) -> Vec<(u64, Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut previous: Option<u64> = None;
    while let Some(header) = buf.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
        let lsn = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        let start = at + HEADER;
        let Some(payload) = start.checked_add(len).and_then(|end| buf.get(start..end)) else {
            break;
        };
        let follows = previous.is_none_or(|p| lsn == p + 1);
        if lsn == 0 || checksum(lsn, payload) != crc || !follows {
            break;
        }
        out.push((lsn, start..start + len));
        previous = Some(lsn);
        at = start + len;
    }
    out
}

/// Writes the segment full of zeros and syncs it, so later writes land on allocated blocks.
fn prepare(file: &File) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = vec![0u8; CHUNK];
    file.set_len(0)?;
    let mut at = 0;
    while at < SEGMENT_SIZE {
        file.write_all_at(&zeros, at)?;
        at += CHUNK as u64;
    }
    file.sync_all()
}

/// Makes the segments' directory entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Checkpoint, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        (
            Arc::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
            count,
        )
    }

    /// A new journal in `dir`, started at record 1, and how many checkpoints it has asked for.
    fn started(dir: &Path) -> (Journal, Arc<AtomicUsize>) {
        let (checkpoint, count) = counting();
        let (mut j, _) = Journal::open(dir, checkpoint).unwrap();
        j.start(1).unwrap();
        (j, count)
    }

    fn reopen(dir: &Path) -> Recovered {
        let (checkpoint, _) = counting();
        Journal::open(dir, checkpoint).unwrap().1
    }

    fn payloads(r: &Recovered, first: u64) -> Vec<(u64, Vec<u8>)> {
        r.from(first)
            .unwrap()
            .into_iter()
            .map(|(lsn, p)| (lsn, p.to_vec()))
            .collect()
    }

    #[test]
    fn committed_records_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (checkpoint, _) = counting();
        let (mut j, r) = Journal::open(dir.path(), checkpoint).unwrap();
        assert_eq!(r.last_lsn(), 0);
        j.start(1).unwrap();
        j.stage(b"first");
        j.commit().unwrap();
        j.stage(b"sec");
        j.stage(b"ond");
        j.commit().unwrap();
        drop(j);
        let r = reopen(dir.path());
        assert_eq!(
            payloads(&r, 1),
            vec![(1, b"first".to_vec()), (2, b"second".to_vec())]
        );
        assert_eq!(payloads(&r, 2), vec![(2, b"second".to_vec())]);
        assert_eq!(r.last_lsn(), 2);
    }

    #[test]
    fn segments_never_grow_once_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = started(dir.path());
        j.stage(&[7u8; 1000]);
        j.commit().unwrap();
        drop(j);
        for i in 0..2 {
            let len = std::fs::metadata(segment_path(dir.path(), i))
                .unwrap()
                .len();
            assert_eq!(len, SEGMENT_SIZE);
        }
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_earlier_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = started(dir.path());
        j.stage(b"kept");
        j.commit().unwrap();
        j.stage(b"torn record");
        j.commit().unwrap();
        drop(j);
        // Damage the last byte of the second record's payload, as a write cut short would.
        let file = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        let second_end = (HEADER + 4 + HEADER + 11) as u64;
        file.write_all_at(b"X", second_end - 1).unwrap();
        let r = reopen(dir.path());
        assert_eq!(payloads(&r, 1), vec![(1, b"kept".to_vec())]);
    }

    #[test]
    fn moving_to_the_other_segment_checkpoints_and_keeps_records_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, count) = started(dir.path());
        let big = vec![1u8; (SEGMENT_SIZE as usize) / 3];
        for _ in 0..4 {
            j.stage(&big);
            j.commit().unwrap();
        }
        drop(j);
        // Records 1-2 fill segment 0, 3-4 went to segment 1 after one checkpoint.
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let r = reopen(dir.path());
        let lsns: Vec<u64> = r.from(1).unwrap().iter().map(|(l, _)| *l).collect();
        assert_eq!(lsns, vec![1, 2, 3, 4]);
    }

    #[test]
    fn records_left_from_a_segments_previous_use_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = started(dir.path());
        for word in [b"aaaa", b"bbbb", b"cccc"] {
            j.stage(word);
            j.commit().unwrap();
        }
        drop(j);
        // Recovery made 1-3 durable; the journal starts over at the front of segment 0.
        let (checkpoint, _) = counting();
        let (mut j, r) = Journal::open(dir.path(), checkpoint).unwrap();
        j.start(r.last_lsn() + 1).unwrap();
        j.stage(b"dddd");
        j.commit().unwrap();
        drop(j);
        let r = reopen(dir.path());
        assert_eq!(payloads(&r, 4), vec![(4, b"dddd".to_vec())]);
        assert_eq!(r.last_lsn(), 4);
    }

    #[test]
    fn a_gap_after_what_sled_has_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (checkpoint, _) = counting();
        let (mut j, _) = Journal::open(dir.path(), checkpoint).unwrap();
        j.start(10).unwrap();
        j.stage(b"x");
        j.commit().unwrap();
        drop(j);
        let r = reopen(dir.path());
        assert_eq!(r.from(5).err(), Some(5));
        assert_eq!(r.from(10).unwrap().len(), 1);
        assert!(r.from(11).unwrap().is_empty());
    }

    #[test]
    fn a_group_bigger_than_a_segment_is_made_durable_by_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, count) = started(dir.path());
        let chunk = vec![2u8; 1024 * 1024];
        for _ in 0..3 {
            j.stage(&chunk);
        }
        j.commit().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        j.stage(b"after");
        j.commit().unwrap();
        drop(j);
        let r = reopen(dir.path());
        // Record 1 is empty (its writes are in sled), record 2 follows it.
        assert_eq!(
            payloads(&r, 1),
            vec![(1, Vec::new()), (2, b"after".to_vec())]
        );
    }
}
