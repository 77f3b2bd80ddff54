//! The policy that decided, as a record an auditor can read: where it came
//! from (defaults, action properties or flags, a policy file with its
//! location and SHA-256), what was in force after the overrides, and which
//! rules fired on which findings (DESIGN.md, "What the pipeline gets back").
//!
//! A PASS with findings must say why it passed ("3 HIGH counted, at most 5
//! allowed", "1 suppressed by ignore rule …"), so every severity that has
//! findings gets a line, failing or not.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Decision, Policy, Thresholds, Violation};
use crate::inspector::{Finding, Severity};

/// Where the policy in force came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Nothing was set: critical 0, high 0, the rest unlimited.
    #[default]
    Defaults,
    /// Threshold or FixableOnly action properties on top of the defaults.
    ActionProperties,
    /// `scangate scan` flags on top of the defaults.
    CommandLine,
    /// A policy file (properties or flags may override parts of it).
    PolicyFile,
}

/// Who set the overrides: the action's properties or the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverrideVia {
    #[default]
    ActionProperties,
    CommandLine,
}

/// The policy file a decision used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileSource {
    /// As named by `PolicyFile` or `--policy`.
    pub path: String,
    /// Hex SHA-256 of the exact bytes parsed, so an auditor can tell which
    /// revision of the file decided.
    pub sha256: String,
    /// Where the file was read from (the input artifact's S3 object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicySource {
    pub kind: SourceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSource>,
    /// The properties or flags that were set (`HighThreshold=5`); they win
    /// over the file.
    pub overrides: Vec<String>,
}

impl PolicySource {
    /// One line: "policy file scangate.yaml (sha256 ab12…, s3://…) with
    /// HighThreshold=5 overriding it".
    pub fn describe(&self) -> String {
        let set = self.overrides.join(", ");
        match (&self.file, self.kind) {
            (Some(f), _) => {
                let mut s = format!("policy file {} (sha256 {}", f.path, f.sha256);
                if let Some(l) = &f.location {
                    s.push_str(&format!(", from {l}"));
                }
                s.push(')');
                if !set.is_empty() {
                    s.push_str(&format!(", overridden by {set}"));
                }
                s
            }
            (None, SourceKind::ActionProperties) => {
                format!("action properties {set} on top of the defaults")
            }
            (None, SourceKind::CommandLine) => format!("flags {set} on top of the defaults"),
            (None, _) => "the defaults (no policy file, no threshold set)".to_owned(),
        }
    }
}

/// The effective policy after the overrides, as recorded with a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyRecord {
    pub source: PolicySource,
    /// `null`: unlimited.
    pub thresholds: Thresholds,
    pub fixable_only: bool,
    pub fail_on_kev: bool,
    pub epss_threshold: Option<f64>,
    pub fail_on_ids: Vec<String>,
    pub ignore_rules: usize,
    /// The `base_image` section's thresholds, when it has one.
    pub base_image_thresholds: Option<Thresholds>,
}

impl PolicyRecord {
    pub fn of(p: &Policy) -> PolicyRecord {
        PolicyRecord {
            source: p.source.clone(),
            thresholds: p.thresholds,
            fixable_only: p.fixable_only,
            fail_on_kev: p.fail_on_kev,
            epss_threshold: p.epss_threshold,
            fail_on_ids: p.fail_on_ids.iter().cloned().collect(),
            ignore_rules: p.ignore.len(),
            base_image_thresholds: p.base_image.as_ref().map(|b| b.thresholds),
        }
    }

    /// "critical 0, high 0, medium unlimited, low unlimited, other unlimited".
    pub fn thresholds_text(&self) -> String {
        thresholds_text(&self.thresholds)
    }

