//! `report.sarif`: SARIF 2.1.0 for code-scanning dashboards (GitHub, …).
//!
//! One rule per vulnerability id, one result per (vulnerability, affected
//! component). GitHub ranks security alerts by the rule property
//! `security-severity` (a CVSS-like score as a string: ≥ 9.0 critical,
//! 7.0–8.9 high, 4.0–6.9 medium, 0.1–3.9 low).
//!
//! Text from the image and Inspector is escaped for where it lands:
//! [`escape_sarif_text`] in plain-text messages (viewers link
//! `[text](target)`), [`escape_markdown`] in `markdown`, with links only to
//! plain http(s) URLs, and artifact URIs percent-encoded as relative paths.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Meta, Status, escape_markdown, escape_markdown_paragraphs, escape_sarif_text as text,
    installed_list, rule_line, safe_url, status_of, suppression_of,
};
use crate::inspector::{Finding, Severity};
use crate::pipeline::ScanReport;

pub fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Other => "note",
    }
}

/// The score GitHub should see: the deciding rating's score when it lies in
/// the band of our severity, else the band's middle, so GitHub's label never
/// disagrees with ours (a distro can rate "medium" with a CVSS of 7.8).
/// OTHER has no band: no score.
pub fn security_severity(s: Severity, score: Option<f64>) -> Option<String> {
    let (lo, hi, mid) = match s {
        Severity::Critical => (9.0, 10.0, 9.5),
        Severity::High => (7.0, 8.9, 8.0),
        Severity::Medium => (4.0, 6.9, 5.5),
        Severity::Low => (0.1, 3.9, 2.0),
        Severity::Other => return None,
    };
    let v = score.filter(|x| (lo..=hi).contains(x)).unwrap_or(mid);
    Some(format!("{v:.1}"))
}

fn first_sentence(s: &str) -> String {
    let s = s.trim();
    let end = s.find(". ").map(|i| i + 1).unwrap_or(s.len());
    let mut out: String = s[..end].chars().take(200).collect();
    if out.len() < end {
        out.push('…');
    }
    out
}

/// A path from the image as a relative URI reference: every byte outside
/// RFC 3986's path characters is percent-encoded, and so is a `:` before the
/// first `/`, so the path can never read as a scheme (`javascript:…`).
fn uri_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut first_segment = true;
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=@/".contains(&b)
            || (b == b':' && !first_segment);
        if b == b'/' {
            first_segment = false;
        }
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn location(r: &ScanReport, f: &Finding) -> Value {
    // Paths are relative to the image root; with none, the image itself.
    let uri = match f.path.as_deref() {
        Some(p) if !p.trim_start_matches('/').is_empty() => uri_path(p.trim_start_matches('/')),
        _ => uri_path(&r.image),
    };
    let mut loc = json!({
        "physicalLocation": { "artifactLocation": { "uri": uri } },
    });
    if !f.purl.is_empty() {
        loc["logicalLocations"] = json!([{
            "name": f.package,
            "fullyQualifiedName": f.purl,
            "kind": "package",
        }]);
    }
    if let Some(layer) = &f.layer {
        loc["properties"] = json!({ "layer": layer });
    }
    loc
}

pub fn render(meta: &Meta, r: &ScanReport) -> Value {
    let d = &r.decision;
    let findings = &r.result.findings;
    let (order, worst) = rule_order(findings);
    let index: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut rules: Vec<Value> = order.iter().map(|id| rule(id, worst[id])).collect();
    let mut results: Vec<Value> = findings.iter().map(|f| result(r, &index, f)).collect();
    let mut policy = json!(d.policy);
    policy["description"] = json!(d.policy.source.describe());
    super::risks::sarif(r, &mut rules, &mut results);
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "scangate",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "automationDetails": { "id": format!("scangate/{}/{}", r.image, meta.job_id) },
            "invocations": [{
                "executionSuccessful": true,
                "endTimeUtc": meta.generated,
            }],
            "results": results,
            "properties": {
                "image": r.image,
                "digest": r.manifest_digest,
                "verdict": d.verdict,
                "counts": d.counts,
                "violations": d.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "policy": policy,
                "rules": d.rules,
                "explanation": d.rules.iter().map(rule_line).collect::<Vec<_>>(),
            },
        }],
    })
}

