//! The policy file's `secrets:`, `config:` and `signature:` sections
//! (DESIGN.md, "Image risks beyond CVEs") and the part of the verdict they
//! decide.
//!
//! Defaults: every finding is reported and none fails the gate until a
//! section sets `fail_on`, so turning a gate on is a one-line change.
//! `allow` entries take a reason and may expire, like `ignore`.
//!
//! The file is hostile input: every list and string is bounded as it is
//! read (the same caps as the rest of the file).

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use time::Date;

use crate::inspector::findings::Severity;
use crate::risks::{RiskFinding, RiskKind, RiskLocation};

use super::file::{MAX_LIST_ENTRIES, capped_list, de_date, fmt_date, ser_date};

/// Longest user rule regex and keyword (bytes): the secrets engine compiles
/// the regex with its own size limit; this keeps the file's share small.
pub const MAX_REGEX: usize = 1024;
const MAX_KEYWORD: usize = 256;
const MAX_GLOB: usize = 512;
const MAX_TEXT: usize = 4096;
/// User secret rules, each.
pub const MAX_USER_RULES: usize = 256;

/// `secrets:` — §4.1.4 embedded clear-text secrets. A plain data struct:
/// the secrets engine (src/risks/secrets/) builds its matchers from it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretsPolicy {
    /// Lowest severity that fails the gate; `None` (absent or `null`)
    /// reports only.
    #[serde(default, deserialize_with = "de_fail_on")]
    pub fail_on: Option<Severity>,
    /// Extra rules of the user's own.
    #[serde(default, deserialize_with = "de_rules")]
    pub rules: Vec<SecretRule>,
    /// Rule ids turned off (built-in or user).
    #[serde(default, deserialize_with = "de_disable")]
    pub disable: Vec<String>,
    #[serde(default, deserialize_with = "de_allow")]
    pub allow: Vec<AllowRule>,
}

impl SecretsPolicy {
    /// The scanner's view of the section: its rules and `disable`. The
    /// allow list and `fail_on` are the policy's to apply
    /// ([`RiskPolicy::decide`]), so a suppression is recorded with the
    /// decision like an `ignore`.
    pub fn scanner(&self) -> crate::risks::secrets::cfg::SecretsPolicy {
        crate::risks::secrets::cfg::SecretsPolicy {
            fail_on: None,
            rules: self
                .rules
                .iter()
                .map(|r| crate::risks::secrets::cfg::UserRule {
                    id: r.id.clone(),
                    description: r.description.clone(),
                    severity: r.severity.as_str().to_ascii_lowercase(),
                    regex: r.regex.clone(),
                    keywords: r.keywords.clone(),
                    paths: r.paths.clone(),
                })
                .collect(),
            disable: self.disable.clone(),
            allow: Vec::new(),
        }
    }
}

/// A user secret rule: `keywords` (any of them, case-insensitive) must be
/// in the text before `regex` is tried; `paths` (globs) limit where.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretRule {
    #[serde(deserialize_with = "de_rule_id")]
    pub id: String,
    #[serde(default, deserialize_with = "de_text")]
    pub description: String,
    #[serde(deserialize_with = "de_severity")]
    pub severity: Severity,
    #[serde(deserialize_with = "de_regex")]
    pub regex: String,
    #[serde(default, deserialize_with = "de_keywords")]
    pub keywords: Vec<String>,
    #[serde(default, deserialize_with = "de_globs")]
    pub paths: Vec<String>,
}

/// `config:` — §4.1.3 image configuration defects.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigPolicy {
    #[serde(default, deserialize_with = "de_fail_on")]
    pub fail_on: Option<Severity>,
    #[serde(default, deserialize_with = "de_disable")]
    pub disable: Vec<String>,
    #[serde(default, deserialize_with = "de_allow")]
    pub allow: Vec<AllowRule>,
}

/// `signature:` — §4.1.5 untrusted images: the verifier's own section
/// ([`crate::signature::cfg`]), parsed and validated with the file.
pub use crate::signature::cfg::{CosignPolicy, NotationPolicy, SignaturePolicy};

