//! The rpm header as the rpm databases store it (the "header blob"; in a
//! package file it would follow the lead and signature, which a database
//! does not keep): big-endian `il` (index entry count) and `dl` (data store
//! length), `il` 16-byte index entries (tag, type, offset, count), then
//! the `dl`-byte data store the entries point into.
//!
//! Only the few tags a package identity needs are decoded. Every offset and
//! count is checked against the blob; nothing here can index out of bounds.

use std::borrow::Cow;

use super::RpmError;

/// rpm's own limits (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX` in rpm's
/// header_internal.h): a header claiming more is damaged.
const MAX_ENTRIES: u32 = 0xffff;
const MAX_DATA: u32 = 0x0fff_ffff;
/// Longest string we accept for one of our tags.
const MAX_STRING: usize = 4096;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_VENDOR: u32 = 1011;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;
const TAG_OLDFILENAMES: u32 = 1027;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TAG_MODULARITYLABEL: u32 = 5096;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// The identity of one installed package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpmHeader {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<u32>,
    pub arch: Option<String>,
    /// `openssl-3.0.7-1.cm2.src.rpm`; absent on source packages and on
    /// `gpg-pubkey` pseudo packages.
    pub source_rpm: Option<String>,
    pub vendor: Option<String>,
    /// RHEL/Fedora modules: `nodejs:18:8090020231019152822:a75119d5`.
    pub modularity_label: Option<String>,
}

impl RpmHeader {
    /// `[epoch:]version-release`, the epoch only when set and not 0, the
    /// way `rpm -q --qf '%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}'` and the
    /// corpus ground truth write it.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) if e != 0 => format!("{e}:{}-{}", self.version, self.release),
            _ => format!("{}-{}", self.version, self.release),
        }
    }

    /// Source package name and `version-release` from SOURCERPM
    /// (`openssl-3.0.7-1.cm2.src.rpm` → `openssl`, `3.0.7-1.cm2`).
    pub fn source(&self) -> Option<(String, String)> {
        parse_source_rpm(self.source_rpm.as_deref()?)
    }
}

/// `NAME-VERSION-RELEASE.src.rpm` (or `.nosrc.rpm`) → (name, version-release).
/// Names may contain `-`; version and release may not, so split from the right.
pub fn parse_source_rpm(s: &str) -> Option<(String, String)> {
    let stem = s
        .strip_suffix(".src.rpm")
        .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name.to_owned(), format!("{version}-{release}")))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The index entry count and the data store of a header blob, both checked
/// to fit it.
fn layout(blob: &[u8]) -> Result<(usize, &[u8]), RpmError> {
    let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
        return Err(RpmError::Header(format!(
            "{} bytes, too short for a header",
            blob.len()
        )));
    };
    if il == 0 || il > MAX_ENTRIES || dl > MAX_DATA {
        return Err(RpmError::Header(format!(
            "implausible header size: {il} entries, {dl} data bytes"
        )));
    }
    let index_len = il as usize * 16;
    let data_start = 8 + index_len;
    let Some(data) = blob.get(data_start..data_start + dl as usize) else {
        return Err(RpmError::Header(format!(
            "header of {il} entries and {dl} data bytes does not fit its {} bytes",
            blob.len()
        )));
    };
    Ok((il as usize, data))
}

/// The index entries of a header blob: (tag, type, offset, count).
fn entries(blob: &[u8], il: usize) -> impl Iterator<Item = (u32, u32, usize, u32)> + '_ {
    (0..il).filter_map(move |i| {
        let e = 8 + i * 16;
        // In bounds: e + 16 <= the data start, checked by `layout`.
        Some((
            be32(blob, e)?,
            be32(blob, e + 4)?,
            be32(blob, e + 8)? as usize,
            be32(blob, e + 12)?,
        ))
    })
}

