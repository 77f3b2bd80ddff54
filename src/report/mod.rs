//! The reports store: `{reports}/jobs/{jobId}/` with the job record, the
//! SBOM and the findings, and `{reports}/index/{pipeline}/…` so jobs can be
//! listed per pipeline without a database (DESIGN.md, "Reports store").

pub mod cyclonedx;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod read;
pub mod remedy;
pub mod risks;
pub mod sarif;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use crate::inspector::{Finding, Severity};
use crate::job::JobInfo;
use crate::pipeline::{PipelineError, ScanReport};
use crate::policy::explain::Effect;
use crate::policy::{Decision, FiredRule, Suppression, Violation};

/// What a rendered report says about itself besides the scan; passed in so
/// that the same scan always renders the same bytes (snapshot tests).
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub job_id: &'a str,
    /// RFC 3339, UTC.
    pub generated: &'a str,
}

/// Where one finding stands in the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It counted toward a violation.
    Violating,
    /// A live ignore rule took it out of the gate.
    Suppressed,
    /// Reported, within the policy.
    Passing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Violating => "violating",
            Status::Suppressed => "suppressed",
            Status::Passing => "passing",
        }
    }
}

/// The live ignore rule that suppressed this finding, if any.
pub fn suppression_of<'a>(d: &'a Decision, f: &Finding) -> Option<&'a Suppression> {
    d.suppressions
        .iter()
        .find(|s| s.id == f.id && s.purl == f.purl)
}

pub fn status_of(d: &Decision, f: &Finding, fixable_only: bool) -> Status {
    if suppression_of(d, f).is_some() {
        return Status::Suppressed;
    }
    if !d.violating_ids.contains(&f.id) {
        return Status::Passing;
    }
    // `violating_ids` is per id; with fixable_only an unfixed component did
    // not count toward a threshold, only toward a rule that names the id.
    let named = d.violations.iter().any(|v| v.id() == Some(f.id.as_str()));
    let thresholds = d
        .violations
        .iter()
        .any(|v| matches!(v, Violation::Threshold { severity, .. } if *severity == f.severity));
    if named || (thresholds && !(fixable_only && f.fixed_version.is_none())) {
        Status::Violating
    } else {
        Status::Passing
    }
}

/// What OTHER means, said once in every report that has OTHER findings.
pub const OTHER_MEANING: &str = "OTHER means no severity rating: neither NVD, nor the distribution, nor Amazon Inspector had rated the vulnerability when it was scanned (usually it is too recent to have been analysed). EPSS, a probability of exploitation, is not a severity. The thresholds count OTHER findings only when a limit is set: thresholds.other in the policy file, or --other-threshold on the command line.";

/// A fired rule as one line: its text, then the ids it applied to.
pub fn rule_line(r: &FiredRule) -> String {
    let effect = match r.effect {
        Effect::Fail => "FAIL",
        Effect::Pass => "pass",
        Effect::Suppress => "suppressed",
    };
    let mut s = format!("{effect} [{}]: {}", r.rule, r.text);
    if !r.ids.is_empty() && r.effect != Effect::Pass {
        s.push_str(&format!(" — {}", r.ids.join(", ")));
        if r.total > r.ids.len() {
            s.push_str(&format!(" and {} more", r.total - r.ids.len()));
        }
    }
    s
}

/// EPSS with the precision the answer gives (`0.00044`), as a percentage
/// too, since a probability that small reads as zero when rounded.
pub fn epss_text(f: &Finding) -> Option<String> {
    let x = f.epss?;
    let pct = (x * 100.0 * 1e6).round() / 1e6;
    Some(format!("{x} ({pct} %)"))
}

