//! Rust executables built with `cargo auditable`: the `.dep-v0` ELF section
//! holds the crate graph as zlib-compressed JSON (`{"packages": [{"name",
//! "version", "source", "kind", "dependencies", "root"}]}`, the format of
//! the `auditable-serde` crate).
//!
//! Found by content like Go binaries (see [`super::golang`]): ELF programs
//! with an exec bit are sniffed, and [`RustCataloger::reduce`] keeps only
//! the compressed section.
//!
//! Reported: every crate compiled into the binary, i.e. not the root crate
//! (the program itself, usually a local path crate) and not build-only
//! dependencies (`kind: "build"`: build scripts and proc macros run at
//! compile time, their code is not in the binary), as trivy does. Local
//! path crates that are dependencies stay: their code is in the binary.

use std::io::Read;

use object::{Object, ObjectSection};
use serde::Deserialize;
use thiserror::Error;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt, is_elf_program};
use crate::image::fs::FileTree;

pub struct RustCataloger;

/// A reduced file: this marker, then the section as stored (compressed).
const MARKER: &[u8] = b"\0scangate cargo-auditable .dep-v0\n";
/// A reduced file whose section could not be read: this, then the reason.
const UNREADABLE: &[u8] = b"\0scangate cargo-auditable: unreadable\n";
/// cargo-auditable refuses to read more than 8 MiB of JSON; so do we, which
/// bounds a zlib bomb.
const MAX_JSON: u64 = 8 << 20;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("not a readable ELF file: {0}")]
    Elf(String),
    #[error("the .dep-v0 section does not decompress: {0}")]
    Zlib(std::io::Error),
    #[error("the .dep-v0 section decompresses to more than {MAX_JSON} bytes")]
    TooLarge,
    #[error("the .dep-v0 section is not cargo-auditable JSON: {0}")]
    Json(serde_json::Error),
}

#[derive(Debug, Deserialize)]
struct VersionInfo {
    packages: Vec<AuditPackage>,
}

#[derive(Debug, Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    root: bool,
}

impl Cataloger for RustCataloger {
    fn name(&self) -> &'static str {
        "rust"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn sniff(&self, _path: &str, mode: u32, head: &[u8]) -> bool {
        is_elf_program(mode, head)
    }

    fn claims(&self, _path: &str, data: &[u8]) -> bool {
        // An unreadable ELF file is claimed (and reported) by the Go
        // cataloger, which sniffs first; claim it too in case it does not.
        !matches!(dep_section(data), Ok(None))
    }

    fn reduce(&self, _path: &str, data: Vec<u8>) -> Vec<u8> {
        match dep_section(&data) {
            Ok(Some(section)) => [MARKER, section].concat(),
            Ok(None) => Vec::new(),
            Err(e) => [UNREADABLE, e.to_string().as_bytes()].concat(),
        }
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warnings = WarningSink::new(&mut out.warnings, "cargo");
        for (path, file) in &files.files {
            if let Some(reason) = file.data.strip_prefix(UNREADABLE) {
                warnings.push(format!(
                    "{path}: {}; its crates are not reported",
                    excerpt(&String::from_utf8_lossy(reason))
                ));
                continue;
            }
            let Some(section) = file.data.strip_prefix(MARKER) else {
                continue;
            };
            let info = match parse(section) {
                Ok(info) => info,
                Err(e) => {
                    warnings.push(format!("{path}: {e}"));
                    continue;
                }
            };
            for p in info.packages {
                if p.root || p.kind.as_deref() == Some("build") {
                    continue;
                }
                out.packages.push(Package::language(
                    Ecosystem::Cargo,
                    p.name,
                    p.version,
                    path,
                    file.layer,
                ));
            }
        }
    }
}

/// The raw `.dep-v0` section of an ELF file, if it has one.
fn dep_section(data: &[u8]) -> Result<Option<&[u8]>, AuditError> {
    let elf = |e: object::Error| AuditError::Elf(e.to_string());
    let file = object::File::parse(data).map_err(elf)?;
    match file.section_by_name(".dep-v0") {
        Some(section) => section.data().map(Some).map_err(elf),
        None => Ok(None),
    }
}