    /// The gates besides the thresholds, as short phrases.
    pub fn gates(&self) -> Vec<String> {
        let mut g = vec![format!(
            "fixable_only {}",
            if self.fixable_only {
                "on (thresholds count only findings with a fixed version)"
            } else {
                "off"
            }
        )];
        g.push(format!(
            "fail_on_kev {}",
            if self.fail_on_kev { "on" } else { "off" }
        ));
        g.push(match self.epss_threshold {
            Some(t) => format!("epss_threshold {t}"),
            None => "epss_threshold off".to_owned(),
        });
        if !self.fail_on_ids.is_empty() {
            g.push(format!("fail_on_ids {}", self.fail_on_ids.join(", ")));
        }
        g.push(format!("{} ignore rule(s)", self.ignore_rules));
        if let Some(b) = &self.base_image_thresholds {
            g.push(format!("base_image thresholds: {}", thresholds_text(b)));
        }
        g
    }
}

pub fn thresholds_text(t: &Thresholds) -> String {
    Severity::ALL_DESC
        .iter()
        .map(|s| {
            let v = t.get(*s).map_or("unlimited".to_owned(), |n| n.to_string());
            format!("{} {v}", s.as_str().to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a fired rule did to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// It made the gate fail.
    Fail,
    /// Findings it looked at stayed within the policy.
    Pass,
    /// It took findings out of the gate.
    Suppress,
}

/// One rule that applied to this scan's findings, with the ids it applied
/// to (capped: [`MAX_IDS`]; `total` says how many there were).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredRule {
    /// `thresholds.high`, `fail_on_kev`, `ignore[0]`, `base_image.thresholds.critical` …
    pub rule: String,
    pub effect: Effect,
    pub text: String,
    pub ids: Vec<String>,
    pub total: usize,
}

/// Ids listed per rule; a policy on a large image would otherwise repeat
/// hundreds of ids in every report.
pub const MAX_IDS: usize = 20;

fn fired(rule: String, effect: Effect, text: String, ids: BTreeSet<&str>) -> FiredRule {
    let total = ids.len();
    FiredRule {
        rule,
        effect,
        text,
        ids: ids.into_iter().take(MAX_IDS).map(str::to_owned).collect(),
        total,
    }
}

fn field(s: Severity) -> String {
    s.as_str().to_ascii_lowercase()
}

/// The rules that decided, in order: failing rules first, then what passed
/// and why, then suppressions.
pub fn rules(p: &Policy, d: &Decision, findings: &[Finding]) -> Vec<FiredRule> {
    let mut out = Vec::new();
    for v in &d.violations {
        out.push(violation_rule(v, d, findings));
    }
    let violated: BTreeSet<Severity> = d
        .violations
        .iter()
        .filter_map(|v| match v {
            Violation::Threshold { severity, .. } => Some(*severity),
            _ => None,
        })
        .collect();
    for s in Severity::ALL_DESC {
        if d.counts.get(s) == 0 || violated.contains(&s) {
            continue;
        }
        out.push(passing_rule(p, d, findings, s));
    }
    out.extend(suppression_rules(p, d));
    out
}

pub(super) fn violation_rule(v: &Violation, d: &Decision, findings: &[Finding]) -> FiredRule {
    let (rule, ids): (String, BTreeSet<&str>) = match v {
        Violation::Threshold { severity, .. } => (
            format!("thresholds.{}", field(*severity)),
            violating_at(d, findings, *severity),
        ),
        Violation::BaseImageThreshold { severity, .. } => (
            format!("base_image.thresholds.{}", field(*severity)),
            violating_at(d, findings, *severity),
        ),
        Violation::FailOnIds { id, .. } => ("fail_on_ids".into(), [id.as_str()].into()),
        Violation::Kev { id, .. } => ("fail_on_kev".into(), [id.as_str()].into()),
        Violation::Epss { id, .. } => ("epss_threshold".into(), [id.as_str()].into()),
        Violation::Risk { kind, rule_id, .. } => {
            let section = match kind {
                crate::risks::RiskKind::Secret => "secrets",
                crate::risks::RiskKind::Config => "config",
            };
            (format!("{section}.fail_on"), [rule_id.as_str()].into())
        }
        Violation::Signature { .. } => ("signature.required".into(), BTreeSet::new()),
    };
    fired(rule, Effect::Fail, v.to_string(), ids)
}

/// The rules that fired for the image-risk violations, which are judged
/// after the vulnerabilities ([`Policy::decide_risks`]).
pub(super) fn risk_rules(d: &Decision) -> Vec<FiredRule> {
    d.violations
        .iter()
        .filter(|v| matches!(v, Violation::Risk { .. }))
        .map(|v| violation_rule(v, d, &[]))
        .collect()
}

fn violating_at<'a>(d: &Decision, findings: &'a [Finding], s: Severity) -> BTreeSet<&'a str> {
    findings
        .iter()
        .filter(|f| f.severity == s && d.violating_ids.contains(&f.id))
        .map(|f| f.id.as_str())
        .collect()
}

