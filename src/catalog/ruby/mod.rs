//! Ruby gems, from the installed specifications RubyGems itself loads:
//! `…/specifications/NAME-VERSION[-PLATFORM].gemspec` and the default gems'
//! `…/specifications/default/*.gemspec`, under any gem home
//! (`usr/lib/ruby/gems/3.1.0`, `usr/local/bundle`, `vendor/bundle/ruby/*`,
//! Debian's `usr/share/rubygems-integration/all`). A gemspec inside a gem's
//! own source directory (`gems/rake-13.0.6/rake.gemspec`) is not an
//! installation record and often computes its version in Ruby, so it is
//! not read.
//!
//! Installed specifications are generated Ruby (`Gem::Specification#to_ruby`)
//! with literal `s.name = "rake".freeze` / `s.version = "13.0.6"`
//! assignments; hand-written ones use `spec.`/`gem.`, single quotes,
//! `%q{}` or `Gem::Version.new("…")`. No Ruby is evaluated: when the
//! version is not a literal, the file name, which RubyGems derives from
//! the spec's full name, supplies it.

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt};
use crate::image::fs::FileTree;

/// The name and version are near the top of every generated spec; a spec
/// is never this large, so the rest of a huge file is not searched.
const SCAN_LIMIT: usize = 256 * 1024;
const MAX_FIELD: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RubyError {
    #[error("no literal gem name")]
    NoName,
    #[error("no literal version for {0}, and the file name does not give one")]
    NoVersion(String),
    #[error("invalid {field} {value:?}")]
    Invalid { field: &'static str, value: String },
}

pub struct RubyCataloger;

fn is_spec(path: &str) -> bool {
    let Some(rest) = path.strip_suffix(".gemspec") else {
        return false;
    };
    let (dir, file) = rest.rsplit_once('/').unwrap_or(("", rest));
    if file.is_empty() {
        return false;
    }
    let dir = dir.strip_suffix("/default").unwrap_or(dir);
    dir == "specifications" || dir.ends_with("/specifications")
}

impl Cataloger for RubyCataloger {
    fn name(&self) -> &'static str {
        "ruby"
    }

    fn wants(&self, path: &str) -> bool {
        is_spec(path)
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warn = WarningSink::new(&mut out.warnings, "gem");
        for (path, entry) in &files.files {
            if !is_spec(path) {
                continue;
            }
            let stem = path
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".gemspec"))
                .unwrap_or_default();
            match parse(&entry.data, stem) {
                Ok(g) => out.packages.push(Package::language(
                    Ecosystem::Gem,
                    g.name,
                    g.version,
                    path,
                    entry.layer,
                )),
                Err(e) => warn.push(format_args!("/{path}: {e}")),
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gem {
    pub name: String,
    pub version: String,
}

/// Name and version of a gemspec; `file_stem` is its file name without
/// `.gemspec` (`nokogiri-1.13.10-x86_64-linux`), the fallback for a
/// version that is not a literal.
pub fn parse(data: &[u8], file_stem: &str) -> Result<Gem, RubyError> {
    let text = String::from_utf8_lossy(&data[..data.len().min(SCAN_LIMIT)]);
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        // `==`, `=~` and `>=` are comparisons, not assignments
        if rhs.starts_with(['=', '~']) || lhs.ends_with(['!', '<', '>']) {
            continue;
        }
        let Some((recv, attr)) = lhs.trim().split_once('.') else {
            continue;
        };
        if !is_ident(recv) {
            continue;
        }
        let slot = match attr {
            "name" => &mut name,
            "version" => &mut version,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(literal(rhs.trim()));
        }
        if name.is_some() && version.is_some() {
            break;
        }
    }
    let name = match name.flatten() {
        Some(n) if valid(&n) => n,
        Some(n) => {
            return Err(RubyError::Invalid {
                field: "name",
                value: excerpt(&n),
            });
        }
        None => return Err(RubyError::NoName),
    };
    let version = match version.flatten() {
        Some(v) if valid(&v) => v,
        Some(v) => {
            return Err(RubyError::Invalid {
                field: "version",
                value: excerpt(&v),
            });
        }
        None => version_from_file_name(&name, file_stem)
            .ok_or_else(|| RubyError::NoVersion(excerpt(&name)))?,
    };
    Ok(Gem { name, version })
}

/// `NAME-VERSION[-PLATFORM]` → `VERSION`. RubyGems versions never contain
/// `-`, so whatever follows the next one is the platform.
fn version_from_file_name(name: &str, stem: &str) -> Option<String> {
    let rest = stem.strip_prefix(name)?.strip_prefix('-')?;
    let v = rest.split('-').next()?;
    (v.starts_with(|c: char| c.is_ascii_digit()) && valid(v)).then(|| v.to_owned())
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The string a Ruby literal spells: `"x"`, `'x'`, `%q{x}`, `%Q(x)`, each
/// optionally `.freeze`d or wrapped in `Gem::Version.new(…)`. `None` for
/// anything computed (`Foo::VERSION`).
fn literal(expr: &str) -> Option<String> {
    let expr = expr.strip_suffix(".freeze").unwrap_or(expr).trim();
    let expr = match expr.strip_prefix("Gem::Version.new(") {
        Some(inner) => inner.strip_suffix(')')?.trim(),
        None => expr,
    };
    let expr = expr.strip_suffix(".freeze").unwrap_or(expr);
    let (body, close) = if let Some(b) = expr.strip_prefix('"') {
        (b, '"')
    } else if let Some(b) = expr.strip_prefix('\'') {
        (b, '\'')
    } else if let Some(b) = expr.strip_prefix("%q").or_else(|| expr.strip_prefix("%Q")) {
        let mut chars = b.chars();
        let close = match chars.next()? {
            '{' => '}',
            '(' => ')',
            '[' => ']',
            '<' => '>',
            c if c.is_ascii_punctuation() => c,
            _ => return None,
        };
        (chars.as_str(), close)
    } else {
        return None;
    };
    let end = body.find(close)?;
    let s = &body[..end];
    // interpolation or escapes mean a computed value, not a literal name
    if s.contains("#{") || s.contains('\\') {
        return None;
    }
    Some(s.to_owned())
}

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_FIELD && s.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(files: &[(&str, &[u8], usize)]) -> Catalog {
        crate::catalog::testkit::run(&RubyCataloger, files)
    }

    fn gem(name: &str, version: &str) -> Gem {
        Gem {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn wants_installed_specifications_only() {
        for p in [
            "usr/lib/ruby/gems/3.1.0/specifications/default/abbrev-0.1.0.gemspec",
            "usr/lib/ruby/gems/3.1.0/specifications/minitest-5.15.0.gemspec",
            "usr/share/rubygems-integration/all/specifications/webrick-1.8.1.gemspec",
            "usr/local/bundle/specifications/rack-2.2.8.gemspec",
            "specifications/x-1.gemspec",
        ] {
            assert!(RubyCataloger.wants(p), "{p}");
        }
        for p in [
            "usr/lib/ruby/gems/3.1.0/gems/rake-13.0.6/rake.gemspec",
            "app/myapp.gemspec",
            "usr/lib/ruby/gems/3.1.0/specifications/other/x-1.gemspec",
            "usr/lib/ruby/gems/3.1.0/specifications/.gemspec",
            "usr/lib/ruby/gems/3.1.0/specifications/x-1.gemspec.bak",
            "usr/lib/ruby/gems/3.1.0/myspecifications/x-1.gemspec",
        ] {
            assert!(!RubyCataloger.wants(p), "{p}");
        }
    }

    #[test]
    fn generated_default_gem_spec() {
        let g = parse(
            include_bytes!("fixtures/abbrev-0.1.0.gemspec"),
            "abbrev-0.1.0",
        )
        .unwrap();
        assert_eq!(g, gem("abbrev", "0.1.0"));
    }

    #[test]
    fn debian_rubygems_integration_spec() {
        let g = parse(
            include_bytes!("fixtures/webrick-1.8.1.gemspec"),
            "webrick-1.8.1",
        )
        .unwrap();
        assert_eq!(g, gem("webrick", "1.8.1"));
    }

    #[test]
    fn quoting_styles() {
        for (src, want) in [
            (
                "s.name = 'rake'\ns.version = '13.0.6'",
                gem("rake", "13.0.6"),
            ),
            (
                "spec.name = %q{rack}\nspec.version = Gem::Version.new(\"2.2.8\")",
                gem("rack", "2.2.8"),
            ),
            (
                "  gem.name    =   %Q(net-ssh).freeze\n  gem.version = Gem::Version.new('7.0.1').freeze",
                gem("net-ssh", "7.0.1"),
            ),
            (
                "# -*- encoding: utf-8 -*-\nGem::Specification.new do |s|\n  s.name = \"x\".freeze\n  \
                 s.required_rubygems_version = Gem::Requirement.new(\">= 0\".freeze) if s.respond_to? :required_rubygems_version=\n  \
                 s.rubygems_version = \"3.3.15\"\n  s.version = \"1.0\"\nend",
                gem("x", "1.0"),
            ),
        ] {
            assert_eq!(parse(src.as_bytes(), "ignored").unwrap(), want, "{src}");
        }
    }

    #[test]
    fn computed_version_falls_back_to_file_name() {
        let src = b"Gem::Specification.new do |spec|\n  spec.name = \"nokogiri\"\n  spec.version = Nokogiri::VERSION\nend\n";
        assert_eq!(
            parse(src, "nokogiri-1.13.10-x86_64-linux").unwrap(),
            gem("nokogiri", "1.13.10")
        );
        assert_eq!(
            parse(src, "something-else-1.0"),
            Err(RubyError::NoVersion("nokogiri".into()))
        );
    }

    #[test]
    fn odd_and_huge_specs_warn() {
        let mut huge = b"s.name = \"big\"\n".to_vec();
        huge.extend(std::iter::repeat_n(b'#', 4 * SCAN_LIMIT));
        huge.extend(b"\ns.version = \"9.9\"\n");
        let c = catalog(&[
            ("specifications/big-9.9.gemspec", &huge, 0),
            (
                "specifications/none-1.0.gemspec",
                b"\xff\xfe\x00\x01 garbage",
                0,
            ),
            (
                "specifications/interp-1.0.gemspec",
                b"s.name = \"a#{b}\"\ns.version = \"1.0\"",
                0,
            ),
            (
                "specifications/sp-1.0.gemspec",
                b"s.name = \"has space\"\ns.version = \"1.0\"",
                0,
            ),
            (
                "specifications/ok-2.0.gemspec",
                b"s.name = \"ok\"\ns.version = \"2.0\"",
                3,
            ),
        ]);
        let got: Vec<_> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.layer))
            .collect();
        // the huge one's version is past the scan limit: its file name names it
        assert_eq!(got, [("big", "9.9", 0), ("ok", "2.0", 3)]);
        assert_eq!(
            c.warnings,
            [
                "gem: /specifications/interp-1.0.gemspec: no literal gem name",
                "gem: /specifications/none-1.0.gemspec: no literal gem name",
                "gem: /specifications/sp-1.0.gemspec: invalid name \"has space\"",
            ]
        );
    }
}
