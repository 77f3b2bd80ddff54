//! The verdict: severity thresholds over Inspector's findings.
//!
//! A gate fails when, for some severity, the number of distinct
//! vulnerability ids at that severity is greater than its threshold. This is
//! how Inspector's own summary counts (distinct ids per severity), so the
//! numbers a user sees in the console, in our output variables and in
//! Inspector's answer agree.

pub mod cfg;

use std::collections::BTreeSet;

use serde::Serialize;

pub use cfg::{PolicyError, Thresholds};

use crate::inspector::{Finding, Severity};

/// Everything the policy needs; built from action properties (and, in a
/// later issue, a policy file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub thresholds: Thresholds,
    /// Count only findings that have a fixed version.
    pub fixable_only: bool,
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

/// Why the gate failed, one entry per exceeded threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub severity: Severity,
    pub count: u64,
    pub threshold: u64,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (threshold {})",
            self.count,
            self.severity.as_str(),
            self.threshold
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// All findings, per severity (what the report shows).
    pub counts: Counts,
    /// What the thresholds were compared with (differs with `fixable_only`).
    pub gated_counts: Counts,
    pub highest: Option<Severity>,
    pub violations: Vec<Violation>,
    /// Ids of the findings that counted toward a violated threshold.
    pub violating_ids: BTreeSet<String>,
}

impl Policy {
    pub fn decide(&self, findings: &[Finding]) -> Decision {
        let counts = Counts::of(findings);
        let gated: Vec<&Finding> = findings
            .iter()
            .filter(|f| !self.fixable_only || f.fixed_version.is_some())
            .collect();
        let gated_counts = Counts::of(gated.iter().copied());
        let mut violations = Vec::new();
        for s in Severity::ALL_DESC {
            if let Some(threshold) = self.thresholds.get(s) {
                let count = gated_counts.get(s);
                if count > threshold {
                    violations.push(Violation {
                        severity: s,
                        count,
                        threshold,
                    });
                }
            }
        }
        let violating_ids = gated
            .iter()
            .filter(|f| violations.iter().any(|v| v.severity == f.severity))
            .map(|f| f.id.clone())
            .collect();
        Decision {
            verdict: if violations.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            counts,
            gated_counts,
            highest: counts.highest(),
            violations,
            violating_ids,
        }
    }
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
            vec![Violation {
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
}
