//! The verdict: severity thresholds over Inspector's findings.
//!
//! A gate fails when, for some severity, the number of distinct
//! vulnerability ids at that severity is greater than its threshold. This is
//! how Inspector's own summary counts (distinct ids per severity), so the
//! numbers a user sees in the console, in our output variables and in
//! Inspector's answer agree.

pub mod base;
pub mod cfg;
pub mod explain;
pub mod file;
pub mod risks;

use std::collections::BTreeSet;

use serde::Serialize;

pub use base::{
    Attribution, BaseImageDecision, BaseImagePolicy, BaseLayers, BaseSource, InheritedFinding,
};
pub use cfg::{PolicyError, Thresholds};
pub use explain::{FiredRule, PolicyRecord, PolicySource};
pub use file::{IgnoreRule, PolicyFile, PolicyFileError, PolicyOverrides};

use crate::inspector::{Finding, Severity};

/// Everything the policy needs; built from action properties and, when
/// one is set, a policy file ([`file::PolicyFile`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Policy {
    pub thresholds: Thresholds,
    /// Count only findings that have a fixed version. Applies to the
    /// thresholds only: a KEV, EPSS or `fail_on_ids` finding fails the gate
    /// whether or not a fix exists (suppress it with a reasoned ignore rule).
    pub fixable_only: bool,
    /// A finding in CISA's Known Exploited Vulnerabilities catalog fails.
    pub fail_on_kev: bool,
    /// A finding with an EPSS score ≥ this fails.
    pub epss_threshold: Option<f64>,
    /// These vulnerability ids fail the gate (compared case-insensitively).
    pub fail_on_ids: BTreeSet<String>,
    pub ignore: Vec<IgnoreRule>,
    /// Thresholds of their own for findings only base-image layers brought
    /// ([`base`]).
    pub base_image: Option<BaseImagePolicy>,
    /// Where this policy came from, for the record of the decision.
    pub source: PolicySource,
    /// The `secrets:`, `config:` and `signature:` sections.
    pub risks: risks::RiskPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        })
    }
}

/// Distinct vulnerability ids per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub other: u64,
}

impl Counts {
    pub fn get(&self, s: Severity) -> u64 {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Other => self.other,
        }
    }

    fn slot(&mut self, s: Severity) -> &mut u64 {
        match s {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Other => &mut self.other,
        }
    }

    /// Counts distinct ids per severity. A vulnerability id that appears
    /// with two severities (two components rated differently) counts at its
    /// worst, once.
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Counts {
        let mut worst: std::collections::BTreeMap<&str, Severity> = Default::default();
        for f in findings {
            let e = worst.entry(f.id.as_str()).or_insert(f.severity);
            if f.severity > *e {
                *e = f.severity;
            }
        }
        let mut c = Counts::default();
        for s in worst.values() {
            *c.slot(*s) += 1;
        }
        c
    }

    pub fn highest(&self) -> Option<Severity> {
        Severity::ALL_DESC.into_iter().find(|s| self.get(*s) > 0)
    }
}

/// Why the gate failed. Threshold violations keep their historical shape
/// (`severity`, `count`, `threshold`, Display "1 HIGH (threshold 0)"); the
/// per-finding rules of a policy file name the vulnerability and the rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Violation {
    /// More distinct ids at a severity than its threshold allows.
    Threshold {
        severity: Severity,
        count: u64,
        threshold: u64,
    },
    /// More distinct inherited ids (findings only base-image layers
    /// brought) at a severity than the `base_image` threshold allows.
    BaseImageThreshold {
        severity: Severity,
        count: u64,
        threshold: u64,
    },
    /// The id is listed in `fail_on_ids`.
    FailOnIds { id: String, package: String },
    /// `fail_on_kev` and the finding is in CISA KEV.
    Kev {
        id: String,
        package: String,
        date_added: String,
    },
    /// The finding's EPSS score is at or above `epss_threshold`.
    Epss {
        id: String,
        package: String,
        epss: f64,
        threshold: f64,
    },
    /// A secret or configuration finding at or above its section's
    /// `fail_on`.
    Risk {
        kind: crate::risks::RiskKind,
        rule_id: String,
        severity: Severity,
        title: String,
        at: String,
        fail_on: Severity,
    },
    /// `signature.required` and the scanned digest has no valid signature
    /// under the policy's keys and roots.
    Signature {
        /// `UNSIGNED`, `INVALID` or `NOT_CHECKED`.
        verdict: String,
        reason: String,
    },
}