/// Accepts one rule's findings, optionally only at paths matching a glob
/// (`/usr/share/doc/**`), with a reason and an optional expiry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    #[serde(deserialize_with = "de_rule_id")]
    pub rule: String,
    #[serde(
        default,
        deserialize_with = "de_opt_glob",
        skip_serializing_if = "Option::is_none"
    )]
    pub path: Option<String>,
    #[serde(deserialize_with = "de_reason")]
    pub reason: String,
    #[serde(
        default,
        deserialize_with = "de_date",
        serialize_with = "ser_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<Date>,
}

impl AllowRule {
    pub fn is_expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|e| today > e)
    }

    /// Whether the rule names this finding (expiry aside). A rule with a
    /// path matches only findings in files (or, for config fields, the
    /// field name).
    pub fn matches(&self, f: &RiskFinding) -> bool {
        if !self.rule.eq_ignore_ascii_case(&f.rule_id) {
            return false;
        }
        let Some(glob) = &self.path else {
            return true;
        };
        match &f.location {
            RiskLocation::File { path, .. } => glob_match(glob, path),
            RiskLocation::Config { field } => glob_match(glob, field),
            RiskLocation::Image => false,
        }
    }
}

impl std::fmt::Display for AllowRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(p) = &self.path {
            write!(f, " at {p}")?;
        }
        if let Some(e) = self.expires {
            write!(f, " until {}", fmt_date(e))?;
        }
        Ok(())
    }
}

/// The gates of the three sections as the policy holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RiskPolicy {
    pub secrets: SecretsPolicy,
    pub config: ConfigPolicy,
    pub signature: SignaturePolicy,
}

/// A risk finding the policy accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskSuppression {
    pub kind: RiskKind,
    pub rule_id: String,
    pub at: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// What the policy made of one kind of risk findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RiskGate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_on: Option<Severity>,
    /// Findings neither disabled nor allowed (what `SECRETS`/`MISCONFIGS`
    /// count).
    pub unsuppressed: u64,
    /// Findings of disabled rules (left out of the reports' counts).
    pub disabled: u64,
    pub suppressions: Vec<RiskSuppression>,
    /// Indexes (into the scan's risk findings) of findings at or above
    /// `fail_on`: each is a violation.
    pub violating: Vec<usize>,
    /// Allow rules past their expiry, and live ones that matched nothing.
    pub expired_rules: Vec<String>,
    pub stale_rules: Vec<String>,
}

/// Both gates over risk findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RisksDecision {
    pub secrets: RiskGate,
    pub config: RiskGate,
    /// Each risk finding's standing, in the scan's order.
    pub status: Vec<RiskStatus>,
}

/// Where the policy put one risk finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskStatus {
    /// Counted, below `fail_on` (or no `fail_on`).
    #[default]
    Reported,
    /// At or above `fail_on`: fails the gate.
    Violating,
    /// Accepted by a live `allow` rule.
    Allowed,
    /// Its rule is in `disable`.
    Disabled,
}

impl RiskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskStatus::Reported => "reported",
            RiskStatus::Violating => "violating",
            RiskStatus::Allowed => "allowed",
            RiskStatus::Disabled => "disabled",
        }
    }
}

impl RisksDecision {
    pub fn gate(&self, kind: RiskKind) -> &RiskGate {
        match kind {
            RiskKind::Secret => &self.secrets,
            RiskKind::Config => &self.config,
        }
    }
}

/// Where a finding is, for messages: `/etc/app.env:3 (layer 2)`, `Env[1]`.
pub fn location_text(l: &RiskLocation) -> String {
    match l {
        RiskLocation::File {
            layer,
            path,
            line,
            later_layer,
            ..
        } => format!(
            "{path}{} (layer {layer}{})",
            line.map(|n| format!(":{n}")).unwrap_or_default(),
            later_layer.map_or(String::new(), |l| format!(", {}", l.describe()))
        ),
        RiskLocation::Config { field } => format!("image config {field}"),
        RiskLocation::Image => "the image".into(),
    }
}

