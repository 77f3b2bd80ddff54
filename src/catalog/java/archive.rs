//! Opening a Java archive from an image as hostile input.
//!
//! A zip's central directory may point many records at the same bytes: one
//! deflate stream of ~1 MiB named 20,000 times makes a 1.7 MB jar that
//! inflates to 20 GiB (the "overlapping entries" bomb, Fifield 2019). So,
//! before any entry is read:
//! - the declared entry count must fit the file (every entry costs at least
//!   a 30-byte local and a 46-byte central header) and [`MAX_ENTRIES`],
//!   checked on the end-of-central-directory records before the zip crate
//!   allocates anything per entry;
//! - no two entries may share bytes (local header plus data), which also
//!   bounds the total of compressed data by the file's size;
//! - every inflated byte is charged to a [`Meter`] shared by an archive and
//!   everything nested in it, and the reader stops at its budget;
//! - cancellation is checked between entries and between inflated chunks.
//!
//! A stored (uncompressed) entry is handed out as a slice of the archive:
//! Spring Boot's `BOOT-INF/lib` jars are stored, and are not copied.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use super::JavaError;

/// Entries in one archive. Real jars up to the image reader's 64 MiB file
/// cap hold tens of thousands; each costs the zip crate a few hundred bytes.
pub(super) const MAX_ENTRIES: u64 = 200_000;
/// Smallest possible entry: local header (30) plus central header (46).
const MIN_ENTRY_BYTES: u64 = 76;
/// Inflated bytes read for one top-level archive and all archives nested in
/// it: nested jars are read whole, the rest is a few small text files.
pub(super) const MAX_INFLATED: u64 = 512 << 20;
/// Read (and cancellation-check) granularity while inflating.
const CHUNK: usize = 64 << 10;

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: &[u8; 4] = b"PK\x06\x06";
const ZIP64_EOCD_LEN: usize = 56;

/// Inflated-byte budget of one top-level archive.
#[derive(Debug)]
pub(super) struct Meter {
    budget: u64,
    left: u64,
}

impl Meter {
    pub(super) fn new(budget: u64) -> Self {
        Meter {
            budget,
            left: budget,
        }
    }

    fn charge(&mut self, n: u64) -> Result<(), JavaError> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => {
                self.left = 0;
                Err(JavaError::Budget(self.budget))
            }
        }
    }
}

/// An opened archive whose entries do not overlap.
pub(super) struct Archive<'a> {
    data: &'a [u8],
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Archive<'a> {
    pub(super) fn open(data: &'a [u8]) -> Result<Self, JavaError> {
        let declared = declared_entries(data);
        if declared > MAX_ENTRIES {
            return Err(JavaError::TooManyEntries(declared));
        }
        if declared.saturating_mul(MIN_ENTRY_BYTES) > data.len() as u64 {
            return Err(JavaError::Overlapping(format!(
                "{declared} entries declared in {} bytes",
                data.len()
            )));
        }
        let mut zip = zip::ZipArchive::new(Cursor::new(data))
            .map_err(|e| JavaError::NotZip(e.to_string()))?;
        // An archive that starts with a local header at byte 0 but opens
        // at a later offset is truncated: what opened is a stored archive
        // nested in it, whose identity is not this file's.
        if zip.offset() > 0 && data.starts_with(b"PK\x03\x04") {
            return Err(JavaError::NotZip(
                "truncated: its central directory is missing".into(),
            ));
        }
        if zip.len() as u64 > MAX_ENTRIES {
            return Err(JavaError::TooManyEntries(zip.len() as u64));
        }
        match zip.has_overlapping_entries() {
            Ok(false) => Ok(Archive { data, zip }),
            Ok(true) => Err(JavaError::Overlapping(
                "entries share bytes (a zip bomb)".into(),
            )),
            Err(e) => Err(JavaError::NotZip(e.to_string())),
        }
    }

    /// Index and name of every entry whose name is valid UTF-8.
    pub(super) fn names(&self) -> Vec<(usize, String)> {
        (0..self.zip.len())
            .filter_map(|i| Some((i, self.zip.name_for_index(i)?.ok()?.into_owned())))
            .collect()
    }

    /// The content of entry `i`: at most `limit` bytes whatever its headers
    /// claim, charged to `meter`.
    pub(super) fn read(
        &mut self,
        i: usize,
        limit: u64,
        meter: &mut Meter,
    ) -> Result<Cow<'a, [u8]>, JavaError> {
        let err = |e: zip::result::ZipError| JavaError::Read(e.to_string());
        let (stored, range) = {
            let f = self.zip.by_index_raw(i).map_err(err)?;
            let stored = f.compression() == zip::CompressionMethod::Stored && !f.encrypted();
            let start = f.data_start().unwrap_or(u64::MAX);
            (stored, (start, f.compressed_size(), f.size()))
        };
        let (start, len, size) = range;
        if size.max(if stored { len } else { 0 }) > limit {
            return Err(JavaError::Read(format!(
                "{size} bytes, over the {limit}-byte limit"
            )));
        }
        if stored && len == size {
            let slice = usize::try_from(start)
                .ok()
                .and_then(|s| self.data.get(s..s.checked_add(usize::try_from(len).ok()?)?))
                .ok_or_else(|| JavaError::Read("data outside the archive".into()))?;
            meter.charge(len)?;
            return Ok(Cow::Borrowed(slice));
        }
        let f = self.zip.by_index(i).map_err(err)?;
        inflate(f, limit, meter).map(Cow::Owned)
    }
}

