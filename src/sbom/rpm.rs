//! RPM packages the way inspector-sbomgen writes them (its `fedora_latest`
//! SBOM): one flat `application` component per installed package, purl
//! `pkg:rpm/<ID>/<name>@<version>-<release>?arch=<arch>&distro=<VERSION_ID>&epoch=<N>`
//! (epoch always present, `0` included, and never in the version), name
//! and version as in the purl, properties `source_file_scanner` and
//! `source_package_collector` `rhel-rpm`, `source_path` the database
//! (`/usr/lib/sysimage/rpm/rpmdb.sqlite`).
//!
//! Where we deliberately differ: inspector-sbomgen also writes, flat next to
//! the binaries, a component for each source rpm whose name differs from
//! the binary's (`gcc` after `libgcc`, with the binary's arch and epoch),
//! although no package of that name is installed. We do not: in Amazon's
//! own scan of that SBOM every finding on a source component is also
//! reported on an installed binary (`nghttp2` / `libnghttp2`, `curl` /
//! `libcurl`), and a component that is not installed would make the SBOM
//! claim software the image does not have. Nor do we nest binaries under
//! their source as for Debian: Inspector's rpm matching is by binary
//! package, and that is the layout its generator uses for rpm. Nor do we
//! list `gpg-pubkey` entries (inspector-sbomgen does): they are the signing
//! keys rpm imported, not software, and no advisory names them.

use std::collections::BTreeSet;

use packageurl::PackageUrl;

use super::deb::split_epoch;
use super::model::{Component, ComponentType};
use super::props;
use crate::catalog::{OsInfo, Package};

const COLLECTOR: &str = "rhel-rpm";

