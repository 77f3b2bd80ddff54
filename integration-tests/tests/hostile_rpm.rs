//! Hostile rpm databases against the real `scangate sbom oci:DIR` (issue 9,
//! defects 3 and 4): each test builds the hostile database, puts it in an
//! OCI image where rpm keeps it, and runs the binary with every file write
//! forbidden (`RLIMIT_FSIZE` 0: a spill to `/var/tmp` or `$TMPDIR` kills the
//! process with SIGXFSZ instead of filling the disk) and a CPU limit,
//! asserting a bounded peak RSS and wall time and a clear warning. The real
//! rpm images of the corpus must still give exactly their ground truth.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use integration_tests::corpus;
use integration_tests::images::{ImageBuilder, Layer};
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// Peak RSS allowed for one of these scans; a clean run of the corpus rpm
/// images peaks at ~50 MiB.
const MAX_RSS_KIB: i64 = 150 * 1024;
const MAX_WALL: Duration = Duration::from_secs(30);
/// CPU seconds before the kernel stops a runaway scan (SIGXCPU).
const CPU_LIMIT_SECS: u64 = 60;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;

/// An rpm header blob from (tag, type, count, data) entries, laid out as rpm
/// does (INT32 data 4-aligned).
fn header(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
    let (mut index, mut store) = (Vec::new(), Vec::new());
    for (tag, ty, count, d) in entries {
        if *ty == TYPE_INT32 {
            while store.len() % 4 != 0 {
                store.push(0);
            }
        }
        for v in [*tag, *ty, store.len() as u32, *count] {
            index.extend_from_slice(&v.to_be_bytes());
        }
        store.extend_from_slice(d);
    }
    let mut out = (entries.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&(store.len() as u32).to_be_bytes());
    out.extend(index);
    out.extend(store);
    out
}

fn string(tag: u32, v: &str) -> (u32, u32, u32, Vec<u8>) {
    (tag, TYPE_STRING, 1, format!("{v}\0").into_bytes())
}

fn package(name: &str, version: &str, files: Vec<(u32, u32, u32, Vec<u8>)>) -> Vec<u8> {
    let mut e = vec![
        string(TAG_NAME, name),
        string(TAG_VERSION, version),
        string(TAG_RELEASE, "1.fc40"),
        string(TAG_ARCH, "x86_64"),
        string(TAG_SOURCERPM, &format!("{name}-{version}-1.fc40.src.rpm")),
    ];
    e.extend(files);
    header(&e)
}

/// An sqlite database made by sqlite itself from `sql`, then `blobs`
/// inserted into `Packages` when given.
fn sqlite_db(sql: &str, blobs: &[Vec<u8>]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    for b in blobs {
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
            .unwrap();
    }
    drop(conn);
    std::fs::read(&path).unwrap()
}

/// rpm's own schema for the table we read.
const RPM_SCHEMA: &str =
    "CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL);";

struct Run {
    out: Output,
    max_rss_kib: i64,
    wall: Duration,
    sbom: Value,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// (name, `[epoch:]version-release`) of every rpm component.
    fn rpms(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        collect_rpms(&self.sbom["components"], &mut out);
        out.sort();
        out
    }

    /// Success, within every bound, with a warning containing each needle.
    fn assert_bounded(&self, needles: &[&str]) {
        let err = self.stderr();
        assert!(
            self.out.status.success(),
            "status {:?}, rss {} KiB:\n{err}",
            self.out.status,
            self.max_rss_kib
        );
        assert!(
            self.max_rss_kib < MAX_RSS_KIB,
            "peak RSS {} KiB:\n{err}",
            self.max_rss_kib
        );
        assert!(self.wall < MAX_WALL, "took {:?}", self.wall);
        for n in needles {
            assert!(
                err.lines()
                    .any(|l| l.starts_with("warning: ") && l.contains(n)),
                "expected a warning with {n:?} in:\n{err}"
            );
        }
    }
}

fn collect_rpms(components: &Value, out: &mut Vec<(String, String)>) {
    for c in components.as_array().into_iter().flatten() {
        if let Some(purl) = c["purl"].as_str().and_then(|p| p.strip_prefix("pkg:rpm/")) {
            let (base, query) = purl.split_once('?').unwrap_or((purl, ""));
            let (path, version) = base.rsplit_once('@').unwrap();
            let name = path.rsplit('/').next().unwrap();
            let epoch = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("epoch="))
                .unwrap_or("0");
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let version = decode(version);
            out.push((
                decode(name),
                if epoch == "0" {
                    version
                } else {
                    format!("{epoch}:{version}")
                },
            ));
        }
        collect_rpms(&c["components"], out);
    }
}

