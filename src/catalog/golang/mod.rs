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
//! vulnerability database knows); the main module when a version can be
//! told (below); and the toolchain as `stdlib` with the version without its
//! `go` prefix (`1.19.8`), which is how vulnerability databases name the
//! standard library.
//!
//! The main module's version. `go install mod@v1.2.3` records it; a binary
//! built from a checkout says `(devel)`, and then, in this order (the rule
//! syft's `findMainModuleVersion` and trivy's `ParseLDFlags` share, made
//! stricter where they guess):
//! 1. a version stamped at link time: an `-X importpath.name=value` in the
//!    recorded `-ldflags` build setting, where `name` is `version` or ends
//!    in `version` (any case: `Version`, `gitVersion`, `buildVersion`) or
//!    is `ver`, `importpath` is `main` or the main module's own path or a
//!    package below it (syft's restriction: `k8s.io/component-base/version`
//!    stamps another module's variable), and `value`, after any `refs/tags/`
//!    style prefix, is a semantic version (`1.2.3`, `v1.2.3-rc.1+meta`).
//!    It is reported with a `v` prefix, as Go module versions are. Several
//!    different stamped versions: those in `main` win; still several, none
//!    is reported (trivy does the same rather than pick one). Not matched:
//!    syft's `...tag=` names (image tags as often as versions) and its scan
//!    of the whole binary for version-like strings (false positives, and the
//!    binary is reduced to its build info as it is read). Go records
//!    `-ldflags` only for builds without `-trimpath` (go.dev/issue/52372):
//!    a stamped `-trimpath` build stays unversioned here, as in trivy.
//! 2. else the VCS stamp (`-buildvcs`, the default in a git checkout since
//!    Go 1.18): `vcs.revision` and `vcs.time` make the pseudo-version Go
//!    itself would give that commit with no tag, `v0.0.0-YYYYMMDDHHMMSS-`
//!    and the revision's first 12 hex digits (syft's rule;
//!    go.dev/ref/mod#pseudo-versions). A revision without a parsable time
//!    gives nothing (syft would print a zero date), and neither does a
//!    build from a modified tree (`vcs.modified=true`): its code is not
//!    that commit's, so the pseudo-version would name code that never
//!    existed there (syft ignores the flag; Go 1.24, which stamps the
//!    version itself, marks such builds `+dirty`, and a version it stamped
//!    is taken as it is, by the first rule of all).
//! 3. else the main module is not reported: `(devel)` matches no advisory.

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
            if crate::cancel::is_cancelled() {
                return;
            }
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
    /// `build` lines, `key=value` with the value unquoted, in order.
    pub settings: Vec<(String, String)>,
}

