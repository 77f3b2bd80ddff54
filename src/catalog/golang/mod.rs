//! Go executables: the build information the Go linker embeds in every
//! module-aware binary (what `go version -m` prints): the toolchain, the
//! main module and every dependency module with its `=>` replacement.
//!
//! Binaries are found by content wherever they are installed: the layer
//! reader shows each file's head to [`GoCataloger::sniff`] (ELF executables
//! and shared objects with an exec bit), and [`GoCataloger::reduce`] cuts
//! the build info out of the binary at once, so that the squashed tree
//! holds a few hundred bytes per binary, not megabytes.
//!
//! Where the build info is (Go's `debug/buildinfo`): the `.go.buildinfo`
//! section; in a binary without section headers, a 16-byte-aligned
//! `\xff Go buildinf:` header at the start of the first writable,
//! non-executable `PT_LOAD` segment. Go 1.18+ stores the two strings
//! (version, module info) inline after the 32-byte header; older linkers
//! store pointers to Go string headers in the data segment, which are
//! followed here too.
//!
//! What is reported: every dependency, under its replacement when the
//! replacement is another module (`golang.org/x/net => example.com/fork`
//! is the fork's code), under the required module and version when the
//! replacement is a local directory (`./greeter (devel)` names nothing a
//! vulnerability database knows); the main module only when it has a
//! version (`go install mod@v1.2.3`), not `(devel)`; and the toolchain as
//! `stdlib` with the version without its `go` prefix (`1.19.8`), which is
//! how vulnerability databases name the standard library.

use object::{Object, ObjectSection, ObjectSegment, SegmentFlags};
use thiserror::Error;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt, is_elf_program};
use crate::image::fs::FileTree;

pub struct GoCataloger;

/// Go's build info header magic; a reduced file starts with it too.
const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
/// `flags` bit: the strings follow the header (Go 1.18+).
const FLAG_INLINE: u8 = 0x2;
const FLAG_BIG_ENDIAN: u8 = 0x1;
/// The build info header is this aligned when searched for in a segment.
const ALIGN: usize = 16;
/// How far into the data segment Go itself searches for the header.
const SEARCH_LEN: usize = 64 << 10;
/// Module info lists every dependency; a few thousand modules fit easily.
const MAX_STRING: u64 = 16 << 20;
/// A reduced file whose build info could not be read starts with this; the
/// reason follows. The catalog turns it into a warning.
const UNREADABLE: &[u8] = b"\0scangate golang: unreadable build info\n";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BuildInfoError {
    #[error("not a readable ELF file: {0}")]
    Elf(String),
    #[error("the build info is truncated")]
    Truncated,
    #[error("the build info has a pointer size of {0}")]
    PointerSize(u8),
    #[error("the build info points at {0:#x}, outside the file's segments")]
    BadAddress(u64),
    #[error("a build info string of {0} bytes is over the limit")]
    TooLong(u64),
}

impl From<object::Error> for BuildInfoError {
    fn from(e: object::Error) -> Self {
        BuildInfoError::Elf(e.to_string())
    }
}

impl Cataloger for GoCataloger {
    fn name(&self) -> &'static str {
        "golang"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn sniff(&self, _path: &str, mode: u32, head: &[u8]) -> bool {
        is_elf_program(mode, head)
    }

    fn claims(&self, _path: &str, data: &[u8]) -> bool {
        match object::File::parse(data) {
            Ok(file) => !matches!(locate(&file), Ok(None)),
            // Nobody can read it: say so once, here.
            Err(_) => true,
        }
    }

    fn reduce(&self, _path: &str, data: Vec<u8>) -> Vec<u8> {
        match extract(&data) {
            Ok(Some((version, modinfo))) => encode(&version, &modinfo),
            Ok(None) => Vec::new(),
            Err(e) => [UNREADABLE, e.to_string().as_bytes()].concat(),
        }
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warnings = WarningSink::new(&mut out.warnings, "golang");
        for (path, file) in &files.files {
            if let Some(reason) = file.data.strip_prefix(UNREADABLE) {
                warnings.push(format!(
                    "{path}: {}; its Go modules are not reported",
                    excerpt(&String::from_utf8_lossy(reason))
                ));
                continue;
            }
            if !file.data.starts_with(MAGIC) {
                continue;
            }
            let (version, modinfo) = match decode_inline(&file.data) {
                Ok((v, m)) => (String::from_utf8_lossy(v), String::from_utf8_lossy(m)),
                Err(e) => {
                    warnings.push(format!("{path}: {e}"));
                    continue;
                }
            };
            for (name, version) in packages(&version, &parse_modinfo(&modinfo)) {
                out.packages.push(Package::language(
                    Ecosystem::Golang,
                    name,
                    version,
                    path,
                    file.layer,
                ));
            }
        }
    }
}