/// What is installed for a finding: the binaries of a matched source
/// package, or the component's own name and version.
pub fn installed_text(f: &Finding) -> String {
    if f.installed.is_empty() {
        return format!("{} {}", f.package, f.version).trim().to_owned();
    }
    f.installed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The installed binaries our SBOM names for a finding, when it names any.
pub fn installed_list(f: &Finding) -> Option<String> {
    (!f.installed.is_empty()).then(|| installed_text(f))
}

/// The ratings a finding has, for OTHER ones: "no severity rating (EPSS
/// only)" or "AMAZON_INSPECTOR: unknown".
pub fn ratings_text(f: &Finding) -> String {
    if f.ratings.is_empty() {
        return if f.epss.is_some() {
            "no severity rating (EPSS only)".to_owned()
        } else {
            "no rating at all".to_owned()
        };
    }
    f.ratings
        .iter()
        .map(|r| match r.score {
            Some(s) => format!("{}: {} {s}", r.source, r.severity),
            None => format!("{}: {}", r.source, r.severity),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One upgrade that fixes findings: the affected component, what is
/// installed, the version that fixes all its fixable findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Upgrade<'a> {
    pub package: &'a str,
    pub version: &'a str,
    pub installed: String,
    /// The highest fixed version among its findings.
    pub to: &'a str,
    /// Distinct ids fixed, with their severity, worst first.
    pub fixes: Vec<(&'a str, Severity)>,
    /// Ids in this component with no fix yet.
    pub unfixed: usize,
}

impl Upgrade<'_> {
    pub fn worst(&self) -> Severity {
        self.fixes.first().map_or(Severity::Other, |x| x.1)
    }

    /// "1 HIGH, 4 OTHER".
    pub fn by_severity(&self) -> String {
        Severity::ALL_DESC
            .iter()
            .filter_map(|s| {
                let n = self.fixes.iter().filter(|x| x.1 == *s).count();
                (n > 0).then(|| format!("{n} {}", s.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Findings grouped by the upgrade that fixes them, worst and largest
/// first: what a developer acts on.
pub fn upgrades(findings: &[Finding]) -> Vec<Upgrade<'_>> {
    let mut groups: BTreeMap<(&str, &str, &str), Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups
            .entry((f.package.as_str(), f.version.as_str(), f.purl.as_str()))
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for ((package, version, _), fs) in groups {
        let Some(to) = fs
            .iter()
            .filter_map(|f| f.fixed_version.as_deref())
            .max_by(|a, b| version_cmp(a, b))
        else {
            continue;
        };
        let mut fixes: Vec<(&str, Severity)> = Vec::new();
        for f in fs.iter().filter(|f| f.fixed_version.is_some()) {
            if !fixes.iter().any(|x| x.0 == f.id) {
                fixes.push((f.id.as_str(), f.severity));
            }
        }
        fixes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let unfixed = fs
            .iter()
            .filter(|f| f.fixed_version.is_none())
            .map(|f| f.id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        out.push(Upgrade {
            package,
            version,
            installed: installed_text(fs[0]),
            to,
            fixes,
            unfixed,
        });
    }
    out.sort_by(|a, b| {
        b.worst()
            .cmp(&a.worst())
            .then(b.fixes.len().cmp(&a.fixes.len()))
            .then(a.package.cmp(b.package))
    });
    out
}

/// Compares package versions the way dpkg, rpm and semver mostly agree:
/// runs of digits numerically, other runs by bytes, `~` before anything.
/// Only used to pick the highest of several fixed versions of one package.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            _ => {}
        }
        let digit = |x: &u8| x.is_ascii_digit();
        let (ra, rb) = if digit(&a[0]) && digit(&b[0]) {
            let la = a.iter().take_while(|c| digit(c)).count();
            let lb = b.iter().take_while(|c| digit(c)).count();
            let (na, nb) = (
                std::str::from_utf8(&a[..la])
                    .unwrap_or("0")
                    .trim_start_matches('0'),
                std::str::from_utf8(&b[..lb])
                    .unwrap_or("0")
                    .trim_start_matches('0'),
            );
            let o = na.len().cmp(&nb.len()).then(na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
            (la, lb)
        } else {
            let o = a[0].cmp(&b[0]);
            if o != Ordering::Equal {
                return o;
            }
            (1, 1)
        };
        a = &a[ra..];
        b = &b[rb..];
    }
}

/// Escapes text for HTML and XML content and attributes. Characters XML 1.0
/// cannot carry at all (most C0 controls) become U+FFFD: findings text comes
/// from outside and must never make the document unreadable. So do bidi
/// overrides, which would make it read as something else.
pub fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20
                || c == '\u{FFFE}'
                || c == '\u{FFFF}'
                || is_invisible_override(c) =>
            {
                out.push('\u{FFFD}')
            }
            c => out.push(c),
        }
    }
    out
}

/// A link target only when it is plain http(s) (any case); anything else
/// (`javascript:`, `data:`) from an answer is shown as text. Characters that
/// could end the link or the attribute around it (whitespace, quotes, angle
/// brackets, backslash, backtick, controls) are percent-encoded, so the
/// link still works (a reference with spaces in it) and stays one link.
pub fn safe_url(u: &str) -> Option<String> {
    let scheme = u
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        || u.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
    if !scheme || u.len() > 2048 {
        return None;
    }
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        if c.is_whitespace()
            || c.is_control()
            || is_invisible_override(c)
            || matches!(c, '<' | '>' | '"' | '\'' | '`' | '\\' | '(' | ')')
        {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Text from the image, Inspector or the job inside markdown (`report.md`,
/// SARIF `markdown`): it must stay text. `<`, `>` and `&` become entities (no
/// HTML, no comments, no autolinks); the characters that build links,
/// images, emphasis, code, math and table cells are backslash-escaped; line
/// breaks become spaces (no new block, no broken table row); other control
/// characters become U+FFFD. Every hostile string goes after our own prefix
/// on a line, so line-start syntax (`#`, `-`, `1.`) cannot take effect.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // Inside a word `_` is no emphasis (CommonMark): `fail_on_kev`
            // stays readable.
            '_' if prev.is_some_and(char::is_alphanumeric)
                && chars.peek().is_some_and(|n| n.is_alphanumeric()) =>
            {
                out.push(c)
            }
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '|' | '$' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || is_invisible_override(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// Longer text (a vulnerability's description) as markdown paragraphs:
/// each paragraph (split at blank lines) is escaped as by
/// [`escape_markdown`], trimmed, and a first character that could start a
/// heading, list, quote or rule at the line's start is escaped too.
pub fn escape_markdown_paragraphs(s: &str) -> String {
    let mut paragraphs = Vec::new();
    for p in s.replace("\r\n", "\n").split("\n\n") {
        let mut p = escape_markdown(p.trim()).trim().to_owned();
        if p.is_empty() {
            continue;
        }
        // `1.`/`1)` would start an ordered list.
        let digits = p.bytes().take_while(u8::is_ascii_digit).count();
        if matches!(p.as_bytes().get(digits), Some(b'.' | b')')) && digits > 0 {
            p.insert(digits, '\\');
        } else if p.starts_with(|c: char| c.is_ascii_punctuation() && c != '\\' && c != '&') {
            p.insert(0, '\\');
        }
        paragraphs.push(p);
    }
    paragraphs.join("\n\n")
}

/// SARIF plain-text messages: viewers turn `[text](target)` into a link
/// (SARIF 2.1.0 §3.11.6), so literal brackets and backslashes are escaped;
/// control characters other than line breaks become U+FFFD.
pub fn escape_sarif_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_invisible_override(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// For a terminal: control characters (ESC sequences that repaint or
/// retitle the terminal, CR that overwrites the line, BEL, newlines that
/// forge another line) and bidirectional overrides are shown escaped, as
/// Rust writes them (`\u{1b}`), so what is printed is what the name holds.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c.is_control() || is_invisible_override(c))
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_control() || is_invisible_override(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Bidirectional embeddings, overrides and isolates: they reorder what the
/// reader sees ("Trojan Source") without being control characters.
fn is_invisible_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A job id as it may appear in a store key (`jobs/{id}/…`): CodePipeline's
/// are UUIDs. The writer and the reader apply this one rule, so a hostile
/// id (`../x`, `a/b`, control characters) never becomes a path or a key
/// outside the job's folder.
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// A pipeline name as it may appear in a store key (`index/{pipeline}/…`):
/// CodePipeline's own rule (`[A-Za-z0-9.@\-_]+`, at most 100 characters),
/// without `.` and `..`.
pub fn valid_pipeline(p: &str) -> bool {
    !p.is_empty()
        && p != "."
        && p != ".."
        && p.len() <= 100
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "SCANGATE_REPORTS {0:?} is not supported: use s3://bucket/prefix or file:///absolute/dir"
    )]
    BadUri(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("writing s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("serialising {0}: {1}")]
    Json(&'static str, serde_json::Error),
    /// A job id or pipeline name that would not stay one store key segment.
    #[error("refusing to store a report for {what} {value:?}: it is not a valid store key segment")]
    BadName { what: &'static str, value: String },
}

#[derive(Clone)]
pub enum ReportStore {
    Dir(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        /// SSE-KMS key for what we write; SSE-S3 when unset.
        kms_key: Option<String>,
    },
}

/// One rendered report file.
pub struct ReportFile {
    pub name: &'static str,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

const RECORD: &str = "record.json";

pub struct Uris {
    pub report: String,
    pub sbom: String,
}

impl ReportStore {
    pub fn open(
        uri: &str,
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
    ) -> Result<ReportStore, ReportError> {
        if let Some(path) = uri.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(ReportError::BadUri(uri.to_owned()));
            }
            return Ok(ReportStore::Dir(PathBuf::from(path)));
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ReportError::BadUri(uri.to_owned()));
            }
            let conf = aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(force_path_style)
                .build();
            return Ok(ReportStore::S3 {
                client: aws_sdk_s3::Client::from_conf(conf),
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                kms_key: None,
            });
        }
        Err(ReportError::BadUri(uri.to_owned()))
    }

    /// Encrypt what is written to S3 with this KMS key (SSE-KMS) instead of
    /// S3-managed keys: the header we send wins over the bucket's default
    /// encryption, so a KMS-encrypted bucket needs the key named here too.
    pub fn with_kms_key(mut self, key: Option<String>) -> Self {
        if let ReportStore::S3 { kms_key, .. } = &mut self {
            *kms_key = key.filter(|k| !k.is_empty());
        }
        self
    }

    fn uri(&self, key: &str) -> String {
        match self {
            ReportStore::Dir(d) => format!("file://{}", d.join(key).display()),
            ReportStore::S3 { bucket, prefix, .. } => {
                format!("s3://{bucket}/{}", join(prefix, key))
            }
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), ReportError> {
        match self {
            ReportStore::Dir(d) => {
                let path = d.join(key);
                let io = |source| ReportError::Io {
                    path: path.display().to_string(),
                    source,
                };
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(io)?;
                }
                // Write then rename, so a reader never sees half a file.
                let tmp = path.with_extension("tmp");
                tokio::fs::write(&tmp, body).await.map_err(io)?;
                tokio::fs::rename(&tmp, &path).await.map_err(io)
            }
            ReportStore::S3 {
                client,
                bucket,
                prefix,
                kms_key,
            } => {
                use aws_sdk_s3::types::ServerSideEncryption;
                let key = join(prefix, key);
                let req = client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type(content_type);
                let req = match kms_key {
                    Some(k) => req
                        .server_side_encryption(ServerSideEncryption::AwsKms)
                        .ssekms_key_id(k),
                    None => req.server_side_encryption(ServerSideEncryption::Aes256),
                };
                req.body(body.into())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| ReportError::S3 {
                        bucket: bucket.clone(),
                        key,
                        message: crate::inspector::describe(&e),
                    })
            }
        }
    }

    fn record(job: &JobInfo, worker_id: &str) -> serde_json::Value {
        json!({
            "job_id": job.id,
            "pipeline": job.pipeline,
            "stage": job.stage,
            "action": job.action,
            "pipeline_execution_id": job.pipeline_execution_id,
            "action_execution_id": job.action_execution_id,
            "worker_id": worker_id,
            "version": env!("CARGO_PKG_VERSION"),
            "finished": now(),
        })
    }

    /// The job record of a finished scan (`record.json`).
    pub fn record_of(job: &JobInfo, worker_id: &str, r: &ScanReport) -> serde_json::Value {
        let mut record = Self::record(job, worker_id);
        let d = &r.decision;
        record["image"] = json!({
            "reference": r.image,
            "digest": r.manifest_digest,
            "index_digest": r.index_digest,
            "config_digest": r.config_digest,
            "os": r.os,
        });
        record["verdict"] = json!(d.verdict);
        if d.verdict == crate::policy::Verdict::Fail {
            record["failure_type"] = json!(crate::job::FailureKind::JobFailed.as_str());
        }
        record["counts"] = json!(d.counts);
        record["highest_severity"] = json!(d.highest);
        record["violations"] = json!(d.violations);
        // The policy that decided and every rule that applied: why it
        // failed, and why a PASS with findings passed.
        record["policy"] = json!(d.policy);
        record["policy"]["description"] = json!(d.policy.source.describe());
        record["rules"] = json!(d.rules);
        record["explanation"] = json!(d.rules.iter().map(rule_line).collect::<Vec<_>>());
        // The policy file's effect, so a PASS can be audited later: what was
        // suppressed and why, and which ignore rules need attention.
        record["suppressed"] = json!(d.suppressed);
        record["suppressions"] = json!(d.suppressions);
        record["expired_rules"] = json!(d.expired_rules);
        record["stale_rules"] = json!(d.stale_rules);
        record["base_image"] = json!(d.base_image);
        record["packages"] = json!(r.packages);
        record["sbom_components"] = json!(r.sbom_components);
        record["scan_calls"] = json!(r.result.calls);
        record["timings"] = json!(r.timings);
        record["warnings"] = json!(r.warnings);
        record
    }

    /// Every file a finished scan produces, `record.json` last. The reports
    /// store and the action's output artifact both take this one list, so a
    /// report format added here reaches both.
    pub fn files(
        job: &JobInfo,
        record: &serde_json::Value,
        r: &ScanReport,
    ) -> Result<Vec<ReportFile>, ReportError> {
        // The record's own time, so every file of a job says the same.
        let meta = Meta {
            job_id: &job.id,
            generated: record["finished"].as_str().unwrap_or_default(),
        };
        Ok(vec![
            ReportFile {
                name: "sbom.cdx.json",
                body: js("the SBOM", &r.sbom)?,
                content_type: "application/vnd.cyclonedx+json",
            },
            ReportFile {
                name: "findings.json",
                body: js(
                    "findings",
                    &json!({"vulnerabilities": r.result.findings, "risks": risks::json(r)}),
                )?,
                content_type: "application/json",
            },
            ReportFile {
                name: "report.md",
                body: markdown::render(&job.id, r).into_bytes(),
                content_type: "text/markdown; charset=utf-8",
            },
            ReportFile {
                name: "report.html",
                body: html::render(&meta, r).into_bytes(),
                content_type: "text/html; charset=utf-8",
            },
            ReportFile {
                name: "report.sarif",
                body: js("the SARIF report", &sarif::render(&meta, r))?,
                content_type: "application/sarif+json",
            },
            ReportFile {
                name: "junit.xml",
                body: junit::render(&meta, r).into_bytes(),
                content_type: "application/xml",
            },
            ReportFile {
                name: RECORD,
                body: js("record", record)?,
                content_type: "application/json",
            },
        ])
    }

    pub async fn save(
        &self,
        job: &JobInfo,
        worker_id: &str,
        r: &ScanReport,
    ) -> Result<Uris, ReportError> {
        let dir = job_dir(job)?;
        let record = Self::record_of(job, worker_id, r);
        for f in Self::files(job, &record, r)? {
            if f.name != RECORD {
                self.put(&format!("{dir}/{}", f.name), f.body, f.content_type)
                    .await?;
            }
        }
        self.finish(job, &dir, record).await?;
        Ok(Uris {
            report: self.uri(&format!("{dir}/report.html")),
            sbom: self.uri(&format!("{dir}/sbom.cdx.json")),
        })
    }

    pub async fn save_failure(
        &self,
        job: &JobInfo,
        worker_id: &str,
        e: &PipelineError,
    ) -> Result<(), ReportError> {
        let dir = job_dir(job)?;
        let mut record = Self::record(job, worker_id);
        record["verdict"] = json!("ERROR");
        record["failure_type"] = json!(e.failure_kind().as_str());
        record["message"] = json!(e.to_string());
        record["image"] = json!({ "reference": job.configuration.get("ImageUrl") });
        let steps = remedy::remedy(e);
        record["remedy"] = json!(steps);
        // The action's execution link points at report.html: an error gets
        // one too, saying what went wrong and what to do.
        let meta = Meta {
            job_id: &job.id,
            generated: record["finished"].as_str().unwrap_or_default(),
        };
        let page = html::render_error(&meta, &record, &steps);
        self.put(
            &format!("{dir}/report.html"),
            page.into_bytes(),
            "text/html; charset=utf-8",
        )
        .await?;
        self.finish(job, &dir, record).await
    }

    /// The record goes last: its presence means the job's files are complete.
    async fn finish(
        &self,
        job: &JobInfo,
        dir: &str,
        record: serde_json::Value,
    ) -> Result<(), ReportError> {
        let body =
            serde_json::to_vec_pretty(&record).map_err(|e| ReportError::Json("record", e))?;
        self.put(
            &format!("{dir}/record.json"),
            body.clone(),
            "application/json",
        )
        .await?;
        let pipeline = index_segment(job)?;
        let stamp = record["finished"]
            .as_str()
            .unwrap_or_default()
            .replace(':', "");
        self.put(
            &format!("index/{pipeline}/{stamp}-{}.json", job.id),
            body,
            "application/json",
        )
        .await
    }
}

/// `jobs/{id}`, once the id is known to stay one segment.
fn job_dir(job: &JobInfo) -> Result<String, ReportError> {
    if !valid_job_id(&job.id) {
        return Err(ReportError::BadName {
            what: "job id",
            value: job.id.clone(),
        });
    }
    // The index key is checked before anything is written, so a bad
    // pipeline name leaves no half-stored job either.
    index_segment(job)?;
    Ok(format!("jobs/{}", job.id))
}

/// The pipeline's folder under `index/`: `_` for a job without one.
fn index_segment(job: &JobInfo) -> Result<&str, ReportError> {
    match job.pipeline.as_str() {
        "" => Ok("_"),
        p if valid_pipeline(p) => Ok(p),
        p => Err(ReportError::BadName {
            what: "pipeline name",
            value: p.to_owned(),
        }),
    }
}

fn js(what: &'static str, v: &serde_json::Value) -> Result<Vec<u8>, ReportError> {
    serde_json::to_vec_pretty(v).map_err(|e| ReportError::Json(what, e))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