/// Parses a header blob. Tags other than ours are skipped unread.
pub fn parse(blob: &[u8]) -> Result<RpmHeader, RpmError> {
    let (il, data) = layout(blob)?;
    let mut h = RpmHeader::default();
    let (mut name, mut version, mut release) = (None, None, None);
    for (tag, ty, off, count) in entries(blob, il) {
        let field = |what: &'static str| -> Result<String, RpmError> {
            string(data, ty, off, count)
                .ok_or_else(|| RpmError::Header(format!("unreadable {what} (tag {tag})")))
        };
        match tag {
            TAG_NAME if name.is_none() => name = Some(field("NAME")?),
            TAG_VERSION if version.is_none() => version = Some(field("VERSION")?),
            TAG_RELEASE if release.is_none() => release = Some(field("RELEASE")?),
            TAG_EPOCH if h.epoch.is_none() => {
                if ty != TYPE_INT32 || count < 1 {
                    return Err(RpmError::Header(format!(
                        "EPOCH has type {ty} and count {count}, not INT32"
                    )));
                }
                h.epoch = Some(
                    be32(data, off)
                        .ok_or_else(|| RpmError::Header("EPOCH offset out of bounds".into()))?,
                );
            }
            // Optional tags: a damaged one is dropped, the package kept.
            TAG_ARCH if h.arch.is_none() => h.arch = string(data, ty, off, count),
            TAG_SOURCERPM if h.source_rpm.is_none() => h.source_rpm = string(data, ty, off, count),
            TAG_VENDOR if h.vendor.is_none() => h.vendor = string(data, ty, off, count),
            TAG_MODULARITYLABEL if h.modularity_label.is_none() => {
                h.modularity_label = string(data, ty, off, count)
            }
            _ => {}
        }
    }
    h.name = name.ok_or_else(|| RpmError::Header("no NAME tag".into()))?;
    h.version = version.ok_or_else(|| RpmError::Header(format!("{}: no VERSION tag", h.name)))?;
    h.release = release.ok_or_else(|| RpmError::Header(format!("{}: no RELEASE tag", h.name)))?;
    for (what, v) in [
        ("NAME", &h.name),
        ("VERSION", &h.version),
        ("RELEASE", &h.release),
    ] {
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RpmError::Header(format!(
                "invalid {what} {:?}",
                super::super::excerpt(v)
            )));
        }
    }
    Ok(h)
}

/// Calls `f(dir, base)` for each file a package installed: rpm 4 stores
/// each as a BASENAMES entry plus the DIRNAMES entry (`/usr/bin/`, with its
/// slash) its DIRINDEXES value points to; older headers have whole
/// OLDFILENAMES, split here at the last slash. The two parts are handed
/// over unjoined: many files share one directory, and a caller that looks
/// for a few paths joins only those (joining them all let one 8 MiB
/// DIRNAMES entry shared by N files cost N × 8 MiB). A file whose path is
/// longer than [`MAX_PATH`] is skipped: no file system could hold it. A
/// header without files (a meta package) gives none; inconsistent file
/// tags are an error, reported before `f` sees any file.
pub fn for_each_file(blob: &[u8], mut f: impl FnMut(&str, &str)) -> Result<(), RpmError> {
    let (il, data) = layout(blob)?;
    let (mut bases, mut dirs, mut indexes, mut old) = (None, None, None, None);
    let bad = |what: &str| RpmError::Header(format!("unreadable {what}"));
    for (tag, ty, off, count) in entries(blob, il) {
        match tag {
            TAG_BASENAMES => bases = Some(strings(data, ty, off, count).ok_or(bad("BASENAMES"))?),
            TAG_DIRNAMES => dirs = Some(strings(data, ty, off, count).ok_or(bad("DIRNAMES"))?),
            TAG_DIRINDEXES => {
                indexes = Some(int32s(data, ty, off, count).ok_or(bad("DIRINDEXES"))?)
            }
            TAG_OLDFILENAMES => {
                old = Some(strings(data, ty, off, count).ok_or(bad("OLDFILENAMES"))?)
            }
            _ => {}
        }
    }
    match (bases, dirs, indexes) {
        (Some(bases), Some(dirs), Some(indexes)) => {
            if indexes.len() != bases.count {
                return Err(RpmError::Header(format!(
                    "{} BASENAMES but {} DIRINDEXES",
                    bases.count,
                    indexes.len()
                )));
            }
            if let Some(i) = indexes.clone().find(|&i| i as usize >= dirs.count) {
                return Err(RpmError::Header(format!(
                    "DIRINDEXES value {i} out of range"
                )));
            }
            // Each directory decoded once, not once per file in it.
            let dirs: Vec<Option<Cow<str>>> = dirs.map(|d| path_part(d, 0)).collect();
            for (base, i) in bases.zip(indexes) {
                if let Some(dir) = &dirs[i as usize]
                    && let Some(base) = path_part(base, dir.len())
                {
                    f(dir, &base);
                }
            }
            Ok(())
        }
        (None, None, None) => {
            for path in old.into_iter().flatten() {
                let split = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
                if let Some(dir) = path_part(&path[..split], 0)
                    && let Some(base) = path_part(&path[split..], dir.len())
                {
                    f(&dir, &base);
                }
            }
            Ok(())
        }
        _ => Err(RpmError::Header(
            "BASENAMES, DIRNAMES and DIRINDEXES not all present".into(),
        )),
    }
}