/// The Go version and module info of an ELF binary; `None` when it is not
/// a Go binary (or one built without module support and no version).
pub fn extract(data: &[u8]) -> Result<Option<(String, String)>, BuildInfoError> {
    let file = object::File::parse(data)?;
    let Some(blob) = locate(&file)? else {
        return Ok(None);
    };
    if blob.len() < HEADER_LEN {
        return Err(BuildInfoError::Truncated);
    }
    let (version, modinfo) = if blob[15] & FLAG_INLINE != 0 {
        decode_inline(blob)?
    } else {
        decode_pointers(&file, blob)?
    };
    if version.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        String::from_utf8_lossy(version).into_owned(),
        String::from_utf8_lossy(strip_framing(modinfo)).into_owned(),
    )))
}

/// The build info header and what follows it, if the binary has one.
fn locate<'a>(file: &object::File<'a>) -> Result<Option<&'a [u8]>, BuildInfoError> {
    if let Some(section) = file.section_by_name(".go.buildinfo") {
        let blob = section.data()?;
        return Ok(blob.starts_with(MAGIC).then_some(blob));
    }
    let Some(segment) = file.segments().find(|s| {
        matches!(s.flags(), SegmentFlags::Elf { p_flags }
            if p_flags & (object::elf::PF_W | object::elf::PF_X) == object::elf::PF_W)
    }) else {
        return Ok(None);
    };
    let data = segment.data()?;
    let data = &data[..data.len().min(SEARCH_LEN)];
    Ok((0..data.len())
        .step_by(ALIGN)
        .find(|&i| data[i..].starts_with(MAGIC))
        .map(|i| &data[i..]))
}

/// The reduced form: Go's own inline layout (header, then the two strings
/// length-prefixed), with the module info already unframed.
fn encode(version: &str, modinfo: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + version.len() + modinfo.len() + 20);
    out.extend_from_slice(MAGIC);
    out.push(0);
    out.push(FLAG_INLINE);
    out.resize(HEADER_LEN, 0);
    for s in [version, modinfo] {
        let mut n = s.len() as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// The two length-prefixed strings after the header (Go 1.18+ layout).
fn decode_inline(blob: &[u8]) -> Result<(&[u8], &[u8]), BuildInfoError> {
    let rest = blob.get(HEADER_LEN..).ok_or(BuildInfoError::Truncated)?;
    let (version, rest) = read_varint_string(rest)?;
    let (modinfo, _) = read_varint_string(rest)?;
    Ok((version, modinfo))
}

fn read_varint_string(data: &[u8]) -> Result<(&[u8], &[u8]), BuildInfoError> {
    let mut len: u64 = 0;
    let mut used = 0;
    loop {
        let b = *data.get(used).ok_or(BuildInfoError::Truncated)?;
        if used == 9 && b > 1 {
            return Err(BuildInfoError::TooLong(u64::MAX));
        }
        len |= u64::from(b & 0x7f) << (7 * used);
        used += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if len > MAX_STRING {
        return Err(BuildInfoError::TooLong(len));
    }
    let rest = &data[used..];
    let s = rest.get(..len as usize).ok_or(BuildInfoError::Truncated)?;
    Ok((s, &rest[len as usize..]))
}

/// Go 1.17 and older: the header holds the addresses of two Go string
/// headers (`runtime.buildVersion`, `runtime.modinfo`), each a data
/// pointer and a length of the header's pointer size and byte order.
fn decode_pointers<'a>(
    file: &object::File<'a>,
    blob: &[u8],
) -> Result<(&'a [u8], &'a [u8]), BuildInfoError> {
    let ptr_size = blob[14];
    let big_endian = blob[15] & FLAG_BIG_ENDIAN != 0;
    let read_ptr = |b: &[u8]| -> Result<u64, BuildInfoError> {
        match (ptr_size, big_endian) {
            (4, false) => Ok(u64::from(u32::from_le_bytes(fixed(b)?))),
            (4, true) => Ok(u64::from(u32::from_be_bytes(fixed(b)?))),
            (8, false) => Ok(u64::from_le_bytes(fixed(b)?)),
            (8, true) => Ok(u64::from_be_bytes(fixed(b)?)),
            _ => Err(BuildInfoError::PointerSize(ptr_size)),
        }
    };
    let n = usize::from(ptr_size);
    let read_string = |header_addr: u64| -> Result<&'a [u8], BuildInfoError> {
        let header = read_at(file, header_addr, 2 * n as u64)?;
        let data_addr = read_ptr(&header[..n])?;
        let len = read_ptr(&header[n..])?;
        if len > MAX_STRING {
            return Err(BuildInfoError::TooLong(len));
        }
        read_at(file, data_addr, len)
    };
    let version_addr = read_ptr(blob.get(16..).ok_or(BuildInfoError::Truncated)?)?;
    let modinfo_addr = read_ptr(blob.get(16 + n..).ok_or(BuildInfoError::Truncated)?)?;
    Ok((read_string(version_addr)?, read_string(modinfo_addr)?))
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N], BuildInfoError> {
    b.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(BuildInfoError::Truncated)
}