impl RiskPolicy {
    /// Judges every risk finding of a scan: per kind, disabled rules, then
    /// live allow rules, then `fail_on`.
    pub fn decide(&self, findings: &[RiskFinding], today: Date) -> RisksDecision {
        let mut status = vec![RiskStatus::Reported; findings.len()];
        let secrets = Section {
            kind: RiskKind::Secret,
            fail_on: self.secrets.fail_on,
            disable: &self.secrets.disable,
            allow: &self.secrets.allow,
        };
        let config = Section {
            kind: RiskKind::Config,
            fail_on: self.config.fail_on,
            disable: &self.config.disable,
            allow: &self.config.allow,
        };
        RisksDecision {
            secrets: secrets.gate(findings, today, &mut status),
            config: config.gate(findings, today, &mut status),
            status,
        }
    }
}

/// One section's settings, as [`RiskPolicy::decide`] applies them.
struct Section<'a> {
    kind: RiskKind,
    fail_on: Option<Severity>,
    disable: &'a [String],
    allow: &'a [AllowRule],
}

impl Section<'_> {
    fn gate(&self, findings: &[RiskFinding], today: Date, status: &mut [RiskStatus]) -> RiskGate {
        let mut g = RiskGate {
            fail_on: self.fail_on,
            ..RiskGate::default()
        };
        let mut used = vec![false; self.allow.len()];
        for (i, f) in findings
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == self.kind)
        {
            if self
                .disable
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&f.rule_id))
            {
                g.disabled += 1;
                status[i] = RiskStatus::Disabled;
                continue;
            }
            if let Some(r) = self.first_allow(f, today, &mut used) {
                g.suppressions.push(RiskSuppression {
                    kind: self.kind,
                    rule_id: f.rule_id.clone(),
                    at: location_text(&f.location),
                    reason: r.reason.clone(),
                    expires: r.expires.map(fmt_date),
                });
                status[i] = RiskStatus::Allowed;
                continue;
            }
            g.unsuppressed += 1;
            if self.fail_on.is_some_and(|min| f.severity >= min) {
                g.violating.push(i);
                status[i] = RiskStatus::Violating;
            }
        }
        for (r, used) in self.allow.iter().zip(&used) {
            if r.is_expired(today) {
                g.expired_rules.push(r.to_string());
            } else if !used {
                g.stale_rules.push(r.to_string());
            }
        }
        g
    }

    /// The first live allow rule naming `f`; every live one that does is
    /// marked used (so none is reported stale).
    fn first_allow(&self, f: &RiskFinding, today: Date, used: &mut [bool]) -> Option<&AllowRule> {
        let mut first = None;
        for (j, r) in self.allow.iter().enumerate() {
            if !r.is_expired(today) && r.matches(f) {
                used[j] = true;
                first.get_or_insert(r);
            }
        }
        first
    }
}

/// `*` matches within one path segment, `**` any number of segments, `?`
/// one character. Patterns and paths are bounded ([`MAX_GLOB`], paths by
/// the layer reader), and the matcher is the classic two-pointer
/// backtracking one: time linear in `pattern × path` at worst.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    /// What the last star may still swallow when the rest fails to match.
    #[derive(Clone, Copy)]
    enum Star {
        /// `*`: characters other than `/`.
        Segment,
        /// `**` at the end or before a non-`/`: anything.
        Any,
        /// `**/`: whole directories, so the rest starts after a `/`.
        Dirs,
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    let (mut pi, mut si) = (0, 0);
    // (pattern index after the star, path index it resumes from, kind)
    let mut star: Option<(usize, usize, Star)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            let double = p.get(pi + 1) == Some(&'*');
            pi += if double { 2 } else { 1 };
            let kind = match (double, p.get(pi)) {
                (true, Some('/')) => {
                    pi += 1;
                    Star::Dirs
                }
                (true, _) => Star::Any,
                (false, _) => Star::Segment,
            };
            // First try matching no characters at all.
            star = Some((pi, si, kind));
            continue;
        }
        if pi < p.len() && (p[pi] == s[si] || (p[pi] == '?' && s[si] != '/')) {
            pi += 1;
            si += 1;
            continue;
        }
        // Backtrack: the last star swallows one more character (a whole
        // directory for `**/`), if it may.
        let next = match star {
            Some((_, ss, Star::Any)) => Some(ss + 1),
            Some((_, ss, Star::Segment)) if s[ss] != '/' => Some(ss + 1),
            Some((_, ss, Star::Dirs)) => s[ss..].iter().position(|c| *c == '/').map(|i| ss + i + 1),
            _ => None,
        };
        match (star, next) {
            (Some((sp, _, kind)), Some(ns)) => {
                star = Some((sp, ns, kind));
                pi = sp;
                si = ns;
            }
            _ => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

// ------------------------------------------------------------ validation

fn de_fail_on<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Severity>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_severity(&s, "fail_on")
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn de_severity<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let s = String::deserialize(d)?;
    parse_severity(&s, "severity").map_err(serde::de::Error::custom)
}

