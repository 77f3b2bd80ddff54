//! Java archives (`.jar`, `.war`, `.ear`, Jenkins' `.jpi`/`.hpi`) and the
//! archives nested in them (Spring Boot's `BOOT-INF/lib`, a war's
//! `WEB-INF/lib`, an ear's `lib/`, or anywhere else).
//!
//! Identity, in order of trust. Every package states how it was found in
//! its SBOM component (`scangate:evidence`, `scangate:confidence`).
//! 1. `pom.properties`, written by Maven when it builds the artifact:
//!    `high` at `META-INF/maven/GROUP/ARTIFACT/` agreeing with its path,
//!    `medium` elsewhere under `META-INF/`. Every one found is a package,
//!    including those of classes shaded into the archive (httpclient-osgi
//!    carries six, a Debian maven jar carries slf4j-simple's): that code is
//!    in the image.
//! 2. `META-INF/maven/GROUP/ARTIFACT/pom.xml` with no pom.properties beside
//!    it (Gradle and Bazel builds that embed only the pom, shaded jars):
//!    group and artifact of its path, which the build tool wrote from the
//!    effective model, and the pom's version (inherited from `<parent>`,
//!    placeholders resolved only from the pom itself, see [`pom`]). `high`
//!    when the pom's own group and artifact agree with the path, `medium`
//!    otherwise; no resolvable version, no package. One package per pom,
//!    so a shaded jar yields each artifact it embeds.
//!
//!    An archive that has any of these names no other package: peers that
//!    also add one from the file name or manifest report `maven3-core`
//!    beside the real `maven-core`, a false positive for every renamed jar.
//! 3. For an archive without one, Debian's `/usr/share/maven-repo` symlinks
//!    (`GROUP/PATH/ARTIFACT/VERSION/ARTIFACT-VERSION.jar` → the jar): the
//!    packager's own statement of the coordinates (`high`). The `debian`
//!    and `N.x` alias versions are skipped. An unclaimed jar in Debian's
//!    Java directories is not guessed at: its deb accounts for it (guessing
//!    there is how peers report `com.google.inject.grapher/guice-grapher`).
//! 4. Otherwise (Gradle, sbt, Ant, Bazel builds, Jenkins plugins) the
//!    manifest and the file name, only with a version:
//!    - Jenkins plugins (`Short-Name`, `Plugin-Version`, as maven-hpi-plugin
//!      writes them): artifact and version from those, group `Group-Id`.
//!    - Otherwise the artifact and version of the file name
//!      (`commons-collections-3.2.2.jar`), or the whole stem and the
//!      manifest's `Implementation-Version` / `Bundle-Version`.
//!    - A group only where the archive itself states it: `Group-Id`;
//!      `Implementation-Vendor-Id` when the file name starts with it (sbt
//!      writes the organization there, and sbt-native-packager names jars
//!      `GROUP.ARTIFACT-VERSION.jar`; the prefix is then cut); a
//!      `Bundle-SymbolicName` or `Automatic-Module-Name` that is exactly
//!      `GROUP.ARTIFACT` (`org.yaml.snakeyaml`). These are `medium`.
//!      `Extension-Name` equal to the artifact is the Maven 1 / Ant
//!      convention whose artifacts kept group = artifact in Maven Central
//!      (commons-collections, commons-io, log4j): `low`. Anything else has
//!      no group at all (`pkg:maven/ARTIFACT@VERSION`, `low`): a guessed
//!      group matches another project's advisories, a missing one matches
//!      none and says so.
//!    - Never used: `Implementation-Vendor-Id` alone (Apache's parent pom
//!      sets `org.apache` in every commons jar), `Specification-Version`
//!      (the specification's `major.minor`, not the release),
//!      `Implementation-Title` (a display name, `Apache Commons Lang`).
//!
//! How peers decide: syft reads every pom.properties and pom.xml, and for
//! the rest picks a group from a list of manifest fields and a table of
//! known artifacts; trivy reads pom.properties, then the manifest
//! (`Implementation-Vendor-Id`, `Bundle-SymbolicName`), then looks the
//! jar's SHA-1 or name up in its Maven Central database. We have no such
//! database in the image, so where the archive does not say, we say how
//! sure we are instead of guessing.
//!
//! Hostile archives: see [`archive`] (entry counts, overlapping entries,
//! an inflated-byte budget, cancellation). A rejected archive is skipped
//! with a warning.
//!
//! Large archives: [`Cataloger::reduce`] turns each archive into a small
//! [`Summary`] (the identities its poms state, a few manifest fields, the
//! same for nested archives) as soon as the layer reader has read it, so a
//! 100 MB jar is held only while it is summarised. [`Cataloger::catalog`]
//! accepts either form.

