//! rpm's sqlite backend (`rpmdb.sqlite`, rpm ≥ 4.16: Fedora 33+, RHEL 9,
//! Amazon Linux 2023, CBL-Mariner/Azure Linux): table `Packages(hnum
//! INTEGER PRIMARY KEY, blob BLOB)`, one header blob per row.
//!
//! The database is read as data, never run: this is a reader of sqlite's
//! file format (<https://www.sqlite.org/fileformat2.html>), as [`super::bdb`]
//! and [`super::ndb`] are of theirs, not an SQL engine. Handing an image's
//! database to sqlite means executing it: `Packages` can be a view whose
//! recursive CTE runs forever and spills gigabytes to `/var/tmp`, `blob` a
//! generated column computing gigabytes per row, a schema entry sqlite
//! cannot parse hides every package, and "query-oriented programming"
//! (Check Point, DEF CON 27) turned such views into memory corruption.
//! sqlite can be hardened (read-only, defensive, limits, a progress budget),
//! but every knob is one more thing to get right on every upgrade; walking
//! one table b-tree needs none of them. So: the schema table (page 1) is
//! read to find `Packages`, which must be an ordinary rowid table with
//! rpm's columns, and its b-tree is walked in rowid (= `hnum`) order. Every
//! page is visited at most once (a loop or a page shared by two parents is
//! damage), so the work and the bytes copied are bounded by the file.
//!
//! rpm keeps the database in WAL mode, so committed transactions may still
//! sit in `rpmdb.sqlite-wal` rather than in the main file (rpm checkpoints
//! when it closes the database, so the WAL is usually empty, but a build
//! step that was killed leaves it full); those frames are applied to our
//! copy first, as sqlite would on open. The `-shm` file is only an index
//! into the WAL and is not needed.

use std::borrow::Cow;
use std::ops::Range;

use super::{MAX_PACKAGES, RpmError};

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const DB_HEADER: usize = 100;
/// sqlite's own limit on b-tree depth (`BTCURSOR_MAX_DEPTH`).
const MAX_DEPTH: usize = 20;
/// The schema record of one table; rpm's are a few hundred bytes.
const MAX_SCHEMA_RECORD: u64 = 1 << 20;
/// More columns than any table of ours; a record header claiming more is
/// damage.
const MAX_COLUMNS: usize = 64;

const LEAF_TABLE: u8 = 13;
const INTERIOR_TABLE: u8 = 5;

/// Header blobs of all rows, in `hnum` order. `wal` is the content of
/// `rpmdb.sqlite-wal` when the image has a non-empty one.
pub fn blobs(db: &[u8], wal: Option<&[u8]>) -> Result<(Vec<Vec<u8>>, Vec<RpmError>), RpmError> {
    let mut warnings = Vec::new();
    let mut image = Cow::Borrowed(db);
    if let Some(wal) = wal.filter(|w| !w.is_empty()) {
        let mut patched = db.to_vec();
        match apply_wal(&mut patched, wal) {
            Ok(n) if n > 0 => image = Cow::Owned(patched),
            Ok(_) => {}
            // A damaged WAL is ignored the way sqlite ignores it: what the
            // main file holds is still the last checkpointed state.
            Err(e) => warnings.push(e),
        }
    }
    let mut file = File::open(&image).map_err(RpmError::Sqlite)?;
    let root = packages_table(&mut file)?;
    let mut out = Vec::new();
    let mut rows = |hnum: i64, record: Vec<u8>| -> Result<bool, RpmError> {
        crate::cancel::checkpoint()?;
        if out.len() == MAX_PACKAGES {
            warnings.push(RpmError::TooMany);
            return Ok(false);
        }
        match blob_range(&record) {
            // The blob ends the record: cut it out without a copy.
            Ok(range) => {
                let mut blob = record;
                blob.truncate(range.end);
                blob.drain(..range.start);
                out.push(blob);
            }
            Err(e) => warnings.push(RpmError::Sqlite(format!("row {hnum}: {e}"))),
        }
        Ok(true)
    };
    // A damaged page ends the walk; the rows read so far stand.
    if let Err(e) = file.walk(root, 0, u64::MAX, &mut rows) {
        match e {
            Walk::Stop(e) => return Err(e),
            Walk::Damage(m) => warnings.push(RpmError::Sqlite(m)),
        }
    }
    Ok((out, warnings))
}