/// Why the findings at `s` did not fail the gate.
fn passing_rule(p: &Policy, d: &Decision, findings: &[Finding], s: Severity) -> FiredRule {
    let all: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.severity == s)
        .map(|f| f.id.as_str())
        .collect();
    let name = s.as_str();
    let counted = d.gated_counts.get(s);
    let mut text = match p.thresholds.get(s) {
        None => format!(
            "{} {name}: no {name} threshold (unlimited){}",
            all.len(),
            if s == Severity::Other {
                "; set thresholds.other or --other-threshold to gate them"
            } else {
                ""
            }
        ),
        Some(t) => format!(
            "{} {name}: {counted} counted, at most {t} allowed",
            all.len()
        ),
    };
    let mut why = Vec::new();
    let suppressed = d
        .suppressions
        .iter()
        .filter(|x| x.severity == s)
        .map(|x| x.id.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    if suppressed > 0 {
        why.push(format!("{suppressed} suppressed by ignore rules"));
    }
    if p.fixable_only && p.thresholds.get(s).is_some() {
        let unfixed = findings
            .iter()
            .filter(|f| f.severity == s && f.fixed_version.is_none())
            .map(|f| f.id.as_str())
            .collect::<BTreeSet<_>>()
            .len();
        if unfixed > 0 {
            why.push(format!("{unfixed} without a fixed version (fixable_only)"));
        }
    }
    if let Some(b) = d.base_image.as_ref().filter(|b| b.applied) {
        let inherited = b.counts.get(s);
        if inherited > 0 {
            why.push(format!(
                "{inherited} inherited from the base image, judged by base_image thresholds ({})",
                b.thresholds
                    .get(s)
                    .map_or("unlimited".to_owned(), |t| format!("at most {t}"))
            ));
        }
    }
    if !why.is_empty() && p.thresholds.get(s).is_some() {
        text.push_str(&format!(" ({})", why.join("; ")));
    }
    let exploited = findings
        .iter()
        .filter(|f| f.severity == s && f.exploit_available && f.fixed_version.is_some())
        .map(|f| f.id.as_str())
        .collect::<BTreeSet<_>>();
    if s == Severity::Other && !exploited.is_empty() {
        text.push_str(&format!(
            "; {} of them have a public exploit and a fix",
            exploited.len()
        ));
    }
    fired(format!("thresholds.{}", field(s)), Effect::Pass, text, all)
}

/// One entry per ignore rule that suppressed something.
fn suppression_rules(p: &Policy, d: &Decision) -> Vec<FiredRule> {
    let mut by_rule: BTreeMap<usize, Vec<&super::Suppression>> = BTreeMap::new();
    for x in &d.suppressions {
        by_rule.entry(x.rule).or_default().push(x);
    }
    by_rule
        .into_iter()
        .filter_map(|(i, xs)| {
            let r = p.ignore.get(i)?;
            let ids: BTreeSet<&str> = xs.iter().map(|x| x.id.as_str()).collect();
            let packages: BTreeSet<&str> = xs.iter().map(|x| x.package.as_str()).collect();
            let until = r.expires.map_or("with no expiry".to_owned(), |e| {
                format!("until {}", super::file::fmt_date(e))
            });
            let text = format!(
                "{} finding(s) in {} suppressed by ignore rule {} {until}: {}",
                xs.len(),
                packages.into_iter().collect::<Vec<_>>().join(", "),
                r.id,
                r.reason
            );
            Some(fired(format!("ignore[{i}]"), Effect::Suppress, text, ids))
        })
        .collect()
}
