//! Language packages (pypi, npm) the way inspector-sbomgen writes them
//! (its `python` and `node` SBOMs): flat `library` components,
//! purl `pkg:pypi/<PEP 503 name>@<version>` or `pkg:npm/<name>@<version>`
//! (a scope is the purl namespace, so `@` is encoded:
//! `pkg:npm/%40colors/colors@1.5.0`), properties `source_file_scanner` and
//! `source_package_collector` (`python-pkg`, `javascript-nodejs`) and
//! `source_path`, the metadata file with a leading `/`.
//!
//! Where we differ: inspector-sbomgen writes one component per metadata
//! file, so the same package installed in several places (npm's nested
//! `node_modules`, two Python versions) appears several times with the same
//! purl. We write one component per purl, its `source_path` the first
//! location by path, and every location and layer as `scangate:*`
//! properties, so that a finding names each place it applies to.
//!
//! A language package that an OS package installed (Debian's jars and
//! gems, `python3-*` eggs) is kept, since Inspector may know advisories the
//! distribution does not, and says so in `scangate:os_package`.

use std::collections::{BTreeMap, BTreeSet};

use packageurl::PackageUrl;

use super::model::{Component, ComponentType, Property};
use super::props;
use crate::catalog::python::normalize_name;
use crate::catalog::{Confidence, Ecosystem, Package, PackageNote};

/// inspector-sbomgen's collector names where its SBOMs show them
/// (python-pkg, javascript-nodejs, go-binary, java-jar); the others follow
/// its naming pattern.
fn collector(eco: Ecosystem) -> (&'static str, &'static str) {
    match eco {
        Ecosystem::Pypi => ("python-pkg", "python-pkg"),
        Ecosystem::Npm => ("javascript-nodejs", "javascript-nodejs"),
        Ecosystem::Golang => ("binaries", "go-binary"),
        Ecosystem::Cargo => ("binaries", "rust-binary"),
        Ecosystem::Maven => ("java-jar", "java-jar"),
        Ecosystem::Gem => ("ruby-gem", "ruby-gem"),
        Ecosystem::Composer => ("php-composer", "php-composer"),
        Ecosystem::Nuget => ("dotnet-deps", "dotnet-deps"),
        // OS ecosystems have their own modules; never called with one.
        Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm => ("", ""),
    }
}

pub(super) fn purl(eco: Ecosystem, name: &str, version: &str) -> Option<String> {
    let build = || -> Result<String, packageurl::Error> {
        let mut u = match eco {
            Ecosystem::Pypi => PackageUrl::new("pypi", normalize_name(name))?,
            _ if eco.namespaced() => match name.rsplit_once('/') {
                Some((ns, n)) if !ns.is_empty() && !n.is_empty() => {
                    let mut u = PackageUrl::new(eco.purl_type(), n)?;
                    u.with_namespace(ns)?;
                    u
                }
                _ => PackageUrl::new(eco.purl_type(), name)?,
            },
            _ => PackageUrl::new(eco.purl_type(), name)?,
        };
        u.with_version(version)?;
        Ok(u.to_string())
    };
    match build() {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(package = name, version, error = %e, "no purl for package");
            None
        }
    }
}

