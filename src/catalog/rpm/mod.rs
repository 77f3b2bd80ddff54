//! RPM packages (Red Hat, Fedora, CentOS/Rocky/Alma, Amazon Linux, Oracle,
//! SUSE, CBL-Mariner/Azure Linux, Photon): the rpm database, in whichever
//! of rpm's three formats the image has — sqlite `rpmdb.sqlite`
//! ([`sqlite`]), Berkeley DB `Packages` ([`bdb`]) or NDB `Packages.db`
//! ([`ndb`]) — each row an rpm header ([`header`]).
//!
//! The database lives in `usr/lib/sysimage/rpm` (Fedora 36+, SUSE) or
//! `var/lib/rpm` (RHEL, Amazon Linux), often one a symlink to the other;
//! each real directory is read once. Like rpm itself, which opens one
//! backend, we read one database per directory: sqlite, else NDB, else
//! Berkeley DB (the same order as the corpus ground truth's `rpm -qa`).
//!
//! The database is one file rewritten on every install, so every package
//! is attributed to the layer that last wrote it.

pub mod bdb;
pub mod header;
pub mod ndb;
pub mod sqlite;

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink};
use crate::image::fs::FileTree;

/// Where rpm keeps its database, most current first.
pub const DIRS: [&str; 3] = ["usr/lib/sysimage/rpm", "var/lib/rpm", "usr/share/rpm"];

const SQLITE: &str = "rpmdb.sqlite";
const SQLITE_WAL: &str = "rpmdb.sqlite-wal";
const NDB: &str = "Packages.db";
const BDB: &str = "Packages";

/// More packages than any real distribution installs; past this a
/// database is garbage and the rest is not read (each reader stops there).
const MAX_PACKAGES: usize = 100_000;

/// `gpg-pubkey` entries are the imported signing keys, not software.
const GPG_PUBKEY: &str = "gpg-pubkey";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpmError {
    #[error("damaged header: {0}")]
    Header(String),
    #[error("sqlite: {0}")]
    Sqlite(String),
    #[error("Berkeley DB: {0}")]
    Bdb(String),
    #[error("NDB: {0}")]
    Ndb(String),
    #[error("more than {MAX_PACKAGES} records; the rest are not read")]
    TooMany,
    #[error(transparent)]
    Cancelled(#[from] crate::cancel::Cancelled),
    #[error("/{ignored} is ignored: rpm reads only one database per directory, here /{used}")]
    SecondDatabase { used: String, ignored: String },
}

/// Header blobs of one database (borrowed where the format allows) and
/// the problems met reading them.
type Blobs<'a> = (Vec<Cow<'a, [u8]>>, Vec<RpmError>);

pub struct RpmCataloger;

impl Cataloger for RpmCataloger {
    fn name(&self) -> &'static str {
        "rpm"
    }

    fn wants(&self, path: &str) -> bool {
        path.rsplit_once('/').is_some_and(|(dir, file)| {
            DIRS.contains(&dir) && [SQLITE, SQLITE_WAL, NDB, BDB].contains(&file)
        })
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut pkgs_seen = BTreeSet::new();
        for db in databases(files) {
            let mut w = WarningSink::new(&mut out.warnings, format!("rpm /{}", db.path));
            for e in db.errors {
                w.push(e);
            }
            for blob in &db.blobs {
                if let Err(e) = crate::cancel::checkpoint() {
                    w.push(RpmError::from(e));
                    break;
                }
                let h = match header::parse(blob) {
                    Ok(h) => h,
                    Err(e) => {
                        w.push(e);
                        continue;
                    }
                };
                if h.name == GPG_PUBKEY {
                    continue;
                }
                let version = h.evr();
                if !pkgs_seen.insert((h.name.clone(), version.clone(), h.arch.clone())) {
                    continue;
                }
                let (source_name, source_version) = h.source().unzip();
                out.packages.push(Package {
                    ecosystem: Ecosystem::Rpm,
                    name: h.name,
                    version,
                    arch: h.arch,
                    source_name,
                    source_version,
                    location: db.path.to_owned(),
                    layer: db.layer,
                    os_owner: None,
                });
            }
        }
    }
}

