//! Which distribution an apk or rpm database's packages belong to: what
//! their purl namespace and `distro=` qualifier say.
//!
//! os-release is the first witness, but only for its own package family:
//! an image whose detection found Debian evidence (`etc/debian_version`, a
//! dpkg `status.d`) or nothing at all must never put `pkg:apk/debian/…` or
//! `pkg:rpm/debian/…?distro=12` in the SBOM, which would match Debian's
//! advisories against Alpine's or Red Hat's builds. When os-release is
//! absent or belongs to another family, the database itself tells:
//!
//! - apk: the `alpine-release` package (its version is Alpine's VERSION_ID,
//!   `3.18.2-r0` → `3.18.2`), Wolfi's and Chainguard's `*-baselayout`;
//!   otherwise namespace `alpine` (what the purl type's vendor means for an
//!   apk database) with no `distro`.
//! - rpm: the distribution's release package (`redhat-release`,
//!   `rocky-release`, `fedora-release-common`, `system-release` of Amazon
//!   Linux, `sles-release`, …) with VERSION_ID as that distribution's
//!   os-release writes it; else the dist tag most of the packages' releases
//!   carry (`.fc39` → fedora 39, `.amzn2023` → amzn 2023, `.el9` → the
//!   RHEL-compatible `rhel` 9, `.cm2` → mariner 2.0, `.azl3` → azurelinux
//!   3.0) when more than half of them carry it; else no namespace and no
//!   `distro` rather than a guess.

use std::collections::BTreeMap;

use crate::catalog::{OsInfo, Package};

/// Distributions whose packages are apk.
const APK_FAMILY: [&str; 5] = ["alpine", "wolfi", "chainguard", "postmarketos", "adelie"];
/// Distributions whose packages are rpm (os-release `ID` or `ID_LIKE`).
const RPM_FAMILY: [&str; 17] = [
    "rhel",
    "fedora",
    "centos",
    "rocky",
    "almalinux",
    "ol",
    "amzn",
    "suse",
    "sles",
    "opensuse",
    "opensuse-leap",
    "opensuse-tumbleweed",
    "mariner",
    "azurelinux",
    "photon",
    "openeuler",
    "anolis",
];

fn in_family(os: &OsInfo, family: &[&str]) -> bool {
    family.iter().any(|f| os.is_like(f))
}

fn os(id: &str, name: &str, version_id: Option<String>) -> OsInfo {
    OsInfo {
        id: id.to_owned(),
        version_id,
        name: Some(name.to_owned()),
        ..OsInfo::default()
    }
}

/// `[epoch:]version-release` → (version, release).
fn version_release(v: &str) -> (&str, &str) {
    let v = super::deb::split_epoch(v).1;
    v.rsplit_once('-').unwrap_or((v, ""))
}

fn major(v: &str) -> String {
    v.split('.').next().unwrap_or(v).to_owned()
}

/// The distribution of an apk database's packages; `None`: namespace
/// `alpine`, no `distro`.
pub(super) fn apk(os_release: Option<&OsInfo>, pkgs: &[&Package]) -> Option<OsInfo> {
    if let Some(o) = os_release.filter(|o| in_family(o, &APK_FAMILY)) {
        return Some(o.clone());
    }
    pkgs.iter().find_map(|p| match p.name.as_str() {
        "alpine-release" => Some(os(
            "alpine",
            "Alpine Linux",
            Some(version_release(&p.version).0.to_owned()).filter(|v| !v.is_empty()),
        )),
        "wolfi-baselayout" => Some(os("wolfi", "Wolfi", None)),
        "chainguard-baselayout" => Some(os("chainguard", "Chainguard", None)),
        _ => None,
    })
}

/// The distribution of an rpm database's packages; `None`: no namespace,
/// no `distro`.
pub(super) fn rpm(os_release: Option<&OsInfo>, pkgs: &[&Package]) -> Option<OsInfo> {
    if let Some(o) = os_release.filter(|o| in_family(o, &RPM_FAMILY)) {
        return Some(o.clone());
    }
    pkgs.iter()
        .find_map(|p| release_package(p))
        .or_else(|| dist_tag(pkgs))
}