pub(super) fn purl(os: Option<&OsInfo>, p: &Package) -> Option<String> {
    let (epoch, version) = split_epoch(&p.version);
    let build = || -> Result<String, packageurl::Error> {
        let mut u = PackageUrl::new("rpm", p.name.as_str())?;
        if let Some(os) = os {
            u.with_namespace(os.id.as_str())?;
        }
        u.with_version(version)?;
        if let Some(a) = &p.arch {
            u.add_qualifier("arch", a.as_str())?;
        }
        if let Some(d) = os.and_then(|o| o.version_id.as_deref()) {
            u.add_qualifier("distro", d)?;
        }
        u.add_qualifier("epoch", epoch)?;
        Ok(u.to_string())
    };
    match build() {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(package = %p.name, version = %p.version, error = %e, "no purl for rpm package");
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
        c.version = Some(split_epoch(&p.version).1.to_owned());
        c.purl = purl(os, p);
        c = c
            .with_property(props::SOURCE_FILE_SCANNER, COLLECTOR)
            .with_property(props::SOURCE_PACKAGE_COLLECTOR, COLLECTOR)
            .with_property(props::SOURCE_PATH, format!("/{}", p.location))
            .with_property(props::LAYER, p.layer.to_string())
            .with_property(props::LOCATION, p.location.as_str());
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::str::FromStr;

    use super::*;
    use crate::catalog::rpm::header::tests::{blob, s};
    use crate::catalog::{self, Catalog, Ecosystem};
    use crate::image::fs::FileTree;
    use crate::sbom::{Bom, ImageMeta, SbomOptions, build};

    const FEDORA_39: &[u8] = include_bytes!("../catalog/osrelease/fixtures/fedora-39");
    const SLES_15_3: &[u8] = include_bytes!("../catalog/osrelease/fixtures/sles-15.3");
    const SLE15_NDB: &[u8] = include_bytes!("../catalog/rpm/fixtures/sle15-bci-Packages.db");

    fn image() -> ImageMeta {
        ImageMeta {
            reference: "registry.suse.com/bci/bci-base:15.3".into(),
            manifest_digest: format!("sha256:{}", "a".repeat(64)),
            config_digest: format!("sha256:{}", "c".repeat(64)),
            index_digest: None,
            layer_diff_ids: vec![format!("sha256:{}", "d0".repeat(32))],
            layer_digests: vec![format!("sha256:{}", "b0".repeat(32))],
        }
    }

    fn fixed() -> SbomOptions {
        SbomOptions {
            serial: Some(uuid::Uuid::from_u128(
                0x0123_4567_89ab_4def_8123_4567_89ab_cdef,
            )),
            timestamp: Some(time::macros::datetime!(2024-03-05 14:55:18 UTC)),
        }
    }

    fn pkg(name: &str, version: &str, arch: Option<&str>) -> Package {
        Package {
            ecosystem: Ecosystem::Rpm,
            name: name.into(),
            version: version.into(),
            arch: arch.map(Into::into),
            source_name: None,
            source_version: None,
            location: "var/lib/rpm/rpmdb.sqlite".into(),
            layer: 0,
            os_owner: None,
        }
    }

    #[test]
    fn purls() {
        let al2023 = OsInfo {
            id: "amzn".into(),
            id_like: vec!["fedora".into()],
            version_id: Some("2023".into()),
            ..OsInfo::default()
        };
        assert_eq!(
            purl(
                Some(&al2023),
                &pkg("libstdc++", "11.4.1-2.amzn2023.0.2", Some("x86_64"))
            )
            .unwrap(),
            "pkg:rpm/amzn/libstdc%2B%2B@11.4.1-2.amzn2023.0.2?arch=x86_64&distro=2023&epoch=0"
        );
        assert_eq!(
            purl(
                Some(&al2023),
                &pkg("openssl-libs", "1:3.0.8-1.amzn2023.0.9", Some("x86_64"))
            )
            .unwrap(),
            "pkg:rpm/amzn/openssl-libs@3.0.8-1.amzn2023.0.9?arch=x86_64&distro=2023&epoch=1"
        );
        assert_eq!(
            purl(None, &pkg("a", "1-2", None)).unwrap(),
            "pkg:rpm/a@1-2?epoch=0"
        );
    }

    /// Every rpm component of inspector-sbomgen's Fedora 39 SBOM, written
    /// into an rpm database, read back by the cataloger and written again,
    /// gives the same purls, names, versions and `amazon:` properties.
    #[test]
    fn fedora_fixture_round_trips() {
        let os = fedora_round_trip(&[("usr/lib/os-release", FEDORA_39, 0)]);
        assert_eq!(os, ("Fedora Linux".to_owned(), Some("39".to_owned())));
    }

    /// The same database without os-release: the distribution comes from
    /// `fedora-release-common 39-34`, and the purls are Inspector's all the
    /// same; also when a stray `etc/debian_version` made detection say
    /// Debian (never `pkg:rpm/debian/…`).
    #[test]
    fn fedora_database_without_os_release() {
        let os = fedora_round_trip(&[]);
        assert_eq!(os, ("Fedora Linux".to_owned(), Some("39".to_owned())));
        let os = fedora_round_trip(&[("etc/debian_version", b"12.5\n", 0)]);
        assert_eq!(os.0, "Debian GNU/Linux");
    }

    /// Builds an rpmdb from Inspector's Fedora 39 SBOM, adds `extra` files,
    /// checks our rpm components against Inspector's; returns our
    /// operating-system component's name and version.
    fn fedora_round_trip(extra: &[(&str, &[u8], usize)]) -> (String, Option<String>) {
        let theirs: Bom =
            serde_json::from_str(include_str!("fixtures/fedora_latest.json")).unwrap();
        let rpms: Vec<&Component> = theirs
            .components
            .iter()
            .filter(|c| c.purl.as_deref().is_some_and(|p| p.starts_with("pkg:rpm/")))
            .collect();
        assert_eq!(rpms.len(), 181);

        // Headers for an sqlite rpmdb, from each purl.
        static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("scangate-sbom-rpm-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rpmdb.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
                .unwrap();
            for c in &rpms {
                let p = packageurl::PackageUrl::from_str(c.purl.as_deref().unwrap()).unwrap();
                let (v, r) = p.version().unwrap().rsplit_once('-').unwrap();
                let q = p.qualifiers();
                let epoch: u32 = q["epoch"].parse().unwrap();
                let b = blob(&[
                    s(1000, p.name()),
                    s(1001, v),
                    s(1002, r),
                    (1003, 4, 1, epoch.to_be_bytes().to_vec()),
                    s(1022, &q["arch"]),
                ]);
                conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
                    .unwrap();
            }
        }
        let db = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let mut files = vec![("usr/lib/sysimage/rpm/rpmdb.sqlite", &db[..], 0)];
        files.extend_from_slice(extra);
        let mut t = FileTree::from_files(&files);
        t.symlinks
            .insert("etc/os-release".into(), "../usr/lib/os-release".into());
        t.symlinks
            .insert("var/lib/rpm".into(), "../../usr/lib/sysimage/rpm".into());
        let cat = catalog::run(&t);
        assert!(cat.warnings.is_empty(), "{:?}", cat.warnings);
        let ours = build(&cat, &image(), &fixed());

        let amazon = |c: &Component| {
            (
                c.name.clone(),
                c.version.clone(),
                c.purl.clone(),
                c.properties
                    .iter()
                    .filter(|p| p.name.starts_with("amazon:"))
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        // gpg-pubkey, the one component we leave out on purpose.
        let want: BTreeSet<_> = rpms
            .iter()
            .filter(|c| c.name != "gpg-pubkey")
            .map(|c| amazon(c))
            .collect();
        let got: BTreeSet<_> = ours
            .components
            .iter()
            .filter(|c| c.purl.as_deref().is_some_and(|p| p.starts_with("pkg:rpm/")))
            .map(amazon)
            .collect();
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:#?}\nextra {extra:#?}"
        );
        let os = &ours.components[0];
        assert_eq!(os.kind, ComponentType::OperatingSystem);
        (os.name.clone(), os.version.clone())
    }

    fn small_catalog() -> Catalog {
        let mut t = FileTree::from_files(&[
            ("usr/lib/os-release", SLES_15_3, 0),
            ("usr/lib/sysimage/rpm/Packages.db", SLE15_NDB, 0),
        ]);
        t.symlinks
            .insert("etc/os-release".into(), "../usr/lib/os-release".into());
        t.symlinks
            .insert("var/lib/rpm".into(), "../../usr/lib/sysimage/rpm".into());
        catalog::run(&t)
    }

    /// A real SLE 15 SP3 NDB database: the whole SBOM, compared with
    /// `snapshots/small-sles.json` (`UPDATE_SNAPSHOTS=1` rewrites it).
    #[test]
    fn small_sles_snapshot() {
        let mut bom = build(&small_catalog(), &image(), &fixed());
        bom.metadata.tools.components[0].version = Some("0.0.0-snapshot".into());
        let got = serde_json::to_string_pretty(&bom).unwrap() + "\n";
        let path = PathBuf::from(file!())
            .with_file_name("snapshots")
            .join("small-sles.json");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
            std::fs::write(&path, &got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path:?}: {e} (UPDATE_SNAPSHOTS=1 writes it)"));
        assert!(
            got == want,
            "{path:?} differs (UPDATE_SNAPSHOTS=1 rewrites it):\n{got}"
        );
    }
}