/// One database read: its header blobs (at most [`MAX_PACKAGES`]) and the
/// problems met reading it.
struct Database<'a> {
    path: &'a str,
    layer: usize,
    blobs: Vec<Cow<'a, [u8]>>,
    errors: Vec<RpmError>,
}

/// The database of each real rpm directory.
fn databases(files: &FileTree) -> Vec<Database<'_>> {
    let mut dirs_seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in DIRS {
        let Some(real) = files.resolve(dir) else {
            continue;
        };
        if !dirs_seen.insert(real) {
            continue;
        }
        let found: Vec<_> = [SQLITE, NDB, BDB]
            .into_iter()
            .filter_map(|f| files.get(&format!("{dir}/{f}")).map(|(p, e)| (f, p, e)))
            .collect();
        let Some(&(format, path, entry)) = found.first() else {
            continue;
        };
        let mut errors: Vec<RpmError> = found[1..]
            .iter()
            .map(|(_, other, _)| RpmError::SecondDatabase {
                used: path.to_owned(),
                ignored: (*other).to_owned(),
            })
            .collect();
        let mut layer = entry.layer;
        let blobs: Result<Blobs, RpmError> = match format {
            SQLITE => {
                let wal = files
                    .get(&format!("{dir}/{SQLITE_WAL}"))
                    .filter(|(_, e)| !e.data.is_empty());
                if let Some((_, e)) = wal {
                    layer = layer.max(e.layer);
                }
                sqlite::blobs(&entry.data, wal.map(|(_, e)| e.data.as_slice()))
                    .map(|(b, w)| (b.into_iter().map(Cow::Owned).collect(), w))
            }
            NDB => ndb::blobs(&entry.data)
                .map(|(b, w)| (b.into_iter().map(Cow::Borrowed).collect(), w)),
            _ => bdb::blobs(&entry.data).map(|(b, w)| (b.into_iter().map(Cow::Owned).collect(), w)),
        };
        let blobs = match blobs {
            Ok((blobs, e)) => {
                errors.extend(e);
                blobs
            }
            Err(e) => {
                errors.push(e);
                Vec::new()
            }
        };
        debug_assert!(blobs.len() <= MAX_PACKAGES);
        out.push(Database {
            path,
            layer,
            blobs,
            errors,
        });
    }
    out
}

