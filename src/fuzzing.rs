//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`), one per
//! parser of hostile input, and the stable-toolchain replay of their
//! corpora (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`).
//!
//! Each function takes the raw bytes an attacker controls and drives the
//! same code the scan runs on them, through the most stable public seam
//! (a cataloger sees a one-file [`FileTree`] after the image reader's own
//! selection and reduction, not a private parser), so a target keeps
//! meaning something while the parsers behind it are rewritten. They never
//! panic on their own: a panic, an abort, a timeout or an RSS blow-up under
//! libFuzzer is a finding. The replay test runs every corpus file through
//! [`run`] on stable, so a crash once found stays fixed without nightly.
//!
//! Not part of the product API: `#[doc(hidden)]` in lib.rs.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog::{self, Catalog, Selector};
use crate::image::fs::{FileEntry, FileTree};
use crate::image::layer::{self, Budget, LayerSource};
use crate::image::manifest::{self, BaseAnnotation, Manifest};
use crate::image::{FileSelector as _, ImageRef, Limits, Platform};
use crate::inspector::{self, findings};
use crate::policy::{Policy, PolicyFile, PolicyOverrides};
use crate::sbom::{self, ImageMeta, SbomOptions};

/// A fuzz target's entry point: the bytes an attacker controls.
pub type Entry = fn(&[u8]);

/// Every target: its name (the file in `fuzz/fuzz_targets/`, the directory
/// of its corpora) and its entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("layer", layer),
    ("image_layer", image_layer),
    ("image_reference", image_reference),
    ("manifest", manifest),
    ("os_release", os_release),
    ("dpkg_status", dpkg_status),
    ("apk_installed", apk_installed),
    ("rpm_header", rpm_header),
    ("rpm_bdb", rpm_bdb),
    ("rpm_ndb", rpm_ndb),
    ("rpm_sqlite", rpm_sqlite),
    ("python_metadata", python_metadata),
    ("npm_package_json", npm_package_json),
    ("go_buildinfo", go_buildinfo),
    ("cargo_auditable", cargo_auditable),
    ("jar", jar),
    ("gemspec", gemspec),
    ("composer", composer),
    ("deps_json", deps_json),
    ("scan_answer", scan_answer),
    ("policy_file", policy_file),
];

/// The entry point of target `name`.
pub fn run(name: &str) -> Option<Entry> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Where each cataloger target puts its input in the image, and the tar
/// mode it has there: a path the cataloger really wants (checked by the
/// replay test, so a renamed pattern cannot silently turn a target into a
/// no-op).
pub const CATALOG_PATHS: &[(&str, &str, u32)] = &[
    ("os_release", "etc/os-release", 0o644),
    ("dpkg_status", "var/lib/dpkg/status", 0o644),
    ("apk_installed", "lib/apk/db/installed", 0o644),
    ("rpm_bdb", "var/lib/rpm/Packages", 0o644),
    ("rpm_ndb", "usr/lib/sysimage/rpm/Packages.db", 0o644),
    ("rpm_sqlite", "var/lib/rpm/rpmdb.sqlite", 0o644),
    (
        "python_metadata",
        "usr/lib/python3/dist-packages/fuzz-1.0.dist-info/METADATA",
        0o644,
    ),
    (
        "npm_package_json",
        "usr/lib/node_modules/fuzz/package.json",
        0o644,
    ),
    ("go_buildinfo", "usr/local/bin/app", 0o755),
    ("cargo_auditable", "usr/local/bin/app", 0o755),
    ("jar", "opt/app/lib/app.jar", 0o644),
    (
        "gemspec",
        "usr/lib/ruby/gems/3.1.0/specifications/fuzz-1.0.gemspec",
        0o644,
    ),
    ("composer", "var/www/vendor/composer/installed.json", 0o644),
    ("deps_json", "app/App.deps.json", 0o644),
];

/// A language package beside every OS database input, so that the file
/// ownership pass (dpkg lists, apk `F:`/`R:`, rpm BASENAMES/DIRNAMES)
/// reads the database's file lists too.
const COMPANION: (&str, &[u8]) = (
    "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
    b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
);

fn catalog_path(target: &str) -> (&'static str, u32) {
    CATALOG_PATHS
        .iter()
        .find(|(t, _, _)| *t == target)
        .map(|(_, p, m)| (*p, *m))
        .unwrap_or_else(|| panic!("no catalog path for fuzz target {target}"))
}

