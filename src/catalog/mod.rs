//! Package catalogers, one per ecosystem (the way syft organises them): each
//! knows which image paths it needs, parses them, and keeps its test
//! fixtures beside it.
//!
//! The image layer reader asks [`Selector`] about every tar entry and keeps
//! only the files some cataloger asked for (by path, or by content for
//! executables), shrunk by that cataloger's [`Cataloger::reduce`], so
//! [`run`] sees a small squashed tree.
//! A damaged package database must never stop a scan: parse problems become
//! [`Catalog::warnings`], and whatever could be read is still reported.

pub mod apk;
pub mod dotnet;
pub mod dpkg;
pub mod golang;
pub mod java;
pub mod npm;
pub mod osrelease;
pub mod ownership;
pub mod php;
pub mod python;
pub mod rpm;
pub mod ruby;
pub mod rust;
#[cfg(test)]
pub(crate) mod testkit;

use serde::Serialize;

use crate::image::FileSelector;
use crate::image::fs::FileTree;

/// The distribution, from os-release(5). Package catalogers need it for
/// purl namespaces and `distro=` qualifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    /// `ID`, lower case (`debian`, `ubuntu`, `alpine`); `linux` when unset,
    /// as os-release(5) prescribes.
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsInfo {
    /// True when the distribution is `id` or declares itself like it.
    pub fn is_like(&self, id: &str) -> bool {
        self.id == id || self.id_like.iter().any(|l| l == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Deb,
    Apk,
    Rpm,
    Pypi,
    Npm,
    Golang,
    Cargo,
    Maven,
    Gem,
    Composer,
    Nuget,
}

impl Ecosystem {
    /// The purl type.
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Npm => "npm",
            Ecosystem::Golang => "golang",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Maven => "maven",
            Ecosystem::Gem => "gem",
            Ecosystem::Composer => "composer",
            Ecosystem::Nuget => "nuget",
        }
    }

    /// Types whose purl has a namespace. [`Package::name`] then holds
    /// `namespace/name` (`org.yaml/snakeyaml`, `github.com/google/uuid`,
    /// `guzzlehttp/psr7`, npm's `@hapi/hoek`), split at the last `/`.
    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Ecosystem::Npm | Ecosystem::Golang | Ecosystem::Maven | Ecosystem::Composer
        )
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// As the package manager prints it, epoch included
    /// (`1:2.38.1-5+deb12u3`), so that it compares with `dpkg -l` output.
    pub version: String,
    pub arch: Option<String>,
    /// For deb and apk packages always set: when the database names no
    /// source (apk: origin), the source is the binary package itself at the
    /// binary's version. Language packages have none.
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    /// The file the package was found in, e.g. `var/lib/dpkg/status`.
    pub location: String,
    /// Index of the image layer that brought this version of the package.
    pub layer: usize,
    /// The OS package (`deb:python3-six`, `apk:py3-six`) whose file list
    /// holds this language package's metadata file: the same code is then
    /// reported twice, once per ecosystem. Set by `ownership::mark` after
    /// every cataloger ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_owner: Option<String>,
}

impl Package {
    /// A language package: no architecture, no source package, not (yet)
    /// known to belong to an OS package.
    pub fn language(
        ecosystem: Ecosystem,
        name: String,
        version: String,
        location: &str,
        layer: usize,
    ) -> Package {
        Package {
            ecosystem,
            name,
            version,
            arch: None,
            source_name: None,
            source_version: None,
            location: location.to_owned(),
            layer,
            os_owner: None,
        }
    }
}

/// What the catalogers found in one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    /// Human-readable problems (damaged databases, unreadable os-release);
    /// shown in reports, never fatal.
    pub warnings: Vec<String>,
    /// How some packages' identities were found (a jar without
    /// pom.properties), stated in their SBOM components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<PackageNote>,
}

/// How sure a cataloger is of a package's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// The evidence behind one package's identity (ecosystem, name, version),
/// for packages whose identity is not simply read from a package database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageNote {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// What named it (`pom.properties`, `pom.xml`, `manifest`, ...).
    pub evidence: &'static str,
    pub confidence: Confidence,
}

