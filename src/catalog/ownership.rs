//! Language packages an OS package installed.
//!
//! Debian's `python3-six` installs `six-1.16.0.egg-info`, `liblog4j2-java`
//! installs jars under `/usr/share/java`, `libruby3.1` installs default
//! gemspecs: the language catalogers report those too, and Inspector may
//! then report one vulnerability twice, once per ecosystem. syft drops or
//! relates such packages, trivy skips OS-owned files. We keep them, since
//! Inspector may know language advisories the distribution does not, and
//! record the owner in [`Package::os_owner`] (`deb:python3-six`) so that
//! reports and policies can tell the two apart.
//!
//! A package is owned when the metadata file it was read from (its
//! [`Package::location`]) is in an installed OS package's file list: dpkg's
//! `info/NAME.list`, apk's `F:`/`R:` lines, rpm's BASENAMES/DIRNAMES. Listed paths are compared after
//! resolving the symlinks of their directories (a merged-/usr image lists
//! `/lib/...` for files at `usr/lib/...`), but not of the file itself: a
//! package that ships only a symlink to another's jar (Debian's `maven`
//! links `/usr/share/maven/lib/*.jar` to library packages) does not own it.

use std::collections::{BTreeSet, HashMap};

use super::{Catalog, Ecosystem, Package, WarningSink, apk, dpkg, rpm};
use crate::image::fs::{FileTree, normalize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipError {
    #[error("line {line} is not UTF-8; skipped")]
    NotUtf8 { line: usize },
}

/// Which OS package installed each of a set of files.
#[derive(Debug, Default)]
pub struct OwnerIndex {
    /// Canonical path (as in [`FileTree::files`]) → `TYPE:NAME`.
    owners: HashMap<String, String>,
}

impl OwnerIndex {
    /// Reads the file lists of the OS packages in `catalog`, keeping only
    /// the paths in `wanted`: an image lists hundreds of thousands of files,
    /// and only the language packages' metadata files matter.
    pub fn build(
        files: &FileTree,
        catalog: &Catalog,
        wanted: &BTreeSet<&str>,
        warnings: &mut Vec<String>,
    ) -> Self {
        let mut index = OwnerIndex::default();
        if wanted.is_empty() {
            return index;
        }
        // Cheap first test per listed line, before any symlink resolution.
        let basenames: BTreeSet<&str> = wanted.iter().map(|p| basename(p)).collect();
        let installed = |eco: Ecosystem| -> BTreeSet<&str> {
            catalog
                .packages
                .iter()
                .filter(|p| p.ecosystem == eco)
                .map(|p| p.name.as_str())
                .collect()
        };

        let debs = installed(Ecosystem::Deb);
        for (name, path, entry) in dpkg::file_lists(files) {
            // A removed package keeping its conffiles still has a list.
            if !debs.contains(name) {
                continue;
            }
            let owner = format!("deb:{name}");
            let mut w = WarningSink::new(warnings, format!("ownership /{path}"));
            for (i, line) in entry.data.split(|&b| b == b'\n').enumerate() {
                let Ok(line) = std::str::from_utf8(line) else {
                    w.push(OwnershipError::NotUtf8 { line: i + 1 });
                    continue;
                };
                index.add(files, wanted, &basenames, line, &owner);
            }
        }

        let apks = installed(Ecosystem::Apk);
        if !apks.is_empty()
            && let Some((_, entry)) = files.get(apk::INSTALLED)
        {
            apk::for_each_file(&entry.data, |name, path| {
                if apks.contains(name) {
                    index.add(files, wanted, &basenames, path, &format!("apk:{name}"));
                }
            });
        }
        let rpms = installed(Ecosystem::Rpm);
        if !rpms.is_empty() {
            index.add_rpm(files, wanted, &basenames, &rpms);
        }
        index
    }

    /// rpm lists a file as a directory and a name, never joined here (see
    /// [`rpm::for_each_file`]): a name that is wanted somewhere is looked
    /// up with its directory resolved, each directory resolved once, and a
    /// path is built only for a file found owned.
    fn add_rpm(
        &mut self,
        files: &FileTree,
        wanted: &BTreeSet<&str>,
        basenames: &BTreeSet<&str>,
        rpms: &BTreeSet<&str>,
    ) {
        let wanted: BTreeSet<(&str, &str)> = wanted
            .iter()
            .map(|p| p.rsplit_once('/').unwrap_or(("", p)))
            .collect();
        let mut dirs = DirCache::default();
        rpm::for_each_file(files, |name, dir, base| {
            if !basenames.contains(base) || !rpms.contains(name) {
                return;
            }
            let Some(dir) = dirs.resolve(files, dir) else {
                return;
            };
            if wanted.contains(&(dir, base)) {
                let path = if dir.is_empty() {
                    base.to_owned()
                } else {
                    format!("{dir}/{base}")
                };
                self.owners
                    .entry(path)
                    .or_insert_with(|| format!("rpm:{name}"));
            }
        });
    }

    fn add(
        &mut self,
        files: &FileTree,
        wanted: &BTreeSet<&str>,
        basenames: &BTreeSet<&str>,
        listed: &str,
        owner: &str,
    ) {
        if !basenames.contains(basename(listed.trim_end_matches('/'))) {
            return;
        }
        let Some(path) = canonical(files, listed) else {
            return;
        };
        // Two packages listing one file (a diversion, a takeover): the
        // first list, in path order, wins, so output stays stable.
        if wanted.contains(path.as_str()) && !self.owners.contains_key(&path) {
            self.owners.insert(path, owner.to_owned());
        }
    }

    /// The owner (`deb:NAME`, `apk:NAME`) of the file at canonical `path`.
    pub fn owner(&self, path: &str) -> Option<&str> {
        self.owners.get(path).map(String::as_str)
    }
}

/// Sets [`Package::os_owner`] on every language package whose metadata file
/// an installed OS package lists.
pub fn mark(files: &FileTree, catalog: &mut Catalog) {
    let wanted: BTreeSet<&str> = catalog
        .packages
        .iter()
        .filter(|p| is_language(p))
        .map(|p| p.location.as_str())
        .collect();
    let mut warnings = Vec::new();
    let index = OwnerIndex::build(files, catalog, &wanted, &mut warnings);
    // The owned paths, copied so that the packages can be changed.
    let owners: Vec<(String, String)> = wanted
        .iter()
        .filter_map(|p| Some(((*p).to_owned(), index.owner(p)?.to_owned())))
        .collect();
    for p in catalog.packages.iter_mut().filter(|p| is_language(p)) {
        if let Ok(i) = owners.binary_search_by(|(path, _)| path.as_str().cmp(&p.location)) {
            p.os_owner = Some(owners[i].1.clone());
        }
    }
    catalog.warnings.extend(warnings);
}

fn is_language(p: &Package) -> bool {
    !matches!(
        p.ecosystem,
        Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm
    )
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Listed directory → its canonical form (`None`: a loop), so that the
/// thousands of files of one directory resolve it once. Bounded: past
/// [`DirCache::MAX_BYTES`] it starts over, costing time, never memory.
#[derive(Default)]
struct DirCache {
    dirs: HashMap<String, Option<String>>,
    bytes: usize,
}

impl DirCache {
    const MAX_BYTES: usize = 16 << 20;

    fn resolve(&mut self, files: &FileTree, listed: &str) -> Option<&str> {
        if !self.dirs.contains_key(listed) {
            let path = normalize(listed);
            let canonical = if path.is_empty() {
                Some(path)
            } else {
                files.resolve(&path)
            };
            let size = listed.len() + canonical.as_ref().map_or(0, String::len);
            if self.bytes + size > Self::MAX_BYTES {
                self.dirs.clear();
                self.bytes = 0;
            }
            self.bytes += size;
            self.dirs.insert(listed.to_owned(), canonical);
        }
        self.dirs.get(listed)?.as_deref()
    }
}

/// `listed` (absolute or root-relative) with the symlinks of its directory
/// resolved, in [`FileTree`] form. `None` for the root itself or a loop.
fn canonical(files: &FileTree, listed: &str) -> Option<String> {
    let path = normalize(listed);
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let dir = if dir.is_empty() {
        String::new()
    } else {
        files.resolve(dir)?
    };
    Some(if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Cataloger, run};
    use crate::image::fs::FileEntry;

    const SIX_LIST: &[u8] = include_bytes!("dpkg/fixtures/owned/python3-six.list");
    const LOG4J_LIST: &[u8] = include_bytes!("dpkg/fixtures/owned/liblog4j2-java.list");
    const SIX_PKG_INFO: &[u8] = include_bytes!("dpkg/fixtures/owned/six-1.16.0.PKG-INFO");
    /// python3-six's and liblog4j2-java's stanzas as dpkg writes them
    /// (`dpkg-deb -f` of the fetched debs, plus Status).
    const STATUS: &[u8] = b"Package: python3-six\nStatus: install ok installed\n\
        Architecture: all\nSource: six\nVersion: 1.16.0-4\n\n\
        Package: liblog4j2-java\nStatus: install ok installed\n\
        Architecture: all\nSource: apache-log4j2\nVersion: 2.19.0-2\n";

    fn put(t: &mut FileTree, path: &str, data: &[u8], layer: usize) {
        t.files.insert(
            path.into(),
            FileEntry {
                data: data.into(),
                layer,
            },
        );
    }

    fn owners(c: &Catalog) -> Vec<(Ecosystem, &str, &str, Option<&str>)> {
        c.packages
            .iter()
            .map(|p| {
                (
                    p.ecosystem,
                    p.name.as_str(),
                    p.version.as_str(),
                    p.os_owner.as_deref(),
                )
            })
            .collect()
    }

    #[test]
    fn deb_installed_python_package_is_marked_and_pip_one_is_not() {
        let mut t = FileTree::default();
        put(&mut t, "var/lib/dpkg/status", STATUS, 1);
        put(&mut t, "var/lib/dpkg/info/python3-six.list", SIX_LIST, 1);
        put(
            &mut t,
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
            SIX_PKG_INFO,
            1,
        );
        // The same distribution installed by pip: no OS package lists it.
        put(
            &mut t,
            "usr/local/lib/python3.11/dist-packages/six-1.16.0.egg-info/PKG-INFO",
            SIX_PKG_INFO,
            2,
        );
        let c = run(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let pypi: Vec<_> = c
            .packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Pypi)
            .map(|p| (p.location.as_str(), p.os_owner.as_deref()))
            .collect();
        assert_eq!(
            pypi,
            [
                (
                    "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                    Some("deb:python3-six")
                ),
                (
                    "usr/local/lib/python3.11/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                    None
                ),
            ]
        );
        // OS packages are never marked.
        assert!(
            c.packages
                .iter()
                .filter(|p| p.ecosystem == Ecosystem::Deb)
                .all(|p| p.os_owner.is_none())
        );
    }

    #[test]
    fn list_of_a_package_not_installed_owns_nothing() {
        let mut t = FileTree::default();
        // python3-six was removed; its list lingers (conffiles, a bad image).
        put(
            &mut t,
            "var/lib/dpkg/status",
            &STATUS[STATUS.windows(2).position(|w| w == b"\n\n").unwrap() + 2..],
            1,
        );
        put(&mut t, "var/lib/dpkg/info/python3-six.list", SIX_LIST, 1);
        put(
            &mut t,
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
            SIX_PKG_INFO,
            1,
        );
        let c = run(&t);
        assert!(owners(&c).contains(&(Ecosystem::Pypi, "six", "1.16.0", None)));
    }

    /// The catalog the Java cataloger makes of liblog4j2-java's jars: the
    /// jar files are real, the versioned names symlinks to them.
    fn log4j_catalog() -> (FileTree, Catalog) {
        let mut t = FileTree::default();
        put(&mut t, "var/lib/dpkg/status", STATUS, 1);
        put(
            &mut t,
            "var/lib/dpkg/info/liblog4j2-java.list",
            LOG4J_LIST,
            1,
        );
        let mut c = Catalog::default();
        dpkg::DpkgCataloger.catalog(&t, None, &mut c);
        for (artifact, file) in [
            ("log4j-api", "usr/share/java/log4j-api.jar"),
            ("log4j-core", "usr/share/java/log4j-core.jar"),
            // Not in the list: a jar the user copied next to Debian's.
            ("log4j-web", "usr/share/java/log4j-web-2.17.1.jar"),
        ] {
            put(&mut t, file, b"PK", 1);
            c.packages.push(Package {
                ecosystem: Ecosystem::Maven,
                name: format!("org.apache.logging.log4j/{artifact}"),
                version: "2.19.0".into(),
                arch: None,
                source_name: None,
                source_version: None,
                location: file.into(),
                layer: 1,
                os_owner: None,
            });
        }
        (t, c)
    }

    #[test]
    fn jar_in_usr_share_java_is_owned_by_its_deb() {
        let (t, mut c) = log4j_catalog();
        mark(&t, &mut c);
        let maven: Vec<_> = c
            .packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Maven)
            .map(|p| (p.location.as_str(), p.os_owner.as_deref()))
            .collect();
        assert_eq!(
            maven,
            [
                ("usr/share/java/log4j-api.jar", Some("deb:liblog4j2-java")),
                ("usr/share/java/log4j-core.jar", Some("deb:liblog4j2-java")),
                ("usr/share/java/log4j-web-2.17.1.jar", None),
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn listed_directories_are_resolved_but_listed_symlinks_are_not() {
        let (mut t, mut c) = log4j_catalog();
        // Move the jars behind a directory symlink, as merged /usr does
        // with /lib: the list still names /usr/share/java.
        let moved: Vec<_> = t
            .files
            .keys()
            .filter(|k| k.starts_with("usr/share/java/"))
            .cloned()
            .collect();
        for k in moved {
            let e = t.files.remove(&k).unwrap();
            t.files.insert(k.replace("usr/share/java/", "opt/java/"), e);
        }
        t.symlinks
            .insert("usr/share/java".into(), "../../opt/java".into());
        for p in &mut c.packages {
            p.location = p.location.replace("usr/share/java/", "opt/java/");
        }
        // Another package ships a link to log4j-core.jar only.
        put(
            &mut t,
            "var/lib/dpkg/info/maven.list",
            b"/.\n/usr/share/maven/lib/log4j-core.jar\n",
            2,
        );
        t.symlinks.insert(
            "usr/share/maven/lib/log4j-core.jar".into(),
            "../../java/log4j-core.jar".into(),
        );
        mark(&t, &mut c);
        let owned: Vec<_> = c
            .packages
            .iter()
            .filter_map(|p| Some((p.location.as_str(), p.os_owner.as_deref()?)))
            .collect();
        assert_eq!(
            owned,
            [
                ("opt/java/log4j-api.jar", "deb:liblog4j2-java"),
                ("opt/java/log4j-core.jar", "deb:liblog4j2-java"),
            ]
        );
    }

    #[test]
    fn apk_installed_python_package_is_marked() {
        // The real Alpine 3.16 database, plus py3-six's record in apk's
        // format (`F:` a directory, `R:` its files).
        let mut db = include_bytes!("apk/fixtures/installed").to_vec();
        db.extend_from_slice(
            b"\nC:Q1wOSqAD8ImVq1ZdYPaFHQ1M7ND0Q=\nP:py3-six\nV:1.16.0-r1\nA:noarch\n\
              o:py3-six\nF:usr\nF:usr/lib\nF:usr/lib/python3.10\n\
              F:usr/lib/python3.10/site-packages\nR:six.py\n\
              F:usr/lib/python3.10/site-packages/six-1.16.0-py3.10.egg-info\n\
              R:PKG-INFO\nR:SOURCES.txt\nR:dependency_links.txt\nR:top_level.txt\n",
        );
        let mut t = FileTree::default();
        put(&mut t, apk::INSTALLED, &db, 1);
        put(
            &mut t,
            "usr/lib/python3.10/site-packages/six-1.16.0-py3.10.egg-info/PKG-INFO",
            SIX_PKG_INFO,
            1,
        );
        put(
            &mut t,
            "app/site-packages/six-1.16.0-py3.10.egg-info/PKG-INFO",
            SIX_PKG_INFO,
            2,
        );
        let c = run(&t);
        let six: Vec<_> = c
            .packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Pypi)
            .map(|p| (p.location.as_str(), p.os_owner.as_deref()))
            .collect();
        assert_eq!(
            six,
            [
                (
                    "app/site-packages/six-1.16.0-py3.10.egg-info/PKG-INFO",
                    None
                ),
                (
                    "usr/lib/python3.10/site-packages/six-1.16.0-py3.10.egg-info/PKG-INFO",
                    Some("apk:py3-six")
                ),
            ]
        );
    }

    #[test]
    fn rpm_file_lists_behind_merged_usr() {
        // The real CBL-Mariner database: bash lists /bin/bash, which a
        // merged-/usr image stores at usr/bin/bash. A Go program's packages
        // found in an rpm-installed executable are owned the same way as a
        // jar or an egg (bash stands in for such a program).
        let mut t = FileTree::default();
        put(
            &mut t,
            "var/lib/rpm/rpmdb.sqlite",
            include_bytes!("rpm/fixtures/cbl-mariner-2.0-rpmdb.sqlite"),
            0,
        );
        put(&mut t, "usr/bin/bash", b"\x7fELF", 0);
        put(&mut t, "usr/local/bin/tool", b"\x7fELF", 1);
        t.symlinks.insert("bin".into(), "usr/bin".into());
        let mut c = Catalog::default();
        rpm::RpmCataloger.catalog(&t, None, &mut c);
        for (loc, layer) in [("usr/bin/bash", 0), ("usr/local/bin/tool", 1)] {
            c.packages.push(Package {
                ecosystem: Ecosystem::Golang,
                name: "stdlib".into(),
                version: "go1.19.12".into(),
                arch: None,
                source_name: None,
                source_version: None,
                location: loc.into(),
                layer,
                os_owner: None,
            });
        }
        mark(&t, &mut c);
        let golang: Vec<_> = c
            .packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Golang)
            .map(|p| (p.location.as_str(), p.os_owner.as_deref()))
            .collect();
        assert_eq!(
            golang,
            [
                ("usr/bin/bash", Some("rpm:bash")),
                ("usr/local/bin/tool", None)
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn apk_file_lists_of_the_real_database() {
        let mut files = Vec::new();
        apk::for_each_file(include_bytes!("apk/fixtures/installed"), |n, p| {
            files.push((n.to_owned(), p.to_owned()))
        });
        // `apk info -L` of the fixture's packages, spot-checked.
        for (n, p) in [
            ("musl", "lib/ld-musl-x86_64.so.1"),
            ("busybox", "bin/busybox"),
            ("alpine-baselayout-data", "etc/passwd"),
        ] {
            assert!(
                files.contains(&(n.to_owned(), p.to_owned())),
                "{n} {p}: {files:?}"
            );
        }
        assert!(files.iter().all(|(_, p)| !p.starts_with('/')));
    }

    #[test]
    fn garbage_lists_never_panic() {
        let mut t = FileTree::default();
        put(&mut t, "var/lib/dpkg/status", STATUS, 1);
        let mut list = b"/\n\n/..\n//\n/usr/lib/python3/dist-packages/six-1.16.0.egg-info/\xff\n/usr/lib/loop/PKG-INFO\n"
            .to_vec();
        list.extend_from_slice(SIX_LIST);
        put(&mut t, "var/lib/dpkg/info/python3-six.list", &list, 1);
        put(
            &mut t,
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
            SIX_PKG_INFO,
            1,
        );
        t.symlinks.insert("usr/lib/loop".into(), "loop".into());
        let c = run(&t);
        assert!(owners(&c).contains(&(Ecosystem::Pypi, "six", "1.16.0", Some("deb:python3-six"))));
        assert_eq!(
            c.warnings,
            ["ownership /var/lib/dpkg/info/python3-six.list: line 5 is not UTF-8; skipped"]
        );
        let mut n = 0;
        apk::for_each_file(
            b"P:x\nR:orphan\nF:\nR:root-file\nR:a/b\nF:d\x00\n\xff\nR:f\n",
            |_, p| {
                n += 1;
                assert!(!p.is_empty());
            },
        );
        assert_eq!(n, 2);
    }
}
