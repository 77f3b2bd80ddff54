//! Debian and Ubuntu packages the way inspector-sbomgen writes them, since
//! that is the input Inspector's Debian/Ubuntu matching was built for:
//!
//! - one top-level component per *source* package, named and versioned as
//!   the source (`glibc 2.36-9+deb12u4`), its binary packages nested in
//!   `components`. A binary with the source's name and version is the
//!   top-level component itself, never nested under it (`dpkg`, `e2fsprogs`).
//! - purl `pkg:deb/<ID>/<name>@<version without epoch>?arch=…&distro=…&epoch=N`
//!   with `distro` = `VERSION_CODENAME` (`VERSION_ID` when there is none, as
//!   for Ubuntu 14.04), `epoch` always present (`0` included), qualifiers in
//!   purl order, `+` percent-encoded, `~` not.
//! - Ubuntu binaries carry `&source=<source name>`; Debian binaries do not.
//! - properties `source_file_scanner=dpkg`, `source_package_collector=
//!   debian-dpkg` / `ubuntu-dpkg`, `source_path=/var/lib/dpkg/status`.
//!
//! Where we deliberately differ: inspector-sbomgen 1.1 gives every nested
//! binary the source's version, epoch and architecture (its Debian SBOMs
//! show `bsdutils@2.38.1-5 epoch=0 arch=amd64` where dpkg has
//! `1:2.38.1-5+b1`, and `libaudit1 arch=all`). We write each binary's own
//! version, epoch and architecture, and a binNMU'd binary whose name equals
//! its source (`bash 5.2.15-2+b2` from source `bash 5.2.15-2`) is nested
//! under the source instead of being folded into it. The source component's
//! architecture, which a source package does not really have, is that of
//! the binary of the same name, else of the first binary by name, as
//! inspector-sbomgen does. Inspector matches Debian findings on the source
//! component, so this loses no findings and keeps what is installed exact.
//! (inspector-sbomgen 1.1.0 wrote Ubuntu flat, binaries next to their source;
//! 1.1.1 nests Ubuntu like Debian, which we follow.)

use std::collections::{BTreeMap, BTreeSet};

use packageurl::PackageUrl;

use super::model::{Component, ComponentType};
use super::props;
use crate::catalog::{OsInfo, Package};

pub(super) struct Distro {
    namespace: String,
    distro: Option<String>,
    ubuntu: bool,
}

impl Distro {
    pub(super) fn new(os: Option<&OsInfo>) -> Self {
        match os {
            Some(os) => Distro {
                namespace: os.id.clone(),
                distro: os
                    .version_codename
                    .clone()
                    .or_else(|| os.version_id.clone()),
                ubuntu: os.is_like("ubuntu"),
            },
            // dpkg without os-release: only Debian ships images like that.
            None => Distro {
                namespace: "debian".into(),
                distro: None,
                ubuntu: false,
            },
        }
    }

    fn collector(&self) -> &'static str {
        if self.ubuntu {
            "ubuntu-dpkg"
        } else {
            "debian-dpkg"
        }
    }
}

/// `1:2.38.1-5` → (`1`, `2.38.1-5`); no epoch is epoch `0`.
pub(super) fn split_epoch(version: &str) -> (&str, &str) {
    match version.split_once(':') {
        Some((e, v)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (e, v),
        _ => ("0", version),
    }
}

pub(super) fn purl(
    d: &Distro,
    name: &str,
    version: &str,
    arch: Option<&str>,
    source: Option<&str>,
) -> Option<String> {
    let (epoch, upstream) = split_epoch(version);
    let build = || -> Result<String, packageurl::Error> {
        let mut p = PackageUrl::new("deb", name)?;
        p.with_namespace(d.namespace.as_str())?
            .with_version(upstream)?;
        if let Some(a) = arch {
            p.add_qualifier("arch", a)?;
        }
        if let Some(distro) = &d.distro {
            p.add_qualifier("distro", distro.as_str())?;
        }
        p.add_qualifier("epoch", epoch)?;
        if let Some(s) = source {
            p.add_qualifier("source", s)?;
        }
        Ok(p.to_string())
    };
    match build() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(package = name, version, error = %e, "no purl for deb package");
            None
        }
    }
}