/// A distribution's release package, with VERSION_ID as its os-release has
/// it (RHEL and clones `9.3`, CentOS `9`, Fedora `39`, Amazon `2023`).
fn release_package(p: &Package) -> Option<OsInfo> {
    let v = version_release(&p.version).0;
    let (id, name, version) = match p.name.as_str() {
        "redhat-release" => ("rhel", "Red Hat Enterprise Linux", v.to_owned()),
        "centos-stream-release" | "centos-release" => ("centos", "CentOS Linux", major(v)),
        "rocky-release" => ("rocky", "Rocky Linux", v.to_owned()),
        "almalinux-release" => ("almalinux", "AlmaLinux", v.to_owned()),
        "oraclelinux-release" => ("ol", "Oracle Linux Server", v.to_owned()),
        "fedora-release-common" | "fedora-release" => ("fedora", "Fedora Linux", major(v)),
        "system-release" => ("amzn", "Amazon Linux", major(v)),
        "sles-release" => ("sles", "SLES", v.to_owned()),
        "openSUSE-release" if v.starts_with("15.") => {
            ("opensuse-leap", "openSUSE Leap", v.to_owned())
        }
        "openSUSE-release" => ("opensuse-tumbleweed", "openSUSE Tumbleweed", v.to_owned()),
        "mariner-release" => ("mariner", "CBL-Mariner", v.to_owned()),
        "azurelinux-release" => ("azurelinux", "Microsoft Azure Linux", v.to_owned()),
        _ => return None,
    };
    let ok = !version.is_empty()
        && version.len() <= 32
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.');
    Some(os(id, name, ok.then_some(version)))
}

/// The dist tag more than half the packages' releases carry.
fn dist_tag(pkgs: &[&Package]) -> Option<OsInfo> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for p in pkgs {
        if let Some(tag) = tag_of(version_release(&p.version).1) {
            *counts.entry(tag).or_default() += 1;
        }
    }
    let ((prefix, n), count) = counts.into_iter().max_by_key(|(_, c)| *c)?;
    if count * 2 <= pkgs.len() {
        return None;
    }
    let (id, name, version) = match prefix {
        "fc" => ("fedora", "Fedora Linux", n.to_owned()),
        "amzn" => ("amzn", "Amazon Linux", n.to_owned()),
        "el" => ("rhel", "Red Hat Enterprise Linux", n.to_owned()),
        "cm" => ("mariner", "CBL-Mariner", format!("{n}.0")),
        "azl" => ("azurelinux", "Microsoft Azure Linux", format!("{n}.0")),
        _ => return None,
    };
    Some(os(id, name, Some(version)))
}

