//! Vulnerability knowledge for the Inspector emulator, learnt from real
//! ScanSbom answers rather than made up.
//!
//! Every vulnerability of a loaded answer is indexed by the identity of the
//! component it affects there: purl type, name (with namespace for language
//! ecosystems, where it is part of the identity; without it for OS packages,
//! where it is only the vendor), decoded version and `distro` qualifier. A
//! request component with the same identity gets the same vulnerability.
//! Because the key is the component's own purl name, Debian advisories that
//! Inspector ties to source packages (`glibc`) do not reach binary packages
//! (`libc6`), as with the real service.
//!
//! The same answers tell which packages Inspector has rules for at all, which
//! decides between "Component scanned: no vulnerabilities found." and
//! "Component skipped: no rules found." for components without findings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;

/// Overrides the folder of `*.json.scan` answers the emulator learns from.
pub const FIXTURES_ENV: &str = "SCANGATE_EMULATOR_FIXTURES";

/// Prefix of every property Inspector adds to an answer.
pub const SCANNER_PROP: &str = "amazon:inspector:sbom_scanner:";
/// Prefix of the properties inspector-sbomgen writes into an SBOM.
pub const GENERATOR_PROP: &str = "amazon:inspector:sbom_generator:";
pub const FIXED_VERSION_PROP: &str = "amazon:inspector:sbom_scanner:fixed_version:";
pub const INFO_SCANNED: &str = "Component scanned: no vulnerabilities found.";
pub const INFO_NO_RULES: &str = "Component skipped: no rules found.";
pub const WARN_INVALID_PURL: &str = "Component skipped: invalid purl.";
pub const WARN_NO_PURL: &str = "Component skipped: no purl provided.";

/// Purl types whose namespace is the distribution vendor, matched through
/// the `distro` qualifier instead.
const OS_PURL_TYPES: [&str; 3] = ["deb", "rpm", "apk"];

/// Where the answers are when nothing else is said: the shared folder
/// (`SCANGATE_SHARED_DIR`, else `shared/` beside the repository checkout),
/// like every other fixture.
pub fn default_fixtures_dir() -> PathBuf {
    crate::corpus::inspector_fixtures_dir().join("scans")
}

/// The answer for the Dockerfile-checks SBOM, kept beside the `scans/` folder;
/// it adds Ubuntu 14.04 packages and Dockerfile findings.
const DOCKERFILE_ANSWER: &str = "dockerfile-checks-inspector-scan-cdx.json";

#[derive(Debug, thiserror::Error)]
pub enum VulnDbError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a CycloneDX ScanSbom answer: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("vulnerability for {purl}: {reason}")]
    Vulnerability { purl: String, reason: String },
}

// ---------------------------------------------------------------------------
// purls

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurlError {
    #[error("missing the 'pkg:' scheme")]
    Scheme,
    #[error("no type")]
    Type,
    #[error("no name")]
    Name,
    #[error("bad percent-encoding")]
    Encoding,
}

/// A parsed package URL; parts are percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    pub purl_type: String,
    pub namespace: Vec<String>,
    pub name: String,
    pub version: Option<String>,
    pub qualifiers: Vec<(String, String)>,
    raw_qualifiers: Option<String>,
    raw_subpath: Option<String>,
}

/// What Inspector leaves unescaped when it writes a purl back: compare
/// `37~deb12u1` in an SBOM with `37%7Edeb12u1` in its answer.
const SERVICE_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// Percent-encode one purl part the way Inspector does in its answers.
pub fn service_encode(s: &str) -> String {
    utf8_percent_encode(s, SERVICE_ESCAPE).to_string()
}

fn decode(s: &str) -> Result<String, PurlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| PurlError::Encoding)
}

