//! Python distributions: the installed core metadata `importlib.metadata`
//! and pip read, in these forms:
//!
//! - `NAME-VER.dist-info/METADATA` (wheels, modern pip), **anywhere**: an
//!   installer is the only thing that makes a `.dist-info` directory, and
//!   installed code is not always in `site-packages` (`pip install --target
//!   /app/vendor`, Lambda's `/opt/python`, `PYTHONPATH` application folders).
//!   A `METADATA` in any other directory is not a distribution;
//! - `NAME-VER.egg-info/PKG-INFO` (setuptools, directory form) and
//!   `NAME-VER[-pyX.Y].egg-info` as a file itself (distutils, e.g. Debian's
//!   `python3-*` packages), only in a `site-packages` or `dist-packages`
//!   directory: elsewhere an `.egg-info` is as often a source tree's build
//!   by-product (`setup.py egg_info`, an unpacked sdist) as an installation;
//! - eggs, anywhere (only setuptools makes them, and `easy_install` or a
//!   `PYTHONPATH` entry puts them where it likes): an unzipped
//!   `X.egg/EGG-INFO/PKG-INFO`, and a zipped `X.egg` file, whose
//!   `EGG-INFO/PKG-INFO` is read right as the layer is read (bounded: entry
//!   count, inflated bytes), the egg itself not kept.
//!
//! `.dist-info`, `.egg-info`, `.egg` and `EGG-INFO` match in any case, as
//! `importlib.metadata` matches them (it lower-cases directory names).
//!
//! All are RFC 822 style headers (core metadata); we read `Name` and
//! `Version` from the header block and stop at the first empty line (the
//! long description follows it). A `.dist-info` without `METADATA` is not an
//! installed distribution, and uninstalling removes the directory, so
//! whiteouts take care of `pip uninstall` in a later layer.

use std::io::Read;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink};
use crate::catalog::excerpt;
use crate::image::fs::FileTree;

/// Longest value kept for a field we read; longer is damage, not data.
const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonError {
    #[error("no Name header")]
    MissingName,
    #[error("no Version header")]
    MissingVersion,
    #[error("line {line}: not a header: {text:?}")]
    NotAHeader { line: usize, text: String },
    #[error("line {line}: {field} value is {len} bytes long, more than {MAX_VALUE}")]
    TooLong {
        line: usize,
        field: &'static str,
        len: usize,
    },
    #[error("line {line}: invalid {field} {value:?}")]
    Invalid {
        line: usize,
        field: &'static str,
        value: String,
    },
}

pub struct PythonCataloger;

/// Which metadata file `path` is, if any (no allocation: this runs for every
/// tar entry). See the module docs for the rules.
fn kind(path: &str) -> Option<Kind> {
    let (parent, base) = path.rsplit_once('/').unwrap_or(("", path));
    let (grandparent, dir) = parent.rsplit_once('/').unwrap_or(("", parent));
    match base {
        "METADATA" if named_with(dir, ".dist-info") => Some(Kind::Metadata),
        "PKG-INFO" if named_with(dir, ".egg-info") && in_packages_dir(grandparent) => {
            Some(Kind::Metadata)
        }
        "PKG-INFO"
            if dir.eq_ignore_ascii_case("EGG-INFO")
                && named_with(
                    grandparent.rsplit('/').next().unwrap_or(grandparent),
                    ".egg",
                ) =>
        {
            Some(Kind::Metadata)
        }
        _ if named_with(base, ".egg-info") && in_packages_dir(parent) => Some(Kind::Metadata),
        _ if named_with(base, ".egg") => Some(Kind::ZippedEgg),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A core metadata file.
    Metadata,
    /// A zipped egg (reduced to its `EGG-INFO/PKG-INFO`).
    ZippedEgg,
}

/// `name` is `X` + `ext` (any case), `X` not empty.
fn named_with(name: &str, ext: &str) -> bool {
    name.len() > ext.len()
        && name.is_char_boundary(name.len() - ext.len())
        && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext)
}

/// `dir`'s last component is `site-packages` or `dist-packages`.
fn in_packages_dir(dir: &str) -> bool {
    let last = dir.rsplit('/').next().unwrap_or(dir);
    last == "site-packages" || last == "dist-packages"
}