/// The binary under test; `HOSTILE_RPM_SCANGATE` names another build (an
/// older one, to measure what a fix changed).
fn scangate() -> PathBuf {
    match std::env::var_os("HOSTILE_RPM_SCANGATE") {
        Some(p) => PathBuf::from(p),
        None => corpus::scangate_bin().to_owned(),
    }
}

/// `scangate sbom oci:DIR`, writing nothing to any file (RLIMIT_FSIZE 0; its
/// stdout and stderr are pipes), under a CPU limit, `TMPDIR` an empty
/// directory that must stay empty.
fn sbom(layout: &Path) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(scangate());
    cmd.arg("sbom")
        .arg(format!("oci:{}", layout.display()))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", tmp.path())
        .env("TMPDIR", tmp.path())
        .env("SQLITE_TMPDIR", tmp.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            for (res, v) in [(libc::RLIMIT_FSIZE, 0), (libc::RLIMIT_CPU, CPU_LIMIT_SECS)] {
                let l = libc::rlimit {
                    rlim_cur: v,
                    rlim_max: v,
                };
                if libc::setrlimit(res, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let (out, max_rss_kib) = integration_tests::process::run_measured(cmd);
    let wall = start.elapsed();
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left in TMPDIR: {left:?}");
    let sbom = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    eprintln!(
        "{}: {:?}, peak RSS {} KiB, {:?}",
        layout.display(),
        out.status,
        max_rss_kib,
        wall
    );
    Run {
        out,
        max_rss_kib,
        wall,
        sbom,
    }
}

/// An image whose only layer holds `files`, as an OCI layout in a temp dir.
fn image(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let mut layer = Layer::new().file(
        "etc/os-release",
        "ID=fedora\nVERSION_ID=40\nNAME=Fedora Linux\n",
    );
    for (p, d) in files {
        layer = layer.file(p, d.to_vec());
    }
    let dir = tempfile::tempdir().unwrap();
    ImageBuilder::new()
        .layer(layer)
        .build()
        .unwrap()
        .write_oci_layout(dir.path(), None)
        .unwrap();
    dir
}

const DB: &str = "var/lib/rpm/rpmdb.sqlite";
const SYSIMAGE_DB: &str = "usr/lib/sysimage/rpm/rpmdb.sqlite";

/// `Packages` a view whose recursive CTE never ends: executed, it ran until
/// the sort spilled gigabytes to /var/tmp. Read as data, it is refused.
#[test]
fn packages_as_an_endless_recursive_view_is_refused() {
    let db = sqlite_db(
        "CREATE VIEW Packages AS WITH RECURSIVE r(hnum, blob) AS \
           (SELECT 1, zeroblob(1000) UNION ALL SELECT hnum + 1, zeroblob(1000) FROM r) \
         SELECT hnum, blob FROM r;",
        &[],
    );
    assert!(db.len() < 16 * 1024, "{} bytes", db.len());
    let img = image(&[(SYSIMAGE_DB, &db)]);
    let run = sbom(img.path());
    run.assert_bounded(&["Packages is a view"]);
    assert!(run.rpms().is_empty());
}

/// The bounded variant (a 4 KB database that materialised ~600 MB).
#[test]
fn packages_as_a_large_recursive_view_is_refused() {
    let db = sqlite_db(
        "CREATE VIEW Packages AS WITH RECURSIVE r(hnum, blob) AS \
           (SELECT 1, zeroblob(600) UNION ALL SELECT hnum + 1, zeroblob(600) FROM r \
            WHERE hnum < 1000000) \
         SELECT hnum, blob FROM r;",
        &[],
    );
    let img = image(&[(DB, &db)]);
    let run = sbom(img.path());
    run.assert_bounded(&["Packages is a view"]);
}

/// A `blob` column computed on every read (a generated column of 200 MB
/// per row) and a wrong column set: the table is refused, nothing computed.
#[test]
fn computed_or_unexpected_columns_are_refused() {
    let db = sqlite_db(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, \
           blob BLOB GENERATED ALWAYS AS (zeroblob(200000000)) VIRTUAL);
         INSERT INTO Packages (hnum) VALUES (1), (2), (3), (4), (5);",
        &[],
    );
    let img = image(&[(DB, &db)]);
    let run = sbom(img.path());
    run.assert_bounded(&["Packages", "generated"]);
    assert!(run.rpms().is_empty());

    let db = sqlite_db(
        "CREATE TABLE Packages (id INTEGER PRIMARY KEY, data BLOB);",
        &[],
    );
    let img = image(&[(DB, &db)]);
    let run = sbom(img.path());
    run.assert_bounded(&["Packages has columns (id, data), not (hnum, blob)"]);
}

/// Schema entries other than `Packages` are never parsed nor run: a trigger
/// whose SQL sqlite cannot parse made sqlite refuse the whole database, so
/// every package disappeared from the scan (a false PASS). Read as data,
/// the packages are all there.
#[test]
fn a_broken_trigger_hides_no_package() {
    let blobs = [
        package("bash", "5.2.26", vec![]),
        package("openssl-libs", "3.2.1", vec![]),
    ];
    let db = sqlite_db(
        &format!(
            "{RPM_SCHEMA}
             CREATE TRIGGER t AFTER INSERT ON Packages BEGIN SELECT 1; END;"
        ),
        &blobs,
    );
    // Replace the trigger's SQL (same length, so the page stays valid) by
    // text sqlite's parser rejects.
    let sql = b"CREATE TRIGGER t AFTER INSERT ON Packages BEGIN SELECT 1; END";
    let at = db.windows(sql.len()).position(|w| w == sql).unwrap();
    let mut db = db;
    db[at..at + sql.len()].copy_from_slice(&[b'!'; 61][..sql.len()]);
    let img = image(&[(DB, &db)]);
    let run = sbom(img.path());
    run.assert_bounded(&[]);
    assert_eq!(
        run.rpms(),
        [
            ("bash".into(), "5.2.26-1.fc40".into()),
            ("openssl-libs".into(), "3.2.1-1.fc40".into())
        ]
    );
}

/// One 8 MiB DIRNAMES entry referenced by 2,000 BASENAMES: joining every
/// path built 16 GB of strings and the process aborted on allocation
/// failure. A language package in the image makes the file lists read.
#[test]
fn a_huge_dirname_shared_by_many_basenames_is_not_amplified() {
    const N: u32 = 2000;
    let dir = format!("/{}/\0", "d".repeat(8 << 20));
    let bases: Vec<u8> = (0..N).flat_map(|_| *b"METADATA\0").collect();
    let indexes: Vec<u8> = (0..N).flat_map(|_| 0u32.to_be_bytes()).collect();
    let bomb = package(
        "bomb",
        "1.0",
        vec![
            (TAG_DIRINDEXES, TYPE_INT32, N, indexes),
            (TAG_BASENAMES, TYPE_STRING_ARRAY, N, bases),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY, 1, dir.into_bytes()),
        ],
    );
    // A real owner of the language package, to prove the lists still work.
    let owner_dir = "/usr/lib/python3.12/site-packages/six-1.16.0.dist-info/\0";
    let owner = package(
        "python3-six",
        "1.16.0",
        vec![
            (
                TAG_DIRINDEXES,
                TYPE_INT32,
                2,
                [0u32, 0].iter().flat_map(|i| i.to_be_bytes()).collect(),
            ),
            (
                TAG_BASENAMES,
                TYPE_STRING_ARRAY,
                2,
                b"METADATA\0RECORD\0".to_vec(),
            ),
            (
                TAG_DIRNAMES,
                TYPE_STRING_ARRAY,
                1,
                owner_dir.as_bytes().to_vec(),
            ),
        ],
    );
    let db = sqlite_db(RPM_SCHEMA, &[bomb, owner]);
    let metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n";
    let img = image(&[
        (DB, &db),
        (
            "usr/lib/python3.12/site-packages/six-1.16.0.dist-info/METADATA",
            metadata,
        ),
    ]);
    let run = sbom(img.path());
    run.assert_bounded(&[]);
    assert_eq!(
        run.rpms(),
        [
            ("bomb".into(), "1.0-1.fc40".into()),
            ("python3-six".into(), "1.16.0-1.fc40".into())
        ]
    );
    let sbom = serde_json::to_string(&run.sbom).unwrap();
    assert!(sbom.contains("rpm:python3-six"), "owner not recorded");
}

/// The real rpm databases of the corpus (sqlite, NDB, Berkeley DB) give
/// exactly their ground truth (`rpm -qa` of the image).
#[test]
fn corpus_rpm_images_are_unchanged() {
    let corpus_dir = corpus::ensure_corpus(&["rpm-bdb", "rpm-ndb", "rpm-sqlite"]).unwrap();
    for name in ["rpm-bdb", "rpm-ndb", "rpm-sqlite"] {
        let run = sbom(&corpus_dir.join(name));
        run.assert_bounded(&[]);
        assert!(!run.stderr().contains("warning"), "{}", run.stderr());
        let expected: Value =
            serde_json::from_slice(&std::fs::read(corpus::expected_path(name)).unwrap()).unwrap();
        let mut want: Vec<(String, String)> = expected
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "rpm" && e["name"] != "gpg-pubkey")
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["version"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(run.rpms(), want, "{name}");
    }
}
