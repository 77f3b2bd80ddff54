//! The distribution, from os-release(5): `etc/os-release`, or
//! `usr/lib/os-release` when the former does not exist. Symlinks (Debian's
//! `etc/os-release -> ../usr/lib/os-release`) resolve through the tree.
//!
//! The format is a restricted shell assignment list; values may be quoted
//! and escaped the shell way and (as systemd accepts) continue over several
//! lines inside quotes or after a trailing backslash.

use std::collections::BTreeMap;

use super::{Catalog, Cataloger, OsInfo, WarningSink};
use crate::image::fs::FileTree;

const PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// Release files of distributions too old for os-release (CentOS and RHEL
/// 6 and older). Oracle Linux also ships a `redhat-release` that claims to
/// be RHEL, so its own file is read first.
const REDHAT_RELEASE: [&str; 4] = [
    "etc/oracle-release",
    "etc/centos-release",
    "etc/redhat-release",
    "etc/system-release",
];
/// What a Debian without os-release still has: distroless images built
/// without base-files have `status.d/` and often `debian_version`.
const DEBIAN_VERSION: &str = "etc/debian_version";
const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d";
/// The busybox image has no release file at all; the binary names itself.
const BUSYBOX: [&str; 2] = ["bin/busybox", "usr/bin/busybox"];
const BUSYBOX_MARK: &[u8] = b"BusyBox v";

/// Real files are a few hundred bytes; anything this large is not one.
const MAX_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsReleaseError {
    #[error("file is {0} bytes, too large for an os-release file")]
    TooLarge(usize),
    #[error("not UTF-8; read with replacement characters")]
    NotUtf8,
    #[error("line {line}: not an assignment: {text:?}")]
    NotAssignment { line: usize, text: String },
    #[error("line {line}: invalid variable name {name:?}")]
    InvalidName { line: usize, name: String },
    #[error("line {line}: unterminated quote")]
    UnterminatedQuote { line: usize },
    #[error("no variables found")]
    Empty,
}

pub struct OsReleaseCataloger;

impl Cataloger for OsReleaseCataloger {
    fn name(&self) -> &'static str {
        "os-release"
    }

    fn wants(&self, path: &str) -> bool {
        PATHS.contains(&path)
            || REDHAT_RELEASE.contains(&path)
            || path == DEBIAN_VERSION
            || BUSYBOX.contains(&path)
    }

    /// Of the busybox binary only its version banner is kept.
    fn reduce(&self, path: &str, data: Vec<u8>) -> Vec<u8> {
        if BUSYBOX.contains(&path) {
            busybox_banner(&data)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        } else {
            data
        }
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        // os-release(5): read the first that exists, never merge the two.
        let Some((path, entry)) = PATHS.iter().find_map(|p| files.get(p)) else {
            out.os = fallback(files);
            return;
        };
        let (info, errors) = parse_bytes(&entry.data);
        let mut w = WarningSink::new(&mut out.warnings, format!("os-release /{path}"));
        for e in errors {
            w.push(e);
        }
        drop(w);
        out.os = info;
    }
}

/// The distribution of an image without os-release, from older or
/// partial evidence; `None` when there is none.
fn fallback(files: &FileTree) -> Option<OsInfo> {
    if let Some(os) = REDHAT_RELEASE
        .iter()
        .filter_map(|p| files.get(p))
        .find_map(|(_, e)| parse_redhat_release(&e.data))
    {
        return Some(os);
    }
    let debian_version = files.get(DEBIAN_VERSION);
    if debian_version.is_some() || !files.list_dir(DPKG_STATUS_D).is_empty() {
        return Some(debian(debian_version.map(|(_, e)| e.data.as_slice())));
    }
    BUSYBOX
        .iter()
        .filter_map(|p| files.get(p))
        .find_map(|(_, e)| busybox(&e.data))
}