/// A reduced zipped egg starts with this, then its `PKG-INFO`.
const EGG_REDUCED: &[u8] = b"\0scangate python egg\n";
/// A zipped egg whose `PKG-INFO` could not be read: this, then the reason.
const EGG_UNREADABLE: &[u8] = b"\0scangate python egg: unreadable\n";
/// Central directory entries read from a zipped egg; eggs hold a package's
/// modules, a few thousand at most.
const MAX_EGG_ENTRIES: usize = 65_536;
/// Inflated bytes read of `EGG-INFO/PKG-INFO`: the headers we want come
/// first; a longer file is cut, not a reason to inflate a bomb.
const MAX_PKG_INFO: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EggError {
    #[error("not a zip archive: {0}")]
    NotZip(String),
    #[error("{0} zip entries, more than {MAX_EGG_ENTRIES}")]
    TooManyEntries(usize),
    #[error("no EGG-INFO/PKG-INFO")]
    NoPkgInfo,
    #[error("EGG-INFO/PKG-INFO: {0}")]
    Read(String),
}

/// The `EGG-INFO/PKG-INFO` of a zipped egg, at most [`MAX_PKG_INFO`] bytes.
pub fn egg_pkg_info(data: &[u8]) -> Result<Vec<u8>, EggError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data))
        .map_err(|e| EggError::NotZip(excerpt(&e.to_string())))?;
    if zip.len() > MAX_EGG_ENTRIES {
        return Err(EggError::TooManyEntries(zip.len()));
    }
    let entry = zip
        .by_name("EGG-INFO/PKG-INFO")
        .map_err(|_| EggError::NoPkgInfo)?;
    let mut out = Vec::new();
    entry
        .take(MAX_PKG_INFO)
        .read_to_end(&mut out)
        .map_err(|e| EggError::Read(excerpt(&e.to_string())))?;
    Ok(out)
}

/// What [`PythonCataloger::reduce`] keeps of a zipped egg.
fn reduce_egg(data: &[u8]) -> Vec<u8> {
    match egg_pkg_info(data) {
        Ok(pkg_info) => [EGG_REDUCED, &pkg_info].concat(),
        Err(e) => [EGG_UNREADABLE, e.to_string().as_bytes()].concat(),
    }
}

/// The metadata of a kept file: an egg's reduced form, or an egg not
/// reduced (kept whole because another cataloger wanted it too).
fn metadata_of(kind: Kind, data: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    if kind == Kind::Metadata {
        return Ok(data.into());
    }
    if let Some(m) = data.strip_prefix(EGG_REDUCED) {
        return Ok(m.into());
    }
    if let Some(reason) = data.strip_prefix(EGG_UNREADABLE) {
        return Err(String::from_utf8_lossy(reason).into_owned());
    }
    egg_pkg_info(data)
        .map(Into::into)
        .map_err(|e| e.to_string())
}

impl Cataloger for PythonCataloger {
    fn name(&self) -> &'static str {
        "python"
    }

    fn wants(&self, path: &str) -> bool {
        kind(path).is_some()
    }

    fn reduce(&self, path: &str, data: Vec<u8>) -> Vec<u8> {
        match kind(path) {
            Some(Kind::ZippedEgg) => reduce_egg(&data),
            _ => data,
        }
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        // Files with problems; past 20 they are only counted.
        let mut damaged = 0usize;
        for (path, entry) in &files.files {
            let Some(kind) = kind(path) else {
                continue;
            };
            if crate::cancel::is_cancelled() {
                return;
            }
            let parsed =
                metadata_of(kind, &entry.data).and_then(|m| parse(&m).map_err(|e| e.to_string()));
            match parsed {
                Ok((d, problems)) => {
                    if !problems.is_empty() {
                        damaged += 1;
                    }
                    if damaged <= 20 {
                        let mut w = WarningSink::new(&mut out.warnings, format!("python /{path}"));
                        for e in problems {
                            w.push(e);
                        }
                    }
                    out.packages.push(Package::language(
                        Ecosystem::Pypi,
                        d.name,
                        d.version,
                        path,
                        entry.layer,
                    ));
                }
                Err(e) => {
                    damaged += 1;
                    if damaged <= 20 {
                        out.warnings.push(format!("python /{path}: {e}"));
                    }
                }
            }
        }
        if damaged > 20 {
            out.warnings.push(format!(
                "python: {} more damaged metadata files not shown",
                damaged - 20
            ));
        }
    }
}

