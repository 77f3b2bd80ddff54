//! The compiled rule set: one Aho–Corasick automaton over every rule's
//! keywords (ASCII case-insensitive) and, per rule, its regexes, which run
//! only on the few lines around a keyword hit.

use std::collections::HashMap;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;

use super::cfg::{self, SecretsPolicy, SecretsPolicyError};
use super::rules::{BUILTIN, Builtin};
use crate::inspector::findings::Severity;

/// Lines of context before and after a keyword's line that its rule's
/// regex sees (a key id's secret on the next line; a PEM header's body,
/// after PGP armour headers).
pub const LINES_BEFORE: usize = 2;
pub const LINES_AFTER: usize = 4;
/// Bytes of context each side of a keyword at most, whatever the lines
/// (minified files have megabyte lines). A service-account key's PEM body
/// sits on one JSON line: about 1.7 KB for RSA-2048, 3.3 KB for RSA-4096.
pub const WINDOW_BYTES: usize = 6 << 10;

pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub remediation: String,
    /// A built-in rule's regexes and path globs, compiled on its first
    /// keyword hit (see [`Rule::patterns`]).
    builtin: Option<&'static Builtin>,
    patterns: OnceLock<Vec<Regex>>,
    /// Files the rule is limited to; such a rule never runs on the config.
    paths: OnceLock<Option<regex::Regex>>,
    pub check: Option<fn(&[u8]) -> bool>,
}

impl Rule {
    /// Whether the rule is limited to some files (and so never runs on the
    /// image config).
    pub fn limited(&self) -> bool {
        match self.builtin {
            Some(b) => !b.paths.is_empty(),
            None => self.paths.get().is_some_and(Option::is_some),
        }
    }

    pub fn applies_to(&self, abs_path: &str) -> bool {
        self.paths
            .get_or_init(|| {
                let b = self
                    .builtin
                    .expect("a user rule's globs are compiled in new");
                super::glob::any_of(b.paths).expect("built-in globs compile (unit-tested)")
            })
            .as_ref()
            .is_none_or(|p| p.is_match(abs_path))
    }

    /// The rule's regexes. A built-in rule's are compiled here, once, on
    /// the first keyword hit: compiling all of them up front was most of a
    /// small image's scan time (issue 13), and most images hit few rules.
    /// A user rule's regex was compiled (and so validated) in
    /// [`RuleSet::new`], when the policy was read.
    fn patterns(&self) -> &[Regex] {
        self.patterns.get_or_init(|| {
            let b = self
                .builtin
                .expect("a user rule's regex is compiled in new");
            b.patterns.iter().map(|p| builtin_regex(p)).collect()
        })
    }
}

#[cfg(test)]
impl Rule {
    /// Whether the rule's regexes have been compiled yet.
    pub fn compiled(&self) -> bool {
        self.patterns.get().is_some()
    }

    /// Compiles the regexes and globs now (tests that they do compile).
    pub fn force(&self) -> usize {
        self.applies_to("/");
        self.patterns().len()
    }
}

/// A built-in pattern, compiled. ASCII-only formats: byte classes and
/// ASCII `\b` keep the automata small (a Unicode `\b` also forces the
/// slower engines on non-ASCII text).
fn builtin_regex(p: &str) -> Regex {
    regex::bytes::RegexBuilder::new(p)
        .unicode(false)
        .build()
        .expect("built-in secret regexes compile (unit-tested)")
}

/// A secret found in a text: which rule, where its value is (byte range in
/// the text given), and where the whole match starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
}

pub struct RuleSet {
    pub rules: Vec<Rule>,
    keywords: AhoCorasick,
    /// Keyword pattern id → the rules that have it.
    by_keyword: Vec<Vec<usize>>,
    /// Bytes of the longest keyword.
    pub longest: usize,
}

