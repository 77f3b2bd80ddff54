//! A streaming tar reader that never holds more of an entry's metadata than
//! a fixed cap.
//!
//! The `tar` crate reads GNU long-name (`L`/`K`) and PAX (`x`) records
//! whole into memory before the entry they describe, whatever their size:
//! a 4.5 MB layer holding a 1 GiB long name cost 3.1 GiB of RSS. Here
//! every such record is read against a cap ([`MAX_NAME`] for a name or a
//! link target, as Linux's `PATH_MAX`; [`MAX_PAX`] for a PAX header) and
//! an archive going past it fails with [`TarError::Limit`].
//!
//! The headers are read as Go's `archive/tar` reads them (which is what
//! containerd and BuildKit use to write and apply layers): PAX records
//! merge into the next entry, GNU long names win over PAX `path`, a
//! pre-POSIX regular entry whose name ends in `/` is a directory, the ustar
//! `prefix` field applies to POSIX ustar headers only, and the archive ends
//! at the first all-zero block.

use std::io::{self, Read};

/// Longest name or link target accepted (Linux `PATH_MAX`, NUL included).
pub const MAX_NAME: usize = 4096;
/// Largest PAX extended header accepted. Real ones carry a path, a size and
/// a few extended attributes (SELinux labels, capabilities): kilobytes.
pub const MAX_PAX: u64 = 1 << 20;
/// GNU sparse map entries accepted for one file (each is 24 bytes of header).
const MAX_SPARSE_BLOCKS: usize = 65_536;

const BLOCK: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a valid tar stream: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Limit(String),
}

/// The kind of an entry, from its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    Directory,
    /// A GNU sparse file: its data is a list of fragments (see
    /// [`Header::sparse`]).
    Sparse,
    /// Devices, FIFOs and anything unknown: no content worth reading.
    Other,
}

/// One entry's header, with long names and PAX records applied.
#[derive(Debug, Clone)]
pub struct Header {
    pub kind: Kind,
    /// Raw path bytes as the archive names the entry.
    pub path: Vec<u8>,
    /// Raw link target bytes (symlinks and hard links).
    pub link: Vec<u8>,
    pub mode: u32,
    /// Bytes of data stored in the archive after the header.
    pub size: u64,
    /// For a sparse file: its real size and the (offset, length) fragments
    /// the stored data fills, in order.
    pub sparse: Option<(u64, Vec<(u64, u64)>)>,
}

