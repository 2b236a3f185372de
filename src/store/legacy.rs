//! Data directories written by versions that kept a write-ahead journal in front of sled
//! (`journal.0`, `journal.1`) and two counters in a `meta` tree. Opening one replays, once,
//! every journal record sled may lack, makes sled durable, removes the journal, and moves the
//! job counter back into the main tree.
//!
//! Those versions wrote each record to sled before journaling it, preceded by its number
//! (`APPLIED`). sled keeps a prefix of its writes, so it held every record before `APPLIED`
//! whole, that one perhaps in part, and nothing after it. A record is
//! `[payload length u32][crc32 of lsn and payload u32][lsn u64][payload]` (little-endian);
//! a payload is writes, `b'I' key_len:u16 key value_len:u32 value` or `b'R' key_len:u16 key`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{StoreError, NEXT_ID};

const SEGMENTS: [&str; 2] = ["journal.0", "journal.1"];
const HEADER: usize = 16;
const META_TREE: &[u8] = b"meta";
/// The record that sled's latest writes belonged to.
const APPLIED: &[u8] = b"meta:journal_record";

/// Whether `dir` holds anything of the old layout.
pub(super) fn present(db: &sled::Db, dir: &Path) -> bool {
    SEGMENTS.iter().any(|s| dir.join(s).exists())
        || db.tree_names().iter().any(|t| t == META_TREE)
        || db.contains_key(APPLIED).unwrap_or(false)
}

/// Brings an old-layout directory to the current one. `sync` makes sled durable. Each step
/// can be repeated after a crash: replaying a suffix of the journal again ends in the same
/// state, and the journal is removed only once sled holds it all durably.
pub(super) fn migrate(
    db: &sled::Db,
    dir: &Path,
    shown: &str,
    sync: &mut dyn FnMut() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let meta = db
        .tree_names()
        .iter()
        .any(|t| t == META_TREE)
        .then(|| db.open_tree(META_TREE))
        .transpose()?;
    let counter = |tree: &sled::Tree, key: &[u8]| -> Result<u64, StoreError> {
        Ok(tree.get(key)?.and_then(|v| super::id_from(&v)).unwrap_or(0))
    };
    let applied = match &meta {
        Some(meta) => counter(meta, APPLIED)?.max(counter(db, APPLIED)?),
        None => counter(db, APPLIED)?,
    };
    let segments = read_segments(dir, shown)?;
    let records = replayable(&segments, applied, shown)?;
    if !records.is_empty() {
        tracing::info!(
            records = records.len(),
            "replaying the old journal into sled"
        );
    }
    for (lsn, payload) in records {
        apply(db, payload).map_err(|()| StoreError::Damaged {
            dir: shown.to_string(),
            detail: format!("journal record {lsn} is malformed"),
        })?;
    }
    // The job counter, wherever the replay or an older layout left it, into the main tree.
    let mut next = counter(db, NEXT_ID)?;
    if let Some(meta) = &meta {
        next = next.max(counter(meta, NEXT_ID)?);
    }
    if next > 0 {
        db.insert(NEXT_ID, &next.to_be_bytes())?;
    }
    sync()?;
    for path in segments.iter().map(|(path, _)| path) {
        std::fs::remove_file(path).map_err(StoreError::Sync)?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::Sync)?;
    // Only now: the journal's replay needed `APPLIED` until the journal was gone.
    db.remove(APPLIED)?;
    if meta.is_some() {
        db.drop_tree(META_TREE)?;
    }
    sync()?;
    tracing::info!("data directory moved to the single-store layout (journal removed)");
    Ok(())
}

