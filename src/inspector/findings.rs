//! Findings from a ScanSbom answer (outputFormat CYCLONE_DX_1_5).
//!
//! The service renumbers bom-refs and re-encodes purls in its answer, so a
//! finding is tied to a component by walking the components the answer
//! itself returns, never by the refs we sent.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

/// Severity buckets as Inspector's summary counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    #[default]
    Other,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL_DESC: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Other => "OTHER",
        }
    }

    /// `unknown`, `none`, `info`, `untriaged` and anything unrecognised are
    /// OTHER, as in Inspector's summary.
    pub fn parse(s: &str) -> Severity {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            _ => Severity::Other,
        }
    }
}

/// One vulnerability affecting one component.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    /// Which rating decided the severity (`AMAZON_INSPECTOR`, `NVD`, or none).
    pub severity_source: Option<String>,
    /// Score, vector and method (`CVSSv31`, …) of that same rating, so the
    /// score shown never comes from a different source than the severity.
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    pub cvss_method: Option<String>,
    pub epss: Option<f64>,
    pub exploit_available: bool,
    /// When an exploit was last seen in public (`exploit_last_seen_in_public`).
    pub exploit_last_seen: Option<String>,
    /// When CISA added it to the Known Exploited Vulnerabilities catalog
    /// (`cisa_kev_date_added` property, e.g. `2022-04-06T00:00:00Z`).
    pub kev_date_added: Option<String>,
    /// The remediation due date CISA set for federal agencies.
    pub kev_date_due: Option<String>,
    /// Name, version and purl (percent-decoded) of the affected component as
    /// returned by the service.
    pub package: String,
    pub version: String,
    pub purl: String,
    pub fixed_version: Option<String>,
    /// Where the component was found: the answer's `path` property (language
    /// packages), else our SBOM's package database path ([`attach_locations`]).
    pub path: Option<String>,
    /// The layer that brought the component (diff id), from our SBOM.
    pub layer: Option<String>,
    pub description: String,
    /// The vulnerability's own page (NVD, a distro tracker, GHSA …).
    pub url: Option<String>,
    /// Advisories and references, deduplicated, in the answer's order.
    pub references: Vec<String>,
    pub cwes: Vec<u32>,
    pub published: Option<String>,
    pub updated: Option<String>,
    /// Every severity rating the answer holds besides EPSS, whether or not
    /// it decided: an OTHER finding shows what little rating exists (an
    /// `AMAZON_INSPECTOR` "unknown", or nothing at all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratings: Vec<SourceRating>,
    /// The EPSS model and date of the score (`model:v2023.03.01,date:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epss_model: Option<String>,
    /// What is installed in the image for the affected component, from our
    /// SBOM ([`attach_locations`]): for a Debian source package Inspector
    /// matched (`glibc`), its binary packages (`libc6`, `libc-bin`) with
    /// their own versions; otherwise the component itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<Installed>,
    /// Set when the affected component is a source package that groups the
    /// binaries in `installed` (its name and version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_package: Option<String>,
}

/// One rating of a vulnerability as the answer gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceRating {
    pub source: String,
    /// As written (`high`, `unknown`, `none`).
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// A package installed in the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// A version as people write it: Inspector writes fixed versions with an
/// explicit epoch (`0:2.36-9+deb12u6`), which dpkg, rpm and every advisory
/// leave out when it is 0. Other epochs stay (`1:2.38.1-5`).
pub fn without_zero_epoch(v: &str) -> String {
    v.strip_prefix("0:").unwrap_or(v).to_owned()
}

const PROP: &str = "amazon:inspector:sbom_scanner:";

