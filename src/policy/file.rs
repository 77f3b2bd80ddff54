//! The policy file (DESIGN.md, "Policy file"): YAML or JSON, `version: 1`.
//!
//! Every error names the field (serde path, e.g. `ignore[0].reason`) and,
//! where the parser knows it, the line and column. Unknown fields are
//! rejected, so a misspelt `fail_on_kev` cannot silently weaken the gate.
//!
//! Action properties (or command-line flags) override the file's thresholds
//! and `fixable_only`: see [`PolicyOverrides`].

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::Date;

use super::explain::{FileSource, OverrideVia, PolicySource, SourceKind};
use super::{Policy, Thresholds};

mod prescan;
pub use prescan::{MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_FLOW_OPENINGS};

/// The only version this scangate reads.
pub const VERSION: u32 = 1;

/// Entries in `ignore` and in `fail_on_ids`, each. Checked while the list
/// is read, so an alias-expanded list stops here rather than in memory.
pub const MAX_LIST_ENTRIES: usize = 4096;
/// Longest `id`, `package`/`purl`, `reason`, `base_image.ref` (bytes).
const MAX_ID: usize = 256;
const MAX_PACKAGE: usize = 2048;
const MAX_REASON: usize = 4096;
const MAX_REF: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy file {file}: {message}")]
pub struct PolicyFileError {
    pub file: String,
    pub message: String,
}

/// The file as written. `None` fields were not set in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(deserialize_with = "de_version")]
    pub version: u32,
    #[serde(default)]
    pub thresholds: FileThresholds,
    #[serde(default)]
    pub fixable_only: Option<bool>,
    #[serde(default)]
    pub fail_on_kev: bool,
    #[serde(default, deserialize_with = "de_epss")]
    pub epss_threshold: Option<f64>,
    #[serde(default, deserialize_with = "de_ids")]
    pub fail_on_ids: Vec<String>,
    #[serde(default, deserialize_with = "de_ignore")]
    pub ignore: Vec<IgnoreRule>,
    /// Thresholds for findings only base-image layers brought
    /// ([`super::base`]).
    #[serde(default)]
    pub base_image: Option<BaseImage>,
    /// The name it was parsed under and the SHA-256 of its bytes: the
    /// decision records which file, in which revision, decided.
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub sha256: String,
    /// Image risks beyond CVEs ([`super::risks`]).
    #[serde(default)]
    pub secrets: Option<super::risks::SecretsPolicy>,
    #[serde(default)]
    pub config: Option<super::risks::ConfigPolicy>,
    #[serde(default)]
    pub signature: Option<super::risks::SignaturePolicy>,
}

/// Per-severity limits in the file: a missing key keeps the default
/// (critical 0, high 0, the rest unlimited), `null` means unlimited.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileThresholds {
    #[serde(default, deserialize_with = "de_set")]
    pub critical: Option<Option<u64>>,
    #[serde(default, deserialize_with = "de_set")]
    pub high: Option<Option<u64>>,
    #[serde(default, deserialize_with = "de_set")]
    pub medium: Option<Option<u64>>,
    #[serde(default, deserialize_with = "de_set")]
    pub low: Option<Option<u64>>,
    #[serde(default, deserialize_with = "de_set")]
    pub other: Option<Option<u64>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BaseImage {
    #[serde(default, rename = "ref", deserialize_with = "de_opt_ref")]
    pub reference: Option<String>,
    #[serde(default)]
    pub thresholds: FileThresholds,
}

/// Suppresses one vulnerability id, optionally only in components whose
/// purl starts with `package`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    /// A purl prefix (`purl` is accepted as another name). It matches at a
    /// purl boundary only: `pkg:deb/debian/openssl` matches
    /// `pkg:deb/debian/openssl@3.0.11-1?arch=amd64` but not
    /// `pkg:deb/debian/openssl-provider-legacy@…`.
    #[serde(
        default,
        alias = "purl",
        deserialize_with = "de_opt_nonempty",
        skip_serializing_if = "Option::is_none"
    )]
    pub package: Option<String>,
    /// Required: an exception nobody can explain is not an exception.
    #[serde(deserialize_with = "de_reason")]
    pub reason: String,
    /// The last day the rule applies (UTC); from the next day on it is
    /// expired and the findings count again.
    #[serde(
        default,
        deserialize_with = "de_date",
        serialize_with = "ser_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<Date>,
}

impl IgnoreRule {
    pub fn is_expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|e| today > e)
    }

    /// Whether the rule names this finding (expiry aside).
    pub fn matches(&self, id: &str, purl: &str) -> bool {
        self.id.eq_ignore_ascii_case(id)
            && self
                .package
                .as_deref()
                .is_none_or(|p| purl_has_prefix(purl, p))
    }
}