impl ModInfo {
    fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
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
            "build" => {
                // The setting is the rest of the line: a value may hold tabs.
                let rest = line.split_once('\t').map_or("", |(_, r)| r);
                if let Some((k, v)) = rest.split_once('=') {
                    info.settings.push((k.to_owned(), unquote(v)));
                }
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
        if let Some(v) = main_version(m, info) {
            out.push((m.path.clone(), v));
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

/// `cmd/go` quotes a setting's value (Go syntax) when it holds spaces,
/// quotes or control characters: `-ldflags="-s -w -X main.version=1.0"`.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

/// The main module's version by the rule in the module docs.
fn main_version(main: &Module, info: &ModInfo) -> Option<String> {
    if !main.version.is_empty() && main.version != "(devel)" {
        return Some(main.version.clone());
    }
    if let Some(v) = info
        .setting("-ldflags")
        .and_then(|f| ldflags_version(f, &main.path))
    {
        return Some(v);
    }
    if info.setting("vcs.modified") == Some("true") {
        return None;
    }
    vcs_pseudo_version(info.setting("vcs.revision")?, info.setting("vcs.time")?)
}

/// The version stamped with `-X` into `main` or the main module's packages.
fn ldflags_version(ldflags: &str, module: &str) -> Option<String> {
    let mut in_main = Vec::new();
    let mut in_module = Vec::new();
    for (symbol, value) in x_flags(ldflags) {
        let Some((pkg, name)) = symbol.rsplit_once('.') else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if !(name.ends_with("version") || name == "ver") {
            continue;
        }
        let Some(version) = semver(value) else {
            continue;
        };
        let own = !module.is_empty()
            && (pkg == module || pkg.strip_prefix(module).is_some_and(|r| r.starts_with('/')));
        let list = match pkg {
            "main" => &mut in_main,
            _ if own => &mut in_module,
            _ => continue,
        };
        if !list.contains(&version) {
            list.push(version);
        }
    }
    [in_main, in_module]
        .into_iter()
        .find(|l| !l.is_empty())
        .filter(|l| l.len() == 1)
        .and_then(|mut l| l.pop())
}

/// `(symbol, value)` of each `-X symbol=value` (also `-X=…`, `--X`, quoted
/// with `'` or `"` as a shell leaves them in the recorded flags).
fn x_flags(ldflags: &str) -> Vec<(&str, &str)> {
    fn trim(s: &str) -> &str {
        s.trim_matches(|c| c == '\'' || c == '"')
    }
    let mut out = Vec::new();
    let mut words = ldflags.split_whitespace();
    while let Some(w) = words.next() {
        let w = trim(w);
        let arg = match w.trim_start_matches('-') {
            "X" if w.starts_with('-') => words.next().map(trim),
            x if w.starts_with('-') && x.starts_with("X=") => Some(trim(&x[2..])),
            _ => None,
        };
        if let Some((sym, value)) = arg.and_then(|a| a.split_once('=')) {
            out.push((sym, value));
        }
    }
    out
}

/// `value` as a Go module version (`v` prefixed) when, after any
/// `refs/tags/`-like prefix, it is `MAJOR.MINOR.PATCH` with an optional
/// pre-release and build part.
fn semver(value: &str) -> Option<String> {
    let v = value.rsplit('/').next()?;
    let v = v.strip_prefix('v').unwrap_or(v);
    let core_end = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(core_end);
    let parts: Vec<&str> = core.split('.').collect();
    let numeric =
        |p: &&str| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit());
    let rest_ok = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'));
    (parts.len() == 3 && parts.iter().all(numeric) && rest_ok && v.len() <= 128)
        .then(|| format!("v{v}"))
}

/// Go's pseudo-version for an untagged commit: `v0.0.0-` UTC commit time
/// as `YYYYMMDDHHMMSS`, `-`, the revision's first 12 hex digits.
fn vcs_pseudo_version(revision: &str, time: &str) -> Option<String> {
    let rev = revision.get(..12)?;
    if !revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // `cmd/go` writes the time as RFC 3339 in UTC: 2024-03-05T10:20:30Z.
    let t = time.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let fits = t.len() >= shape.len()
        && shape.iter().zip(t).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            _ => s == c,
        })
        && time.ends_with('Z');
    if !fits {
        return None;
    }
    let digits: String = time[..shape.len()]
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(format!("v0.0.0-{digits}-{}", rev.to_ascii_lowercase()))
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
    use std::io::Read;

    use crate::catalog::testkit::{gunzip, pairs, run_in_layer};

    fn hello_go() -> Vec<u8> {
        gunzip(include_bytes!("fixtures/hello-go.gz"))
    }