/// The severity rule, checked against the summary counts of every real
/// answer in the tests (`severity_rule_reproduces_every_real_summary`): the
/// first rating that names a real severity (critical/high/medium/low), taken
/// in this order: NVD, then a distribution's own rating (e.g. "Ubuntu
/// Linux"), then AMAZON_INSPECTOR. EPSS never decides; a vulnerability with
/// no such rating is OTHER. The real answers show NVD winning over a
/// distro's rating in both directions (NVD medium + Ubuntu high counts as
/// medium); no answer shows a distro rating beside an AMAZON_INSPECTOR one,
/// so that order is this emulator-consistent convention.
pub fn severity_of(vuln: &Value) -> Rating {
    let ratings = vuln["ratings"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let rank = |name: &str| match name {
        "NVD" => 0,
        "EPSS" => 9,
        "AMAZON_INSPECTOR" => 2,
        _ => 1,
    };
    let mut best: Option<(i32, &Value)> = None;
    for r in ratings {
        let name = r["source"]["name"].as_str().unwrap_or("");
        let sev = Severity::parse(r["severity"].as_str().unwrap_or(""));
        let k = rank(name);
        if sev == Severity::Other || k == 9 {
            continue;
        }
        if best.is_none_or(|(bk, _)| k < bk) {
            best = Some((k, r));
        }
    }
    match best {
        Some((_, r)) => Rating {
            severity: Severity::parse(r["severity"].as_str().unwrap_or("")),
            source: r["source"]["name"].as_str().map(str::to_owned),
            score: r["score"].as_f64(),
            vector: r["vector"].as_str().map(str::to_owned),
            method: r["method"].as_str().map(str::to_owned),
        },
        None => Rating::default(),
    }
}

/// The rating that decided a vulnerability's severity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rating {
    pub severity: Severity,
    pub source: Option<String>,
    pub score: Option<f64>,
    pub vector: Option<String>,
    pub method: Option<String>,
}

struct Comp {
    name: String,
    version: String,
    purl: String,
    path: Option<String>,
}

fn index_components(v: &Value, out: &mut HashMap<String, Comp>) {
    if let Some(list) = v["components"].as_array() {
        for c in list {
            if let Some(r) = c["bom-ref"].as_str() {
                out.insert(
                    r.to_owned(),
                    Comp {
                        // The service percent-encodes names and versions
                        // (`libstdc%2B%2B6`, `1%7Edeb12u1`); people read them decoded.
                        name: percent_decode(c["name"].as_str().unwrap_or_default()),
                        version: percent_decode(c["version"].as_str().unwrap_or_default()),
                        purl: percent_decode(c["purl"].as_str().unwrap_or_default()),
                        path: prop(c, &format!("{PROP}path")).map(str::to_owned),
                    },
                );
            }
            index_components(c, out);
        }
    }
}

/// Percent-decodes a purl so that `%2B` from the service and `+` from our
/// SBOM compare equal.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn prop<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["properties"]
        .as_array()?
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["value"].as_str())
}

/// Turns one ScanSbom answer (the `sbom` document) into findings, one per
/// (vulnerability, affected component).
pub fn from_answer(answer: &Value) -> Vec<Finding> {
    let mut comps = HashMap::new();
    index_components(answer, &mut comps);
    let mut out = Vec::new();
    for v in answer["vulnerabilities"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let Some(id) = v["id"].as_str() else { continue };
        let rating = severity_of(v);
        let epss_rating = v["ratings"].as_array().and_then(|rs| {
            rs.iter()
                .find(|r| r["source"]["name"].as_str() == Some("EPSS"))
        });
        let epss = epss_rating.and_then(|r| r["score"].as_f64());
        let epss_model = epss_rating.and_then(|r| r["vector"].as_str().map(str::to_owned));
        let ratings = ratings_of(v);
        let vprop = |k: &str| prop(v, &format!("{PROP}{k}")).map(str::to_owned);
        let url = v["source"]["url"].as_str().map(str::to_owned);
        let references = references_of(v, url.as_deref());
        let cwes: Vec<u32> = v["cwes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_u64().and_then(|c| u32::try_from(c).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        for a in v["affects"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let Some(r) = a["ref"].as_str() else { continue };
            let comp = comps.get(r);
            out.push(Finding {
                id: id.to_owned(),
                severity: rating.severity,
                severity_source: rating.source.clone(),
                cvss_score: rating.score,
                cvss_vector: rating.vector.clone(),
                cvss_method: rating.method.clone(),
                epss,
                exploit_available: vprop("exploit_available").as_deref() == Some("true"),
                exploit_last_seen: vprop("exploit_last_seen_in_public"),
                kev_date_added: vprop("cisa_kev_date_added"),
                kev_date_due: vprop("cisa_kev_date_due"),
                package: comp.map(|c| c.name.clone()).unwrap_or_default(),
                version: comp.map(|c| c.version.clone()).unwrap_or_default(),
                purl: comp.map(|c| c.purl.clone()).unwrap_or_default(),
                fixed_version: vprop(&format!("fixed_version:{r}")).map(|v| without_zero_epoch(&v)),
                path: comp.and_then(|c| c.path.clone()),
                layer: None,
                description: v["description"].as_str().unwrap_or_default().to_owned(),
                url: url.clone(),
                references: references.clone(),
                cwes: cwes.clone(),
                published: text("created"),
                updated: text("updated"),
                ratings: ratings.clone(),
                epss_model: epss_model.clone(),
                installed: Vec::new(),
                source_package: None,
            });
        }
    }
    out
}