fn parse(section: &[u8]) -> Result<VersionInfo, AuditError> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(AuditError::Zlib)?;
    if json.len() as u64 > MAX_JSON {
        return Err(AuditError::TooLarge);
    }
    serde_json::from_slice(&json).map_err(AuditError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::SNIFF_LEN;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    use crate::catalog::testkit::{gunzip, pairs, run_in_layer};

    fn hello_rust() -> Vec<u8> {
        gunzip(include_bytes!("fixtures/hello-rust.gz"))
    }

    fn catalog(files: &[(&str, &[u8])]) -> Catalog {
        run_in_layer(&RustCataloger, files, 2)
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn auditable_binary_is_sniffed_reduced_and_cataloged() {
        let bin = hello_rust();
        assert!(RustCataloger.sniff("usr/local/bin/hello-rust", 0o755, &bin[..SNIFF_LEN]));
        let reduced = RustCataloger.reduce("usr/local/bin/hello-rust", bin);
        assert!(reduced.len() < 512, "{}", reduced.len());
        let c = catalog(&[("usr/local/bin/hello-rust", &reduced)]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // The root crate hello-rust is not reported.
        assert_eq!(
            pairs(&c),
            [
                ("libc", "0.2.191"),
                ("smallvec", "0.6.10"),
                ("time", "0.1.43")
            ]
        );
        assert!(
            c.packages
                .iter()
                .all(|p| p.location == "usr/local/bin/hello-rust" && p.layer == 2)
        );
    }

    #[test]
    fn build_dependencies_and_root_are_skipped_local_deps_kept() {
        let json = br#"{"packages":[
            {"name":"app","version":"1.0.0","source":"local","root":true,"dependencies":[1,2,3]},
            {"name":"serde_derive","version":"1.0.200","source":"crates.io","kind":"build"},
            {"name":"util","version":"0.1.0","source":"local"},
            {"name":"serde","version":"1.0.200","source":"crates.io","kind":"runtime"}
        ],"format":1}"#;
        let blob = [MARKER, &zlib(json)].concat();
        let c = catalog(&[("app", &blob)]);
        assert_eq!(pairs(&c), [("util", "0.1.0"), ("serde", "1.0.200")]);
    }

    #[test]
    fn other_and_damaged_files_never_panic() {
        // A Go binary has no .dep-v0 section: dropped.
        let go: &[u8] = include_bytes!("../golang/fixtures/hello-go.gz");
        let mut go_bin = Vec::new();
        flate2::read::GzDecoder::new(go)
            .read_to_end(&mut go_bin)
            .unwrap();
        assert!(!RustCataloger.claims("g", &go_bin));
        assert!(RustCataloger.reduce("g", go_bin).is_empty());
        assert!(RustCataloger.claims("r", &hello_rust()));

        let bin = hello_rust();
        for cut in [10, 64, 1000, bin.len() / 2, bin.len() - 1] {
            let reduced = RustCataloger.reduce("t", bin[..cut].to_vec());
            let c = catalog(&[("t", &reduced)]);
            assert!(c.packages.is_empty() || c.packages.len() == 3, "{cut}");
        }
        let c = catalog(&[("t", &RustCataloger.reduce("t", bin[..10].to_vec()))]);
        assert!(
            c.warnings[0].starts_with("cargo: t: not a readable ELF file"),
            "{:?}",
            c.warnings
        );

        let cases: [(&[u8], &str); 3] = [
            (b"not zlib at all", "does not decompress"),
            (&zlib(b"{\"packages\": 3}"), "not cargo-auditable JSON"),
            (&zlib(&vec![b' '; (MAX_JSON + 10) as usize]), "more than"),
        ];
        for (section, want) in cases {
            let c = catalog(&[("x", &[MARKER, section].concat())]);
            assert!(c.packages.is_empty());
            assert!(c.warnings[0].contains(want), "{want}: {:?}", c.warnings);
        }
    }
}
