//! The one result an acknowledged job gets, and the text a person reads in
//! the pipeline console.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::inspector::Severity;
use crate::pipeline::{PipelineError, ScanReport};
use crate::policy::{Verdict, Violation};
use crate::util::truncate_chars;

/// CodePipeline's limits (aws-models: ExecutionSummary, Message).
pub const MAX_SUMMARY: usize = 2_048;
pub const MAX_MESSAGE: usize = 5_000;

/// The `FailureType` values scangate uses (DESIGN.md, "What the pipeline
/// gets back"). Serialised by name in a pending result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FailureKind {
    JobFailed,
    ConfigurationError,
    PermissionError,
    SystemUnavailable,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::JobFailed => "JobFailed",
            FailureKind::ConfigurationError => "ConfigurationError",
            FailureKind::PermissionError => "PermissionError",
            FailureKind::SystemUnavailable => "SystemUnavailable",
        }
    }
}

/// Serialisable so that a result CodePipeline did not take yet can wait in
/// the pending store for this or another worker to send it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Success {
        summary: String,
        variables: BTreeMap<String, String>,
    },
    Failure {
        kind: FailureKind,
        message: String,
    },
}

impl Outcome {
    pub fn failure(kind: FailureKind, message: impl Into<String>) -> Outcome {
        Outcome::Failure {
            kind,
            message: truncate_chars(&message.into(), MAX_MESSAGE),
        }
    }

    pub fn from_error(job_id: &str, err: &PipelineError) -> Outcome {
        let kind = err.failure_kind();
        let mut msg = err.to_string();
        if matches!(err, PipelineError::Internal(_)) {
            let _ = write!(
                msg,
                " (an unexpected error in scangate; look up job {job_id} in the worker logs)"
            );
        }
        Outcome::failure(kind, msg)
    }

    pub fn from_report(job_id: &str, r: &ScanReport) -> Outcome {
        let d = &r.decision;
        let c = d.counts;
        let counts = format!(
            "{} critical, {} high, {} medium, {} low, {} other",
            c.critical, c.high, c.medium, c.low, c.other
        );
        match d.verdict {
            Verdict::Pass => {
                let mut variables = BTreeMap::new();
                let mut put = |k: &str, v: String| {
                    variables.insert(k.to_owned(), v);
                };
                put("VERDICT", d.verdict.to_string());
                put(
                    "HIGHEST_SEVERITY",
                    d.highest.map_or("NONE", Severity::as_str).to_owned(),
                );
                put("CRITICAL", c.critical.to_string());
                put("HIGH", c.high.to_string());
                put("MEDIUM", c.medium.to_string());
                put("LOW", c.low.to_string());
                put("OTHER", c.other.to_string());
                put("SUPPRESSED", d.suppressed.to_string());
                put("COMPONENTS", r.packages.to_string());
                put("IMAGE_DIGEST", r.manifest_digest.clone());
                put("SECRETS", d.risks.secrets.unsuppressed.to_string());
                put("MISCONFIGS", d.risks.config.unsuppressed.to_string());
                put("SIGNATURE", r.risks.signature.as_str().to_owned());
                if let Some(u) = &r.report_uri {
                    put("REPORT_URI", u.clone());
                }
                if let Some(u) = &r.sbom_uri {
                    put("SBOM_URI", u.clone());
                }
                let summary = format!(
                    "PASS {}@{}: {counts}{} in {} packages{}; policy: {} (job {job_id})",
                    r.image,
                    r.manifest_digest,
                    if d.suppressed > 0 {
                        format!(" ({} suppressed by the policy file)", d.suppressed)
                    } else {
                        String::new()
                    },
                    r.packages,
                    rules_note(d),
                    policy_note(d),
                );
                Outcome::Success {
                    summary: truncate_chars(&summary, MAX_SUMMARY),
                    variables,
                }
            }
            Verdict::Fail => {
                let mut m = String::new();
                let _ = write!(
                    m,
                    "Image {}@{} failed the {} gate: ",
                    r.image,
                    r.manifest_digest,
                    gate_name(d)
                );
                let reasons = violation_reasons(d);
                let _ = writeln!(
                    m,
                    "{}{}.",
                    reasons.join(", "),
                    if r.fixable_only {
                        " counting only fixable findings"
                    } else {
                        ""
                    }
                );
                let _ = writeln!(m, "Findings: {counts} ({} packages scanned).", r.packages);
                let _ = writeln!(m, "Policy: {}.", policy_note(d));
                if d.suppressed > 0 {
                    let ids: std::collections::BTreeSet<&str> =
                        d.suppressions.iter().map(|s| s.id.as_str()).collect();
                    let _ = writeln!(
                        m,
                        "Suppressed by the policy file: {} ({}).",
                        d.suppressed,
                        truncate_chars(&ids.into_iter().collect::<Vec<_>>().join(", "), 300)
                    );
                }
                let note = rules_note(d);
                if !note.is_empty() {
                    let _ = writeln!(m, "Policy file{note}.");
                }
                if let Some(u) = &r.report_uri {
                    let _ = writeln!(m, "Report: {u}");
                }
                risk_lines(&mut m, d);
                let _ = writeln!(m, "Worst findings:");
                let mut shown = std::collections::BTreeSet::new();
                for f in r
                    .result
                    .findings
                    .iter()
                    .filter(|f| d.violating_ids.contains(&f.id))
                {
                    if !shown.insert((f.id.clone(), f.package.clone())) {
                        continue;
                    }
                    let line = format!(
                        "- {} {} in {} {} → {}{}{}\n",
                        f.severity.as_str(),
                        f.id,
                        f.package,
                        f.version,
                        f.fixed_version.as_deref().unwrap_or("no fix yet"),
                        f.cvss_score
                            .map(|s| format!(", CVSS {s}"))
                            .unwrap_or_default(),
                        // As precise as given: 0.00044 is not 0.000.
                        f.epss.map(|s| format!(", EPSS {s}")).unwrap_or_default(),
                    );
                    // Leave room for the closing line rather than cutting a
                    // finding in half.
                    if m.chars().count() + line.chars().count() > MAX_MESSAGE - 120 {
                        let _ = writeln!(m, "- … and more (see the report)");
                        break;
                    }
                    m.push_str(&line);
                }
                let _ = write!(m, "Job {job_id}.");
                Outcome::failure(FailureKind::JobFailed, m)
            }
        }
    }
}

