//! NuGet packages of .NET applications, and the .NET runtime itself.
//!
//! Applications: the `*.deps.json` the SDK writes beside every published
//! application or library. Its `libraries` map is keyed `Name/Version`;
//! entries of type `package` came from NuGet, `project` entries are the
//! application's own projects (not published packages, no advisories).
//!
//! The runtime, the most patched part of a .NET image, is reported the way
//! advisories name it (GitHub's advisory database, which Inspector's nuget
//! matching and trivy use: `Microsoft.NETCore.App.Runtime.linux-x64`,
//! `Microsoft.AspNetCore.App.Runtime.linux-musl-arm64`, …), as a nuget
//! package `<Framework>.Runtime.<rid>` at the runtime's version:
//! - a self-contained application carries it in its own `deps.json` as
//!   `runtimepack.<Framework>.Runtime.<rid>/<version>` libraries of type
//!   `runtimepack`: reported without the `runtimepack.` prefix (trivy's
//!   rule);
//! - a framework-dependent image carries the shared framework,
//!   `…/dotnet/shared/<Framework>/<version>/` (`usr/share/dotnet` in
//!   Microsoft's images, `usr/lib/dotnet` in Ubuntu's and Fedora's
//!   packages), with `<Framework>.deps.json` (its `runtimeTarget` names the
//!   RID) and `.version` (commit, then version). One package per framework
//!   directory; the directory's `deps.json` is read for that alone. With no
//!   RID to tell (no `deps.json`), the framework's own name is reported
//!   (`Microsoft.NETCore.App`, which advisories of .NET Core 1–2 name).
//!
//! A distribution's own RID (`ubuntu.22.04-x64`, `alpine.3.18-x64`, from a
//! source-built runtime) becomes the portable one advisories list
//! (`linux-x64`, `linux-musl-x64`). The `Microsoft.NETCore.App.Runtime.*`
//! packages are also what Amazon's purl list shows for nuget
//! (`pkg:nuget/Name@version`, no namespace); Inspector's own SBOM fixtures
//! hold no .NET image, so the form is the advisory database's.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt};
use crate::image::fs::{FileEntry, FileTree};

/// Longest name or version kept; longer is damage, not data.
const MAX_FIELD: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotnetError {
    #[error("not a deps.json: {0}")]
    NotDepsJson(String),
    #[error("library key {0:?} is not Name/Version")]
    BadKey(String),
}

pub struct DotnetCataloger;

fn is_deps_json(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.len() > ".deps.json".len() && file.ends_with(".deps.json")
}

/// `(dir, framework, version, file)` when `path` is a file directly in a
/// shared framework directory `…/shared/<Framework>/<version>/` (no
/// allocation: this runs for every tar entry).
fn in_shared_framework(path: &str) -> Option<(&str, &str, &str, &str)> {
    let (dir, file) = path.rsplit_once('/')?;
    let (rest, version) = dir.rsplit_once('/')?;
    let (shared, framework) = rest.rsplit_once('/')?;
    let shared_ok = shared == "shared" || shared.ends_with("/shared");
    let framework_ok = framework.starts_with("Microsoft.") && framework.ends_with(".App");
    let version_ok = version.starts_with(|c: char| c.is_ascii_digit()) && version.len() <= 64;
    (shared_ok && framework_ok && version_ok).then_some((dir, framework, version, file))
}

/// A shared framework's `.version` or own `deps.json`.
fn is_framework_file(path: &str) -> bool {
    in_shared_framework(path).is_some_and(|(_, framework, _, file)| {
        file == ".version"
            || file
                .strip_suffix(".deps.json")
                .is_some_and(|f| f == framework)
    })
}

impl Cataloger for DotnetCataloger {
    fn name(&self) -> &'static str {
        "dotnet"
    }

    fn wants(&self, path: &str) -> bool {
        is_deps_json(path) || is_framework_file(path)
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warn = WarningSink::new(&mut out.warnings, "nuget");
        // Shared framework directories, each reported once.
        let mut frameworks = BTreeMap::new();
        for (path, entry) in &files.files {
            if crate::cancel::is_cancelled() {
                return;
            }
            if is_framework_file(path) {
                let (dir, framework, version, file) =
                    in_shared_framework(path).expect("is_framework_file");
                let f: &mut Framework = frameworks.entry(dir).or_insert_with(|| Framework {
                    name: framework,
                    dir_version: version,
                    ..Framework::default()
                });
                if file == ".version" {
                    f.version_file = Some((path, entry));
                } else {
                    f.deps = Some((path, entry));
                }
                continue;
            }
            if !is_deps_json(path) {
                continue;
            }
            let (pkgs, problems) = parse(&entry.data);
            for e in problems {
                warn.push(format_args!("/{path}: {e}"));
            }
            out.packages.extend(pkgs.into_iter().map(|(name, version)| {
                Package::language(Ecosystem::Nuget, name, version, path, entry.layer)
            }));
        }
        for f in frameworks.values() {
            out.packages.push(f.package());
        }
    }
}

