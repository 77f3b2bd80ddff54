use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::catalog::{self, OsInfo};
use crate::image::fs::{FileEntry, FileTree};

const DEBIAN_12: &[u8] = include_bytes!("../catalog/osrelease/fixtures/debian-12");
const UBUNTU_22_04: &[u8] = include_bytes!("../catalog/osrelease/fixtures/ubuntu-22.04");
const UBUNTU_14_04: &[u8] = include_bytes!("../catalog/osrelease/fixtures/ubuntu-14.04");

fn tree(files: &[(&str, &[u8], usize)]) -> FileTree {
    let mut t = FileTree::from_files(files);
    t.symlinks
        .insert("etc/os-release".into(), "../usr/lib/os-release".into());
    t
}

fn image() -> ImageMeta {
    ImageMeta {
        reference: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4.2".into(),
        manifest_digest: format!("sha256:{}", "a".repeat(64)),
        config_digest: format!("sha256:{}", "c".repeat(64)),
        index_digest: Some(format!("sha256:{}", "1".repeat(64))),
        layer_diff_ids: vec![
            format!("sha256:{}", "d0".repeat(32)),
            format!("sha256:{}", "d1".repeat(32)),
        ],
        layer_digests: vec![
            format!("sha256:{}", "b0".repeat(32)),
            format!("sha256:{}", "b1".repeat(32)),
        ],
    }
}

fn fixed() -> SbomOptions {
    SbomOptions {
        serial: Some(uuid::Uuid::from_u128(
            0x0123_4567_89ab_4def_8123_4567_89ab_cdef,
        )),
        timestamp: Some(time::macros::datetime!(2024-03-05 14:55:18.123 +01:00)),
    }
}

fn all_components(bom: &Bom) -> Vec<&Component> {
    bom.components.iter().flat_map(|c| c.walk()).collect()
}

fn purls(bom: &Bom) -> BTreeSet<String> {
    all_components(bom)
        .into_iter()
        .filter_map(|c| c.purl.clone())
        .collect()
}

