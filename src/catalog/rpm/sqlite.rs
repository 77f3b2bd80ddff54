//! rpm's sqlite backend (`rpmdb.sqlite`, rpm ≥ 4.16: Fedora 33+, RHEL 9,
//! Amazon Linux 2023, CBL-Mariner/Azure Linux): table `Packages(hnum
//! INTEGER PRIMARY KEY, blob BLOB)`, one header blob per row.
//!
//! The database is opened from the bytes already in memory
//! (`sqlite3_deserialize`), never from a file: a scan writes nothing of the
//! image to disk. rpm keeps the database in WAL mode, so committed
//! transactions may still sit in `rpmdb.sqlite-wal` rather than in the main
//! file (rpm checkpoints when it closes the database, so the WAL is usually
//! empty, but a build step that was killed leaves it full); those frames
//! are applied to our copy first, as sqlite would on open. The `-shm` file
//! is only an index into the WAL and is not needed.

use std::io::Read;

use rusqlite::{Connection, OpenFlags};

use super::RpmError;

/// Offsets 18 and 19 of the sqlite header: file format write and read
/// versions, 2 for WAL mode. An in-memory database cannot use a WAL, and
/// sqlite refuses to read a deserialized image that asks for one, so our
/// copy says "rollback journal" (1) instead; the pages are the same.
const FORMAT_VERSION_OFFSETS: [usize; 2] = [18, 19];

/// Header blobs of all rows, in `hnum` order. `wal` is the content of
/// `rpmdb.sqlite-wal` when the image has a non-empty one.
pub fn blobs(db: &[u8], wal: Option<&[u8]>) -> Result<(Vec<Vec<u8>>, Vec<RpmError>), RpmError> {
    let mut warnings = Vec::new();
    // Our own copy only when WAL frames change pages; otherwise sqlite's
    // copy (deserialize needs memory it owns) is the only one.
    let mut patched = None;
    if let Some(wal) = wal.filter(|w| !w.is_empty()) {
        let mut image = db.to_vec();
        match apply_wal(&mut image, wal) {
            Ok(n) if n > 0 => patched = Some(image),
            Ok(_) => {}
            // A damaged WAL is ignored the way sqlite ignores it: what the
            // main file holds is still the last checkpointed state.
            Err(e) => warnings.push(e),
        }
    }
    let image = patched.as_deref().unwrap_or(db);
    if image.len() < 100 || !image.starts_with(b"SQLite format 3\0") {
        return Err(RpmError::Sqlite("not an sqlite 3 database".into()));
    }
    let [w, r] = FORMAT_VERSION_OFFSETS;
    let rollback = |b: u8| if b == 2 { 1 } else { b };
    let versions = [rollback(image[w]), rollback(image[r])];
    let reader = image[..w].chain(&versions[..]).chain(&image[r + 1..]);
    let sql = |e: rusqlite::Error| RpmError::Sqlite(e.to_string());
    let mut conn = Connection::open_in_memory_with_flags(
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    conn.deserialize_read_exact(rusqlite::MAIN_DB, reader, image.len(), true)
        .map_err(sql)?;
    drop(patched);
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut out = Vec::new();
    loop {
        match rows.next() {
            Ok(Some(row)) => match row.get::<_, Vec<u8>>(1) {
                Ok(b) => out.push(b),
                Err(e) => {
                    let hnum: i64 = row.get(0).unwrap_or(-1);
                    warnings.push(RpmError::Sqlite(format!("row {hnum}: {e}")));
                }
            },
            Ok(None) => break,
            // A corrupt page ends the scan; the rows read so far stand.
            Err(e) => {
                warnings.push(RpmError::Sqlite(e.to_string()));
                break;
            }
        }
    }
    Ok((out, warnings))
}

const WAL_MAGIC_LE: u32 = 0x377f_0682;
const WAL_MAGIC_BE: u32 = 0x377f_0683;
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// sqlite's WAL checksum (fileformat2 §4.3), continued from `s`.
fn wal_checksum(big_endian: bool, data: &[u8], mut s: (u32, u32)) -> (u32, u32) {
    for c in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(c, 0), be32(c, 4))
        } else {
            (
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        };
        s.0 = s.0.wrapping_add(x0).wrapping_add(s.1);
        s.1 = s.1.wrapping_add(x1).wrapping_add(s.0);
    }
    s
}

