//! rpm's Berkeley DB backend: `Packages`, a BDB hash database (RHEL/CentOS
//! 7 and 8, Amazon Linux 2, older Fedora and SUSE), keyed by the 4-byte
//! package number, each value a header blob.
//!
//! Hand-written on purpose: no maintained Rust crate reads Berkeley DB
//! files, and linking libdb (AGPL since 6.x, unmaintained 5.3) is not an
//! option. We only need to read values, so this walks the file page by
//! page the way go-rpmdb and syft do, rather than following the hash
//! buckets: every hash page's data items are package records, and a value
//! too large for a hash page (every real header) lives in a chain of
//! overflow pages.
//!
//! Layout (db_page.h): page 0 is the hash metadata page (magic 0x061561 at
//! offset 12, in the byte order of the machine that wrote it; page size at
//! 20; last page number at 32). Every page starts with a 26-byte header:
//! next page number at 16, entry count at 20, `hf_offset` at 22 (on
//! overflow pages: the number of data bytes on the page), page type at 25.
//! A hash page's entries are u16 offsets after the header, alternating key
//! and data items; an item's first byte is its kind (1 inline data, 3
//! off-page: u32 first overflow page at +4, u32 total length at +8).

use super::{MAX_PACKAGES, RpmError};

const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    le: bool,
}