/// The budgets of a real pull, except decompression: a zstd frame of a
/// few kilobytes legitimately expands to the 64 GiB default, which only
/// costs time (bounded by the job deadline, not by the reader), and would
/// make every such input a timeout. Kept-byte budgets stay real, so that
/// memory blow-ups within them still count.
fn fuzz_budget() -> std::sync::Arc<Budget> {
    let l = Limits::default();
    Budget::new(
        l.max_file_bytes,
        l.max_sniffed_bytes,
        l.max_decompressed_bytes.min(1 << 30),
        l.max_kept_bytes,
    )
}

fn layer_source(data: &[u8]) -> LayerSource {
    LayerSource {
        digest: format!("sha256:{}", hex::encode(Sha256::digest(data))),
        diff_id: None,
        media_type: None,
        size: Some(data.len() as u64),
    }
}

/// Reads `data` as one layer blob with `selector` and merges it into an
/// empty tree, as a pull does; `None` when the reader rejects it.
fn squash(data: &[u8], selector: &dyn layer::FileSelector) -> Option<FileTree> {
    let budget = fuzz_budget();
    let changes =
        layer::read_layer(Cursor::new(data), &layer_source(data), selector, &budget).ok()?;
    let mut tree = FileTree::default();
    layer::apply_layer(&mut tree, changes, 0, &budget).ok()?;
    Some(tree)
}

/// Layer reader: a tar (gzip/zstd/plain) blob read with a selector that
/// keeps every file, merged, then every kept path resolved through the
/// image's symlinks.
pub fn layer(data: &[u8]) {
    let everything = |_: &str| true;
    let Some(tree) = squash(data, &everything) else {
        return;
    };
    let paths: Vec<&String> = tree.files.keys().chain(tree.symlinks.keys()).collect();
    for p in paths {
        let _ = tree.get(p);
        let _ = tree.list_dir(p);
    }
}

/// A layer as a scan reads it: the catalogers' selector and reductions,
/// then every cataloger and the SBOM over the result.
pub fn image_layer(data: &[u8]) {
    if let Some(tree) = squash(data, &Selector) {
        catalog_and_sbom(&tree);
    }
}

/// Image references (`ImageUrl`, imageDetail.json, base-image labels): a
/// parsed reference prints as one that parses back to itself, or a log
/// line and the pulled image could disagree.
pub fn image_reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = s.parse::<ImageRef>() else {
        return;
    };
    let _ = (r.manifest_reference(), r.is_docker_hub());
    let printed = r.to_string();
    let again: ImageRef = printed
        .parse()
        .unwrap_or_else(|e| panic!("{s:?} parses, but its printed form {printed:?} does not: {e}"));
    assert_eq!(again, r, "{s:?} printed as {printed:?} parses differently");
}

/// Manifests, indexes and image configs as a registry serves them.
pub fn manifest(data: &[u8]) {
    for content_type in [
        None,
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
    ] {
        match manifest::parse_manifest(data, content_type) {
            Ok(Manifest::Index(index)) => {
                let candidates: Vec<Option<Platform>> = index
                    .image_entries()
                    .iter()
                    .map(|d| d.platform.as_ref().map(Platform::from))
                    .collect();
                let _ = Platform::default().select(&candidates);
            }
            Ok(Manifest::Image(image)) => {
                let base = BaseAnnotation::find(&image.annotations, &BTreeMap::new());
                if let Some(b) = base {
                    let _ = b.reference().parse::<ImageRef>();
                }
            }
            Err(_) => {}
        }
    }
    if let Ok(config) = manifest::parse_config(data) {
        let _ = config.layer_history();
        if let Some(b) = BaseAnnotation::find(&BTreeMap::new(), &config.labels) {
            let _ = b.reference().parse::<ImageRef>();
        }
    }
}

