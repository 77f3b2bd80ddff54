//! The image-risk sections of every report format (secrets, configuration
//! defects, the signature check): one function per format, called once by
//! each renderer, so the renderers stay about vulnerabilities.
//!
//! Risk findings carry no secret value (only a redacted excerpt), but their
//! titles, paths and excerpts come from the image: they go through each
//! format's escaping like every other image string.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{escape_markdown as md, escape_markup as e, escape_sarif_text, terminal_safe as t};
use crate::pipeline::ScanReport;
use crate::policy::risks::{RiskStatus, location_text};
use crate::risks::{RiskFinding, RiskKind};

fn kind_str(k: RiskKind) -> &'static str {
    match k {
        RiskKind::Secret => "secret",
        RiskKind::Config => "config",
    }
}

/// The findings with the policy's standing of each.
fn judged(r: &ScanReport) -> impl Iterator<Item = (&RiskFinding, RiskStatus)> {
    let status = &r.decision.risks.status;
    r.risks
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| (f, status.get(i).copied().unwrap_or_default()))
}

/// One line: `SECRETS 2, MISCONFIGS 5, SIGNATURE NOT_CHECKED`.
pub fn summary_line(r: &ScanReport) -> String {
    let d = &r.decision.risks;
    format!(
        "secrets {}, misconfigurations {}, signature {}",
        d.secrets.unsuppressed,
        d.config.unsuppressed,
        r.risks.signature.as_str()
    )
}

/// `report.md`'s "Image risks" section (empty when there is nothing to say).
pub fn markdown(r: &ScanReport) -> String {
    let mut s = String::new();
    if r.risks.findings.is_empty() {
        return s;
    }
    let _ = writeln!(s, "## Image risks\n\n{}\n", md(&summary_line(r)));
    let _ = writeln!(
        s,
        "| severity | kind | rule | finding | where | gate |\n|---|---|---|---|---|---|"
    );
    for (f, status) in judged(r) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} | {} | {} |",
            f.severity.as_str(),
            kind_str(f.kind),
            md(&f.rule_id),
            md(&f.title),
            f.excerpt
                .as_deref()
                .map(|x| format!(" ({})", md(x)))
                .unwrap_or_default(),
            md(&location_text(&f.location)),
            status.as_str()
        );
    }
    s.push('\n');
    s
}

/// `report.html`'s section: one table, each row tagged with its kind,
/// severity and gate status (`data-*`) so the report's filters can select
/// them.
pub fn html(r: &ScanReport) -> String {
    let mut s = String::new();
    if r.risks.findings.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        r#"<section id="risks"><h2>Image risks ({})</h2><p>{}</p>"#,
        r.risks.findings.len(),
        e(&summary_line(r))
    );
    {
        let _ = writeln!(
            s,
            "<table><thead><tr><th>severity</th><th>kind</th><th>rule</th><th>finding</th><th>where</th><th>gate</th></tr></thead><tbody>"
        );
        for (f, status) in judged(r) {
            let _ = writeln!(
                s,
                r#"<tr data-kind="{k}" data-severity="{sev}" data-gate="{g}"><td>{sev}</td><td>{k}</td><td>{}</td><td>{}{}<br><small>{}</small></td><td>{}</td><td>{g}</td></tr>"#,
                e(&f.rule_id),
                e(&f.title),
                f.excerpt
                    .as_deref()
                    .map(|x| format!(" <code>{}</code>", e(x)))
                    .unwrap_or_default(),
                e(&f.remediation),
                e(&location_text(&f.location)),
                k = kind_str(f.kind),
                sev = f.severity.as_str(),
                g = status.as_str(),
            );
        }
        let _ = writeln!(s, "</tbody></table>");
    }
    let _ = writeln!(s, "</section>");
    s
}