/// (parent purl, child purl) for every nested component.
fn nesting(bom: &Bom) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for c in all_components(bom) {
        for k in &c.components {
            out.insert((c.purl.clone().unwrap(), k.purl.clone().unwrap()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The fixture conventions, on a real dpkg status.

fn debian_catalog() -> Catalog {
    let status: &[u8] = include_bytes!("../catalog/dpkg/fixtures/status");
    let t = tree(&[
        ("usr/lib/os-release", DEBIAN_12, 0),
        ("var/lib/dpkg/status", status, 1),
        ("var/lib/dpkg/info/bash.list", b"", 0),
        ("var/lib/dpkg/info/libc6:amd64.list", b"", 0),
        ("var/lib/dpkg/info/libc-bin.list", b"", 1),
    ]);
    let c = catalog::run(&t);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    c
}

#[test]
fn real_status_follows_inspector_conventions() {
    let bom = build(&debian_catalog(), &image(), &fixed());
    let v = serde_json::to_value(&bom).unwrap();
    assert_eq!(v["bomFormat"], "CycloneDX");
    assert_eq!(v["specVersion"], "1.5");
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["serialNumber"],
        "urn:uuid:01234567-89ab-4def-8123-456789abcdef"
    );
    assert_eq!(v["metadata"]["timestamp"], "2024-03-05T13:55:18Z");
    assert_eq!(v["metadata"]["tools"]["components"][0]["name"], "scangate");
    assert_eq!(v["metadata"]["component"]["bom-ref"], "comp-1");
    assert_eq!(v["metadata"]["component"]["type"], "container");
    assert_eq!(
        v["components"][0],
        serde_json::json!({"bom-ref": "comp-2", "type": "operating-system",
                           "name": "Debian GNU/Linux", "version": "12"})
    );

    let top = |name: &str| {
        bom.components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let kids = |c: &Component| {
        c.components
            .iter()
            .map(|k| k.name.clone())
            .collect::<Vec<_>>()
    };

    // A binary with its source's name and version is the source component.
    let ul = top("util-linux");
    assert_eq!(ul.version.as_deref(), Some("2.38.1-5+deb12u3"));
    assert_eq!(kids(ul), ["bsdutils", "libblkid1"]);
    assert_eq!(
        ul.purl.as_deref(),
        Some("pkg:deb/debian/util-linux@2.38.1-5%2Bdeb12u3?arch=amd64&distro=bookworm&epoch=0")
    );
    // Binaries keep their own epoch.
    assert_eq!(
        ul.components[0].purl.as_deref(),
        Some("pkg:deb/debian/bsdutils@2.38.1-5%2Bdeb12u3?arch=amd64&distro=bookworm&epoch=1")
    );
    assert!(top("dpkg").components.is_empty());
    assert_eq!(kids(top("glibc")), ["libc-bin", "libc6"]);
    assert_eq!(
        kids(top("gcc-12")),
        ["gcc-12-base", "libgcc-s1", "libstdc++6"]
    );
    assert_eq!(kids(top("audit")), ["libaudit-common", "libaudit1"]);
    // No binary "audit": arch from the first binary, epoch from the source.
    assert_eq!(
        top("audit").purl.as_deref(),
        Some("pkg:deb/debian/audit@3.0.9-1?arch=all&distro=bookworm&epoch=1")
    );
    // A binNMU: the source at its version, the binary nested at its own.
    let bash = top("bash");
    assert_eq!(bash.version.as_deref(), Some("5.2.15-2"));
    assert_eq!(kids(bash), ["bash"]);
    assert_eq!(bash.components[0].version.as_deref(), Some("5.2.15-2+b8"));
    let libcap = top("libcap2");
    assert_eq!(
        libcap.purl.as_deref(),
        Some("pkg:deb/debian/libcap2@2.66-4%2Bdeb12u2?arch=amd64&distro=bookworm&epoch=1")
    );
    assert_eq!(kids(libcap), ["libcap2", "libcap2-bin"]);

    // Properties: Inspector's three, then ours.
    let props = |c: &Component| {
        c.properties
            .iter()
            .map(|p| format!("{}={}", p.name, p.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        props(top("glibc")),
        [
            "amazon:inspector:sbom_generator:source_file_scanner=dpkg",
            "amazon:inspector:sbom_generator:source_package_collector=debian-dpkg",
            "amazon:inspector:sbom_generator:source_path=/var/lib/dpkg/status",
            "scangate:layer=0",
            "scangate:layer=1",
            "scangate:location=var/lib/dpkg/status",
            "scangate:layer_diff_id=sha256:d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0",
            "scangate:layer_diff_id=sha256:d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1",
        ]
    );
    assert_eq!(
        top("glibc").components[1]
            .property_values(props::LAYER)
            .collect::<Vec<_>>(),
        ["0"]
    );

    // bom-refs: unique, comp-N depth first.
    let refs: Vec<_> = std::iter::once(&bom.metadata.component)
        .chain(all_components(&bom))
        .map(|c| c.bom_ref.clone().unwrap())
        .collect();
    let want: Vec<_> = (1..=refs.len()).map(|i| format!("comp-{i}")).collect();
    assert_eq!(refs, want);
    // Sorted by name.
    let names: Vec<_> = bom.components[1..].iter().map(|c| &c.name).collect();
    assert!(names.is_sorted());

    // Every installed binary is in the SBOM under its own name and version
    // (as score.py counts: epoch folded into the version).
    let have: BTreeSet<(String, String)> = all_components(&bom)
        .into_iter()
        .filter_map(|c| c.purl.as_deref())
        .map(|p| {
            let p = parse_purl(p);
            let v = if p.epoch == "0" {
                p.version
            } else {
                format!("{}:{}", p.epoch, p.version)
            };
            (p.name, v)
        })
        .collect();
    for line in include_str!("../catalog/dpkg/fixtures/status.expected").lines() {
        let f: Vec<_> = line.split('\t').collect();
        assert!(have.contains(&(f[0].to_owned(), f[1].to_owned())), "{line}");
    }
    assert_eq!(component_count(&bom), 1 + purls(&bom).len());
}

#[test]
fn ubuntu_binaries_name_their_source() {
    let status = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.2-0ubuntu1.14\n\n\
                  Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.2-0ubuntu1.14\n";
    let t = tree(&[
        ("usr/lib/os-release", UBUNTU_22_04, 0),
        ("var/lib/dpkg/status", status.as_bytes(), 0),
    ]);
    let bom = build(&catalog::run(&t), &image(), &fixed());
    let ssl = &bom.components[1];
    assert_eq!(
        ssl.purl.as_deref(),
        Some("pkg:deb/ubuntu/openssl@3.0.2-0ubuntu1.14?arch=amd64&distro=jammy&epoch=0")
    );
    assert_eq!(
        ssl.components[0].purl.as_deref(),
        Some(
            "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.14?arch=amd64&distro=jammy&epoch=0&source=openssl"
        )
    );
    assert_eq!(
        ssl.property_values(props::SOURCE_PACKAGE_COLLECTOR)
            .collect::<Vec<_>>(),
        ["ubuntu-dpkg"]
    );
}

// ---------------------------------------------------------------------------
// Amazon's own SBOMs, fed back through our cataloger and builder.

struct Purl {
    name: String,
    version: String,
    quals: BTreeMap<String, String>,
    epoch: String,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn parse_purl(p: &str) -> Purl {
    let rest = p.strip_prefix("pkg:deb/").unwrap();
    let (path, q) = rest.split_once('?').unwrap_or((rest, ""));
    let (nsname, version) = path.split_once('@').unwrap();
    let (_namespace, name) = nsname.split_once('/').unwrap();
    let quals: BTreeMap<String, String> = q
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), unescape(v))
        })
        .collect();
    Purl {
        name: unescape(name),
        version: unescape(version),
        epoch: quals.get("epoch").cloned().unwrap_or_else(|| "0".into()),
        quals,
    }
}

fn with_epoch(p: &Purl) -> String {
    if p.epoch == "0" {
        p.version.clone()
    } else {
        format!("{}:{}", p.epoch, p.version)
    }
}

fn stanza(p: &Purl, source: Option<&Purl>) -> String {
    let mut s = format!(
        "Package: {}\nStatus: install ok installed\nArchitecture: {}\nVersion: {}\n",
        p.name,
        p.quals["arch"],
        with_epoch(p)
    );
    if let Some(src) = source {
        if with_epoch(src) == with_epoch(p) {
            s += &format!("Source: {}\n", src.name);
        } else {
            s += &format!("Source: {} ({})\n", src.name, with_epoch(src));
        }
    }
    s + "Description: rebuilt from an inspector-sbomgen SBOM\n\n"
}

/// A dpkg status with the packages an inspector-sbomgen SBOM describes:
/// nested components are binaries of their parent source; flat ones with
/// `source=` likewise. A source component is itself a binary only with
/// `sources_installed` (the SBOM cannot tell; both must give its purls).
fn status_from_fixture(bom: &Bom, sources_installed: bool) -> String {
    let debs: Vec<&Component> = bom
        .components
        .iter()
        .filter(|c| c.purl.as_deref().is_some_and(|p| p.starts_with("pkg:deb/")))
        .collect();
    let referenced: BTreeSet<String> = debs
        .iter()
        .filter_map(|c| {
            parse_purl(c.purl.as_deref().unwrap())
                .quals
                .get("source")
                .cloned()
        })
        .collect();
    let by_name: BTreeMap<&str, Purl> = debs
        .iter()
        .map(|c| (c.name.as_str(), parse_purl(c.purl.as_deref().unwrap())))
        .collect();
    let mut out = String::new();
    for c in debs {
        let p = parse_purl(c.purl.as_deref().unwrap());
        assert_eq!(p.name, c.name);
        assert_eq!(Some(&p.version), c.version.as_ref());
        for k in &c.components {
            out += &stanza(&parse_purl(k.purl.as_deref().unwrap()), Some(&p));
        }
        let is_source = !c.components.is_empty() || referenced.contains(&c.name);
        if is_source && !sources_installed {
            continue;
        }
        let src = p.quals.get("source").map(|s| &by_name[s.as_str()]);
        out += &stanza(&p, src);
    }
    out
}

fn fixture(name: &str) -> Bom {
    let path = PathBuf::from(file!()).with_file_name("fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn deb_purls(bom: &Bom) -> BTreeSet<String> {
    purls(bom)
        .into_iter()
        .filter(|p| p.starts_with("pkg:deb/"))
        .collect()
}

fn deb_nesting(bom: &Bom) -> BTreeSet<(String, String)> {
    nesting(bom)
        .into_iter()
        .filter(|(p, _)| p.starts_with("pkg:deb/"))
        .collect()
}

fn rebuild(fixture: &Bom, os_release: &[u8], sources_installed: bool) -> Bom {
    let status = status_from_fixture(fixture, sources_installed);
    let t = tree(&[
        ("usr/lib/os-release", os_release, 0),
        ("var/lib/dpkg/status", status.as_bytes(), 0),
    ]);
    let c = catalog::run(&t);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    build(&c, &image(), &SbomOptions::default())
}

fn check_round_trip(name: &str, os_release: &[u8], nested: bool) {
    let theirs = fixture(name);
    let os = theirs
        .components
        .iter()
        .find(|c| c.kind == ComponentType::OperatingSystem)
        .unwrap();
    for sources_installed in [false, true] {
        let ours = rebuild(&theirs, os_release, sources_installed);
        assert!(deb_purls(&theirs).len() > 100, "{name}");
        assert_eq!(deb_purls(&ours), deb_purls(&theirs), "{name}");
        if nested {
            assert_eq!(deb_nesting(&ours), deb_nesting(&theirs), "{name}");
        }
        let our_os = &ours.components[0];
        assert_eq!(
            (our_os.kind, &our_os.name, &our_os.version),
            (os.kind, &os.name, &os.version),
            "{name}"
        );
        // Inspector's properties, where the fixture has them, are ours too.
        let theirs_by_purl: BTreeMap<_, _> = all_components(&theirs)
            .into_iter()
            .filter_map(|c| Some((c.purl.clone()?, c)))
            .collect();
        for c in all_components(&ours)
            .into_iter()
            .filter(|c| c.purl.is_some())
        {
            let t = theirs_by_purl[c.purl.as_ref().unwrap()];
            if t.properties.is_empty() {
                continue;
            }
            let ours_amazon: Vec<_> = c
                .properties
                .iter()
                .filter(|p| p.name.starts_with("amazon:"))
                .collect();
            let theirs_amazon: Vec<_> = t
                .properties
                .iter()
                .filter(|p| {
                    p.name
                        .starts_with("amazon:inspector:sbom_generator:source_")
                })
                .collect();
            assert_eq!(ours_amazon, theirs_amazon, "{name} {:?}", c.purl);
        }
    }
}

#[test]
fn debian_fixture_round_trips() {
    check_round_trip("debian_latest.json", DEBIAN_12, true);
}

#[test]
fn debian_python_fixture_round_trips() {
    check_round_trip("python_latest.json", DEBIAN_12, true);
}

/// sbomgen 1.1.0 wrote Ubuntu flat: same purls, different nesting.
#[test]
fn ubuntu_flat_fixture_round_trips() {
    check_round_trip("ubuntu_latest.json", UBUNTU_22_04, false);
}

/// sbomgen 1.1.1, nested Ubuntu; 14.04 has no VERSION_CODENAME, so
/// `distro=14.04`.
#[test]
fn ubuntu_nested_fixture_round_trips() {
    check_round_trip("ubuntu_14.04-dockerfile-checks.json", UBUNTU_14_04, true);
}

#[test]
fn our_model_reads_and_writes_their_documents() {
    for name in [
        "debian_latest.json",
        "python_latest.json",
        "ubuntu_latest.json",
        "ubuntu_14.04-dockerfile-checks.json",
        "alpine_3.18.2.json",
        "node_latest.json",
    ] {
        let path = PathBuf::from(file!()).with_file_name("fixtures").join(name);
        let text = std::fs::read_to_string(path).unwrap();
        let bom: Bom = serde_json::from_str(&text).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&bom).unwrap(), original, "{name}");
        // Byte for byte: same field order, same layout.
        assert!(
            serde_json::to_string_pretty(&bom).unwrap() + "\n" == text,
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------
// Snapshot.

fn small_catalog() -> Catalog {
    let status = "\
Package: bash
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b2

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1

Package: curl
Status: deinstall ok config-files
Architecture: amd64
Version: 7.88.1-10+deb12u5

Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14

Package: util-linux
Status: install ok installed
Architecture: amd64
Version: 2.38.1-5+b1
Source: util-linux (2.38.1-5)
";
    let t = tree(&[
        ("usr/lib/os-release", DEBIAN_12, 0),
        ("var/lib/dpkg/status", status.as_bytes(), 1),
        ("var/lib/dpkg/info/bash.list", b"", 0),
        ("var/lib/dpkg/info/util-linux.list", b"", 0),
        ("var/lib/dpkg/info/bsdutils.list", b"", 0),
        ("var/lib/dpkg/info/dpkg.list", b"", 0),
        ("var/lib/dpkg/info/libc6:amd64.list", b"", 0),
    ]);
    catalog::run(&t)
}

fn snapshot(name: &str, bom: &Bom) {
    let mut bom = bom.clone();
    // Releases must not break the snapshot.
    bom.metadata.tools.components[0].version = Some("0.0.0-snapshot".into());
    let got = serde_json::to_string_pretty(&bom).unwrap() + "\n";
    let path = PathBuf::from(file!())
        .with_file_name("snapshots")
        .join(name);
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

#[test]
fn small_debian_snapshot() {
    let bom = build(&small_catalog(), &image(), &fixed());
    snapshot("small-debian.json", &bom);
}

// ---------------------------------------------------------------------------
// Splitting.

fn big_bom() -> Bom {
    // 40 sources, source i with i % 5 binaries (0..=4 nested).
    let mut status = String::new();
    for i in 0..40 {
        let n = i % 5;
        status += &format!(
            "Package: src{i:02}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{i}\n\n"
        );
        for j in 0..n {
            status += &format!(
                "Package: bin{i:02}-{j}\nStatus: install ok installed\nArchitecture: amd64\nSource: src{i:02}\nVersion: 1.{i}\n\n"
            );
        }
    }
    let t = tree(&[
        ("usr/lib/os-release", DEBIAN_12, 0),
        ("var/lib/dpkg/status", status.as_bytes(), 0),
    ]);
    build(&catalog::run(&t), &image(), &fixed())
}

fn check_parts(bom: &Bom, parts: &[Bom], max: usize) {
    for p in parts {
        assert!(component_count(p) <= max, "{} > {max}", component_count(p));
        assert_eq!(p.metadata, bom.metadata);
        assert_eq!(p.serial_number, bom.serial_number);
        assert_eq!(p.components[0], bom.components[0], "OS in every part");
    }
    // Nothing lost, nothing invented, nesting intact.
    let union: BTreeSet<_> = parts.iter().flat_map(purls).collect();
    assert_eq!(union, purls(bom));
    let nest: BTreeSet<_> = parts.iter().flat_map(nesting).collect();
    assert_eq!(nest, nesting(bom));
}

#[test]
fn split_keeps_groups_whole() {
    let bom = big_bom();
    // 1 OS + 40 sources + 80 binaries.
    assert_eq!(component_count(&bom), 121);
    assert_eq!(split(&bom, 121), std::slice::from_ref(&bom));
    assert_eq!(split(&bom, 5000), std::slice::from_ref(&bom));

    for max in [6, 7, 10, 50, 120] {
        let parts = split(&bom, max);
        check_parts(&bom, &parts, max);
        // Groups are never cut when each fits.
        let tops: usize = parts.iter().map(|p| p.components.len() - 1).sum();
        assert_eq!(tops, bom.components.len() - 1, "max {max}");
        // Greedy, in order: no two adjacent parts could have been one.
        for w in parts.windows(2) {
            assert!(component_count(&w[0]) + component_count(&w[1]) - 1 > max);
        }
    }
}

#[test]
fn split_cuts_an_oversized_group_as_a_last_resort() {
    let bom = big_bom();
    // Source groups have up to 5 components; with max 4 (room 3) the
    // 4- and 5-component groups must be cut.
    let parts = split(&bom, 4);
    check_parts(&bom, &parts, 4);
    let src04: Vec<_> = parts
        .iter()
        .flat_map(|p| p.components.iter())
        .filter(|c| c.name == "src04")
        .collect();
    assert_eq!(src04.len(), 2);
    assert_eq!(src04[0].bom_ref, src04[1].bom_ref);
    assert_eq!(
        src04.iter().map(|c| c.components.len()).collect::<Vec<_>>(),
        [2, 2]
    );

    // A limit below what a source and one binary need is raised to that.
    let parts = split(&bom, 0);
    check_parts(&bom, &parts, 3);
}

#[test]
fn split_without_os_component() {
    let mut bom = big_bom();
    bom.components.remove(0);
    let parts = split(&bom, 10);
    for p in &parts {
        assert!(component_count(p) <= 10);
        assert_ne!(p.components[0].kind, ComponentType::OperatingSystem);
    }
    let union: BTreeSet<_> = parts.iter().flat_map(purls).collect();
    assert_eq!(union, purls(&bom));
}

#[test]
fn no_os_no_packages() {
    let bom = build(&Catalog::default(), &image(), &fixed());
    assert!(bom.components.is_empty());
    assert_eq!(component_count(&bom), 0);
    let v = serde_json::to_value(&bom).unwrap();
    assert!(v.get("components").is_none());
    assert_eq!(split(&bom, 10), [bom]);
}

#[test]
fn os_without_name_or_codename() {
    let catalog = Catalog {
        os: Some(OsInfo {
            id: "debian".into(),
            ..OsInfo::default()
        }),
        ..Catalog::default()
    };
    let bom = build(&catalog, &image(), &fixed());
    assert_eq!(bom.components[0].name, "Linux");
    assert_eq!(bom.components[0].version, None);
}

// ---------------------------------------------------------------------------
// apk, pypi, npm.

const ALPINE_3_16: &[u8] = include_bytes!("../catalog/osrelease/fixtures/alpine-3.16");

fn amazon_props(c: &Component) -> Vec<(&str, &str)> {
    c.properties
        .iter()
        .filter(|p| {
            p.name
                .starts_with("amazon:inspector:sbom_generator:source_")
        })
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect()
}

fn purls_of(bom: &Bom, ty: &str) -> BTreeSet<String> {
    purls(bom)
        .into_iter()
        .filter(|p| p.starts_with(&format!("pkg:{ty}/")))
        .collect()
}

/// Rebuilds `lib/apk/db/installed` from Inspector's Alpine SBOM: same purls,
/// same flat layout, same properties.
#[test]
fn alpine_fixture_round_trips() {
    let theirs = fixture("alpine_3.18.2.json");
    let mut db = String::new();
    for c in &theirs.components {
        let Some(p) = c.purl.as_deref().filter(|p| p.starts_with("pkg:apk/")) else {
            continue;
        };
        let arch = p.split("arch=").nth(1).unwrap().split('&').next().unwrap();
        db += &format!(
            "C:Q1x=\nP:{}\nV:{}\nA:{arch}\nS:1\n\n",
            c.name,
            c.version.as_deref().unwrap()
        );
    }
    let os_release = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.2\n";
    let t = tree(&[
        ("usr/lib/os-release", os_release, 0),
        ("lib/apk/db/installed", db.as_bytes(), 1),
    ]);
    let c = catalog::run(&t);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let ours = build(&c, &image(), &fixed());
    assert_eq!(purls_of(&ours, "apk").len(), 10);
    assert_eq!(purls_of(&ours, "apk"), purls_of(&theirs, "apk"));
    assert_eq!(component_count(&ours), component_count(&theirs));
    assert_eq!(
        (&ours.components[0].name, &ours.components[0].version),
        (&theirs.components[0].name, &theirs.components[0].version)
    );
    let theirs_by_purl: BTreeMap<_, _> = theirs
        .components
        .iter()
        .filter_map(|c| Some((c.purl.clone()?, c)))
        .collect();
    for c in ours.components.iter().skip(1) {
        let t = theirs_by_purl[c.purl.as_ref().unwrap()];
        assert_eq!((c.kind, &c.name, &c.version), (t.kind, &t.name, &t.version));
        assert_eq!(amazon_props(c), amazon_props(t), "{:?}", c.purl);
        assert_eq!(c.property_values(props::LAYER).collect::<Vec<_>>(), ["1"]);
        assert_eq!(
            c.property_values(props::LOCATION).collect::<Vec<_>>(),
            ["lib/apk/db/installed"]
        );
        assert!(c.components.is_empty());
    }
}

/// The corpus's Alpine database (the 14 packages of
/// `expected/alpine-like.json`) with its Alpine 3.16 os-release.
#[test]
fn alpine_corpus_database() {
    let t = tree(&[
        ("usr/lib/os-release", ALPINE_3_16, 0),
        (
            "lib/apk/db/installed",
            include_bytes!("../catalog/apk/fixtures/installed"),
            0,
        ),
    ]);
    let c = catalog::run(&t);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let bom = build(&c, &image(), &fixed());
    let apk = purls_of(&bom, "apk");
    assert_eq!(apk.len(), 14);
    assert!(apk.contains("pkg:apk/alpine/musl@1.2.3-r0?arch=x86_64&distro=3.16.2"));
    assert!(apk.contains("pkg:apk/alpine/ssl_client@1.35.0-r17?arch=x86_64&distro=3.16.2"));
    assert_eq!(
        (bom.components[0].kind, bom.components[0].name.as_str()),
        (ComponentType::OperatingSystem, "Alpine Linux")
    );
}

/// Writes a metadata file at every pypi/npm component's `source_path` of an
/// Inspector SBOM, catalogs them and requires the same purls; where
/// Inspector lists one purl at several paths we write one component with
/// every path as a `scangate:location`.
fn check_language_round_trip(name: &str, min: usize) {
    let theirs = fixture(name);
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut theirs_by_purl = BTreeMap::new();
    for c in all_components(&theirs) {
        let Some(purl) = c.purl.clone() else { continue };
        let pypi = purl.starts_with("pkg:pypi/");
        if !(pypi || purl.starts_with("pkg:npm/")) || c.name.is_empty() {
            // Inspector also lists `pkg:npm/` for nameless
            // `dist/esm/package.json` markers; those are not packages.
            continue;
        }
        let path = c.property_values(props::SOURCE_PATH).next().unwrap();
        let path = path.strip_prefix('/').unwrap().to_owned();
        assert!(catalog::wants(&path), "{path}");
        let version = c.version.as_deref().unwrap();
        let data = if pypi {
            format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {version}\n",
                c.name
            )
        } else {
            serde_json::json!({"name": c.name, "version": version}).to_string()
        };
        files.push((path.clone(), data.into_bytes()));
        paths.entry(purl.clone()).or_default().insert(path);
        theirs_by_purl.insert(purl, c);
    }
    assert!(
        theirs_by_purl.len() >= min,
        "{name}: {}",
        theirs_by_purl.len()
    );
    let mut t = tree(&[("usr/lib/os-release", DEBIAN_12, 0)]);
    for (p, d) in files {
        t.files.insert(
            p,
            FileEntry {
                data: d.into(),
                layer: 2,
            },
        );
    }
    let c = catalog::run(&t);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let ours = build(&c, &image(), &fixed());
    let ours_lang: BTreeSet<String> = purls_of(&ours, "pypi")
        .into_iter()
        .chain(purls_of(&ours, "npm"))
        .collect();
    assert_eq!(
        ours_lang,
        theirs_by_purl.keys().cloned().collect::<BTreeSet<_>>(),
        "{name}"
    );
    for c in ours.components.iter().skip(1) {
        let purl = c.purl.as_ref().unwrap();
        let t = theirs_by_purl[purl];
        assert_eq!((c.kind, &c.version), (t.kind, &t.version), "{purl}");
        assert_eq!(c.kind, ComponentType::Library);
        let ours_amazon = amazon_props(c);
        let theirs_amazon = amazon_props(t);
        // Scanner and collector as theirs; the path one of theirs.
        assert_eq!(ours_amazon[..2], theirs_amazon[..2], "{purl}");
        let source = ours_amazon[2].1.strip_prefix('/').unwrap();
        assert!(paths[purl].contains(source), "{purl}: {source}");
        assert_eq!(
            c.property_values(props::LOCATION).collect::<BTreeSet<_>>(),
            paths[purl].iter().map(String::as_str).collect(),
            "{purl}"
        );
    }
}

#[test]
fn python_fixture_language_round_trips() {
    check_language_round_trip("python_latest.json", 4);
}

/// 259 npm components (scoped ones, nested `node_modules`, one purl at
/// several paths) and a Debian egg-info.
#[test]
fn node_fixture_language_round_trips() {
    check_language_round_trip("node_latest.json", 200);
}

#[test]
fn language_purls() {
    use crate::catalog::Ecosystem;
    assert_eq!(
        lang::purl(Ecosystem::Npm, "@colors/colors", "1.5.0").unwrap(),
        "pkg:npm/%40colors/colors@1.5.0"
    );
    assert_eq!(
        lang::purl(Ecosystem::Npm, "ipaddr.js", "1.9.1").unwrap(),
        "pkg:npm/ipaddr.js@1.9.1"
    );
    assert_eq!(
        lang::purl(Ecosystem::Pypi, "typing_extensions", "4.3.0").unwrap(),
        "pkg:pypi/typing-extensions@4.3.0"
    );
    assert_eq!(
        lang::purl(Ecosystem::Pypi, "Flask", "1.1.2+local.1").unwrap(),
        "pkg:pypi/flask@1.1.2%2Blocal.1"
    );
    // namespaced types split at the last `/`
    assert_eq!(
        lang::purl(Ecosystem::Golang, "github.com/google/uuid", "v1.3.0").unwrap(),
        "pkg:golang/github.com/google/uuid@v1.3.0"
    );
    assert_eq!(
        lang::purl(Ecosystem::Maven, "org.yaml/snakeyaml", "1.33").unwrap(),
        "pkg:maven/org.yaml/snakeyaml@1.33"
    );
    assert_eq!(
        lang::purl(Ecosystem::Composer, "guzzlehttp/psr7", "1.8.3").unwrap(),
        "pkg:composer/guzzlehttp/psr7@1.8.3"
    );
    assert_eq!(
        lang::purl(Ecosystem::Maven, "libintl", "0.21").unwrap(),
        "pkg:maven/libintl@0.21"
    );
}

#[test]
fn maven_components_carry_the_group() {
    use crate::catalog::{Ecosystem, Package};
    let p = Package {
        ecosystem: Ecosystem::Maven,
        name: "org.yaml/snakeyaml".into(),
        version: "1.33".into(),
        arch: None,
        source_name: None,
        source_version: None,
        location: "app/app.jar".into(),
        layer: 2,
        os_owner: None,
    };
    let c = &lang::components(Ecosystem::Maven, &[&p])[0];
    assert_eq!(
        (c.group.as_deref(), c.name.as_str(), c.purl.as_deref()),
        (
            Some("org.yaml"),
            "snakeyaml",
            Some("pkg:maven/org.yaml/snakeyaml@1.33")
        )
    );
}

fn small_polyglot_catalog() -> Catalog {
    let sp = "usr/local/lib/python3.11/site-packages";
    let t = tree(&[
        ("usr/lib/os-release", ALPINE_3_16, 0),
        (
            "lib/apk/db/installed",
            b"P:musl\nV:1.2.3-r0\nA:x86_64\no:musl\n\nP:libssl1.1\nV:1.1.1q-r0\nA:x86_64\no:openssl\n",
            0,
        ),
        (
            &format!("{sp}/Flask-1.1.2.dist-info/METADATA"),
            b"Metadata-Version: 2.1\nName: Flask\nVersion: 1.1.2\n",
            1,
        ),
        (
            &format!("{sp}/typing_extensions-4.3.0.dist-info/METADATA"),
            b"Metadata-Version: 2.1\nName: typing_extensions\nVersion: 4.3.0\n",
            1,
        ),
        (
            "app/node_modules/@hapi/hoek/package.json",
            br#"{"name":"@hapi/hoek","version":"8.2.4"}"#,
            2,
        ),
        (
            "app/node_modules/ms/package.json",
            br#"{"name":"ms","version":"2.1.3"}"#,
            2,
        ),
        (
            "app/node_modules/send/node_modules/ms/package.json",
            br#"{"name":"ms","version":"2.1.3"}"#,
            3,
        ),
        (
            "app/package.json",
            br#"{"name":"app","version":"1.0.0","private":true}"#,
            3,
        ),
    ]);
    catalog::run(&t)
}

#[test]
fn small_polyglot_snapshot() {
    let c = small_polyglot_catalog();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let bom = build(&c, &image(), &fixed());
    snapshot("small-polyglot.json", &bom);
}

/// A real apk database (the corpus' Alpine 3.16) without os-release, with
/// and without a stray `etc/debian_version` that makes detection say
/// Debian: the packages stay `pkg:apk/alpine/…`, never Debian's, and with
/// no release package to tell the version, carry no `distro`.
#[test]
fn apk_database_without_os_release() {
    let db: &[u8] = include_bytes!("../catalog/apk/fixtures/installed");
    for extra in [&[][..], &[("etc/debian_version", &b"12.5\n"[..], 0)][..]] {
        let mut files = vec![("lib/apk/db/installed", db, 0)];
        files.extend_from_slice(extra);
        let c = catalog::run(&tree(&files));
        let bom = build(&c, &image(), &fixed());
        let apk = purls_of(&bom, "apk");
        assert_eq!(apk.len(), 14);
        assert!(
            apk.contains("pkg:apk/alpine/musl@1.2.3-r0?arch=x86_64"),
            "{apk:?}"
        );
        assert!(
            apk.iter()
                .all(|p| p.starts_with("pkg:apk/alpine/") && !p.contains("distro="))
        );
    }
    // With Alpine's release package the version is known again.
    let mut with_release = String::from_utf8(db.to_vec()).unwrap();
    with_release += "\nC:Q1x=\nP:alpine-release\nV:3.16.2-r0\nA:x86_64\nS:1\n\n";
    let c = catalog::run(&tree(&[(
        "lib/apk/db/installed",
        with_release.as_bytes(),
        0,
    )]));
    let bom = build(&c, &image(), &fixed());
    assert!(
        purls_of(&bom, "apk").contains("pkg:apk/alpine/musl@1.2.3-r0?arch=x86_64&distro=3.16.2")
    );
    assert_eq!(
        (
            bom.components[0].kind,
            bom.components[0].name.as_str(),
            bom.components[0].version.as_deref()
        ),
        (
            ComponentType::OperatingSystem,
            "Alpine Linux",
            Some("3.16.2")
        )
    );
}