/// `CentOS release 6.10 (Final)`, `Red Hat Enterprise Linux Server release
/// 6.10 (Santiago)`, `Oracle Linux Server release 6.10`.
pub fn parse_redhat_release(data: &[u8]) -> Option<OsInfo> {
    let text = String::from_utf8_lossy(data.get(..MAX_SIZE.min(data.len()))?);
    let line = text.lines().next()?.trim();
    let (name, rest) = line.split_once(" release ")?;
    let version = rest.split_whitespace().next()?;
    let (id, like): (&str, &[&str]) = [
        ("CentOS", ("centos", &["rhel", "fedora"][..])),
        ("Red Hat Enterprise Linux", ("rhel", &["fedora"][..])),
        ("Oracle Linux", ("ol", &["fedora"][..])),
        ("Rocky Linux", ("rocky", &["rhel", "centos", "fedora"][..])),
        (
            "AlmaLinux",
            ("almalinux", &["rhel", "centos", "fedora"][..]),
        ),
        ("Amazon Linux", ("amzn", &["centos", "rhel", "fedora"][..])),
        ("Fedora", ("fedora", &[][..])),
    ]
    .into_iter()
    .find(|(prefix, _)| name.starts_with(prefix))?
    .1;
    if !version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.')
    {
        return None;
    }
    Some(OsInfo {
        id: id.to_owned(),
        id_like: like.iter().map(|s| (*s).to_owned()).collect(),
        version_id: Some(version.to_owned()),
        version_codename: None,
        name: Some(name.to_owned()),
        pretty_name: Some(line.to_owned()),
    })
}

/// Debian from `etc/debian_version` (`12.5`, `11.9`, `trixie/sid`), or
/// from dpkg's `status.d/` alone (no version then).
fn debian(debian_version: Option<&[u8]>) -> OsInfo {
    let v = debian_version
        .map(|d| {
            String::from_utf8_lossy(&d[..d.len().min(256)])
                .trim()
                .to_owned()
        })
        .unwrap_or_default();
    let major = v
        .split('.')
        .next()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    let codename = match major {
        Some("9") => Some("stretch"),
        Some("10") => Some("buster"),
        Some("11") => Some("bullseye"),
        Some("12") => Some("bookworm"),
        Some("13") => Some("trixie"),
        // Testing says `trixie/sid`.
        None => v
            .split_once('/')
            .map(|(c, _)| c)
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase())),
        _ => None,
    };
    let name = "Debian GNU/Linux";
    OsInfo {
        id: "debian".into(),
        id_like: Vec::new(),
        version_id: major.map(str::to_owned),
        version_codename: codename.map(str::to_owned),
        name: Some(name.into()),
        pretty_name: Some(match (major, codename) {
            (Some(m), Some(c)) => format!("{name} {m} ({c})"),
            (Some(m), None) => format!("{name} {m}"),
            _ => name.into(),
        }),
    }
}

/// `BusyBox v1.36.1 (2023-05-18 22:34:17 UTC)` inside the binary.
fn busybox_banner(data: &[u8]) -> Option<&[u8]> {
    let at = data
        .windows(BUSYBOX_MARK.len())
        .position(|w| w == BUSYBOX_MARK)?;
    Some(&data[at..data.len().min(at + 64)])
}

fn busybox(data: &[u8]) -> Option<OsInfo> {
    let banner = busybox_banner(data)?;
    let version: String = banner[BUSYBOX_MARK.len()..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'.')
        .map(|&b| b as char)
        .collect();
    if !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(OsInfo {
        id: "busybox".into(),
        id_like: Vec::new(),
        pretty_name: Some(format!("BusyBox v{version}")),
        version_id: Some(version),
        version_codename: None,
        name: Some("BusyBox".into()),
    })
}

/// Parses os-release bytes; `None` when no variable could be read at all.
/// Problems on single lines do not stop the rest from being read.
pub fn parse_bytes(data: &[u8]) -> (Option<OsInfo>, Vec<OsReleaseError>) {
    if data.len() > MAX_SIZE {
        return (None, vec![OsReleaseError::TooLarge(data.len())]);
    }
    let mut errors = Vec::new();
    let text = String::from_utf8_lossy(data);
    if matches!(text, std::borrow::Cow::Owned(_)) {
        errors.push(OsReleaseError::NotUtf8);
    }
    let (vars, mut errs) = parse_vars(&text);
    errors.append(&mut errs);
    if vars.is_empty() {
        errors.push(OsReleaseError::Empty);
        return (None, errors);
    }
    (Some(os_info(&vars)), errors)
}