mod archive;
mod pom;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use self::archive::{Archive, MAX_INFLATED, Meter};
use super::{
    Catalog, Cataloger, Confidence, Ecosystem, OsInfo, Package, PackageNote, WarningSink, excerpt,
};
use crate::image::fs::FileTree;

/// Extensions of Java archives (compared case-insensitively).
const ARCHIVE_EXTS: [&str; 5] = [".jar", ".war", ".ear", ".jpi", ".hpi"];
/// What [`Cataloger::reduce`] leaves: this prefix, then the summary as JSON.
/// A zip starts with `PK`, so neither is mistaken for the other.
const SUMMARY_MAGIC: &[u8] = b"scangate-java-summary/2\n";
/// Archives inside archives inside archives (a jar in a war in an ear) is
/// the deepest real layout; deeper is a zip bomb.
const MAX_DEPTH: usize = 3;
/// A nested archive is read into memory to be opened (a stored one is
/// not copied); larger ones are skipped with a warning.
const MAX_NESTED_SIZE: u64 = 128 << 20;
/// pom.properties and MANIFEST.MF are a few hundred bytes, pom.xml a few
/// tens of kilobytes.
const MAX_TEXT_SIZE: u64 = 1 << 20;
/// Identities kept per archive (a shaded jar embeds tens).
const MAX_POMS: usize = 1000;
/// Problems recorded per summary.
const MAX_PROBLEMS: usize = 20;
/// Longest coordinate kept; longer is damage, not data.
const MAX_FIELD: usize = 256;
/// Manifest main-section fields the fallback identity reads.
const MANIFEST_FIELDS: [&str; 10] = [
    "Implementation-Version",
    "Implementation-Vendor-Id",
    "Bundle-SymbolicName",
    "Bundle-Version",
    "Automatic-Module-Name",
    "Extension-Name",
    // Jenkins plugins (maven-hpi-plugin)
    "Short-Name",
    "Plugin-Version",
    "Group-Id",
    "Implementation-Title",
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
    #[error("skipped, {0} entries: more than a jar holds (a zip bomb)")]
    TooManyEntries(u64),
    #[error("skipped, overlapping entries: {0}")]
    Overlapping(String),
    #[error("skipped the rest: over the {0}-byte budget of inflated data for one archive")]
    Budget(u64),
    #[error("{0}")]
    Read(String),
    #[error("{0}")]
    Cancelled(#[from] crate::cancel::Cancelled),
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

/// Maven coordinates. An empty group is an unknown one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Coords {
    pub group: String,
    pub artifact: String,
    pub version: String,
}

/// What named a package (module comment, rules 1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Evidence {
    #[serde(rename = "pom.properties")]
    PomProperties,
    #[serde(rename = "pom.xml")]
    PomXml,
    #[serde(rename = "maven-repo")]
    MavenRepo,
    #[serde(rename = "manifest")]
    Manifest,
    #[serde(rename = "filename")]
    FileName,
}