/// Rule ids in the findings' order (worst first), each with its worst
/// finding: a rule carries one severity, and `ruleIndex` needs a stable order.
fn rule_order(findings: &[Finding]) -> (Vec<&str>, BTreeMap<&str, &Finding>) {
    let mut order: Vec<&str> = Vec::new();
    let mut worst: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in findings {
        match worst.get(f.id.as_str()) {
            None => {
                order.push(&f.id);
                worst.insert(&f.id, f);
            }
            Some(w) if f.severity > w.severity => {
                worst.insert(&f.id, f);
            }
            _ => {}
        }
    }
    (order, worst)
}

/// One vulnerability id as a SARIF rule, described by its worst finding.
fn rule(id: &str, f: &Finding) -> Value {
    let mut props = json!({
        "tags": ["security", "vulnerability", f.severity.as_str().to_ascii_lowercase()],
        "precision": "very-high",
        "severity": f.severity.as_str(),
    });
    if let Some(ss) = security_severity(f.severity, f.cvss_score) {
        props["security-severity"] = json!(ss);
    }
    if let Some(v) = &f.cvss_vector {
        props["cvssVector"] = json!(v);
    }
    let desc = if f.description.is_empty() {
        id.to_owned()
    } else {
        f.description.clone()
    };
    let (help, md) = rule_help(id, f, &desc);
    let mut rule = json!({
        "id": id,
        "name": id,
        "shortDescription": { "text": text(&first_sentence(&desc)) },
        "fullDescription": { "text": text(&desc) },
        "help": { "text": text(&help), "markdown": md },
        "defaultConfiguration": { "level": level(f.severity) },
        "properties": props,
    });
    if let Some(u) = f.url.as_deref().and_then(safe_url) {
        rule["helpUri"] = json!(u);
    }
    rule
}

/// A rule's help as (plain text, markdown), each escaped for where it
/// lands, with at most ten reference links.
fn rule_help(id: &str, f: &Finding, desc: &str) -> (String, String) {
    let mut help = format!("{desc}\n");
    let mut md = format!(
        "**{}** ({})\n\n{}\n",
        escape_markdown(id),
        f.severity.as_str(),
        escape_markdown_paragraphs(desc)
    );
    for u in f.url.iter().chain(&f.references).take(10) {
        help.push_str(&format!("\n{u}"));
        // safe_url leaves no `<`, `>` or whitespace: the autolink
        // cannot be ended early.
        match safe_url(u) {
            Some(u) => md.push_str(&format!("\n- <{u}>")),
            None => md.push_str(&format!("\n- {}", escape_markdown(u))),
        }
    }
    (help, md)
}

/// One finding as a SARIF result, with a fingerprint stable across scans so
/// dashboards track the alert rather than reopen it.
fn result(r: &ScanReport, index: &BTreeMap<&str, usize>, f: &Finding) -> Value {
    let d = &r.decision;
    let fixed = f
        .fixed_version
        .as_deref()
        .map_or("no fixed version yet".to_owned(), |v| {
            format!("fixed in {v}")
        });
    let status = status_of(d, f, r.fixable_only);
    let mut res = json!({
        "ruleId": f.id,
        "ruleIndex": index[f.id.as_str()],
        "level": level(f.severity),
        "kind": "fail",
        "message": { "text": text(&format!(
            "{} {} in {} {} ({}{fixed})",
            f.severity.as_str(), f.id, f.package, f.version,
            installed_list(f).map_or(String::new(), |i| format!("installed: {i}; "))
        )) },
        "locations": [location(r, f)],
        "partialFingerprints": {
            "scangateFinding/v1": hex::encode(Sha256::digest(format!("{}\n{}", f.id, f.purl))),
        },
        "properties": {
            "purl": f.purl,
            "installedVersion": f.version,
            "installed": f.installed,
            "fixedVersion": f.fixed_version,
            "epss": f.epss,
            "exploitAvailable": f.exploit_available,
            "cisaKevDateAdded": f.kev_date_added,
            "gate": status.as_str(),
        },
    });
    if status == Status::Suppressed
        && let Some(s) = suppression_of(d, f)
    {
        res["suppressions"] = json!([{
            "kind": "external",
            "status": "accepted",
            "justification": text(&match &s.expires {
                Some(e) => format!("{} (until {e})", s.reason),
                None => s.reason.clone(),
            }),
        }]);
    }
    res
}