impl std::fmt::Display for IgnoreRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)?;
        if let Some(p) = &self.package {
            write!(f, " in {p}")?;
        }
        if let Some(e) = self.expires {
            write!(f, " (expires {})", fmt_date(e))?;
        }
        Ok(())
    }
}

/// `prefix` is a prefix of `purl` ending at a purl boundary: the end, or
/// before `@`, `?`, `#`, `/`, or the prefix itself ends with one of them.
/// Both sides are compared percent-decoded (the service encodes `+`, `~`).
pub fn purl_has_prefix(purl: &str, prefix: &str) -> bool {
    let purl = crate::inspector::findings::percent_decode(purl);
    let prefix = crate::inspector::findings::percent_decode(prefix);
    let Some(rest) = purl.strip_prefix(prefix.as_str()) else {
        return false;
    };
    rest.is_empty()
        || prefix.ends_with(['@', '?', '#', '/', '&'])
        || rest.starts_with(['@', '?', '#', '/'])
}

/// What action properties or command-line flags set; they win over the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    pub critical: Option<Option<u64>>,
    pub high: Option<Option<u64>>,
    pub medium: Option<Option<u64>>,
    pub low: Option<Option<u64>>,
    pub other: Option<Option<u64>>,
    pub fixable_only: Option<bool>,
    /// Properties or flags: only changes how the record names them.
    pub via: OverrideVia,
}

impl PolicyOverrides {
    /// What was set, as the user wrote it: `HighThreshold=5` for action
    /// properties, `--high-threshold 5` for flags.
    pub fn describe(&self) -> Vec<String> {
        let cli = self.via == OverrideVia::CommandLine;
        let mut out = Vec::new();
        for (prop, flag, v) in [
            ("CriticalThreshold", "--critical-threshold", self.critical),
            ("HighThreshold", "--high-threshold", self.high),
            ("MediumThreshold", "--medium-threshold", self.medium),
            ("LowThreshold", "--low-threshold", self.low),
            ("OtherThreshold", "--other-threshold", self.other),
        ] {
            if let Some(v) = v {
                let v = v.map_or("unlimited".to_owned(), |n| n.to_string());
                out.push(if cli {
                    format!("{flag} {v}")
                } else {
                    format!("{prop}={v}")
                });
            }
        }
        if let Some(f) = self.fixable_only {
            out.push(if cli {
                "--fixable-only".to_owned()
            } else {
                format!("FixableOnly={f}")
            });
        }
        out
    }

    pub fn apply(&self, mut p: Policy) -> Policy {
        let set = self.describe();
        if !set.is_empty() && p.source.kind == SourceKind::Defaults {
            p.source.kind = match self.via {
                OverrideVia::ActionProperties => SourceKind::ActionProperties,
                OverrideVia::CommandLine => SourceKind::CommandLine,
            };
        }
        p.source.overrides.extend(set);
        let t = &mut p.thresholds;
        for (o, slot) in [
            (self.critical, &mut t.critical),
            (self.high, &mut t.high),
            (self.medium, &mut t.medium),
            (self.low, &mut t.low),
            (self.other, &mut t.other),
        ] {
            if let Some(v) = o {
                *slot = v;
            }
        }
        if let Some(v) = self.fixable_only {
            p.fixable_only = v;
        }
        p
    }
}

impl FileThresholds {
    fn apply(&self, mut t: Thresholds) -> Thresholds {
        for (o, slot) in [
            (self.critical, &mut t.critical),
            (self.high, &mut t.high),
            (self.medium, &mut t.medium),
            (self.low, &mut t.low),
            (self.other, &mut t.other),
        ] {
            if let Some(v) = o {
                *slot = v;
            }
        }
        t
    }
}

