//! Python distributions installed in a `site-packages` or `dist-packages`
//! directory, the places `importlib.metadata` looks:
//!
//! - `NAME-VER.dist-info/METADATA` (wheels, modern pip),
//! - `NAME-VER.egg-info/PKG-INFO` (setuptools, directory form),
//! - `NAME-VER[-pyX.Y].egg-info` as a file itself (distutils, e.g. Debian's
//!   `python3-*` packages).
//!
//! All three are RFC 822 style headers (core metadata); we read `Name` and
//! `Version` from the header block and stop at the first empty line (the
//! long description follows it). A `.dist-info` without `METADATA` is not an
//! installed distribution, and uninstalling removes the directory, so
//! whiteouts take care of `pip uninstall` in a later layer.

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
/// tar entry).
fn is_metadata(path: &str) -> bool {
    if let Some(dir) = path.strip_suffix("/METADATA") {
        return in_packages_dir(dir, ".dist-info");
    }
    if let Some(dir) = path.strip_suffix("/PKG-INFO") {
        return in_packages_dir(dir, ".egg-info");
    }
    path.ends_with(".egg-info") && in_packages_dir(path, ".egg-info")
}

/// `…/site-packages/X.ext` or `…/dist-packages/X.ext`, X not empty.
fn in_packages_dir(path: &str, ext: &str) -> bool {
    let (parent, base) = match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => return false,
    };
    if base.len() <= ext.len() || !base.ends_with(ext) {
        return false;
    }
    let dir = parent.rsplit('/').next().unwrap_or(parent);
    dir == "site-packages" || dir == "dist-packages"
}

impl Cataloger for PythonCataloger {
    fn name(&self) -> &'static str {
        "python"
    }

    fn wants(&self, path: &str) -> bool {
        is_metadata(path)
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        // Files with problems; past 20 they are only counted.
        let mut damaged = 0usize;
        for (path, entry) in &files.files {
            if !is_metadata(path) {
                continue;
            }
            match parse(&entry.data) {
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
    fn wants_metadata_in_package_dirs_only() {
        for p in [
            "usr/local/lib/python3.9/site-packages/Flask-1.1.2.dist-info/METADATA",
            "usr/lib/python3/dist-packages/mercurial-6.3.2-py3.11.egg-info",
            "usr/lib/python3/dist-packages/six-1.15.0.egg-info/PKG-INFO",
            "opt/venv/lib/python3.12/site-packages/a.dist-info/METADATA",
            "site-packages/x.dist-info/METADATA",
        ] {
            assert!(PythonCataloger.wants(p), "{p}");
        }
        for p in [
            "usr/local/lib/python3.9/site-packages/Flask-1.1.2.dist-info/RECORD",
            "usr/local/lib/python3.9/site-packages/flask/METADATA",
            "usr/local/lib/python3.9/site-packages/.dist-info/METADATA",
            "usr/local/lib/python3.9/site-packages/x.dist-info/sub/METADATA",
            "src/app/app.egg-info/PKG-INFO",
            "usr/lib/python3/dist-packages/x.egg-info/SOURCES.txt",
            "usr/lib/python3/dist-packages/x.egg-info/PKG-INFO/y",
            "x.dist-info/METADATA",
            "METADATA",
            "etc/passwd",
        ] {
            assert!(!PythonCataloger.wants(p), "{p}");
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