/// `size` bytes at virtual address `addr`, from the segment holding them.
fn read_at<'a>(file: &object::File<'a>, addr: u64, size: u64) -> Result<&'a [u8], BuildInfoError> {
    if size == 0 {
        return Ok(&[]);
    }
    for segment in file.segments() {
        if let Some(d) = segment.data_range(addr, size)? {
            return Ok(d);
        }
    }
    Err(BuildInfoError::BadAddress(addr))
}

/// `cmd/go` frames the module info with two 16-byte sentinels (not text);
/// without them (a GOPATH build) there is no module info.
fn strip_framing(modinfo: &[u8]) -> &[u8] {
    let n = modinfo.len();
    if n >= 33 && modinfo[n - 17] == b'\n' {
        &modinfo[16..n - 16]
    } else {
        &[]
    }
}

/// One `mod`/`dep` line, with its `=>` replacement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub version: String,
    pub replace: Option<Box<Module>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub main: Option<Module>,
    pub deps: Vec<Module>,
}

/// Parses `cmd/go`'s module info text (`runtime/debug.BuildInfo.String`):
/// tab-separated `path`, `mod`, `dep`, `=>` and `build` lines.
pub fn parse_modinfo(text: &str) -> ModInfo {
    let mut info = ModInfo::default();
    // Whether the last `mod`/`dep` line was the main module, for `=>`.
    let mut last_is_main = false;
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(kind), Some(path)) = (fields.next(), fields.next()) else {
            continue;
        };
        let module = || Module {
            path: path.to_owned(),
            version: fields.clone().next().unwrap_or_default().to_owned(),
            replace: None,
        };
        match kind {
            "mod" => {
                info.main = Some(module());
                last_is_main = true;
            }
            "dep" => {
                info.deps.push(module());
                last_is_main = false;
            }
            "=>" => {
                let target = if last_is_main {
                    info.main.as_mut()
                } else {
                    info.deps.last_mut()
                };
                if let Some(m) = target {
                    m.replace = Some(Box::new(module()));
                }
            }
            _ => {}
        }
    }
    info
}

/// (module path, version) pairs to report; see the module docs.
fn packages(go_version: &str, info: &ModInfo) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // `go1.22.1`, `go1.21.0 X:boringcrypto`, `devel go1.23-abc…`: only a
    // released toolchain names a standard library version.
    if let Some(v) = go_version
        .split_whitespace()
        .next()
        .and_then(|v| v.strip_prefix("go"))
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    {
        out.push(("stdlib".to_owned(), v.to_owned()));
    }
    if let Some(main) = &info.main {
        let m = effective(main);
        if !m.version.is_empty() && m.version != "(devel)" {
            out.push((m.path.clone(), m.version.clone()));
        }
    }
    for dep in &info.deps {
        let m = effective(dep);
        if !m.path.is_empty() && !m.version.is_empty() {
            out.push((m.path.clone(), m.version.clone()));
        }
    }
    out
}

