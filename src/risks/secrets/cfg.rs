//! The `secrets:` section of the policy file: extra rules, rules turned
//! off, and allow-list entries (reason and expiry, like `ignore`).
//!
//! The policy file is input too: a user regex is compiled by the `regex`
//! crate (finite automata, no backtracking: linear time in the text) with a
//! size limit, and every string and list is bounded.

use serde::Deserialize;
use time::Date;

use crate::inspector::findings::Severity;

/// Compiled size allowed for one user regex (the `regex` crate's
/// `size_limit`): enough for any credential format, far from a blow-up.
pub const MAX_USER_REGEX_BYTES: usize = 256 << 10;
/// Longest regex source, keyword, id or glob accepted.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Extra rules, disabled ids and allow entries, each.
pub const MAX_ENTRIES: usize = 256;
/// Shortest keyword: a shorter one would send most lines to the regex.
pub const MIN_KEYWORD_LEN: usize = 3;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretsPolicy {
    /// Lowest severity that fails the gate; `None` reports only. Read by
    /// the orchestrator, not by the scanner.
    #[serde(default)]
    pub fail_on: Option<String>,
    #[serde(default)]
    pub rules: Vec<UserRule>,
    /// Built-in (or user) rule ids not to run.
    #[serde(default)]
    pub disable: Vec<String>,
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    pub id: String,
    #[serde(default)]
    pub description: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
    /// Capture group 1, when the regex has one, is the secret (redacted in
    /// the finding); otherwise the whole match.
    pub regex: String,
    /// At least one; the regex runs only on lines around a keyword.
    pub keywords: Vec<String>,
    /// Path globs (`**/config/*.yaml`); empty: every file and the config.
    #[serde(default)]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    pub rule: String,
    /// Glob of the file's path (`/usr/share/app/test/**`); absent: the
    /// rule's findings anywhere, image config included.
    #[serde(default)]
    pub path: Option<String>,
    pub reason: String,
    /// The last day the entry applies (UTC), `YYYY-MM-DD`.
    pub expires: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsPolicyError {
    #[error("secrets.{field}: {detail}")]
    Invalid { field: String, detail: String },
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> SecretsPolicyError {
    SecretsPolicyError::Invalid {
        field: field.into(),
        detail: detail.into(),
    }
}

impl SecretsPolicy {
    /// Checks everything the scanner will compile, so that `policy check`
    /// reports a bad regex before a pipeline runs.
    pub fn validate(&self) -> Result<(), SecretsPolicyError> {
        for (what, n) in [
            ("rules", self.rules.len()),
            ("disable", self.disable.len()),
            ("allow", self.allow.len()),
        ] {
            if n > MAX_ENTRIES {
                return Err(invalid(what, format!("more than {MAX_ENTRIES} entries")));
            }
        }
        if let Some(s) = &self.fail_on {
            parse_severity(s).map_err(|d| invalid("fail_on", d))?;
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.validate()
                .map_err(|d| invalid(format!("rules[{i}]"), d))?;
        }
        for (i, a) in self.allow.iter().enumerate() {
            a.validate()
                .map_err(|d| invalid(format!("allow[{i}]"), d))?;
        }
        Ok(())
    }
}

impl UserRule {
    fn validate(&self) -> Result<(), String> {
        bounded("id", &self.id)?;
        if self.id.trim().is_empty() {
            return Err("id must not be empty".into());
        }
        parse_severity(&self.severity)?;
        compile_user_regex(&self.regex)?;
        if self.keywords.is_empty() {
            return Err("keywords: at least one is required (the pre-filter)".into());
        }
        for k in &self.keywords {
            bounded("keyword", k)?;
            if k.len() < MIN_KEYWORD_LEN {
                return Err(format!(
                    "keyword {k:?} is shorter than {MIN_KEYWORD_LEN} characters"
                ));
            }
        }
        for p in &self.paths {
            super::glob::to_regex(p)?;
        }
        Ok(())
    }
}

impl AllowEntry {
    fn validate(&self) -> Result<(), String> {
        bounded("rule", &self.rule)?;
        if self.reason.trim().is_empty() {
            return Err("reason is required".into());
        }
        parse_date(&self.expires)?;
        if let Some(p) = &self.path {
            super::glob::to_regex(p)?;
        }
        Ok(())
    }

    /// From the day after `expires` on the entry no longer applies.
    pub fn is_expired(&self, today: Date) -> bool {
        parse_date(&self.expires).map_or(true, |e| today > e)
    }
}

fn bounded(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_PATTERN_LEN {
        return Err(format!("{what} is longer than {MAX_PATTERN_LEN} bytes"));
    }
    Ok(())
}

pub(crate) fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|e| format!("expires must be a date YYYY-MM-DD, got {s:?} ({e})"))
}

pub(crate) fn parse_severity(s: &str) -> Result<Severity, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" => Ok(Severity::Critical),
        "high" => Ok(Severity::High),
        "medium" => Ok(Severity::Medium),
        "low" => Ok(Severity::Low),
        _ => Err(format!(
            "severity must be critical, high, medium or low, got {s:?}"
        )),
    }
}

/// A user regex, compiled with a size limit (no backtracking engine exists
/// in the `regex` crate; the limit bounds memory and build time).
pub(crate) fn compile_user_regex(src: &str) -> Result<regex::bytes::Regex, String> {
    bounded("regex", src)?;
    regex::bytes::RegexBuilder::new(src)
        .size_limit(MAX_USER_REGEX_BYTES)
        .dfa_size_limit(MAX_USER_REGEX_BYTES)
        .build()
        .map_err(|e| format!("regex does not compile: {e}"))
}