/// Reads headers and entry data from a stream, one entry at a time.
pub struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet consumed, and its padding.
    remaining: u64,
    padding: u64,
    done: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    /// The reader the archive came from, positioned after the end marker
    /// once [`next_header`](Self::next_header) returned `None`.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Skips what is left of the current entry and reads the next header;
    /// `None` at the end of the archive.
    pub fn next_header(&mut self) -> Result<Option<Header>, TarError> {
        if self.done {
            return Ok(None);
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_link: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            self.skip_rest()?;
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                if long_name.is_some() || pax_path.is_some() || pax_size.is_some() {
                    return Err(corrupt("an extended header describes no entry"));
                }
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            check_checksum(&block)?;
            let flag = block[156];
            let mut size = numeric(&block[124..136])?;
            if matches!(flag, b'L' | b'K' | b'x' | b'g') {
                self.remaining = size;
                self.padding = pad(size);
                match flag {
                    b'L' => long_name = Some(self.read_name("a GNU long name")?),
                    b'K' => long_link = Some(self.read_name("a GNU long link target")?),
                    b'x' => {
                        let pax = self.read_pax()?;
                        for (k, v) in pax_records(&pax)? {
                            match k {
                                b"path" => pax_path = Some(v.to_vec()),
                                b"linkpath" => pax_link = Some(v.to_vec()),
                                b"size" => {
                                    pax_size = Some(
                                        parse_decimal(v)
                                            .ok_or_else(|| corrupt("bad PAX size record"))?,
                                    )
                                }
                                _ => {}
                            }
                        }
                    }
                    // A global header changes nothing Go's reader applies.
                    _ => {
                        self.read_pax()?;
                    }
                }
                continue;
            }
            if let Some(s) = pax_size {
                size = s;
            }
            let ustar = &block[257..263] == b"ustar\0";
            let mut path = match (long_name, pax_path) {
                (Some(n), _) => n,
                (None, Some(p)) => p,
                (None, None) => {
                    let name = cstr(&block[0..100]);
                    let prefix = if ustar { cstr(&block[345..500]) } else { &[] };
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        [prefix, b"/", name].concat()
                    }
                }
            };
            let link = match (long_link, pax_link) {
                (Some(n), _) => n,
                (None, Some(p)) => p,
                (None, None) => cstr(&block[157..257]).to_vec(),
            };
            check_len(&path, "an entry name")?;
            check_len(&link, "a link target")?;
            let mode = numeric(&block[100..108]).unwrap_or(0) as u32;
            let kind = match flag {
                b'0' | b'7' => Kind::Regular,
                0 if path.ends_with(b"/") => Kind::Directory,
                0 => Kind::Regular,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'5' => Kind::Directory,
                b'S' => Kind::Sparse,
                _ => Kind::Other,
            };
            let sparse = if kind == Kind::Sparse {
                Some(self.sparse_map(&block, size)?)
            } else {
                None
            };
            // Directories may carry data in odd archives; it is skipped.
            self.remaining = size;
            self.padding = pad(size);
            while path.len() > 1 && path.ends_with(b"/") {
                path.pop();
            }
            return Ok(Some(Header {
                kind,
                path,
                link,
                mode,
                size,
                sparse,
            }));
        }
    }

    /// The current entry's data (at most its size).
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { tar: self }
    }

    fn skip_rest(&mut self) -> Result<(), TarError> {
        let n = self.remaining + self.padding;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
            if copied < n {
                return Err(corrupt("the archive ends inside an entry"));
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    fn read_name(&mut self, what: &str) -> Result<Vec<u8>, TarError> {
        if self.remaining > MAX_NAME as u64 {
            return Err(TarError::Limit(format!(
                "{what} of {} bytes is longer than the {MAX_NAME} bytes a path may have",
                self.remaining
            )));
        }
        let mut v = self.read_all()?;
        if let Some(nul) = v.iter().position(|b| *b == 0) {
            v.truncate(nul);
        }
        Ok(v)
    }

    fn read_pax(&mut self) -> Result<Vec<u8>, TarError> {
        if self.remaining > MAX_PAX {
            return Err(TarError::Limit(format!(
                "a PAX extended header of {} bytes is over the {MAX_PAX}-byte limit",
                self.remaining
            )));
        }
        self.read_all()
    }

    /// Reads the current (capped) entry's data whole.
    fn read_all(&mut self) -> Result<Vec<u8>, TarError> {
        let mut v = Vec::with_capacity(self.remaining as usize);
        self.data().read_to_end(&mut v)?;
        if self.remaining > 0 {
            return Err(corrupt("the archive ends inside an entry"));
        }
        Ok(v)
    }

    /// The old-GNU sparse map: four fragments in the header, more in
    /// extension blocks that follow it.
    fn sparse_map(
        &mut self,
        block: &[u8; BLOCK],
        stored: u64,
    ) -> Result<(u64, Vec<(u64, u64)>), TarError> {
        let real = numeric(&block[483..495])?;
        let mut frags = Vec::new();
        let mut push = |chunk: &[u8]| -> Result<(), TarError> {
            let off = numeric(&chunk[0..12])?;
            let len = numeric(&chunk[12..24])?;
            if off == 0 && len == 0 {
                return Ok(());
            }
            if frags.len() >= MAX_SPARSE_BLOCKS {
                return Err(TarError::Limit(format!(
                    "a sparse file lists more than {MAX_SPARSE_BLOCKS} fragments"
                )));
            }
            frags.push((off, len));
            Ok(())
        };
        for i in 0..4 {
            push(&block[386 + i * 24..386 + (i + 1) * 24])?;
        }
        let mut extended = block[482] != 0;
        while extended {
            let mut ext = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut ext)? {
                return Err(corrupt("the archive ends inside a sparse map"));
            }
            for i in 0..21 {
                push(&ext[i * 24..(i + 1) * 24])?;
            }
            extended = ext[504] != 0;
        }
        let mut end = 0u64;
        let mut total = 0u64;
        for &(off, len) in &frags {
            if off < end {
                return Err(corrupt("sparse fragments overlap"));
            }
            end = off
                .checked_add(len)
                .ok_or_else(|| corrupt("sparse overflow"))?;
            total += len;
        }
        if end > real || total != stored {
            return Err(corrupt("the sparse map does not match the entry sizes"));
        }
        Ok((real, frags))
    }
}

/// Reader over the current entry's data.
pub struct EntryData<'a, R> {
    tar: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = (buf.len() as u64).min(self.tar.remaining) as usize;
        if max == 0 {
            return Ok(0);
        }
        let n = self.tar.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        self.tar.remaining -= n as u64;
        Ok(n)
    }
}

fn corrupt(msg: &str) -> TarError {
    TarError::Corrupt(msg.to_owned())
}