/// Copies the committed frames of a WAL into the database image, as a
/// checkpoint would; returns how many frames were applied. Frames after
/// the last commit, or from an older WAL generation (salts differ), or
/// whose checksum chain breaks, are not committed and are ignored, exactly
/// as sqlite's recovery does.
pub fn apply_wal(db: &mut Vec<u8>, wal: &[u8]) -> Result<usize, RpmError> {
    let bad = |m: &str| RpmError::Sqlite(format!("rpmdb.sqlite-wal: {m}"));
    if wal.len() < WAL_HEADER {
        return Err(bad("shorter than its header"));
    }
    let magic = be32(wal, 0);
    let big_endian = match magic {
        WAL_MAGIC_LE => false,
        WAL_MAGIC_BE => true,
        _ => return Err(bad("bad magic")),
    };
    let page_size = be32(wal, 8) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(bad(&format!("invalid page size {page_size}")));
    }
    let salt = (be32(wal, 16), be32(wal, 20));
    let mut ck = wal_checksum(big_endian, &wal[..24], (0, 0));
    if ck != (be32(wal, 24), be32(wal, 28)) {
        return Err(bad("header checksum mismatch"));
    }
    // (page number, frame offset) of committed frames, and the database
    // size in pages at the last commit.
    let mut pending = Vec::new();
    let mut committed = Vec::new();
    let mut db_pages = None;
    let mut at = WAL_HEADER;
    while let Some(frame) = wal.get(at..at + FRAME_HEADER + page_size) {
        let pgno = be32(frame, 0);
        let commit = be32(frame, 4);
        if (be32(frame, 8), be32(frame, 12)) != salt || pgno == 0 {
            break;
        }
        ck = wal_checksum(big_endian, &frame[..8], ck);
        ck = wal_checksum(big_endian, &frame[FRAME_HEADER..], ck);
        if ck != (be32(frame, 16), be32(frame, 20)) {
            break;
        }
        pending.push((pgno as usize, at + FRAME_HEADER));
        if commit != 0 {
            committed.append(&mut pending);
            db_pages = Some(commit as usize);
        }
        at += FRAME_HEADER + page_size;
    }
    let Some(db_pages) = db_pages else {
        return Ok(0);
    };
    // The database can only grow by what the WAL holds.
    let new_len = db_pages
        .checked_mul(page_size)
        .filter(|&l| l <= db.len() + wal.len())
        .ok_or_else(|| bad("commit frame claims an implausible database size"))?;
    db.resize(new_len, 0);
    let mut applied = 0;
    for (pgno, off) in committed {
        let start = (pgno - 1) * page_size;
        if let Some(dst) = db.get_mut(start..start + page_size) {
            dst.copy_from_slice(&wal[off..off + page_size]);
            applied += 1;
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARINER: &[u8] = include_bytes!("fixtures/cbl-mariner-2.0-rpmdb.sqlite");

    #[test]
    fn reads_every_row_of_a_real_database() {
        let (blobs, warnings) = blobs(MARINER, None).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(blobs.len(), 129);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(blobs(b"", None).is_err());
        assert!(blobs(&[0u8; 4096], None).is_err());
        // A truncated database: sqlite reports it, we do not panic. Rows
        // before the damage may or may not come back.
        for cut in [100, 4096, 65536, MARINER.len() / 2] {
            if let Ok((_, w)) = blobs(&MARINER[..cut], None) {
                assert!(!w.is_empty() || cut >= 65536, "cut {cut}");
            }
        }
        // Flipped bytes in the middle of the file.
        let mut d = MARINER.to_vec();
        for i in (8192..d.len()).step_by(997) {
            d[i] ^= 0x5a;
        }
        let _ = blobs(&d, None);
    }

    /// A WAL written by sqlite itself: rows committed to the WAL but not
    /// checkpointed must be seen, uncommitted garbage after them not.
    #[test]
    fn committed_wal_frames_are_applied() {
        let dir = std::env::temp_dir().join(format!("scangate-rpm-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rpmdb.sqlite");
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
        let db_before = std::fs::read(&path).unwrap();
        for i in 0..3u8 {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [vec![i; 3000]])
                .unwrap();
        }
        let db = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.join("rpmdb.sqlite-wal")).unwrap();
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(db, db_before, "the inserts must still be in the WAL");

        let (rows, w) = blobs(&db, None).unwrap();
        assert!(rows.is_empty() && w.is_empty());
        let (rows, w) = blobs(&db, Some(&wal)).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(rows, [vec![0u8; 3000], vec![1; 3000], vec![2; 3000]]);

        // A torn last frame: only whole committed transactions count.
        let page = be32(&wal, 8) as usize;
        let (rows, _) = blobs(&db, Some(&wal[..wal.len() - page / 2])).unwrap();
        assert_eq!(rows, [vec![0u8; 3000], vec![1; 3000]]);

        // Damaged WAL header: ignored with a warning.
        let mut bad = wal.clone();
        bad[25] ^= 1;
        let (rows, w) = blobs(&db, Some(&bad)).unwrap();
        assert!(rows.is_empty());
        assert!(w[0].to_string().contains("checksum"), "{w:?}");
        let (_, w) = blobs(&db, Some(&wal[..10])).unwrap();
        assert_eq!(w.len(), 1);
    }
}