impl PolicyFile {
    /// Parses `text`; `name` (the file's path) picks the format: `.json`
    /// is JSON, `.yaml`/`.yml` YAML, anything else JSON if it starts with
    /// `{`, else YAML.
    ///
    /// The file is hostile input (anyone who can commit to the source
    /// repository writes it): its size, nesting, aliases, list lengths and
    /// string lengths are bounded, so parsing takes time and memory linear
    /// in at most [`MAX_BYTES`]. It is still CPU work: call it off the
    /// async runtime (`crate::cancel::spawn_blocking`).
    pub fn parse(name: &str, text: &str) -> Result<PolicyFile, PolicyFileError> {
        let err = |message: String| PolicyFileError {
            file: name.to_owned(),
            message,
        };
        if text.len() > MAX_BYTES {
            return Err(err(format!(
                "the file is {} bytes, more than the {MAX_BYTES} bytes a policy file may have",
                text.len()
            )));
        }
        let lower = name.to_ascii_lowercase();
        let json = lower.ends_with(".json")
            || (!lower.ends_with(".yaml")
                && !lower.ends_with(".yml")
                && text.trim_start().starts_with('{'));
        let mut file = Self::parse_text(text, json).map_err(err)?;
        // User secret rules compile here, not in the middle of a job.
        if let Some(sec) = &file.secrets {
            sec.scanner().validate().map_err(|e| err(e.to_string()))?;
        }
        if let Some(sig) = &file.signature {
            sig.validate().map_err(|e| err(format!("signature: {e}")))?;
        }
        file.name = name.to_owned();
        file.sha256 = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        };
        Ok(file)
    }

    /// The document itself; errors are the message without the file name.
    fn parse_text(text: &str, json: bool) -> Result<PolicyFile, String> {
        let err = |m: String| m;
        if json {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, PolicyFile>(de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                err(if path == "." || inner.is_eof() && path.is_empty() {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                })
            })
        } else {
            if text.trim().is_empty() {
                return Err(err(
                    "the file is empty (expected at least `version: 1`)".into()
                ));
            }
            // libyaml's time grows with tokens × flow depth: bound the bytes
            // before it sees them.
            prescan::check(text).map_err(err)?;
            // serde_yaml_ng's message already carries the path and the
            // line/column ("ignore[0]: missing field `reason` at line 6
            // column 5").
            serde_yaml_ng::from_str::<PolicyFile>(text).map_err(|e| {
                let mut m = e.to_string();
                // Our checks on a top-level field are placed at the start of
                // the document: point at the field's own line instead.
                if let Some(line) = top_level_line(text, &m) {
                    if let Some(i) = m.rfind(" at line ") {
                        m.truncate(i);
                    }
                    m.push_str(&format!(" at line {line}"));
                }
                err(m)
            })
        }
    }

    /// Reads the key and root files the `signature:` section names, where
    /// the policy file itself was read (see
    /// [`crate::signature::cfg::SignaturePolicy::resolve_files`]).
    pub fn resolve_signature_files(
        &mut self,
        read: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<(), PolicyFileError> {
        let Some(sig) = self.signature.as_mut() else {
            return Ok(());
        };
        sig.resolve_files(read).map_err(|e| PolicyFileError {
            file: self.name.clone(),
            message: format!("signature: {e}"),
        })
    }

    /// The policy this file describes, with `overrides` applied on top.
    pub fn to_policy(&self, overrides: &PolicyOverrides) -> Policy {
        let base = Policy {
            thresholds: self.thresholds.apply(Thresholds::default()),
            fixable_only: self.fixable_only.unwrap_or(false),
            fail_on_kev: self.fail_on_kev,
            epss_threshold: self.epss_threshold,
            fail_on_ids: self.fail_on_ids.iter().cloned().collect(),
            ignore: self.ignore.clone(),
            base_image: None,
            source: PolicySource {
                kind: SourceKind::PolicyFile,
                file: Some(FileSource {
                    path: self.name.clone(),
                    sha256: self.sha256.clone(),
                    location: None,
                }),
                overrides: Vec::new(),
            },
            risks: super::risks::RiskPolicy {
                secrets: self.secrets.clone().unwrap_or_default(),
                config: self.config.clone().unwrap_or_default(),
                signature: self.signature.clone().unwrap_or_default(),
            },
        };
        let mut p = overrides.apply(base);
        // Resolved after the overrides: a severity the section leaves out
        // follows the top-level threshold actually in force.
        p.base_image = self.base_image.as_ref().map(|b| super::BaseImagePolicy {
            reference: b.reference.clone(),
            thresholds: b.thresholds.apply(p.thresholds),
        });
        p
    }

    /// Things worth telling the author that do not make the file invalid.
    pub fn warnings(&self, today: Date) -> Vec<String> {
        let mut w = Vec::new();
        let fail_ids: BTreeSet<String> = self
            .fail_on_ids
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        for (i, r) in self.ignore.iter().enumerate() {
            if r.is_expired(today) {
                w.push(format!(
                    "ignore[{i}] ({r}) has expired: its findings count again"
                ));
            }
            if fail_ids.contains(&r.id.to_ascii_uppercase()) {
                w.push(format!(
                    "ignore[{i}] ({r}) also appears in fail_on_ids: while the ignore rule is live it wins"
                ));
            }
        }
        let risks = super::risks::RiskPolicy {
            secrets: self.secrets.clone().unwrap_or_default(),
            config: self.config.clone().unwrap_or_default(),
            signature: self.signature.clone().unwrap_or_default(),
        };
        w.extend(super::risks::warnings(&risks, &[], today));
        if let Some(b) = &self.base_image
            && b.thresholds == FileThresholds::default()
        {
            w.push(
                "base_image sets no thresholds: inherited findings are gated like the image's own"
                    .into(),
            );
        }
        w
    }
}