fn package_component(
    d: &Distro,
    name: &str,
    version: &str,
    arch: Option<&str>,
    source: Option<&str>,
    primary: &Package,
    members: &[&Package],
) -> Component {
    let mut c = Component::new(ComponentType::Application, name);
    c.version = Some(split_epoch(version).1.to_owned());
    c.purl = purl(d, name, version, arch, source);
    c = c
        .with_property(props::SOURCE_FILE_SCANNER, "dpkg")
        .with_property(props::SOURCE_PACKAGE_COLLECTOR, d.collector())
        .with_property(props::SOURCE_PATH, format!("/{}", primary.location));
    for layer in members.iter().map(|p| p.layer).collect::<BTreeSet<_>>() {
        c = c.with_property(props::LAYER, layer.to_string());
    }
    for loc in members.iter().map(|p| &p.location).collect::<BTreeSet<_>>() {
        c = c.with_property(props::LOCATION, loc.as_str());
    }
    c
}

/// Top-level components (bom-refs unset), one per (source, source version),
/// sorted by name and version.
pub(super) fn components(pkgs: &[&Package], os: Option<&OsInfo>) -> Vec<Component> {
    let d = Distro::new(os);
    let mut groups: BTreeMap<(&str, &str), Vec<&Package>> = BTreeMap::new();
    for p in pkgs {
        let src = p.source_name.as_deref().unwrap_or(&p.name);
        let src_ver = p.source_version.as_deref().unwrap_or(&p.version);
        groups.entry((src, src_ver)).or_default().push(p);
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((src, src_ver), mut bins) in groups {
        bins.sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
        let merged = bins
            .iter()
            .position(|b| b.name == src && b.version == src_ver);
        let primary = bins[merged.unwrap_or(0)];
        // The source component speaks for the whole group: a finding on it
        // concerns every layer that brought one of its binaries.
        let mut top = package_component(
            &d,
            src,
            src_ver,
            primary.arch.as_deref(),
            None,
            primary,
            &bins,
        );
        let source_q = d.ubuntu.then_some(src);
        for (i, b) in bins.iter().enumerate() {
            if Some(i) == merged {
                continue;
            }
            top.components.push(package_component(
                &d,
                &b.name,
                &b.version,
                b.arch.as_deref(),
                source_q,
                b,
                std::slice::from_ref(b),
            ));
        }
        out.push(top);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs() {
        assert_eq!(split_epoch("1:2.38.1-5+deb12u3"), ("1", "2.38.1-5+deb12u3"));
        assert_eq!(split_epoch("2.38.1-5"), ("0", "2.38.1-5"));
        assert_eq!(split_epoch("10:1.0"), ("10", "1.0"));
        // Only an all-digit prefix is an epoch.
        assert_eq!(split_epoch("a:1"), ("0", "a:1"));
        assert_eq!(split_epoch(":1"), ("0", ":1"));
    }

    #[test]
    fn purls_are_encoded_like_inspector_sbomgen() {
        let os = OsInfo {
            id: "debian".into(),
            version_id: Some("12".into()),
            version_codename: Some("bookworm".into()),
            ..OsInfo::default()
        };
        let d = Distro::new(Some(&os));
        assert_eq!(
            purl(&d, "libstdc++6", "12.2.0-14", Some("amd64"), None).unwrap(),
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=bookworm&epoch=0"
        );
        assert_eq!(
            purl(&d, "usrmerge", "37~deb12u1", Some("all"), None).unwrap(),
            "pkg:deb/debian/usrmerge@37~deb12u1?arch=all&distro=bookworm&epoch=0"
        );
        assert_eq!(
            purl(&d, "gmp", "2:6.2.1+dfsg1-1.1", Some("amd64"), None).unwrap(),
            "pkg:deb/debian/gmp@6.2.1%2Bdfsg1-1.1?arch=amd64&distro=bookworm&epoch=2"
        );
        let ubuntu = OsInfo {
            id: "ubuntu".into(),
            id_like: vec!["debian".into()],
            version_id: Some("14.04".into()),
            ..OsInfo::default()
        };
        let d = Distro::new(Some(&ubuntu));
        assert_eq!(
            purl(
                &d,
                "libpcre3",
                "1:8.31-2ubuntu2.3",
                Some("amd64"),
                Some("pcre3")
            )
            .unwrap(),
            "pkg:deb/ubuntu/libpcre3@8.31-2ubuntu2.3?arch=amd64&distro=14.04&epoch=1&source=pcre3"
        );
        let d = Distro::new(None);
        assert_eq!(
            purl(&d, "a", "1", None, None).unwrap(),
            "pkg:deb/debian/a@1?epoch=0"
        );
    }
}