impl Db<'_> {
    fn page(&self, n: u32) -> Option<&[u8]> {
        let start = (n as usize).checked_mul(self.page_size)?;
        self.data.get(start..start.checked_add(self.page_size)?)
    }

    fn u32(&self, b: &[u8], at: usize) -> u32 {
        let s = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        }
    }

    fn u16(&self, b: &[u8], at: usize) -> u16 {
        let s = [b[at], b[at + 1]];
        if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        }
    }

    /// Follows an overflow chain. `budget` is what may still be copied for
    /// the whole database, so that chains shared by many entries (only a
    /// corrupt file has those) cannot make the reader quadratic.
    fn overflow(&self, first: u32, total: u32, budget: &mut usize) -> Result<Vec<u8>, String> {
        let total = total as usize;
        if total > self.data.len() {
            return Err(format!(
                "off-page item of {total} bytes in a {} byte file",
                self.data.len()
            ));
        }
        if total > *budget {
            return Err("overflow chains add up to more than the file could hold".into());
        }
        *budget -= total;
        let mut out = Vec::with_capacity(total);
        let mut pgno = first;
        // A chain can visit each page at most once.
        let max_hops = self.data.len() / self.page_size;
        for _ in 0..=max_hops {
            if out.len() >= total {
                break;
            }
            let p = self
                .page(pgno)
                .ok_or_else(|| format!("overflow page {pgno} is past the end of the file"))?;
            if p[25] != P_OVERFLOW {
                return Err(format!("page {pgno} has type {}, not overflow", p[25]));
            }
            let len = self.u16(p, 22) as usize;
            let chunk = p
                .get(PAGE_HEADER..PAGE_HEADER + len)
                .ok_or_else(|| format!("overflow page {pgno} claims {len} bytes"))?;
            let take = chunk.len().min(total - out.len());
            out.extend_from_slice(&chunk[..take]);
            pgno = self.u32(p, 16);
            if pgno == 0 {
                break;
            }
        }
        if out.len() != total {
            return Err(format!(
                "overflow chain from page {first} holds {} of {total} bytes",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// Header blobs of all records, in file order.
pub fn blobs(data: &[u8]) -> Result<(Vec<Vec<u8>>, Vec<RpmError>), RpmError> {
    let bad = |m: String| RpmError::Bdb(m);
    if data.len() < 72 {
        return Err(bad("too short for a Berkeley DB file".into()));
    }
    let le = match (
        u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
        u32::from_be_bytes([data[12], data[13], data[14], data[15]]),
    ) {
        (HASH_MAGIC, _) => true,
        (_, HASH_MAGIC) => false,
        _ => return Err(bad("not a Berkeley DB hash database (bad magic)".into())),
    };
    let mut db = Db {
        data,
        page_size: 0,
        le,
    };
    let page_size = db.u32(data, 20) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(bad(format!("invalid page size {page_size}")));
    }
    db.page_size = page_size;
    if data[25] != P_HASHMETA {
        return Err(bad(format!(
            "page 0 has type {}, not hash metadata",
            data[25]
        )));
    }
    if data[24] != 0 {
        return Err(bad("encrypted database".into()));
    }
    let last = db.u32(data, 32);
    let pages_in_file = (data.len() / page_size) as u32;
    let mut warnings = Vec::new();
    if last >= pages_in_file {
        warnings.push(bad(format!(
            "last page {last} is past the end of the {pages_in_file}-page file; reading what is there"
        )));
    }
    let mut budget = data.len().saturating_mul(2);
    let mut out = Vec::new();
    'pages: for pgno in 1..=last.min(pages_in_file.saturating_sub(1)) {
        crate::cancel::checkpoint()?;
        let Some(p) = db.page(pgno) else { break };
        if p[25] != P_HASH && p[25] != P_HASH_UNSORTED {
            continue;
        }
        let entries = db.u16(p, 20) as usize;
        // Each entry is a u16 offset after the header; a count that does
        // not fit the page is damage.
        if PAGE_HEADER + entries * 2 > page_size {
            warnings.push(bad(format!("page {pgno}: {entries} entries do not fit")));
            continue;
        }
        let offset = |i: usize| db.u16(p, PAGE_HEADER + i * 2) as usize;
        // Items are laid out from the end of the page downwards: item i
        // ends where item i-1 starts.
        let end = |i: usize| if i == 0 { page_size } else { offset(i - 1) };
        for k in (0..entries.saturating_sub(1)).step_by(2) {
            if out.len() == MAX_PACKAGES {
                warnings.push(RpmError::TooMany);
                break 'pages;
            }
            let (ko, ke, d, de) = (offset(k), end(k), offset(k + 1), end(k + 1));
            let (Some(key), Some(item)) = (p.get(ko..ke), p.get(d..de)) else {
                warnings.push(bad(format!("page {pgno}: item {k} out of bounds")));
                continue;
            };
            // Record 0 is rpm's own bookkeeping (the next package number).
            if key.len() == 5 && key[0] == H_KEYDATA && key[1..] == [0, 0, 0, 0] {
                continue;
            }
            match item.first() {
                Some(&H_OFFPAGE) if item.len() >= 12 => {
                    let first = db.u32(item, 4);
                    let total = db.u32(item, 8);
                    match db.overflow(first, total, &mut budget) {
                        Ok(b) => out.push(b),
                        Err(e) => warnings.push(bad(format!("page {pgno}: {e}"))),
                    }
                }
                Some(&H_KEYDATA) => out.push(item[1..].to_vec()),
                other => warnings.push(bad(format!(
                    "page {pgno}: item {} has unsupported kind {other:?}",
                    k + 1
                ))),
            }
        }
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RHEL8: &[u8] = include_bytes!("fixtures/rhel8-libuuid-Packages");

    #[test]
    fn reads_a_real_database() {
        let (blobs, warnings) = blobs(RHEL8).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(blobs.len(), 1);
        let h = super::super::header::parse(&blobs[0]).unwrap();
        assert_eq!(
            (h.name.as_str(), h.evr().as_str()),
            ("libuuid", "2.32.1-42.el8_8")
        );
    }

    #[test]
    fn big_endian_databases_read_the_same() {
        // Byte-swap every multi-byte field we read: the meta fields, and
        // each page's header and index.
        let mut d = RHEL8.to_vec();
        let ps = 4096;
        for at in [12, 20, 32] {
            d[at..at + 4].reverse();
        }
        for p in 1..d.len() / ps {
            let b = p * ps;
            d[b + 16..b + 20].reverse();
            d[b + 20..b + 22].reverse();
            d[b + 22..b + 24].reverse();
            let ty = d[b + 25];
            if ty == P_HASH || ty == P_HASH_UNSORTED {
                let n = u16::from_be_bytes([d[b + 20], d[b + 21]]) as usize;
                for i in 0..n {
                    let at = b + PAGE_HEADER + 2 * i;
                    d[at..at + 2].reverse();
                }
                for i in 0..n {
                    let at = b + PAGE_HEADER + 2 * i;
                    let off = u16::from_be_bytes([d[at], d[at + 1]]) as usize;
                    if d[b + off] == H_OFFPAGE {
                        d[b + off + 4..b + off + 8].reverse();
                        d[b + off + 8..b + off + 12].reverse();
                    }
                }
            }
        }
        let (a, _) = blobs(RHEL8).unwrap();
        let (b, w) = blobs(&d).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(a, b);
    }

    #[test]
    fn damage_is_reported_not_fatal() {
        assert!(blobs(b"").is_err());
        assert!(blobs(&[0u8; 8192]).is_err());
        // Truncated anywhere: an error or warnings, never a panic.
        // The record's overflow chain ends on the last page, so no cut keeps it.
        for cut in (0..RHEL8.len()).step_by(509) {
            if let Ok((b, _)) = blobs(&RHEL8[..cut]) {
                assert!(b.is_empty(), "cut {cut}");
            }
        }
        // An overflow page that loops onto itself without adding bytes.
        let mut d = RHEL8.to_vec();
        let p3 = 3 * 4096;
        d[p3 + 16..p3 + 20].copy_from_slice(&3u32.to_le_bytes());
        d[p3 + 22..p3 + 24].copy_from_slice(&0u16.to_le_bytes());
        let (b, w) = blobs(&d).unwrap();
        assert!(b.is_empty());
        assert!(w[0].to_string().contains("overflow chain"), "{w:?}");
        // Huge entry counts and lengths.
        let mut d = RHEL8.to_vec();
        d[2 * 4096 + 20..2 * 4096 + 22].copy_from_slice(&u16::MAX.to_le_bytes());
        let (_, w) = blobs(&d).unwrap();
        assert!(!w.is_empty());
        let mut d = RHEL8.to_vec();
        d[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        let (b, w) = blobs(&d).unwrap();
        assert_eq!(b.len(), 1);
        assert!(w[0].to_string().contains("past the end"));
        // Every byte of the hash page flipped in turn.
        for i in 0..4096 {
            let mut d = RHEL8.to_vec();
            d[2 * 4096 + i] ^= 0xff;
            let _ = blobs(&d);
        }
    }
}