/// For the messages of our own checks on top-level fields (`version: …`,
/// `epss_threshold must …`, `fail_on_ids entries …`), the 1-based line of
/// that field.
fn top_level_line(text: &str, message: &str) -> Option<usize> {
    let key = ["version:", "epss_threshold must", "fail_on_ids entries"]
        .into_iter()
        .find(|k| message.starts_with(k))?
        .split([':', ' '])
        .next()?;
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

pub fn today_utc() -> Date {
    time::OffsetDateTime::now_utc().date()
}

pub fn fmt_date(d: Date) -> String {
    d.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| d.to_string())
}

fn de_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v != VERSION {
        return Err(serde::de::Error::custom(format!(
            "version: unsupported policy file version {v}; this scangate reads version {VERSION}"
        )));
    }
    Ok(v)
}

/// Present (even as `null`) → `Some(value)`; absent → `None` via `default`.
fn de_set<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

fn de_epss<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    if let Some(x) = v
        && !(0.0..=1.0).contains(&x)
    {
        return Err(serde::de::Error::custom(format!(
            "epss_threshold must be between 0 and 1 (a probability), got {x}"
        )));
    }
    Ok(v)
}

// serde_yaml_ng places a custom error at the enclosing mapping (its path and
// line), so these messages name the field themselves.
fn nonempty<'de, D: Deserializer<'de>>(d: D, field: &str, max: usize) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let t = s.trim();
    if t.is_empty() {
        return Err(serde::de::Error::custom(format!(
            "{field} must not be empty"
        )));
    }
    not_longer(field, t, max).map_err(serde::de::Error::custom)?;
    Ok(t.to_owned())
}

/// Each string is checked as it is read and dropped when too long, so
/// aliases repeating one large string never hold more than one copy.
fn not_longer(field: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!(
            "{field} is {} bytes, more than the {max} allowed",
            s.len()
        ));
    }
    Ok(())
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    nonempty(d, "id", MAX_ID)
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    nonempty(d, "reason", MAX_REASON)
}

fn de_opt_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s.trim().is_empty() => Err(serde::de::Error::custom(
            "package must not be empty (leave it out to match every package)",
        )),
        Some(s) => {
            not_longer("package", s.trim(), MAX_PACKAGE).map_err(serde::de::Error::custom)?;
            Ok(Some(s.trim().to_owned()))
        }
        None => Ok(None),
    }
}

fn de_opt_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s.trim().is_empty() => Err(serde::de::Error::custom(
            "base_image.ref must not be empty (leave it out to use the image's org.opencontainers.image.base.* annotations)",
        )),
        Some(s) => {
            not_longer("base_image.ref", s.trim(), MAX_REF).map_err(serde::de::Error::custom)?;
            Ok(Some(s.trim().to_owned()))
        }
        None => Ok(None),
    }
}

/// A list read one entry at a time, refused past `max` entries before the
/// next one is built.
pub(super) fn capped_list<'de, D, T>(
    d: D,
    field: &'static str,
    max: usize,
    check: fn(&T) -> Result<(), String>,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T> {
        field: &'static str,
        max: usize,
        check: fn(&T) -> Result<(), String>,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {} entries", self.max)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = seq.next_element::<T>()? {
                if out.len() == self.max {
                    return Err(serde::de::Error::custom(format!(
                        "{} has more than {} entries",
                        self.field, self.max
                    )));
                }
                (self.check)(&x).map_err(serde::de::Error::custom)?;
                out.push(x);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V { field, max, check })
}

fn de_ignore<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IgnoreRule>, D::Error> {
    capped_list(d, "ignore", MAX_LIST_ENTRIES, |_| Ok(()))
}

fn de_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Vec<String> = capped_list(d, "fail_on_ids", MAX_LIST_ENTRIES, |s: &String| {
        if s.trim().is_empty() {
            return Err("fail_on_ids entries must not be empty".to_owned());
        }
        not_longer("fail_on_ids entry", s.trim(), MAX_ID)
    })?;
    Ok(v.into_iter().map(|s| s.trim().to_owned()).collect())
}

pub(super) fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(Some)
    .map_err(|e| {
        serde::de::Error::custom(format!(
            "expires must be a date YYYY-MM-DD, got {s:?} ({e})"
        ))
    })
}

pub(super) fn ser_date<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&fmt_date(*d)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const FULL: &str = r#"version: 1
thresholds: { critical: 0, high: 2, medium: null }
fixable_only: true
fail_on_kev: true
epss_threshold: 0.7
fail_on_ids: [CVE-2021-44228]
ignore:
  - id: CVE-2023-0464
    package: pkg:deb/debian/openssl
    reason: not reachable from our code
    expires: 2027-01-31
  - id: CVE-2024-1
    purl: pkg:npm/lodash
    reason: dev only