fn parse_severity(s: &str, field: &str) -> Result<Severity, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" => Ok(Severity::Critical),
        "high" => Ok(Severity::High),
        "medium" => Ok(Severity::Medium),
        "low" => Ok(Severity::Low),
        _ => Err(format!(
            "{field} must be one of critical, high, medium, low (or null for report only), got {:?}",
            crate::util::truncate_chars(s, 40)
        )),
    }
}

fn bounded(s: String, field: &str, max: usize) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if t.len() > max {
        return Err(format!(
            "{field} is {} bytes, more than the {max} allowed",
            t.len()
        ));
    }
    Ok(t.to_owned())
}

/// A rule id: letters, digits, `-`, `_`, `.` (they appear in reports and
/// SARIF rule ids).
fn de_rule_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = bounded(String::deserialize(d)?, "rule id", 128).map_err(serde::de::Error::custom)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(serde::de::Error::custom(format!(
            "rule id {s:?} may contain only letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(s)
}

fn de_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() > MAX_TEXT {
        return Err(serde::de::Error::custom(format!(
            "description is {} bytes, more than the {MAX_TEXT} allowed",
            s.len()
        )));
    }
    Ok(s.trim().to_owned())
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    bounded(String::deserialize(d)?, "reason", MAX_TEXT).map_err(serde::de::Error::custom)
}

fn de_regex<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("regex must not be empty"));
    }
    if s.len() > MAX_REGEX {
        return Err(serde::de::Error::custom(format!(
            "regex is {} bytes, more than the {MAX_REGEX} allowed",
            s.len()
        )));
    }
    Ok(s)
}

fn de_opt_glob<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => bounded(s, "path", MAX_GLOB)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A bounded list of bounded, non-empty strings.
fn de_strings<'de, D: Deserializer<'de>>(
    d: D,
    field: &'static str,
    max_len: usize,
) -> Result<Vec<String>, D::Error> {
    struct V {
        field: &'static str,
        max_len: usize,
    }
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_LIST_ENTRIES} strings")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                if out.len() == MAX_LIST_ENTRIES {
                    return Err(serde::de::Error::custom(format!(
                        "{} has more than {MAX_LIST_ENTRIES} entries",
                        self.field
                    )));
                }
                out.push(
                    bounded(s, &format!("{} entry", self.field), self.max_len)
                        .map_err(serde::de::Error::custom)?,
                );
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V { field, max_len })
}

fn de_disable<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    de_strings(d, "disable", 128)
}

fn de_keywords<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    de_strings(d, "keywords", MAX_KEYWORD)
}

fn de_globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    de_strings(d, "paths", MAX_GLOB)
}

fn de_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretRule>, D::Error> {
    let rules: Vec<SecretRule> = capped_list(d, "secrets.rules", MAX_USER_RULES, |_| Ok(()))?;
    let mut ids = BTreeSet::new();
    for r in &rules {
        if !ids.insert(r.id.to_ascii_lowercase()) {
            return Err(serde::de::Error::custom(format!(
                "secrets.rules: rule id {:?} appears twice",
                r.id
            )));
        }
    }
    Ok(rules)
}

fn de_allow<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AllowRule>, D::Error> {
    capped_list(d, "allow", MAX_LIST_ENTRIES, |_| Ok(()))
}