impl Purl {
    /// Parse as the purl specification says: subpath, qualifiers, type,
    /// version, then name and namespace.
    pub fn parse(s: &str) -> Result<Purl, PurlError> {
        let (scheme, rest) = s.split_once(':').ok_or(PurlError::Scheme)?;
        if !scheme.eq_ignore_ascii_case("pkg") {
            return Err(PurlError::Scheme);
        }
        let rest = rest.trim_start_matches('/');
        let (rest, raw_subpath) = match rest.split_once('#') {
            Some((r, sub)) => (r, Some(sub.to_string())),
            None => (rest, None),
        };
        let (rest, raw_qualifiers) = match rest.rsplit_once('?') {
            Some((r, q)) => (r, Some(q.to_string())),
            None => (rest, None),
        };
        let mut qualifiers = Vec::new();
        for pair in raw_qualifiers.as_deref().unwrap_or("").split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && !v.is_empty()
            {
                qualifiers.push((k.to_ascii_lowercase(), decode(v)?));
            }
        }
        let (purl_type, rest) = rest.split_once('/').ok_or(PurlError::Type)?;
        if purl_type.is_empty() {
            return Err(PurlError::Type);
        }
        let rest = rest.trim_end_matches('/');
        let (rest, version) = match rest.rsplit_once('@') {
            Some((r, v)) => (r, Some(decode(v)?).filter(|v| !v.is_empty())),
            None => (rest, None),
        };
        let (namespace, name) = match rest.rsplit_once('/') {
            Some((ns, name)) => (ns, name),
            None => ("", rest),
        };
        let name = decode(name)?;
        if name.is_empty() {
            return Err(PurlError::Name);
        }
        let namespace = namespace
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Purl {
            purl_type: purl_type.to_ascii_lowercase(),
            namespace,
            name,
            version,
            qualifiers,
            raw_qualifiers,
            raw_subpath,
        })
    }

    pub fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// deb, rpm and apk: packages of the operating system.
    pub fn is_os_package(&self) -> bool {
        OS_PURL_TYPES.contains(&self.purl_type.as_str())
    }

    /// The purl as Inspector writes it in its answer: name, namespace and
    /// version re-encoded, qualifiers and subpath as sent.
    pub fn to_service_string(&self) -> String {
        let mut out = format!("pkg:{}/", self.purl_type);
        for segment in &self.namespace {
            out.push_str(&service_encode(segment));
            out.push('/');
        }
        out.push_str(&service_encode(&self.name));
        if let Some(v) = &self.version {
            out.push('@');
            out.push_str(&service_encode(v));
        }
        if let Some(q) = &self.raw_qualifiers {
            out.push('?');
            out.push_str(q);
        }
        if let Some(s) = &self.raw_subpath {
            out.push('#');
            out.push_str(s);
        }
        out
    }

    /// The component name Inspector answers with: the encoded purl name,
    /// prefixed by the namespace for language packages (`%40colors/colors`).
    pub fn service_name(&self) -> String {
        let name = service_encode(&self.name);
        if self.is_os_package() || self.namespace.is_empty() {
            return name;
        }
        let mut out: Vec<String> = self.namespace.iter().map(|s| service_encode(s)).collect();
        out.push(name);
        out.join("/")
    }

    pub fn service_version(&self) -> Option<String> {
        self.version.as_deref().map(service_encode)
    }
}

// ---------------------------------------------------------------------------
// severity

/// Inspector's summary buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Other,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Other => "other",
        }
    }

    /// Only the four named buckets; `none`, `info`, `unknown` are not one.
    fn bucket(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" => Some(Severity::High),
            "medium" => Some(Severity::Medium),
            "low" => Some(Severity::Low),
            _ => None,
        }
    }
}

