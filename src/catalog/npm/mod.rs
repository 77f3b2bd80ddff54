//! npm packages installed in `node_modules`: the `package.json` directly in
//! a package directory, `…/node_modules/NAME/package.json` or
//! `…/node_modules/@SCOPE/NAME/package.json`, at any depth of nested
//! `node_modules` (npm's nested and hoisted layouts, pnpm's
//! `node_modules/.pnpm/X/node_modules/NAME`). That covers global installs
//! too, wherever the prefix is (`npm install -g` puts packages in
//! `<prefix>/lib/node_modules`: `usr/local/lib/node_modules` for the node
//! images, `usr/lib/node_modules` for distribution packages), with their
//! dependencies and `bundleDependencies` nested in each package's own
//! `node_modules` (npm itself bundles all of its own).
//!
//! Not read, deliberately:
//! - other `package.json` files inside a package (`dist/esm/package.json`
//!   `{"type": "module"}` markers, test fixtures): not installed packages.
//!   Amazon's generator emits them as nameless `pkg:npm/` components (its
//!   `node_latest` SBOM has twenty), which match nothing;
//! - an application's own `package.json` outside `node_modules`: it names
//!   the application, usually `"private": true` and never published, and
//!   matching its name against npm advisories would pin a stranger's
//!   vulnerabilities on it. Amazon's generator agrees in the evidence we
//!   have: every one of the 258 npm components of its `node_latest` SBOM
//!   comes from a `package.json` under `node_modules`, none from an
//!   application manifest;
//! - lock files (`package-lock.json`, `yarn.lock`): what was installed is
//!   in `node_modules`; a lock file without it (a build stage's leftover)
//!   describes packages the image does not have, and with it adds nothing.
//!
//! The name is the manifest's `name`, not the directory's: an alias install
//! (`npm i foo@npm:bar`) puts `bar`'s code in `node_modules/foo`, and
//! vulnerabilities are `bar`'s. Manifests without a name or version are
//! skipped without a warning (npm writes such markers itself).

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package};
use crate::catalog::excerpt;
use crate::image::fs::FileTree;

/// npm's own limit on package names.
const MAX_NAME: usize = 214;
/// Longest version kept; longer is damage, not data.
const MAX_VERSION: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpmError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("invalid {field} {value:?}")]
    Invalid { field: &'static str, value: String },
}

pub struct NpmCataloger;

/// `…node_modules/NAME/package.json` or `…node_modules/@S/NAME/package.json`
/// (no allocation: this runs for every tar entry).
fn is_manifest(path: &str) -> bool {
    let Some(dir) = path.strip_suffix("/package.json") else {
        return false;
    };
    let Some((parent, name)) = split_last(dir) else {
        return false;
    };
    if name.is_empty() || name.starts_with('.') || name == "node_modules" {
        return false;
    }
    if is_node_modules(parent) {
        return !name.starts_with('@');
    }
    match split_last(parent) {
        Some((grand, scope)) => scope.len() > 1 && scope.starts_with('@') && is_node_modules(grand),
        None => false,
    }
}

fn split_last(path: &str) -> Option<(&str, &str)> {
    path.rfind('/').map(|i| (&path[..i], &path[i + 1..]))
}

fn is_node_modules(dir: &str) -> bool {
    dir == "node_modules" || dir.ends_with("/node_modules")
}

impl Cataloger for NpmCataloger {
    fn name(&self) -> &'static str {
        "npm"
    }

    fn wants(&self, path: &str) -> bool {
        is_manifest(path)
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut problems = 0usize;
        for (path, entry) in &files.files {
            if !is_manifest(path) {
                continue;
            }
            if crate::cancel::is_cancelled() {
                return;
            }
            match parse(&entry.data) {
                Ok(Some(m)) => out.packages.push(Package::language(
                    Ecosystem::Npm,
                    m.name,
                    m.version,
                    path,
                    entry.layer,
                )),
                Ok(None) => {}
                Err(e) => {
                    // One per damaged file, but not thousands of them.
                    problems += 1;
                    if problems <= 20 {
                        out.warnings.push(format!("npm /{path}: {e}"));
                    }
                }
            }
        }
        if problems > 20 {
            out.warnings.push(format!(
                "npm: {} more damaged package.json files not shown",
                problems - 20
            ));
        }
    }
}

/// An installed package as its manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `name` or `@scope/name`.
    pub name: String,
    pub version: String,
    pub private: bool,
}

