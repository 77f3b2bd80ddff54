//! Embedded clear-text secrets (NIST SP 800-190 §4.1.4).
//!
//! Searched: every text file of every layer (a file a later layer deleted
//! or overwrote is still in the image and is reported with `later_layer`,
//! see [`later`]), and the
//! image config's `Env`, `Labels` and history `created_by` (where build
//! args leak). Not searched: binaries, archives and compressed files (by
//! magic number or a NUL byte in their head), files over
//! [`skip::MAX_FILE_BYTES`], and the documented [`skip::SKIPPED_PATHS`].
//!
//! Cost: the layer reader shows this module the bytes it decompresses
//! anyway ([`crate::image::observe`]); an Aho–Corasick pass over them finds
//! rule keywords, and regexes run only on the lines around a keyword.
//! Memory is a window per file being read, whatever its size.
//!
//! A finding never holds the secret: only [`redact`]ed excerpts leave this
//! module.
//!
//! Use: build a [`SecretScan`] from the policy's `secrets:` section, put
//! [`SecretScan::observer`] into `PullOptions::observer`, pull, then
//! [`SecretScan::findings`] with the pulled image's layers and config.

pub mod cfg;
mod engine;
pub mod glob;
pub mod later;
pub mod rules;
pub mod skip;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::Date;

use crate::cancel::{Cancelled, checkpoint};
use crate::image::layer::LayerSource;
use crate::image::observe::{EntryObserver, LayerVisit, Observer};
use crate::image::{ImageConfig, Layer};
use crate::risks::{LaterLayer, RiskFinding, RiskKind, RiskLocation};

pub use cfg::{SecretsPolicy, SecretsPolicyError};
use engine::{Hit, RuleSet};
use later::{PathHasher, SameLayer, Written};
use stream::{FileScan, Found};

/// Secret findings kept per image; the rest are counted in a warning.
pub const MAX_FINDINGS: usize = 500;
/// Whiteouts remembered per layer to tell `later_layer: deleted` (real
/// images have hundreds).
const MAX_REMOVED: usize = 100_000;

/// Counters of one scan, for reports and measurements.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SecretStats {
    pub files_searched: u64,
    pub bytes_searched: u64,
    pub files_skipped_by_path: u64,
    pub files_skipped_by_size: u64,
    pub files_skipped_by_content: u64,
}

#[derive(Default)]
struct Counters {
    files_searched: AtomicU64,
    bytes_searched: AtomicU64,
    by_path: AtomicU64,
    by_size: AtomicU64,
    by_content: AtomicU64,
}

/// What one read of one layer found.
#[derive(Default)]
struct LayerResult {
    /// (path, finding, what a later entry of this same layer did to it).
    findings: Vec<(String, Found, Option<LaterLayer>)>,
    /// (path, opaque): whiteouts and opaque directories.
    removed: Vec<(String, bool)>,
    removed_overflow: bool,
    /// Every other entry, hashed: for the findings of lower layers.
    written: Written,
}

impl LayerResult {
    /// What this layer did to a lower layer's file at `path` (hashes from
    /// [`PathHasher::with_parents`]): a whiteout or opaque directory
    /// deletes it; an entry at the path overwrites it; a non-directory at
    /// a parent path deletes it.
    fn change_to(&self, path: &str, own: u64, parents: &[u64]) -> Option<LaterLayer> {
        if self
            .removed
            .iter()
            .any(|(gone, opaque)| deletes(gone, *opaque, path))
        {
            return Some(LaterLayer::Deleted);
        }
        self.written.change_to(own, parents)
    }
}

/// The secret scan of one image: shown the layers during the pull, asked
/// for the findings afterwards.
pub struct SecretScan {
    rules: RuleSet,
    allow: Vec<(cfg::AllowEntry, Option<regex::Regex>)>,
    /// By layer key (blob digest, or diff_id when the source has none):
    /// the last complete read of that layer.
    layers: Mutex<HashMap<String, LayerResult>>,
    counters: Counters,
    paths: PathHasher,
}

