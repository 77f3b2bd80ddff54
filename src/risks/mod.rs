//! Image risks beyond CVEs (NIST SP 800-190 §4.1): embedded clear-text
//! secrets (`secrets`), image configuration defects (`config`) and untrusted
//! images (`signature`). Each producer returns [`RiskFinding`]s; the
//! orchestrator combines them with the vulnerability findings under one
//! policy.
//!
//! A finding never carries a secret's value: only a redacted excerpt.

pub mod secrets;

use serde::Serialize;

use crate::inspector::findings::Severity;

/// Which kind of image risk a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskKind {
    /// §4.1.4 embedded clear-text secrets.
    Secret,
    /// §4.1.3 image configuration defects.
    Config,
}

/// Where in the image a risk was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "in", rename_all = "snake_case")]
pub enum RiskLocation {
    /// A file in a layer. `later_layer` is set when a later layer deleted
    /// or overwrote the path: the bytes are still in this layer's blob and
    /// extractable, though the running container does not see them.
    File {
        /// 0-based index of the layer in the manifest.
        layer: usize,
        /// The layer's digest (`sha256:…`).
        layer_digest: String,
        /// Absolute path inside the image (`/etc/app/config.yaml`).
        path: String,
        /// 1-based line, when the finding is in a text line.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        later_layer: Option<LaterLayer>,
    },
    /// A member of the image configuration: `Env[3]`, `Labels.maintainer`,
    /// `history[5].created_by`, `User`, `ExposedPorts`, `Healthcheck`.
    Config { field: String },
    /// The image as a whole (e.g. its base reference).
    Image,
}

/// What a later layer did to a file's path (`"later_layer"` in reports).
/// Either way the earlier layer's blob still holds the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaterLayer {
    /// A whiteout or an opaque directory removed it, or a later layer put
    /// a file or symlink where one of its parent directories was.
    Deleted,
    /// A later layer wrote another entry (file, symlink, directory …) at
    /// the same path.
    Overwritten,
}

impl LaterLayer {
    /// For messages: "deleted by a later layer but still in the image".
    pub fn describe(self) -> &'static str {
        match self {
            LaterLayer::Deleted => "deleted by a later layer but still in the image",
            LaterLayer::Overwritten => "overwritten by a later layer but still in the image",
        }
    }
}

/// One secret or configuration finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskFinding {
    pub kind: RiskKind,
    /// Stable rule id: `aws-access-key-id`, `private-key`, `CIS-DI-0001` …
    pub rule_id: String,
    /// One line a person reads first ("AWS access key id", "image runs as root").
    pub title: String,
    pub severity: Severity,
    pub location: RiskLocation,
    /// Redacted evidence (`AKIA************MPLE`); never the value itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Why it matters and how to fix it (from the rule's documentation).
    pub remediation: String,
}

pub mod config;

/// What one risk producer returns: its findings and what the report should
/// say about its coverage (caps reached, parts it could not read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RiskOutput {
    pub findings: Vec<RiskFinding>,
    pub warnings: Vec<String>,
}

/// What every risk producer may read about the scanned image: the parts
/// the single pass over the layers and the catalogers already hold. A
/// producer takes this view and returns findings; it never sees the
/// orchestrator or the job.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// As the user named it (`registry/repo:tag`, `oci:dir`).
    pub reference: &'a str,
    /// The manifest actually scanned.
    pub manifest_digest: &'a str,
    pub config: &'a crate::image::manifest::ImageConfig,
    pub annotations: &'a std::collections::BTreeMap<String, String>,
    /// Blob digest of each layer, by index.
    pub layer_digests: &'a [String],
    /// The final filesystem; `None` when the layers were not read (the
    /// ECR engines).
    pub files: Option<&'a crate::image::FileTree>,
    pub packages: &'a [crate::catalog::Package],
    /// Leading layers that are the base image's, when it is known.
    pub base_layers: Option<usize>,
    pub policy: &'a crate::policy::risks::RiskPolicy,
}

/// One risk producer.
pub type Producer = fn(&ImageView<'_>) -> Result<RiskOutput, crate::cancel::Cancelled>;

/// Every risk producer, in report order. Adding one is its folder under
/// src/risks/ and one line here.
pub const PRODUCERS: &[(&str, Producer)] = &[("config", config::produce)];

/// Runs every producer over one image; a producer's findings keep their
/// order, producers follow [`PRODUCERS`].
pub fn produce_all(view: &ImageView<'_>) -> Result<RiskOutput, crate::cancel::Cancelled> {
    let mut all = RiskOutput::default();
    for (name, produce) in PRODUCERS {
        let t = std::time::Instant::now();
        let out = produce(view)?;
        tracing::debug!(
            producer = name,
            findings = out.findings.len(),
            ms = t.elapsed().as_millis() as u64,
            "risk producer done"
        );
        all.findings.extend(out.findings);
        all.warnings.extend(out.warnings);
    }
    Ok(all)
}

/// The `SIGNATURE` output variable: whether the scanned digest carries a
/// valid signature under the policy's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignatureStatus {
    Verified,
    Unsigned,
    Invalid,
    /// No signature producer ran (the policy asks for none, or none exists
    /// yet).
    #[default]
    NotChecked,
}

impl SignatureStatus {
    pub fn of(v: &crate::signature::SignatureVerdict) -> SignatureStatus {
        use crate::signature::SignatureVerdict as V;
        match v {
            V::Verified { .. } => SignatureStatus::Verified,
            V::Unsigned { .. } => SignatureStatus::Unsigned,
            V::Invalid { .. } => SignatureStatus::Invalid,
            V::NotChecked { .. } => SignatureStatus::NotChecked,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureStatus::Verified => "VERIFIED",
            SignatureStatus::Unsigned => "UNSIGNED",
            SignatureStatus::Invalid => "INVALID",
            SignatureStatus::NotChecked => "NOT_CHECKED",
        }
    }
}

/// The risk part of a scan report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RiskReport {
    pub findings: Vec<RiskFinding>,
    pub signature: SignatureStatus,
    /// Which signature verified, or why none did ("" when not checked).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signature_reason: String,
}