/// Reads `name` and `version`. `Ok(None)` for a manifest that names no
/// package (no name or no version).
pub fn parse(data: &[u8]) -> Result<Option<Manifest>, NpmError> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let raw: serde_json::Value = serde_json::from_slice(data).map_err(|e| {
        let mut msg = e.to_string();
        msg.truncate(200);
        NpmError::NotJson(msg)
    })?;
    let serde_json::Value::Object(mut obj) = raw else {
        return Err(NpmError::NotAnObject);
    };
    let (Some(name), Some(version)) = (obj.remove("name"), obj.remove("version")) else {
        return Ok(None);
    };
    let name = match name {
        serde_json::Value::String(s) if valid_name(&s) => s,
        other => {
            return Err(NpmError::Invalid {
                field: "name",
                value: excerpt(&other.to_string()),
            });
        }
    };
    let version = match version {
        serde_json::Value::String(s) if valid_version(&s) => s,
        // Some generated manifests say `"version": ""`: no package.
        serde_json::Value::String(s) if s.is_empty() => return Ok(None),
        other => {
            return Err(NpmError::Invalid {
                field: "version",
                value: excerpt(&other.to_string()),
            });
        }
    };
    let private = matches!(obj.get("private"), Some(serde_json::Value::Bool(true)));
    Ok(Some(Manifest {
        name,
        version,
        private,
    }))
}

/// `name` or `@scope/name`, each part non-empty printable ASCII without
/// `/`, at most 214 bytes.
fn valid_name(n: &str) -> bool {
    if n.is_empty() || n.len() > MAX_NAME || !n.chars().all(|c| c.is_ascii_graphic()) {
        return false;
    }
    match n.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, name)) => !scope.is_empty() && !name.is_empty() && !name.contains('/'),
            None => false,
        },
        None => !n.contains('/'),
    }
}