/// The ratings of a vulnerability other than EPSS (a probability, not a
/// severity), as written.
fn ratings_of(v: &Value) -> Vec<SourceRating> {
    v["ratings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|r| r["source"]["name"].as_str() != Some("EPSS"))
        .take(16)
        .map(|r| SourceRating {
            source: r["source"]["name"].as_str().unwrap_or("unnamed").to_owned(),
            severity: r["severity"].as_str().unwrap_or("").to_owned(),
            score: r["score"].as_f64(),
        })
        .collect()
}

/// Advisory and reference URLs of a vulnerability, without duplicates and
/// without its own `source.url` (kept apart as the finding's link).
fn references_of(v: &Value, own: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let advisories = v["advisories"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let refs = v["references"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let urls = advisories
        .iter()
        .filter_map(|a| a["url"].as_str())
        .chain(refs.iter().filter_map(|r| r["source"]["url"].as_str()));
    for u in urls {
        if Some(u) != own && !out.iter().any(|o| o == u) {
            out.push(u.to_owned());
        }
    }
    out
}

/// What Inspector said about one component besides vulnerabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentNote {
    pub kind: NoteKind,
    pub component: String,
    pub version: String,
    pub purl: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// The operating system is past its end of life (message: the date).
    EndOfLife,
    /// e.g. "Component skipped: invalid purl."
    Warning,
    /// e.g. "Component skipped: no rules found." — skipped components are
    /// not scanned at all, which a reader of a clean report needs to know.
    Info,
}

/// The per-component `info`, `warning` and `end_of_life` properties of an
/// answer, in document order.
pub fn component_notes(answer: &Value) -> Vec<ComponentNote> {
    fn walk(v: &Value, out: &mut Vec<ComponentNote>) {
        for c in v["components"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            for p in c["properties"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                let kind = match p["name"].as_str().and_then(|n| n.strip_prefix(PROP)) {
                    Some("info") => NoteKind::Info,
                    Some("warning") => NoteKind::Warning,
                    Some("end_of_life") => NoteKind::EndOfLife,
                    _ => continue,
                };
                out.push(ComponentNote {
                    kind,
                    component: percent_decode(c["name"].as_str().unwrap_or_default()),
                    version: percent_decode(c["version"].as_str().unwrap_or_default()),
                    purl: percent_decode(c["purl"].as_str().unwrap_or_default()),
                    message: p["value"].as_str().unwrap_or_default().to_owned(),
                });
            }
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    walk(answer, &mut out);
    out
}

/// Fills each finding's package database path, layer and installed
/// packages from our own SBOM (matched by percent-decoded purl, else the
/// purl without qualifiers: the service renumbers bom-refs and may
/// re-encode qualifiers). A path the answer already gave (language
/// packages) is kept.
pub fn attach_locations(findings: &mut [Finding], sbom: &Value) {
    let meta = &sbom["metadata"]["component"];
    let diff_ids: Vec<&str> = meta["properties"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|p| p["name"].as_str() == Some("amazon:inspector:sbom_generator:layer_diff_id"))
        .filter_map(|p| p["value"].as_str())
        .collect();
    let mut by_purl: HashMap<String, Located> = HashMap::new();
    let mut by_bare: HashMap<String, Located> = HashMap::new();
    // An explicit stack: a deeply nested SBOM cannot exhaust the call stack.
    let mut stack: Vec<&Value> = vec![sbom];
    while let Some(v) = stack.pop() {
        // Image-sized work: a job past its deadline or cut by shutdown
        // stops here; its result is discarded with the job.
        if crate::cancel::is_cancelled() {
            return;
        }
        for c in v["components"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            stack.push(c);
            let Some(purl) = c["purl"].as_str() else {
                continue;
            };
            let located = Located::of(c, &diff_ids);
            let purl = percent_decode(purl);
            let bare = purl.split(['?', '#']).next().unwrap_or(&purl).to_owned();
            by_bare.entry(bare).or_insert_with(|| located.clone());
            by_purl.entry(purl).or_insert(located);
        }
    }
    for f in findings {
        let bare = f.purl.split(['?', '#']).next().unwrap_or(&f.purl);
        let Some(l) = by_purl.get(&f.purl).or_else(|| by_bare.get(bare)) else {
            continue;
        };
        if f.path.is_none() {
            f.path.clone_from(&l.path);
        }
        f.layer.clone_from(&l.layer);
        f.installed.clone_from(&l.installed);
        f.source_package.clone_from(&l.source);
    }
}

/// Where one SBOM component is and what it stands for.
#[derive(Clone)]
struct Located {
    path: Option<String>,
    layer: Option<String>,
    installed: Vec<Installed>,
    source: Option<String>,
}

/// Binaries listed under one source component; a source with more is
/// summarised by the first ones (the SBOM keeps them all).
const MAX_INSTALLED: usize = 32;

impl Located {
    fn of(c: &Value, diff_ids: &[&str]) -> Located {
        let path = prop(c, "amazon:inspector:sbom_generator:source_path")
            .or_else(|| prop(c, "scangate:location"))
            .map(str::to_owned);
        let layer = prop(c, "scangate:layer")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| diff_ids.get(i).map(|d| (*d).to_owned()));
        let me = installed(c);
        // A Debian source component groups its binaries as nested
        // components (sbom::deb); Inspector matches the source, so what is
        // installed is the binaries. A binary with the source's own name
        // and version is folded into the source component itself.
        let binaries: Vec<Installed> = c["components"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter(|b| b["purl"].as_str().is_some())
            .take(MAX_INSTALLED)
            .map(installed)
            .collect();
        let (installed, source) = if binaries.is_empty() {
            (vec![me], None)
        } else {
            (binaries, Some(me.to_string()))
        };
        Located {
            path,
            layer,
            installed,
            source,
        }
    }
}

fn installed(c: &Value) -> Installed {
    Installed {
        name: percent_decode(c["name"].as_str().unwrap_or_default()),
        version: percent_decode(c["version"].as_str().unwrap_or_default()),
    }
}

/// Inspector's own per-severity summary from the answer's metadata, used to
/// cross-check our counting.
pub fn summary_counts(answer: &Value) -> Option<[u64; 5]> {
    let get = |k: &str| -> Option<u64> {
        prop(&answer["metadata"], &format!("{PROP}{k}_vulnerabilities"))?
            .parse()
            .ok()
    };
    Some([
        get("critical")?,
        get("high")?,
        get("medium")?,
        get("low")?,
        get("other")?,
    ])
}

/// Merges findings from several answers (a split SBOM): one finding per
/// (vulnerability id, affected purl).
pub fn merge(parts: Vec<Vec<Finding>>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in parts.into_iter().flatten() {
        if seen.insert((f.id.clone(), f.purl.clone())) {
            out.push(f);
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.purl.cmp(&b.purl))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Counts;

    fn fixtures() -> std::path::PathBuf {
        // SCANGATE_SHARED_DIR: a worktree elsewhere than the main checkout.
        std::env::var_os("SCANGATE_SHARED_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
            .join("fixtures/inspector/scans")
    }

    #[test]
    fn severity_rule_reproduces_every_real_summary() {
        let mut n = 0;
        let mut paths: Vec<_> = std::fs::read_dir(fixtures())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.push(fixtures().join("../dockerfile-checks-inspector-scan-cdx.json"));
        for p in paths {
            let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let answer = &doc["sbom"];
            let c = Counts::of(&from_answer(answer));
            let want = summary_counts(answer).unwrap();
            assert_eq!(
                [c.critical, c.high, c.medium, c.low, c.other],
                want,
                "{}",
                p.display()
            );
            n += 1;
        }
        assert!(n >= 10, "expected the real answers, found {n}");
    }

    #[test]
    fn findings_name_the_answer_components_and_fixed_versions() {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("debian_latest.json.scan")).unwrap(),
        )
        .unwrap();
        let fs = from_answer(&doc["sbom"]);
        let glibc = fs.iter().find(|f| f.id == "CVE-2024-2961").unwrap();
        assert_eq!(glibc.package, "glibc");
        assert_eq!(
            glibc.purl,
            "pkg:deb/debian/glibc@2.36-9+deb12u4?arch=amd64&distro=bookworm&epoch=0"
        );
        // As users write it: no `0:` epoch.
        assert_eq!(glibc.fixed_version.as_deref(), Some("2.36-9+deb12u6"));
        // OTHER: no rating but EPSS, whose model and date are kept.
        assert_eq!(glibc.severity, Severity::Other);
        assert!(glibc.ratings.is_empty());
        assert_eq!(glibc.epss, Some(0.00044));
        assert!(glibc.epss_model.as_deref().unwrap().contains("2024-05-21"));
        assert!(glibc.exploit_available);
        let high = fs.iter().find(|f| f.id == "CVE-2023-50387").unwrap();
        assert_eq!(high.severity, Severity::High);
        assert_eq!(high.severity_source.as_deref(), Some("NVD"));
        assert_eq!(high.cvss_score, Some(7.5));
    }

    #[test]
    fn kev_date_is_read_from_the_answer() {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("../dockerfile-checks-inspector-scan-cdx.json"))
                .unwrap(),
        )
        .unwrap();
        let fs = from_answer(&doc["sbom"]);
        let sudo = fs.iter().find(|f| f.id == "CVE-2021-3156").unwrap();
        assert_eq!(sudo.kev_date_added.as_deref(), Some("2022-04-06T00:00:00Z"));
        assert_eq!(
            fs.iter().filter(|f| f.kev_date_added.is_some()).count(),
            fs.iter().filter(|f| f.id == "CVE-2021-3156").count()
        );
    }

    #[test]
    fn merge_dedups_by_id_and_purl() {
        let f = |id: &str, purl: &str| Finding {
            id: id.into(),
            purl: purl.into(),
            ..Finding::default()
        };
        let m = merge(vec![
            vec![f("A", "p1"), f("B", "p1")],
            vec![f("A", "p1"), f("A", "p2")],
        ]);
        assert_eq!(m.len(), 3);
    }

    /// The same SBOM answered in both output formats: our reading of the
    /// CycloneDX answer agrees with the INSPECTOR-format one on every
    /// (id, affected purl), its severity, fixed version and whether it has
    /// an EPSS score (the two answers were made on different days, so the
    /// scores themselves differ).
    #[test]
    fn cyclonedx_reading_agrees_with_the_inspector_format_answer() {
        let cdx = read_fixture("../dockerfile-checks-inspector-scan-cdx.json");
        let ins = read_fixture("../dockerfile-checks-inspector-scan.json");
        let ours = from_answer(&cdx["sbom"]);
        let mut n = 0;
        for v in ins["vulnerabilities"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            for a in v["affects"].as_array().unwrap() {
                // Dockerfile and OS entries name no package.
                let Some(purl) = a["installed_version"].as_str() else {
                    continue;
                };
                let purl = percent_decode(purl);
                let f = ours
                    .iter()
                    .find(|f| f.id == id && f.purl == purl)
                    .unwrap_or_else(|| panic!("{id} {purl}"));
                assert_eq!(
                    f.severity,
                    Severity::parse(v["severity"].as_str().unwrap()),
                    "{id}"
                );
                // Ours without the `0:` epoch people never write.
                assert_eq!(
                    f.fixed_version,
                    a["fixed_version"].as_str().map(without_zero_epoch),
                    "{id}"
                );
                let epss = v["properties"]["epss"].as_f64();
                assert_eq!(f.epss.is_some(), epss.is_some(), "{id}");
                n += 1;
            }
        }
        assert!(n > 600, "{n}");
    }

    #[test]
    fn kev_dates_exploit_and_references_are_kept() {
        let fs = from_answer(&read_fixture("../dockerfile-checks-inspector-scan-cdx.json")["sbom"]);
        let sudo = fs.iter().find(|f| f.id == "CVE-2021-3156").unwrap();
        assert_eq!(sudo.kev_date_due.as_deref(), Some("2022-04-27T00:00:00Z"));
        assert_eq!(
            sudo.exploit_last_seen.as_deref(),
            Some("2024-05-20T21:34:59Z")
        );
        assert_eq!(sudo.cvss_method.as_deref(), Some("CVSSv31"));
        assert_eq!(sudo.cwes, vec![193]);
        assert_eq!(sudo.published.as_deref(), Some("2021-01-26T21:15:12Z"));
        assert!(
            sudo.references
                .contains(&"https://usn.ubuntu.com/4705-2".to_owned())
        );
        assert!(!sudo.references.contains(&sudo.url.clone().unwrap()));
    }

    #[test]
    fn notes_keep_end_of_life_warnings_and_skipped_components() {
        let doc = read_fixture("../dockerfile-checks-inspector-scan-cdx.json");
        let notes = component_notes(&doc["sbom"]);
        let eol = notes
            .iter()
            .find(|n| n.kind == NoteKind::EndOfLife)
            .unwrap();
        assert_eq!(
            (eol.component.as_str(), eol.version.as_str()),
            ("Ubuntu", "14.04")
        );
        assert_eq!(eol.message, "2024-04-01T00:00:00Z");
        assert!(
            notes
                .iter()
                .any(|n| n.message == "Component skipped: no rules found.")
        );
        let nginx = component_notes(&read_fixture("nginx_latest.json.scan")["sbom"]);
        assert!(nginx.iter().any(|n| n.kind == NoteKind::Warning
            && n.component == "libintl"
            && n.message == "Component skipped: no rules found."));
    }

    #[test]
    fn locations_come_from_our_sbom_or_the_answer() {
        let mut fs = from_answer(&read_fixture("debian_latest.json.scan")["sbom"]);
        let sbom = read_fixture("../sboms/debian_latest.json");
        attach_locations(&mut fs, &sbom);
        assert!(
            fs.iter()
                .all(|f| f.path.as_deref() == Some("/var/lib/dpkg/status"))
        );
        // Language packages: the answer's own path wins.
        let fs = from_answer(&read_fixture("node_latest.json.scan")["sbom"]);
        assert!(fs.iter().any(|f| {
            f.path
                .as_deref()
                .is_some_and(|p| p.ends_with("/package.json"))
        }));
    }

    #[test]
    fn findings_name_the_installed_binaries_of_the_matched_source_package() {
        let mut fs = from_answer(&read_fixture("debian_latest.json.scan")["sbom"]);
        let sbom = read_fixture("../sboms/debian_latest.json");
        attach_locations(&mut fs, &sbom);
        let glibc = fs.iter().find(|f| f.id == "CVE-2024-2961").unwrap();
        assert_eq!(glibc.package, "glibc");
        assert_eq!(
            glibc.source_package.as_deref(),
            Some("glibc 2.36-9+deb12u4")
        );
        let names: Vec<&str> = glibc.installed.iter().map(|i| i.name.as_str()).collect();
        assert!(names.contains(&"libc6"), "{names:?}");
        assert!(names.contains(&"libc-bin"), "{names:?}");
        // A flat component (Alpine) is itself what is installed.
        let mut fs = from_answer(&read_fixture("alpine_3.18.2.json.scan")["sbom"]);
        attach_locations(&mut fs, &read_fixture("../sboms/alpine_3.18.2.json"));
        let f = fs.iter().find(|f| !f.purl.is_empty()).unwrap();
        assert_eq!(f.source_package, None);
        assert_eq!(f.installed.len(), 1, "{f:?}");
        assert_eq!(f.installed[0].name, f.package);
    }

    #[test]
    fn only_a_zero_epoch_is_dropped() {
        assert_eq!(without_zero_epoch("0:2.36-9+deb12u6"), "2.36-9+deb12u6");
        assert_eq!(without_zero_epoch("1:2.38.1-5"), "1:2.38.1-5");
        assert_eq!(without_zero_epoch("2.0"), "2.0");
        assert_eq!(without_zero_epoch("10:1"), "10:1");
    }

    fn read_fixture(name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb%7Ec"), "a+b~c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