/// The root page of `Packages`, after checking in the schema table that it
/// is what rpm creates: an ordinary rowid table whose columns are `hnum`
/// (an alias of the rowid, so b-tree order is `hnum` order) and `blob`.
/// Anything else (a view, a virtual table, a generated column, other
/// columns) is refused rather than interpreted. Other schema entries
/// (rpm's index tables, triggers, whatever an image adds) are not parsed.
fn packages_table(file: &mut File) -> Result<u32, RpmError> {
    let enc = file.utf16;
    let mut found = Vec::new();
    let mut row = |_: i64, r: Vec<u8>| -> Result<bool, RpmError> {
        // Columns: type, name, tbl_name, rootpage, sql.
        if let Ok(f) = record(&r)
            && let [Field::Text(ty), Field::Text(name), _, root, sql, ..] = f.as_slice()
            && text(enc, name).eq_ignore_ascii_case("packages")
        {
            let ty = text(enc, ty);
            // Tables and views share one namespace; triggers and indexes
            // named so are not what a query of `Packages` reads.
            if ty == "table" || ty == "view" {
                let root = if let Field::Int(n) = root { *n } else { 0 };
                let sql = if let Field::Text(s) = sql {
                    text(enc, s)
                } else {
                    String::new()
                };
                found.push((ty, root, sql));
            }
        }
        Ok(true)
    };
    match file.walk(1, 0, MAX_SCHEMA_RECORD, &mut row) {
        Ok(_) => {}
        Err(Walk::Stop(e)) => return Err(e),
        Err(Walk::Damage(m)) => return Err(RpmError::Sqlite(format!("schema: {m}"))),
    }
    let bad = |m: String| RpmError::Sqlite(m);
    let [(ty, root, sql)] = found.as_slice() else {
        return Err(bad(if found.is_empty() {
            "no table Packages".into()
        } else {
            "more than one table or view named Packages".into()
        }));
    };
    if ty != "table" {
        return Err(bad(format!(
            "Packages is a {ty}, not a table: refused (the database is read as data, never run)"
        )));
    }
    check_columns(sql).map_err(bad)?;
    u32::try_from(*root)
        .ok()
        .filter(|&r| r >= 2)
        .ok_or_else(|| bad(format!("Packages has root page {root}")))
}

