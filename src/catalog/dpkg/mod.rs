//! Debian packages: `var/lib/dpkg/status` and, for distroless images that
//! have no dpkg, `var/lib/dpkg/status.d/*` (one control file per package,
//! no `Status:` field; `*.md5sums` beside them are not packages).
//!
//! Only packages dpkg considers installed count: the third word of `Status`
//! is `installed` (what `dpkg-query -W` shows as `?i?`, so `hold` and
//! `deinstall` selections still count while `config-files`, `unpacked`,
//! `half-installed`, `triggers-*` do not).
//!
//! The layer of a package is that of its `var/lib/dpkg/info/NAME[:ARCH].list`:
//! dpkg rewrites that file whenever it unpacks the package, while `status`
//! itself is rewritten by every later `apt-get install` and would attribute
//! every package to the last layer that installed anything.

use crate::catalog::excerpt;
use std::collections::BTreeSet;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink};
use crate::image::fs::{FileEntry, FileTree};

const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d/";
const INFO: &str = "var/lib/dpkg/info/";

/// Longest value kept for a field we read. Names, versions and
/// architectures are tens of bytes; a longer one is damage, not data.
const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpkgError {
    #[error("not UTF-8; read with replacement characters")]
    NotUtf8,
    #[error("line {line}: not a field: {text:?}")]
    NotAField { line: usize, text: String },
    #[error("stanza at line {line}: no Package field")]
    MissingPackage { line: usize },
    #[error("package {package:?} (line {line}): no {field} field")]
    MissingField {
        line: usize,
        package: String,
        field: &'static str,
    },
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

pub struct DpkgCataloger;

impl Cataloger for DpkgCataloger {
    fn name(&self) -> &'static str {
        "dpkg"
    }

    fn wants(&self, path: &str) -> bool {
        if path == STATUS {
            return true;
        }
        if let Some(f) = path.strip_prefix(STATUS_D) {
            return !f.is_empty() && !f.contains('/') && !f.ends_with(".md5sums");
        }
        if let Some(f) = path.strip_prefix(INFO) {
            return f.ends_with(".list") && !f.contains('/');
        }
        false
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut seen = BTreeSet::new();
        if let Some((path, entry)) = files.get(STATUS) {
            let pkgs = read_db(path, entry, true, &mut out.warnings);
            for mut p in pkgs {
                if seen.insert((p.name.clone(), p.arch.clone())) {
                    // An install rewrites status too: a list newer than
                    // status was only touched (`chown -R`), not installed.
                    p.layer = list_layer(files, &p).map_or(entry.layer, |l| l.min(entry.layer));
                    out.packages.push(p);
                }
            }
        }
        for (path, entry) in files.list_dir(STATUS_D) {
            if path.ends_with(".md5sums") {
                continue;
            }
            // An image with both keeps dpkg's own database authoritative.
            for p in read_db(path, entry, false, &mut out.warnings) {
                if seen.insert((p.name.clone(), p.arch.clone())) {
                    out.packages.push(p);
                }
            }
        }
    }
}

/// The file lists dpkg keeps per installed package
/// (`info/NAME[:ARCH].list`, one absolute path per line, directories
/// included): (package name without the arch, list path, its entry). The
/// same files [`DpkgCataloger::catalog`] dates packages by; file ownership
/// reads them from the tree rather than asking for them again.
pub fn file_lists(files: &FileTree) -> impl Iterator<Item = (&str, &str, &FileEntry)> {
    files
        .list_dir(INFO)
        .into_iter()
        .filter_map(|(path, entry)| {
            let file = path.rsplit('/').next()?.strip_suffix(".list")?;
            let name = file.split_once(':').map_or(file, |(n, _)| n);
            valid_package_name(name).then_some((name, path, entry))
        })
}

fn list_layer(files: &FileTree, p: &Package) -> Option<usize> {
    let arch_qualified = p
        .arch
        .as_ref()
        .and_then(|a| files.get(&format!("{INFO}{}:{a}.list", p.name)));
    arch_qualified
        .or_else(|| files.get(&format!("{INFO}{}.list", p.name)))
        .map(|(_, e)| e.layer)
}

fn read_db(
    path: &str,
    entry: &FileEntry,
    status_required: bool,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let (pkgs, errors) = parse(&entry.data, status_required);
    let mut w = WarningSink::new(warnings, format!("dpkg /{path}"));
    for e in errors {
        w.push(e);
    }
    pkgs.into_iter()
        .map(|s| Package {
            ecosystem: Ecosystem::Deb,
            name: s.name,
            version: s.version,
            arch: s.arch,
            source_name: Some(s.source_name),
            source_version: Some(s.source_version),
            location: path.to_owned(),
            layer: entry.layer,
            os_owner: None,
        })
        .collect()
}