pub trait Cataloger: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the image reader must keep the file at `path` (normalised, no
    /// leading slash). Called for every tar entry: keep it cheap.
    fn wants(&self, path: &str) -> bool;
    /// Whether a regular file that no path pattern asked for is wanted for
    /// its content: Go and Rust executables carry their build metadata
    /// wherever they are installed. `head` is the file's first bytes (at
    /// most [`SNIFF_LEN`], fewer for a short file), `mode` its tar mode.
    fn sniff(&self, _path: &str, _mode: u32, _head: &[u8]) -> bool {
        false
    }
    /// Shrinks a kept file to what [`Cataloger::catalog`] needs, right after
    /// it is read, so that a large binary or jar is not held in memory until
    /// every layer has been read. The result replaces the file's data in the
    /// [`FileTree`]; the default keeps it whole. Called only for a file this
    /// cataloger alone wants by path, or a sniffed one it
    /// [claimed](Cataloger::claims); for a sniffed file an empty result
    /// drops it.
    fn reduce(&self, _path: &str, data: Vec<u8>) -> Vec<u8> {
        data
    }
    /// Whether a file this cataloger sniffed is really its own, now that it
    /// is read whole. The head does not tell a Go from a Rust executable, so
    /// both sniff every ELF program; the file goes to the first sniffer that
    /// claims it, and only that one reduces it (a large binary is never
    /// copied). Claim a file you cannot parse, to report it as damaged.
    fn claims(&self, _path: &str, _data: &[u8]) -> bool {
        true
    }
    fn catalog(&self, files: &FileTree, os: Option<&OsInfo>, out: &mut Catalog);
}

/// How many leading bytes [`Cataloger::sniff`] gets.
pub const SNIFF_LEN: usize = 64;

/// os-release comes first: the package catalogers that follow get its result.
static CATALOGERS: &[&dyn Cataloger] = &[
    &osrelease::OsReleaseCataloger,
    &dpkg::DpkgCataloger,
    &apk::ApkCataloger,
    &rpm::RpmCataloger,
    &python::PythonCataloger,
    &npm::NpmCataloger,
    &golang::GoCataloger,
    &rust::RustCataloger,
    &java::JavaCataloger,
    &ruby::RubyCataloger,
    &php::PhpCataloger,
    &dotnet::DotnetCataloger,
];

/// Every cataloger, in the order [`run`] calls them (os-release first).
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![
        Box::new(osrelease::OsReleaseCataloger),
        Box::new(dpkg::DpkgCataloger),
        Box::new(apk::ApkCataloger),
        Box::new(rpm::RpmCataloger),
        Box::new(python::PythonCataloger),
        Box::new(npm::NpmCataloger),
        Box::new(golang::GoCataloger),
        Box::new(rust::RustCataloger),
        Box::new(java::JavaCataloger),
        Box::new(ruby::RubyCataloger),
        Box::new(php::PhpCataloger),
        Box::new(dotnet::DotnetCataloger),
    ]
}

/// Union of all catalogers' path patterns.
pub fn wants(path: &str) -> bool {
    CATALOGERS.iter().any(|c| c.wants(path))
}

/// The fixed paths of the os-release, dpkg, apk and rpm databases (files
/// or directories). A symlink at or above one of them makes the files at
/// its real location wanted under the alias (the image reader's alias
/// pass); a symlink below them (`var/lib/dpkg/alternatives`) does not.
const FIXED_PATHS: &[&str] = &[
    "etc/os-release",
    "usr/lib/os-release",
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d",
    "var/lib/dpkg/info",
    "lib/apk/db/installed",
    "usr/lib/sysimage/rpm",
    "var/lib/rpm",
    "usr/share/rpm",
];

