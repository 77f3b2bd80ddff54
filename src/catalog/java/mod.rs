//! Java archives (`.jar`, `.war`, `.ear`, Jenkins' `.jpi`/`.hpi`) and the
//! archives nested in them (Spring Boot's `BOOT-INF/lib`, a war's
//! `WEB-INF/lib`, an ear's `lib/`, or anywhere else).
//!
//! Identity, in order of trust:
//! 1. `META-INF/maven/GROUP/ARTIFACT/pom.properties`, written by Maven when
//!    it builds the artifact. Every one found is a package, including those
//!    of classes shaded into the archive (httpclient-osgi carries six, a
//!    Debian maven jar carries slf4j-simple's): that code is in the image.
//!    An archive that has any names no other package: peers that also add
//!    one from the file name or manifest report `maven3-core` beside the
//!    real `maven-core`, a false positive for every renamed jar.
//! 2. For an archive without one, Debian's `/usr/share/maven-repo` symlinks
//!    (`GROUP/PATH/ARTIFACT/VERSION/ARTIFACT-VERSION.jar` → the jar): the
//!    packager's own statement of the coordinates. The `debian` and `N.x`
//!    alias versions are skipped.
//! 3. Otherwise the file name (`commons-collections-3.2.2.jar`) and the
//!    manifest: this guesses, so it is used only with a version, and never
//!    for jars in Debian's Java directories, where an unclaimed jar is
//!    already accounted for by its deb (guessing there is how peers report
//!    `com.google.inject.grapher/guice-grapher`).
//!
//! Large archives: [`Cataloger::reduce`] turns each archive into a small
//! [`Summary`] (the pom.properties coordinates, a few manifest fields, the
//! same for nested archives) as soon as the layer reader has read it, so a
//! 100 MB jar is held only while it is summarised. [`Cataloger::catalog`]
//! accepts either form.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

use super::{Catalog, Cataloger, Ecosystem, OsInfo, Package, WarningSink, excerpt};
use crate::image::fs::FileTree;

/// Extensions of Java archives (compared case-insensitively).
const ARCHIVE_EXTS: [&str; 5] = [".jar", ".war", ".ear", ".jpi", ".hpi"];
/// What [`Cataloger::reduce`] leaves: this prefix, then the summary as JSON.
/// A zip starts with `PK`, so neither is mistaken for the other.
const SUMMARY_MAGIC: &[u8] = b"scangate-java-summary/1\n";
/// Archives inside archives inside archives (a jar in a war in an ear) is
/// the deepest real layout; deeper is a zip bomb.
const MAX_DEPTH: usize = 3;
/// A nested archive is read into memory to be opened; larger ones are
/// skipped with a warning.
const MAX_NESTED_SIZE: u64 = 128 << 20;
/// Total bytes of nested archives read for one top-level archive.
const MAX_NESTED_TOTAL: u64 = 512 << 20;
/// pom.properties and MANIFEST.MF are a few hundred bytes.
const MAX_TEXT_SIZE: u64 = 1 << 20;
/// Problems recorded per summary.
const MAX_PROBLEMS: usize = 20;
/// Longest coordinate kept; longer is damage, not data.
const MAX_FIELD: usize = 256;
/// Manifest main-section fields the fallback identity reads.
const MANIFEST_FIELDS: [&str; 6] = [
    "Implementation-Title",
    "Implementation-Version",
    "Bundle-SymbolicName",
    "Bundle-Version",
    "Specification-Version",
    "Extension-Name",
];
/// Debian's Java policy directories (see the module comment, rule 3).
const DEBIAN_JAVA_DIRS: [&str; 2] = ["usr/share/java/", "usr/share/maven-repo/"];
const DEBIAN_MAVEN_REPO: &str = "usr/share/maven-repo/";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JavaError {
    #[error("not a zip archive: {0}")]
    NotZip(String),
    #[error("unreadable summary: {0}")]
    BadSummary(String),
    #[error("{entry}: {reason}")]
    Entry { entry: String, reason: String },
}

pub struct JavaCataloger;

fn is_archive(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.len() > 4
        && ARCHIVE_EXTS.iter().any(|ext| {
            name.get(name.len() - ext.len()..)
                .is_some_and(|e| e.eq_ignore_ascii_case(ext))
        })
}

/// Maven coordinates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Coords {
    pub group: String,
    pub artifact: String,
    pub version: String,
}

