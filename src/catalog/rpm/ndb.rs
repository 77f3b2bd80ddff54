//! rpm's NDB backend: `Packages.db` (SUSE since SLE 15 / openSUSE
//! Leap 15). Hand-written: rpm's own format (lib/backend/ndb/rpmpkg.c), no
//! crate reads it, and it is simple.
//!
//! All integers little-endian. A 32-byte file header (`RpmP` magic,
//! version 0, generation, number of 4096-byte slot pages, next package
//! index), then the slot table filling the slot pages: 16-byte slots
//! (`Slot` magic, package index (0 = free), block offset, block count;
//! blocks are 16 bytes). A slot's blob starts with a 16-byte head (`BlbS`
//! magic, package index, generation, length), then the header blob, zero padding, and a
//! 12-byte tail ending the last block (checksum, length, `BlbE` magic).

use super::{MAX_PACKAGES, RpmError};

const FILE_MAGIC: &[u8; 4] = b"RpmP";
const SLOT_MAGIC: &[u8; 4] = b"Slot";
const BLOB_MAGIC: &[u8; 4] = b"BlbS";
const BLOB_TAIL_MAGIC: &[u8; 4] = b"BlbE";
const HEADER_SIZE: usize = 32;
const SLOT_SIZE: usize = 16;
const SLOT_PAGE: usize = 4096;
const BLOCK: usize = 16;
const BLOB_HEAD: usize = 16;
const BLOB_TAIL: usize = 12;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Header blobs of all used slots, in slot order. Blobs are borrowed from
/// the file: slots pointing at the same bytes (a corrupt file) cost nothing.
pub fn blobs(data: &[u8]) -> Result<(Vec<&[u8]>, Vec<RpmError>), RpmError> {
    let bad = |m: String| RpmError::Ndb(m);
    if data.len() < HEADER_SIZE || &data[..4] != FILE_MAGIC {
        return Err(bad("not an rpm NDB Packages.db (bad magic)".into()));
    }
    let version = le32(data, 4);
    if version != 0 {
        return Err(bad(format!("unsupported version {version}")));
    }
    let slot_pages = le32(data, 12) as usize;
    let mut warnings = Vec::new();
    let table_end = slot_pages.saturating_mul(SLOT_PAGE);
    if slot_pages == 0 || table_end > data.len() {
        warnings.push(bad(format!(
            "{slot_pages} slot pages do not fit the {} byte file; reading the slots that do",
            data.len()
        )));
    }
    let table = &data[HEADER_SIZE..table_end.min(data.len()).max(HEADER_SIZE)];
    let mut out = Vec::new();
    for (i, slot) in table.chunks_exact(SLOT_SIZE).enumerate() {
        crate::cancel::checkpoint()?;
        if &slot[..4] != SLOT_MAGIC {
            // rpm stops at the first slot without magic as well.
            warnings.push(bad(format!("slot {i}: bad magic, slot table ends here")));
            break;
        }
        let pkgidx = le32(slot, 4);
        if pkgidx == 0 {
            continue;
        }
        if out.len() == MAX_PACKAGES {
            warnings.push(RpmError::TooMany);
            break;
        }
        let (blkoff, blkcnt) = (le32(slot, 8) as usize, le32(slot, 12) as usize);
        match blob(data, pkgidx, blkoff, blkcnt) {
            Ok(b) => out.push(b),
            Err(e) => warnings.push(bad(format!("package {pkgidx}: {e}"))),
        }
    }
    Ok((out, warnings))
}

fn blob(data: &[u8], pkgidx: u32, blkoff: usize, blkcnt: usize) -> Result<&[u8], String> {
    let start = blkoff.checked_mul(BLOCK).ok_or("block offset overflows")?;
    let len = blkcnt.checked_mul(BLOCK).ok_or("block count overflows")?;
    let area = start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| format!("blocks {blkoff}+{blkcnt} are past the end of the file"))?;
    if area.len() < BLOB_HEAD + BLOB_TAIL || &area[..4] != BLOB_MAGIC {
        return Err("no blob at the slot's offset".into());
    }
    if le32(area, 4) != pkgidx {
        return Err(format!("blob belongs to package {}", le32(area, 4)));
    }
    let blob_len = le32(area, 12) as usize;
    let body = area
        .get(BLOB_HEAD..BLOB_HEAD + blob_len)
        .ok_or_else(|| format!("blob of {blob_len} bytes overruns its {blkcnt} blocks"))?;
    if BLOB_HEAD + blob_len + BLOB_TAIL > area.len() {
        return Err(format!(
            "blob of {blob_len} bytes leaves no room for its tail"
        ));
    }
    // The tail closes the last block; zero padding precedes it.
    let tail = &area[area.len() - BLOB_TAIL..];
    if &tail[8..12] != BLOB_TAIL_MAGIC || le32(tail, 4) as usize != blob_len {
        return Err("blob tail does not match its head".into());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLE15: &[u8] = include_bytes!("fixtures/sle15-bci-Packages.db");

    #[test]
    fn reads_a_real_database() {
        let (blobs, warnings) = blobs(SLE15).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(blobs.len(), 35);
        let names: Vec<_> = blobs
            .iter()
            .map(|b| super::super::header::parse(b).unwrap().name)
            .collect();
        assert!(names.iter().any(|n| n == "sles-release"), "{names:?}");
    }

    #[test]
    fn damage_is_reported_not_fatal() {
        assert!(blobs(b"").is_err());
        assert!(blobs(b"RpmP\x01\0\0\0").is_err());
        let mut d = SLE15.to_vec();
        d[4] = 1;
        assert!(blobs(&d).is_err());

        // Truncation: slots whose blobs are cut off become warnings.
        let (b, w) = blobs(&SLE15[..SLE15.len() / 2]).unwrap();
        assert!(!b.is_empty() && b.len() < 35 && !w.is_empty());
        let (b, w) = blobs(&SLE15[..100]).unwrap();
        assert!(b.is_empty() && !w.is_empty());

        // Huge slot page count, huge offsets and lengths.
        let mut d = SLE15.to_vec();
        d[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let (b, w) = blobs(&d).unwrap();
        assert!(!w.is_empty() && b.len() <= 35);
        let mut d = SLE15.to_vec();
        d[32 + 8..32 + 16].copy_from_slice(&[0xff; 8]);
        let (b, w) = blobs(&d).unwrap();
        assert_eq!((b.len(), w.len()), (34, 1));
        // A slot pointing at another package's blob.
        let mut d = SLE15.to_vec();
        d.copy_within(48 + 8..48 + 12, 32 + 8);
        let (b, w) = blobs(&d).unwrap();
        assert_eq!(b.len(), 34);
        assert!(w[0].to_string().contains("belongs to package 2"), "{w:?}");
        // Every byte of the first blob's head and tail flipped in turn.
        let off = le32(SLE15, 32 + 8) as usize * BLOCK;
        for i in (off..off + 32).chain(off + 4000..off + 4200) {
            let mut d = SLE15.to_vec();
            d[i] ^= 0xff;
            let _ = blobs(&d);
        }
    }
}