/// Whether a fixed-path database may sit at or below `dir`.
pub fn wants_under(dir: &str) -> bool {
    dir.is_empty()
        || FIXED_PATHS
            .iter()
            .any(|p| *p == dir || p.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
}

/// Whether a symlink `alias` → `real` over fixed database paths may hide a
/// database the first read did not keep: some fixed path below `alias`,
/// moved to `real`, is neither a fixed directory itself nor wanted by path.
/// `lib -> usr/lib`, `var/lib/rpm -> ../../usr/lib/sysimage/rpm` and
/// `etc/os-release -> ../usr/lib/os-release` hide nothing, so ordinary
/// images are not read twice.
pub fn hides_wanted(alias: &str, real: &str) -> bool {
    FIXED_PATHS.iter().any(|p| {
        let rest = if alias.is_empty() {
            Some(*p)
        } else if *p == alias {
            Some("")
        } else {
            p.strip_prefix(alias).and_then(|r| r.strip_prefix('/'))
        };
        let Some(rest) = rest else {
            return false;
        };
        let moved = match (real.is_empty(), rest.is_empty()) {
            (_, true) => real.to_owned(),
            (true, false) => rest.to_owned(),
            (false, false) => format!("{real}/{rest}"),
        };
        !FIXED_PATHS.contains(&moved.as_str()) && !wants(&moved)
    })
}

/// What the image reader keeps for the catalogers: files any of them wants
/// by path or by content, each reduced by the cataloger that asked for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selector;

impl FileSelector for Selector {
    fn wants(&self, path: &str) -> bool {
        wants(path)
    }

    fn sniff_len(&self) -> usize {
        SNIFF_LEN
    }

    fn wants_under(&self, dir: &str) -> bool {
        wants_under(dir)
    }

    fn hides_wanted(&self, alias: &str, real: &str) -> bool {
        hides_wanted(alias, real)
    }

    fn sniff(&self, path: &str, mode: u32, head: &[u8]) -> bool {
        CATALOGERS.iter().any(|c| c.sniff(path, mode, head))
    }

    fn reduce(&self, path: &str, mode: u32, sniffed: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        reduce(CATALOGERS, path, mode, sniffed, data)
    }
}

fn reduce(
    catalogers: &[&dyn Cataloger],
    path: &str,
    mode: u32,
    sniffed: bool,
    data: Vec<u8>,
) -> Option<Vec<u8>> {
    if !sniffed {
        // A file two catalogers want by path stays whole: one's reduction
        // would be garbage to the other.
        let mut wanting = catalogers.iter().filter(|c| c.wants(path));
        return match (wanting.next(), wanting.next()) {
            (Some(c), None) => Some(c.reduce(path, data)),
            _ => Some(data),
        };
    }
    let head = &data[..data.len().min(SNIFF_LEN)];
    let owner = catalogers
        .iter()
        .find(|c| c.sniff(path, mode, head) && c.claims(path, &data))?;
    Some(owner.reduce(path, data)).filter(|r| !r.is_empty())
}

/// Whether `head` starts an ELF executable or shared object and `mode`
/// lets someone execute it: what the Go and Rust catalogers sniff for.
/// Like trivy, files without any exec bit are passed over: that skips
/// most shared libraries (0644 in Debian and Alpine), which would
/// otherwise each be read whole, and a program nobody can execute is
/// rarely one a scan must report.
pub(crate) fn is_elf_program(mode: u32, head: &[u8]) -> bool {
    const ET_EXEC: u16 = 2;
    const ET_DYN: u16 = 3;
    if mode & 0o111 == 0 || head.len() < 18 || !head.starts_with(b"\x7fELF") {
        return false;
    }
    let e_type = match head[5] {
        1 => u16::from_le_bytes([head[16], head[17]]),
        2 => u16::from_be_bytes([head[16], head[17]]),
        _ => return false,
    };
    matches!(head[4], 1 | 2) && matches!(e_type, ET_EXEC | ET_DYN)
}

/// Runs every cataloger over the squashed tree. Packages come out sorted
/// (ecosystem, name, version, arch) so that output does not depend on
/// hash or file order.
pub fn run(files: &FileTree) -> Catalog {
    // Outside a cancellation scope nothing is ever cancelled.
    try_run(files).unwrap_or_default()
}

/// [`run`] under the current cancellation scope: the job's deadline or the
/// worker's shutdown stops it between catalogers (each checks inside its
/// own loops too), instead of after the whole image.
pub fn try_run(files: &FileTree) -> Result<Catalog, crate::cancel::Cancelled> {
    let mut out = Catalog::default();
    for c in CATALOGERS {
        crate::cancel::checkpoint()?;
        let os = out.os.clone();
        c.catalog(files, os.as_ref(), &mut out);
    }
    crate::cancel::checkpoint()?;
    ownership::mark(files, &mut out);
    out.packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.arch, &a.location).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.arch,
            &b.location,
        ))
    });
    Ok(out)
}

/// A garbage database can yield thousands of identical complaints; a report
/// needs the first few and the count.
pub(crate) struct WarningSink<'a> {
    out: &'a mut Vec<String>,
    prefix: String,
    emitted: usize,
    dropped: usize,
}

impl<'a> WarningSink<'a> {
    const MAX: usize = 20;