/// What the catalog needs of one archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// From `META-INF/maven/*/*/pom.properties`, in entry order.
    pub poms: Vec<Coords>,
    /// [`MANIFEST_FIELDS`] found in the manifest's main section.
    pub manifest: BTreeMap<String, String>,
    /// Archives inside this one: entry path and summary.
    pub nested: Vec<(String, Summary)>,
    /// Damage found while reading (unreadable entries, limits hit).
    pub problems: Vec<String>,
    /// False when the archive could not be opened at all: then even its
    /// file name is not trusted to name a package.
    pub opened: bool,
}

impl Cataloger for JavaCataloger {
    fn name(&self) -> &'static str {
        "java"
    }

    fn wants(&self, path: &str) -> bool {
        is_archive(path)
    }

    fn reduce(&self, path: &str, data: Vec<u8>) -> Vec<u8> {
        // Not only data starting with `PK`: Spring Boot's "fully executable"
        // jars start with a shell script.
        if !is_archive(path) || data.starts_with(SUMMARY_MAGIC) {
            return data;
        }
        encode(&summarize(&data))
    }

    fn catalog(&self, files: &FileTree, _os: Option<&OsInfo>, out: &mut Catalog) {
        let mut warn = WarningSink::new(&mut out.warnings, "java");
        let mut debian: Option<BTreeMap<String, BTreeSet<Coords>>> = None;
        for (path, entry) in &files.files {
            if !is_archive(path) {
                continue;
            }
            let summary = match decode(&entry.data) {
                Ok(s) => s,
                Err(e) => {
                    warn.push(format_args!("/{path}: {e}"));
                    continue;
                }
            };
            let mut found = Vec::new();
            let file_name = path.rsplit('/').next().unwrap_or(path);
            identify(&summary, file_name, 0, &mut found, &mut |coords| {
                if !DEBIAN_JAVA_DIRS.iter().any(|d| path.starts_with(d)) {
                    return Fallback::Guess;
                }
                let ids = debian.get_or_insert_with(|| debian_maven_repo(files));
                match ids.get(path.as_str()) {
                    Some(c) => {
                        coords.extend(c.iter().cloned());
                        Fallback::Done
                    }
                    None => Fallback::Done,
                }
            });
            for p in summary.all_problems() {
                warn.push(format_args!("/{path}: {p}"));
            }
            out.packages.extend(found.into_iter().map(|c| {
                Package::language(
                    Ecosystem::Maven,
                    format!("{}/{}", c.group, c.artifact),
                    c.version,
                    path,
                    entry.layer,
                )
            }));
        }
    }
}

enum Fallback {
    /// Identity settled (possibly to nothing).
    Done,
    /// Use the file name and manifest.
    Guess,
}

/// Packages of `s` (named `file_name`) and of its nested archives. For the
/// top-level archive (`depth` 0), `top` decides what happens when it has no
/// pom.properties.
fn identify(
    s: &Summary,
    file_name: &str,
    depth: usize,
    found: &mut Vec<Coords>,
    top: &mut dyn FnMut(&mut Vec<Coords>) -> Fallback,
) {
    if !s.poms.is_empty() {
        found.extend(s.poms.iter().cloned());
    } else if !s.opened {
        return;
    } else if depth > 0 || matches!(top(found), Fallback::Guess) {
        found.extend(guess(file_name, &s.manifest));
    }
    for (entry, inner) in &s.nested {
        let name = entry.rsplit('/').next().unwrap_or(entry);
        identify(inner, name, depth + 1, found, top);
    }
}

impl Summary {
    fn all_problems(&self) -> Vec<String> {
        let mut v = self.problems.clone();
        for (entry, inner) in &self.nested {
            v.extend(
                inner
                    .all_problems()
                    .into_iter()
                    .map(|p| format!("{entry}: {p}")),
            );
        }
        v
    }
}

fn encode(s: &Summary) -> Vec<u8> {
    let mut out = SUMMARY_MAGIC.to_vec();
    // Serialising plain strings and maps cannot fail.
    serde_json::to_writer(&mut out, s).expect("summary serialises");
    out
}

/// A summary written by [`encode`], or a raw archive summarised now.
pub fn decode(data: &[u8]) -> Result<Summary, JavaError> {
    if let Some(json) = data.strip_prefix(SUMMARY_MAGIC) {
        return serde_json::from_slice(json)
            .map_err(|e| JavaError::BadSummary(excerpt(&e.to_string())));
    }
    Ok(summarize(data))
}