fn rating_source(rating: &Value) -> &str {
    rating
        .pointer("/source/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The severity rating that decides a vulnerability's bucket: NVD's when it
/// has one of the four, else a distribution's (`Ubuntu Linux`), else Amazon
/// Inspector's own. EPSS ratings never decide.
pub fn deciding_rating(vulnerability: &Value) -> Option<(&Value, Severity)> {
    let ratings = vulnerability.get("ratings").and_then(Value::as_array)?;
    let pick = |accept: &dyn Fn(&str) -> bool| {
        ratings.iter().find_map(|r| {
            if !accept(rating_source(r)) {
                return None;
            }
            let sev = Severity::bucket(r.get("severity").and_then(Value::as_str)?)?;
            Some((r, sev))
        })
    };
    pick(&|s| s == "NVD")
        .or_else(|| pick(&|s| !matches!(s, "NVD" | "EPSS" | "AMAZON_INSPECTOR")))
        .or_else(|| pick(&|s| s == "AMAZON_INSPECTOR"))
}

/// The bucket Inspector's summary counts a vulnerability in. Checked against
/// every real answer's `metadata.properties` counts in the tests; NVD before
/// the distribution is what the Dockerfile-checks answer shows (NVD medium
/// with Ubuntu high counts as medium), so it is not "the highest rating".
pub fn severity_of(vulnerability: &Value) -> Severity {
    deciding_rating(vulnerability).map_or(Severity::Other, |(_, s)| s)
}

/// Distinct vulnerability ids per bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub other: usize,
}

impl SeverityCounts {
    pub fn of(vulnerabilities: &[Value]) -> SeverityCounts {
        let mut seen = HashSet::new();
        let mut counts = SeverityCounts::default();
        for v in vulnerabilities {
            let id = v.get("id").and_then(Value::as_str).unwrap_or("");
            if !seen.insert(id) {
                continue;
            }
            *counts.get_mut(severity_of(v)) += 1;
        }
        counts
    }

    pub fn get(&self, s: Severity) -> usize {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Other => self.other,
        }
    }

    fn get_mut(&mut self, s: Severity) -> &mut usize {
        match s {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Other => &mut self.other,
        }
    }

    /// The counts an answer states in `metadata.properties`.
    pub fn from_answer_metadata(sbom: &Value) -> Option<SeverityCounts> {
        let props = sbom.pointer("/metadata/properties")?.as_array()?;
        let read = |bucket: &str| -> Option<usize> {
            let name = format!("{SCANNER_PROP}{bucket}_vulnerabilities");
            props
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))?
                .get("value")?
                .as_str()?
                .parse()
                .ok()
        };
        Some(SeverityCounts {
            critical: read("critical")?,
            high: read("high")?,
            medium: read("medium")?,
            low: read("low")?,
            other: read("other")?,
        })
    }
}

// ---------------------------------------------------------------------------
// the index

/// Identity of a package for matching; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageKey {
    pub purl_type: String,
    pub namespace: String,
    pub name: String,
    pub distro: Option<String>,
}

impl PackageKey {
    pub fn of(purl: &Purl) -> PackageKey {
        let namespace = if purl.is_os_package() {
            String::new()
        } else {
            purl.namespace.join("/")
        };
        // PyPI names compare after PEP 503 normalisation (`PyYAML` is `pyyaml`).
        let name = if purl.purl_type == "pypi" {
            purl.name.to_ascii_lowercase().replace(['_', '.'], "-")
        } else {
            purl.name.clone()
        };
        PackageKey {
            purl_type: purl.purl_type.clone(),
            namespace,
            name,
            distro: purl.qualifier("distro").map(str::to_string),
        }
    }
}

/// One vulnerability of one package version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub id: String,
    /// Index of the vulnerability's text in [`VulnDb::template`].
    pub template: usize,
    pub fixed_version: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Affected {
    /// The purl as the answer wrote it, for listing.
    purl: String,
    hits: Vec<Hit>,
}

/// How much a [`VulnDb`] knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VulnDbStats {
    pub vulnerabilities: usize,
    pub vulnerable_package_versions: usize,
    pub packages_with_rules: usize,
    pub packages_without_rules: usize,
    pub dockerfile_findings: usize,
    pub os_findings: usize,
    pub sources: Vec<String>,
}

#[derive(Debug, Default)]
pub struct VulnDb {
    templates: Vec<Value>,
    templates_by_id: HashMap<String, Vec<usize>>,
    affected: HashMap<(PackageKey, String), Affected>,
    has_rules: HashMap<PackageKey, bool>,
    dockerfile_findings: HashMap<String, usize>,
    os_end_of_life: HashMap<(String, String), String>,
    /// Findings about the operating system itself (`IN-DISCONTINUED-001`).
    os_findings: HashMap<(String, String), Vec<Hit>>,
    sources: Vec<PathBuf>,
}

fn props_of(component: &Value) -> impl Iterator<Item = (&str, &str)> {
    component
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p.get("name")?.as_str()?, p.get("value")?.as_str()?)))
}

fn prop<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    props_of(component)
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Components in document order, nested ones right after their parent.
fn walk<'a>(components: &'a [Value], out: &mut Vec<&'a Value>) {
    for c in components {
        out.push(c);
        if let Some(nested) = c.get("components").and_then(Value::as_array) {
            walk(nested, out);
        }
    }
}

/// A vulnerability without what ties it to one answer: its bom-ref, affects
/// and per-component fixed versions.
fn strip_vulnerability(v: &Value) -> Value {
    let mut t = v.clone();
    if let Some(obj) = t.as_object_mut() {
        obj.remove("bom-ref");
        obj.remove("affects");
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_array_mut) {
            props.retain(|p| {
                !p.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(FIXED_VERSION_PROP))
            });
            if props.is_empty() {
                obj.remove("properties");
            }
        }
    }
    t
}

