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
    /// A file in a layer. `deleted_later` is set when a later layer removed
    /// the path: the bytes are still in the image and extractable.
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
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        deleted_later: bool,
    },
    /// A member of the image configuration: `Env[3]`, `Labels.maintainer`,
    /// `history[5].created_by`, `User`, `ExposedPorts`, `Healthcheck`.
    Config { field: String },
    /// The image as a whole (e.g. its base reference).
    Image,
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