base_image:
  ref: public.ecr.aws/docker/library/debian:bookworm-slim
  thresholds: { critical: null, high: null }
"#;

    fn parse(name: &str, text: &str) -> Result<PolicyFile, String> {
        PolicyFile::parse(name, text).map_err(|e| e.to_string())
    }

    #[test]
    fn yaml_full_example() {
        let f = parse("scangate.yaml", FULL).unwrap();
        assert_eq!(f.version, 1);
        assert_eq!(f.thresholds.high, Some(Some(2)));
        assert_eq!(f.thresholds.medium, Some(None));
        assert_eq!(f.thresholds.low, None);
        assert_eq!(f.fixable_only, Some(true));
        assert!(f.fail_on_kev);
        assert_eq!(f.epss_threshold, Some(0.7));
        assert_eq!(f.fail_on_ids, vec!["CVE-2021-44228"]);
        assert_eq!(f.ignore.len(), 2);
        assert_eq!(f.ignore[0].expires, Some(date!(2027 - 01 - 31)));
        assert_eq!(f.ignore[1].package.as_deref(), Some("pkg:npm/lodash"));
        assert!(f.base_image.is_some());
        let p = f.to_policy(&PolicyOverrides::default());
        assert_eq!(
            p.thresholds,
            Thresholds {
                critical: Some(0),
                high: Some(2),
                medium: None,
                low: None,
                other: None
            }
        );
        assert!(p.fixable_only && p.fail_on_kev);
        assert!(p.fail_on_ids.contains("CVE-2021-44228"));
    }

    #[test]
    fn base_image_thresholds_default_to_the_top_level_ones_in_force() {
        let f = parse("scangate.yaml", FULL).unwrap();
        let b = f.to_policy(&PolicyOverrides::default()).base_image.unwrap();
        assert_eq!(
            b.reference.as_deref(),
            Some("public.ecr.aws/docker/library/debian:bookworm-slim")
        );
        assert_eq!(b.thresholds.critical, None, "null: report only");
        assert_eq!(b.thresholds.high, None);
        let f = parse(
            "p.yaml",
            "version: 1\nthresholds: { medium: 5 }\nbase_image:\n  thresholds: { critical: 3 }\n",
        )
        .unwrap();
        let o = PolicyOverrides {
            high: Some(Some(7)),
            ..Default::default()
        };
        let p = f.to_policy(&o);
        let b = p.base_image.unwrap();
        assert_eq!(b.reference, None, "from the image's annotations");
        assert_eq!(b.thresholds.critical, Some(3));
        assert_eq!(b.thresholds.high, Some(7), "the action property in force");
        assert_eq!(b.thresholds.medium, Some(5), "the file's top level");
        assert_eq!(p.thresholds.critical, Some(0), "the top level is untouched");
        let e = parse("p.yaml", "version: 1\nbase_image: { ref: ' ' }\n").unwrap_err();
        assert!(e.contains("base_image.ref must not be empty"), "{e}");
        let e = parse("p.yaml", "version: 1\nbase_image: { image: x }\n").unwrap_err();
        assert!(e.contains("unknown field `image`"), "{e}");
    }

    #[test]
    fn json_is_read_too() {
        let f = parse(
            "policy.json",
            r#"{"version": 1, "thresholds": {"critical": 1, "low": 10},
                "ignore": [{"id": "CVE-1", "reason": "r", "expires": "2026-01-01"}]}"#,
        )
        .unwrap();
        let p = f.to_policy(&PolicyOverrides::default());
        assert_eq!(p.thresholds.critical, Some(1));
        assert_eq!(p.thresholds.high, Some(0), "default kept");
        assert_eq!(p.thresholds.low, Some(10));
        // Sniffed without an extension.
        assert!(parse("policy", r#"{"version": 1}"#).is_ok());
    }

    #[test]
    fn minimal_file_is_the_default_policy() {
        let p = parse("p.yml", "version: 1\n")
            .unwrap()
            .to_policy(&PolicyOverrides::default());
        // The same gates; only the record of where they came from differs.
        assert_eq!(
            p,
            Policy {
                source: p.source.clone(),
                ..Policy::default()
            }
        );
        let f = p.source.file.as_ref().unwrap();
        assert_eq!(f.path, "p.yml");
        // sha256 of "version: 1\n".
        assert_eq!(
            f.sha256,
            "09bfcc6a14b83e2192b8673677725c84883ee9cd0c70e45c9ec09daa8f2b2847"
        );
    }

    #[test]
    fn missing_reason_names_the_rule_and_the_line() {
        let e = parse(
            "p.yaml",
            "version: 1\nignore:\n  - id: CVE-1\n    package: pkg:deb/debian/x\n",
        )
        .unwrap_err();
        assert!(e.contains("p.yaml"), "{e}");
        assert!(e.contains("ignore[0]"), "{e}");
        assert!(e.contains("reason"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = parse(
            "p.yaml",
            "version: 1\nignore:\n  - id: CVE-1\n    reason: '  '\n",
        )
        .unwrap_err();
        assert!(
            e.contains("ignore[0]") && e.contains("reason must not be empty"),
            "{e}"
        );
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn unknown_fields_are_rejected_with_the_line() {
        let e = parse("p.yaml", "version: 1\nfail_on_kev: true\nfial_on_ids: []\n").unwrap_err();
        assert!(e.contains("unknown field `fial_on_ids`"), "{e}");
        assert!(e.contains("expected one of"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = parse("p.yaml", "version: 1\nthresholds: { critcal: 1 }\n").unwrap_err();
        assert!(e.contains("thresholds"), "{e}");
        assert!(e.contains("critcal"), "{e}");
        let e = parse(
            "p.json",
            "{\n  \"version\": 1,\n  \"ignore\": [{\"id\": \"A\", \"reason\": \"r\", \"until\": \"x\"}]\n}",
        )
        .unwrap_err();
        assert!(e.contains("ignore[0]"), "{e}");
        assert!(e.contains("unknown field `until`"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_values_name_field_and_line() {
        for (text, needles) in [
            (
                "version: 2\n",
                &["version: unsupported policy file version 2", "line 1"][..],
            ),
            ("fail_on_kev: true\n", &["missing field `version`"][..]),
            (
                "# policy\nversion: 1\nepss_threshold: 7\n",
                &["epss_threshold must be between 0 and 1", "line 3"][..],
            ),
            (
                "version: 1\nthresholds:\n  high: lots\n",
                &["thresholds.high", "line 3"][..],
            ),
            (
                "version: 1\nthresholds:\n  high: -1\n",
                &["thresholds.high", "line 3"][..],
            ),
            (
                "version: 1\nignore:\n  - id: A\n    reason: r\n    expires: 31/01/2027\n",
                &["ignore[0]", "expires must be a date YYYY-MM-DD", "line 3"][..],
            ),
            (
                "version: 1\nfixable_only: perhaps\n",
                &["fixable_only", "line 2"][..],
            ),
            ("version: 1\nignore: [\n", &["line"][..]),
            ("", &["empty"][..]),
        ] {
            let e = parse("p.yaml", text).unwrap_err();
            for n in needles {
                assert!(e.contains(n), "{text:?}: {e} lacks {n}");
            }
        }
        let e = parse(
            "p.json",
            "{\n  \"version\": 1,\n  \"epss_threshold\": \"high\"\n}",
        )
        .unwrap_err();
        assert!(e.contains("epss_threshold") && e.contains("line 3"), "{e}");
        let e = parse("p.json", "{\"version\": 1,").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let f = parse(
            "p.yaml",
            "version: 1\nthresholds: { critical: 5, high: 5, low: 1 }\nfixable_only: true\n",
        )
        .unwrap();
        let o = PolicyOverrides {
            high: Some(None),
            critical: Some(Some(0)),
            fixable_only: Some(false),
            ..Default::default()
        };
        let p = f.to_policy(&o);
        assert_eq!(p.thresholds.critical, Some(0));
        assert_eq!(p.thresholds.high, None);
        assert_eq!(p.thresholds.low, Some(1), "not overridden: the file's");
        assert!(!p.fixable_only);
    }

    #[test]
    fn purl_prefixes_match_at_boundaries() {
        let purl = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=bookworm";
        assert!(purl_has_prefix(purl, "pkg:deb/debian/openssl"));
        assert!(purl_has_prefix(purl, "pkg:deb/debian/"));
        assert!(purl_has_prefix(purl, "pkg:deb/debian"));
        assert!(purl_has_prefix(
            purl,
            "pkg:deb/debian/openssl@3.0.11-1~deb12u2"
        ));
        assert!(purl_has_prefix(
            purl,
            "pkg:deb/debian/openssl@3.0.11-1%7Edeb12u2"
        ));
        assert!(purl_has_prefix(purl, purl));
        assert!(!purl_has_prefix(purl, "pkg:deb/debian/open"));
        assert!(!purl_has_prefix(purl, "pkg:deb/debian/openssl@3.0"));
        assert!(!purl_has_prefix(
            "pkg:deb/debian/openssl-provider-legacy@3",
            "pkg:deb/debian/openssl"
        ));
        assert!(!purl_has_prefix(purl, "pkg:rpm/"));
    }

    #[test]
    fn warnings_for_expired_conflicting_and_unapplied() {
        let f = parse(
            "p.yaml",
            "version: 1\nfail_on_ids: [cve-1]\nignore:\n  - {id: CVE-1, reason: r, expires: 2020-01-01}\nbase_image: {ref: x}\n",
        )
        .unwrap();
        let w = f.warnings(date!(2026 - 01 - 01)).join("\n");
        assert!(w.contains("expired"), "{w}");
        assert!(w.contains("fail_on_ids"), "{w}");
        assert!(w.contains("base_image sets no thresholds"), "{w}");
        assert!(f.ignore[0].is_expired(date!(2020 - 01 - 02)));
        assert!(
            !f.ignore[0].is_expired(date!(2020 - 01 - 01)),
            "applies on its last day"
        );
    }
    /// CPU seconds this thread has used (utime + stime from
    /// /proc/thread-self/stat, in clock ticks of 10 ms): the machine running
    /// the tests may be busy, so wall time would measure the neighbours.
    fn cpu_secs() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name may hold spaces: fields count from after its `)`.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }

    /// CPU seconds a parse took, and its result.
    fn timed(name: &str, text: &str) -> (f64, Result<PolicyFile, String>) {
        let t = cpu_secs();
        let r = parse(name, text);
        (cpu_secs() - t, r)
    }

    #[test]
    fn oversized_files_are_refused_before_parsing() {
        let text = format!("version: 1\n#{}\n", "x".repeat(MAX_BYTES));
        let e = parse("p.yaml", &text).unwrap_err();
        assert_eq!(
            e,
            format!(
                "policy file p.yaml: the file is {} bytes, more than the 262144 bytes a policy file may have",
                text.len()
            )
        );
        let e = parse("p.json", &text).unwrap_err();
        assert!(e.contains("more than the 262144 bytes"), "{e}");
    }

    /// 400 KB of flow nesting took libyaml 95 s (quadratic in depth). Every
    /// shape fails in well under a second, naming the limit and the line,
    /// also when cut to fit the size cap.
    #[test]
    fn deep_nesting_fails_fast_with_the_line() {
        let n = MAX_BYTES - 64;
        let block_map: String = (0..400).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        for (shape, body, want) in [
            (
                "[",
                format!("version: 1\nx: {}", "[".repeat(n)),
                "nesting deeper than 32 levels at line 2",
            ),
            (
                "{a: ",
                format!("version: 1\nx: {}", "{a: ".repeat(n / 4)),
                "nesting deeper than 32 levels at line 2",
            ),
            (
                "- ",
                format!("version: 1\nx:\n{}", "- ".repeat(n / 2)),
                "nesting deeper than 32 levels at line 3",
            ),
            (
                "indented",
                format!("version: 1\n{block_map}"),
                "nesting deeper than 32 levels at line 34",
            ),
            (
                "multi-line [",
                format!("version: 1\nx:\n{}", "[\n".repeat(n / 2)),
                "nesting deeper than 32 levels at line 34",
            ),
        ] {
            let (secs, r) = timed("p.yaml", &body);
            let e = r.unwrap_err();
            assert_eq!(
                e,
                format!("policy file p.yaml: {want} (a policy file nests 4 deep)"),
                "{shape}"
            );
            assert!(secs < 1.0, "{shape}: {secs} s");
        }
        // Quotes and comments cannot hide openings: the total is capped too.
        let hidden = format!(
            "version: 1\nx: [ \"{}\" ]\n",
            "]".repeat(100) + &"[".repeat(5000)
        );
        let (secs, r) = timed("p.yaml", &hidden);
        assert_eq!(
            r.unwrap_err(),
            "policy file p.yaml: more than 1024 `[` or `{` at line 2: write long lists in block style (`- item` per line)"
        );
        assert!(secs < 1.0, "{secs} s");
        let commented = format!("version: 1\n# {}\n", "{".repeat(5000));
        assert!(
            parse("p.yaml", &commented)
                .unwrap_err()
                .contains("more than 1024 `[` or `{` at line 2")
        );
    }

    /// The ceiling the byte cap guarantees however a hostile file might
    /// mislead the depth count: libyaml itself (no pre-scan) facing flow
    /// nesting as deep as there may be `[` in a file, then the rest of the
    /// 256 KiB in tokens at that depth.
    #[test]
    fn the_worst_nesting_the_caps_allow_parses_fast() {
        let mut text = String::from("version: 1\nx: ");
        text.push_str(&"[".repeat(MAX_FLOW_OPENINGS));
        while text.len() < MAX_BYTES - MAX_FLOW_OPENINGS - 16 {
            text.push_str("a, ");
        }
        text.push_str(&"]".repeat(MAX_FLOW_OPENINGS));
        let t = cpu_secs();
        let r = serde_yaml_ng::from_str::<PolicyFile>(&text);
        let secs = cpu_secs() - t;
        eprintln!("libyaml at flow depth {MAX_FLOW_OPENINGS}: {secs} s of CPU");
        assert!(r.is_err());
        // A debug build runs libyaml several times slower than the release
        // binary that parses policies in production.
        let ceiling = if cfg!(debug_assertions) { 2.0 } else { 0.5 };
        assert!(secs < ceiling, "{secs} s");
    }

    #[test]
    fn real_files_are_far_from_the_limits() {
        let mut text = String::from(
            "version: 1\nfail_on_ids: [CVE-1, \"[x]\", '{y}']\nthresholds: { high: 2 }\nignore:\n",
        );
        for i in 0..300 {
            text.push_str(&format!(
                "  - id: CVE-2024-{i}\n    package: pkg:deb/debian/p{i}\n    reason: \"see [1] and {{x}}: not *reachable*\" # [why]\n"
            ));
        }
        let f = parse("p.yaml", &text).unwrap();
        assert_eq!(f.ignore.len(), 300);
        assert_eq!(f.fail_on_ids, vec!["CVE-1", "[x]", "{y}"]);
        let flow: String = (0..500)
            .map(|i| format!("  - {{id: CVE-{i}, reason: r}}\n"))
            .collect();
        assert_eq!(
            parse("p.yaml", &format!("version: 1\nignore:\n{flow}"))
                .unwrap()
                .ignore
                .len(),
            500
        );
    }

    /// "Billion laughs": nine levels of ten aliases each. It fails fast and
    /// never builds the expansion (the alias cap; the list and string caps
    /// stop an expansion that fits under it).
    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = String::from("version: 1\na0: &a0 [\"lol\"]\n");
        for l in 1..9 {
            let refs = vec![format!("*a{}", l - 1); 10].join(", ");
            text.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
        }
        text.push_str("fail_on_ids: *a8\n");
        let (secs, r) = timed("p.yaml", &text);
        assert_eq!(
            r.unwrap_err(),
            "policy file p.yaml: more than 64 aliases (`*name`) at line 9"
        );
        assert!(secs < 1.0, "{secs} s");

        // Under the alias cap: one 200 KB string repeated by 60 aliases
        // is refused at the first copy, not after building 12 MB.
        let big = "x".repeat(200 * 1024);
        let text = format!(
            "version: 1\nfail_on_ids: [&s {big}, {}]\n",
            vec!["*s"; 60].join(", ")
        );
        let e = parse("p.yaml", &text).unwrap_err();
        assert!(
            e.contains("fail_on_ids entry is 204800 bytes, more than the 256 allowed"),
            "{}",
            &e[..200.min(e.len())]
        );
        let text = format!("version: 1\nignore:\n  - id: A\n    reason: &r {big}\n");
        let e = parse("p.yaml", &text).unwrap_err();
        assert!(
            e.contains("reason is 204800 bytes, more than the 4096 allowed"),
            "{}",
            &e[..200.min(e.len())]
        );
        // Aliases a person writes still work.
        let f = parse(
            "p.yaml",
            "version: 1\nignore:\n  - {id: A, reason: &r shared reason}\n  - {id: B, reason: *r}\n",
        )
        .unwrap();
        assert_eq!(f.ignore[1].reason, "shared reason");
    }

    #[test]
    fn long_lists_are_refused_while_read() {
        let ids = vec!["CVE-1"; MAX_LIST_ENTRIES + 1].join("\n  - ");
        let e = parse("p.yaml", &format!("version: 1\nfail_on_ids:\n  - {ids}\n")).unwrap_err();
        assert!(e.contains("fail_on_ids has more than 4096 entries"), "{e}");
        let rules = vec!["{id: A, reason: r}"; MAX_LIST_ENTRIES + 1].join("\n  - ");
        let e = parse("p.yaml", &format!("version: 1\nignore:\n  - {rules}\n")).unwrap_err();
        assert!(e.contains("more than 1024 `[` or `{`"), "{e}");
        let rules = vec!["id: A\n    reason: r"; MAX_LIST_ENTRIES + 1].join("\n  - ");
        let e = parse("p.yaml", &format!("version: 1\nignore:\n  - {rules}\n")).unwrap_err();
        assert!(e.contains("ignore has more than 4096 entries"), "{e}");
        let e = parse(
            "p.json",
            &format!(
                "{{\"version\": 1, \"fail_on_ids\": [{}]}}",
                vec!["\"A\""; MAX_LIST_ENTRIES + 1].join(",")
            ),
        )
        .unwrap_err();
        assert!(e.contains("fail_on_ids has more than 4096 entries"), "{e}");
    }
}