fn pad(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn check_len(name: &[u8], what: &str) -> Result<(), TarError> {
    if name.len() >= MAX_NAME {
        return Err(TarError::Limit(format!(
            "{what} of {} bytes is longer than the {MAX_NAME} bytes a path may have",
            name.len()
        )));
    }
    Ok(())
}

/// `false` on a clean end of stream before the block; an error when it
/// ends inside one.
fn read_block<R: Read>(r: &mut R, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
    let mut got = 0;
    while got < BLOCK {
        match r.read(&mut block[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(corrupt("the archive ends inside a header")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// The checksum counts the checksum field as spaces; both the unsigned
/// (POSIX) and signed (some historic writers) sums are accepted, as Go does.
fn check_checksum(block: &[u8; BLOCK]) -> Result<(), TarError> {
    let stored = numeric(&block[148..156])?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(corrupt("archive header checksum mismatch"))
    }
}

/// An octal field (NUL/space padded), or base-256 when the top bit is set.
fn numeric(field: &[u8]) -> Result<u64, TarError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] == 0xff {
            return Err(corrupt("negative number in a header"));
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| corrupt("number in a header overflows"))?;
        }
        return Ok(v);
    }
    let text = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| *b != b' ' && *b != 0);
    let mut v: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return Err(corrupt("bad octal number in a header"));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| corrupt("number in a header overflows"))?;
    }
    Ok(v)
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|b| *b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// `LEN KEY=VALUE\n` records.
/// A PAX record's key and value.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

fn pax_records(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, TarError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|b| *b == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| corrupt("bad PAX record"))?;
        let len = parse_decimal(&data[..sp])
            .filter(|l| (*l as usize) > sp + 1 && (*l as usize) <= data.len())
            .ok_or_else(|| corrupt("bad PAX record length"))? as usize;
        let rec = &data[sp + 1..len];
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or_else(|| corrupt("bad PAX record"))?;
        let eq = rec
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| corrupt("bad PAX record"))?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Result<Vec<(Header, Vec<u8>)>, TarError> {
        let mut r = TarReader::new(bytes);
        let mut out = Vec::new();
        while let Some(h) = r.next_header()? {
            let mut d = Vec::new();
            r.data().read_to_end(&mut d)?;
            out.push((h, d));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes_long_names_and_pax_included() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("usr/share/{}/x", "d".repeat(300));
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o755);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        b.append_data(&mut h, "a/b", &b"hi"[..]).unwrap();
        b.append_pax_extensions([("path", &b"pax/name"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        b.append_data(&mut h, "short", &b"p"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "lnk", "t".repeat(200)).unwrap();
        let es = entries(&b.into_inner().unwrap()).unwrap();
        assert_eq!(es.len(), 4);
        assert_eq!(es[0].0.path, long.as_bytes());
        assert_eq!(es[0].0.mode, 0o755);
        assert_eq!(es[0].1, b"abc");
        assert_eq!(es[1].0.path, b"a/b");
        assert_eq!(es[2].0.path, b"pax/name");
        assert_eq!(es[2].1, b"p");
        assert_eq!(es[3].0.kind, Kind::Symlink);
        assert_eq!(es[3].0.link, "t".repeat(200).as_bytes());
    }

    /// A GNU long-name record of `len` bytes, unread past its header.
    pub fn long_name_header(len: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(len);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn oversized_long_names_and_pax_headers_fail_before_being_read() {
        // 1 GiB declared; only the header exists: refused before any read.
        let err = entries(&long_name_header(1 << 30)).unwrap_err();
        assert!(
            matches!(err, TarError::Limit(ref m) if m.contains("4096")),
            "{err}"
        );
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(MAX_PAX + 1);
        h.set_cksum();
        let err = entries(h.as_bytes()).unwrap_err();
        assert!(matches!(err, TarError::Limit(_)), "{err}");
    }

    #[test]
    fn truncated_and_bad_checksums_are_corrupt() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1000);
        b.append_data(&mut h, "f", &[1u8; 1000][..]).unwrap();
        let bytes = b.into_inner().unwrap();
        assert!(entries(&bytes[..700]).is_err());
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(matches!(entries(&bad), Err(TarError::Corrupt(_))));
    }

    #[test]
    fn pax_size_overrides_the_header_size() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"5"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_path("big").unwrap();
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let mut bytes = b.into_inner().unwrap();
        // The builder wrote no data: put five bytes (and padding) after the
        // header, then the end marker.
        let hdr_end = bytes.len() - 1024;
        bytes.truncate(hdr_end);
        bytes.extend_from_slice(b"12345");
        bytes.resize(hdr_end + 512, 0);
        bytes.resize(hdr_end + 512 + 1024, 0);
        let es = entries(&bytes).unwrap();
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].1, b"12345");
    }
}