/// One component per purl (bom-refs unset).
pub(super) fn components(eco: Ecosystem, pkgs: &[&Package]) -> Vec<Component> {
    // Keyed by purl; packages without one stay apart by name and version.
    let mut groups: BTreeMap<(Option<String>, String, String), Vec<&Package>> = BTreeMap::new();
    for p in pkgs {
        let u = purl(eco, &p.name, &p.version);
        let key = match u {
            Some(u) => (Some(u), String::new(), String::new()),
            None => (None, p.name.clone(), p.version.clone()),
        };
        groups.entry(key).or_default().push(p);
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((u, _, _), mut members) in groups {
        members.sort_by(|a, b| (&a.location, &a.name).cmp(&(&b.location, &b.name)));
        let primary = members[0];
        let mut c = match (eco, primary.name.rsplit_once('/')) {
            (Ecosystem::Maven, Some((group, artifact))) => {
                let mut c = Component::new(ComponentType::Library, artifact);
                c.group = Some(group.to_owned());
                c
            }
            _ => Component::new(ComponentType::Library, primary.name.as_str()),
        };
        c.version = Some(primary.version.clone());
        c.purl = u;
        c = c
            .with_property(props::SOURCE_FILE_SCANNER, collector(eco).0)
            .with_property(props::SOURCE_PACKAGE_COLLECTOR, collector(eco).1)
            .with_property(props::SOURCE_PATH, format!("/{}", primary.location));
        for layer in members.iter().map(|p| p.layer).collect::<BTreeSet<_>>() {
            c = c.with_property(props::LAYER, layer.to_string());
        }
        for loc in members.iter().map(|p| &p.location).collect::<BTreeSet<_>>() {
            c = c.with_property(props::LOCATION, loc.as_str());
        }
        // Only a component wholly accounted for by OS packages is marked: a
        // policy that drops marked components must not drop a pip-installed
        // copy along with Debian's.
        let owners: Option<BTreeSet<&str>> =
            members.iter().map(|p| p.os_owner.as_deref()).collect();
        for owner in owners.unwrap_or_default() {
            c = c.with_property(props::OS_PACKAGE, owner);
        }
        out.push(c);
    }
    out
}

/// How a jar's identity was found (`pom.properties`, `pom.xml`,
/// `maven-repo`, `manifest`, `filename`): one property per kind of evidence
/// behind the component.
pub const EVIDENCE: &str = "scangate:evidence";
/// `high`, `medium` or `low`: the best of the component's locations, since
/// one strong witness settles an identity that another copy only suggests.
pub const CONFIDENCE: &str = "scangate:confidence";

/// States [`Catalog::notes`](crate::catalog::Catalog::notes) in the
/// components with the notes' purls.
pub(super) fn annotate(components: &mut [Component], notes: &[PackageNote]) {
    let mut by_purl: BTreeMap<String, (BTreeSet<&str>, Confidence)> = BTreeMap::new();
    for n in notes {
        let Some(u) = purl(n.ecosystem, &n.name, &n.version) else {
            continue;
        };
        let e = by_purl
            .entry(u)
            .or_insert_with(|| (BTreeSet::new(), n.confidence));
        e.0.insert(n.evidence);
        e.1 = e.1.max(n.confidence);
    }
    for c in components {
        let Some((evidence, confidence)) = c.purl.as_ref().and_then(|u| by_purl.get(u)) else {
            continue;
        };
        let prop = |name: &str, value: &str| Property {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        for e in evidence {
            c.properties.push(prop(EVIDENCE, e));
        }
        c.properties.push(prop(CONFIDENCE, confidence.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::run;
    use crate::image::fs::{FileEntry, FileTree};
    use crate::sbom::model::Component;
    use crate::sbom::{ImageMeta, SbomOptions, build, props};

    const PKG_INFO: &[u8] = include_bytes!("../catalog/dpkg/fixtures/owned/six-1.16.0.PKG-INFO");

    /// Debian's python3-six (its real file list and egg-info), optionally
    /// with the same six 1.16.0 pip-installed in /usr/local.
    fn tree(with_pip_copy: bool) -> FileTree {
        let mut files = vec![
            (
                "var/lib/dpkg/status",
                &b"Package: python3-six\nStatus: install ok installed\nArchitecture: all\n\
                   Source: six\nVersion: 1.16.0-4\n"[..],
            ),
            (
                "var/lib/dpkg/info/python3-six.list",
                include_bytes!("../catalog/dpkg/fixtures/owned/python3-six.list"),
            ),
            (
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                PKG_INFO,
            ),
        ];
        if with_pip_copy {
            files.push((
                "usr/local/lib/python3.11/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                PKG_INFO,
            ));
        }
        let mut t = FileTree::default();
        for (path, data) in files {
            t.files.insert(
                path.into(),
                FileEntry {
                    data: data.into(),
                    layer: 1,
                },
            );
        }
        t
    }

    fn six(with_pip_copy: bool) -> Component {
        let c = run(&tree(with_pip_copy));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let bom = build(&c, &ImageMeta::default(), &SbomOptions::default());
        let pypi: Vec<_> = bom
            .components
            .iter()
            .flat_map(|c| c.walk())
            .filter(|c| c.purl.as_deref() == Some("pkg:pypi/six@1.16.0"))
            .cloned()
            .collect();
        assert_eq!(pypi.len(), 1, "{pypi:?}");
        // The deb stays in the SBOM beside it.
        assert!(
            bom.components
                .iter()
                .flat_map(|c| c.walk())
                .any(|c| c.name == "python3-six"),
            "{bom:?}"
        );
        pypi.into_iter().next().unwrap()
    }

    #[test]
    fn os_owned_language_package_names_its_os_package() {
        let c = six(false);
        assert_eq!(
            c.property_values(props::OS_PACKAGE).collect::<Vec<_>>(),
            ["deb:python3-six"]
        );
    }

    #[test]
    fn a_copy_installed_otherwise_keeps_the_component_unmarked() {
        let c = six(true);
        assert_eq!(c.property_values(props::OS_PACKAGE).count(), 0);
        assert_eq!(c.property_values(props::LOCATION).count(), 2);
    }
}