/// A distribution as its metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// As written (`Flask`, `typing_extensions`); see [`normalize_name`].
    pub name: String,
    pub version: String,
}

/// Reads `Name` and `Version` from core metadata. Returns the distribution
/// and any non-fatal problems, or why there is none.
pub fn parse(data: &[u8]) -> Result<(Distribution, Vec<PythonError>), PythonError> {
    let mut problems = Vec::new();
    let mut name: Option<String> = None;
    let mut version: Option<String> = None;
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // The header block ends at the first empty line.
        if raw.is_empty() {
            break;
        }
        // Continuation of a folded header (Description, License …).
        if raw[0] == b' ' || raw[0] == b'\t' {
            continue;
        }
        let Some(colon) = raw.iter().position(|&b| b == b':') else {
            problems.push(PythonError::NotAHeader {
                line,
                text: excerpt(&String::from_utf8_lossy(&raw[..raw.len().min(200)])),
            });
            // Garbage rather than metadata: stop looking.
            if problems.len() >= 20 {
                break;
            }
            continue;
        };
        let key = &raw[..colon];
        let (field, slot) = if key.eq_ignore_ascii_case(b"name") {
            ("Name", &mut name)
        } else if key.eq_ignore_ascii_case(b"version") {
            ("Version", &mut version)
        } else {
            continue;
        };
        let value = String::from_utf8_lossy(&raw[colon + 1..]);
        let value = value.trim();
        if value.len() > MAX_VALUE {
            problems.push(PythonError::TooLong {
                line,
                field,
                len: value.len(),
            });
            continue;
        }
        let ok = match field {
            "Name" => valid_name(value),
            _ => valid_version(value),
        };
        if !ok {
            problems.push(PythonError::Invalid {
                line,
                field,
                value: excerpt(value),
            });
            continue;
        }
        if slot.is_none() {
            *slot = Some(value.to_owned());
        }
    }
    let first_problem = |problems: &mut Vec<PythonError>, e| {
        if problems.is_empty() {
            e
        } else {
            problems.remove(0)
        }
    };
    let Some(name) = name else {
        return Err(first_problem(&mut problems, PythonError::MissingName));
    };
    let Some(version) = version else {
        return Err(first_problem(&mut problems, PythonError::MissingVersion));
    };
    Ok((Distribution { name, version }, problems))
}

/// PEP 508 names: ASCII letters, digits, `-_.`, starting and ending
/// alphanumeric.
fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// Versions only have to survive being put into a purl: printable, no blanks.
fn valid_version(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic())
}