impl Violation {
    /// The vulnerability a per-finding violation names.
    pub fn id(&self) -> Option<&str> {
        match self {
            Violation::Threshold { .. }
            | Violation::BaseImageThreshold { .. }
            | Violation::Risk { .. }
            | Violation::Signature { .. } => None,
            Violation::FailOnIds { id, .. }
            | Violation::Kev { id, .. }
            | Violation::Epss { id, .. } => Some(id),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pkg = |p: &str| {
            if p.is_empty() {
                String::new()
            } else {
                format!(" in {p}")
            }
        };
        match self {
            Violation::Threshold {
                severity,
                count,
                threshold,
            } => write!(f, "{count} {} (threshold {threshold})", severity.as_str()),
            Violation::BaseImageThreshold {
                severity,
                count,
                threshold,
            } => write!(
                f,
                "{count} {} inherited from the base image (base_image threshold {threshold})",
                severity.as_str()
            ),
            Violation::FailOnIds { id, package } => {
                write!(f, "{id}{} (listed in fail_on_ids)", pkg(package))
            }
            Violation::Kev {
                id,
                package,
                date_added,
            } => write!(
                f,
                "{id}{} is a known exploited vulnerability (CISA KEV since {}; fail_on_kev)",
                pkg(package),
                date_added.get(..10).unwrap_or(date_added)
            ),
            Violation::Epss {
                id,
                package,
                epss,
                threshold,
            } => write!(
                f,
                "{id}{} has EPSS {epss:.3} ≥ {threshold} (epss_threshold)",
                pkg(package)
            ),
            Violation::Signature { verdict, reason } => {
                write!(
                    f,
                    "image signature {verdict}: {reason} (signature.required)"
                )
            }
            Violation::Risk {
                kind,
                rule_id,
                severity,
                title,
                at,
                fail_on,
            } => {
                let section = match kind {
                    crate::risks::RiskKind::Secret => "secrets",
                    crate::risks::RiskKind::Config => "config",
                };
                write!(
                    f,
                    "{} {rule_id} {title} at {at} ({section}.fail_on {})",
                    severity.as_str(),
                    fail_on.as_str().to_ascii_lowercase()
                )
            }
        }
    }
}

/// A finding left out of the gate by a live ignore rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    pub id: String,
    pub severity: Severity,
    pub package: String,
    pub purl: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Index of the ignore rule in the policy file (`ignore[N]`).
    pub rule: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// All findings, per severity (what the report shows), suppressed ones
    /// included.
    pub counts: Counts,
    /// What the top-level thresholds were compared with: without suppressed
    /// findings, only fixable ones with `fixable_only`, and without inherited
    /// ones when a base image is applied.
    pub gated_counts: Counts,
    pub highest: Option<Severity>,
    pub violations: Vec<Violation>,
    /// Ids of the findings that counted toward a violation.
    pub violating_ids: BTreeSet<String>,
    /// Distinct vulnerability ids with at least one suppressed finding.
    pub suppressed: u64,
    /// One entry per suppressed finding (id, component), with its reason.
    pub suppressions: Vec<Suppression>,
    /// Ignore rules past their `expires` date: no longer applied.
    pub expired_rules: Vec<IgnoreRule>,
    /// Live ignore rules that matched no finding (candidates for removal).
    pub stale_rules: Vec<IgnoreRule>,
    /// Present when the policy has a `base_image` section.
    pub base_image: Option<BaseImageDecision>,
    /// The policy that decided: its source and what was in force.
    pub policy: PolicyRecord,
    /// Every rule that applied, failing or not, with the ids it applied to:
    /// why it failed, and why a PASS with findings passed.
    pub rules: Vec<FiredRule>,
    /// The secrets and configuration gates ([`Policy::decide_risks`]).
    pub risks: risks::RisksDecision,
}

impl Policy {
    /// Records where the policy file was read from (the input artifact's
    /// S3 object), for the decision's record.
    pub fn read_from(mut self, location: Option<String>) -> Policy {
        if let Some(f) = &mut self.source.file {
            f.location = location;
        }
        self
    }

    /// Decides with today's date (UTC) for ignore-rule expiry.
    pub fn decide(&self, findings: &[Finding]) -> Decision {
        self.decide_on(findings, file::today_utc())
    }

    /// Precedence: a live ignore rule removes a finding from every rule —
    /// thresholds, `fail_on_ids`, KEV and EPSS. An ignore rule is the
    /// narrower decision (one id, optionally one package, a mandatory reason
    /// and an expiry), so when a file both lists an id in `fail_on_ids` and
    /// ignores it, the exception wins until it expires (`policy check` warns
    /// about the overlap).
    pub fn decide_on(&self, findings: &[Finding], today: time::Date) -> Decision {
        self.decide_with(findings, today, None)
    }