/// What was kept of one shared framework directory.
#[derive(Default)]
struct Framework<'a> {
    /// `Microsoft.NETCore.App`.
    name: &'a str,
    /// The directory's name, the version the host resolves.
    dir_version: &'a str,
    version_file: Option<(&'a str, &'a FileEntry)>,
    deps: Option<(&'a str, &'a FileEntry)>,
}

impl Framework<'_> {
    fn package(&self) -> Package {
        // `.version`: the source commit, then the version (`8.0.1`).
        let version = self
            .version_file
            .and_then(|(_, e)| {
                let text = std::str::from_utf8(e.data.get(..e.data.len().min(4096))?).ok()?;
                text.lines().nth(1).map(str::trim).filter(|v| valid(v))
            })
            .unwrap_or(self.dir_version);
        let rid = self.deps.and_then(|(_, e)| runtime_rid(&e.data));
        let name = match rid {
            Some(rid) => format!("{}.Runtime.{}", self.name, portable_rid(&rid)),
            None => self.name.to_owned(),
        };
        let (location, entry) = self
            .deps
            .or(self.version_file)
            .expect("a framework has one of its files");
        Package::language(
            Ecosystem::Nuget,
            name,
            version.to_owned(),
            location,
            entry.layer,
        )
    }
}

#[derive(Deserialize)]
struct RuntimeTarget {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FrameworkDeps {
    runtime_target: Option<RuntimeTarget>,
}

/// The RID of a framework's `deps.json`: `runtimeTarget.name` is
/// `.NETCoreApp,Version=v8.0/linux-x64`.
fn runtime_rid(data: &[u8]) -> Option<String> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let deps: FrameworkDeps = serde_json::from_slice(data).ok()?;
    let target = deps.runtime_target?.name;
    let rid = target.rsplit_once('/')?.1;
    valid(rid).then(|| rid.to_owned())
}

/// The portable RID advisories list for a distribution's own one:
/// `ubuntu.22.04-x64` → `linux-x64`, `alpine.3.18-arm64` →
/// `linux-musl-arm64`; portable ones (`linux-x64`, `linux-musl-x64`,
/// `win-x64`, `osx-arm64`) stay.
fn portable_rid(rid: &str) -> String {
    let Some((os, arch)) = rid.rsplit_once('-') else {
        return rid.to_owned();
    };
    let base = os.split(['.', '-']).next().unwrap_or(os);
    match base {
        "linux" | "win" | "osx" | "freebsd" | "android" | "ios" => rid.to_owned(),
        "alpine" => format!("linux-musl-{arch}"),
        _ => format!("linux-{arch}"),
    }
}

/// `runtimepack.Microsoft.NETCore.App.Runtime.ubuntu.22.04-x64` →
/// `Microsoft.NETCore.App.Runtime.linux-x64`.
fn runtime_pack_name(key_name: &str) -> String {
    let name = key_name.strip_prefix("runtimepack.").unwrap_or(key_name);
    match name.split_once(".Runtime.") {
        Some((framework, rid)) => format!("{framework}.Runtime.{}", portable_rid(rid)),
        None => name.to_owned(),
    }
}

#[derive(Deserialize)]
struct DepsJson {
    #[serde(default)]
    /// Values stay loose: one odd entry must not hide the others.
    libraries: BTreeMap<String, serde_json::Value>,
}