/// Reads an archive's identity facts. Never fails: damage is recorded in
/// [`Summary::problems`].
pub fn summarize(data: &[u8]) -> Summary {
    let mut budget = MAX_NESTED_TOTAL;
    summarize_at(data, 0, &mut budget)
}

fn summarize_at(data: &[u8], depth: usize, budget: &mut u64) -> Summary {
    let mut s = Summary::default();
    let mut zip = match zip::ZipArchive::new(Cursor::new(data)) {
        // An archive that starts with a local header at byte 0 but opens
        // at a later offset is truncated: what opened is a stored archive
        // nested in it, whose identity is not this file's.
        Ok(z) if z.offset() > 0 && data.starts_with(b"PK\x03\x04") => {
            let e = JavaError::NotZip("truncated: its central directory is missing".into());
            s.problems.push(e.to_string());
            return s;
        }
        Ok(z) => {
            s.opened = true;
            z
        }
        Err(e) => {
            s.problems
                .push(JavaError::NotZip(e.to_string()).to_string());
            return s;
        }
    };
    let problem = |s: &mut Summary, e: JavaError| {
        if s.problems.len() < MAX_PROBLEMS {
            s.problems.push(e.to_string());
        }
    };
    let names: Vec<(usize, String)> = (0..zip.len())
        .filter_map(|i| Some((i, zip.name_for_index(i)?.ok()?.into_owned())))
        .collect();
    for (i, name) in names {
        let kind = if is_pom_properties(&name) {
            Kind::Pom
        } else if name == "META-INF/MANIFEST.MF" {
            Kind::Manifest
        } else if is_archive(&name) {
            Kind::Nested
        } else {
            continue;
        };
        let limit = match kind {
            Kind::Nested if depth + 1 >= MAX_DEPTH => {
                problem(
                    &mut s,
                    entry_err(&name, format!("nested deeper than {MAX_DEPTH}: not read")),
                );
                continue;
            }
            Kind::Nested => MAX_NESTED_SIZE.min(*budget),
            _ => MAX_TEXT_SIZE,
        };
        let bytes = match read_entry(&mut zip, i, limit) {
            Ok(b) => b,
            Err(reason) => {
                problem(&mut s, entry_err(&name, reason));
                continue;
            }
        };
        match kind {
            Kind::Pom => match parse_pom_properties(&String::from_utf8_lossy(&bytes)) {
                Some(c) => s.poms.push(c),
                None => problem(
                    &mut s,
                    entry_err(&name, "no valid groupId, artifactId and version".into()),
                ),
            },
            Kind::Manifest => s.manifest = parse_manifest(&String::from_utf8_lossy(&bytes)),
            Kind::Nested => {
                *budget = budget.saturating_sub(bytes.len() as u64);
                s.nested
                    .push((name, summarize_at(&bytes, depth + 1, budget)));
            }
        }
    }
    s
}

enum Kind {
    Pom,
    Manifest,
    Nested,
}

fn entry_err(entry: &str, reason: String) -> JavaError {
    JavaError::Entry {
        entry: excerpt(entry),
        reason,
    }
}

/// The entry's content, at most `limit` bytes (a larger entry is refused,
/// whatever its header claims: sizes in zip headers are not trusted).
fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    i: usize,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let f = zip.by_index(i).map_err(|e| e.to_string())?;
    if f.size() > limit {
        return Err(format!("{} bytes, over the {limit}-byte limit", f.size()));
    }
    let mut buf = Vec::with_capacity(f.size() as usize);
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > limit {
        return Err(format!("over the {limit}-byte limit"));
    }
    Ok(buf)
}

/// `META-INF/maven/GROUP/ARTIFACT/pom.properties`, exactly that depth:
/// test resources elsewhere are not the archive's identity.
fn is_pom_properties(name: &str) -> bool {
    name.strip_prefix("META-INF/maven/")
        .and_then(|r| r.strip_suffix("/pom.properties"))
        .is_some_and(|ga| {
            ga.split_once('/')
                .is_some_and(|(g, a)| !g.is_empty() && !a.is_empty() && !a.contains('/'))
        })
}

/// Java properties, the subset Maven writes: `key=value` lines, `#`
/// comments.
fn parse_pom_properties(text: &str) -> Option<Coords> {
    let mut props = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with(['#', '!']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(['=', ':']) {
            props.entry(k.trim()).or_insert(v.trim());
        }
    }
    let c = Coords {
        group: props.get("groupId")?.to_string(),
        artifact: props.get("artifactId")?.to_string(),
        version: props.get("version")?.to_string(),
    };
    valid_coords(&c).then_some(c)
}

