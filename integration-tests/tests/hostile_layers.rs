//! Hostile layers (issue 9 #2, #6, #7, #13; issue 10 class 1) through the
//! real `scangate sbom oci:DIR` binary, with its peak RSS measured.
//!
//! The layers are written as raw tar bytes, streamed through gzip into the
//! layout's blob files: shapes such as a GNU long-name record, `..` names
//! or a million entries cannot be made by a tar writer that checks paths,
//! and would not fit in the test's memory if built whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use integration_tests::corpus;
use integration_tests::images::{DpkgEntry, dpkg_status, sha256_digest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Peak RSS allowed for any of these images (the defects reached 0.2 to
/// 3.1 GiB).
const MAX_RSS_KIB: i64 = 200 * 1024;

/// A `Write` that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        len: 0,
    }
}

/// One layer written straight into `blobs/sha256/` of a layout.
struct LayerWriter {
    tar: Hashing<GzEncoder<Hashing<BufWriter<File>>>>,
    tmp: std::path::PathBuf,
    blobs: std::path::PathBuf,
    gzip: bool,
    raw: Option<Hashing<BufWriter<File>>>,
}

/// A finished layer: (digest, diff_id, size, media type).
type Written = (String, String, u64, &'static str);

impl LayerWriter {
    fn new(dir: &Path, gzip: bool) -> LayerWriter {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let tmp = blobs.join(format!("tmp-{}", rand_suffix()));
        let file = hashing(BufWriter::new(File::create(&tmp).unwrap()));
        if gzip {
            LayerWriter {
                tar: hashing(GzEncoder::new(file, Compression::fast())),
                tmp,
                blobs,
                gzip,
                raw: None,
            }
        } else {
            // Uncompressed: the tar hash is the blob hash; the gzip encoder
            // is unused (a sink) and the bytes go to `raw`.
            let sink = hashing(BufWriter::new(File::create("/dev/null").unwrap()));
            LayerWriter {
                tar: hashing(GzEncoder::new(sink, Compression::none())),
                tmp,
                blobs,
                gzip,
                raw: Some(file),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match &mut self.raw {
            Some(raw) => raw.write_all(bytes).unwrap(),
            None => self.tar.write_all(bytes).unwrap(),
        }
    }

    /// A header block for `name` (must fit the 100-byte field).
    fn header(&mut self, name: &[u8], kind: u8, size: u64, link: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
        h.set_size(size);
        h.set_mtime(1_704_067_200);
        h.set_cksum();
        let bytes = h.as_bytes().to_vec();
        self.write(&bytes);
    }

    fn data(&mut self, data: &[u8]) {
        self.write(data);
        let pad = (512 - data.len() % 512) % 512;
        self.write(&vec![0u8; pad]);
    }

    fn file(&mut self, name: &str, data: &[u8]) {
        self.header(name.as_bytes(), b'0', data.len() as u64, b"");
        self.data(data);
    }

    /// A GNU long name or long link record (`L` / `K`) carrying `value`.
    fn long(&mut self, kind: u8, value: &[u8]) {
        self.header(b"././@LongLink", kind, value.len() as u64 + 1, b"");
        self.write(value);
        self.write(&[0]);
        let pad = (512 - (value.len() + 1) % 512) % 512;
        self.write(&vec![0u8; pad]);
    }

    fn finish(mut self) -> Written {
        self.write(&[0u8; 1024]);
        let (digest, diff_id, size) = match self.raw.take() {
            Some(mut raw) => {
                raw.flush().unwrap();
                let d = format!("sha256:{}", hex::encode(raw.hash.finalize()));
                (d.clone(), d, raw.len)
            }
            None => {
                let diff_id = format!("sha256:{}", hex::encode(self.tar.hash.finalize()));
                let mut file = self.tar.inner.finish().unwrap();
                file.flush().unwrap();
                let digest = format!("sha256:{}", hex::encode(file.hash.finalize()));
                (digest, diff_id, file.len)
            }
        };
        let hex = digest.trim_start_matches("sha256:");
        std::fs::rename(&self.tmp, self.blobs.join(hex)).unwrap();
        let mt = if self.gzip {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        (digest, diff_id, size, mt)
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let path = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::write(path, bytes).unwrap();
    digest
}

/// Writes config, manifest and `index.json` around the layers.
fn finish_layout(dir: &Path, layers: &[Written]) {
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>()},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(dir, &config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_bytes.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": l.3, "digest": l.0, "size": l.2})).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(dir, &manifest_bytes);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_bytes.len()}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

struct Run {
    out: std::process::Output,
    sbom: Option<Value>,
    max_rss_kib: i64,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn purls(&self) -> Vec<String> {
        self.sbom.as_ref().expect("an SBOM was written")["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["purl"].as_str().map(str::to_owned))
            .collect()
    }

    fn assert_bounded(&self) {
        assert!(
            self.max_rss_kib < MAX_RSS_KIB,
            "peak RSS {} KiB over {MAX_RSS_KIB} KiB; stderr:\n{}",
            self.max_rss_kib,
            self.stderr()
        );
    }
}

/// `scangate sbom oci:DIR`, measured.
fn sbom(dir: &Path) -> Run {
    let out_path = dir.join("sbom.json");
    let mut cmd = std::process::Command::new(corpus::scangate_bin());
    cmd.arg("sbom")
        .arg(format!("oci:{}", dir.display()))
        .arg("-o")
        .arg(&out_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SCANGATE_LOG_FORMAT", "text");
    let started = std::time::Instant::now();
    let (out, max_rss_kib) = integration_tests::process::run_measured(cmd);
    eprintln!(
        "{}: exit {:?}, {} KiB peak RSS, {:?}",
        dir.display(),
        out.status.code(),
        max_rss_kib,
        started.elapsed()
    );
    let sbom = std::fs::read(&out_path)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("the SBOM is JSON"));
    Run {
        out,
        sbom,
        max_rss_kib,
    }
}

const OS_RELEASE: &[u8] = b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";
const PKGS: &[DpkgEntry<'static>] = &[
    ("bash", "5.2.15-2+b2", "amd64", ""),
    ("libc6", "2.36-9+deb12u4", "amd64", "glibc"),
];

fn has_debs(run: &Run) -> bool {
    let purls = run.purls();
    // libc6 is named by its source package, glibc.
    purls
        .iter()
        .any(|p| p.starts_with("pkg:deb/debian/bash@5.2.15-2%2Bb2"))
        && purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/debian/glibc@2.36"))
}

/// Issue 9 #2: a 256 MiB GNU long name (about 256 KB gzipped) was read
/// whole into memory, twice over; it now fails at its header.
#[test]
fn huge_gnu_long_name_fails_clearly_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = LayerWriter::new(dir.path(), true);
    let len = 256u64 << 20;
    l.header(b"././@LongLink", b'L', len, b"");
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..256 {
        l.write(&chunk);
    }
    l.file("etc/os-release", OS_RELEASE);
    let layer = l.finish();
    finish_layout(dir.path(), &[layer]);
    let run = sbom(dir.path());
    run.assert_bounded();
    assert_eq!(run.out.status.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("4096"), "{}", run.stderr());
}

/// Issue 9 #2: hard links to a 60 MiB wanted file cloned it once per
/// link (30 links: 1.9 GiB). They share one copy now. The file is an rpm
/// database name (every name below is wanted) so that the catalogers reject
/// its content quickly; six copies were 360 MiB before.
#[test]
fn hard_links_to_a_large_wanted_file_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = LayerWriter::new(dir.path(), true);
    l.file("etc/os-release", OS_RELEASE);
    l.file("var/lib/dpkg/status", dpkg_status(PKGS).as_bytes());
    l.file("var/lib/rpm/Packages", &vec![0u8; 60 << 20]);
    for dir in ["var/lib/rpm", "usr/lib/sysimage/rpm", "usr/share/rpm"] {
        for name in ["Packages.db", "Packages"] {
            let path = format!("{dir}/{name}");
            if path != "var/lib/rpm/Packages" {
                l.header(path.as_bytes(), b'1', 0, b"var/lib/rpm/Packages");
            }
        }
    }
    let layer = l.finish();
    finish_layout(dir.path(), &[layer]);
    let run = sbom(dir.path());
    assert!(run.out.status.success(), "{}", run.stderr());
    run.assert_bounded();
    assert!(has_debs(&run), "{:?}", run.purls());
}

/// Issue 9 #2: 100k symlinks with 4 KB targets (430 MB) are over the
/// metadata budget: a clear limit error, in bounded memory.
#[test]
fn many_long_symlink_targets_hit_the_metadata_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = LayerWriter::new(dir.path(), true);
    l.file("etc/os-release", OS_RELEASE);
    let target = vec![b't'; 4000];
    for i in 0..100_000 {
        l.long(b'K', &target);
        l.header(format!("usr/share/l/{i}").as_bytes(), b'2', 0, b"");
    }
    let layer = l.finish();
    finish_layout(dir.path(), &[layer]);
    let run = sbom(dir.path());
    run.assert_bounded();
    assert_eq!(run.out.status.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("max_metadata_bytes"),
        "{}",
        run.stderr()
    );
}

/// Issue 9 #2 and #6: a million directory entries (228 MB before) and
/// symlinks with deep targets are read in bounded memory and time.
#[test]
fn a_million_directories_and_deep_symlinks_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = LayerWriter::new(dir.path(), true);
    l.file("etc/os-release", OS_RELEASE);
    l.file("var/lib/dpkg/status", dpkg_status(PKGS).as_bytes());
    for i in 0..1_000_000u32 {
        let name = format!("usr/share/d{:03}/{:04}/", i / 10_000, i % 10_000);
        l.header(name.as_bytes(), b'5', 0, b"");
    }
    // Deep targets: each resolution walks ~1,200 components.
    let deep = ["a/"; 600].concat() + &["../"; 600].concat() + "var/lib";
    for i in 0..200 {
        l.long(b'K', deep.as_bytes());
        l.header(format!("deep{i}").as_bytes(), b'2', 0, b"");
        l.file(&format!("deep{i}/dpkg/status.d/x{i}"), b"");
    }
    let layer = l.finish();
    finish_layout(dir.path(), &[layer]);
    let started = std::time::Instant::now();
    let run = sbom(dir.path());
    assert!(run.out.status.success(), "{}", run.stderr());
    run.assert_bounded();
    assert!(has_debs(&run), "{:?}", run.purls());
    // A generous bound: the debug binary on a shared CPU took 175 s for
    // the million entries; the quadratic resolution alone took 84 s for
    // one 200k-component target (the linear walk is unit-tested in fs.rs).
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
}

/// Issue 9 #7: dpkg's database reached through a symlinked directory made
/// in a lower layer, and a name climbing above the root. containerd
/// installs both, so the packages are there and must be reported.
#[test]
fn packages_written_through_symlinks_or_above_the_root_are_found() {
    for shape in ["symlinked-dir", "dot-dot"] {
        let dir = tempfile::tempdir().unwrap();
        let mut l0 = LayerWriter::new(dir.path(), true);
        l0.file("etc/os-release", OS_RELEASE);
        l0.header(b"opt/dpkgdb/", b'5', 0, b"");
        if shape == "symlinked-dir" {
            l0.header(b"var/lib/dpkg", b'2', 0, b"../../opt/dpkgdb");
        }
        let l0 = l0.finish();
        let mut l1 = LayerWriter::new(dir.path(), true);
        let name = if shape == "symlinked-dir" {
            "var/lib/dpkg/status"
        } else {
            "../var/lib/dpkg/status"
        };
        l1.file(name, dpkg_status(PKGS).as_bytes());
        let l1 = l1.finish();
        finish_layout(dir.path(), &[l0, l1]);
        let run = sbom(dir.path());
        assert!(run.out.status.success(), "{shape}: {}", run.stderr());
        assert!(
            has_debs(&run),
            "{shape}: {:?}\n{}",
            run.purls(),
            run.stderr()
        );
    }
}

/// The reverse of issue 9 #7: a package database directory is a symlink
/// and the database is written directly at its real location, under a
/// name no cataloger asks for. The runtime's dpkg/apk read it through the
/// symlink, so the scan must find the packages (they were dropped: a
/// silent false PASS). The symlink comes below or above the database.
#[test]
fn packages_written_at_a_symlinked_database_dirs_real_location_are_found() {
    const APK: &[u8] =
        b"P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n";
    for shape in [
        "dpkg-symlink-first",
        "dpkg-symlink-last",
        "apk",
        "os-release",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (link, target, real, data, os): (&[u8], &[u8], &str, Vec<u8>, &[u8]) = match shape {
            "apk" => (
                b"lib/apk/db",
                b"../../srv/apkdb",
                "srv/apkdb/installed",
                APK.to_vec(),
                b"ID=alpine\nVERSION_ID=3.19.1\n",
            ),
            "os-release" => (
                b"var/lib/dpkg",
                b"../../opt/pkgdb",
                "opt/pkgdb/status",
                dpkg_status(PKGS).into_bytes(),
                b"",
            ),
            _ => (
                b"var/lib/dpkg",
                b"../../opt/pkgdb",
                "opt/pkgdb/status",
                dpkg_status(PKGS).into_bytes(),
                OS_RELEASE,
            ),
        };
        let mut l0 = LayerWriter::new(dir.path(), true);
        if shape == "os-release" {
            // `etc` itself is a symlink; os-release written at the target.
            l0.header(b"etc", b'2', 0, b"srv/etc");
            l0.file("srv/etc/os-release", OS_RELEASE);
        } else {
            l0.file("etc/os-release", os);
        }
        if shape != "dpkg-symlink-last" {
            l0.header(link, b'2', 0, target);
        }
        let l0 = l0.finish();
        let mut l1 = LayerWriter::new(dir.path(), true);
        l1.file(real, &data);
        if shape == "dpkg-symlink-last" {
            l1.header(link, b'2', 0, target);
        }
        let l1 = l1.finish();
        finish_layout(dir.path(), &[l0, l1]);
        let run = sbom(dir.path());
        assert!(run.out.status.success(), "{shape}: {}", run.stderr());
        let found = if shape == "apk" {
            let purls = run.purls();
            purls
                .iter()
                .any(|p| p.starts_with("pkg:apk/alpine/musl@1.2.4-r2"))
                && purls
                    .iter()
                    .any(|p| p.starts_with("pkg:apk/alpine/busybox@"))
        } else {
            has_debs(&run)
        };
        assert!(found, "{shape}: {:?}\n{}", run.purls(), run.stderr());
    }
}

/// Issue 10 class 1: the dpkg database stored as a hard link to an earlier
/// entry of its layer that no cataloger wants is read in a second pass.
#[test]
fn a_database_stored_as_a_hard_link_to_an_unwanted_name_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = LayerWriter::new(dir.path(), true);
    l.file("usr/lib/os-release", OS_RELEASE);
    l.header(b"etc/os-release", b'1', 0, b"usr/lib/os-release");
    l.file("var/backups/dpkg.status.0", dpkg_status(PKGS).as_bytes());
    l.header(
        b"var/lib/dpkg/status",
        b'1',
        0,
        b"var/backups/dpkg.status.0",
    );
    let layer = l.finish();
    finish_layout(dir.path(), &[layer]);
    let run = sbom(dir.path());
    assert!(run.out.status.success(), "{}", run.stderr());
    assert!(has_debs(&run), "{:?}\n{}", run.purls(), run.stderr());
    assert!(!run.stderr().contains("hard link"), "{}", run.stderr());
}

/// Issue 9 #13: megabytes after the tar end marker are refused instead of
/// being drained up to the declared size.
#[test]
fn a_long_blob_tail_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = LayerWriter::new(dir.path(), false);
    l.file("etc/os-release", OS_RELEASE);
    l.write(&[0u8; 1024]);
    l.write(&vec![0x5a; 8 << 20]);
    let layer = l.finish();
    finish_layout(dir.path(), &[layer]);
    let run = sbom(dir.path());
    assert_eq!(run.out.status.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("follow the end of the tar archive"),
        "{}",
        run.stderr()
    );
}