/// The journal segments that exist, with their bytes.
fn read_segments(dir: &Path, shown: &str) -> Result<Vec<(PathBuf, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for name in SEGMENTS {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => out.push((path, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Open {
                    dir: shown.to_string(),
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// The records to replay: the consecutive run that ends at the newest record, from
/// `applied` on. sled holds every record before `applied`; a run that starts right after it
/// is what the old versions left when reopening overwrote the segment holding `applied`
/// (which sled had made durable first). A run starting later means records are lost.
fn replayable<'a>(
    segments: &'a [(PathBuf, Vec<u8>)],
    applied: u64,
    shown: &str,
) -> Result<Vec<(u64, &'a [u8])>, StoreError> {
    let mut records: Vec<(u64, &[u8])> = segments
        .iter()
        .flat_map(|(_, buf)| scan(buf).into_iter().map(move |(lsn, r)| (lsn, &buf[r])))
        .collect();
    records.sort_by_key(|r| r.0);
    records.dedup_by_key(|r| r.0);
    let Some(&(last, _)) = records.last() else {
        return Ok(Vec::new());
    };
    let mut first = last;
    for pair in records.windows(2).rev() {
        if pair[0].0 + 1 != pair[1].0 {
            break;
        }
        first = pair[0].0;
    }
    if last < applied {
        return Ok(Vec::new());
    }
    if first > applied + 1 {
        return Err(StoreError::Damaged {
            dir: shown.to_string(),
            detail: format!(
                "its old journal lacks records {}..{} (sled holds up to record {applied})",
                applied + 1,
                first - 1
            ),
        });
    }
    let from = first.max(applied);
    Ok(records.into_iter().filter(|r| r.0 >= from).collect())
}

/// The valid records of one segment, from its start: (lsn, payload range). A torn or stale
/// record ends the segment.
fn scan(buf: &[u8]) -> Vec<(u64, Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut previous: Option<u64> = None;
    while let Some(header) = buf.get(at..at + HEADER) {
        let word = |r: Range<usize>| header[r].try_into().unwrap_or_default();
        let len = u32::from_le_bytes(word(0..4)) as usize;
        let crc = u32::from_le_bytes(word(4..8));
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

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Applies one record's writes to the main tree as one batch.
fn apply(db: &sled::Db, mut rest: &[u8]) -> Result<(), ()> {
    let mut batch = sled::Batch::default();
    while let Some((&op, tail)) = rest.split_first() {
        let (key, tail) = field(tail, 2)?;
        rest = match op {
            b'I' => {
                let (value, tail) = field(tail, 4)?;
                batch.insert(key, value);
                tail
            }
            b'R' => {
                batch.remove(key);
                tail
            }
            _ => return Err(()),
        };
    }
    db.apply_batch(batch).map_err(|_| ())
}

/// Splits a length-prefixed field (`width` bytes of little-endian length) off `bytes`.
fn field(bytes: &[u8], width: usize) -> Result<(&[u8], &[u8]), ()> {
    let (len, rest) = bytes.split_at_checked(width).ok_or(())?;
    let mut le = [0u8; 4];
    le[..width].copy_from_slice(len);
    rest.split_at_checked(u32::from_le_bytes(le) as usize)
        .ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn insert(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![b'I'];
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    fn segment(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = records.concat();
        out.resize(4096, 0);
        out
    }

    fn no_sync() -> impl FnMut() -> Result<(), StoreError> {
        || Ok(())
    }

    #[test]
    fn records_after_what_sled_holds_are_replayed_and_the_journal_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let meta = db.open_tree(META_TREE).unwrap();
        meta.insert(APPLIED, &2u64.to_be_bytes()).unwrap();
        meta.insert(NEXT_ID, &3u64.to_be_bytes()).unwrap();
        let seg0 = segment(&[
            record(1, &insert(b"a", b"1")),
            record(2, &insert(b"b", b"2")),
            record(
                3,
                &[insert(b"c", b"3"), insert(NEXT_ID, &9u64.to_be_bytes())].concat(),
            ),
        ]);
        std::fs::write(dir.path().join("journal.0"), seg0).unwrap();
        std::fs::write(dir.path().join("journal.1"), vec![0u8; 4096]).unwrap();
        assert!(present(&db, dir.path()));

        migrate(&db, dir.path(), "dir", &mut no_sync()).unwrap();
        assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(db.get(b"a").unwrap(), None, "record 1 was sled's already");
        assert_eq!(
            super::super::id_from(&db.get(NEXT_ID).unwrap().unwrap()),
            Some(9)
        );
        assert!(!dir.path().join("journal.0").exists());
        assert!(!present(&db, dir.path()));
    }

    #[test]
    fn a_journal_overwritten_by_a_restart_after_sleds_record_still_replays() {
        // Record 5 was durable in sled; a restart overwrote it in the journal with record 6.
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree(META_TREE)
            .unwrap()
            .insert(APPLIED, &5u64.to_be_bytes())
            .unwrap();
        let seg0 = segment(&[record(6, &insert(b"newest", b"job"))]);
        std::fs::write(dir.path().join("journal.0"), seg0).unwrap();
        migrate(&db, dir.path(), "dir", &mut no_sync()).unwrap();
        assert_eq!(db.get(b"newest").unwrap().as_deref(), Some(&b"job"[..]));
    }

    #[test]
    fn a_journal_missing_records_sled_never_had_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree(META_TREE)
            .unwrap()
            .insert(APPLIED, &2u64.to_be_bytes())
            .unwrap();
        let seg0 = segment(&[record(5, &insert(b"k", b"v"))]);
        std::fs::write(dir.path().join("journal.0"), seg0).unwrap();
        let error = migrate(&db, dir.path(), "dir", &mut no_sync()).unwrap_err();
        assert!(error.to_string().contains("lacks records 3..4"), "{error}");
        assert!(
            dir.path().join("journal.0").exists(),
            "nothing is thrown away"
        );
    }
}