    /// Decides with the findings attributed to image layers.
    ///
    /// With a `base_image` section and a base image that the scanned image
    /// is built on, the gate is split: findings only base layers brought
    /// (inherited) are counted against the `base_image` thresholds, all
    /// others against the top-level ones. A vulnerability id that also
    /// affects a component of the image's own layers counts only there, so
    /// the split never lets an own finding through. Ignore rules and
    /// `fixable_only` apply to both sides; `fail_on_ids`, KEV and EPSS apply
    /// to every finding wherever it came from (a known-exploited
    /// vulnerability is the team's problem even in a base layer; a reasoned
    /// ignore rule is the way to accept it). When the base cannot be
    /// resolved, the decision says so and the top-level thresholds apply to
    /// everything.
    pub fn decide_with(
        &self,
        findings: &[Finding],
        today: time::Date,
        attribution: Option<&Attribution>,
    ) -> Decision {
        let counts = Counts::of(findings);
        let mut base_decision = self
            .base_image
            .as_ref()
            .map(|b| BaseImageDecision::new(b, attribution));
        let inherited: Vec<bool> = match (&base_decision, attribution) {
            (Some(d), Some(a)) if d.applied => a.inherited(findings.len()),
            _ => vec![false; findings.len()],
        };
        let ignored = self.apply_ignore(findings, today);
        let split = self.split_gated(&ignored.kept, &inherited);
        let gated_counts = Counts::of(split.own.iter().copied());
        // Rules fire in this order (the report records it): top-level
        // thresholds, base-image thresholds, then the per-finding rules.
        let mut gates = Gates::default();
        gates.thresholds(
            &self.thresholds,
            &gated_counts,
            &split.own,
            |severity, count, threshold| Violation::Threshold {
                severity,
                count,
                threshold,
            },
        );
        if let Some(d) = &mut base_decision {
            d.gated_counts = Counts::of(split.inherited.iter().copied());
            describe_inherited(d, findings, &inherited, attribution);
            if d.applied {
                gates.thresholds(
                    &d.thresholds,
                    &d.gated_counts,
                    &split.inherited,
                    |severity, count, threshold| Violation::BaseImageThreshold {
                        severity,
                        count,
                        threshold,
                    },
                );
            }
        }
        gates.per_finding(self.per_finding_violations(&ignored.kept));
        let (expired_rules, stale_rules) = self.rules_to_review(&ignored.used, today);
        let mut decision = Decision {
            verdict: if gates.violations.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            counts,
            gated_counts,
            highest: counts.highest(),
            violations: gates.violations,
            violating_ids: gates.violating_ids,
            suppressed: ignored.distinct_ids(),
            suppressions: ignored.suppressions,
            expired_rules,
            stale_rules,
            base_image: base_decision,
            policy: PolicyRecord::of(self),
            rules: Vec::new(),
            risks: risks::RisksDecision::default(),
        };
        decision.rules = explain::rules(self, &decision, findings);
        decision
    }

    /// Applies the live ignore rules: a finding matched by one is suppressed
    /// (by the first rule that matches, whose reason the report shows), the
    /// others are kept with their index; `used` marks every rule that matched.
    fn apply_ignore<'a>(&self, findings: &'a [Finding], today: time::Date) -> Ignored<'a> {
        let mut out = Ignored {
            used: vec![false; self.ignore.len()],
            suppressions: Vec::new(),
            kept: Vec::new(),
        };
        for (i, f) in findings.iter().enumerate() {
            let mut first: Option<(usize, &IgnoreRule)> = None;
            for (i, r) in self.ignore.iter().enumerate() {
                if !r.is_expired(today) && r.matches(&f.id, &f.purl) {
                    out.used[i] = true;
                    first.get_or_insert((i, r));
                }
            }
            match first {
                Some((rule, r)) => out.suppressions.push(Suppression {
                    rule,
                    id: f.id.clone(),
                    severity: f.severity,
                    package: f.package.clone(),
                    purl: f.purl.clone(),
                    reason: r.reason.clone(),
                    expires: r.expires.map(file::fmt_date),
                }),
                None => out.kept.push((i, f)),
            }
        }
        out
    }

    /// (expired, stale) ignore rules: those past `expires`, and the live
    /// ones that matched no finding, for the policy's owner to review.
    fn rules_to_review(
        &self,
        used: &[bool],
        today: time::Date,
    ) -> (Vec<IgnoreRule>, Vec<IgnoreRule>) {
        let expired = self
            .ignore
            .iter()
            .filter(|r| r.is_expired(today))
            .cloned()
            .collect();
        let stale = self
            .ignore
            .iter()
            .zip(used)
            .filter(|(r, used)| !**used && !r.is_expired(today))
            .map(|(r, _)| r.clone())
            .collect();
        (expired, stale)
    }

    /// Splits the kept findings the thresholds see (only fixable ones with
    /// `fixable_only`) into the image's own and the inherited ones; an id
    /// that also affects an own component counts only as own, so the split
    /// never lets an own finding through.
    fn split_gated<'a>(&self, kept: &[(usize, &'a Finding)], inherited: &[bool]) -> Split<'a> {
        let gated: Vec<(usize, &Finding)> = kept
            .iter()
            .copied()
            .filter(|(_, f)| !self.fixable_only || f.fixed_version.is_some())
            .collect();
        let own: Vec<&Finding> = gated
            .iter()
            .filter(|(i, _)| !inherited[*i])
            .map(|(_, f)| *f)
            .collect();
        let own_ids: BTreeSet<&str> = own.iter().map(|f| f.id.as_str()).collect();
        let inherited = gated
            .iter()
            .filter(|(i, f)| inherited[*i] && !own_ids.contains(f.id.as_str()))
            .map(|(_, f)| *f)
            .collect();
        Split { own, inherited }
    }

    /// The per-finding rules (`fail_on_ids`, KEV, EPSS) over the kept
    /// findings: one violation per (rule, id), in a stable order (by rule,
    /// then id) whatever the findings' order.
    fn per_finding_violations(&self, kept: &[(usize, &Finding)]) -> Vec<Violation> {
        let mut seen: BTreeSet<(u8, String)> = BTreeSet::new();
        let mut out = Vec::new();
        for (_, f) in kept {
            if self
                .fail_on_ids
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&f.id))
                && seen.insert((0, f.id.clone()))
            {
                out.push(Violation::FailOnIds {
                    id: f.id.clone(),
                    package: f.package.clone(),
                });
            }
            if self.fail_on_kev
                && let Some(date) = &f.kev_date_added
                && seen.insert((1, f.id.clone()))
            {
                out.push(Violation::Kev {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    date_added: date.clone(),
                });
            }
            if let (Some(threshold), Some(epss)) = (self.epss_threshold, f.epss)
                && epss >= threshold
                && seen.insert((2, f.id.clone()))
            {
                out.push(Violation::Epss {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    epss,
                    threshold,
                });
            }
        }
        out.sort_by(|a, b| {
            let k = |v: &Violation| match v {
                Violation::Threshold { .. } | Violation::BaseImageThreshold { .. } => 0,
                Violation::FailOnIds { .. } => 1,
                Violation::Kev { .. } => 2,
                Violation::Epss { .. } => 3,
                Violation::Risk { .. } => 4,
                Violation::Signature { .. } => 5,
            };
            k(a).cmp(&k(b)).then_with(|| a.id().cmp(&b.id()))
        });
        out
    }

    /// Adds the secrets and configuration gates to a decision: each
    /// finding neither disabled nor allowed at or above its section's
    /// `fail_on` is a violation, and the verdict fails.
    pub fn decide_risks(
        &self,
        decision: &mut Decision,
        findings: &[crate::risks::RiskFinding],
        today: time::Date,
    ) {
        let judged = self.risks.decide(findings, today);
        for gate in [&judged.secrets, &judged.config] {
            let Some(fail_on) = gate.fail_on else {
                continue;
            };
            for &i in &gate.violating {
                let f = &findings[i];
                decision.violations.push(Violation::Risk {
                    kind: f.kind,
                    rule_id: f.rule_id.clone(),
                    severity: f.severity,
                    title: f.title.clone(),
                    at: risks::location_text(&f.location),
                    fail_on,
                });
            }
        }
        if !decision.violations.is_empty() {
            decision.verdict = Verdict::Fail;
        }
        let fired = explain::risk_rules(decision);
        decision.rules.extend(fired);
        decision.risks = judged;
    }

    /// Judges the signature check: with `signature.required`, anything but
    /// a verified signature fails the gate (fail closed).
    pub fn decide_signature(
        &self,
        decision: &mut Decision,
        verdict: &crate::signature::SignatureVerdict,
    ) {
        if !verdict.fails(self.risks.signature.required) {
            return;
        }
        let v = Violation::Signature {
            verdict: verdict.name().to_owned(),
            reason: verdict.reason(),
        };
        decision
            .rules
            .push(explain::violation_rule(&v, decision, &[]));
        decision.violations.push(v);
        decision.verdict = Verdict::Fail;
    }
}