/// SARIF: one rule per risk rule id (distinct from the vulnerability ids),
/// one result per finding; appended after the vulnerability rules so their
/// indexes stay put.
pub fn sarif(r: &ScanReport, rules: &mut Vec<Value>, results: &mut Vec<Value>) {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &r.risks.findings {
        if index.contains_key(f.rule_id.as_str()) {
            continue;
        }
        index.insert(&f.rule_id, rules.len());
        rules.push(json!({
            "id": f.rule_id,
            "name": f.rule_id,
            "shortDescription": { "text": escape_sarif_text(&format!("{} ({})", f.rule_id, kind_str(f.kind))) },
            "help": { "text": escape_sarif_text(&f.remediation) },
            "defaultConfiguration": { "level": super::sarif::level(f.severity) },
            "properties": {
                "tags": ["security", kind_str(f.kind)],
                "severity": f.severity.as_str(),
            },
        }));
    }
    for (f, status) in judged(r) {
        let mut res = json!({
            "ruleId": f.rule_id,
            "ruleIndex": index[f.rule_id.as_str()],
            "level": super::sarif::level(f.severity),
            "kind": "fail",
            "message": { "text": escape_sarif_text(&format!("{} {}", f.severity.as_str(), f.title)) },
            "locations": [{ "logicalLocations": [{
                "fullyQualifiedName": escape_sarif_text(&location_text(&f.location)),
                "kind": "resource",
            }] }],
            "properties": {
                "riskKind": kind_str(f.kind),
                "location": f.location,
                "excerpt": f.excerpt,
                "gate": status.as_str(),
            },
        });
        if matches!(status, RiskStatus::Allowed | RiskStatus::Disabled) {
            res["suppressions"] = json!([{ "kind": "external", "status": "accepted" }]);
        }
        results.push(res);
    }
}

/// JUnit: one testcase per risk finding (failed when it violates, skipped
/// when allowed or disabled); returns the cases and their (tests, failures,
/// skipped) counts for the suite totals.
pub fn junit(r: &ScanReport) -> (String, [usize; 3]) {
    let mut s = String::new();
    let mut counts = [0usize; 3];
    for (f, status) in judged(r) {
        counts[0] += 1;
        let _ = write!(
            s,
            r#"    <testcase classname="scangate.{}" name="{}" time="0""#,
            kind_str(f.kind),
            e(&format!(
                "{} {} at {}",
                f.rule_id,
                f.title,
                location_text(&f.location)
            ))
        );
        match status {
            RiskStatus::Violating => {
                counts[1] += 1;
                let _ = writeln!(
                    s,
                    r#"><failure message="{}" type="{}">{}</failure></testcase>"#,
                    e(&format!("{} {}", f.severity.as_str(), f.title)),
                    e(&f.rule_id),
                    e(&f.remediation)
                );
            }
            RiskStatus::Allowed | RiskStatus::Disabled => {
                counts[2] += 1;
                let _ = writeln!(s, r#"><skipped message="{}"/></testcase>"#, status.as_str());
            }
            RiskStatus::Reported => {
                let _ = writeln!(s, "/>");
            }
        }
    }
    (s, counts)
}

/// `scangate scan`'s short section: one line per finding, worst first.
pub fn table(r: &ScanReport) -> String {
    let mut s = String::new();
    if r.risks.findings.is_empty() {
        return s;
    }
    let _ = writeln!(s, "\nimage risks: {}", summary_line(r));
    let mut rows: Vec<(&RiskFinding, RiskStatus)> = judged(r).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0.severity));
    for (f, status) in rows {
        let mark = match status {
            RiskStatus::Violating => "  ✗",
            RiskStatus::Allowed => "  (allowed)",
            RiskStatus::Disabled => "  (disabled)",
            RiskStatus::Reported => "",
        };
        let _ = writeln!(
            s,
            "{:<9} {:<26} {} — {}{mark}",
            f.severity.as_str(),
            t(&f.rule_id),
            t(&f.title),
            t(&location_text(&f.location)),
        );
    }
    s
}

/// `findings.json`'s risk part.
pub fn json(r: &ScanReport) -> Value {
    let findings: Vec<Value> = judged(r)
        .map(|(f, status)| {
            let mut v = json!(f);
            v["gate"] = json!(status.as_str());
            v
        })
        .collect();
    json!(findings)
}