/// Longest file path accepted from a file list (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;

/// Most entries one STRING_ARRAY of a file list may have. rpm sets no
/// limit below its 256 MiB data store; the largest real packages list a few
/// tens of thousands of files.
const MAX_FILES: u32 = 1 << 20;

/// One part of a path, `None` when it cannot fit [`MAX_PATH`] after `used`
/// bytes. Not UTF-8 is replaced, not rejected, as tar paths are.
fn path_part(b: &[u8], used: usize) -> Option<Cow<'_, str>> {
    (used + b.len() <= MAX_PATH).then(|| String::from_utf8_lossy(b))
}

/// The `count` NUL-terminated strings of a STRING_ARRAY entry, borrowed
/// from the data store and checked to be there before any is returned.
#[derive(Clone)]
struct Strings<'a> {
    rest: &'a [u8],
    count: usize,
}

impl<'a> Iterator for Strings<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.count = self.count.checked_sub(1)?;
        let end = self.rest.iter().position(|&b| b == 0)?;
        let (s, rest) = (&self.rest[..end], &self.rest[end + 1..]);
        self.rest = rest;
        Some(s)
    }
}

fn strings(data: &[u8], ty: u32, off: usize, count: u32) -> Option<Strings<'_>> {
    if ty != TYPE_STRING_ARRAY || count > MAX_FILES {
        return None;
    }
    let rest = data.get(off..)?;
    // Each string takes at least its NUL: a count beyond that is a lie.
    if count as usize > rest.len() {
        return None;
    }
    // All `count` terminators must be there (one pass, no allocation).
    let nuls = rest
        .iter()
        .filter(|&&b| b == 0)
        .take(count as usize)
        .count();
    (nuls == count as usize).then_some(Strings {
        rest,
        count: count as usize,
    })
}

/// The `count` values of an INT32 entry, read in place.
fn int32s(
    data: &[u8],
    ty: u32,
    off: usize,
    count: u32,
) -> Option<impl ExactSizeIterator<Item = u32> + Clone + '_> {
    if ty != TYPE_INT32 || count > MAX_FILES {
        return None;
    }
    let len = (count as usize).checked_mul(4)?;
    let bytes = data.get(off..off.checked_add(len)?)?;
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
    )
}