/// What the ignore rules left of the findings ([`Policy::apply_ignore`]).
struct Ignored<'a> {
    /// Per ignore rule: whether it matched a finding (else it is stale).
    used: Vec<bool>,
    suppressions: Vec<Suppression>,
    /// Findings no live rule matched, with their index in the input.
    kept: Vec<(usize, &'a Finding)>,
}

impl Ignored<'_> {
    /// Distinct vulnerability ids with a suppressed finding: what the
    /// report counts as "suppressed".
    fn distinct_ids(&self) -> u64 {
        self.suppressions
            .iter()
            .map(|s| s.id.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64
    }
}

/// The gated findings, split between the thresholds that judge them.
struct Split<'a> {
    /// Judged by the top-level thresholds.
    own: Vec<&'a Finding>,
    /// Judged by the `base_image` thresholds (when applied).
    inherited: Vec<&'a Finding>,
}

/// The violations found so far and the ids that counted toward them,
/// appended in the order the rules fire.
#[derive(Default)]
struct Gates {
    violations: Vec<Violation>,
    violating_ids: BTreeSet<String>,
}

impl Gates {
    /// One violation per severity whose count exceeds its threshold; every
    /// finding of that severity in `scope` counted toward it.
    fn thresholds(
        &mut self,
        thresholds: &Thresholds,
        counts: &Counts,
        scope: &[&Finding],
        make: fn(Severity, u64, u64) -> Violation,
    ) {
        for s in Severity::ALL_DESC {
            if let Some(threshold) = thresholds.get(s) {
                let count = counts.get(s);
                if count > threshold {
                    self.violations.push(make(s, count, threshold));
                    self.violating_ids.extend(
                        scope
                            .iter()
                            .filter(|f| f.severity == s)
                            .map(|f| f.id.clone()),
                    );
                }
            }
        }
    }

    /// Appends the per-finding rules' violations (already in their stable
    /// order) after the thresholds'.
    fn per_finding(&mut self, violations: Vec<Violation>) {
        self.violating_ids
            .extend(violations.iter().filter_map(|v| v.id().map(str::to_owned)));
        self.violations.extend(violations);
    }
}