impl Evidence {
    fn as_str(self) -> &'static str {
        match self {
            Evidence::PomProperties => "pom.properties",
            Evidence::PomXml => "pom.xml",
            Evidence::MavenRepo => "maven-repo",
            Evidence::Manifest => "manifest",
            Evidence::FileName => "filename",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sureness {
    Low,
    Medium,
    High,
}

impl From<Sureness> for Confidence {
    fn from(s: Sureness) -> Confidence {
        match s {
            Sureness::Low => Confidence::Low,
            Sureness::Medium => Confidence::Medium,
            Sureness::High => Confidence::High,
        }
    }
}

/// A package and how it was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub coords: Coords,
    pub evidence: Evidence,
    pub confidence: Sureness,
}

/// What the catalog needs of one archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// From pom.properties and pom.xml files (rules 1 and 2), in entry
    /// order.
    pub poms: Vec<Identity>,
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
            if crate::cancel::is_cancelled() {
                break;
            }
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
            identify(&summary, file_name, 0, &mut found, &mut |ids| {
                if !DEBIAN_JAVA_DIRS.iter().any(|d| path.starts_with(d)) {
                    return Fallback::Guess;
                }
                let repo = debian.get_or_insert_with(|| debian_maven_repo(files));
                if let Some(c) = repo.get(path.as_str()) {
                    ids.extend(c.iter().map(|c| Identity {
                        coords: c.clone(),
                        evidence: Evidence::MavenRepo,
                        confidence: Sureness::High,
                    }));
                }
                Fallback::Done
            });
            for p in summary.all_problems() {
                warn.push(format_args!("/{path}: {p}"));
            }
            for id in found {
                let p = package(&id.coords, path, entry.layer);
                out.notes.push(PackageNote {
                    ecosystem: Ecosystem::Maven,
                    name: p.name.clone(),
                    version: p.version.clone(),
                    evidence: id.evidence.as_str(),
                    confidence: id.confidence.into(),
                });
                out.packages.push(p);
            }
        }
    }
}

/// `GROUP/ARTIFACT`, or `ARTIFACT` alone when the group is unknown.
fn package(c: &Coords, path: &str, layer: usize) -> Package {
    let name = if c.group.is_empty() {
        c.artifact.clone()
    } else {
        format!("{}/{}", c.group, c.artifact)
    };
    Package::language(Ecosystem::Maven, name, c.version.clone(), path, layer)
}

enum Fallback {
    /// Identity settled (possibly to nothing).
    Done,
    /// Use the file name and manifest.
    Guess,
}

/// Packages of `s` (named `file_name`) and of its nested archives. For the
/// top-level archive (`depth` 0), `top` decides what happens when it has no
/// pom.
fn identify(
    s: &Summary,
    file_name: &str,
    depth: usize,
    found: &mut Vec<Identity>,
    top: &mut dyn FnMut(&mut Vec<Identity>) -> Fallback,
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

    fn problem(&mut self, e: JavaError) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(e.to_string());
        }
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
    summarize_within(data, MAX_INFLATED)
}

/// [`summarize`] with `budget` inflated bytes for the archive and every
/// archive nested in it.
fn summarize_within(data: &[u8], budget: u64) -> Summary {
    let mut meter = Meter::new(budget);
    summarize_at(data, 0, &mut meter)
}

/// What an entry is to the cataloger.
enum Kind {
    /// A pom.properties; the `GROUP/ARTIFACT` of its path if it has one.
    PomProperties(Option<(String, String)>),
    /// `META-INF/maven/GROUP/ARTIFACT/pom.xml`.
    PomXml(String, String),
    Manifest,
    Nested,
}

fn kind_of(name: &str) -> Option<Kind> {
    if let Some(ga) = maven_dir(name, "/pom.properties") {
        return Some(Kind::PomProperties(Some(ga)));
    }
    if name.starts_with("META-INF/") && name.ends_with("/pom.properties") {
        return Some(Kind::PomProperties(None));
    }
    if let Some((g, a)) = maven_dir(name, "/pom.xml") {
        return Some(Kind::PomXml(g, a));
    }
    if name == "META-INF/MANIFEST.MF" {
        return Some(Kind::Manifest);
    }
    is_archive(name).then_some(Kind::Nested)
}