/// `policy check`'s lines for the three sections: the gates in force.
pub fn describe(p: &RiskPolicy) -> Vec<String> {
    let fail_on = |f: Option<Severity>| {
        f.map_or("report only".to_owned(), |s| {
            format!("fail on {} and above", s.as_str())
        })
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = vec![
        format!(
            "secrets: {}; {} rules of your own; disabled: {}; {} allow rules",
            fail_on(p.secrets.fail_on),
            p.secrets.rules.len(),
            list(&p.secrets.disable),
            p.secrets.allow.len()
        ),
        format!(
            "config: {}; disabled: {}; {} allow rules",
            fail_on(p.config.fail_on),
            list(&p.config.disable),
            p.config.allow.len()
        ),
    ];
    for (section, allow) in [("secrets", &p.secrets.allow), ("config", &p.config.allow)] {
        for r in allow {
            out.push(format!("{section} allow {r}: {}", r.reason));
        }
    }
    out.push(format!(
        "signature: {}",
        if p.signature.required {
            "required"
        } else {
            "not required"
        }
    ));
    out
}

/// Things worth telling the author: rule ids `disable`/`allow` name that no
/// rule has (a typo would silently keep a finding), expired allow rules.
pub fn warnings(p: &RiskPolicy, known_secret_rules: &[&str], today: Date) -> Vec<String> {
    let mut w = Vec::new();
    let config_ids: Vec<&str> = crate::risks::config::RULES.iter().map(|r| r.id).collect();
    let user_ids: Vec<&str> = p.secrets.rules.iter().map(|r| r.id.as_str()).collect();
    let known = |ids: &[&str], extra: &[&str], id: &str| {
        ids.iter().chain(extra).any(|k| k.eq_ignore_ascii_case(id))
    };
    let mut check = |section: &str, ids: &[&str], extra: &[&str], names: Vec<&str>| {
        // An empty list of known ids means the engine is not built in: say
        // nothing rather than call every id unknown.
        if ids.is_empty() && extra.is_empty() {
            return;
        }
        for n in names {
            if !known(ids, extra, n) {
                w.push(format!("{section}: {n:?} is not a rule id scangate knows"));
            }
        }
    };
    let names = |disable: &[String], allow: &[AllowRule]| -> Vec<String> {
        disable
            .iter()
            .cloned()
            .chain(allow.iter().map(|a| a.rule.clone()))
            .collect()
    };
    let cfg_names = names(&p.config.disable, &p.config.allow);
    check(
        "config",
        &config_ids,
        &[],
        cfg_names.iter().map(String::as_str).collect(),
    );
    let sec_names = names(&p.secrets.disable, &p.secrets.allow);
    check(
        "secrets",
        known_secret_rules,
        &user_ids,
        sec_names.iter().map(String::as_str).collect(),
    );
    for (section, allow) in [("secrets", &p.secrets.allow), ("config", &p.config.allow)] {
        for (i, r) in allow.iter().enumerate() {
            if r.is_expired(today) {
                w.push(format!(
                    "{section}.allow[{i}] ({r}) has expired: its findings count again"
                ));
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyFile;

    fn parse(yaml: &str) -> Result<PolicyFile, String> {
        PolicyFile::parse("p.yaml", &format!("version: 1\n{yaml}")).map_err(|e| e.to_string())
    }

    fn finding(kind: RiskKind, rule: &str, sev: Severity, path: Option<&str>) -> RiskFinding {
        RiskFinding {
            kind,
            rule_id: rule.into(),
            title: format!("{rule} title"),
            severity: sev,
            location: match path {
                Some(p) => RiskLocation::File {
                    layer: 1,
                    layer_digest: "sha256:l1".into(),
                    path: p.into(),
                    line: Some(3),
                    later_layer: None,
                },
                None => RiskLocation::Config {
                    field: "User".into(),
                },
            },
            excerpt: None,
            remediation: "fix it".into(),
        }
    }

    fn today() -> Date {
        time::macros::date!(2026 - 12 - 03)
    }

    #[test]
    fn the_design_example_parses() {
        let f = parse(
            r#"
secrets:
  fail_on: high
  rules:
    - { id: acme-token, description: ACME API token, severity: critical, regex: 'acme_[a-z0-9]{32}', keywords: [acme_], paths: ['/srv/**'] }
  disable: [generic-password]
  allow:
    - { rule: private-key, path: /usr/share/doc/**, reason: test keys of a package, expires: 2027-06-30 }
config:
  fail_on: high
  disable: [CIS-DI-0006]
  allow: []
signature:
  required: true
  cosign:
    keys: [cosign.pub]
  notation:
    trust_store: [signer-root.pem]
    identities: ["x509.subject: CN=..."]
"#,
        )
        .unwrap();
        let p = f.to_policy(&Default::default()).risks;
        assert_eq!(p.secrets.fail_on, Some(Severity::High));
        assert_eq!(p.secrets.rules[0].severity, Severity::Critical);
        assert_eq!(p.secrets.rules[0].keywords, ["acme_"]);
        assert_eq!(
            p.secrets.allow[0].path.as_deref(),
            Some("/usr/share/doc/**")
        );
        assert_eq!(p.config.disable, ["CIS-DI-0006"]);
        assert!(p.signature.required);
        assert_eq!(p.signature.cosign.keys, ["cosign.pub"]);
        assert_eq!(p.signature.notation.trust_store, ["signer-root.pem"]);
    }

    #[test]
    fn defaults_report_and_never_fail() {
        let p = parse("").unwrap().to_policy(&Default::default());
        assert_eq!(p.risks, RiskPolicy::default());
        let findings = [
            finding(
                RiskKind::Secret,
                "aws-secret",
                Severity::Critical,
                Some("/app/.env"),
            ),
            finding(RiskKind::Config, "CIS-DI-0001", Severity::High, None),
        ];
        let mut d = p.decide(&[]);
        p.decide_risks(&mut d, &findings, today());
        assert_eq!(d.verdict, crate::policy::Verdict::Pass);
        assert_eq!(
            (d.risks.secrets.unsuppressed, d.risks.config.unsuppressed),
            (1, 1)
        );
        assert_eq!(d.risks.status, [RiskStatus::Reported, RiskStatus::Reported]);
    }

    #[test]
    fn bad_sections_get_clear_errors() {
        for (yaml, want) in [
            (
                "secrets: { fail_on: severe }",
                "fail_on must be one of critical, high, medium, low",
            ),
            ("config: { fail_on: high, typo: 1 }", "unknown field `typo`"),
            (
                "config: { allow: [{ rule: CIS-DI-0001 }] }",
                "missing field `reason`",
            ),
            (
                "config: { allow: [{ rule: CIS-DI-0001, reason: ' ' }] }",
                "reason must not be empty",
            ),
            (
                "config: { allow: [{ rule: CIS-DI-0001, reason: x, expires: soon }] }",
                "expires must be a date YYYY-MM-DD",
            ),
            (
                "secrets: { rules: [{ id: x, severity: high }] }",
                "missing field `regex`",
            ),
            (
                "secrets: { rules: [{ id: x, severity: high, regex: '' }] }",
                "regex must not be empty",
            ),
            (
                "secrets: { rules: [{ id: 'a b', severity: high, regex: x }] }",
                "may contain only letters",
            ),
            (
                "secrets: { rules: [{ id: x, severity: high, regex: a }, { id: X, severity: low, regex: b }] }",
                "appears twice",
            ),
            ("signature: { required: yes-please }", "required"),
            (
                "signature: { cosign: { key: a.pub } }",
                "unknown field `key`",
            ),
            (
                "config: { disable: [''] }",
                "disable entry must not be empty",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
        let long = format!(
            "secrets: {{ rules: [{{ id: x, severity: high, regex: '{}' }}] }}",
            "a".repeat(MAX_REGEX + 1)
        );
        assert!(
            parse(&long)
                .unwrap_err()
                .contains("more than the 1024 allowed")
        );
    }

    #[test]
    fn fail_on_disable_and_allow() {
        let p = parse(
            r#"
config:
  fail_on: medium
  disable: [CIS-DI-0006]
  allow:
    - { rule: CIS-DI-0008, path: /usr/bin/*, reason: distro tools, expires: 2027-01-01 }
    - { rule: cis-di-0008, path: /opt/**, reason: expired one, expires: 2026-01-01 }
    - { rule: SG-CONFIG-SSH, reason: never matches }
"#,
        )
        .unwrap()
        .to_policy(&Default::default());
        let findings = [
            finding(RiskKind::Config, "CIS-DI-0001", Severity::High, None),
            finding(RiskKind::Config, "CIS-DI-0006", Severity::Low, None),
            finding(
                RiskKind::Config,
                "CIS-DI-0008",
                Severity::Low,
                Some("/usr/bin/su"),
            ),
            finding(
                RiskKind::Config,
                "CIS-DI-0008",
                Severity::Medium,
                Some("/opt/app/bin/x"),
            ),
            finding(RiskKind::Config, "CIS-DI-0009", Severity::Low, None),
            // A secret is another section's: config.fail_on does not see it.
            finding(
                RiskKind::Secret,
                "private-key",
                Severity::Critical,
                Some("/k"),
            ),
        ];
        let mut d = p.decide(&[]);
        p.decide_risks(&mut d, &findings, today());
        use RiskStatus::*;
        assert_eq!(
            d.risks.status,
            [Violating, Disabled, Allowed, Violating, Reported, Reported]
        );
        assert_eq!(d.verdict, crate::policy::Verdict::Fail);
        assert_eq!(d.risks.config.unsuppressed, 3);
        assert_eq!(d.risks.config.disabled, 1);
        assert_eq!(
            d.risks.config.expired_rules,
            ["cis-di-0008 at /opt/** until 2026-01-01"]
        );
        assert_eq!(d.risks.config.stale_rules, ["SG-CONFIG-SSH"]);
        let text: Vec<String> = d.violations.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "HIGH CIS-DI-0001 CIS-DI-0001 title at image config User (config.fail_on medium)",
                "MEDIUM CIS-DI-0008 CIS-DI-0008 title at /opt/app/bin/x:3 (layer 1) (config.fail_on medium)",
            ]
        );
        // The same policy after the allow rule's expiry: it counts again.
        let mut later = p.decide(&[]);
        p.decide_risks(&mut later, &findings, time::macros::date!(2027 - 01 - 02));
        assert_eq!(later.risks.status[2], Reported);
    }

    #[test]
    fn warnings_name_unknown_rule_ids() {
        let f = parse("config: { disable: [CIS-DI-0006, CIS-DI-9999] }").unwrap();
        let w = f.warnings(today());
        assert!(
            w.iter()
                .any(|w| w.contains("\"CIS-DI-9999\" is not a rule id")),
            "{w:?}"
        );
        assert!(!w.iter().any(|w| w.contains("\"CIS-DI-0006\"")), "{w:?}");
    }

    /// A required signature with nothing to verify it against could never
    /// pass: the file is refused, not merely warned about.
    #[test]
    fn a_required_signature_needs_keys_or_roots() {
        let e = parse("signature: { required: true }").unwrap_err();
        assert!(e.contains("nothing could ever verify"), "{e}");
        assert!(parse("signature: { required: true, cosign: { keys: [k.pub] } }").is_ok());
    }

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("/usr/share/doc/**", "/usr/share/doc/a/b/c", true),
            ("/usr/share/doc/**", "/usr/share/docs/a", false),
            ("/usr/bin/*", "/usr/bin/su", true),
            ("/usr/bin/*", "/usr/bin/x/su", false),
            ("/**/id_rsa", "/id_rsa", true),
            ("/**/id_rsa", "/home/u/.ssh/id_rsa", true),
            ("/**/id_rsa", "/home/u/xid_rsa", false),
            ("/a/**/b/*.key", "/a/x/y/b/k.key", true),
            ("/a/**", "/a", false),
            ("/a/*", "/a/", true),
            ("*.pem", "key.pem", true),
            ("/a/?.txt", "/a/b.txt", true),
            ("/a/?.txt", "/a//.txt", false),
            ("Env[*]", "Env[3]", true),
        ] {
            assert_eq!(glob_match(p, s), want, "{p} {s}");
        }
        // Pathological patterns stay fast (two-pointer matcher).
        let p = "*a".repeat(200);
        let s = "a".repeat(5000) + "b";
        let t = std::time::Instant::now();
        assert!(!glob_match(&p, &s));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