impl VulnDb {
    /// Knows nothing: every component is "skipped: no rules found".
    pub fn empty() -> VulnDb {
        VulnDb::default()
    }

    /// Every `*.json.scan` in `dir`, in name order (earlier files win when two
    /// answers disagree about the same package).
    pub fn load_dir(dir: &Path) -> Result<VulnDb, VulnDbError> {
        let io = |source| VulnDbError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.to_string_lossy().ends_with(".json.scan") {
                files.push(path);
            }
        }
        files.sort();
        let mut db = VulnDb::empty();
        for f in files {
            db.add_file(&f)?;
        }
        Ok(db)
    }

    /// The folder named by `SCANGATE_EMULATOR_FIXTURES`, else
    /// [`default_fixtures_dir`] plus the Dockerfile-checks answer beside it.
    /// A missing default folder gives an empty database (the emulator still
    /// works, without findings); a missing folder that was asked for is an
    /// error.
    pub fn load_default() -> Result<VulnDb, VulnDbError> {
        if let Some(dir) = std::env::var_os(FIXTURES_ENV) {
            return VulnDb::load_dir(Path::new(&dir));
        }
        let dir = default_fixtures_dir();
        if !dir.is_dir() {
            tracing::warn!(dir = %dir.display(), "no ScanSbom answers found: the Inspector emulator will report no vulnerabilities");
            return Ok(VulnDb::empty());
        }
        let mut db = VulnDb::load_dir(&dir)?;
        if let Some(parent) = dir.parent() {
            let extra = parent.join(DOCKERFILE_ANSWER);
            if extra.is_file() {
                db.add_file(&extra)?;
            }
        }
        Ok(db)
    }

    /// [`VulnDb::load_default`] once per process and folder: parsing the
    /// answers takes a moment, and every emulator started by a test needs them.
    pub fn shared_default() -> Result<Arc<VulnDb>, VulnDbError> {
        static CACHE: OnceLock<Mutex<HashMap<Option<std::ffi::OsString>, Arc<VulnDb>>>> =
            OnceLock::new();
        let key = std::env::var_os(FIXTURES_ENV);
        let cache = CACHE.get_or_init(Mutex::default);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = cache.get(&key) {
            return Ok(db.clone());
        }
        let db = Arc::new(VulnDb::load_default()?);
        cache.insert(key, db.clone());
        Ok(db)
    }

    /// Learn from one ScanSbom answer file (`{"sbom": {...}}` or the bare
    /// CycloneDX document).
    pub fn add_file(&mut self, path: &Path) -> Result<(), VulnDbError> {
        let text = std::fs::read(path).map_err(|source| VulnDbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let answer: Value = serde_json::from_slice(&text).map_err(|source| VulnDbError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        self.add_answer(&answer)
            .map_err(|reason| VulnDbError::Format {
                path: path.to_path_buf(),
                reason,
            })?;
        self.sources.push(path.to_path_buf());
        Ok(())
    }

    /// Learn from one ScanSbom answer already parsed.
    pub fn add_answer(&mut self, answer: &Value) -> Result<(), String> {
        let sbom = answer.get("sbom").unwrap_or(answer);
        let components = sbom
            .get("components")
            .and_then(Value::as_array)
            .ok_or("no components array")?;
        let mut all = Vec::new();
        walk(components, &mut all);
        let by_ref: HashMap<&str, &Value> = all
            .iter()
            .filter_map(|c| Some((c.get("bom-ref")?.as_str()?, *c)))
            .collect();
        let vulnerabilities = sbom
            .get("vulnerabilities")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let affected_refs: HashSet<&str> = vulnerabilities
            .iter()
            .flat_map(|v| {
                v.get("affects")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter_map(|a| a.get("ref")?.as_str())
            .collect();

        for c in &all {
            if c.get("type").and_then(Value::as_str) == Some("operating-system")
                && let Some(eol) = prop(c, &format!("{SCANNER_PROP}end_of_life"))
            {
                let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                let version = c.get("version").and_then(Value::as_str).unwrap_or("");
                self.os_end_of_life
                    .entry((name.to_string(), version.to_string()))
                    .or_insert_with(|| eol.to_string());
            }
            let Some(purl) = c
                .get("purl")
                .and_then(Value::as_str)
                .and_then(|p| Purl::parse(p).ok())
            else {
                continue;
            };
            let key = PackageKey::of(&purl);
            let bom_ref = c.get("bom-ref").and_then(Value::as_str).unwrap_or("");
            let status = prop(c, &format!("{SCANNER_PROP}info"))
                .or_else(|| prop(c, &format!("{SCANNER_PROP}warning")));
            if affected_refs.contains(bom_ref) || status == Some(INFO_SCANNED) {
                self.has_rules.insert(key, true);
            } else if status == Some(INFO_NO_RULES) {
                self.has_rules.entry(key).or_insert(false);
            }
        }

        for v in vulnerabilities {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .ok_or("a vulnerability without id")?;
            let template = self.intern(id, strip_vulnerability(v));
            for a in v
                .get("affects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(bom_ref) = a.get("ref").and_then(Value::as_str) else {
                    continue;
                };
                let Some(c) = by_ref.get(bom_ref) else {
                    continue;
                };
                match c.get("type").and_then(Value::as_str) {
                    Some("file") => {
                        self.dockerfile_findings
                            .entry(id.to_string())
                            .or_insert(template);
                        continue;
                    }
                    Some("operating-system") if c.get("purl").is_none() => {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                        let version = c.get("version").and_then(Value::as_str).unwrap_or("");
                        let hits = self
                            .os_findings
                            .entry((name.to_string(), version.to_string()))
                            .or_default();
                        if !hits.iter().any(|h| h.id == id) {
                            hits.push(Hit {
                                id: id.to_string(),
                                template,
                                fixed_version: None,
                            });
                        }
                        continue;
                    }
                    _ => {}
                }
                let Some(purl_text) = c.get("purl").and_then(Value::as_str) else {
                    continue;
                };
                let Ok(purl) = Purl::parse(purl_text) else {
                    continue;
                };
                let fixed_version =
                    prop(v, &format!("{FIXED_VERSION_PROP}{bom_ref}")).map(str::to_string);
                self.insert_hit(&purl, purl_text, id, template, fixed_version);
            }
        }
        Ok(())
    }

    /// Teach one more vulnerability: `vulnerability` is a CycloneDX
    /// vulnerability object with at least an `id` (its `bom-ref`, `affects`
    /// and fixed-version properties are ignored); it will affect components
    /// whose purl has the same identity as `purl` (which needs a version).
    pub fn add_vulnerability(
        &mut self,
        purl: &str,
        vulnerability: &Value,
        fixed_version: Option<&str>,
    ) -> Result<(), VulnDbError> {
        let err = |reason: String| VulnDbError::Vulnerability {
            purl: purl.to_string(),
            reason,
        };
        let parsed = Purl::parse(purl).map_err(|e| err(e.to_string()))?;
        if parsed.version.is_none() {
            return Err(err("the purl has no version".into()));
        }
        let id = vulnerability
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| err("the vulnerability has no id".into()))?;
        let template = self.intern(id, strip_vulnerability(vulnerability));
        self.insert_hit(
            &parsed,
            &parsed.to_service_string(),
            id,
            template,
            fixed_version.map(str::to_string),
        );
        Ok(())
    }

    fn intern(&mut self, id: &str, template: Value) -> usize {
        let same = self.templates_by_id.entry(id.to_string()).or_default();
        if let Some(&i) = same.iter().find(|&&i| self.templates[i] == template) {
            return i;
        }
        self.templates.push(template);
        same.push(self.templates.len() - 1);
        self.templates.len() - 1
    }

    fn insert_hit(
        &mut self,
        purl: &Purl,
        purl_text: &str,
        id: &str,
        template: usize,
        fixed_version: Option<String>,
    ) {
        let key = PackageKey::of(purl);
        self.has_rules.insert(key.clone(), true);
        let version = purl.version.clone().unwrap_or_default();
        let entry = self
            .affected
            .entry((key, version))
            .or_insert_with(|| Affected {
                purl: purl_text.to_string(),
                hits: Vec::new(),
            });
        // The same package in several answers: the first answer's text stays.
        if entry.hits.iter().any(|h| h.id == id) {
            return;
        }
        entry.hits.push(Hit {
            id: id.to_string(),
            template,
            fixed_version,
        });
    }

    /// The vulnerabilities of one package version, in the order learnt.
    pub fn lookup(&self, purl: &Purl) -> &[Hit] {
        let version = purl.version.clone().unwrap_or_default();
        self.affected
            .get(&(PackageKey::of(purl), version))
            .map_or(&[], |a| a.hits.as_slice())
    }

    /// Whether Inspector has rules for this package at all (any version).
    pub fn has_rules(&self, purl: &Purl) -> bool {
        self.has_rules
            .get(&PackageKey::of(purl))
            .copied()
            .unwrap_or(false)
    }

    /// The vulnerability text behind [`Hit::template`].
    pub fn template(&self, index: usize) -> &Value {
        &self.templates[index]
    }

    /// A Dockerfile finding (`IN-DOCKER-…`) by id.
    pub fn dockerfile_finding(&self, id: &str) -> Option<&Value> {
        self.dockerfile_findings
            .get(id)
            .map(|&i| &self.templates[i])
    }

    /// End-of-life date of an operating system (`Ubuntu`, `14.04`), if known.
    pub fn os_end_of_life(&self, name: &str, version: &str) -> Option<&str> {
        self.os_end_of_life
            .get(&(name.to_string(), version.to_string()))
            .map(String::as_str)
    }

    /// Findings about an operating system itself (`Ubuntu`, `14.04`).
    pub fn os_findings(&self, name: &str, version: &str) -> &[Hit] {
        self.os_findings
            .get(&(name.to_string(), version.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// Purls (as the answers wrote them) that have at least one vulnerability,
    /// sorted: what to put in an image or SBOM to get findings.
    pub fn vulnerable_purls(&self) -> Vec<String> {
        let mut purls: Vec<String> = self.affected.values().map(|a| a.purl.clone()).collect();
        purls.sort();
        purls
    }

    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    pub fn stats(&self) -> VulnDbStats {
        VulnDbStats {
            vulnerabilities: self.templates_by_id.len(),
            vulnerable_package_versions: self.affected.len(),
            packages_with_rules: self.has_rules.values().filter(|&&r| r).count(),
            packages_without_rules: self.has_rules.values().filter(|&&r| !r).count(),
            dockerfile_findings: self.dockerfile_findings.len(),
            os_findings: self.os_findings.values().map(Vec::len).sum(),
            sources: self
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_re_encoded_like_the_service() {
        let p = Purl::parse("pkg:deb/debian/usrmerge@37~deb12u1?arch=all&distro=bookworm&epoch=0")
            .unwrap();
        assert_eq!(p.version.as_deref(), Some("37~deb12u1"));
        assert_eq!(p.qualifier("distro"), Some("bookworm"));
        assert_eq!(
            p.to_service_string(),
            "pkg:deb/debian/usrmerge@37%7Edeb12u1?arch=all&distro=bookworm&epoch=0"
        );
        let p = Purl::parse("pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=bookworm")
            .unwrap();
        assert_eq!(p.name, "libstdc++6");
        assert_eq!(p.service_name(), "libstdc%2B%2B6");
        let p = Purl::parse("pkg:npm/%40colors/colors@1.5.0").unwrap();
        assert_eq!(p.namespace, vec!["@colors".to_string()]);
        assert_eq!(p.service_name(), "%40colors/colors");
        assert_eq!(p.to_service_string(), "pkg:npm/%40colors/colors@1.5.0");
        let p = Purl::parse("pkg:golang/github.com/moby/sys/user@v0.1.0").unwrap();
        assert_eq!(p.service_name(), "github.com/moby/sys/user");
        assert_eq!(Purl::parse("pkg:npm/"), Err(PurlError::Name));
        assert_eq!(Purl::parse("npm/left-pad@1"), Err(PurlError::Scheme));
    }

    #[test]
    fn nvd_decides_before_the_distribution() {
        let v = serde_json::json!({"id": "CVE-1", "ratings": [
            {"severity": "high", "source": {"name": "Ubuntu Linux"}},
            {"severity": "none", "source": {"name": "EPSS"}},
            {"severity": "medium", "source": {"name": "NVD"}},
        ]});
        assert_eq!(severity_of(&v), Severity::Medium);
        let v = serde_json::json!({"id": "X", "ratings": [{"severity": "unknown", "source": {"name": "AMAZON_INSPECTOR"}}]});
        assert_eq!(severity_of(&v), Severity::Other);
        assert_eq!(
            severity_of(&serde_json::json!({"id": "Y"})),
            Severity::Other
        );
    }
}