/// One installed package as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    /// The `Source:` package, or the binary itself when absent.
    pub source_name: String,
    /// The `Source: name (version)` version, or the binary's version.
    pub source_version: String,
    /// First line of the stanza, for messages.
    pub line: usize,
}

/// The fields we read from one stanza.
#[derive(Default)]
struct Stanza {
    line: usize,
    any_field: bool,
    package: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    source: Option<String>,
    status: Option<String>,
}

/// Parses a dpkg database (`status`, or one `status.d` control file).
/// With `status_required` a stanza without `Status:` is skipped with a
/// warning; otherwise (status.d) it counts as installed. Duplicate
/// name/arch pairs keep the first.
pub fn parse(data: &[u8], status_required: bool) -> (Vec<Installed>, Vec<DpkgError>) {
    let mut errors = Vec::new();
    let text = String::from_utf8_lossy(data);
    if matches!(text, std::borrow::Cow::Owned(_)) {
        errors.push(DpkgError::NotUtf8);
    }
    let mut pkgs = Vec::new();
    let mut seen = BTreeSet::new();
    let mut finish = |st: Stanza, errors: &mut Vec<DpkgError>| {
        if let Some(p) = installed(st, status_required, errors) {
            if seen.insert((p.name.clone(), p.arch.clone())) {
                pkgs.push(p);
            } else {
                errors.push(DpkgError::Duplicate {
                    line: p.line,
                    package: p.name,
                });
            }
        }
    };

    let mut cur: Option<Stanza> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        // As dpkg: only an empty line ends a stanza; a blank one inside a
        // stanza continues a field, and blanks between stanzas are skipped.
        if l.is_empty() {
            if let Some(st) = cur.take() {
                finish(st, &mut errors);
            }
            continue;
        }
        // deb822 comment; dpkg never writes one, but hand-made files have.
        if l.starts_with('#') {
            continue;
        }
        if l.starts_with([' ', '\t']) {
            // Continuation of a multi-line field (Description, Conffiles),
            // none of which we read.
            if cur.is_none() && !l.trim().is_empty() {
                errors.push(DpkgError::NotAField {
                    line,
                    text: excerpt(l),
                });
            }
            continue;
        }
        let st = cur.get_or_insert_with(|| Stanza {
            line,
            ..Stanza::default()
        });
        let Some((name, value)) = l.split_once(':').filter(|(n, _)| valid_field_name(n)) else {
            errors.push(DpkgError::NotAField {
                line,
                text: excerpt(l),
            });
            continue;
        };
        st.any_field = true;
        let (field, slot) = match name.to_ascii_lowercase().as_str() {
            "package" => ("Package", &mut st.package),
            "version" => ("Version", &mut st.version),
            "architecture" => ("Architecture", &mut st.arch),
            "source" => ("Source", &mut st.source),
            "status" => ("Status", &mut st.status),
            _ => continue,
        };
        let value = value.trim();
        if value.len() > MAX_VALUE {
            errors.push(DpkgError::TooLong {
                line,
                field,
                len: value.len(),
            });
            continue;
        }
        if slot.is_none() {
            *slot = Some(value.to_owned());
        }
    }
    if let Some(st) = cur.take() {
        finish(st, &mut errors);
    }
    (pkgs, errors)
}