impl RuleSet {
    /// The built-in rules minus `disable`, plus the policy's own rules.
    pub fn new(policy: &SecretsPolicy) -> Result<RuleSet, SecretsPolicyError> {
        policy.validate()?;
        let disabled = |id: &str| policy.disable.iter().any(|d| d.eq_ignore_ascii_case(id));
        let mut rules = Vec::new();
        let mut keywords: Vec<(String, usize)> = Vec::new();
        for b in BUILTIN.iter().filter(|b| !disabled(b.id)) {
            keywords.extend(b.keywords.iter().map(|k| (k.to_string(), rules.len())));
            rules.push(Rule {
                id: b.id.into(),
                title: b.title.into(),
                severity: b.severity,
                remediation: b.remediation.into(),
                builtin: Some(b),
                patterns: OnceLock::new(),
                paths: OnceLock::new(),
                check: b.check,
            });
        }
        for (i, u) in policy.rules.iter().enumerate() {
            if disabled(&u.id) {
                continue;
            }
            let field = |d: String| SecretsPolicyError::Invalid {
                field: format!("rules[{i}]"),
                detail: d,
            };
            let globs: Vec<&str> = u.paths.iter().map(String::as_str).collect();
            let paths = super::glob::any_of(&globs).map_err(field)?;
            keywords.extend(u.keywords.iter().map(|k| (k.clone(), rules.len())));
            rules.push(Rule {
                id: u.id.trim().into(),
                title: if u.description.trim().is_empty() {
                    format!("Secret matching policy rule {}", u.id.trim())
                } else {
                    u.description.trim().into()
                },
                severity: cfg::parse_severity(&u.severity).map_err(field)?,
                remediation: super::rules::BUILTIN[0].remediation.into(),
                builtin: None,
                patterns: OnceLock::from(vec![cfg::compile_user_regex(&u.regex).map_err(field)?]),
                paths: OnceLock::from(paths),
                check: None,
            });
        }
        Ok(Self::assemble(rules, keywords))
    }

    fn assemble(rules: Vec<Rule>, keywords: Vec<(String, usize)>) -> RuleSet {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut by_keyword: Vec<Vec<usize>> = Vec::new();
        for (k, rule) in keywords {
            let lower = k.to_ascii_lowercase();
            let id = *index.entry(lower.clone()).or_insert_with(|| {
                patterns.push(lower);
                by_keyword.push(Vec::new());
                patterns.len() - 1
            });
            if !by_keyword[id].contains(&rule) {
                by_keyword[id].push(rule);
            }
        }
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .expect("keywords are bounded in number and length");
        RuleSet {
            rules,
            longest: patterns.iter().map(String::len).max().unwrap_or(0),
            keywords,
            by_keyword,
        }
    }

    /// Secrets in `text[from..]`: keyword hits starting before `until`
    /// (the rest waits for more context), each rule's regexes on the merged
    /// windows around its hits; the window may reach back before `from`.
    /// `applies` says which rules this text is searched for.
    pub fn scan(
        &self,
        text: &[u8],
        from: usize,
        until: usize,
        applies: &mut dyn FnMut(usize) -> bool,
        out: &mut Vec<Hit>,
    ) {
        let mut windows: Vec<(usize, usize, usize)> = Vec::new();
        // A keyword starting before `until` ends before this.
        let stop = until.saturating_add(self.longest).min(text.len());
        // Newline offsets, found once a keyword hits: each window is then
        // two binary searches, however many hits share a long line.
        let mut newlines: Option<Vec<usize>> = None;
        for m in self.keywords.find_overlapping_iter(&text[from..stop]) {
            let at = from + m.start();
            // Overlapping matches come in the order they end.
            if at >= until {
                continue;
            }
            for &rule in &self.by_keyword[m.pattern().as_usize()] {
                if applies(rule) {
                    let nl =
                        newlines.get_or_insert_with(|| memchr::memchr_iter(b'\n', text).collect());
                    let (s, e) = window(text.len(), nl, at, m.end() + from);
                    windows.push((rule, s, e));
                }
            }
        }
        windows.sort_unstable();
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(windows.len());
        for w in windows {
            match merged.last_mut() {
                Some(last) if last.0 == w.0 && w.1 <= last.2 => last.2 = last.2.max(w.2),
                _ => merged.push(w),
            }
        }
        for (rule, s, e) in merged {
            self.run_rule(rule, text, s, e, out);
        }
    }

    fn run_rule(&self, rule: usize, text: &[u8], s: usize, e: usize, out: &mut Vec<Hit>) {
        let r = &self.rules[rule];
        for re in r.patterns() {
            for caps in re.captures_iter(&text[s..e]) {
                let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                    continue;
                };
                if m.is_empty() || r.check.is_some_and(|c| !c(m.as_bytes())) {
                    continue;
                }
                out.push(Hit {
                    rule,
                    start: s + m.start(),
                    end: s + m.end(),
                });
            }
        }
    }
}

/// The lines around a keyword at `at..end` of a text `len` bytes long
/// whose newlines are at `nl`: [`LINES_BEFORE`] lines before its line,
/// [`LINES_AFTER`] after, at most [`WINDOW_BYTES`] each side.
fn window(len: usize, nl: &[usize], at: usize, end: usize) -> (usize, usize) {
    let before = nl.partition_point(|&p| p < at);
    let s = match before.checked_sub(LINES_BEFORE + 1) {
        Some(i) => nl[i] + 1,
        None => 0,
    };
    let after = nl.partition_point(|&p| p < end);
    let e = nl.get(after + LINES_AFTER).copied().unwrap_or(len);
    (
        s.max(at.saturating_sub(WINDOW_BYTES)),
        e.min(end + WINDOW_BYTES).min(len),
    )
}