/// Checks `CREATE TABLE Packages (...)` declares exactly rpm's columns:
/// `hnum INTEGER PRIMARY KEY` (the rowid itself) and a stored `blob`.
fn check_columns(sql: &str) -> Result<(), String> {
    let t = tokens(sql);
    let is = |tok: &(String, bool), kw: &str| !tok.1 && tok.0.eq_ignore_ascii_case(kw);
    let open = t
        .iter()
        .position(|x| is(x, "("))
        .ok_or("Packages has no column list")?;
    if t[..open].iter().any(|x| is(x, "VIRTUAL")) {
        return Err("Packages is a virtual table: refused (its module would run)".into());
    }
    // Column definitions: split at the commas of the outer parentheses.
    let (mut defs, mut cur, mut depth, mut close) = (Vec::new(), Vec::new(), 0usize, None);
    for (i, x) in t.iter().enumerate().skip(open + 1) {
        if is(x, "(") {
            depth += 1;
        } else if is(x, ")") && depth == 0 {
            close = Some(i);
            break;
        } else if is(x, ")") {
            depth -= 1;
        } else if is(x, ",") && depth == 0 {
            defs.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(x);
    }
    let close = close.ok_or("Packages has an unterminated column list")?;
    defs.push(cur);
    if t[close + 1..].iter().any(|x| is(x, "WITHOUT")) {
        return Err("Packages is a WITHOUT ROWID table".into());
    }
    let table_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"];
    let columns: Vec<&Vec<&(String, bool)>> = defs
        .iter()
        .filter(|d| {
            d.first()
                .is_some_and(|f| !table_constraint.iter().any(|k| is(f, k)))
        })
        .collect();
    let names: Vec<&str> = columns.iter().map(|d| d[0].0.as_str()).collect();
    let expected = ["hnum", "blob"];
    if names.len() != 2
        || !names
            .iter()
            .zip(expected)
            .all(|(n, e)| n.eq_ignore_ascii_case(e))
    {
        let names: Vec<String> = names
            .iter()
            .map(|n| super::super::excerpt(&n.escape_debug().to_string()))
            .collect();
        return Err(format!(
            "Packages has columns ({}), not (hnum, blob)",
            names.join(", ")
        ));
    }
    for (def, name) in columns.iter().zip(expected) {
        if def.iter().any(|x| is(x, "GENERATED") || is(x, "AS")) {
            return Err(format!(
                "Packages.{name} is a generated column: refused (it would be computed)"
            ));
        }
    }
    // Only `INTEGER PRIMARY KEY` (not DESC) makes hnum the rowid.
    let hnum = &columns[0];
    let rowid = hnum.len() >= 4
        && is(hnum[1], "INTEGER")
        && is(hnum[2], "PRIMARY")
        && is(hnum[3], "KEY")
        && !hnum.iter().any(|x| is(x, "DESC"));
    if !rowid {
        return Err("Packages.hnum is not an INTEGER PRIMARY KEY".into());
    }
    Ok(())
}

/// SQL tokens as (text, quoted): quoted identifiers and strings unquoted,
/// comments and whitespace dropped, other punctuation one char each.
fn tokens(sql: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek() == Some(&'-') => {
                chars.by_ref().find(|&c| c == '\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '\'' | '"' | '`' | '[' => {
                let end = if c == '[' { ']' } else { c };
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    if c == end {
                        // A doubled quote is one quote character.
                        if end != ']' && chars.peek() == Some(&end) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    s.push(c);
                }
                out.push((s, true));
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut s = c.to_string();
                while let Some(&c) = chars.peek() {
                    if !(c.is_alphanumeric() || c == '_' || c == '$') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push((s, false));
            }
            c => out.push((c.to_string(), false)),
        }
    }
    out
}

/// Why a walk ended early: damage (reported, rows so far kept) or an error
/// of the caller (cancellation).
enum Walk {
    Damage(String),
    Stop(RpmError),
}

impl From<String> for Walk {
    fn from(m: String) -> Self {
        Walk::Damage(m)
    }
}

/// The database file and which of its pages have been read.
struct File<'a> {
    data: &'a [u8],
    page_size: usize,
    /// Page size minus the bytes reserved at the end of each page.
    usable: usize,
    pages: u32,
    utf16: Option<bool>,
    visited: Vec<bool>,
}

impl<'a> File<'a> {
    fn open(data: &'a [u8]) -> Result<Self, String> {
        if data.len() < DB_HEADER || !data.starts_with(MAGIC) {
            return Err("not an sqlite 3 database".into());
        }
        let page_size = match u16::from_be_bytes([data[16], data[17]]) {
            1 => 65536,
            n => n as usize,
        };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!("invalid page size {page_size}"));
        }
        // Read version: sqlite itself refuses to read above 2 (WAL).
        if !matches!(data[19], 1 | 2) {
            return Err(format!("unsupported file format version {}", data[19]));
        }
        let usable = page_size - data[20] as usize;
        if usable < 480 {
            return Err(format!("{} reserved bytes per page", data[20]));
        }
        let utf16 = match be32(data, 56) {
            1 => None,
            2 => Some(false),
            3 => Some(true),
            e => return Err(format!("unknown text encoding {e}")),
        };
        let in_file = (data.len() / page_size).min(u32::MAX as usize) as u32;
        // The header's page count is valid only when written by the same
        // change as the version-valid-for number, like sqlite checks.
        let declared = be32(data, 28);
        let pages = if declared != 0 && be32(data, 24) == be32(data, 92) {
            declared.min(in_file)
        } else {
            in_file
        };
        Ok(Self {
            data,
            page_size,
            usable,
            pages,
            utf16,
            visited: vec![false; pages as usize + 1],
        })
    }

    /// Page `n` (1-based), which must not have been read before: in a sound
    /// file each page has one parent, so a second visit is a loop.
    fn page(&mut self, n: u32) -> Result<&'a [u8], String> {
        if n == 0 || n > self.pages {
            return Err(format!(
                "page {n} is outside the {}-page database",
                self.pages
            ));
        }
        if std::mem::replace(&mut self.visited[n as usize], true) {
            return Err(format!("page {n} is referenced twice"));
        }
        let start = (n as usize - 1) * self.page_size;
        Ok(&self.data[start..start + self.usable])
    }

    /// Calls `row(rowid, record)` for every row of the table b-tree rooted
    /// at `pgno`, in rowid order, until it returns `false`. Records longer
    /// than `max_record` are damage.
    fn walk(
        &mut self,
        pgno: u32,
        depth: usize,
        max_record: u64,
        row: &mut dyn FnMut(i64, Vec<u8>) -> Result<bool, RpmError>,
    ) -> Result<bool, Walk> {
        crate::cancel::checkpoint().map_err(|e| Walk::Stop(e.into()))?;
        if depth > MAX_DEPTH {
            return Err(format!("b-tree deeper than {MAX_DEPTH} at page {pgno}").into());
        }
        let page = self.page(pgno)?;
        let hdr = if pgno == 1 { DB_HEADER } else { 0 };
        let kind = page[hdr];
        let cells = u16::from_be_bytes([page[hdr + 3], page[hdr + 4]]) as usize;
        let ptrs = hdr + if kind == INTERIOR_TABLE { 12 } else { 8 };
        if !matches!(kind, LEAF_TABLE | INTERIOR_TABLE) || ptrs + 2 * cells > page.len() {
            return Err(format!("page {pgno} is not a table b-tree page").into());
        }
        for i in 0..cells {
            let at = u16::from_be_bytes([page[ptrs + 2 * i], page[ptrs + 2 * i + 1]]) as usize;
            let cell = page
                .get(at..)
                .filter(|_| at >= ptrs + 2 * cells)
                .ok_or_else(|| format!("page {pgno}: cell {i} out of bounds"))?;
            let more = if kind == INTERIOR_TABLE {
                let child = be32(cell, 0);
                self.walk(child, depth + 1, max_record, row)?
            } else {
                let (rowid, record) = self.leaf_cell(cell, max_record).map_err(|e| match e {
                    Walk::Damage(m) => Walk::Damage(format!("page {pgno}: cell {i}: {m}")),
                    stop => stop,
                })?;
                row(rowid, record).map_err(Walk::Stop)?
            };
            if !more {
                return Ok(false);
            }
        }
        if kind == INTERIOR_TABLE {
            let right = be32(page, hdr + 8);
            return self.walk(right, depth + 1, max_record, row);
        }
        Ok(true)
    }

    /// The rowid and whole record of a table leaf cell, gathered from its
    /// overflow pages (fileformat2 §1.6).
    fn leaf_cell(&mut self, cell: &[u8], max_record: u64) -> Result<(i64, Vec<u8>), Walk> {
        let damage = |m: &str| Walk::Damage(m.into());
        let (total, n1) = varint(cell).ok_or_else(|| damage("truncated payload size"))?;
        let (rowid, n2) = varint(&cell[n1..]).ok_or_else(|| damage("truncated rowid"))?;
        let body = &cell[n1 + n2..];
        // Checked before any allocation: the record must fit the pages
        // there are, and the caller's cap.
        let room = self.pages as u64 * self.usable as u64;
        if total > max_record || total > room {
            return Err(format!("record of {total} bytes").into());
        }
        let total = total as usize;
        let u = self.usable;
        let x = u - 35;
        let local = if total <= x {
            total
        } else {
            let m = (u - 12) * 32 / 255 - 23;
            let k = m + (total - m) % (u - 4);
            if k <= x { k } else { m }
        };
        let head = body
            .get(..local)
            .ok_or_else(|| damage("payload overruns its page"))?;
        let mut record = Vec::with_capacity(local);
        record.extend_from_slice(head);
        if local < total {
            let ptr = body.get(local..local + 4);
            let mut next = be32(ptr.ok_or_else(|| damage("no overflow pointer"))?, 0);
            while record.len() < total {
                crate::cancel::checkpoint().map_err(|e| Walk::Stop(e.into()))?;
                let page = self.page(next).map_err(|e| format!("overflow: {e}"))?;
                let take = (total - record.len()).min(u - 4);
                record.extend_from_slice(&page[4..4 + take]);
                next = be32(page, 0);
            }
        }
        Ok((rowid as i64, record))
    }
}