/// Fills in what the base image brought, for the report: the counts of ids
/// only base layers brought, and every inherited finding with its layers.
fn describe_inherited(
    d: &mut BaseImageDecision,
    findings: &[Finding],
    inherited: &[bool],
    attribution: Option<&Attribution>,
) {
    let all_own: BTreeSet<&str> = findings
        .iter()
        .zip(inherited)
        .filter(|(_, inh)| !**inh)
        .map(|(f, _)| f.id.as_str())
        .collect();
    d.counts = Counts::of(
        findings
            .iter()
            .zip(inherited)
            .filter(|(f, inh)| **inh && !all_own.contains(f.id.as_str()))
            .map(|(f, _)| f),
    );
    d.inherited = findings
        .iter()
        .zip(inherited)
        .enumerate()
        .filter(|(_, (_, inh))| **inh)
        .map(|(i, (f, _))| base::InheritedFinding {
            id: f.id.clone(),
            severity: f.severity,
            package: f.package.clone(),
            purl: f.purl.clone(),
            layers: attribution
                .and_then(|a| a.layers.get(i))
                .map(|l| l.iter().copied().collect())
                .unwrap_or_default(),
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, sev: Severity, fixed: bool) -> Finding {
        Finding {
            id: id.into(),
            severity: sev,
            fixed_version: fixed.then(|| "1.0".to_string()),
            ..Finding::default()
        }
    }

    #[test]
    fn defaults_fail_on_any_critical_or_high() {
        let p = Policy::default();
        assert_eq!(p.decide(&[]).verdict, Verdict::Pass);
        assert_eq!(
            p.decide(&[f("A", Severity::Medium, true), f("B", Severity::Low, true)])
                .verdict,
            Verdict::Pass
        );
        let d = p.decide(&[f("A", Severity::High, false)]);
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(
            d.violations,
            vec![Violation::Threshold {
                severity: Severity::High,
                count: 1,
                threshold: 0
            }]
        );
        assert_eq!(d.highest, Some(Severity::High));
    }

    #[test]
    fn fails_only_when_count_is_greater_than_threshold() {
        let p = Policy {
            thresholds: Thresholds {
                high: Some(2),
                ..Thresholds::default()
            },
            ..Policy::default()
        };
        let two = [f("A", Severity::High, true), f("B", Severity::High, true)];
        assert_eq!(p.decide(&two).verdict, Verdict::Pass);
        let three = [
            f("A", Severity::High, true),
            f("B", Severity::High, true),
            f("C", Severity::High, true),
        ];
        assert_eq!(p.decide(&three).verdict, Verdict::Fail);
    }

    #[test]
    fn counts_distinct_ids_at_their_worst_severity() {
        let c = Counts::of(&[
            f("A", Severity::High, true),
            f("A", Severity::High, true),
            f("A", Severity::Critical, true),
            f("B", Severity::Other, false),
        ]);
        assert_eq!(c.critical, 1);
        assert_eq!(c.high, 0);
        assert_eq!(c.other, 1);
    }

    #[test]
    fn fixable_only_ignores_unfixed_findings_for_the_gate_but_still_counts_them() {
        let p = Policy {
            fixable_only: true,
            ..Policy::default()
        };
        let d = p.decide(&[f("A", Severity::Critical, false)]);
        assert_eq!(d.verdict, Verdict::Pass);
        assert_eq!(d.counts.critical, 1);
        assert_eq!(d.gated_counts.critical, 0);
        let d = p.decide(&[f("A", Severity::Critical, true)]);
        assert_eq!(d.verdict, Verdict::Fail);
        assert!(d.violating_ids.contains("A"));
    }

    #[test]
    fn unlimited_medium_and_low_by_default() {
        let many: Vec<Finding> = (0..50)
            .map(|i| f(&format!("M{i}"), Severity::Medium, true))
            .collect();
        assert_eq!(Policy::default().decide(&many).verdict, Verdict::Pass);
    }

    fn at(id: &str, sev: Severity, purl: &str) -> Finding {
        Finding {
            id: id.into(),
            severity: sev,
            package: purl
                .split('/')
                .next_back()
                .unwrap_or("")
                .split('@')
                .next()
                .unwrap_or("")
                .into(),
            purl: purl.into(),
            ..Finding::default()
        }
    }

    fn rule(id: &str, package: Option<&str>, expires: Option<time::Date>) -> IgnoreRule {
        IgnoreRule {
            id: id.into(),
            package: package.map(str::to_owned),
            reason: format!("reason for {id}"),
            expires,
        }
    }

    const TODAY: time::Date = time::macros::date!(2026 - 06 - 15);
    const SYSTEMD: &str = "pkg:deb/debian/systemd@252.22-1~deb12u1?arch=amd64";
    const UDEV: &str = "pkg:deb/debian/libudev1@252.22-1~deb12u1?arch=amd64";

    #[test]
    fn ignore_rules_suppress_from_the_gate_and_are_counted() {
        let p = Policy {
            ignore: vec![rule("CVE-1", None, None)],
            ..Policy::default()
        };
        let d = p.decide_on(
            &[
                at("CVE-1", Severity::High, SYSTEMD),
                at("CVE-1", Severity::High, UDEV),
            ],
            TODAY,
        );
        assert_eq!(d.verdict, Verdict::Pass);
        assert_eq!(d.suppressed, 1, "distinct ids");
        assert_eq!(d.suppressions.len(), 2, "one per finding");
        assert_eq!(d.suppressions[0].reason, "reason for CVE-1");
        assert_eq!(d.counts.high, 1, "the report still shows it");
        assert_eq!(d.gated_counts.high, 0);
        assert!(d.stale_rules.is_empty() && d.expired_rules.is_empty());
        // Case-insensitive ids.
        let p = Policy {
            ignore: vec![rule("cve-1", None, None)],
            ..Policy::default()
        };
        assert_eq!(
            p.decide_on(&[at("CVE-1", Severity::High, SYSTEMD)], TODAY)
                .verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn purl_prefix_limits_a_rule_to_some_components() {
        let p = Policy {
            ignore: vec![rule("CVE-1", Some("pkg:deb/debian/systemd"), None)],
            ..Policy::default()
        };
        let d = p.decide_on(
            &[
                at("CVE-1", Severity::High, SYSTEMD),
                at("CVE-1", Severity::High, UDEV),
            ],
            TODAY,
        );
        assert_eq!(d.verdict, Verdict::Fail, "libudev1 still has it");
        assert_eq!(d.suppressed, 1);
        assert_eq!(d.suppressions.len(), 1);
        assert_eq!(d.gated_counts.high, 1);
        // Not a prefix at a boundary: "system" does not name systemd.
        let p = Policy {
            ignore: vec![rule("CVE-1", Some("pkg:deb/debian/system"), None)],
            ..Policy::default()
        };
        let d = p.decide_on(&[at("CVE-1", Severity::High, SYSTEMD)], TODAY);
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.stale_rules.len(), 1);
    }

    #[test]
    fn expired_rules_stop_applying_after_their_date_and_are_listed() {
        let f = [at("CVE-1", Severity::High, SYSTEMD)];
        let on_the_day = Policy {
            ignore: vec![rule("CVE-1", None, Some(TODAY))],
            ..Policy::default()
        };
        let d = on_the_day.decide_on(&f, TODAY);
        assert_eq!(d.verdict, Verdict::Pass, "applies on its last day");
        let d = on_the_day.decide_on(&f, TODAY.next_day().unwrap());
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.suppressed, 0);
        assert_eq!(d.expired_rules.len(), 1);
        assert!(d.stale_rules.is_empty(), "expired is not also stale");
        assert!(
            d.expired_rules[0]
                .to_string()
                .contains("expires 2026-06-15")
        );
    }

    #[test]
    fn rules_that_match_nothing_are_stale() {
        let p = Policy {
            ignore: vec![rule("CVE-1", None, None), rule("CVE-9", None, None)],
            ..Policy::default()
        };
        let d = p.decide_on(&[at("CVE-1", Severity::Low, SYSTEMD)], TODAY);
        assert_eq!(d.stale_rules.len(), 1);
        assert_eq!(d.stale_rules[0].id, "CVE-9");
        // Two rules matching the same finding are both in use.
        let p = Policy {
            ignore: vec![
                rule("CVE-1", None, None),
                rule("CVE-1", Some("pkg:deb/debian/systemd"), None),
            ],
            ..Policy::default()
        };
        let d = p.decide_on(&[at("CVE-1", Severity::Low, SYSTEMD)], TODAY);
        assert!(d.stale_rules.is_empty());
    }

    #[test]
    fn fail_on_ids_fails_whatever_the_thresholds() {
        let p = Policy {
            thresholds: Thresholds {
                critical: None,
                high: None,
                ..Thresholds::default()
            },
            fail_on_ids: ["cve-2021-44228".to_owned()].into(),
            ..Policy::default()
        };
        let d = p.decide_on(
            &[at(
                "CVE-2021-44228",
                Severity::Low,
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            )],
            TODAY,
        );
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(
            d.violations[0].to_string(),
            "CVE-2021-44228 in log4j-core (listed in fail_on_ids)"
        );
        assert!(d.violating_ids.contains("CVE-2021-44228"));
    }

    #[test]
    fn a_live_ignore_rule_wins_over_fail_on_ids_until_it_expires() {
        let f = [at("CVE-1", Severity::Low, SYSTEMD)];
        let p = Policy {
            fail_on_ids: ["CVE-1".to_owned()].into(),
            ignore: vec![rule("CVE-1", None, Some(TODAY))],
            ..Policy::default()
        };
        assert_eq!(p.decide_on(&f, TODAY).verdict, Verdict::Pass);
        let d = p.decide_on(&f, TODAY.next_day().unwrap());
        assert_eq!(d.verdict, Verdict::Fail);
        assert!(matches!(d.violations[0], Violation::FailOnIds { .. }));
    }

    #[test]
    fn kev_findings_fail_when_fail_on_kev() {
        let mut f = at("CVE-2021-3156", Severity::Low, "pkg:deb/debian/sudo@1.8");
        f.kev_date_added = Some("2022-04-06T00:00:00Z".into());
        let f = [f, at("CVE-2", Severity::Low, SYSTEMD)];
        assert_eq!(
            Policy::default().decide_on(&f, TODAY).verdict,
            Verdict::Pass
        );
        let p = Policy {
            fail_on_kev: true,
            ..Policy::default()
        };
        let d = p.decide_on(&f, TODAY);
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.violations.len(), 1);
        assert_eq!(
            d.violations[0].to_string(),
            "CVE-2021-3156 in sudo is a known exploited vulnerability (CISA KEV since 2022-04-06; fail_on_kev)"
        );
        assert_eq!(
            d.violating_ids.iter().collect::<Vec<_>>(),
            vec!["CVE-2021-3156"]
        );
        // fixable_only does not exempt it.
        let p = Policy {
            fail_on_kev: true,
            fixable_only: true,
            ..Policy::default()
        };
        assert_eq!(p.decide_on(&f, TODAY).verdict, Verdict::Fail);
        // A live ignore rule does.
        let p = Policy {
            fail_on_kev: true,
            ignore: vec![rule("CVE-2021-3156", Some("pkg:deb/debian/sudo"), None)],
            ..Policy::default()
        };
        assert_eq!(p.decide_on(&f, TODAY).verdict, Verdict::Pass);
    }

    #[test]
    fn epss_at_or_above_the_threshold_fails() {
        let with = |id: &str, e: Option<f64>| Finding {
            epss: e,
            ..at(id, Severity::Low, SYSTEMD)
        };
        let p = Policy {
            epss_threshold: Some(0.7),
            ..Policy::default()
        };
        assert_eq!(
            p.decide_on(&[with("A", Some(0.69)), with("B", None)], TODAY)
                .verdict,
            Verdict::Pass
        );
        let d = p.decide_on(&[with("A", Some(0.7)), with("A", Some(0.7))], TODAY);
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.violations.len(), 1, "one per id");
        assert_eq!(
            d.violations[0].to_string(),
            "A in systemd has EPSS 0.700 ≥ 0.7 (epss_threshold)"
        );
    }

    #[test]
    fn violations_are_ordered_thresholds_first_and_serialize_with_their_rule() {
        let mut k = at("K", Severity::High, SYSTEMD);
        k.kev_date_added = Some("2024-01-01".into());
        k.epss = Some(0.9);
        let p = Policy {
            fail_on_kev: true,
            epss_threshold: Some(0.5),
            fail_on_ids: ["K".to_owned()].into(),
            ..Policy::default()
        };
        let d = p.decide_on(&[k], TODAY);
        let rules: Vec<String> = d
            .violations
            .iter()
            .map(|v| {
                serde_json::to_value(v).unwrap()["rule"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(rules, ["threshold", "fail_on_ids", "kev", "epss"]);
        let v = serde_json::to_value(&d.violations[0]).unwrap();
        assert_eq!(v["severity"], "HIGH");
        assert_eq!(v["count"], 1);
        assert_eq!(v["threshold"], 0);
        assert_eq!(d.violations[0].to_string(), "1 HIGH (threshold 0)");
    }

    fn attributed(layers: &[&[usize]], base: Result<BaseLayers, String>) -> Attribution {
        Attribution {
            layers: layers.iter().map(|l| l.iter().copied().collect()).collect(),
            image_layers: 2,
            base,
        }
    }

    /// A one-layer base under a two-layer image.
    fn one_layer_base() -> Result<BaseLayers, String> {
        let ids = ["sha256:aa".to_owned(), "sha256:bb".to_owned()];
        Ok(BaseLayers::compare(
            "debian:bookworm-slim".into(),
            BaseSource::Policy,
            Some("sha256:base".into()),
            &ids[..1],
            &ids,
        ))
    }

    fn with_base(critical: Option<u64>, high: Option<u64>) -> Policy {
        Policy {
            base_image: Some(BaseImagePolicy {
                reference: Some("debian:bookworm-slim".into()),
                thresholds: Thresholds {
                    critical,
                    high,
                    ..Thresholds::default()
                },
            }),
            ..Policy::default()
        }
    }

    #[test]
    fn inherited_findings_follow_the_base_thresholds_and_the_rest_the_main_ones() {
        let findings = [
            at("CVE-BASE", Severity::Critical, SYSTEMD),
            at("CVE-APP", Severity::Medium, "pkg:npm/app@1"),
        ];
        let a = attributed(&[&[0], &[1]], one_layer_base());
        let d = with_base(None, None).decide_with(&findings, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Pass, "{:?}", d.violations);
        assert_eq!(d.counts.critical, 1, "still reported");
        assert_eq!(d.gated_counts.critical, 0);
        let b = d.base_image.as_ref().unwrap();
        assert!(b.applied && b.warning.is_none());
        assert_eq!((b.base_layers, b.matched_layers, b.image_layers), (1, 1, 2));
        assert_eq!(b.counts.critical, 1);
        assert_eq!(b.inherited.len(), 1);
        assert_eq!(b.inherited[0].id, "CVE-BASE");
        assert_eq!(b.inherited[0].layers, vec![0]);
        let v = serde_json::to_value(b).unwrap();
        assert_eq!(v["source"], "policy");
        assert_eq!(v["thresholds"]["critical"], serde_json::Value::Null);

        // A base threshold of 0 fails on the inherited finding, naming it.
        let d = with_base(Some(0), None).decide_with(&findings, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(
            d.violations,
            vec![Violation::BaseImageThreshold {
                severity: Severity::Critical,
                count: 1,
                threshold: 0
            }]
        );
        assert_eq!(
            d.violations[0].to_string(),
            "1 CRITICAL inherited from the base image (base_image threshold 0)"
        );
        assert!(d.violating_ids.contains("CVE-BASE"));
        assert_eq!(
            serde_json::to_value(&d.violations[0]).unwrap()["rule"],
            "base_image_threshold"
        );

        // The main thresholds still see the image's own findings.
        let own_high = [
            at("CVE-BASE", Severity::Critical, SYSTEMD),
            at("CVE-APP", Severity::High, "pkg:npm/app@1"),
        ];
        let d = with_base(None, None).decide_with(&own_high, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.violations.len(), 1);
        assert!(matches!(
            d.violations[0],
            Violation::Threshold {
                severity: Severity::High,
                ..
            }
        ));
        assert_eq!(d.violating_ids.iter().collect::<Vec<_>>(), vec!["CVE-APP"]);
    }

    #[test]
    fn an_id_that_also_affects_an_own_component_is_gated_as_own() {
        let findings = [
            at("CVE-1", Severity::Critical, SYSTEMD),
            at("CVE-1", Severity::Critical, "pkg:npm/app@1"),
            // Brought by both layers (a package upgraded in the app layer).
            at("CVE-2", Severity::High, UDEV),
        ];
        let a = attributed(&[&[0], &[1], &[0, 1]], one_layer_base());
        let d = with_base(None, None).decide_with(&findings, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.gated_counts.critical, 1);
        assert_eq!(d.gated_counts.high, 1, "two layers: not only the base");
        let b = d.base_image.unwrap();
        assert_eq!(b.inherited.len(), 1, "the systemd finding alone");
        assert_eq!(b.counts, Counts::default(), "no id is only inherited");
    }

    #[test]
    fn an_unresolved_or_unrelated_base_leaves_every_finding_to_the_main_thresholds() {
        let findings = [at("CVE-BASE", Severity::Critical, SYSTEMD)];
        let a = attributed(&[&[0]], Err("registry said 404".into()));
        let d = with_base(None, None).decide_with(&findings, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail);
        let b = d.base_image.unwrap();
        assert!(!b.applied);
        let w = b.warning.unwrap();
        assert!(
            w.contains("could not be resolved (registry said 404)"),
            "{w}"
        );
        assert!(
            w.contains("top-level thresholds apply to every finding"),
            "{w}"
        );
        assert!(b.inherited.is_empty());

        let ids = ["sha256:aa".to_owned(), "sha256:bb".to_owned()];
        let moved = BaseLayers::compare(
            "debian:bookworm-slim".into(),
            BaseSource::Annotation,
            None,
            &["sha256:aa".to_owned(), "sha256:cc".to_owned()],
            &ids,
        );
        let a = attributed(&[&[0]], Ok(moved));
        let d = with_base(None, None).decide_with(&findings, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail);
        let w = d.base_image.unwrap().warning.unwrap();
        assert!(w.contains("not built on debian:bookworm-slim"), "{w}");
        assert!(w.contains("first 1 of the base's 2 layers"), "{w}");

        // No attribution at all (e.g. a caller that did not compute it).
        let d = with_base(None, None).decide_on(&findings, TODAY);
        assert_eq!(d.verdict, Verdict::Fail);
        assert!(d.base_image.unwrap().warning.is_some());
        // And without a base_image section the attribution changes nothing.
        let a = attributed(&[&[0]], one_layer_base());
        let d = Policy::default().decide_with(&findings, TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail);
        assert!(d.base_image.is_none());
    }

    #[test]
    fn ignore_fixable_only_and_kev_still_apply_to_inherited_findings() {
        let mut kev = at("CVE-KEV", Severity::Low, SYSTEMD);
        kev.kev_date_added = Some("2024-01-01".into());
        let a = attributed(&[&[0]], one_layer_base());
        let p = Policy {
            fail_on_kev: true,
            ..with_base(None, None)
        };
        let d = p.decide_with(std::slice::from_ref(&kev), TODAY, Some(&a));
        assert_eq!(d.verdict, Verdict::Fail, "KEV fails wherever it came from");
        assert!(matches!(d.violations[0], Violation::Kev { .. }));
        let p = Policy {
            ignore: vec![rule("CVE-KEV", None, None)],
            ..p
        };
        let d = p.decide_with(std::slice::from_ref(&kev), TODAY, Some(&a));
        assert_eq!(
            d.verdict,
            Verdict::Pass,
            "a reasoned ignore rule accepts it"
        );
        assert_eq!(d.base_image.unwrap().inherited.len(), 1, "still listed");

        let unfixed = [f("CVE-U", Severity::Critical, false)];
        let p = Policy {
            fixable_only: true,
            ..with_base(Some(0), None)
        };
        let d = p.decide_with(&unfixed, TODAY, Some(&a));
        assert_eq!(
            d.verdict,
            Verdict::Pass,
            "fixable_only applies to the base side"
        );
        assert_eq!(d.base_image.unwrap().gated_counts.critical, 0);
    }

    #[test]
    fn policy_file_end_to_end_on_the_real_debian_answer() {
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                std::env::var_os("SCANGATE_SHARED_DIR")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| {
                        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
                    })
                    .join("fixtures/inspector/scans/debian_latest.json.scan"),
            )
            .unwrap(),
        )
        .unwrap();
        let findings = crate::inspector::findings::from_answer(&doc["sbom"]);
        assert_eq!(
            Policy::default().decide_on(&findings, TODAY).verdict,
            Verdict::Fail
        );
        let file = PolicyFile::parse(
            "scangate.yaml",
            "version: 1\nignore:\n  - id: CVE-2023-50387\n    package: pkg:deb/debian/systemd\n    reason: no DNSSEC validation in this image\n    expires: 2026-06-15\n",
        )
        .unwrap();
        let p = file.to_policy(&PolicyOverrides::default());
        let d = p.decide_on(&findings, TODAY);
        assert_eq!(d.verdict, Verdict::Pass, "{:?}", d.violations);
        assert_eq!(d.suppressed, 1);
        let d = p.decide_on(&findings, TODAY.next_day().unwrap());
        assert_eq!(d.verdict, Verdict::Fail);
        assert_eq!(d.expired_rules.len(), 1);
    }
}