/// The findings of an image, and what a person should know about them.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SecretsOutcome {
    pub findings: Vec<RiskFinding>,
    /// Findings an allow-list entry covers (not in `findings`).
    pub allowed: usize,
    pub warnings: Vec<String>,
    pub stats: SecretStats,
}

impl SecretScan {
    pub fn new(policy: &SecretsPolicy) -> Result<Arc<SecretScan>, SecretsPolicyError> {
        let rules = RuleSet::new(policy)?;
        let allow = policy
            .allow
            .iter()
            .map(|a| {
                let glob = a.path.as_deref().map(glob::to_regex).transpose();
                glob.map(|g| (a.clone(), g))
                    .map_err(|d| SecretsPolicyError::Invalid {
                        field: "allow".into(),
                        detail: d,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(SecretScan {
            rules,
            allow,
            layers: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            paths: PathHasher::default(),
        }))
    }

    /// For `PullOptions::observer`.
    pub fn observer(self: &Arc<Self>) -> Observer {
        Observer(self.clone())
    }

    pub fn stats(&self) -> SecretStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SecretStats {
            files_searched: get(&c.files_searched),
            bytes_searched: get(&c.bytes_searched),
            files_skipped_by_path: get(&c.by_path),
            files_skipped_by_size: get(&c.by_size),
            files_skipped_by_content: get(&c.by_content),
        }
    }

    /// The findings in the layers seen and in `config`, allow-list applied
    /// as of `today`.
    pub fn findings(
        &self,
        layers: &[Layer],
        config: &ImageConfig,
        today: Date,
    ) -> Result<SecretsOutcome, Cancelled> {
        let mut out = SecretsOutcome {
            stats: self.stats(),
            ..Default::default()
        };
        let mut all = self.layer_findings(layers, &mut out.warnings);
        all.extend(self.config_findings(config)?);
        let total = all.len();
        for f in all {
            if self.allowed(&f, today, &mut out.warnings) {
                out.allowed += 1;
            } else if out.findings.len() < MAX_FINDINGS {
                out.findings.push(f);
            }
        }
        let dropped = total - out.allowed - out.findings.len();
        if dropped > 0 {
            out.warnings.push(format!(
                "{dropped} more secret findings are not listed (at most {MAX_FINDINGS} per image)"
            ));
        }
        out.warnings.dedup();
        Ok(out)
    }

    fn layer_findings(&self, layers: &[Layer], warnings: &mut Vec<String>) -> Vec<RiskFinding> {
        let results = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        let of = |l: &Layer| results.get(&l.digest).or_else(|| results.get(&l.diff_id));
        let by_index: Vec<Option<&LayerResult>> = layers.iter().map(of).collect();
        for (key, r) in results.iter() {
            self.overflow_warnings(key, r, warnings);
        }
        let mut out = Vec::new();
        for (key, r) in results.iter() {
            // A layer key may repeat (the same blob twice): the last index
            // is the copy whose deletion matters.
            let Some(layer) = layers
                .iter()
                .rposition(|l| l.digest == *key || l.diff_id == *key)
            else {
                continue;
            };
            for (path, f, same_layer) in &r.findings {
                let later_layer =
                    same_layer.or_else(|| self.later_change(&by_index[layer + 1..], path));
                out.push(self.finding(
                    f.rule,
                    RiskLocation::File {
                        layer,
                        layer_digest: layers[layer].digest.clone(),
                        path: format!("/{path}"),
                        line: Some(f.line),
                        later_layer,
                    },
                    f.excerpt.clone(),
                ));
            }
        }
        out.sort_by_key(|f| location_key(&f.location));
        out
    }

    /// The first change a layer above made to `path` (the change that hid
    /// the file; what happened afterwards does not matter).
    fn later_change(&self, above: &[Option<&LayerResult>], path: &str) -> Option<LaterLayer> {
        let (own, parents) = self.paths.with_parents(path);
        above
            .iter()
            .flatten()
            .find_map(|r| r.change_to(path, own, &parents))
    }

    fn overflow_warnings(&self, key: &str, r: &LayerResult, warnings: &mut Vec<String>) {
        if r.removed_overflow {
            warnings.push(format!(
                "layer {key} deletes more than {MAX_REMOVED} paths; secrets in files it \
                 deletes may not say later_layer: deleted"
            ));
        }
        if r.written.overflow {
            warnings.push(format!(
                "layer {key} has more than {} entries; secrets in files it overwrites may \
                 not say later_layer: overwritten",
                later::MAX_WRITTEN
            ));
        }
    }

    /// `Env`, `Labels` and history `created_by`: rules limited to file
    /// paths do not apply here.
    fn config_findings(&self, config: &ImageConfig) -> Result<Vec<RiskFinding>, Cancelled> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for (i, e) in config.env.iter().enumerate() {
            fields.push((format!("Env[{i}]"), e.clone()));
        }
        for (k, v) in &config.labels {
            fields.push((format!("Labels.{k}"), format!("{k}={v}")));
        }
        for (i, h) in config.history.iter().enumerate() {
            if let Some(c) = &h.created_by {
                fields.push((format!("history[{i}].created_by"), c.clone()));
            }
        }
        let mut out = Vec::new();
        for (field, text) in fields {
            checkpoint()?;
            for (rule, excerpt) in self.scan_text(text.as_bytes()) {
                out.push(self.finding(
                    rule,
                    RiskLocation::Config {
                        field: field.clone(),
                    },
                    excerpt,
                ));
            }
        }
        Ok(out)
    }

    /// Secrets in one short text (a config field), deduplicated by value.
    fn scan_text(&self, text: &[u8]) -> Vec<(usize, String)> {
        let mut hits: Vec<Hit> = Vec::new();
        let rules = &self.rules;
        rules.scan(
            text,
            0,
            text.len(),
            &mut |r| !rules.rules[r].limited(),
            &mut hits,
        );
        let mut kept: Vec<Hit> = Vec::new();
        for h in hits {
            if !kept.iter().any(|k| k.start < h.end && h.start < k.end) {
                kept.push(h);
            }
        }
        kept.iter()
            .map(|h| (h.rule, redact(&text[h.start..h.end])))
            .collect()
    }

    fn finding(&self, rule: usize, location: RiskLocation, excerpt: String) -> RiskFinding {
        let r = &self.rules.rules[rule];
        RiskFinding {
            kind: RiskKind::Secret,
            rule_id: r.id.clone(),
            title: r.title.clone(),
            severity: r.severity,
            location,
            excerpt: Some(excerpt),
            remediation: r.remediation.clone(),
        }
    }

    /// Whether a live allow entry covers `f`; an expired one that would
    /// have becomes a warning.
    fn allowed(&self, f: &RiskFinding, today: Date, warnings: &mut Vec<String>) -> bool {
        let path = match &f.location {
            RiskLocation::File { path, .. } => Some(path.as_str()),
            _ => None,
        };
        for (a, glob) in &self.allow {
            let covers = a.rule.eq_ignore_ascii_case(&f.rule_id)
                && match glob {
                    None => true,
                    Some(g) => path.is_some_and(|p| g.is_match(p)),
                };
            if !covers {
                continue;
            }
            if a.is_expired(today) {
                warnings.push(format!(
                    "secrets allow entry for {} (expired {}) no longer applies",
                    a.rule, a.expires
                ));
                continue;
            }
            return true;
        }
        false
    }
}

/// Whether a whiteout of `gone` (or an opaque directory `gone`) removes
/// `path` (normalised, no leading `/`).
fn deletes(gone: &str, opaque: bool, path: &str) -> bool {
    let below = gone.is_empty()
        || path
            .strip_prefix(gone)
            .is_some_and(|rest| rest.starts_with('/'));
    below || (!opaque && gone == path)
}

fn location_key(l: &RiskLocation) -> (usize, String, u32) {
    match l {
        RiskLocation::File {
            layer, path, line, ..
        } => (*layer, path.clone(), line.unwrap_or(0)),
        RiskLocation::Config { field } => (usize::MAX, field.clone(), 0),
        RiskLocation::Image => (usize::MAX, String::new(), 0),
    }
}

/// What a report may show of a secret: its first and last four characters
/// when it is long (24+; two of each from 16), stars for the rest; only
/// stars for a short one. Never its length beyond 32 stars.
pub fn redact(value: &[u8]) -> String {
    let chars: Vec<char> = String::from_utf8_lossy(value).chars().collect();
    let n = chars.len();
    let show = match n {
        24.. => 4,
        16..=23 => 2,
        _ => 0,
    };
    if show == 0 {
        return "********".into();
    }
    let safe = |c: &char| if c.is_ascii_graphic() { *c } else { '*' };
    let mut s: String = chars[..show].iter().map(safe).collect();
    s.push_str(&"*".repeat((n - 2 * show).min(32)));
    s.extend(chars[n - show..].iter().map(safe));
    s
}

impl EntryObserver for SecretScan {
    fn layer<'a>(&'a self, source: &LayerSource) -> Box<dyn LayerVisit + 'a> {
        let key = if source.digest.is_empty() {
            source.diff_id.clone().unwrap_or_default()
        } else {
            source.digest.clone()
        };
        Box::new(Visit {
            scan: self,
            key,
            result: LayerResult::default(),
            current: None,
            bytes: 0,
            same_layer: SameLayer::default(),
        })
    }
}