fn valid_version(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_VERSION && v.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &[u8], usize)]) -> FileTree {
        FileTree::from_files(files)
    }

    fn catalog(t: &FileTree) -> Catalog {
        let mut c = Catalog::default();
        NpmCataloger.catalog(t, None, &mut c);
        c
    }

    #[test]
    fn wants_package_dirs_only() {
        for p in [
            "app/node_modules/express/package.json",
            "node_modules/express/package.json",
            "app/node_modules/@hapi/hoek/package.json",
            "app/node_modules/send/node_modules/ms/package.json",
            "app/node_modules/a/node_modules/@s/b/node_modules/c/package.json",
            "usr/local/lib/node_modules/npm/package.json",
            "usr/local/lib/node_modules/npm/node_modules/@colors/colors/package.json",
            "app/node_modules/.pnpm/ms@2.1.3/node_modules/ms/package.json",
            "app/node_modules/ipaddr.js/package.json",
        ] {
            assert!(NpmCataloger.wants(p), "{p}");
        }
        for p in [
            "app/package.json",
            "package.json",
            "node_modules/package.json",
            "app/node_modules/package.json",
            "app/node_modules/@hapi/package.json",
            "app/node_modules/@/x/package.json",
            "app/node_modules/express/lib/package.json",
            "app/node_modules/@isaacs/fs-minipass/dist/esm/package.json",
            "app/node_modules/.bin/package.json",
            "app/node_modules/.package-lock.json",
            "app/node_modules/express/package.json.bak",
            "app/node_modules/express/index.js",
            "app/node_modules/node_modules/package.json",
            "app/my_node_modules/x/package.json",
        ] {
            assert!(!NpmCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn real_manifests() {
        let m = parse(include_bytes!("fixtures/ms-package.json"))
            .unwrap()
            .unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("ms", "2.1.3"));
        assert!(!m.private);
        let m = parse(include_bytes!(
            "fixtures/isaacs-string-locale-compare-package.json"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (m.name.as_str(), m.version.as_str()),
            ("@isaacs/string-locale-compare", "1.1.0")
        );
        let m = parse(include_bytes!("fixtures/npm-package.json"))
            .unwrap()
            .unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("npm", "11.19.1"));
        assert_eq!(
            parse(include_bytes!("fixtures/fs-minipass-dist-esm-package.json")),
            Ok(None)
        );
    }

    #[test]
    fn catalogs_nested_and_scoped() {
        let nm = "usr/lib/node_modules/npm/node_modules";
        let t = tree(&[
            (
                "usr/lib/node_modules/npm/package.json",
                include_bytes!("fixtures/npm-package.json"),
                0,
            ),
            (
                &format!("{nm}/ms/package.json"),
                include_bytes!("fixtures/ms-package.json"),
                0,
            ),
            (
                &format!("{nm}/@isaacs/string-locale-compare/package.json"),
                include_bytes!("fixtures/isaacs-string-locale-compare-package.json"),
                1,
            ),
            (
                &format!("{nm}/@isaacs/fs-minipass/dist/esm/package.json"),
                include_bytes!("fixtures/fs-minipass-dist-esm-package.json"),
                1,
            ),
            // An alias install: the manifest's name wins.
            (
                "app/node_modules/legacy-ms/package.json",
                br#"{"name":"ms","version":"2.0.0"}"#,
                2,
            ),
            // A root project is not read.
            (
                "app/package.json",
                br#"{"name":"app","version":"1.0.0","private":true}"#,
                2,
            ),
            // A marker without a version is skipped silently.
            ("app/node_modules/x/package.json", br#"{"name":"x"}"#, 2),
        ]);
        let c = catalog(&t);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.layer))
            .collect();
        assert_eq!(
            got,
            [
                ("ms", "2.0.0", 2),
                ("@isaacs/string-locale-compare", "1.1.0", 1),
                ("ms", "2.1.3", 0),
                ("npm", "11.19.1", 0),
            ]
        );
        assert!(c.packages.iter().all(|p| p.ecosystem == Ecosystem::Npm));
        assert_eq!(
            c.packages[0].location,
            "app/node_modules/legacy-ms/package.json"
        );
    }

    #[test]
    fn malformed_inputs_warn_never_panic() {
        // Truncated, garbage, wrong types, bad names.
        assert!(matches!(
            parse(br#"{"name":"ms","vers"#),
            Err(NpmError::NotJson(_))
        ));
        assert_eq!(parse(b"[1,2]"), Err(NpmError::NotAnObject));
        assert_eq!(parse(b"\"x\""), Err(NpmError::NotAnObject));
        assert!(matches!(
            parse(br#"{"name":1,"version":"1"}"#),
            Err(NpmError::Invalid { field: "name", .. })
        ));
        assert!(matches!(
            parse(br#"{"name":"a","version":{"x":1}}"#),
            Err(NpmError::Invalid {
                field: "version",
                ..
            })
        ));
        for bad in ["a b", "@s", "@/x", "@s/", "a/b", "@s/a/b", ""] {
            let doc = format!(r#"{{"name":"{bad}","version":"1"}}"#);
            assert!(parse(doc.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(parse(br#"{"name":"a","version":""}"#), Ok(None));
        // BOM, duplicate keys (the last wins, as in JavaScript).
        let m = parse(b"\xef\xbb\xbf{\"name\":\"a\",\"version\":\"1\",\"version\":\"2\"}")
            .unwrap()
            .unwrap();
        assert_eq!(m.version, "2");
        // Huge values and deep nesting.
        let big = "1".repeat(4 << 20);
        let e = parse(format!(r#"{{"name":"a","version":"{big}"}}"#).as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 300);
        let deep = format!(
            r#"{{"name":"a","version":"1","x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(parse(deep.as_bytes()), Err(NpmError::NotJson(_))));

        // Binary garbage in many files: warnings capped, no package.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut data = Vec::with_capacity(1 << 16);
        for _ in 0..(1 << 16) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        let paths: Vec<String> = (0..50)
            .map(|i| format!("node_modules/p{i}/package.json"))
            .collect();
        let files: Vec<(&str, &[u8], usize)> =
            paths.iter().map(|p| (p.as_str(), &data[..], 0)).collect();
        let c = catalog(&tree(&files));
        assert!(c.packages.is_empty());
        assert_eq!(c.warnings.len(), 21, "{:?}", c.warnings);
        assert!(c.warnings.iter().all(|w| w.len() < 400));
    }

    /// `npm install -g --prefix DIR mkdirp@0.5.6` (fixtures/PROVENANCE.md):
    /// `npm ls -g --all` prints `mkdirp@0.5.6` and, nested in its own
    /// `node_modules`, `minimist@1.2.8`. The same global install under both
    /// system prefixes; an application's own manifest and lock file beside
    /// it are not packages.
    #[test]
    fn real_global_install() {
        let top: &[u8] = include_bytes!("fixtures/global-mkdirp-package.json");
        let dep: &[u8] = include_bytes!("fixtures/global-mkdirp-minimist-package.json");
        let mut files = Vec::new();
        let paths: Vec<(String, String)> = ["usr/local/lib", "usr/lib"]
            .iter()
            .map(|p| {
                (
                    format!("{p}/node_modules/mkdirp/package.json"),
                    format!("{p}/node_modules/mkdirp/node_modules/minimist/package.json"),
                )
            })
            .collect();
        for (t, d) in &paths {
            assert!(NpmCataloger.wants(t) && NpmCataloger.wants(d));
            files.push((t.as_str(), top, 1));
            files.push((d.as_str(), dep, 1));
        }
        for p in ["app/package.json", "app/package-lock.json"] {
            assert!(!NpmCataloger.wants(p));
            files.push((p, top, 2));
        }
        let c = catalog(&tree(&files));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.location.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("minimist", "1.2.8", paths[1].1.as_str()),
                ("mkdirp", "0.5.6", paths[1].0.as_str()),
                ("minimist", "1.2.8", paths[0].1.as_str()),
                ("mkdirp", "0.5.6", paths[0].0.as_str()),
            ]
        );
    }
}