/// A TEXT value in the database's encoding.
fn text(utf16: Option<bool>, b: &[u8]) -> String {
    match utf16 {
        None => String::from_utf8_lossy(b).into_owned(),
        Some(be) => {
            let units = b.chunks_exact(2).map(|c| {
                if be {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// sqlite's varint: up to 9 bytes, big-endian, 7 bits per byte but all 8
/// in the ninth. Returns the value and its length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            return Some(((v << 8) | byte as u64, 9));
        }
        v = (v << 7) | (byte & 0x7f) as u64;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// One value of a record.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field<'a> {
    Null,
    Int(i64),
    Real,
    Blob(&'a [u8]),
    Text(&'a [u8]),
}

/// The fields of a record (fileformat2 §2.1), borrowed from it.
fn record(r: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let (hlen, mut at) = varint(r).ok_or("truncated record header")?;
    let hlen = usize::try_from(hlen)
        .ok()
        .filter(|&h| h <= r.len() && h >= at);
    let hlen = hlen.ok_or("record header overruns the record")?;
    let mut body = hlen;
    let mut out = Vec::new();
    while at < hlen {
        if out.len() == MAX_COLUMNS {
            return Err(format!("more than {MAX_COLUMNS} columns"));
        }
        let (ty, n) = varint(&r[at..hlen]).ok_or("truncated serial type")?;
        at += n;
        let len = match ty {
            0 | 8 | 9 => 0,
            1..=4 => ty as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("reserved serial type {ty}")),
            _ => ((ty - 12) / 2).min(usize::MAX as u64) as usize,
        };
        let v = body
            .checked_add(len)
            .and_then(|end| r.get(body..end))
            .ok_or("record field overruns the record")?;
        body += len;
        out.push(match ty {
            0 => Field::Null,
            8 => Field::Int(0),
            9 => Field::Int(1),
            1..=6 => {
                // Big-endian two's complement of 1-8 bytes.
                let sign = if v[0] & 0x80 != 0 { -1i64 } else { 0 };
                Field::Int(v.iter().fold(sign, |a, &b| (a << 8) | b as i64))
            }
            7 => Field::Real,
            t if t % 2 == 0 => Field::Blob(v),
            _ => Field::Text(v),
        });
    }
    Ok(out)
}

/// Where the BLOB of a `Packages` record (hnum, blob) lies in it.
fn blob_range(r: &[u8]) -> Result<Range<usize>, String> {
    match record(r)?.as_slice() {
        [Field::Null | Field::Int(_), Field::Blob(b)] => {
            let start = b.as_ptr() as usize - r.as_ptr() as usize;
            Ok(start..start + b.len())
        }
        [_, other] => Err(format!("blob is {}, not a BLOB", kind(other))),
        f => Err(format!("{} fields, not 2", f.len())),
    }
}

fn kind(f: &Field) -> &'static str {
    match f {
        Field::Null => "NULL",
        Field::Int(_) => "an integer",
        Field::Real => "a real",
        Field::Blob(_) => "a BLOB",
        Field::Text(_) => "TEXT",
    }
}

const WAL_MAGIC_LE: u32 = 0x377f_0682;
const WAL_MAGIC_BE: u32 = 0x377f_0683;
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

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
    // Frames are whole pages of the database: another size is another file.
    if db.len() >= DB_HEADER {
        let db_page = match u16::from_be_bytes([db[16], db[17]]) {
            1 => 65536,
            n => n as usize,
        };
        if db_page != page_size {
            return Err(bad(&format!(
                "page size {page_size}, the database's is {db_page}"
            )));
        }
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
    use rusqlite::Connection;

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

    /// A database made by sqlite from `sql`, with `blobs` inserted into
    /// `Packages` when given.
    fn made(sql: &str, blobs: &[&[u8]]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!(
            "scangate-rpm-hostile-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rpmdb.sqlite");
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        for b in blobs {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
                .unwrap();
        }
        drop(conn);
        let db = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        db
    }

    const RPM: &str =
        "CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL);";

    fn refused(db: &[u8]) -> String {
        match blobs(db, None) {
            Err(e) => e.to_string(),
            Ok(r) => panic!("read: {r:?}"),
        }
    }

    /// Executed, this view ran until its sort filled /var/tmp.
    #[test]
    fn a_view_is_refused_not_run() {
        let db = made(
            "CREATE VIEW Packages AS WITH RECURSIVE r(hnum, blob) AS \
               (SELECT 1, zeroblob(1000) UNION ALL SELECT hnum + 1, zeroblob(1000) FROM r) \
             SELECT hnum, blob FROM r;",
            &[],
        );
        assert!(refused(&db).contains("Packages is a view, not a table"));
    }

    #[test]
    fn generated_virtual_and_other_columns_are_refused() {
        for (sql, needle) in [
            (
                "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, \
                   blob BLOB GENERATED ALWAYS AS (zeroblob(200000000)) VIRTUAL); \
                 INSERT INTO Packages (hnum) VALUES (1), (2);",
                "Packages.blob is a generated column",
            ),
            (
                "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob AS (zeroblob(hnum)));",
                "generated column",
            ),
            (
                "CREATE TABLE Packages (id INTEGER PRIMARY KEY, data BLOB);",
                "Packages has columns (id, data), not (hnum, blob)",
            ),
            (
                "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, name TEXT, blob BLOB);",
                "Packages has columns (hnum, name, blob)",
            ),
            (
                "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY DESC, blob BLOB);",
                "not an INTEGER PRIMARY KEY",
            ),
            (
                "CREATE TABLE Packages (hnum INT PRIMARY KEY, blob BLOB) WITHOUT ROWID;",
                "WITHOUT ROWID",
            ),
            (
                "CREATE TABLE Other (hnum INTEGER PRIMARY KEY, blob BLOB);",
                "no table Packages",
            ),
        ] {
            let e = refused(&made(sql, &[]));
            assert!(e.contains(needle), "{sql}: {e}");
        }
        assert!(
            check_columns("CREATE VIRTUAL TABLE Packages USING fts5(hnum, blob)")
                .unwrap_err()
                .contains("virtual table")
        );
    }

    /// Nothing but `Packages` is read from the schema: a trigger whose SQL
    /// sqlite cannot parse (it refused the whole database) hides nothing.
    #[test]
    fn triggers_are_inert_and_unparsed() {
        let mut db = made(
            &format!(
                "{RPM} CREATE TRIGGER t AFTER DELETE ON Packages \
                 BEGIN INSERT INTO Packages (blob) SELECT blob FROM Packages; END;"
            ),
            &[b"one", b"two"],
        );
        let sql = b"BEGIN INSERT INTO Packages";
        let at = db.windows(sql.len()).position(|w| w == sql).unwrap();
        db[at..at + sql.len()].fill(b'!');
        let (rows, w) = blobs(&db, None).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(rows, [b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn rows_that_are_not_blobs_are_warned() {
        let db = made(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB); \
             INSERT INTO Packages (blob) VALUES (x'0102'), ('text'), (NULL), (7);",
            &[],
        );
        let (rows, w) = blobs(&db, None).unwrap();
        assert_eq!(rows, [vec![1u8, 2]]);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].to_string().contains("row 2: blob is TEXT"), "{w:?}");
    }

    /// Pages that point back at themselves or at a page already read:
    /// the walk stops with a warning, in time linear in the file.
    #[test]
    fn loops_and_shared_pages_end_the_walk() {
        let big = vec![7u8; 20_000];
        let many: Vec<&[u8]> = (0..200).map(|_| &big[..300]).collect();
        let db = made(RPM, &many);
        let (rows, w) = blobs(&db, None).unwrap();
        assert_eq!((rows.len(), w.len()), (200, 0));
        let ps = u16::from_be_bytes([db[16], db[17]]) as usize;
        // The root of Packages (page 2) is an interior page: point its
        // right-most child at itself.
        assert_eq!(db[ps], INTERIOR_TABLE);
        let mut d = db.clone();
        d[ps + 8..ps + 12].copy_from_slice(&2u32.to_be_bytes());
        let (rows, w) = blobs(&d, None).unwrap();
        assert!(rows.len() < 200);
        assert!(w[0].to_string().contains("referenced twice"), "{w:?}");
        // An overflow chain looping on itself.
        let db = made(RPM, &[&big]);
        let last = db.len() / ps;
        let mut d = db.clone();
        // The second-last page (an overflow page) names itself as next.
        let at = (last - 2) * ps;
        d[at..at + 4].copy_from_slice(&(last as u32 - 1).to_be_bytes());
        let (rows, w) = blobs(&d, None).unwrap();
        assert!(rows.is_empty());
        assert!(!w.is_empty());
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..300 {
            let mut d = MARINER[..65536].to_vec();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % d.len();
                d[i] ^= (x >> 8) as u8 | 1;
            }
            let _ = blobs(&d, None);
        }
    }
}