/// Where the policy came from and the thresholds in force, short enough
/// for the console's summary: "policy file p.yaml (sha256 …), thresholds
/// critical 0, high 0, …".
fn policy_note(d: &crate::policy::Decision) -> String {
    truncate_chars(
        &format!(
            "{}; thresholds {}",
            d.policy.source.describe(),
            d.policy.thresholds_text()
        ),
        600,
    )
}

fn is_risk(v: &Violation) -> bool {
    matches!(v, Violation::Risk { .. } | Violation::Signature { .. })
}

/// "vulnerability", "image risk" or "vulnerability and image risk".
fn gate_name(d: &crate::policy::Decision) -> &'static str {
    let risk = d.violations.iter().any(is_risk);
    let vuln = d.violations.iter().any(|v| !is_risk(v));
    match (vuln, risk) {
        (true, true) => "vulnerability and image-risk",
        (false, true) => "image-risk",
        _ => "vulnerability",
    }
}

/// The vulnerability violations one by one, the risk ones counted per
/// section (they are listed under "Image risks").
fn violation_reasons(d: &crate::policy::Decision) -> Vec<String> {
    let mut reasons: Vec<String> = d
        .violations
        .iter()
        .filter(|v| !is_risk(v))
        .map(|v| v.to_string())
        .collect();
    for (name, gate) in [
        ("secret", &d.risks.secrets),
        ("configuration", &d.risks.config),
    ] {
        if let (false, Some(min)) = (gate.violating.is_empty(), gate.fail_on) {
            reasons.push(format!(
                "{} {name} findings at or above {} ({}.fail_on)",
                gate.violating.len(),
                min.as_str(),
                if name == "secret" {
                    "secrets"
                } else {
                    "config"
                }
            ));
        }
    }
    reasons
}

/// "Image risks:" and one line per violating risk finding, leaving room
/// for the worst vulnerabilities.
fn risk_lines(m: &mut String, d: &crate::policy::Decision) {
    let risks: Vec<&Violation> = d.violations.iter().filter(|v| is_risk(v)).collect();
    if risks.is_empty() {
        return;
    }
    let _ = writeln!(m, "Image risks:");
    for v in risks {
        let line = format!("- {v}\n");
        if m.chars().count() + line.chars().count() > MAX_MESSAGE / 2 {
            let _ = writeln!(m, "- … and more (see the report)");
            break;
        }
        m.push_str(&line);
    }
}

/// "; expired ignore rules (no longer applied): …; stale ignore rules
/// (matched nothing): …", or nothing.
fn rules_note(d: &crate::policy::Decision) -> String {
    let list = |rules: &[crate::policy::IgnoreRule]| {
        truncate_chars(
            &rules
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            400,
        )
    };
    let mut s = String::new();
    if !d.expired_rules.is_empty() {
        let _ = write!(
            s,
            "; expired ignore rules, no longer applied: {}",
            list(&d.expired_rules)
        );
    }
    if !d.stale_rules.is_empty() {
        let _ = write!(
            s,
            "; ignore rules that matched nothing: {}",
            list(&d.stale_rules)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_are_cut_to_the_limit() {
        let o = Outcome::failure(FailureKind::JobFailed, "x".repeat(10_000));
        let Outcome::Failure { message, .. } = o else {
            panic!()
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE);
        assert!(message.ends_with('…'));
    }
}