/// The module whose code is in the binary: the replacement, unless that is
/// a local directory.
fn effective(m: &Module) -> &Module {
    match &m.replace {
        Some(r) if !r.path.starts_with(['.', '/']) => r,
        _ => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SNIFF_LEN;
    use crate::image::fs::FileTree;
    use std::io::Read;

    fn hello_go() -> Vec<u8> {
        let gz: &[u8] = include_bytes!("fixtures/hello-go.gz");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn catalog(files: &[(&str, &[u8])]) -> Catalog {
        let files: Vec<_> = files.iter().map(|(p, d)| (*p, *d, 1)).collect();
        let mut out = Catalog::default();
        GoCataloger.catalog(&FileTree::from_files(&files), None, &mut out);
        out
    }

    fn pairs(c: &Catalog) -> Vec<(&str, &str)> {
        c.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect()
    }

    const EXPECTED: [(&str, &str); 4] = [
        ("stdlib", "1.19.8"),
        ("example.com/lib", "v1.4.0"),
        // replaced by ./local: the required module stays
        ("example.com/local", "v1.0.0"),
        // replaced by another module: that module's code is in the binary
        ("example.com/new", "v0.2.0"),
    ];

    #[test]
    fn real_binary_is_sniffed_reduced_and_cataloged() {
        let bin = hello_go();
        assert!(GoCataloger.sniff("app/hello", 0o755, &bin[..SNIFF_LEN]));
        assert!(!GoCataloger.sniff("app/hello", 0o644, &bin[..SNIFF_LEN]));
        let reduced = GoCataloger.reduce("app/hello", bin.clone());
        assert!(reduced.len() < 1024, "{}", reduced.len());
        let c = catalog(&[("app/hello", &reduced)]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(pairs(&c), EXPECTED);
        assert!(
            c.packages
                .iter()
                .all(|p| p.location == "app/hello" && p.layer == 1)
        );

        let (version, modinfo) = extract(&bin).unwrap().unwrap();
        assert_eq!(version, "go1.19.8");
        let info = parse_modinfo(&modinfo);
        let main = info.main.unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str()),
            ("example.com/fixture", "(devel)")
        );
        let local = info.deps[1].replace.as_deref().unwrap();
        assert_eq!(
            (local.path.as_str(), local.version.as_str()),
            ("./local", "(devel)")
        );
    }

    #[test]
    fn binary_without_section_headers_is_found_in_its_data_segment() {
        // What sstrip or a packer leaves: e_shoff, e_shnum, e_shstrndx zeroed.
        let mut bin = hello_go();
        bin[0x28..0x30].fill(0);
        bin[0x3c..0x40].fill(0);
        let reduced = GoCataloger.reduce("x", bin);
        assert_eq!(pairs(&catalog(&[("x", &reduced)])), EXPECTED);
    }

    #[test]
    fn pointer_format_of_old_toolchains_is_followed() {
        // Rewrite the fixture's header the way Go ≤1.17 wrote it: pointers
        // to string headers, placed here in the (writable) build info
        // section itself, whose address and file offset readelf shows.
        let mut bin = hello_go();
        let file = object::File::parse(&bin[..]).unwrap();
        let sec = file.section_by_name(".go.buildinfo").unwrap();
        let (addr, off) = (sec.address(), sec.file_range().unwrap().0 as usize);
        let (version, modinfo) = decode_inline(&bin[off..]).unwrap();
        let (version, framed) = (version.to_vec(), modinfo.to_vec());
        // String headers at +0x20, the strings from +0x40 (running on into
        // the next section of the same writable segment).
        let vs = off + 0x40;
        let ms = vs + version.len();
        let end = ms + framed.len();
        bin[vs..ms].copy_from_slice(&version);
        bin[ms..end].copy_from_slice(&framed);
        let at = |o: usize| addr + (o - off) as u64;
        let put =
            |bin: &mut [u8], o: usize, v: u64| bin[o..o + 8].copy_from_slice(&v.to_le_bytes());
        put(&mut bin, off + 0x20, at(vs));
        put(&mut bin, off + 0x28, version.len() as u64);
        put(&mut bin, off + 0x30, at(ms));
        put(&mut bin, off + 0x38, framed.len() as u64);
        put(&mut bin, off + 16, at(off + 0x20));
        put(&mut bin, off + 24, at(off + 0x30));
        bin[off + 14] = 8;
        bin[off + 15] = 0;
        let reduced = GoCataloger.reduce("x", bin.clone());
        assert_eq!(pairs(&catalog(&[("x", &reduced)])), EXPECTED);

        // A pointer outside every segment is a warning, not a panic.
        put(&mut bin, off + 16, 0xdead_0000_0000);
        let reduced = GoCataloger.reduce("x", bin);
        let c = catalog(&[("x", &reduced)]);
        assert!(c.packages.is_empty());
        assert!(
            c.warnings[0].contains("outside the file's segments"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn other_elf_files_are_dropped_and_damaged_ones_warned_about() {
        let rust: &[u8] = include_bytes!("../rust/fixtures/hello-rust.gz");
        let mut rust_bin = Vec::new();
        flate2::read::GzDecoder::new(rust)
            .read_to_end(&mut rust_bin)
            .unwrap();
        assert!(GoCataloger.sniff("r", 0o755, &rust_bin[..SNIFF_LEN]));
        assert!(!GoCataloger.claims("r", &rust_bin));
        assert!(GoCataloger.reduce("r", rust_bin).is_empty());
        assert!(GoCataloger.claims("g", &hello_go()));
        assert!(GoCataloger.claims("t", &hello_go()[..100]));

        // Truncated anywhere: a warning (or nothing), never a panic.
        let bin = hello_go();
        for cut in [20, 64, 4096, bin.len() / 2, bin.len() - 1] {
            let reduced = GoCataloger.reduce("t", bin[..cut].to_vec());
            let c = catalog(&[("t", &reduced)]);
            assert!(c.packages.is_empty() || c.packages.len() == 4, "{cut}");
        }
        let c = catalog(&[("t", &GoCataloger.reduce("t", bin[..20].to_vec()))]);
        assert!(
            c.warnings[0].starts_with("golang: t: not a readable ELF file"),
            "{:?}",
            c.warnings
        );

        // A damaged build info blob in the reduced form.
        let mut blob = encode("go1.21.0", "path\tx\n");
        blob.truncate(HEADER_LEN + 4);
        let c = catalog(&[("b", &blob)]);
        assert_eq!(c.warnings, ["golang: b: the build info is truncated"]);
        let mut blob = MAGIC.to_vec();
        blob.resize(HEADER_LEN, 0);
        blob.extend_from_slice(&[0xff; 12]);
        let c = catalog(&[("b", &blob)]);
        assert!(c.warnings[0].contains("over the limit"), "{:?}", c.warnings);
    }

    #[test]
    fn modinfo_lines_and_version_rules() {
        let text = "path\texample.com/cmd/tool\n\
                    mod\texample.com/cmd\tv1.2.3\th1:abc=\n\
                    dep\tgolang.org/x/net\tv0.7.0\th1:x=\n\
                    =>\tgithub.com/fork/net\tv0.7.1-fork\th1:y=\n\
                    dep\tgithub.com/google/uuid\tv1.3.0\n\
                    build\tGOOS=linux\n";
        let info = parse_modinfo(text);
        assert_eq!(
            packages("go1.21.0 X:boringcrypto", &info),
            [
                ("stdlib".to_owned(), "1.21.0".to_owned()),
                ("example.com/cmd".to_owned(), "v1.2.3".to_owned()),
                ("github.com/fork/net".to_owned(), "v0.7.1-fork".to_owned()),
                ("github.com/google/uuid".to_owned(), "v1.3.0".to_owned()),
            ]
        );
        // A development toolchain names no stdlib version.
        assert_eq!(packages("devel go1.23-abc", &ModInfo::default()), []);
        let blob = encode("go1.19.8", text);
        let (v, m) = decode_inline(&blob).unwrap();
        assert_eq!((v, m), (&b"go1.19.8"[..], text.as_bytes()));
    }
}