/// Reads `r` in chunks, charging each to `meter`, until its end or `limit`.
fn inflate(mut r: impl Read, limit: u64, meter: &mut Meter) -> Result<Vec<u8>, JavaError> {
    let mut out = Vec::new();
    let mut chunk = vec![0; CHUNK];
    loop {
        crate::cancel::checkpoint()?;
        let n = r
            .read(&mut chunk)
            .map_err(|e| JavaError::Read(e.to_string()))?;
        if n == 0 {
            return Ok(out);
        }
        meter.charge(n as u64)?;
        if (out.len() + n) as u64 > limit {
            return Err(JavaError::Read(format!("over the {limit}-byte limit")));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The largest entry count any end-of-central-directory record in the
/// archive's tail declares (the zip crate may settle on any of them), with
/// the zip64 record a locator points at. A zip64 marker without a readable
/// zip64 record counts as unbounded: real zip64 jars have one.
pub(super) fn declared_entries(data: &[u8]) -> u64 {
    let tail = data.len().saturating_sub(EOCD_LEN + u16::MAX as usize);
    let mut max = 0u64;
    for pos in (tail..data.len()).rev() {
        let Some(eocd) = data.get(pos..pos + EOCD_LEN) else {
            continue;
        };
        if !eocd.starts_with(EOCD_SIG) {
            continue;
        }
        let u16_at = |o: usize| u16::from_le_bytes([eocd[o], eocd[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([eocd[o], eocd[o + 1], eocd[o + 2], eocd[o + 3]]);
        let total = u64::from(u16_at(8).max(u16_at(10)));
        let zip64 = u16_at(8) == u16::MAX
            || u16_at(10) == u16::MAX
            || u32_at(12) == u32::MAX
            || u32_at(16) == u32::MAX
            || (pos >= ZIP64_LOCATOR_LEN
                && data[pos - ZIP64_LOCATOR_LEN..].starts_with(ZIP64_LOCATOR_SIG));
        let count = if zip64 {
            zip64_entries(data, pos).unwrap_or(u64::MAX)
        } else {
            total
        };
        max = max.max(count);
    }
    max
}

/// Entry count of the zip64 record that the locator before the
/// end-of-central-directory record at `eocd` points at.
fn zip64_entries(data: &[u8], eocd: usize) -> Option<u64> {
    let loc = data.get(eocd.checked_sub(ZIP64_LOCATOR_LEN)?..eocd)?;
    if !loc.starts_with(ZIP64_LOCATOR_SIG) {
        return None;
    }
    let at = usize::try_from(u64::from_le_bytes(loc[8..16].try_into().ok()?)).ok()?;
    let rec = data.get(at..at.checked_add(ZIP64_EOCD_LEN)?)?;
    if !rec.starts_with(ZIP64_EOCD_SIG) {
        return None;
    }
    let on_disk = u64::from_le_bytes(rec[24..32].try_into().ok()?);
    let total = u64::from_le_bytes(rec[32..40].try_into().ok()?);
    Some(on_disk.max(total))
}
