//! Alpine packages: `lib/apk/db/installed`, apk's database of installed
//! packages. Records are separated by a blank line; each line is a one-letter
//! key, a colon and the value (`P:` name, `V:` version, `A:` architecture,
//! `o:` origin, i.e. the source package; the rest are checksums, file lists
//! and dependencies we do not read).
//!
//! apk rewrites the whole database on every `apk add`, so every package is
//! attributed to the layer of the last database write.

use crate::catalog::excerpt;
use std::collections::BTreeSet;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink};
use crate::image::fs::FileTree;

pub const INSTALLED: &str = "lib/apk/db/installed";
/// Where the database is on a merged-`/usr` image (`lib -> usr/lib`).
pub const USR_INSTALLED: &str = "usr/lib/apk/db/installed";

/// Longest value kept for a field we read; longer is damage, not data.
const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApkError {
    #[error("not UTF-8; read with replacement characters")]
    NotUtf8,
    #[error("line {line}: not a field: {text:?}")]
    NotAField { line: usize, text: String },
    #[error("record at line {line}: no P (name) field")]
    MissingName { line: usize },
    #[error("package {package:?} (line {line}): no V (version) field")]
    MissingVersion { line: usize, package: String },
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
    #[error("package {package:?} (line {line}) is listed more than once; keeping the first")]
    Duplicate { line: usize, package: String },
}

pub struct ApkCataloger;

impl Cataloger for ApkCataloger {
    fn name(&self) -> &'static str {
        "apk"
    }

    fn wants(&self, path: &str) -> bool {
        // The merged-`/usr` location too: with `lib -> usr/lib` it is the
        // database, and wanting it spares those images a second read.
        path == INSTALLED || path == USR_INSTALLED
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let Some((path, entry)) = files.get(INSTALLED) else {
            return;
        };
        let (pkgs, errors) = parse(&entry.data);
        let mut w = WarningSink::new(&mut out.warnings, format!("apk /{path}"));
        for e in errors {
            w.push(e);
        }
        drop(w);
        out.packages.extend(pkgs.into_iter().map(|p| Package {
            ecosystem: Ecosystem::Apk,
            source_name: Some(p.origin.unwrap_or_else(|| p.name.clone())),
            source_version: Some(p.version.clone()),
            name: p.name,
            version: p.version,
            arch: p.arch,
            location: path.to_owned(),
            layer: entry.layer,
            os_owner: None,
        }));
    }
}

/// Calls `f(package, path)` for every file the database says a package
/// installed: `F:` names a directory (relative to the root), the `R:` lines
/// after it the files in it. Lines that are not UTF-8 or not fields are
/// skipped here; [`parse`] already reports them.
pub fn for_each_file(data: &[u8], mut f: impl FnMut(&str, &str)) {
    let mut name: Option<&str> = None;
    let mut dir: Option<&str> = None;
    let mut path = String::new();
    for raw in data.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(l) = std::str::from_utf8(raw) else {
            continue;
        };
        if l.trim().is_empty() {
            (name, dir) = (None, None);
            continue;
        }
        let Some((key, value)) = l.split_once(':') else {
            continue;
        };
        match key {
            "P" => name = Some(value.trim()),
            "F" => dir = Some(value.trim().trim_matches('/')),
            "R" => {
                let (Some(n), Some(d)) = (name, dir) else {
                    continue;
                };
                let file = value.trim();
                if file.is_empty() || file.contains('/') {
                    continue;
                }
                path.clear();
                if !d.is_empty() {
                    path.push_str(d);
                    path.push('/');
                }
                path.push_str(file);
                f(n, &path);
            }
            _ => {}
        }
    }
}

/// One record of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub origin: Option<String>,
    /// First line of the record, for messages.
    pub line: usize,
}

#[derive(Default)]
struct Record {
    line: usize,
    any_field: bool,
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    origin: Option<String>,
}

