//! PHP packages installed by Composer, from `vendor/composer/installed.json`
//! wherever a `vendor` directory is. Composer 1 writes a top-level array of
//! packages, Composer 2 an object whose `packages` holds that array (plus
//! `dev` and `dev-package-names`: dev packages are installed too, so they
//! count). Versions are kept as Composer writes them (`v1.8.1`, not the
//! `version_normalized` `1.8.1.0`), which is what advisories quote.
//!
//! `composer.lock` is not read: it lists what would be installed, and an
//! image carries what was.

use serde::Deserialize;

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt};
use crate::image::fs::FileTree;

const MANIFEST: &str = "vendor/composer/installed.json";
/// Longest name or version kept; longer is damage, not data.
const MAX_FIELD: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhpError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("neither a package list nor an object with `packages`")]
    UnknownLayout,
    #[error("package {index}: invalid {field} {value:?}")]
    Invalid {
        index: usize,
        field: &'static str,
        value: String,
    },
}

pub struct PhpCataloger;

fn is_manifest(path: &str) -> bool {
    path == MANIFEST
        || path
            .strip_suffix(MANIFEST)
            .is_some_and(|dir| dir.ends_with('/'))
}

impl Cataloger for PhpCataloger {
    fn name(&self) -> &'static str {
        "php"
    }

    fn wants(&self, path: &str) -> bool {
        is_manifest(path)
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warn = WarningSink::new(&mut out.warnings, "composer");
        for (path, entry) in &files.files {
            if !is_manifest(path) {
                continue;
            }
            let (pkgs, problems) = parse(&entry.data);
            for e in problems {
                warn.push(format_args!("/{path}: {e}"));
            }
            out.packages.extend(pkgs.into_iter().map(|(name, version)| {
                Package::language(Ecosystem::Composer, name, version, path, entry.layer)
            }));
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Installed {
    V1(Vec<serde_json::Value>),
    V2 { packages: Vec<serde_json::Value> },
}

/// `(vendor/name, version)` of every package that has both, and a problem
/// for each entry that could not be read; a damaged entry does not hide the
/// others.
pub fn parse(data: &[u8]) -> (Vec<(String, String)>, Vec<PhpError>) {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let raw: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => return (Vec::new(), vec![PhpError::NotJson(excerpt(&e.to_string()))]),
    };
    let list = match serde_json::from_value::<Installed>(raw) {
        Ok(Installed::V1(l) | Installed::V2 { packages: l }) => l,
        Err(_) => return (Vec::new(), vec![PhpError::UnknownLayout]),
    };
    let mut pkgs = Vec::new();
    let mut problems = Vec::new();
    for (index, p) in list.iter().enumerate() {
        let field = |field: &'static str| -> Result<String, PhpError> {
            match p.get(field) {
                Some(serde_json::Value::String(s)) if valid(s, field == "name") => Ok(s.clone()),
                other => Err(PhpError::Invalid {
                    index,
                    field,
                    value: excerpt(&other.map(|v| v.to_string()).unwrap_or_default()),
                }),
            }
        };
        match (field("name"), field("version")) {
            (Ok(n), Ok(v)) => pkgs.push((n, v)),
            (Err(e), _) | (_, Err(e)) => problems.push(e),
        }
    }
    (pkgs, problems)
}

/// Composer names are `vendor/package`; versions printable without spaces.
fn valid(s: &str, is_name: bool) -> bool {
    if s.is_empty() || s.len() > MAX_FIELD || !s.chars().all(|c| c.is_ascii_graphic()) {
        return false;
    }
    !is_name
        || s.split_once('/')
            .is_some_and(|(v, n)| !v.is_empty() && !n.is_empty() && !n.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(files: &[(&str, &[u8], usize)]) -> Catalog {
        crate::catalog::testkit::run(&PhpCataloger, files)
    }

    fn found(c: &Catalog) -> Vec<(&str, &str, &str)> {
        c.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.location.as_str()))
            .collect()
    }

    #[test]
    fn wants_installed_json_in_any_vendor_dir() {
        for p in [
            "var/www/html/vendor/composer/installed.json",
            "vendor/composer/installed.json",
        ] {
            assert!(PhpCataloger.wants(p), "{p}");
        }
        for p in [
            "var/www/html/composer.lock",
            "var/www/html/vendor/composer/installed.php",
            "var/www/html/myvendor/composer/installed.json",
            "var/www/html/vendor/guzzlehttp/psr7/composer.json",
        ] {
            assert!(!PhpCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn composer_1_list() {
        let c = catalog(&[(
            "opt/legacy-php/vendor/composer/installed.json",
            include_bytes!("fixtures/composer1-installed.json"),
            6,
        )]);
        let loc = "opt/legacy-php/vendor/composer/installed.json";
        assert_eq!(
            found(&c),
            [
                ("asm89/stack-cors", "1.3.0", loc),
                // as written, not version_normalized 1.8.1.0
                ("behat/mink", "v1.8.1", loc),
            ]
        );
        assert!(c.packages.iter().all(|p| p.layer == 6
            && p.ecosystem == Ecosystem::Composer
            && p.source_name.is_none()));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn composer_2_packages_object() {
        let c = catalog(&[(
            "var/www/html/vendor/composer/installed.json",
            include_bytes!("fixtures/composer2-installed.json"),
            7,
        )]);
        let names: Vec<_> = found(&c).into_iter().map(|(n, v, _)| (n, v)).collect();
        assert_eq!(
            names,
            [
                ("guzzlehttp/psr7", "1.8.3"),
                ("psr/http-message", "1.1"),
                ("ralouphie/getallheaders", "3.0.3"),
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn damaged_files_warn_and_keep_good_entries() {
        let c = catalog(&[
            ("a/vendor/composer/installed.json", b"{\"packages\": [", 0),
            (
                "b/vendor/composer/installed.json",
                b"{\"name\": \"x/y\"}",
                0,
            ),
            (
                "c/vendor/composer/installed.json",
                br#"[{"name": "good/pkg", "version": "2.0.0"},
                     {"name": "no-vendor", "version": "1.0"},
                     {"name": "x/y", "version": 3},
                     "junk"]"#,
                0,
            ),
            (
                "d/vendor/composer/installed.json",
                b"\xff\xfe\x00garbage",
                0,
            ),
        ]);
        assert_eq!(
            found(&c),
            [("good/pkg", "2.0.0", "c/vendor/composer/installed.json")]
        );
        assert_eq!(c.warnings.len(), 6, "{:#?}", c.warnings);
        assert!(c.warnings[0].starts_with("composer: /a/vendor/composer/installed.json: not JSON"));
        assert!(c.warnings[1].ends_with("neither a package list nor an object with `packages`"));
        assert!(c.warnings[2].ends_with("package 1: invalid name \"\\\"no-vendor\\\"\""));
        assert!(c.warnings[3].ends_with("package 2: invalid version \"3\""));
        assert!(c.warnings[4].ends_with("package 3: invalid name \"\""));
        assert!(c.warnings[5].contains("/d/vendor/composer/installed.json: not JSON"));
    }
}