/// Calls `f(package, dir, base)` for every file an installed package owns
/// (`dir` absolute with its trailing slash, as rpm records it; see
/// [`header::for_each_file`] for why the two are not joined). Reads the
/// databases again: [`RpmCataloger::catalog`] keeps no file lists, which
/// only file ownership needs, and only when there are language packages.
/// Problems were reported by the cataloger and are not repeated.
pub fn for_each_file(files: &FileTree, mut f: impl FnMut(&str, &str, &str)) {
    for db in databases(files) {
        for blob in &db.blobs {
            if crate::cancel::is_cancelled() {
                return;
            }
            let Ok(h) = header::parse(blob) else {
                continue;
            };
            if h.name == GPG_PUBKEY {
                continue;
            }
            let _ = header::for_each_file(blob, |dir, base| f(&h.name, dir, base));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARINER: &[u8] = include_bytes!("fixtures/cbl-mariner-2.0-rpmdb.sqlite");
    const SLE15: &[u8] = include_bytes!("fixtures/sle15-bci-Packages.db");
    const RHEL8: &[u8] = include_bytes!("fixtures/rhel8-libuuid-Packages");

    fn catalog(t: &FileTree) -> Catalog {
        let mut c = Catalog::default();
        RpmCataloger.catalog(t, None, &mut c);
        c
    }

    fn find<'a>(c: &'a Catalog, name: &str) -> &'a Package {
        c.packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn wants_database_files_only() {
        for p in [
            "var/lib/rpm/rpmdb.sqlite",
            "var/lib/rpm/rpmdb.sqlite-wal",
            "usr/lib/sysimage/rpm/Packages.db",
            "var/lib/rpm/Packages",
            "usr/share/rpm/Packages",
        ] {
            assert!(RpmCataloger.wants(p), "{p}");
        }
        for p in [
            "var/lib/rpm/rpmdb.sqlite-shm",
            "var/lib/rpm/Name",
            "var/lib/rpm/.rpm.lock",
            "var/lib/rpm",
            "rpmdb.sqlite",
            "tmp/var/lib/rpm/Packages",
        ] {
            assert!(!RpmCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn sqlite_mariner() {
        let t = FileTree::from_files(&[("var/lib/rpm/rpmdb.sqlite", MARINER, 1)]);
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // 129 rows, no gpg-pubkey among them.
        assert_eq!(c.packages.len(), 129);
        let p = find(&c, "openssl-libs");
        assert_eq!(p.version, "1.1.1k-7.cm2");
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.source_name.as_deref(), Some("openssl"));
        assert_eq!(p.source_version.as_deref(), Some("1.1.1k-7.cm2"));
        assert_eq!(p.location, "var/lib/rpm/rpmdb.sqlite");
        assert_eq!(p.layer, 1);
        assert_eq!(find(&c, "ca-certificates-base").version, "1:2.0.0-1.cm2");
        assert!(c.packages.iter().all(|p| p.ecosystem == Ecosystem::Rpm));
    }

    #[test]
    fn ndb_sles_behind_a_symlinked_dir() {
        let mut t = FileTree::from_files(&[("usr/lib/sysimage/rpm/Packages.db", SLE15, 0)]);
        t.symlinks
            .insert("var/lib/rpm".into(), "../../usr/lib/sysimage/rpm".into());
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // 35 packages, read once although two directories lead there.
        assert_eq!(c.packages.len(), 35);
        let p = find(&c, "sles-release");
        assert_eq!(p.version, "15.3-55.4.1");
        assert_eq!(p.location, "usr/lib/sysimage/rpm/Packages.db");
    }

    #[test]
    fn bdb_rhel8() {
        let t = FileTree::from_files(&[("var/lib/rpm/Packages", RHEL8, 0)]);
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            c.packages,
            [Package {
                ecosystem: Ecosystem::Rpm,
                name: "libuuid".into(),
                version: "2.32.1-42.el8_8".into(),
                arch: Some("x86_64".into()),
                source_name: Some("util-linux".into()),
                source_version: Some("2.32.1-42.el8_8".into()),
                location: "var/lib/rpm/Packages".into(),
                layer: 0,
                os_owner: None,
            }]
        );
    }

    #[test]
    fn one_database_per_directory() {
        let t = FileTree::from_files(&[
            ("var/lib/rpm/rpmdb.sqlite", MARINER, 0),
            ("var/lib/rpm/Packages", RHEL8, 0),
        ]);
        let c = catalog(&t);
        assert_eq!(c.packages.len(), 129);
        assert_eq!(
            c.warnings,
            [
                "rpm /var/lib/rpm/rpmdb.sqlite: /var/lib/rpm/Packages is ignored: rpm reads only one database per directory, here /var/lib/rpm/rpmdb.sqlite"
            ]
        );
        // Two real directories: both read, duplicates dropped.
        let t = FileTree::from_files(&[
            ("var/lib/rpm/Packages", RHEL8, 0),
            ("usr/share/rpm/Packages", RHEL8, 1),
        ]);
        let c = catalog(&t);
        assert_eq!(c.packages.len(), 1);
        assert_eq!(c.packages[0].location, "var/lib/rpm/Packages");
    }

    #[test]
    fn gpg_pubkeys_are_skipped_and_bad_headers_warned() {
        use header::tests::{blob, package, s};
        // A header without SOURCERPM, like rpm's imported keys.
        let key = blob(&[
            s(1000, GPG_PUBKEY),
            s(1001, "fd431d51"),
            s(1002, "4ae0493b"),
        ]);
        let good = package("bash", "5.1.8", "1.cm2");
        let dir = std::env::temp_dir().join(format!("scangate-rpm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rpmdb.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
                .unwrap();
            for b in [&key, &good, &b"garbage!".to_vec(), &good] {
                conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
                    .unwrap();
            }
        }
        let db = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let c = catalog(&FileTree::from_files(&[(
            "var/lib/rpm/rpmdb.sqlite",
            &db,
            0,
        )]));
        let names: Vec<_> = c.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bash"]);
        assert_eq!(c.packages[0].version, "2:5.1.8-1.cm2");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("rpm /var/lib/rpm/rpmdb.sqlite: damaged header: "));
    }

    #[test]
    fn unreadable_databases_are_warnings() {
        let t = FileTree::from_files(&[
            (
                "var/lib/rpm/rpmdb.sqlite",
                b"SQLite format 3\0 but not really",
                0,
            ),
            ("usr/lib/sysimage/rpm/Packages.db", b"RpmP", 0),
            ("usr/share/rpm/Packages", &[0u8; 100], 0),
        ]);
        let c = catalog(&t);
        assert!(c.packages.is_empty());
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("NDB")));
        assert!(c.warnings.iter().any(|w| w.contains("Berkeley DB")));
        assert!(c.warnings.iter().any(|w| w.contains("sqlite")));
    }

    fn all_files(t: &FileTree) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for_each_file(t, |n, d, b| out.push((n.to_owned(), format!("{d}{b}"))));
        out
    }

    #[test]
    fn file_lists_of_real_databases() {
        // What `rpm -ql` prints for these databases (merged /usr or not,
        // rpm records the paths the package was built with).
        for (t, owned) in [
            (
                FileTree::from_files(&[("var/lib/rpm/rpmdb.sqlite", MARINER, 1)]),
                [
                    ("bash", "/bin/bash"),
                    ("openssl-libs", "/usr/lib/libssl.so.1.1"),
                ],
            ),
            (
                FileTree::from_files(&[("usr/lib/sysimage/rpm/Packages.db", SLE15, 0)]),
                [("bash", "/bin/bash"), ("bash", "/etc/skel/.bashrc")],
            ),
        ] {
            let files = all_files(&t);
            for (n, p) in owned {
                assert!(
                    files.contains(&(n.to_owned(), p.to_owned())),
                    "{n} {p}: {:?}",
                    files.iter().filter(|f| f.0 == n).collect::<Vec<_>>()
                );
            }
            assert!(files.iter().all(|(_, p)| p.starts_with('/')));
        }
        let t = FileTree::from_files(&[("var/lib/rpm/Packages", RHEL8, 0)]);
        let files = all_files(&t);
        assert!(
            files.contains(&("libuuid".into(), "/usr/lib64/libuuid.so.1".into())),
            "{files:?}"
        );
    }

    #[test]
    fn damaged_file_tags_give_no_files() {
        use header::tests::blob;
        const STRING_ARRAY: u32 = 8;
        const INT32: u32 = 4;
        let s = |tag, v: &str| (tag, 6, 1, format!("{v}\0").into_bytes());
        let ident = [s(1000, "a"), s(1001, "1"), s(1002, "1")];
        let good = |indexes: Vec<u8>, count| {
            let mut e = ident.to_vec();
            e.push((1117, STRING_ARRAY, 2, b"x\0y\0".to_vec()));
            e.push((1118, STRING_ARRAY, 1, b"/d/\0".to_vec()));
            e.push((1116, INT32, count, indexes));
            blob(&e)
        };
        let files = |b: &[u8]| {
            let mut out = Vec::new();
            header::for_each_file(b, |d, b| out.push(format!("{d}{b}"))).map(|()| out)
        };
        let ok = good([0u32, 0].iter().flat_map(|i| i.to_be_bytes()).collect(), 2);
        assert_eq!(files(&ok).unwrap(), ["/d/x", "/d/y"]);
        // An index past DIRNAMES, a count the store cannot hold, a missing tag.
        let past = good([0u32, 7].iter().flat_map(|i| i.to_be_bytes()).collect(), 2);
        assert!(files(&past).is_err());
        let huge = good(0u32.to_be_bytes().to_vec(), u32::MAX);
        assert!(files(&huge).is_err());
        let mut e = ident.to_vec();
        e.push((1117, STRING_ARRAY, u32::MAX, b"x\0".to_vec()));
        assert!(files(&blob(&e)).is_err());
        assert_eq!(files(&blob(&ident)).unwrap(), Vec::<String>::new());
    }
}