fn summarize_at(data: &[u8], depth: usize, meter: &mut Meter) -> Summary {
    let mut s = Summary::default();
    let mut zip = match Archive::open(data) {
        Ok(z) => z,
        Err(e) => {
            s.problem(e);
            return s;
        }
    };
    s.opened = true;
    let entries: Vec<(usize, String, Kind)> = zip
        .names()
        .into_iter()
        .filter_map(|(i, n)| Some((i, n.clone(), kind_of(&n)?)))
        .collect();
    // A pom.xml beside a pom.properties says nothing more: not read.
    let with_properties: BTreeSet<(String, String)> = entries
        .iter()
        .filter_map(|(_, _, k)| match k {
            Kind::PomProperties(Some(ga)) => Some(ga.clone()),
            _ => None,
        })
        .collect();
    for (i, name, kind) in entries {
        if let Err(e) = crate::cancel::checkpoint() {
            s.problem(e.into());
            break;
        }
        if let Kind::PomXml(g, a) = &kind
            && with_properties.contains(&(g.clone(), a.clone()))
        {
            continue;
        }
        let limit = match kind {
            Kind::Nested if depth + 1 >= MAX_DEPTH => {
                let reason = format!("nested deeper than {MAX_DEPTH}: not read");
                s.problem(entry_err(&name, reason));
                continue;
            }
            Kind::Nested => MAX_NESTED_SIZE,
            _ => MAX_TEXT_SIZE,
        };
        let bytes = match zip.read(i, limit, meter) {
            Ok(b) => b,
            Err(e @ (JavaError::Budget(_) | JavaError::Cancelled(_))) => {
                s.problem(e);
                break;
            }
            Err(e) => {
                s.problem(entry_err(&name, e.to_string()));
                continue;
            }
        };
        match kind {
            Kind::Nested => {
                let inner = summarize_at(&bytes, depth + 1, meter);
                s.nested.push((name, inner));
            }
            Kind::Manifest => s.manifest = parse_manifest(&String::from_utf8_lossy(&bytes)),
            Kind::PomProperties(ga) => {
                match pom_properties_identity(&String::from_utf8_lossy(&bytes), ga) {
                    Some(id) => push_pom(&mut s, id),
                    None => s.problem(entry_err(
                        &name,
                        "no valid groupId, artifactId and version".into(),
                    )),
                }
            }
            Kind::PomXml(g, a) => match pom_xml_identity(&String::from_utf8_lossy(&bytes), g, a) {
                Ok(id) => push_pom(&mut s, id),
                Err(reason) => s.problem(entry_err(&name, reason)),
            },
        }
    }
    s
}

fn push_pom(s: &mut Summary, id: Identity) {
    if s.poms.len() < MAX_POMS && !s.poms.iter().any(|p| p.coords == id.coords) {
        s.poms.push(id);
    }
}

fn entry_err(entry: &str, reason: String) -> JavaError {
    JavaError::Entry {
        entry: excerpt(entry),
        reason,
    }
}

/// `GROUP` and `ARTIFACT` of `META-INF/maven/GROUP/ARTIFACT{file}`, exactly
/// that depth.
fn maven_dir(name: &str, file: &str) -> Option<(String, String)> {
    let (g, a) = name
        .strip_prefix("META-INF/maven/")?
        .strip_suffix(file)?
        .split_once('/')?;
    (!g.is_empty() && !a.is_empty() && !a.contains('/')).then(|| (g.to_owned(), a.to_owned()))
}

/// Java properties, the subset Maven writes: `key=value` lines, `#`
/// comments. `high` when found at the path its coordinates give.
fn pom_properties_identity(text: &str, path: Option<(String, String)>) -> Option<Identity> {
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
    if !valid_coords(&c) || c.group.is_empty() {
        return None;
    }
    let at_home = path.is_some_and(|(g, a)| g == c.group && a == c.artifact);
    Some(Identity {
        coords: c,
        evidence: Evidence::PomProperties,
        confidence: if at_home {
            Sureness::High
        } else {
            Sureness::Medium
        },
    })
}

/// Rule 2 of the module comment.
fn pom_xml_identity(text: &str, group: String, artifact: String) -> Result<Identity, String> {
    let pom = pom::parse(text)?;
    let version = pom
        .version
        .ok_or_else(|| "pom.xml: no version without an unresolved placeholder".to_owned())?;
    let agrees =
        pom.group.as_deref() == Some(group.as_str()) && pom.artifact.as_deref() == Some(&artifact);
    let c = Coords {
        group,
        artifact,
        version,
    };
    if !valid_coords(&c) {
        return Err("pom.xml: no valid groupId, artifactId and version".into());
    }
    Ok(Identity {
        coords: c,
        evidence: Evidence::PomXml,
        confidence: if agrees {
            Sureness::High
        } else {
            Sureness::Medium
        },
    })
}

