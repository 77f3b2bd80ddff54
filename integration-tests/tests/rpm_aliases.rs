//! The rpm database reached only through an alias (issue 9, defect 7's
//! reverse): rpm opens `var/lib/rpm/rpmdb.sqlite` at run time, so when the
//! image makes that path a symlinked directory (or a parent of it), or a
//! hard link to a file stored under a name nobody asked for, the packages
//! are really there and must be found: the layer reader's alias pass
//! (`wants_under` / `hides_wanted` in src/image/layer.rs) keeps the real
//! file under its alias. Against the real `scangate sbom oci:DIR`, with a
//! bounded peak RSS.

use std::path::Path;

use integration_tests::corpus;
use integration_tests::images::{ImageBuilder, Layer};
use serde_json::Value;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;
const TYPE_STRING: u32 = 6;

/// An rpm header blob of string entries.
fn header(entries: &[(u32, &str)]) -> Vec<u8> {
    let (mut index, mut store) = (Vec::new(), Vec::new());
    for (tag, v) in entries {
        for n in [*tag, TYPE_STRING, store.len() as u32, 1] {
            index.extend_from_slice(&n.to_be_bytes());
        }
        store.extend_from_slice(format!("{v}\0").as_bytes());
    }
    let mut out = (entries.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&(store.len() as u32).to_be_bytes());
    out.extend(index);
    out.extend(store);
    out
}

fn package(name: &str, version: &str) -> Vec<u8> {
    header(&[
        (TAG_NAME, name),
        (TAG_VERSION, version),
        (TAG_RELEASE, "1.fc40"),
        (TAG_ARCH, "x86_64"),
        (TAG_SOURCERPM, &format!("{name}-{version}-1.fc40.src.rpm")),
    ])
}

/// rpm's own `rpmdb.sqlite`, made by sqlite, holding `openssl-libs 3.0.1`.
fn rpmdb() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO Packages (blob) VALUES (?1)",
        [package("openssl-libs", "3.0.1")],
    )
    .unwrap();
    drop(conn);
    std::fs::read(&path).unwrap()
}

fn os_release() -> Layer {
    Layer::new().file(
        "etc/os-release",
        "ID=fedora\nVERSION_ID=40\nNAME=Fedora Linux\n",
    )
}

/// The rpm package names in `scangate sbom oci:DIR`'s SBOM, and its peak
/// RSS in KiB.
fn rpms(layers: Vec<Layer>) -> (Vec<String>, i64, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut b = ImageBuilder::new();
    for l in layers {
        b = b.layer(l);
    }
    b.build()
        .unwrap()
        .write_oci_layout(dir.path(), None)
        .unwrap();
    sbom(dir.path())
}

fn sbom(layout: &Path) -> (Vec<String>, i64, String) {
    let mut cmd = std::process::Command::new(corpus::scangate_bin());
    cmd.arg("sbom")
        .arg(format!("oci:{}", layout.display()))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let (out, rss) = integration_tests::process::run_measured(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let sbom: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = sbom["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["purl"].as_str())
        .filter(|p| p.starts_with("pkg:rpm/"))
        .map(|p| {
            p.split('@')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    (names, rss, stderr)
}

fn assert_found(case: &str, layers: Vec<Layer>) {
    let (names, rss, stderr) = rpms(layers);
    eprintln!(
        "{case}: rpm packages {names:?}, peak RSS {} MiB",
        rss / 1024
    );
    assert_eq!(names, vec!["openssl-libs".to_owned()], "{case}:\n{stderr}");
    assert!(rss < 150 * 1024, "{case}: peak RSS {rss} KiB");
}

#[test]
fn an_rpm_database_behind_a_symlinked_directory_is_found() {
    let db = rpmdb();
    // The symlink in a lower layer, the database written at the real
    // location in an upper one.
    assert_found(
        "var/lib/rpm -> ../../opt/rpmdb, database in a later layer",
        vec![
            os_release()
                .dir("opt/rpmdb")
                .symlink("var/lib/rpm", "../../opt/rpmdb"),
            Layer::new().file("opt/rpmdb/rpmdb.sqlite", db.clone()),
        ],
    );
    // The database first, the symlink after it, one layer.
    assert_found(
        "database first, then var/lib/rpm -> /opt/rpmdb (absolute)",
        vec![
            os_release()
                .file("opt/rpmdb/rpmdb.sqlite", db.clone())
                .symlink("var/lib/rpm", "/opt/rpmdb"),
        ],
    );
    // A parent of the wanted directory is the alias.
    assert_found(
        "var/lib -> ../srv/varlib",
        vec![
            os_release()
                .file("srv/varlib/rpm/rpmdb.sqlite", db.clone())
                .symlink("var/lib", "../srv/varlib"),
        ],
    );
}

#[test]
fn an_rpm_database_stored_as_a_hard_link_to_an_unwanted_name_is_found() {
    let db = rpmdb();
    assert_found(
        "var/lib/rpm/rpmdb.sqlite a hard link to opt/backup/db",
        vec![
            os_release()
                .file("opt/backup/db", db)
                .dir("var/lib/rpm")
                .hardlink("var/lib/rpm/rpmdb.sqlite", "opt/backup/db"),
        ],
    );
}