/// `36.fc39` → (`fc`, `39`); `0.5.el9_3` → (`el`, `9`); `1.amzn2023.0.9` →
/// (`amzn`, `2023`).
fn tag_of(release: &str) -> Option<(&str, &str)> {
    release.split(['.', '_', '+', '~']).find_map(|t| {
        let digits = t.find(|c: char| c.is_ascii_digit())?;
        let (prefix, n) = t.split_at(digits);
        let known = matches!(prefix, "fc" | "amzn" | "el" | "cm" | "azl");
        (known && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())).then_some((prefix, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Ecosystem;

    fn pkg(eco: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            ecosystem: eco,
            name: name.into(),
            version: version.into(),
            arch: Some("x86_64".into()),
            source_name: None,
            source_version: None,
            location: "var/lib/rpm/rpmdb.sqlite".into(),
            layer: 0,
            os_owner: None,
        }
    }

    fn ids(o: Option<OsInfo>) -> Option<(String, Option<String>)> {
        o.map(|o| (o.id, o.version_id))
    }

    fn some(id: &str, v: Option<&str>) -> Option<(String, Option<String>)> {
        Some((id.into(), v.map(Into::into)))
    }

    #[test]
    fn os_release_of_another_family_is_not_used() {
        let debian = OsInfo {
            id: "debian".into(),
            version_id: Some("12".into()),
            ..OsInfo::default()
        };
        let busybox = pkg(Ecosystem::Apk, "busybox", "1.36.1-r2");
        assert_eq!(apk(Some(&debian), &[&busybox]), None);
        let untagged = pkg(Ecosystem::Rpm, "bash", "5.2.15-1");
        assert_eq!(rpm(Some(&debian), &[&untagged]), None);
        // The database's own evidence instead of Debian's.
        let bash = pkg(Ecosystem::Rpm, "bash", "5.2.15-1.fc39");
        assert_eq!(
            ids(rpm(Some(&debian), &[&bash])),
            some("fedora", Some("39"))
        );
        // Its own family's os-release wins over the database.
        let rocky = OsInfo {
            id: "rocky".into(),
            id_like: vec!["rhel".into()],
            version_id: Some("9.3".into()),
            ..OsInfo::default()
        };
        assert_eq!(ids(rpm(Some(&rocky), &[&bash])), some("rocky", Some("9.3")));
    }

    #[test]
    fn apk_from_its_database() {
        let rel = pkg(Ecosystem::Apk, "alpine-release", "3.18.2-r0");
        let bb = pkg(Ecosystem::Apk, "busybox", "1.36.1-r2");
        assert_eq!(ids(apk(None, &[&bb, &rel])), some("alpine", Some("3.18.2")));
        let wolfi = pkg(Ecosystem::Apk, "wolfi-baselayout", "20230201-r7");
        assert_eq!(ids(apk(None, &[&wolfi])), some("wolfi", None));
        assert_eq!(apk(None, &[&bb]), None);
    }

    #[test]
    fn rpm_from_release_packages_and_dist_tags() {
        let r = |name: &str, v: &str| pkg(Ecosystem::Rpm, name, v);
        for (name, v, want) in [
            ("redhat-release", "9.3-0.5.el9", some("rhel", Some("9.3"))),
            ("rocky-release", "9.3-1.2.el9", some("rocky", Some("9.3"))),
            (
                "centos-stream-release",
                "9.0-24.el9",
                some("centos", Some("9")),
            ),
            ("fedora-release-common", "39-36", some("fedora", Some("39"))),
            (
                "system-release",
                "1:2023.3.20240131-0.amzn2023",
                some("amzn", Some("2023")),
            ),
            ("sles-release", "15.3-55.4.1", some("sles", Some("15.3"))),
            (
                "openSUSE-release",
                "20240101-2501.1",
                some("opensuse-tumbleweed", Some("20240101")),
            ),
        ] {
            assert_eq!(ids(rpm(None, &[&r(name, v)])), want, "{name}");
        }
        let fc = [
            r("bash", "5.2.15-5.fc39"),
            r("glibc", "2.38-16.fc39"),
            r("x", "1-1"),
        ];
        let fc: Vec<&Package> = fc.iter().collect();
        assert_eq!(ids(rpm(None, &fc)), some("fedora", Some("39")));
        let amzn = [
            r("bash", "5.2.15-1.amzn2023.0.2"),
            r("openssl-libs", "1:3.0.8-1.amzn2023.0.9"),
        ];
        let amzn: Vec<&Package> = amzn.iter().collect();
        assert_eq!(ids(rpm(None, &amzn)), some("amzn", Some("2023")));
        let el = [r("bash", "5.1.8-6.el9_1"), r("openssl", "1:3.0.7-24.el9")];
        let el: Vec<&Package> = el.iter().collect();
        assert_eq!(ids(rpm(None, &el)), some("rhel", Some("9")));
        assert_eq!(
            ids(rpm(None, &[&r("tdnf", "3.5.2-1.cm2")])),
            some("mariner", Some("2.0"))
        );
        // No majority, or no known tag: nothing is guessed.
        let mixed = [r("a", "1-1.fc39"), r("b", "1-1.el9")];
        let mixed: Vec<&Package> = mixed.iter().collect();
        assert_eq!(rpm(None, &mixed), None);
        assert_eq!(rpm(None, &[&r("a", "1-1.mga9")]), None);
        assert_eq!(rpm(None, &[&r("a", "1")]), None);
    }
}