/// Non-empty printable coordinates, bounded in length; the group may be
/// empty (unknown).
fn valid_coords(c: &Coords) -> bool {
    let ok = |s: &str, slash: bool| {
        s.len() <= MAX_FIELD
            && s.chars()
                .all(|ch| ch.is_ascii_graphic() && (slash || ch != '/'))
    };
    ok(&c.group, false)
        && !c.artifact.is_empty()
        && ok(&c.artifact, false)
        && !c.version.is_empty()
        && ok(&c.version, true)
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

/// The file name without its archive extension.
fn stem(file_name: &str) -> &str {
    ARCHIVE_EXTS
        .iter()
        .find_map(|ext| {
            let cut = file_name.len().checked_sub(ext.len())?;
            file_name
                .get(cut..)?
                .eq_ignore_ascii_case(ext)
                .then(|| &file_name[..cut])
        })
        .unwrap_or(file_name)
}

/// `commons-collections-3.2.2` → (`commons-collections`, `3.2.2`): split at
/// the first `-` followed by a digit.
fn split_version(stem: &str) -> Option<(&str, &str)> {
    stem.char_indices()
        .find(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| (&stem[..i], &stem[i + 1..]))
}

/// Rule 4 of the module comment: identity from the manifest and file name,
/// only with a version.
fn guess(file_name: &str, manifest: &BTreeMap<String, String>) -> Option<Identity> {
    let field = |k: &str| manifest.get(k).map(String::as_str);
    let (artifact, version, evidence) = match (field("Short-Name"), field("Plugin-Version")) {
        // `1.0-SNAPSHOT (private-12/01/2023 10:00-jenkins)` for local builds
        (Some(a), Some(v)) => (a, v.split_whitespace().next()?, Evidence::Manifest),
        _ => {
            let stem = stem(file_name);
            match split_version(stem) {
                Some((a, v)) => (a, v, Evidence::FileName),
                None => {
                    let v = field("Implementation-Version").or(field("Bundle-Version"))?;
                    (stem, v, Evidence::Manifest)
                }
            }
        }
    };
    let (group, artifact, confidence) = group_of(artifact, manifest);
    let c = Coords {
        group,
        artifact,
        version: version.to_owned(),
    };
    valid_coords(&c).then_some(Identity {
        coords: c,
        evidence,
        confidence,
    })
}

/// The group the manifest states for `artifact` (module comment, rule 4),
/// with the artifact (an sbt file name loses its group prefix) and how sure
/// that is; an empty group when it states none.
fn group_of(artifact: &str, manifest: &BTreeMap<String, String>) -> (String, String, Sureness) {
    let field = |k: &str| manifest.get(k).map(String::as_str);
    let medium = |g: &str, a: &str| (g.to_owned(), a.to_owned(), Sureness::Medium);
    if let Some(g) = field("Group-Id") {
        return medium(g, artifact);
    }
    if let Some(vendor) = field("Implementation-Vendor-Id")
        && let Some(rest) = artifact
            .strip_prefix(vendor)
            .and_then(|r| r.strip_prefix('.'))
            .filter(|r| !r.is_empty())
    {
        return medium(vendor, rest);
    }
    for key in ["Bundle-SymbolicName", "Automatic-Module-Name"] {
        let named = field(key)
            // `org.foo.bar;singleton:=true`
            .map(|b| b.split(';').next().unwrap_or_default().trim())
            .and_then(|b| b.strip_suffix(artifact)?.strip_suffix('.'))
            .filter(|g| !g.is_empty());
        if let Some(g) = named {
            return medium(g, artifact);
        }
    }
    if field("Extension-Name") == Some(artifact) && !artifact.contains('.') {
        return (artifact.to_owned(), artifact.to_owned(), Sureness::Low);
    }
    (String::new(), artifact.to_owned(), Sureness::Low)
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