/// Puts `data` at `path` as the image reader would keep it (wanted by
/// path, or sniffed for its content, then reduced by its cataloger), with
/// `extra` files beside it, and runs the catalogers; `None` when the reader
/// would not keep the file.
fn catalog_file(path: &str, mode: u32, data: &[u8], extra: &[(&str, &[u8])]) -> Option<Catalog> {
    let sniffed = !Selector.wants(path);
    if sniffed {
        let head = &data[..data.len().min(Selector.sniff_len())];
        if !Selector.sniff(path, mode, head) {
            return None;
        }
    }
    let kept = Selector.reduce(path, mode, sniffed, data.to_vec())?;
    let mut tree = FileTree::default();
    for (p, d) in extra.iter().copied().chain([(path, kept.as_slice())]) {
        let entry = FileEntry {
            data: d.to_vec().into(),
            layer: 0,
        };
        tree.files.insert(p.to_owned(), entry);
    }
    Some(catalog_and_sbom(&tree))
}

/// The catalog of `tree`, after building (and serialising) its SBOM, where
/// image-controlled names and versions become purls and JSON.
fn catalog_and_sbom(tree: &FileTree) -> Catalog {
    let found = catalog::run(tree);
    let opts = SbomOptions {
        serial: Some(uuid::Uuid::nil()),
        timestamp: Some(time::OffsetDateTime::UNIX_EPOCH),
    };
    let bom = sbom::build(&found, &ImageMeta::default(), &opts);
    let _ = sbom::component_count(&bom);
    for part in sbom::split(&bom, 2000) {
        let _ = serde_json::to_vec(&part);
    }
    found
}

/// What cataloger target `target` finds in `data` (for the replay tests).
pub fn cataloger_target(target: &str, data: &[u8]) -> Option<Catalog> {
    let (path, mode) = catalog_path(target);
    let data = match target {
        "go_buildinfo" => as_elf(data, ".go.buildinfo"),
        "cargo_auditable" => as_elf(data, ".dep-v0"),
        _ => data.to_vec(),
    };
    let extra: &[(&str, &[u8])] = match target {
        "dpkg_status" | "apk_installed" | "rpm_bdb" | "rpm_ndb" | "rpm_sqlite" => &[COMPANION],
        _ => &[],
    };
    catalog_file(path, mode, &data, extra)
}

pub fn os_release(data: &[u8]) {
    cataloger_target("os_release", data);
}

pub fn dpkg_status(data: &[u8]) {
    cataloger_target("dpkg_status", data);
}

pub fn apk_installed(data: &[u8]) {
    cataloger_target("apk_installed", data);
}

/// One rpm header blob (what every rpm database stores per package):
/// package fields and the file list.
pub fn rpm_header(data: &[u8]) {
    if catalog::rpm::header::parse(data).is_ok() {
        let _ = catalog::rpm::header::for_each_file(data, |_, _| {});
    }
}

pub fn rpm_bdb(data: &[u8]) {
    cataloger_target("rpm_bdb", data);
}

pub fn rpm_ndb(data: &[u8]) {
    cataloger_target("rpm_ndb", data);
}

/// `rpmdb.sqlite`, opened from the bytes as the rpm cataloger does.
pub fn rpm_sqlite(data: &[u8]) {
    cataloger_target("rpm_sqlite", data);
}

pub fn python_metadata(data: &[u8]) {
    cataloger_target("python_metadata", data);
}

pub fn npm_package_json(data: &[u8]) {
    cataloger_target("npm_package_json", data);
}

/// A Go executable. Input that is not already an ELF file is the content
/// of a `.go.buildinfo` section, wrapped in a minimal ELF executable, so
/// that mutations reach the build-info decoder instead of dying in the ELF
/// parser.
pub fn go_buildinfo(data: &[u8]) {
    cataloger_target("go_buildinfo", data);
}

/// A Rust executable built with cargo-auditable; as for [`go_buildinfo`],
/// input that is not ELF is the (zlib-compressed JSON) `.dep-v0` section.
pub fn cargo_auditable(data: &[u8]) {
    cataloger_target("cargo_auditable", data);
}

pub fn jar(data: &[u8]) {
    cataloger_target("jar", data);
}

pub fn gemspec(data: &[u8]) {
    cataloger_target("gemspec", data);
}

pub fn composer(data: &[u8]) {
    cataloger_target("composer", data);
}

pub fn deps_json(data: &[u8]) {
    cataloger_target("deps_json", data);
}