fn valid_coords(c: &Coords) -> bool {
    let ok = |s: &str, slash: bool| {
        !s.is_empty()
            && s.len() <= MAX_FIELD
            && s.chars()
                .all(|ch| ch.is_ascii_graphic() && (slash || ch != '/'))
    };
    ok(&c.group, false) && ok(&c.artifact, false) && ok(&c.version, true)
}

/// The main section of a manifest (up to the first blank line), with
/// 72-column continuation lines joined; only [`MANIFEST_FIELDS`] are kept.
fn parse_manifest(text: &str) -> BTreeMap<String, String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(cont), Some(last)) => last.push_str(cont),
            _ => lines.push(line.to_owned()),
        }
    }
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, v)| MANIFEST_FIELDS.contains(&k.trim()) && !v.trim().is_empty())
        .map(|(k, v)| (k.trim().to_owned(), excerpt(v.trim())))
        .collect()
}

/// Identity from the file name and manifest, when there is a version.
/// `commons-collections-3.2.2.jar` → artifact `commons-collections`,
/// version `3.2.2`; a file name without a version takes the manifest's.
/// The group is the `Bundle-SymbolicName` when that is `GROUP.ARTIFACT`
/// (`org.yaml.snakeyaml`), else the artifact itself: Maven 1's convention,
/// which the old artifacts most likely to lack pom.properties follow
/// (commons-collections, commons-io, log4j).
fn guess(file_name: &str, manifest: &BTreeMap<String, String>) -> Option<Coords> {
    let stem = ARCHIVE_EXTS
        .iter()
        .find_map(|ext| {
            let cut = file_name.len().checked_sub(ext.len())?;
            file_name
                .get(cut..)?
                .eq_ignore_ascii_case(ext)
                .then(|| &file_name[..cut])
        })
        .unwrap_or(file_name);
    let split = stem
        .char_indices()
        .find(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| (&stem[..i], &stem[i + 1..]));
    let (artifact, version) = match split {
        Some((a, v)) => (a.to_owned(), v.to_owned()),
        None => {
            let v = [
                "Implementation-Version",
                "Bundle-Version",
                "Specification-Version",
            ]
            .iter()
            .find_map(|k| manifest.get(*k))?;
            (stem.to_owned(), v.clone())
        }
    };
    let group = manifest
        .get("Bundle-SymbolicName")
        // `org.foo.bar;singleton:=true`
        .map(|b| b.split(';').next().unwrap_or_default().trim())
        .and_then(|b| b.strip_suffix(artifact.as_str())?.strip_suffix('.'))
        .filter(|g| !g.is_empty())
        .map_or_else(|| artifact.clone(), str::to_owned);
    let c = Coords {
        group,
        artifact,
        version,
    };
    valid_coords(&c).then_some(c)
}

/// Real jar path → coordinates that Debian's maven-repo symlinks give it.
fn debian_maven_repo(files: &FileTree) -> BTreeMap<String, BTreeSet<Coords>> {
    let mut ids: BTreeMap<String, BTreeSet<Coords>> = BTreeMap::new();
    for link in files
        .symlinks
        .range(DEBIAN_MAVEN_REPO.to_owned()..)
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(DEBIAN_MAVEN_REPO))
    {
        let Some(c) = maven_repo_coords(&link[DEBIAN_MAVEN_REPO.len()..]) else {
            continue;
        };
        if let Some(target) = files.resolve(link)
            && files.files.contains_key(&target)
        {
            ids.entry(target).or_default().insert(c);
        }
    }
    ids
}

/// `org/mongodb/bson/3.6.3/bson-3.6.3.jar` → `org.mongodb`, `bson`,
/// `3.6.3`; `None` for Debian's alias versions (`debian`, `3.x`).
fn maven_repo_coords(rel: &str) -> Option<Coords> {
    let parts: Vec<&str> = rel.split('/').collect();
    let [group @ .., artifact, version, file] = parts.as_slice() else {
        return None;
    };
    if group.is_empty()
        || *version == "debian"
        || version.ends_with(".x")
        || !file.ends_with(".jar")
        || !file.starts_with(&format!("{artifact}-{version}"))
    {
        return None;
    }
    let c = Coords {
        group: group.join("."),
        artifact: (*artifact).to_owned(),
        version: (*version).to_owned(),
    };
    valid_coords(&c).then_some(c)
}

#[cfg(test)]
mod tests;