/// `(name, version)` of every `package` library, in key order, and the
/// keys that could not be split.
pub fn parse(data: &[u8]) -> (Vec<(String, String)>, Vec<DotnetError>) {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let deps: DepsJson = match serde_json::from_slice(data) {
        Ok(d) => d,
        Err(e) => {
            return (
                Vec::new(),
                vec![DotnetError::NotDepsJson(excerpt(&e.to_string()))],
            );
        }
    };
    let mut pkgs = Vec::new();
    let mut problems = Vec::new();
    for (key, lib) in deps.libraries {
        let runtime_pack = match lib.get("type").and_then(|t| t.as_str()) {
            Some("package") => false,
            Some("runtimepack") => true,
            _ => continue,
        };
        match key.split_once('/') {
            Some((n, v)) if valid(n) && valid(v) && runtime_pack => {
                pkgs.push((runtime_pack_name(n), v.to_owned()))
            }
            Some((n, v)) if valid(n) && valid(v) => pkgs.push((n.to_owned(), v.to_owned())),
            _ => problems.push(DotnetError::BadKey(excerpt(&key))),
        }
    }
    (pkgs, problems)
}

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_FIELD && s.chars().all(|c| c.is_ascii_graphic() && c != '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(files: &[(&str, &[u8], usize)]) -> Catalog {
        crate::catalog::testkit::run(&DotnetCataloger, files)
    }

    #[test]
    fn wants_deps_json_anywhere() {
        assert!(DotnetCataloger.wants("app/dotnet/TestLibrary.deps.json"));
        assert!(DotnetCataloger.wants("TestLibrary.deps.json"));
        assert!(!DotnetCataloger.wants("app/.deps.json"));
        assert!(!DotnetCataloger.wants("app/TestLibrary.runtimeconfig.json"));
        assert!(!DotnetCataloger.wants("app/TestLibrary.deps.json.bak"));
    }

    #[test]
    fn packages_not_projects() {
        let c = catalog(&[(
            "app/dotnet/TestLibrary.deps.json",
            include_bytes!("fixtures/TestLibrary.deps.json"),
            6,
        )]);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        // TestLibrary/1.0.0 and TestCommon/1.0.0 are `project` entries. The
        // two System.* packages deploy no file of their own (the runtime
        // provides them) but are resolved packages all the same. Key order:
        // `.` sorts before `/`.
        assert_eq!(
            got,
            [
                ("AWSSDK.Core", "3.7.10.6"),
                (
                    "Microsoft.Extensions.DependencyInjection.Abstractions",
                    "6.0.0"
                ),
                ("Microsoft.Extensions.DependencyInjection", "6.0.0"),
                ("Microsoft.Extensions.Logging.Abstractions", "6.0.0"),
                ("Microsoft.Extensions.Logging", "6.0.0"),
                ("Microsoft.Extensions.Options", "6.0.0"),
                ("Microsoft.Extensions.Primitives", "6.0.0"),
                ("Newtonsoft.Json", "13.0.1"),
                ("Serilog.Sinks.Console", "4.0.1"),
                ("Serilog", "2.10.0"),
                ("System.Diagnostics.DiagnosticSource", "6.0.0"),
                ("System.Runtime.CompilerServices.Unsafe", "6.0.0"),
            ]
        );
        assert!(c.packages.iter().all(|p| p.ecosystem == Ecosystem::Nuget
            && p.layer == 6
            && p.location == "app/dotnet/TestLibrary.deps.json"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn damage_is_a_warning() {
        let c = catalog(&[
            ("a/x.deps.json", b"{\"libraries\": {", 0),
            ("b/x.deps.json", b"[1, 2]", 0),
            (
                "c/x.deps.json",
                br#"{"libraries": {"NoVersion": {"type": "package"},
                                   "Ok.Pkg/1.2.3": {"type": "package"},
                                   "Odd/": {"type": "package"},
                                   "Weird/1.0": {"type": 7}}}"#,
                0,
            ),
        ]);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(got, [("Ok.Pkg", "1.2.3")]);
        assert_eq!(c.warnings.len(), 4, "{:#?}", c.warnings);
        assert!(c.warnings[0].starts_with("nuget: /a/x.deps.json: not a deps.json"));
        assert!(c.warnings[1].starts_with("nuget: /b/x.deps.json: not a deps.json"));
        // `Weird/1.0` with a numeric type is no package: skipped quietly
        assert_eq!(
            c.warnings[2..],
            [
                "nuget: /c/x.deps.json: library key \"NoVersion\" is not Name/Version",
                "nuget: /c/x.deps.json: library key \"Odd/\" is not Name/Version",
            ]
        );
    }

    fn found(c: &Catalog) -> Vec<(&str, &str, &str)> {
        c.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.location.as_str()))
            .collect()
    }

    #[test]
    fn self_contained_app_reports_its_runtime_packs() {
        let c = catalog(&[(
            "app/webapp.deps.json",
            include_bytes!("fixtures/selfcontained-webapp.deps.json"),
            2,
        )]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let l = "app/webapp.deps.json";
        assert_eq!(
            found(&c),
            [
                ("Newtonsoft.Json", "13.0.3", l),
                ("Microsoft.AspNetCore.App.Runtime.linux-x64", "8.0.1", l),
                ("Microsoft.NETCore.App.Runtime.linux-x64", "8.0.1", l),
            ]
        );
    }

    #[test]
    fn wants_shared_framework_files() {
        for p in [
            "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/.version",
            "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/Microsoft.NETCore.App.deps.json",
            "usr/lib/dotnet/shared/Microsoft.AspNetCore.App/8.0.1/.version",
            "shared/Microsoft.WindowsDesktop.App/6.0.25/.version",
        ] {
            assert!(DotnetCataloger.wants(p), "{p}");
        }
        for p in [
            "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/System.Runtime.dll",
            "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/sub/.version",
            "usr/share/dotnet/shared/Other.App/8.0.1/.version",
            "usr/share/dotnet/shared/Microsoft.NETCore.App/latest/.version",
            "usr/share/dotnet/sdk/8.0.101/.version",
            "app/.version",
        ] {
            assert!(!DotnetCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn framework_dependent_image_reports_the_shared_frameworks() {
        let ms = "usr/share/dotnet/shared";
        let core_deps = format!("{ms}/Microsoft.NETCore.App/8.0.1/Microsoft.NETCore.App.deps.json");
        let asp_version = format!("{ms}/Microsoft.AspNetCore.App/8.0.1/.version");
        // A second runtime, only its .version kept: no RID to tell.
        let old_version = "usr/lib/dotnet/shared/Microsoft.NETCore.App/6.0.25/.version";
        let c = catalog(&[
            (
                &core_deps,
                include_bytes!("fixtures/Microsoft.NETCore.App.deps.json"),
                1,
            ),
            (
                &format!("{ms}/Microsoft.NETCore.App/8.0.1/.version"),
                include_bytes!("fixtures/NETCore.version"),
                1,
            ),
            (
                &asp_version,
                include_bytes!("fixtures/AspNetCore.version"),
                1,
            ),
            (
                &format!("{ms}/Microsoft.AspNetCore.App/8.0.1/Microsoft.AspNetCore.App.deps.json"),
                br#"{"runtimeTarget": {"name": ".NETCoreApp,Version=v8.0/linux-musl-arm64"}}"#,
                1,
            ),
            (old_version, b"0123\n6.0.25\n", 3),
            (
                "app/webapp.deps.json",
                include_bytes!("fixtures/TestLibrary.deps.json"),
                4,
            ),
        ]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let got: Vec<_> = found(&c)
            .into_iter()
            .filter(|(n, ..)| n.contains(".App"))
            .collect();
        assert_eq!(
            got,
            [
                ("Microsoft.NETCore.App", "6.0.25", old_version),
                (
                    "Microsoft.AspNetCore.App.Runtime.linux-musl-arm64",
                    "8.0.1",
                    format!(
                        "{ms}/Microsoft.AspNetCore.App/8.0.1/Microsoft.AspNetCore.App.deps.json"
                    )
                    .as_str()
                ),
                (
                    "Microsoft.NETCore.App.Runtime.linux-x64",
                    "8.0.1",
                    core_deps.as_str()
                ),
            ]
        );
        // The framework's deps.json is not also read as an application's.
        assert_eq!(c.packages.len(), 12 + 3);
    }

    #[test]
    fn distribution_rids_become_portable_ones() {
        assert_eq!(portable_rid("ubuntu.22.04-x64"), "linux-x64");
        assert_eq!(portable_rid("alpine.3.18-arm64"), "linux-musl-arm64");
        assert_eq!(portable_rid("fedora.39-x64"), "linux-x64");
        assert_eq!(portable_rid("linux-musl-x64"), "linux-musl-x64");
        assert_eq!(portable_rid("win-x86"), "win-x86");
        assert_eq!(
            runtime_pack_name("runtimepack.Microsoft.NETCore.App.Runtime.rhel.8-x64"),
            "Microsoft.NETCore.App.Runtime.linux-x64"
        );
        // A source-built runtime (Ubuntu's dotnet8 package) in usr/lib/dotnet.
        let deps = br#"{"runtimeTarget": {"name": ".NETCoreApp,Version=v8.0/ubuntu.22.04-x64"},
            "libraries": {"Microsoft.NETCore.App.Runtime.ubuntu.22.04-x64/8.0.1": {"type": "package"}}}"#;
        let p = "usr/lib/dotnet/shared/Microsoft.NETCore.App/8.0.1/Microsoft.NETCore.App.deps.json";
        let c = catalog(&[(p, deps, 0)]);
        assert_eq!(
            found(&c),
            [("Microsoft.NETCore.App.Runtime.linux-x64", "8.0.1", p)]
        );
        // Garbage deps.json or .version: the directory still names the runtime.
        let v = "usr/share/dotnet/shared/Microsoft.NETCore.App/7.0.5/.version";
        let c = catalog(&[(v, b"\xff\xfe garbage", 0)]);
        assert_eq!(found(&c), [("Microsoft.NETCore.App", "7.0.5", v)]);
    }
}