fn installed(st: Stanza, status_required: bool, errors: &mut Vec<DpkgError>) -> Option<Installed> {
    let line = st.line;
    let Some(name) = st.package else {
        // A stanza of nothing but garbage lines was reported line by line.
        if st.any_field {
            errors.push(DpkgError::MissingPackage { line });
        }
        return None;
    };
    if !valid_package_name(&name) {
        errors.push(DpkgError::Invalid {
            line,
            field: "Package",
            value: excerpt(&name),
        });
        return None;
    }
    let missing = |field| DpkgError::MissingField {
        line,
        package: name.clone(),
        field,
    };
    match st
        .status
        .as_deref()
        .map(|s| s.split_whitespace().collect::<Vec<_>>())
    {
        None if status_required => {
            errors.push(missing("Status"));
            return None;
        }
        None => {}
        Some(words) if words.len() != 3 => {
            errors.push(DpkgError::Invalid {
                line,
                field: "Status",
                value: excerpt(st.status.as_deref().unwrap_or_default()),
            });
            return None;
        }
        // want, error flag, state: only the state matters.
        Some(words) if words[2] != "installed" => return None,
        Some(_) => {}
    }
    let Some(version) = st.version else {
        errors.push(missing("Version"));
        return None;
    };
    if !valid_token(&version) {
        errors.push(DpkgError::Invalid {
            line,
            field: "Version",
            value: excerpt(&version),
        });
        return None;
    }
    let arch = match st.arch {
        Some(a) if !valid_token(&a) => {
            errors.push(DpkgError::Invalid {
                line,
                field: "Architecture",
                value: excerpt(&a),
            });
            return None;
        }
        a => a.filter(|a| !a.is_empty()),
    };
    let (source_name, source_version) = match st.source.as_deref() {
        None | Some("") => (name.clone(), version.clone()),
        Some(s) => match parse_source(s) {
            Some((n, v)) => (n.to_owned(), v.unwrap_or(&version).to_owned()),
            None => {
                // The binary is still installed; only its grouping is lost.
                errors.push(DpkgError::Invalid {
                    line,
                    field: "Source",
                    value: excerpt(s),
                });
                (name.clone(), version.clone())
            }
        },
    };
    Some(Installed {
        name,
        version,
        arch,
        source_name,
        source_version,
        line,
    })
}

/// `src` or `src (version)`.
fn parse_source(s: &str) -> Option<(&str, Option<&str>)> {
    let (name, rest) = match s.find(|c: char| c.is_whitespace() || c == '(') {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    };
    if !valid_package_name(name) {
        return None;
    }
    if rest.is_empty() {
        return Some((name, None));
    }
    let v = rest.strip_prefix('(')?.strip_suffix(')')?.trim();
    valid_token(v).then_some((name, Some(v)))
}

/// dpkg's rule: an alphanumeric first, then alphanumerics and `+-.`
/// (`_` and upper case are tolerated: dpkg itself only warns on them).
fn valid_package_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
}

fn valid_field_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ':')
}