    fn catalog(files: &[(&str, &[u8])]) -> Catalog {
        run_in_layer(&GoCataloger, files, 1)
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

    #[test]
    fn main_module_stamped_with_ldflags_x_gets_that_version() {
        // `go version -m`: mod example.com/stamped (devel);
        // build -ldflags="-s -w -buildid= -X main.version=v1.2.3"
        let bin = gunzip(include_bytes!("fixtures/stamped-go.gz"));
        let reduced = GoCataloger.reduce("usr/local/bin/stamped", bin);
        let c = catalog(&[("usr/local/bin/stamped", &reduced)]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            pairs(&c),
            [("stdlib", "1.19.8"), ("example.com/stamped", "v1.2.3")]
        );
    }

    #[test]
    fn main_module_with_vcs_stamp_gets_the_pseudo_version() {
        // `go version -m`: mod example.com/vcsstamped (devel);
        // vcs.revision=9bb3c423afb58e74e800a4a1a47f4bda105b3fa9,
        // vcs.time=2024-03-05T10:20:30Z
        let bin = gunzip(include_bytes!("fixtures/vcs-go.gz"));
        let reduced = GoCataloger.reduce("app/vcs", bin);
        let c = catalog(&[("app/vcs", &reduced)]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            pairs(&c),
            [
                ("stdlib", "1.19.8"),
                (
                    "example.com/vcsstamped",
                    "v0.0.0-20240305102030-9bb3c423afb5"
                )
            ]
        );
    }

    fn main_of(build: &str) -> Option<String> {
        let text =
            format!("path\texample.com/tool/cmd/tool\nmod\texample.com/tool\t(devel)\t\n{build}");
        let info = parse_modinfo(&text);
        main_version(info.main.as_ref().unwrap(), &info)
    }

    #[test]
    fn ldflags_version_forms() {
        let ok = [
            (r#"build	-ldflags="-X main.version=1.2.3""#, "v1.2.3"),
            (
                r#"build	-ldflags="-s -w -X=main.Version=v2.0.1-rc.1""#,
                "v2.0.1-rc.1",
            ),
            (
                r#"build	-ldflags="-X 'main.gitVersion=1.0.0+meta'""#,
                "v1.0.0+meta",
            ),
            (
                r#"build	-ldflags="-X example.com/tool/internal/build.Version=refs/tags/v4.5.6""#,
                "v4.5.6",
            ),
            // main wins over the module's own packages
            (
                r#"build	-ldflags="-X example.com/tool/v.ver=9.9.9 -X main.VERSION=1.1.1""#,
                "v1.1.1",
            ),
            // stamped version beats the VCS pseudo-version
            (
                "build\t-ldflags=\"-X main.version=3.0.0\"\nbuild\tvcs.revision=0123456789abcdef\nbuild\tvcs.time=2024-01-02T03:04:05Z\n",
                "v3.0.0",
            ),
            (
                "build\tvcs.revision=0123456789ABCDEF0123\nbuild\tvcs.time=2024-01-02T03:04:05.123Z\nbuild\tvcs.modified=false\n",
                "v0.0.0-20240102030405-0123456789ab",
            ),
        ];
        for (build, want) in ok {
            assert_eq!(main_of(build).as_deref(), Some(want), "{build}");
        }
        let none = [
            // another module's variable
            r#"build	-ldflags="-X k8s.io/component-base/version.gitVersion=v1.28.0""#,
            // a look-alike path that is not below the main module
            r#"build	-ldflags="-X example.com/toolbox.version=1.0.0""#,
            // not a version variable, not a version value
            r#"build	-ldflags="-X main.server=1.2.3 -X main.version=dev -X main.goVersion=go1.21""#,
            // two different versions in main: none is chosen
            r#"build	-ldflags="-X main.version=1.0.0 -X main.appVersion=2.0.0""#,
            // -X without an argument, bare words
            r#"build	-ldflags="-s -w -X""#,
            // a revision without a usable time, a short or non-hex one
            "build\tvcs.revision=0123456789abcdef\n",
            "build\tvcs.revision=0123456789abcdef\nbuild\tvcs.time=yesterday\n",
            "build\tvcs.revision=0123\nbuild\tvcs.time=2024-01-02T03:04:05Z\n",
            // a modified tree is not the commit
            "build\tvcs.revision=0123456789abcdef\nbuild\tvcs.time=2024-01-02T03:04:05Z\nbuild\tvcs.modified=true\n",
            "build\tvcs.revision=xyz3456789abcdef\nbuild\tvcs.time=2024-01-02T03:04:05Z\n",
            "",
        ];
        for build in none {
            assert_eq!(main_of(build), None, "{build}");
        }
        // A released main module keeps its own version.
        let info = parse_modinfo(
            "mod\texample.com/tool\tv0.9.0\th1:x=\nbuild\t-ldflags=\"-X main.version=1.0.0\"\n",
        );
        assert_eq!(
            main_version(info.main.as_ref().unwrap(), &info).as_deref(),
            Some("v0.9.0")
        );
    }
}