/// One read of one layer.
struct Visit<'a> {
    scan: &'a SecretScan,
    key: String,
    result: LayerResult,
    current: Option<(String, FileScan<'a>)>,
    bytes: u64,
    /// This layer's finding paths, for a later entry at the same path.
    same_layer: SameLayer,
}

impl Visit<'_> {
    /// An entry of this layer at `path`: remembered (hashed) for the lower
    /// layers' findings, and checked against this layer's own.
    fn wrote(&mut self, path: &str, dir: bool) {
        let hash = self.scan.paths.hash(path);
        self.result.written.add(hash, dir);
        if let Some(change) = self.same_layer.hit(path, dir) {
            for (p, _, later) in &mut self.result.findings {
                if later.is_none() && SameLayer::applies(path, change, p) {
                    *later = Some(change);
                }
            }
        }
    }
}

impl LayerVisit for Visit<'_> {
    fn removed(&mut self, path: &str, opaque: bool) {
        if self.result.removed.len() < MAX_REMOVED {
            self.result.removed.push((path.to_owned(), opaque));
        } else {
            self.result.removed_overflow = true;
        }
    }

    fn file(&mut self, path: &str, size: u64) -> bool {
        self.wrote(path, false);
        let c = &self.scan.counters;
        if size == 0 {
            return false;
        }
        if size > skip::MAX_FILE_BYTES {
            c.by_size.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let abs = format!("/{path}");
        if skip::path_skipped(&abs) {
            c.by_path.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.current = Some((path.to_owned(), FileScan::new(&self.scan.rules, abs)));
        true
    }

    fn data(&mut self, bytes: &[u8]) -> bool {
        self.bytes += bytes.len() as u64;
        self.current
            .as_mut()
            .is_some_and(|(_, scan)| scan.feed(bytes))
    }

    fn end_file(&mut self) {
        let Some((path, scan)) = self.current.take() else {
            return;
        };
        let c = &self.scan.counters;
        let (found, skipped) = scan.finish();
        let counter = if skipped {
            &c.by_content
        } else {
            &c.files_searched
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if found.is_empty() || self.result.findings.len() >= MAX_FINDINGS {
            return;
        }
        self.same_layer.watch(&path);
        self.result
            .findings
            .extend(found.into_iter().map(|f| (path.clone(), f, None)));
        self.result.findings.truncate(MAX_FINDINGS);
    }

    fn entry(&mut self, path: &str, dir: bool) {
        self.wrote(path, dir);
    }

    fn finish(self: Box<Self>) {
        let c = &self.scan.counters;
        c.bytes_searched.fetch_add(self.bytes, Ordering::Relaxed);
        let mut result = self.result;
        result.written.seal();
        let mut layers = self.scan.layers.lock().unwrap_or_else(|p| p.into_inner());
        layers.insert(self.key, result);
    }
}

#[cfg(test)]
mod tests;