    pub(crate) fn new(out: &'a mut Vec<String>, prefix: impl Into<String>) -> Self {
        WarningSink {
            out,
            prefix: prefix.into(),
            emitted: 0,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, msg: impl std::fmt::Display) {
        if self.emitted < Self::MAX {
            self.out.push(format!("{}: {msg}", self.prefix));
            self.emitted += 1;
        } else {
            self.dropped += 1;
        }
    }
}

impl Drop for WarningSink<'_> {
    fn drop(&mut self) {
        if self.dropped > 0 {
            self.out.push(format!(
                "{}: {} more problems not shown",
                self.prefix, self.dropped
            ));
        }
    }
}

/// A parser's problem text quotes at most 80 characters of the offending
/// input: enough to find it, bounded for garbage databases.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        s.chars().take(MAX).chain("…".chars()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fs::FileEntry;

    fn file(t: &mut FileTree, path: &str, data: &[u8], layer: usize) {
        t.files.insert(
            path.into(),
            FileEntry {
                data: data.into(),
                layer,
            },
        );
    }

    /// Symlinks over fixed database paths trigger the image reader's alias
    /// pass only when they can hide a database nobody kept.
    #[test]
    fn only_symlinks_hiding_a_database_need_a_second_read() {
        for (alias, real) in [
            ("lib", "usr/lib"),
            ("var/lib/rpm", "usr/lib/sysimage/rpm"),
            ("etc/os-release", "usr/lib/os-release"),
        ] {
            assert!(wants_under(alias), "{alias}");
            assert!(!hides_wanted(alias, real), "{alias} -> {real}");
        }
        assert!(!wants_under("bin") && !wants_under("var/lib/dpkg/alternatives"));
        for (alias, real) in [
            ("var/lib/dpkg", "opt/pkgdb"),
            ("var", "srv"),
            ("lib/apk/db", "srv/apkdb"),
            ("etc", ""),
            ("var/lib/rpm", "opt/rpm"),
        ] {
            assert!(hides_wanted(alias, real), "{alias} -> {real}");
        }
    }

    #[test]
    fn wants_is_the_union_of_catalogers() {
        for p in [
            "etc/os-release",
            "usr/lib/os-release",
            "var/lib/dpkg/status",
            "var/lib/dpkg/status.d/libc6",
            "var/lib/dpkg/info/bash.list",
            "lib/apk/db/installed",
            "usr/local/lib/python3.9/site-packages/Flask-1.1.2.dist-info/METADATA",
            "usr/lib/python3/dist-packages/six-1.15.0.egg-info/PKG-INFO",
            "usr/lib/python3/dist-packages/mercurial-6.3.2-py3.11.egg-info",
            "app/node_modules/express/package.json",
            "app/node_modules/@hapi/hoek/package.json",
            "var/lib/rpm/Packages",
            "var/lib/rpm/rpmdb.sqlite",
            "var/lib/rpm/rpmdb.sqlite-wal",
            "usr/lib/sysimage/rpm/Packages.db",
            "usr/lib/sysimage/rpm/rpmdb.sqlite",
            "etc/redhat-release",
            "etc/debian_version",
            "bin/busybox",
            "usr/share/java/guava.jar",
            "opt/app/webapp.war",
            "usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec",
            "usr/share/rubygems-integration/all/specifications/rake-13.0.6.gemspec",
            "var/www/html/vendor/composer/installed.json",
            "app/dotnet/TestLibrary.deps.json",
            "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/.version",
            "app/vendor/foo-1.0.dist-info/METADATA",
            "usr/lib/python3.11/site-packages/Foo-1.0-py3.11.egg",
            "app/eggs/Foo-1.0-py3.11.egg/EGG-INFO/PKG-INFO",
            "usr/local/lib/node_modules/npm/node_modules/ms/package.json",
        ] {
            assert!(wants(p), "{p}");
        }
        for p in [
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/available",
            "etc/passwd",
            "usr/bin/bash",
            "var/lib/dpkg/info/bash.md5sums",
            "app/package.json",
            "usr/local/lib/python3.9/site-packages/flask/__init__.py",
            "lib/apk/db/triggers",
            "var/lib/rpm/rpmdb.sqlite-shm",
            "var/lib/rpm/.rpm.lock",
            "usr/lib/ruby/gems/3.1.0/gems/rake-13.0.6/rake.gemspec",
            "var/www/html/composer.lock",
            "app/dotnet/TestLibrary.runtimeconfig.json",
            "app/vendor/METADATA",
            "src/app/app.egg-info/PKG-INFO",
            "usr/share/dotnet/sdk/8.0.101/.version",
        ] {
            assert!(!wants(p), "{p}");
        }
        assert_eq!(catalogers().len(), CATALOGERS.len());
    }

    #[test]
    fn run_passes_os_release_to_package_catalogers() {
        let mut t = FileTree::default();
        file(
            &mut t,
            "usr/lib/os-release",
            include_bytes!("osrelease/fixtures/debian-12"),
            0,
        );
        t.symlinks
            .insert("etc/os-release".into(), "../usr/lib/os-release".into());
        file(
            &mut t,
            "var/lib/dpkg/status",
            b"Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n\n\
              Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n",
            1,
        );
        let c = run(&t);
        assert_eq!(c.os.as_ref().unwrap().id, "debian");
        let names: Vec<_> = c.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bash", "zlib1g"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    use super::testkit::gunzip;

    #[test]
    fn selector_gives_each_sniffed_binary_to_the_cataloger_that_reads_it() {
        let go = gunzip(include_bytes!("golang/fixtures/hello-go.gz"));
        let rust = gunzip(include_bytes!("rust/fixtures/hello-rust.gz"));
        let s = Selector;
        assert_eq!(s.sniff_len(), SNIFF_LEN);
        let mut t = FileTree::default();
        for (path, bin) in [("app/hello-go", go), ("usr/bin/hello-rust", rust)] {
            assert!(!s.wants(path));
            assert!(s.sniff(path, 0o100755, &bin[..SNIFF_LEN]));
            let reduced = s.reduce(path, 0o100755, true, bin).unwrap();
            assert!(reduced.len() < 1024, "{path}: {}", reduced.len());
            file(&mut t, path, &reduced, 3);
        }
        // An ELF program that is neither: dropped.
        let elf = std::fs::read("/proc/self/exe").unwrap();
        assert!(s.reduce("bin/test", 0o755, true, elf).is_none());

        let c = run(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let found: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.ecosystem, p.name.as_str(), p.location.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Ecosystem::Golang, "example.com/lib", "app/hello-go"),
                (Ecosystem::Golang, "example.com/local", "app/hello-go"),
                (Ecosystem::Golang, "example.com/new", "app/hello-go"),
                (Ecosystem::Golang, "stdlib", "app/hello-go"),
                (Ecosystem::Cargo, "libc", "usr/bin/hello-rust"),
                (Ecosystem::Cargo, "smallvec", "usr/bin/hello-rust"),
                (Ecosystem::Cargo, "time", "usr/bin/hello-rust"),
            ]
        );
    }

    /// Wants `*.x` by path and reduces to the first byte.
    struct FirstByte;

    impl Cataloger for FirstByte {
        fn name(&self) -> &'static str {
            "first-byte"
        }
        fn wants(&self, path: &str) -> bool {
            path.ends_with(".x")
        }
        fn reduce(&self, _path: &str, data: Vec<u8>) -> Vec<u8> {
            data[..1].to_vec()
        }
        fn catalog(&self, _: &FileTree, _: Option<&OsInfo>, _: &mut Catalog) {}
    }

    struct AlsoWantsX;

    impl Cataloger for AlsoWantsX {
        fn name(&self) -> &'static str {
            "also"
        }
        fn wants(&self, path: &str) -> bool {
            path == "b.x"
        }
        fn catalog(&self, _: &FileTree, _: Option<&OsInfo>, _: &mut Catalog) {}
    }

    #[test]
    fn path_wanted_files_are_reduced_by_their_only_cataloger() {
        let cs: &[&dyn Cataloger] = &[&FirstByte, &AlsoWantsX];
        assert_eq!(
            reduce(cs, "a.x", 0o644, false, b"abc".to_vec()),
            Some(b"a".to_vec())
        );
        // Wanted by two: one's reduction could be garbage to the other.
        assert_eq!(
            reduce(cs, "b.x", 0o644, false, b"abc".to_vec()),
            Some(b"abc".to_vec())
        );
        // Sniffed by nobody (cannot happen from the reader): dropped.
        assert_eq!(reduce(cs, "c", 0o755, true, b"abc".to_vec()), None);
    }

    #[test]
    fn warning_sink_caps_and_counts() {
        let mut w = Vec::new();
        {
            let mut s = WarningSink::new(&mut w, "x");
            for i in 0..100 {
                s.push(i);
            }
        }
        assert_eq!(w.len(), WarningSink::MAX + 1);
        assert_eq!(w.last().unwrap(), "x: 80 more problems not shown");
    }
}
