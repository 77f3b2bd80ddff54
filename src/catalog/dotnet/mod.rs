//! NuGet packages of .NET applications, from the `*.deps.json` the SDK
//! writes beside every published application or library. Its `libraries`
//! map is keyed `Name/Version`; entries of type `package` came from NuGet,
//! while `project` entries are the application's own projects (not
//! published packages, no advisories) and `runtimepack`/`reference` entries
//! are parts of the .NET runtime, which the OS or base image accounts for.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt};
use crate::image::fs::FileTree;

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

impl Cataloger for DotnetCataloger {
    fn name(&self) -> &'static str {
        "dotnet"
    }

    fn wants(&self, path: &str) -> bool {
        is_deps_json(path)
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warn = WarningSink::new(&mut out.warnings, "nuget");
        for (path, entry) in &files.files {
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
        if lib.get("type").and_then(|t| t.as_str()) != Some("package") {
            continue;
        }
        match key.split_once('/') {
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
        let mut c = Catalog::default();
        DotnetCataloger.catalog(&FileTree::from_files(files), None, &mut c);
        c
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
}
