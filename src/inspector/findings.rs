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
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    pub epss: Option<f64>,
    pub exploit_available: bool,
    /// When CISA added it to the Known Exploited Vulnerabilities catalog
    /// (`cisa_kev_date_added` property, e.g. `2022-04-06T00:00:00Z`).
    pub kev_date_added: Option<String>,
    /// Name, version and purl (percent-decoded) of the affected component as
    /// returned by the service.
    pub package: String,
    pub version: String,
    pub purl: String,
    pub fixed_version: Option<String>,
    pub description: String,
    pub url: Option<String>,
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
pub fn severity_of(vuln: &Value) -> (Severity, Option<String>, Option<f64>, Option<String>) {
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
        Some((_, r)) => (
            Severity::parse(r["severity"].as_str().unwrap_or("")),
            r["source"]["name"].as_str().map(str::to_owned),
            r["score"].as_f64(),
            r["vector"].as_str().map(str::to_owned),
        ),
        None => (Severity::Other, None, None, None),
    }
}

struct Comp {
    name: String,
    version: String,
    purl: String,
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
        let (severity, severity_source, cvss_score, cvss_vector) = severity_of(v);
        let epss = v["ratings"].as_array().and_then(|rs| {
            rs.iter()
                .find(|r| r["source"]["name"].as_str() == Some("EPSS"))
                .and_then(|r| r["score"].as_f64())
        });
        let exploit_available = prop(v, &format!("{PROP}exploit_available")) == Some("true");
        let kev_date_added = prop(v, &format!("{PROP}cisa_kev_date_added")).map(str::to_owned);
        for a in v["affects"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let Some(r) = a["ref"].as_str() else { continue };
            let comp = comps.get(r);
            out.push(Finding {
                id: id.to_owned(),
                severity,
                severity_source: severity_source.clone(),
                cvss_score,
                cvss_vector: cvss_vector.clone(),
                epss,
                exploit_available,
                kev_date_added: kev_date_added.clone(),
                package: comp.map(|c| c.name.clone()).unwrap_or_default(),
                version: comp.map(|c| c.version.clone()).unwrap_or_default(),
                purl: comp.map(|c| c.purl.clone()).unwrap_or_default(),
                fixed_version: prop(v, &format!("{PROP}fixed_version:{r}")).map(str::to_owned),
                description: v["description"].as_str().unwrap_or_default().to_owned(),
                url: v["source"]["url"].as_str().map(str::to_owned),
            });
        }
    }
    out
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
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/inspector/scans")
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
        assert_eq!(glibc.fixed_version.as_deref(), Some("0:2.36-9+deb12u6"));
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

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb%7Ec"), "a+b~c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