/// Parses `lib/apk/db/installed`. Damaged records are skipped with an error;
/// duplicate names keep the first.
pub fn parse(data: &[u8]) -> (Vec<Installed>, Vec<ApkError>) {
    let mut errors = Vec::new();
    let text = String::from_utf8_lossy(data);
    if matches!(text, std::borrow::Cow::Owned(_)) {
        errors.push(ApkError::NotUtf8);
    }
    let mut pkgs = Vec::new();
    let mut seen = BTreeSet::new();
    let mut finish = |r: Record, errors: &mut Vec<ApkError>| {
        if let Some(p) = installed(r, errors) {
            if seen.insert(p.name.clone()) {
                pkgs.push(p);
            } else {
                errors.push(ApkError::Duplicate {
                    line: p.line,
                    package: p.name,
                });
            }
        }
    };
    let mut cur: Option<Record> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if l.trim().is_empty() {
            if let Some(r) = cur.take() {
                finish(r, &mut errors);
            }
            continue;
        }
        let r = cur.get_or_insert_with(|| Record {
            line,
            ..Record::default()
        });
        let mut cs = l.chars();
        let (Some(key), Some(':')) = (cs.next(), cs.next()) else {
            errors.push(ApkError::NotAField {
                line,
                text: excerpt(l),
            });
            continue;
        };
        if !key.is_ascii_alphabetic() {
            errors.push(ApkError::NotAField {
                line,
                text: excerpt(l),
            });
            continue;
        }
        r.any_field = true;
        let (field, slot) = match key {
            'P' => ("P (name)", &mut r.name),
            'V' => ("V (version)", &mut r.version),
            'A' => ("A (architecture)", &mut r.arch),
            'o' => ("o (origin)", &mut r.origin),
            _ => continue,
        };
        let value = l[2..].trim();
        if value.len() > MAX_VALUE {
            errors.push(ApkError::TooLong {
                line,
                field,
                len: value.len(),
            });
            continue;
        }
        if !valid_token(value) {
            errors.push(ApkError::Invalid {
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
    if let Some(r) = cur.take() {
        finish(r, &mut errors);
    }
    (pkgs, errors)
}

fn installed(r: Record, errors: &mut Vec<ApkError>) -> Option<Installed> {
    let line = r.line;
    let Some(name) = r.name else {
        if r.any_field {
            errors.push(ApkError::MissingName { line });
        }
        return None;
    };
    let Some(version) = r.version else {
        errors.push(ApkError::MissingVersion {
            line,
            package: name,
        });
        return None;
    };
    Some(Installed {
        name,
        version,
        arch: r.arch,
        origin: r.origin,
        line,
    })
}

/// Names, versions, architectures: printable, no blanks.
fn valid_token(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fs::FileEntry;

    fn catalog(data: &[u8]) -> Catalog {
        let mut t = FileTree::default();
        t.files.insert(
            INSTALLED.into(),
            FileEntry {
                data: data.into(),
                layer: 2,
            },
        );
        let mut c = Catalog::default();
        ApkCataloger.catalog(&t, None, &mut c);
        c
    }

    /// The same 14 name/version pairs as the corpus's
    /// `expected/alpine-like.json`, built from this very database.
    #[test]
    fn real_database() {
        let (pkgs, errors) = parse(include_bytes!("fixtures/installed"));
        assert!(errors.is_empty(), "{errors:?}");
        let mut got: Vec<String> = pkgs
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "alpine-baselayout 3.2.0-r22",
                "alpine-baselayout-data 3.2.0-r22",
                "alpine-keys 2.4-r1",
                "apk-tools 2.12.9-r3",
                "busybox 1.35.0-r17",
                "ca-certificates-bundle 20220614-r0",
                "libc-utils 0.7.2-r3",
                "libcrypto1.1 1.1.1q-r0",
                "libssl1.1 1.1.1q-r0",
                "musl 1.2.3-r0",
                "musl-utils 1.2.3-r0",
                "scanelf 1.3.4-r0",
                "ssl_client 1.35.0-r17",
                "zlib 1.2.12-r3",
            ]
        );
        let ssl = pkgs.iter().find(|p| p.name == "libssl1.1").unwrap();
        assert_eq!(ssl.origin.as_deref(), Some("openssl"));
        assert_eq!(ssl.arch.as_deref(), Some("x86_64"));

        let c = catalog(include_bytes!("fixtures/installed"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.packages.len(), 14);
        let ssl = c.packages.iter().find(|p| p.name == "libssl1.1").unwrap();
        assert_eq!(ssl.ecosystem, Ecosystem::Apk);
        assert_eq!(ssl.source_name.as_deref(), Some("openssl"));
        assert_eq!(ssl.location, INSTALLED);
        assert_eq!(ssl.layer, 2);
        let musl = c.packages.iter().find(|p| p.name == "musl").unwrap();
        assert_eq!(musl.source_name.as_deref(), Some("musl"));
    }

    #[test]
    fn wants_only_the_database() {
        assert!(ApkCataloger.wants("lib/apk/db/installed"));
        assert!(ApkCataloger.wants("usr/lib/apk/db/installed"));
        for p in [
            "lib/apk/db/installed.new",
            "lib/apk/db/scripts.tar",
            "etc/apk/world",
        ] {
            assert!(!ApkCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn crlf_and_blank_runs_and_origin_default() {
        let (pkgs, errors) =
            parse(b"\r\n\r\nP:a\r\nV:1-r0\r\n\r\n \r\n\r\nP:b\r\nV:2-r0\r\no:bsrc\r\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].origin, None);
        assert_eq!(pkgs[1].origin.as_deref(), Some("bsrc"));
        let c = catalog(b"P:a\nV:1-r0\n");
        assert_eq!(c.packages[0].source_name.as_deref(), Some("a"));
        assert_eq!(c.packages[0].source_version.as_deref(), Some("1-r0"));
    }

    #[test]
    fn malformed_inputs_warn_and_keep_the_rest() {
        let good = "P:ok\nV:1-r0\nA:x86_64\n\n";
        // Truncated mid-record: the cut record has no version.
        let (pkgs, errors) = parse(format!("{good}P:cut\nV").as_bytes());
        assert_eq!(pkgs.len(), 1);
        assert!(
            matches!(
                errors[..],
                [ApkError::NotAField { .. }, ApkError::MissingVersion { .. }]
            ),
            "{errors:?}"
        );
        // No name; bad version; stray line; duplicate.
        let (pkgs, errors) = parse(
            format!("V:1\nA:x\n\nP:sp\nV:1 2\n\nP:stray\nno colon\nV:3\n\n{good}P:ok\nV:2\n")
                .as_bytes(),
        );
        assert_eq!(
            pkgs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["stray", "ok"]
        );
        assert!(matches!(errors[0], ApkError::MissingName { line: 1 }));
        assert!(matches!(errors[1], ApkError::Invalid { .. }));
        assert!(matches!(errors[2], ApkError::MissingVersion { .. }));
        assert!(matches!(errors[3], ApkError::NotAField { line: 8, .. }));
        assert!(matches!(errors[4], ApkError::Duplicate { .. }));
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn huge_fields_do_not_hurt() {
        let big = "x".repeat(4 << 20);
        let text = format!("P:a\nV:1\nT:{big}\n\nP:b\nV:{big}\n\nP:c\nV:3\n");
        let (pkgs, errors) = parse(text.as_bytes());
        assert_eq!(
            pkgs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert!(matches!(errors[0], ApkError::TooLong { .. }));
        assert!(errors.iter().all(|e| e.to_string().len() < 300));
    }

    #[test]
    fn binary_garbage_never_panics() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut data = Vec::with_capacity(1 << 20);
        for _ in 0..(1 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        let (pkgs, errors) = parse(&data);
        assert!(pkgs.is_empty());
        assert!(errors.contains(&ApkError::NotUtf8));
        let c = catalog(&data);
        assert!(c.packages.is_empty());
        assert!(c.warnings.len() <= 21, "{}", c.warnings.len());
    }
}
