//! The verdict: severity thresholds over Inspector's findings.
//!
//! A gate fails when, for some severity, the number of distinct
//! vulnerability ids at that severity is greater than its threshold. This is
//! how Inspector's own summary counts (distinct ids per severity), so the
//! numbers a user sees in the console, in our output variables and in
//! Inspector's answer agree.

pub mod cfg;
pub mod file;

use std::collections::BTreeSet;

use serde::Serialize;

pub use cfg::{PolicyError, Thresholds};
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
}

impl Violation {
    /// The vulnerability a per-finding violation names.
    pub fn id(&self) -> Option<&str> {
        match self {
            Violation::Threshold { .. } => None,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// All findings, per severity (what the report shows), suppressed ones
    /// included.
    pub counts: Counts,
    /// What the thresholds were compared with: without suppressed findings,
    /// and only fixable ones with `fixable_only`.
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
}

impl Policy {
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
        let counts = Counts::of(findings);
        let mut used = vec![false; self.ignore.len()];
        let mut suppressions = Vec::new();
        let mut kept: Vec<&Finding> = Vec::new();
        for f in findings {
            let mut first: Option<&IgnoreRule> = None;
            for (i, r) in self.ignore.iter().enumerate() {
                if !r.is_expired(today) && r.matches(&f.id, &f.purl) {
                    used[i] = true;
                    first.get_or_insert(r);
                }
            }
            match first {
                Some(r) => suppressions.push(Suppression {
                    id: f.id.clone(),
                    severity: f.severity,
                    package: f.package.clone(),
                    purl: f.purl.clone(),
                    reason: r.reason.clone(),
                    expires: r.expires.map(file::fmt_date),
                }),
                None => kept.push(f),
            }
        }
        let suppressed = suppressions
            .iter()
            .map(|s| s.id.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64;
        let expired_rules = self
            .ignore
            .iter()
            .filter(|r| r.is_expired(today))
            .cloned()
            .collect();
        let stale_rules = self
            .ignore
            .iter()
            .zip(&used)
            .filter(|(r, used)| !**used && !r.is_expired(today))
            .map(|(r, _)| r.clone())
            .collect();

        let gated: Vec<&Finding> = kept
            .iter()
            .copied()
            .filter(|f| !self.fixable_only || f.fixed_version.is_some())
            .collect();
        let gated_counts = Counts::of(gated.iter().copied());
        let mut violations = Vec::new();
        for s in Severity::ALL_DESC {
            if let Some(threshold) = self.thresholds.get(s) {
                let count = gated_counts.get(s);
                if count > threshold {
                    violations.push(Violation::Threshold {
                        severity: s,
                        count,
                        threshold,
                    });
                }
            }
        }
        let mut violating_ids: BTreeSet<String> = gated
            .iter()
            .filter(|f| {
                violations
                    .iter()
                    .any(|v| matches!(v, Violation::Threshold { severity, .. } if *severity == f.severity))
            })
            .map(|f| f.id.clone())
            .collect();

        // Per-finding rules, one violation per (rule, id).
        let mut seen: BTreeSet<(u8, String)> = BTreeSet::new();
        let mut per_finding = Vec::new();
        for f in &kept {
            if self
                .fail_on_ids
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&f.id))
                && seen.insert((0, f.id.clone()))
            {
                per_finding.push(Violation::FailOnIds {
                    id: f.id.clone(),
                    package: f.package.clone(),
                });
            }
            if self.fail_on_kev
                && let Some(date) = &f.kev_date_added
                && seen.insert((1, f.id.clone()))
            {
                per_finding.push(Violation::Kev {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    date_added: date.clone(),
                });
            }
            if let (Some(threshold), Some(epss)) = (self.epss_threshold, f.epss)
                && epss >= threshold
                && seen.insert((2, f.id.clone()))
            {
                per_finding.push(Violation::Epss {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    epss,
                    threshold,
                });
            }
        }
        // Stable order: by rule, then id.
        per_finding.sort_by(|a, b| {
            let k = |v: &Violation| match v {
                Violation::Threshold { .. } => 0,
                Violation::FailOnIds { .. } => 1,
                Violation::Kev { .. } => 2,
                Violation::Epss { .. } => 3,
            };
            k(a).cmp(&k(b)).then_with(|| a.id().cmp(&b.id()))
        });
        violating_ids.extend(per_finding.iter().filter_map(|v| v.id().map(str::to_owned)));
        violations.extend(per_finding);
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
            suppressed,
            suppressions,
            expired_rules,
            stale_rules,
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

    #[test]
    fn policy_file_end_to_end_on_the_real_debian_answer() {
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../shared/fixtures/inspector/scans/debian_latest.json.scan"),
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