/// PEP 503: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &[u8], usize)]) -> FileTree {
        FileTree::from_files(files)
    }

    fn catalog(t: &FileTree) -> Catalog {
        let mut c = Catalog::default();
        PythonCataloger.catalog(t, None, &mut c);
        c
    }

    #[test]
    fn wants_metadata_where_installers_put_it() {
        for p in [
            "usr/local/lib/python3.9/site-packages/Flask-1.1.2.dist-info/METADATA",
            "usr/lib/python3/dist-packages/mercurial-6.3.2-py3.11.egg-info",
            "usr/lib/python3/dist-packages/six-1.15.0.egg-info/PKG-INFO",
            "opt/venv/lib/python3.12/site-packages/a.dist-info/METADATA",
            "site-packages/x.dist-info/METADATA",
            // pip --target, PYTHONPATH folders, Lambda layers
            "app/vendor/foo-1.0.dist-info/METADATA",
            "opt/python/requests-2.31.0.dist-info/METADATA",
            "x.dist-info/METADATA",
            // any case, as importlib.metadata matches
            "app/lib/Foo-1.0.DIST-INFO/METADATA",
            "usr/lib/python3/dist-packages/Bar-2.0.Egg-Info/PKG-INFO",
            "usr/lib/python3/dist-packages/baz-1.0-py3.11.EGG-INFO",
            // eggs
            "usr/lib/python3.11/site-packages/Egg_Sample-1.4.2-py3.11.egg",
            "app/eggs/Unzipped_Egg-0.3.0-py3.11.egg/EGG-INFO/PKG-INFO",
            "app/eggs/lower-1.0.Egg/egg-info/PKG-INFO",
        ] {
            assert!(PythonCataloger.wants(p), "{p}");
        }
        for p in [
            "usr/local/lib/python3.9/site-packages/Flask-1.1.2.dist-info/RECORD",
            "usr/local/lib/python3.9/site-packages/flask/METADATA",
            "usr/local/lib/python3.9/site-packages/.dist-info/METADATA",
            "usr/local/lib/python3.9/site-packages/x.dist-info/sub/METADATA",
            "app/vendor/METADATA",
            "app/vendor/foo-1.0/METADATA",
            "app/vendor/foo-1.0.dist-info/metadata",
            // a source tree's egg-info is no installation
            "src/app/app.egg-info/PKG-INFO",
            "src/app/PKG-INFO",
            "usr/lib/python2.7/wsgiref.egg-info",
            "usr/lib/python3/dist-packages/x.egg-info/SOURCES.txt",
            "usr/lib/python3/dist-packages/x.egg-info/PKG-INFO/y",
            "app/x.egg/EGG-INFO/SOURCES.txt",
            "app/x/EGG-INFO/PKG-INFO",
            "app/.egg",
            "app/x.eggs",
            "METADATA",
            "etc/passwd",
        ] {
            assert!(!PythonCataloger.wants(p), "{p}");
        }
    }

    fn found(c: &Catalog) -> Vec<(&str, &str, &str)> {
        c.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.location.as_str()))
            .collect()
    }

    /// Eggs setuptools built and installed (fixtures/PROVENANCE.md): a
    /// zipped one, reduced as the layer reader would, and an unzipped one.
    /// `pip list` shows `Egg-Sample 1.4.2` and `Unzipped-Egg 0.3.0`.
    #[test]
    fn real_eggs_zipped_and_unzipped() {
        let sp = "usr/local/lib/python3.11/site-packages";
        let zipped = format!("{sp}/Egg_Sample-1.4.2-py3.11.egg");
        let egg: &[u8] = include_bytes!("fixtures/Egg_Sample-1.4.2-py3.11.egg");
        let reduced = PythonCataloger.reduce(&zipped, egg.to_vec());
        assert!(reduced.len() < 100, "{}", reduced.len());
        let unzipped = format!("{sp}/Unzipped_Egg-0.3.0-py3.11.egg/EGG-INFO/PKG-INFO");
        // The same egg, unreduced, on a PYTHONPATH folder.
        let t = tree(&[
            (&zipped, &reduced, 2),
            (
                &unzipped,
                include_bytes!("fixtures/Unzipped_Egg-EGG-INFO-PKG-INFO"),
                2,
            ),
            ("app/eggs/Egg_Sample-1.4.2-py3.11.egg", egg, 3),
        ]);
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            found(&c),
            [
                (
                    "Egg-Sample",
                    "1.4.2",
                    "app/eggs/Egg_Sample-1.4.2-py3.11.egg"
                ),
                ("Egg-Sample", "1.4.2", zipped.as_str()),
                ("Unzipped-Egg", "0.3.0", unzipped.as_str()),
            ]
        );
    }

    /// `pip install --target target setuptools-69.5.1-py3-none-any.whl`;
    /// `pip list --path target` shows `setuptools 69.5.1`.
    #[test]
    fn real_pip_target_dir_and_mixed_case_dirs() {
        let meta: &[u8] = include_bytes!("fixtures/setuptools-target-METADATA");
        let t = tree(&[
            ("app/vendor/setuptools-69.5.1.dist-info/METADATA", meta, 1),
            ("app/vendor/setuptools-69.5.1.dist-info/RECORD", b"x", 1),
            // Not in a .dist-info: a file that happens to be called so.
            ("app/docs/METADATA", meta, 1),
            (
                "usr/lib/python3/dist-packages/PyJWT-2.6.0.EGG-INFO/PKG-INFO",
                include_bytes!("fixtures/PyJWT-PKG-INFO"),
                1,
            ),
            (
                "opt/lib/Certifi-2026.5.20.Dist-Info/METADATA",
                include_bytes!("fixtures/certifi-METADATA"),
                1,
            ),
        ]);
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            found(&c),
            [
                (
                    "setuptools",
                    "69.5.1",
                    "app/vendor/setuptools-69.5.1.dist-info/METADATA"
                ),
                (
                    "certifi",
                    "2026.5.20",
                    "opt/lib/Certifi-2026.5.20.Dist-Info/METADATA"
                ),
                (
                    "PyJWT",
                    "2.6.0",
                    "usr/lib/python3/dist-packages/PyJWT-2.6.0.EGG-INFO/PKG-INFO"
                ),
            ]
        );
    }

    /// A stored zip with `n` entries named `f{i}` and, if given, a deflated
    /// `EGG-INFO/PKG-INFO`.
    fn zip_of(n: usize, pkg_info: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..n {
            w.start_file(format!("f{i}"), stored).unwrap();
        }
        if let Some(p) = pkg_info {
            let deflated = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file("EGG-INFO/PKG-INFO", deflated).unwrap();
            w.write_all(p).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn hostile_zipped_eggs_are_bounded_warnings() {
        let reduce = |d: Vec<u8>| PythonCataloger.reduce("a/x.egg", d);
        // A PKG-INFO bomb: 16 MiB of headers inflate from a few KB;
        // only MAX_PKG_INFO bytes are inflated, and the distribution is read.
        let mut bomb = b"Name: bomb\nVersion: 1.0\nSummary: ".to_vec();
        bomb.resize(16 << 20, b'a');
        let reduced = reduce(zip_of(0, Some(&bomb)));
        drop(bomb);
        assert!(
            reduced.len() as u64 <= MAX_PKG_INFO + 64,
            "{}",
            reduced.len()
        );
        let c = catalog(&tree(&[("a/x.egg", &reduced, 0)]));
        assert_eq!(found(&c), [("bomb", "1.0", "a/x.egg")]);

        for (data, want) in [
            (
                zip_of(MAX_EGG_ENTRIES + 1, Some(b"Name: x\n")),
                "zip entries, more than",
            ),
            (zip_of(3, None), "no EGG-INFO/PKG-INFO"),
            (b"PK\x03\x04 garbage".to_vec(), "not a zip archive"),
            (Vec::new(), "not a zip archive"),
        ] {
            let reduced = reduce(data);
            assert!(reduced.len() < 300, "{}", reduced.len());
            let c = catalog(&tree(&[("a/x.egg", &reduced, 0)]));
            assert!(c.packages.is_empty());
            assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
            assert!(
                c.warnings[0].starts_with("python /a/x.egg: ") && c.warnings[0].contains(want),
                "{:?}",
                c.warnings
            );
        }
    }

    /// Real files of all three forms (see fixtures/PROVENANCE.md).
    #[test]
    fn real_metadata() {
        for (data, name, version) in [
            (
                &include_bytes!("fixtures/certifi-METADATA")[..],
                "certifi",
                "2026.5.20",
            ),
            (
                include_bytes!("fixtures/typing_extensions-METADATA"),
                "typing_extensions",
                "4.15.0",
            ),
            (include_bytes!("fixtures/PyJWT-PKG-INFO"), "PyJWT", "2.6.0"),
            (
                include_bytes!("fixtures/lazr.restfulclient-PKG-INFO"),
                "lazr.restfulclient",
                "0.14.5",
            ),
            (
                include_bytes!("fixtures/wsgiref.egg-info"),
                "wsgiref",
                "0.1.2",
            ),
        ] {
            let (d, p) = parse(data).unwrap();
            assert!(p.is_empty(), "{name}: {p:?}");
            assert_eq!((d.name.as_str(), d.version.as_str()), (name, version));
        }
    }

    #[test]
    fn catalogs_all_three_forms() {
        let sp = "usr/local/lib/python3.11/site-packages";
        let dp = "usr/lib/python3/dist-packages";
        let t = tree(&[
            (
                &format!("{sp}/certifi-2026.5.20.dist-info/METADATA"),
                include_bytes!("fixtures/certifi-METADATA"),
                3,
            ),
            (
                &format!("{sp}/certifi-2026.5.20.dist-info/RECORD"),
                b"junk",
                3,
            ),
            (
                &format!("{dp}/PyJWT-2.6.0.egg-info/PKG-INFO"),
                include_bytes!("fixtures/PyJWT-PKG-INFO"),
                1,
            ),
            (
                &format!("{sp}/wsgiref-0.1.2-py2.7.egg-info"),
                include_bytes!("fixtures/wsgiref.egg-info"),
                4,
            ),
            // Not in a package directory: not installed.
            (
                "usr/lib/python2.7/wsgiref.egg-info",
                include_bytes!("fixtures/wsgiref.egg-info"),
                0,
            ),
            ("etc/os-release", b"ID=debian\n", 0),
        ]);
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.layer))
            .collect();
        assert_eq!(
            got,
            [
                ("PyJWT", "2.6.0", 1),
                ("certifi", "2026.5.20", 3),
                ("wsgiref", "0.1.2", 4)
            ]
        );
        assert!(c.packages.iter().all(|p| p.ecosystem == Ecosystem::Pypi));
        assert_eq!(
            c.packages[1].location,
            format!("{sp}/certifi-2026.5.20.dist-info/METADATA")
        );
    }

    #[test]
    fn pep_503_names() {
        assert_eq!(normalize_name("Flask"), "flask");
        assert_eq!(normalize_name("typing_extensions"), "typing-extensions");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_name("A__b-.-C"), "a-b-c");
        assert_eq!(normalize_name("ruamel.yaml.clib"), "ruamel-yaml-clib");
    }

    #[test]
    fn headers_are_case_insensitive_and_crlf_tolerated() {
        let (d, p) =
            parse(b"metadata-version: 2.1\r\nNAME: x\r\nversion:  1.0 \r\n\r\nName: body\r\n")
                .unwrap();
        assert!(p.is_empty());
        assert_eq!((d.name.as_str(), d.version.as_str()), ("x", "1.0"));
        // The body after the first empty line is not read.
        assert_eq!(
            parse(b"Name: x\n\nVersion: 1\n").unwrap_err(),
            PythonError::MissingVersion
        );
    }

    #[test]
    fn malformed_inputs_warn_never_panic() {
        assert_eq!(parse(b"").unwrap_err(), PythonError::MissingName);
        // Truncated in the middle of the Version header.
        assert_eq!(
            parse(b"Metadata-Version: 2.1\nName: x\nVers").unwrap_err(),
            PythonError::NotAHeader {
                line: 3,
                text: "Vers".into()
            }
        );
        assert!(matches!(
            parse(b"Name: bad name\nVersion: 1\n").unwrap_err(),
            PythonError::Invalid { field: "Name", .. }
        ));
        // A stray line does not lose the distribution.
        let (d, p) = parse(b"Name: x\nstray\nVersion: 1\n").unwrap();
        assert_eq!(d.version, "1");
        assert_eq!(p.len(), 1);
        // Huge values are rejected, not copied.
        let big = "9".repeat(4 << 20);
        let e = parse(format!("Name: x\nVersion: {big}\n").as_bytes()).unwrap_err();
        assert!(matches!(e, PythonError::TooLong { .. }));
        assert!(e.to_string().len() < 300);
        // A huge description is fine.
        let (d, _) =
            parse(format!("Name: x\nVersion: 1\nDescription: {big}\n\n{big}").as_bytes()).unwrap();
        assert_eq!(d.name, "x");

        // Binary garbage: a warning per file, no package, no panic.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut data = Vec::with_capacity(1 << 20);
        for _ in 0..(1 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        let t = tree(&[
            ("a/site-packages/g.dist-info/METADATA", &data, 0),
            ("a/site-packages/h.egg-info", b"\xff\xfe\x00", 0),
        ]);
        let c = catalog(&t);
        assert!(c.packages.is_empty());
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().all(|w| w.len() < 400));

        // Thousands of damaged files: 20 warnings and a count.
        let paths: Vec<String> = (0..1000)
            .map(|i| format!("a/site-packages/p{i}.dist-info/METADATA"))
            .collect();
        let files: Vec<(&str, &[u8], usize)> = paths
            .iter()
            .map(|p| (p.as_str(), &b"\xff"[..], 0))
            .collect();
        let c = catalog(&tree(&files));
        assert_eq!(c.warnings.len(), 21);
        assert!(c.warnings[20].contains("980 more"), "{}", c.warnings[20]);
    }
}