/// An Inspector ScanSbom answer (the `sbom` document, or a whole saved
/// answer `{"sbom": ...}`): findings, warnings, notes, counts, the
/// document conversion the SDK call goes through, and a policy decision.
pub fn scan_answer(data: &[u8]) {
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(inner) = v.get_mut("sbom").map(Value::take) {
        v = inner;
    }
    let answer = inspector::from_document(&inspector::to_document(&v));
    let mut found = findings::from_answer(&answer);
    let mut warnings = Vec::new();
    inspector::collect_warnings(&answer, &mut warnings);
    let _ = findings::component_notes(&answer);
    let _ = findings::summary_counts(&answer);
    findings::attach_locations(&mut found, &answer);
    let merged = findings::merge(vec![found.clone(), found]);
    let _ = Policy::default().decide_on(&merged, fixed_date());
}

/// A policy file (JSON or YAML, told apart as the worker does for a file
/// with no telling extension), applied to a few findings.
pub fn policy_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = PolicyFile::parse("policy", text) else {
        return;
    };
    let _ = file.warnings(fixed_date());
    let policy = file.to_policy(&PolicyOverrides::default());
    let _ = policy.decide_on(&sample_findings(), fixed_date());
}

fn fixed_date() -> time::Date {
    time::macros::date!(2026 - 01 - 15)
}

fn sample_findings() -> Vec<findings::Finding> {
    [
        (
            "CVE-2024-0001",
            findings::Severity::Critical,
            "pkg:deb/debian/openssl@3.0.11-1?arch=amd64",
        ),
        (
            "CVE-2023-0002",
            findings::Severity::High,
            "pkg:npm/lodash@4.17.20",
        ),
        (
            "GHSA-xxxx-yyyy-zzzz",
            findings::Severity::Low,
            "pkg:pypi/six@1.16.0",
        ),
    ]
    .into_iter()
    .map(|(id, severity, purl)| findings::Finding {
        id: id.into(),
        severity,
        purl: purl.into(),
        fixed_version: Some("9.9.9".into()),
        ..Default::default()
    })
    .collect()
}

/// `data` itself when it is an ELF file, else a minimal little-endian
/// ELF64 executable with `data` as its one section `name` (no segments).
pub fn as_elf(data: &[u8], name: &str) -> Vec<u8> {
    if data.starts_with(b"\x7fELF") {
        return data.to_vec();
    }
    const EHDR: usize = 64;
    const SHDR: usize = 64;
    let mut shstrtab = vec![0u8];
    shstrtab.extend_from_slice(name.as_bytes());
    shstrtab.push(0);
    let shstrtab_name = shstrtab.len();
    shstrtab.extend_from_slice(b".shstrtab\0");
    let data_off = EHDR;
    let strtab_off = data_off + data.len();
    let shoff = (strtab_off + shstrtab.len()).next_multiple_of(8);

    let mut elf = Vec::with_capacity(shoff + 3 * SHDR);
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01");
    elf.resize(16, 0);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes()); // entry
    elf.extend_from_slice(&0u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&(shoff as u64).to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [EHDR as u16, 56, 0, SHDR as u16, 3, 2] {
        // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        elf.extend_from_slice(&v.to_le_bytes());
    }
    elf.extend_from_slice(data);
    elf.extend_from_slice(&shstrtab);
    elf.resize(shoff, 0);
    elf.resize(shoff + SHDR, 0); // SHN_UNDEF
    let section = |elf: &mut Vec<u8>, name: usize, ty: u32, flags: u64, off: usize, size: usize| {
        elf.extend_from_slice(&(name as u32).to_le_bytes());
        elf.extend_from_slice(&ty.to_le_bytes());
        elf.extend_from_slice(&flags.to_le_bytes());
        elf.extend_from_slice(&0u64.to_le_bytes()); // addr
        elf.extend_from_slice(&(off as u64).to_le_bytes());
        elf.extend_from_slice(&(size as u64).to_le_bytes());
        elf.extend_from_slice(&[0u8; 8]); // link, info
        elf.extend_from_slice(&1u64.to_le_bytes()); // addralign
        elf.extend_from_slice(&0u64.to_le_bytes()); // entsize
    };
    section(&mut elf, 1, 1, 2, data_off, data.len()); // PROGBITS, ALLOC
    section(&mut elf, shstrtab_name, 3, 0, strtab_off, shstrtab.len()); // STRTAB
    elf
}

#[cfg(test)]
mod tests;