/// Versions and architectures: printable, no blanks. Whether a version
/// follows Debian policy is not ours to judge; it only has to survive
/// being put into a purl.
fn valid_token(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data: &[u8], layer: usize) -> FileEntry {
        FileEntry {
            data: data.into(),
            layer,
        }
    }

    fn catalog(t: &FileTree) -> Catalog {
        let mut c = Catalog::default();
        DpkgCataloger.catalog(t, None, &mut c);
        c
    }

    /// `fixtures/status` is a real bookworm status excerpt;
    /// `status.expected` is what `dpkg-query --admindir=… -W -f=
    /// '${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}'`
    /// printed for it (installed packages only).
    #[test]
    fn real_status_matches_dpkg_query() {
        let (pkgs, errors) = parse(include_bytes!("fixtures/status"), true);
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<String> = pkgs
            .iter()
            .map(|p| {
                format!(
                    "{}\t{}\t{}\t{}\t{}",
                    p.name,
                    p.version,
                    p.arch.as_deref().unwrap_or(""),
                    p.source_name,
                    p.source_version
                )
            })
            .collect();
        let want: Vec<&str> = include_str!("fixtures/status.expected").lines().collect();
        assert_eq!(got, want);
    }

    /// `fixtures/status-states`: every dpkg state; dpkg-query shows
    /// adduser, held, leaving and libc6:i386 as installed (`?i?`).
    #[test]
    fn only_installed_states_count() {
        let (pkgs, errors) = parse(include_bytes!("fixtures/status-states"), true);
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<_> = pkgs
            .iter()
            .map(|p| (p.name.as_str(), p.arch.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("adduser", "all"),
                ("held", "amd64"),
                ("leaving", "all"),
                ("libc6", "i386")
            ]
        );
        let held = &pkgs[1];
        assert_eq!(
            (held.source_name.as_str(), held.source_version.as_str()),
            ("heldsrc", "1:0.9-2")
        );
        assert_eq!(pkgs[2].source_version, "0.1");
    }

    #[test]
    fn crlf_and_blank_line_runs_and_case() {
        let text = "\r\n\r\npackage: a\r\nSTATUS: install ok installed\r\nVersion: 1.0\r\n \r\n\
                    Description: x\r\n  more\r\n\r\n\r\n\t\r\nPackage: b\r\nStatus: install ok installed\r\n\
                    Version: 2.0\r\nSource: bsrc(2.0-0)\r\n";
        let (pkgs, errors) = parse(text.as_bytes(), true);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "a");
        assert_eq!(pkgs[0].version, "1.0");
        assert_eq!(pkgs[0].arch, None);
        assert_eq!(pkgs[1].source_name, "bsrc");
        assert_eq!(pkgs[1].source_version, "2.0-0");
    }

    #[test]
    fn malformed_inputs_warn_and_keep_the_rest() {
        let good = "Package: ok\nStatus: install ok installed\nVersion: 1\n\n";

        // Truncated in the middle of a stanza: the cut stanza has no version.
        let (pkgs, errors) = parse(
            format!("{good}Package: cut\nStatus: install ok inst").as_bytes(),
            true,
        );
        assert_eq!(pkgs.len(), 1);
        assert!(
            errors.is_empty(),
            "a cut-off status word is just not installed"
        );
        let (pkgs, errors) = parse(
            format!("{good}Package: cut\nStatus: install ok installed\nVers").as_bytes(),
            true,
        );
        assert_eq!(pkgs.len(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");

        // No Status in the status file; Status with the wrong word count.
        let (pkgs, errors) = parse(
            format!("Package: nostat\nVersion: 1\n\nPackage: bad\nStatus: installed\nVersion: 1\n\n{good}").as_bytes(),
            true,
        );
        assert_eq!(pkgs.len(), 1);
        assert!(matches!(
            errors[0],
            DpkgError::MissingField {
                field: "Status",
                ..
            }
        ));
        assert!(matches!(
            errors[1],
            DpkgError::Invalid {
                field: "Status",
                ..
            }
        ));

        // Garbage names, versions, sources; continuation with no stanza.
        let (pkgs, errors) = parse(
            format!(
                " orphan\n\nPackage: -bad\nStatus: install ok installed\nVersion: 1\n\n\
                 Package: sp\nStatus: install ok installed\nVersion: 1 2\n\n\
                 Package: src\nStatus: install ok installed\nVersion: 1\nSource: s (1\n\n{good}"
            )
            .as_bytes(),
            true,
        );
        assert_eq!(
            pkgs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["src", "ok"]
        );
        assert_eq!(
            pkgs[0].source_name, "src",
            "bad Source falls back to the binary"
        );
        assert_eq!(errors.len(), 4, "{errors:?}");

        // A stray line inside a stanza is reported; the package still counts.
        let (pkgs, errors) = parse(
            b"Package: stray\nStatus: install ok installed\nno colon here\nVersion: 1\n",
            true,
        );
        assert_eq!(pkgs.len(), 1);
        assert!(matches!(errors[..], [DpkgError::NotAField { line: 3, .. }]));

        // Duplicates keep the first.
        let (pkgs, errors) = parse(
            format!("{good}Package: ok\nStatus: install ok installed\nVersion: 2\n").as_bytes(),
            true,
        );
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].version, "1");
        assert!(matches!(errors[0], DpkgError::Duplicate { .. }));
    }

    #[test]
    fn huge_fields_do_not_hurt() {
        let big = "x".repeat(4 << 20);
        // A huge field we do not read is fine; one we read is rejected.
        let text = format!(
            "Package: a\nStatus: install ok installed\nVersion: 1\nDescription: {big}\n {big}\n\n\
             Package: b\nStatus: install ok installed\nVersion: {big}\n\n\
             Package: c\nStatus: install ok installed\nVersion: 3\n"
        );
        let (pkgs, errors) = parse(text.as_bytes(), true);
        assert_eq!(
            pkgs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert!(matches!(
            errors[0],
            DpkgError::TooLong {
                field: "Version",
                ..
            }
        ));
        assert!(errors.iter().all(|e| e.to_string().len() < 300));
    }

    #[test]
    fn binary_garbage_never_panics() {
        // Deterministic pseudo-random bytes, plus NULs and invalid UTF-8.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut data = Vec::with_capacity(1 << 20);
        for _ in 0..(1 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        let (pkgs, errors) = parse(&data, true);
        assert!(pkgs.is_empty());
        assert!(errors.contains(&DpkgError::NotUtf8));

        let mut t = FileTree::default();
        t.files.insert(STATUS.into(), entry(&data, 0));
        let c = catalog(&t);
        assert!(c.packages.is_empty());
        assert!(c.warnings.len() <= 21, "warnings are capped");
        assert!(
            c.warnings
                .last()
                .unwrap()
                .ends_with("more problems not shown")
        );

        // Every prefix of a real file parses without panicking.
        let real = include_bytes!("fixtures/status");
        for n in (0..real.len()).step_by(97) {
            let _ = parse(&real[..n], true);
        }
    }

    #[test]
    fn layers_come_from_info_lists() {
        let mut t = FileTree::default();
        t.files
            .insert(STATUS.into(), entry(include_bytes!("fixtures/status"), 3));
        t.files
            .insert(format!("{INFO}bash.list"), entry(b"/bin/bash\n", 0));
        t.files
            .insert(format!("{INFO}libc6:amd64.list"), entry(b"", 1));
        // Touched by a later layer than status: not an install.
        t.files.insert(format!("{INFO}dpkg.list"), entry(b"", 5));
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let layer = |n: &str| c.packages.iter().find(|p| p.name == n).unwrap().layer;
        assert_eq!(layer("bash"), 0);
        assert_eq!(layer("libc6"), 1);
        assert_eq!(layer("dpkg"), 3);
        assert_eq!(layer("coreutils"), 3);
        let bash = c.packages.iter().find(|p| p.name == "bash").unwrap();
        assert_eq!(
            bash,
            &Package {
                ecosystem: Ecosystem::Deb,
                name: "bash".into(),
                version: "5.2.15-2+b8".into(),
                arch: Some("amd64".into()),
                source_name: Some("bash".into()),
                source_version: Some("5.2.15-2".into()),
                location: STATUS.into(),
                layer: 0,
                os_owner: None,
            }
        );
    }

    #[test]
    fn distroless_status_d() {
        let mut t = FileTree::default();
        for (name, data, layer) in [
            (
                "base-files",
                &include_bytes!("fixtures/status.d/base-files")[..],
                0,
            ),
            ("tzdata", &include_bytes!("fixtures/status.d/tzdata")[..], 0),
            ("libc6", &include_bytes!("fixtures/status.d/libc6")[..], 1),
            (
                "libc6.md5sums",
                &include_bytes!("fixtures/status.d/libc6.md5sums")[..],
                1,
            ),
        ] {
            t.files
                .insert(format!("{STATUS_D}{name}"), entry(data, layer));
        }
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.source_name.as_deref().unwrap(),
                    p.location.as_str(),
                    p.layer,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "base-files",
                    "base-files",
                    "var/lib/dpkg/status.d/base-files",
                    0
                ),
                ("libc6", "glibc", "var/lib/dpkg/status.d/libc6", 1),
                ("tzdata", "tzdata", "var/lib/dpkg/status.d/tzdata", 0),
            ]
        );

        // With a status file too, dpkg's own database wins for a package in both.
        t.files.insert(
            STATUS.into(),
            entry(
                b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9\n",
                2,
            ),
        );
        let c = catalog(&t);
        let libc: Vec<_> = c.packages.iter().filter(|p| p.name == "libc6").collect();
        assert_eq!(libc.len(), 1);
        assert_eq!(libc[0].version, "9");
        assert_eq!(c.packages.len(), 3);
    }

    #[test]
    fn wants_patterns() {
        let w = |p| DpkgCataloger.wants(p);
        assert!(w("var/lib/dpkg/status"));
        assert!(w("var/lib/dpkg/status.d/libssl3"));
        assert!(w("var/lib/dpkg/info/libc6:amd64.list"));
        assert!(!w("var/lib/dpkg/status.d/libssl3.md5sums"));
        assert!(!w("var/lib/dpkg/status.d/"));
        assert!(!w("var/lib/dpkg/status.d/sub/x"));
        assert!(!w("var/lib/dpkg/status-old"));
        assert!(!w("var/lib/dpkg/info/bash.md5sums"));
        assert!(!w("usr/var/lib/dpkg/status"));
    }

    #[test]
    fn source_field_forms() {
        assert_eq!(parse_source("glibc"), Some(("glibc", None)));
        assert_eq!(
            parse_source("util-linux (2.38.1-5)"),
            Some(("util-linux", Some("2.38.1-5")))
        );
        assert_eq!(
            parse_source("libcap2 (1:2.66-4+deb12u2)"),
            Some(("libcap2", Some("1:2.66-4+deb12u2")))
        );
        assert_eq!(parse_source("x ( 1.0 )"), Some(("x", Some("1.0"))));
        assert_eq!(parse_source("x (1.0"), None);
        assert_eq!(parse_source("x 1.0"), None);
        assert_eq!(parse_source("(1.0)"), None);
    }
}
