//! Alpine packages the way inspector-sbomgen writes them (its
//! `alpine_3.18.2` SBOM): one flat `application` component per installed
//! package, no nesting under the origin, purl
//! `pkg:apk/<ID>/<name>@<version>?arch=<A>&distro=<VERSION_ID>`, properties
//! `source_file_scanner` and `source_package_collector` `alpine-apk`,
//! `source_path=/lib/apk/db/installed`.

use std::collections::BTreeSet;

use packageurl::PackageUrl;

use super::model::{Component, ComponentType};
use super::props;
use crate::catalog::{OsInfo, Package};

pub(super) fn purl(os: Option<&OsInfo>, p: &Package) -> Option<String> {
    let namespace = os.map_or("alpine", |o| o.id.as_str());
    let build = || -> Result<String, packageurl::Error> {
        let mut u = PackageUrl::new("apk", p.name.as_str())?;
        u.with_namespace(namespace)?
            .with_version(p.version.as_str())?;
        if let Some(a) = &p.arch {
            u.add_qualifier("arch", a.as_str())?;
        }
        if let Some(d) = os.and_then(|o| o.version_id.as_deref()) {
            u.add_qualifier("distro", d)?;
        }
        Ok(u.to_string())
    };
    match build() {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(package = %p.name, version = %p.version, error = %e, "no purl for apk package");
            None
        }
    }
}

/// One component per package (bom-refs unset).
pub(super) fn components(pkgs: &[&Package], os: Option<&OsInfo>) -> Vec<Component> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(pkgs.len());
    for p in pkgs {
        if !seen.insert((&p.name, &p.version, &p.arch)) {
            continue;
        }
        let mut c = Component::new(ComponentType::Application, p.name.as_str());
        c.version = Some(p.version.clone());
        c.purl = purl(os, p);
        c = c
            .with_property(props::SOURCE_FILE_SCANNER, "alpine-apk")
            .with_property(props::SOURCE_PACKAGE_COLLECTOR, "alpine-apk")
            .with_property(props::SOURCE_PATH, format!("/{}", p.location))
            .with_property(props::LAYER, p.layer.to_string())
            .with_property(props::LOCATION, p.location.as_str());
        out.push(c);
    }
    out
}