fn os_info(vars: &BTreeMap<String, String>) -> OsInfo {
    let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
    OsInfo {
        // Lower case per os-release(5); a few vendors have shipped "Ubuntu".
        id: get("ID").map_or_else(|| "linux".to_owned(), |v| v.to_ascii_lowercase()),
        id_like: get("ID_LIKE")
            .map(|v| {
                v.split_whitespace()
                    .map(|s| s.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default(),
        version_id: get("VERSION_ID"),
        version_codename: get("VERSION_CODENAME"),
        name: get("NAME"),
        pretty_name: get("PRETTY_NAME"),
    }
}

/// Shell-style `KEY=VALUE` assignments. Later assignments win, as in a shell.
pub fn parse_vars(text: &str) -> (BTreeMap<String, String>, Vec<OsReleaseError>) {
    let mut vars = BTreeMap::new();
    let mut errors = Vec::new();
    let mut p = Parser {
        chars: text.chars().peekable(),
        line: 1,
    };
    loop {
        p.skip_while(|c| c.is_whitespace());
        let Some(&c) = p.chars.peek() else { break };
        let line = p.line;
        if c == '#' {
            p.skip_while(|c| c != '\n');
            continue;
        }
        let key: String = p.take_while(|c| c != '=' && c != '\n');
        if p.chars.peek() != Some(&'=') {
            errors.push(OsReleaseError::NotAssignment {
                line,
                text: key.trim().chars().take(80).collect(),
            });
            continue;
        }
        p.chars.next();
        let key = key.trim_end();
        let value = p.value();
        let value = match value {
            Ok(v) => v,
            Err(()) => {
                errors.push(OsReleaseError::UnterminatedQuote { line });
                continue;
            }
        };
        if !valid_name(key) {
            errors.push(OsReleaseError::InvalidName {
                line,
                name: key.chars().take(80).collect(),
            });
            continue;
        }
        vars.insert(key.to_owned(), value);
    }
    (vars, errors)
}

fn valid_name(k: &str) -> bool {
    let mut cs = k.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while self.chars.peek().is_some_and(|&c| f(c)) {
            self.next();
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(&c) = self.chars.peek() {
            if !f(c) {
                break;
            }
            s.push(c);
            self.next();
        }
        s
    }

    /// The value after `=`, up to an unquoted newline. Unquoted trailing
    /// blanks are dropped (systemd does the same); quoted ones are kept.
    fn value(&mut self) -> Result<String, ()> {
        self.skip_while(|c| c == ' ' || c == '\t');
        let mut v = String::new();
        let mut keep = 0;
        loop {
            match self.next() {
                None | Some('\n') => break,
                Some('\\') => match self.next() {
                    Some('\n') | None => {}
                    Some(c) => {
                        v.push(c);
                        keep = v.len();
                    }
                },
                Some('"') => {
                    loop {
                        match self.next() {
                            None => return Err(()),
                            Some('"') => break,
                            Some('\\') => match self.next() {
                                None => return Err(()),
                                Some('\n') => {}
                                Some(c @ ('"' | '\\' | '`' | '$')) => v.push(c),
                                Some(c) => {
                                    v.push('\\');
                                    v.push(c);
                                }
                            },
                            Some(c) => v.push(c),
                        }
                    }
                    keep = v.len();
                }
                Some('\'') => {
                    loop {
                        match self.next() {
                            None => return Err(()),
                            Some('\'') => break,
                            Some(c) => v.push(c),
                        }
                    }
                    keep = v.len();
                }
                Some(c) => {
                    v.push(c);
                    if !c.is_whitespace() {
                        keep = v.len();
                    }
                }
            }
        }
        v.truncate(keep);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fs::FileEntry;

    fn parse(data: &[u8]) -> OsInfo {
        let (info, errors) = parse_bytes(data);
        assert!(errors.is_empty(), "{errors:?}");
        info.unwrap()
    }

    #[test]
    fn debian_12() {
        let os = parse(include_bytes!("fixtures/debian-12"));
        assert_eq!(
            os,
            OsInfo {
                id: "debian".into(),
                id_like: vec![],
                version_id: Some("12".into()),
                version_codename: Some("bookworm".into()),
                name: Some("Debian GNU/Linux".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            }
        );
    }

    #[test]
    fn ubuntu_22_04() {
        let os = parse(include_bytes!("fixtures/ubuntu-22.04"));
        assert_eq!(
            os,
            OsInfo {
                id: "ubuntu".into(),
                id_like: vec!["debian".into()],
                version_id: Some("22.04".into()),
                version_codename: Some("jammy".into()),
                name: Some("Ubuntu".into()),
                pretty_name: Some("Ubuntu 22.04.4 LTS".into()),
            }
        );
        assert!(os.is_like("debian") && os.is_like("ubuntu") && !os.is_like("fedora"));
    }

    #[test]
    fn rpm_and_apk_distributions() {
        let sles = parse(include_bytes!("fixtures/sles-15.3"));
        assert_eq!(
            (sles.id.as_str(), sles.version_id.as_deref()),
            ("sles", Some("15.3"))
        );
        assert_eq!(sles.id_like, ["suse"]);
        // The file has no final newline; the last value must still be whole.
        let (vars, _) =
            parse_vars(std::str::from_utf8(include_bytes!("fixtures/sles-15.3")).unwrap());
        assert_eq!(vars["DOCUMENTATION_URL"], "https://documentation.suse.com/");

        let mariner = parse(include_bytes!("fixtures/mariner-2.0"));
        assert_eq!(mariner.id, "mariner");
        assert_eq!(mariner.version_id.as_deref(), Some("2.0"));
        assert_eq!(mariner.name.as_deref(), Some("Common Base Linux Mariner"));
        assert_eq!(mariner.version_codename, None);

        let alpine = parse(include_bytes!("fixtures/alpine-3.16"));
        assert_eq!(alpine.id, "alpine");
        assert_eq!(alpine.version_id.as_deref(), Some("3.16.2"));

        let rhel = parse(include_bytes!("fixtures/rhel-8.8"));
        assert_eq!(rhel.id, "rhel");
        assert_eq!(rhel.id_like, ["fedora"]);
        assert_eq!(rhel.version_id.as_deref(), Some("8.8"));
    }

    /// (fixture, ID, ID_LIKE, VERSION_ID, NAME): the values the rpm and apk
    /// purls take their namespace and `distro=` qualifier from.
    #[test]
    fn every_supported_distribution() {
        type Case = (
            &'static [u8],
            &'static str,
            &'static [&'static str],
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                include_bytes!("fixtures/amzn-2"),
                "amzn",
                &["centos", "rhel", "fedora"],
                "2",
                "Amazon Linux",
            ),
            (
                include_bytes!("fixtures/amzn-2023"),
                "amzn",
                &["fedora"],
                "2023",
                "Amazon Linux",
            ),
            (
                include_bytes!("fixtures/rhel-9.3"),
                "rhel",
                &["fedora"],
                "9.3",
                "Red Hat Enterprise Linux",
            ),
            (
                include_bytes!("fixtures/rocky-9.3"),
                "rocky",
                &["rhel", "centos", "fedora"],
                "9.3",
                "Rocky Linux",
            ),
            (
                include_bytes!("fixtures/almalinux-9.3"),
                "almalinux",
                &["rhel", "centos", "fedora"],
                "9.3",
                "AlmaLinux",
            ),
            (
                include_bytes!("fixtures/centos-7"),
                "centos",
                &["rhel", "fedora"],
                "7",
                "CentOS Linux",
            ),
            (
                include_bytes!("fixtures/fedora-39"),
                "fedora",
                &[],
                "39",
                "Fedora Linux",
            ),
            (
                include_bytes!("fixtures/ol-8.9"),
                "ol",
                &["fedora"],
                "8.9",
                "Oracle Linux Server",
            ),
            (
                include_bytes!("fixtures/opensuse-leap-15.5"),
                "opensuse-leap",
                &["suse", "opensuse"],
                "15.5",
                "openSUSE Leap",
            ),
            (
                include_bytes!("fixtures/photon-5.0"),
                "photon",
                &[],
                "5.0",
                "VMware Photon OS",
            ),
            (
                include_bytes!("fixtures/wolfi"),
                "wolfi",
                &[],
                "20230201",
                "Wolfi",
            ),
            (
                include_bytes!("fixtures/chainguard"),
                "chainguard",
                &[],
                "20230214",
                "Chainguard",
            ),
            (
                include_bytes!("fixtures/azurelinux-3.0"),
                "azurelinux",
                &[],
                "3.0",
                "Microsoft Azure Linux",
            ),
        ];
        for (data, id, like, version, name) in cases {
            let os = parse(data);
            assert_eq!(
                (os.id.as_str(), os.version_id.as_deref(), os.name.as_deref()),
                (*id, Some(*version), Some(*name))
            );
            assert_eq!(os.id_like, *like, "{id}");
        }
        // Fedora writes VERSION_CODENAME="": that is no codename.
        assert_eq!(
            parse(include_bytes!("fixtures/fedora-39")).version_codename,
            None
        );
    }

    #[test]
    fn release_files_before_os_release() {
        let os = parse_redhat_release(b"CentOS release 6.10 (Final)\n").unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("centos", Some("6.10"))
        );
        assert!(os.is_like("rhel"));
        let os = parse_redhat_release(b"Red Hat Enterprise Linux Server release 6.10 (Santiago)\n")
            .unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("rhel", Some("6.10"))
        );
        let os = parse_redhat_release(b"Amazon Linux release 2 (Karoo)\n").unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("amzn", Some("2"))
        );
        assert_eq!(parse_redhat_release(b"Slackware 15.0\n"), None);
        assert_eq!(parse_redhat_release(b"Foo release 1\n"), None);
        assert_eq!(parse_redhat_release(b""), None);

        // Oracle's own file wins over the redhat-release it also ships.
        let c = catalog(&tree(
            &[
                (
                    "etc/redhat-release",
                    b"Red Hat Enterprise Linux Server release 6.10 (Santiago)\n",
                ),
                ("etc/oracle-release", b"Oracle Linux Server release 6.10\n"),
            ],
            &[],
        ));
        assert_eq!(c.os.unwrap().id, "ol");
        // os-release, when there, is the only source.
        let c = catalog(&tree(
            &[
                ("etc/os-release", include_bytes!("fixtures/rocky-9.3")),
                (
                    "etc/redhat-release",
                    b"Rocky Linux release 9.3 (Blue Onyx)\n",
                ),
            ],
            &[],
        ));
        assert_eq!(
            c.os.unwrap().pretty_name.as_deref(),
            Some("Rocky Linux 9.3 (Blue Onyx)")
        );
    }

    #[test]
    fn distroless_and_busybox() {
        // distroless without base-files: dpkg's status.d and debian_version.
        let os = catalog(&tree(
            &[
                ("var/lib/dpkg/status.d/libc6", b"Package: libc6\n"),
                ("etc/debian_version", b"12.5\n"),
            ],
            &[],
        ))
        .os
        .unwrap();
        assert_eq!(
            (
                os.id.as_str(),
                os.version_id.as_deref(),
                os.version_codename.as_deref()
            ),
            ("debian", Some("12"), Some("bookworm"))
        );
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let os = catalog(&tree(
            &[("var/lib/dpkg/status.d/tzdata", b"Package: tzdata\n")],
            &[],
        ))
        .os
        .unwrap();
        assert_eq!((os.id.as_str(), os.version_id), ("debian", None));
        let os = catalog(&tree(&[("etc/debian_version", b"trixie/sid\n")], &[]))
            .os
            .unwrap();
        assert_eq!(os.version_codename.as_deref(), Some("trixie"));

        // busybox: the banner inside the binary, which reduce() keeps alone.
        let mut bin = vec![0x7fu8, b'E', b'L', b'F'];
        bin.extend(std::iter::repeat_n(0u8, 5000));
        bin.extend_from_slice(b"BusyBox v1.36.1 (2023-05-18 22:34:17 UTC)\0more");
        bin.extend(std::iter::repeat_n(0u8, 5000));
        let kept = OsReleaseCataloger.reduce("bin/busybox", bin.clone());
        assert!(kept.starts_with(b"BusyBox v1.36.1 (") && kept.len() <= 64);
        assert_eq!(
            OsReleaseCataloger.reduce("etc/os-release", b"ID=x".to_vec()),
            b"ID=x"
        );
        for data in [bin, kept] {
            let os = catalog(&tree(&[("bin/busybox", &data)], &[])).os.unwrap();
            assert_eq!(
                (os.id.as_str(), os.version_id.as_deref(), os.name.as_deref()),
                ("busybox", Some("1.36.1"), Some("BusyBox"))
            );
        }
        assert!(
            OsReleaseCataloger
                .reduce("bin/busybox", vec![0; 100])
                .is_empty()
        );
        assert!(
            catalog(&tree(&[("bin/busybox", b"BusyBox vX")], &[]))
                .os
                .is_none()
        );
        for p in [
            "etc/redhat-release",
            "etc/debian_version",
            "bin/busybox",
            "usr/bin/busybox",
        ] {
            assert!(OsReleaseCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn shell_quoting_and_escapes() {
        let text = concat!(
            "# comment\n",
            "\n",
            "  INDENTED=yes\n",
            "A=\"with \\\"escaped\\\" quotes and \\\\ and \\$HOME and \\x\"\n",
            "B='single $quoted \\ stays'\n",
            "C=unquoted\\ space   \n",
            "D=\"con\"'cat'enated\n",
            "E=\"multi\nline\"\n",
            "F=cont\\\ninued\n",
            "G=\"  kept  \"\n",
            "H=\n",
            "A=\"later wins\"\r\n",
        );
        let (vars, errors) = parse_vars(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(vars["INDENTED"], "yes");
        assert_eq!(vars["B"], "single $quoted \\ stays");
        assert_eq!(vars["C"], "unquoted space");
        assert_eq!(vars["D"], "concatenated");
        assert_eq!(vars["E"], "multi\nline");
        assert_eq!(vars["F"], "continued");
        assert_eq!(vars["G"], "  kept  ");
        assert_eq!(vars["H"], "");
        // CRLF: the \r is unquoted trailing whitespace.
        assert_eq!(vars["A"], "later wins");

        let (vars, _) = parse_vars("A=\"with \\\"escaped\\\" and \\\\ and \\$H and \\x\"");
        assert_eq!(vars["A"], "with \"escaped\" and \\ and $H and \\x");
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let (info, errors) =
            parse_bytes(b"ID=debian\njunk line\n1BAD=x\nVERSION_ID=\"12\nNAME=x\n");
        // The unterminated quote swallows the rest: nothing after it is trusted.
        assert_eq!(
            errors,
            [
                OsReleaseError::NotAssignment {
                    line: 2,
                    text: "junk line".into()
                },
                OsReleaseError::InvalidName {
                    line: 3,
                    name: "1BAD".into()
                },
                OsReleaseError::UnterminatedQuote { line: 4 },
            ]
        );
        let info = info.unwrap();
        assert_eq!(info.id, "debian");
        assert_eq!(info.version_id, None);
    }

    #[test]
    fn garbage_and_defaults() {
        let (info, errors) = parse_bytes(&[0xff, 0xfe, 0, 1, 2, b'\n']);
        assert!(info.is_none());
        assert!(errors.contains(&OsReleaseError::NotUtf8));
        assert!(errors.contains(&OsReleaseError::Empty));

        let (info, errors) = parse_bytes(&vec![b'A'; MAX_SIZE + 1]);
        assert!(info.is_none());
        assert_eq!(errors, [OsReleaseError::TooLarge(MAX_SIZE + 1)]);

        // os-release(5): ID defaults to "linux".
        let os = parse(b"NAME=Foo\nID=\"MyDistro\"\n");
        assert_eq!(os.id, "mydistro");
        let os = parse(b"NAME=Foo\n");
        assert_eq!(os.id, "linux");
    }

    fn tree(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> FileTree {
        let mut t = FileTree::default();
        for (p, d) in files {
            t.files.insert(
                (*p).into(),
                FileEntry {
                    data: (*d).into(),
                    layer: 0,
                },
            );
        }
        for (p, l) in links {
            t.symlinks.insert((*p).into(), (*l).into());
        }
        t
    }

    fn catalog(t: &FileTree) -> Catalog {
        let mut c = Catalog::default();
        OsReleaseCataloger.catalog(t, None, &mut c);
        c
    }

    #[test]
    fn cataloger_prefers_etc_and_follows_symlinks() {
        let deb: &[u8] = include_bytes!("fixtures/debian-12");
        let ubu: &[u8] = include_bytes!("fixtures/ubuntu-22.04");
        let c = catalog(&tree(
            &[("etc/os-release", ubu), ("usr/lib/os-release", deb)],
            &[],
        ));
        assert_eq!(c.os.unwrap().id, "ubuntu");

        let c = catalog(&tree(&[("usr/lib/os-release", deb)], &[]));
        assert_eq!(c.os.unwrap().id, "debian");

        let c = catalog(&tree(
            &[("usr/lib/os-release", deb)],
            &[("etc/os-release", "../usr/lib/os-release")],
        ));
        assert_eq!(c.os.unwrap().id, "debian");
        assert!(c.warnings.is_empty());

        // A dangling etc/os-release falls back like a missing one.
        let c = catalog(&tree(
            &[("usr/lib/os-release", deb)],
            &[("etc/os-release", "/nowhere")],
        ));
        assert_eq!(c.os.unwrap().id, "debian");

        let c = catalog(&FileTree::default());
        assert!(c.os.is_none() && c.warnings.is_empty());

        let c = catalog(&tree(&[("etc/os-release", b"\x00\x01garbage")], &[]));
        assert!(c.os.is_none());
        assert!(c.warnings[0].starts_with("os-release /etc/os-release: "));
    }
}
