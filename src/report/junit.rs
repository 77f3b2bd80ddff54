//! `junit.xml`: the verdict as a test report (CodeBuild report groups,
//! GitLab, Jenkins). One testcase for the policy, then one per finding:
//! failed when it counted toward a violation, skipped when an ignore rule
//! suppressed it, passed otherwise.

use std::fmt::Write as _;

use super::{
    Meta, Status, escape_markup as e, installed_list, rule_line, status_of, suppression_of,
};
use crate::inspector::Finding;
use crate::pipeline::ScanReport;
use crate::policy::{Decision, Verdict};

pub fn render(meta: &Meta, r: &ScanReport) -> String {
    let d = &r.decision;
    let findings = &r.result.findings;
    let statuses: Vec<Status> = findings
        .iter()
        .map(|f| status_of(d, f, r.fixable_only))
        .collect();
    let policy_failed = d.verdict == Verdict::Fail;
    let (risk_cases, [risk_tests, risk_failures, risk_skipped]) = super::risks::junit(r);
    let tests = findings.len() + 1 + risk_tests;
    let failures = statuses.iter().filter(|s| **s == Status::Violating).count()
        + usize::from(policy_failed)
        + risk_failures;
    let skipped = statuses
        .iter()
        .filter(|s| **s == Status::Suppressed)
        .count()
        + risk_skipped;
    // JUnit's timestamp is an ISO 8601 local time without a zone.
    let ts = meta.generated.trim_end_matches('Z');
    let ts = ts.split('+').next().unwrap_or(ts);
    let suite = format!("scangate {}", r.image);
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<testsuites name="scangate" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="0">"#
    );
    let _ = writeln!(
        s,
        r#"  <testsuite name="{}" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="0" timestamp="{}" hostname="scangate" id="0">"#,
        e(&suite),
        e(ts)
    );
    properties(&mut s, meta, r);
    policy_case(&mut s, r);
    for (f, status) in findings.iter().zip(&statuses) {
        finding_case(&mut s, d, f, *status);
    }
    s.push_str(&risk_cases);
    let _ = writeln!(s, "  </testsuite>\n</testsuites>");
    s
}

/// The suite's properties: what was scanned, the verdict, the policy that
/// decided and each rule that applied (why it failed, or why a PASS with
/// findings passed).
fn properties(s: &mut String, meta: &Meta, r: &ScanReport) {
    let d = &r.decision;
    let _ = writeln!(s, "    <properties>");
    for (k, v) in [
        ("image", r.image.as_str()),
        ("digest", r.manifest_digest.as_str()),
        ("job", meta.job_id),
        (
            "verdict",
            if d.verdict == Verdict::Fail {
                "FAIL"
            } else {
                "PASS"
            },
        ),
    ] {
        let _ = writeln!(s, r#"      <property name="{k}" value="{}"/>"#, e(v));
    }
    let p = &d.policy;
    for (k, v) in [
        ("policy.source", p.source.describe()),
        ("policy.thresholds", p.thresholds_text()),
        ("policy.gates", p.gates().join("; ")),
    ] {
        let _ = writeln!(s, r#"      <property name="{k}" value="{}"/>"#, e(&v));
    }
    if let Some(f) = &p.source.file {
        let _ = writeln!(
            s,
            r#"      <property name="policy.sha256" value="{}"/>"#,
            e(&f.sha256)
        );
    }
    for (i, x) in d.rules.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"      <property name="policy.rule.{i}" value="{}"/>"#,
            e(&rule_line(x))
        );
    }
    let _ = writeln!(s, "    </properties>");
}

/// The one testcase for the verdict itself, failed with every violation
/// when the policy failed.
fn policy_case(s: &mut String, r: &ScanReport) {
    let d = &r.decision;
    let _ = write!(
        s,
        r#"    <testcase classname="scangate.policy" name="{}" time="0""#,
        e(&format!("policy verdict for {}", r.image))
    );
    if d.verdict == Verdict::Fail {
        let reasons: Vec<String> = d.violations.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            s,
            ">\n      <failure message=\"{}\" type=\"PolicyViolation\">{}</failure>\n    </testcase>",
            e(&format!("policy violated: {}", reasons.join("; "))),
            e(&reasons.join("\n"))
        );
    } else {
        let _ = writeln!(s, "/>");
    }
}

/// One finding's testcase: passed, skipped (with the ignore rule's reason)
/// or failed (with what a developer needs to fix it).
fn finding_case(s: &mut String, d: &Decision, f: &Finding, status: Status) {
    let pkg = if f.package.is_empty() {
        "image"
    } else {
        &f.package
    };
    let _ = write!(
        s,
        r#"    <testcase classname="{}" name="{}" time="0""#,
        e(&format!(
            "scangate.{}",
            f.severity.as_str().to_ascii_lowercase()
        )),
        e(&format!("{} in {pkg} {}", f.id, f.version))
    );
    match status {
        Status::Passing => {
            let _ = writeln!(s, "/>");
        }
        Status::Suppressed => {
            let why = suppression_of(d, f).map_or(String::new(), |x| match &x.expires {
                Some(ex) => format!("{} (until {ex})", x.reason),
                None => x.reason.clone(),
            });
            let _ = writeln!(
                s,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                e(&format!("suppressed: {why}"))
            );
        }
        Status::Violating => {
            let fixed = f
                .fixed_version
                .as_deref()
                .map_or("no fixed version yet".to_owned(), |v| {
                    format!("fixed in {v}")
                });
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                e(&format!(
                    "{} {} in {pkg} {} ({fixed})",
                    f.severity.as_str(),
                    f.id,
                    f.version
                )),
                f.severity.as_str(),
                e(&failure_body(f, pkg, &fixed))
            );
        }
    }
}

/// The text of a violating finding's `<failure>` (unescaped): the CI log
/// shows it, so it carries the fix, the CVSS and where the package is.
fn failure_body(f: &Finding, pkg: &str, fixed: &str) -> String {
    let mut body = format!(
        "{} {} in {pkg} {} ({fixed})\npurl: {}\n",
        f.severity.as_str(),
        f.id,
        f.version,
        f.purl
    );
    if let Some(i) = installed_list(f) {
        let _ = writeln!(body, "installed: {i}");
    }
    if let Some(score) = f.cvss_score {
        let _ = writeln!(
            body,
            "CVSS {score} {} ({})",
            f.cvss_vector.as_deref().unwrap_or(""),
            f.severity_source.as_deref().unwrap_or("")
        );
    }
    if let Some(p) = &f.path {
        let _ = writeln!(body, "path: {p}");
    }
    if !f.description.is_empty() {
        let _ = writeln!(body, "\n{}", f.description);
    }
    if let Some(u) = &f.url {
        let _ = writeln!(body, "\n{u}");
    }
    body
}