/// The (first) string of a STRING, I18NSTRING or STRING_ARRAY entry: bytes
/// from `off` up to the next NUL inside the data store.
fn string(data: &[u8], ty: u32, off: usize, count: u32) -> Option<String> {
    if !matches!(ty, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) || count == 0 {
        return None;
    }
    let rest = data.get(off..)?;
    let end = rest.iter().take(MAX_STRING + 1).position(|&b| b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a header blob from (tag, type, count, data) entries, the way
    /// rpm lays it out, for tests of damaged and unusual headers.
    pub(crate) fn blob(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, ty, count, d) in entries {
            if *ty == TYPE_INT32 {
                while store.len() % 4 != 0 {
                    store.push(0);
                }
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&ty.to_be_bytes());
            index.extend_from_slice(&(store.len() as u32).to_be_bytes());
            index.extend_from_slice(&count.to_be_bytes());
            store.extend_from_slice(d);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(store.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(store);
        out
    }

    pub(crate) fn s(tag: u32, v: &str) -> (u32, u32, u32, Vec<u8>) {
        let mut d = v.as_bytes().to_vec();
        d.push(0);
        (tag, TYPE_STRING, 1, d)
    }

    pub(crate) fn package(name: &str, version: &str, release: &str) -> Vec<u8> {
        blob(&[
            s(TAG_NAME, name),
            s(TAG_VERSION, version),
            s(TAG_RELEASE, release),
            (TAG_EPOCH, TYPE_INT32, 1, 2u32.to_be_bytes().to_vec()),
            s(TAG_ARCH, "x86_64"),
            s(
                TAG_SOURCERPM,
                &format!("{name}-{version}-{release}.src.rpm"),
            ),
        ])
    }

    #[test]
    fn reads_identity_tags() {
        let h = parse(&package("vim-data", "9.1.113", "1.fc39")).unwrap();
        assert_eq!(h.name, "vim-data");
        assert_eq!(h.evr(), "2:9.1.113-1.fc39");
        assert_eq!(h.arch.as_deref(), Some("x86_64"));
        assert_eq!(
            h.source(),
            Some(("vim-data".into(), "9.1.113-1.fc39".into()))
        );
    }

    #[test]
    fn source_rpm_names() {
        assert_eq!(
            parse_source_rpm("openssl-3.0.7-1.cm2.src.rpm"),
            Some(("openssl".into(), "3.0.7-1.cm2".into()))
        );
        assert_eq!(
            parse_source_rpm("python-setuptools-wheel-59.6.0-3.cm2.src.rpm"),
            Some(("python-setuptools-wheel".into(), "59.6.0-3.cm2".into()))
        );
        assert_eq!(
            parse_source_rpm("acroread-9.5-1.nosrc.rpm"),
            Some(("acroread".into(), "9.5-1".into()))
        );
        assert_eq!(parse_source_rpm("foo.src.rpm"), None);
        assert_eq!(parse_source_rpm("-1-2.src.rpm"), None);
        assert_eq!(parse_source_rpm("openssl-3.0.7-1.cm2"), None);
    }

    #[test]
    fn epoch_zero_is_not_written() {
        let b = blob(&[
            s(TAG_NAME, "a"),
            s(TAG_VERSION, "1"),
            s(TAG_RELEASE, "2"),
            (TAG_EPOCH, TYPE_INT32, 1, 0u32.to_be_bytes().to_vec()),
        ]);
        let h = parse(&b).unwrap();
        assert_eq!((h.epoch, h.evr().as_str()), (Some(0), "1-2"));
        assert_eq!(h.arch, None);
    }

    #[test]
    fn damaged_headers_are_errors() {
        let good = package("bash", "5.1.8", "1.cm2");
        // Every truncation fails cleanly.
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "truncated to {n}");
        }
        // Huge counts.
        let mut b = good.clone();
        b[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&b).is_err());
        let mut b = good.clone();
        b[4..8].copy_from_slice(&(MAX_DATA - 1).to_be_bytes());
        assert!(parse(&b).is_err());
        // An offset far outside the store.
        let mut b = good.clone();
        b[8 + 8..8 + 12].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        assert!(parse(&b).is_err());
        // A string without its terminating NUL.
        let b = blob(&[
            s(TAG_VERSION, "1"),
            s(TAG_RELEASE, "1"),
            (TAG_NAME, TYPE_STRING, 1, b"bash".to_vec()),
        ]);
        assert!(parse(&b).is_err());
        // Wrong types.
        let b = blob(&[
            (TAG_NAME, TYPE_INT32, 1, 7u32.to_be_bytes().to_vec()),
            s(TAG_VERSION, "1"),
            s(TAG_RELEASE, "1"),
        ]);
        assert!(parse(&b).is_err());
        let b = blob(&[s(TAG_NAME, "a b"), s(TAG_VERSION, "1"), s(TAG_RELEASE, "1")]);
        assert!(parse(&b).is_err());
        assert!(parse(&blob(&[s(TAG_NAME, "a"), s(TAG_VERSION, "1")])).is_err());
        assert!(parse(b"\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random byte stream, with plausible sizes
        // planted so that the index loop really runs.
        let mut x: u32 = 0x1234_5678;
        for len in [8usize, 24, 100, 1000, 5000] {
            for round in 0..200 {
                let mut b: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                let il = (round % 8 + 1) as u32;
                b[0..4].copy_from_slice(&il.to_be_bytes());
                let dl = len.saturating_sub(8 + il as usize * 16) as u32;
                b[4..8].copy_from_slice(&dl.to_be_bytes());
                let _ = parse(&b);
            }
        }
    }

    fn file_list(dirs: &[u8], ndirs: u32, bases: &[u8], indexes: &[u32]) -> Vec<u8> {
        blob(&[
            s(TAG_NAME, "a"),
            s(TAG_VERSION, "1"),
            s(TAG_RELEASE, "1"),
            (
                TAG_DIRINDEXES,
                TYPE_INT32,
                indexes.len() as u32,
                indexes.iter().flat_map(|i| i.to_be_bytes()).collect(),
            ),
            (
                TAG_BASENAMES,
                TYPE_STRING_ARRAY,
                indexes.len() as u32,
                bases.to_vec(),
            ),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY, ndirs, dirs.to_vec()),
        ])
    }

    /// One 8 MiB DIRNAMES entry shared by 2,000 BASENAMES: joined, 16 GB.
    /// Now the long directory is skipped and nothing is joined or copied.
    #[test]
    fn a_huge_shared_dirname_is_not_amplified() {
        const N: usize = 2000;
        let mut dirs = vec![b'd'; 8 << 20];
        dirs.extend_from_slice(b"/\0/usr/bin/\0");
        let bases: Vec<u8> = (0..N).flat_map(|_| *b"METADATA\0").collect();
        let mut indexes = vec![0u32; N];
        indexes[N - 1] = 1;
        let b = file_list(&dirs, 2, &bases, &indexes);
        let mut seen = Vec::new();
        for_each_file(&b, |d, b| seen.push(format!("{d}{b}"))).unwrap();
        assert_eq!(seen, ["/usr/bin/METADATA"]);
        // A directory just within PATH_MAX is kept, one a byte over is not.
        let long = format!("/{}/", "x".repeat(MAX_PATH - 10));
        let dirs = format!("{long}\0");
        let b = file_list(dirs.as_bytes(), 1, b"12345678\x00123456789\x00", &[0, 0]);
        let mut n = 0;
        for_each_file(&b, |d, b| {
            assert!(d.len() + b.len() <= MAX_PATH);
            n += 1;
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn huge_file_counts_are_errors_before_any_file() {
        let ok = file_list(b"/d/\0", 1, b"x\0y\0", &[0, 0]);
        let mut n = 0;
        for_each_file(&ok, |_, _| n += 1).unwrap();
        assert_eq!(n, 2);
        for (ndirs, bases, indexes) in [
            // More strings claimed than terminators present.
            (1_000_000, &b"x\0y\0"[..], &[0u32, 0][..]),
            (u32::MAX, &b"x\0y\0"[..], &[0, 0][..]),
            // An index past DIRNAMES, found before any callback.
            (1, &b"x\0y\0"[..], &[0, 1][..]),
        ] {
            let mut dirs = b"/d/\0".to_vec();
            dirs.resize(64, 0);
            let dirs = if ndirs == 1 {
                &b"/d/\0"[..]
            } else {
                &dirs[..4]
            };
            let b = file_list(dirs, ndirs, bases, indexes);
            let mut called = false;
            assert!(for_each_file(&b, |_, _| called = true).is_err());
            assert!(!called);
        }
        // Past MAX_FILES, whatever the data store holds.
        let many = vec![0u8; MAX_FILES as usize + 1];
        let b = file_list(b"/\0", 1, &many, &vec![0; MAX_FILES as usize + 1]);
        assert!(for_each_file(&b, |_, _| {}).is_err());
    }

    #[test]
    fn old_filenames_are_split() {
        let b = blob(&[
            s(TAG_NAME, "a"),
            s(TAG_VERSION, "1"),
            s(TAG_RELEASE, "1"),
            (
                TAG_OLDFILENAMES,
                TYPE_STRING_ARRAY,
                3,
                b"/etc/passwd\0/bin/\0rel\0".to_vec(),
            ),
        ]);
        let mut seen = Vec::new();
        for_each_file(&b, |d, b| seen.push((d.to_owned(), b.to_owned()))).unwrap();
        assert_eq!(
            seen,
            [
                ("/etc/".into(), "passwd".into()),
                ("/bin/".into(), String::new()),
                (String::new(), "rel".into())
            ]
        );
    }
}
