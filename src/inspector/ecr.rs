//! The `ecr-basic` and `ecr-enhanced` engines: findings Amazon ECR holds for
//! an image, instead of our SBOM sent to ScanSbom.
//!
//! - basic: `StartImageScan` (one scan per image per 24 hours: a
//!   `LimitExceededException` means today's scan exists and its findings
//!   are read), then `DescribeImageScanFindings` until COMPLETE. OS
//!   packages only, no fix information.
//! - enhanced: Amazon Inspector scans ECR images continuously on push, so
//!   nothing is started; `DescribeImageScanFindings` is polled until the
//!   status is ACTIVE/COMPLETE and its `enhancedFindings` are read.
//!
//! Both end as the same [`Finding`]s the inspector engine produces, so the
//! policy and the reports are shared. The ECR model has no EPSS score, so
//! [`Finding::epss`] stays empty and an `epss_threshold` never fires here.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput;
use aws_sdk_ecr::types::{
    EnhancedImageScanFinding, ImageIdentifier, ImageScanFinding, ScanStatus, VulnerablePackage,
};
use aws_smithy_types::date_time::Format;

use super::RetryPolicy;
use super::findings::{Finding, Severity};
use crate::image::auth::ecr::EcrHost;

/// What ECR calls the rating of a basic finding; shown as the finding's
/// severity source.
const BASIC_SOURCE: &str = "AMAZON_ECR";
/// Inspector's `fixedInVersion` when there is no fix.
const NO_FIX: &str = "NotAvailable";
/// DescribeImageScanFindings' largest page.
const PAGE: i32 = 1000;

/// Which ECR scanning to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcrMode {
    Basic,
    Enhanced,
}

impl EcrMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EcrMode::Basic => "ecr-basic",
            EcrMode::Enhanced => "ecr-enhanced",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EcrScanError {
    #[error(
        "Amazon ECR denied {operation}: {message} (the worker's role needs ecr:StartImageScan and ecr:DescribeImageScanFindings on the repository; for ecr-enhanced also inspector2:ListFindings)"
    )]
    AccessDenied { operation: String, message: String },
    #[error("image not found: {image}: {message}")]
    NotFound { image: String, message: String },
    #[error(
        "Amazon ECR is throttling {operation} and still was after {attempts} attempts: {message}"
    )]
    Throttled {
        operation: String,
        attempts: u32,
        message: String,
    },
    #[error("Amazon ECR is unavailable after {attempts} attempts of {operation}: {message}")]
    Unavailable {
        operation: String,
        attempts: u32,
        message: String,
    },
    #[error("the Amazon ECR scan of {image} ended {status}: {description}")]
    ScanFailed {
        image: String,
        status: String,
        description: String,
    },
    #[error(
        "Amazon ECR cannot scan {image}: {message} (Engine inspector scans any image from its SBOM)"
    )]
    Unsupported { image: String, message: String },
    #[error(
        "the Amazon ECR scan of {image} was still {status} after {waited_s}s; retry the action later"
    )]
    Timeout {
        image: String,
        status: String,
        waited_s: u64,
    },
    #[error("Amazon ECR rejected {operation}: {message}")]
    Rejected { operation: String, message: String },
}

impl EcrScanError {
    /// Whether the cause is missing permissions (PermissionError).
    pub fn is_permission(&self) -> bool {
        matches!(self, EcrScanError::AccessDenied { .. })
    }

    /// Whether retrying the action later may succeed (SystemUnavailable).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            EcrScanError::Throttled { .. }
                | EcrScanError::Unavailable { .. }
                | EcrScanError::Timeout { .. }
        )
    }
}

/// How long to wait for a scan: ECR's basic scans take from seconds to a
/// few minutes, so polls start fast and back off.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
    /// The whole wait; CodePipeline gives a custom action's job an hour, and
    /// the report still has to be written after it.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_secs(2),
            max: Duration::from_secs(20),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// What ECR reported for one image.
#[derive(Debug, Clone, Default)]
pub struct EcrFindings {
    pub findings: Vec<Finding>,
    /// ECR's last status and its description.
    pub status: String,
    pub status_description: Option<String>,
    pub completed_at: Option<String>,
    pub vulnerability_source_updated_at: Option<String>,
    /// ECR's own per-severity counts (keys as ECR spells them).
    pub severity_counts: Vec<(String, i32)>,
    pub calls: u32,
    /// StartImageScan found today's scan already there.
    pub reused_scan: bool,
}

impl EcrFindings {
    /// Distinct (package, version) pairs among the findings: ECR does not
    /// report the image's package inventory, only the vulnerable packages.
    pub fn vulnerable_packages(&self) -> usize {
        self.findings
            .iter()
            .map(|f| (f.package.as_str(), f.version.as_str()))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

#[derive(Clone)]
pub struct EcrScanner {
    sdk: aws_config::SdkConfig,
    retry: RetryPolicy,
    poll: PollPolicy,
}

/// One image in one ECR repository, digest resolved.
#[derive(Debug, Clone)]
pub struct EcrImage {
    pub host_registry: String,
    pub repository: String,
    pub digest: String,
    /// Compressed layer digest → diff id, to name the layer of enhanced
    /// findings (`sourceLayerHash` is the blob digest).
    pub layer_diff_ids: HashMap<String, String>,
}

impl EcrScanner {
    pub fn new(sdk: &aws_config::SdkConfig, retry: RetryPolicy, poll: PollPolicy) -> Self {
        EcrScanner {
            sdk: sdk.clone(),
            retry,
            poll,
        }
    }

    /// The registry's own region and partition, whatever the worker's
    /// default is (as for GetAuthorizationToken); `AWS_ENDPOINT_URL_ECR`
    /// still applies.
    fn client(&self, host: &EcrHost) -> aws_sdk_ecr::Client {
        let mut conf = aws_sdk_ecr::config::Builder::from(&self.sdk)
            .region(aws_sdk_ecr::config::Region::new(host.region.clone()))
            // Our own retries: throttling is counted and reported in one place.
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if host.fips {
            conf = conf.use_fips(true);
        }
        aws_sdk_ecr::Client::from_conf(conf.build())
    }

    pub async fn scan(&self, image: &EcrImage, mode: EcrMode) -> Result<EcrFindings, EcrScanError> {
        let host = EcrHost::parse(&image.host_registry).ok_or_else(|| EcrScanError::Rejected {
            operation: "scan".into(),
            message: format!("{} is not an ECR registry", image.host_registry),
        })?;
        let client = self.client(&host);
        let name = format!(
            "{}/{}@{}",
            image.host_registry, image.repository, image.digest
        );
        let id = ImageIdentifier::builder()
            .image_digest(&image.digest)
            .build();
        let mut out = EcrFindings::default();
        if mode == EcrMode::Basic {
            let r = self
                .call("StartImageScan", &mut out.calls, || {
                    client
                        .start_image_scan()
                        .registry_id(&host.account)
                        .repository_name(&image.repository)
                        .image_id(id.clone())
                        .send()
                })
                .await;
            match r {
                Ok(_) => {}
                Err(Failure::Service { code, message }) => match code.as_str() {
                    // One scan per image per day: today's is the one to read.
                    "LimitExceededException" => out.reused_scan = true,
                    "UnsupportedImageTypeException" => {
                        return Err(EcrScanError::Unsupported {
                            image: name,
                            message,
                        });
                    }
                    _ => return Err(classify("StartImageScan", &name, code, message)),
                },
                Err(f) => return Err(f.into_error("StartImageScan", &name)),
            }
        }
        let started = Instant::now();
        let mut wait = self.poll.first;
        let pages = loop {
            match self
                .read_findings(&client, &host, image, &id, &mut out)
                .await
            {
                Ok(Some(p)) => break p,
                Ok(None) => {}
                // Just after a push (enhanced) or a start (basic) the scan
                // may not be visible yet.
                Err(Failure::Service { code, .. }) if code == "ScanNotFoundException" => {
                    out.status = "NOT_FOUND".into();
                }
                Err(Failure::Service { code, message }) => {
                    return Err(classify("DescribeImageScanFindings", &name, code, message));
                }
                Err(f) => return Err(f.into_error("DescribeImageScanFindings", &name)),
            }
            match out.status.as_str() {
                "FAILED"
                | "FINDINGS_UNAVAILABLE"
                | "SCAN_ELIGIBILITY_EXPIRED"
                | "IMAGE_ARCHIVED"
                | "LIMIT_EXCEEDED" => {
                    return Err(EcrScanError::ScanFailed {
                        image: name,
                        status: out.status.clone(),
                        description: out
                            .status_description
                            .clone()
                            .unwrap_or_else(|| "no description".into()),
                    });
                }
                "UNSUPPORTED_IMAGE" => {
                    return Err(EcrScanError::Unsupported {
                        image: name,
                        message: out
                            .status_description
                            .clone()
                            .unwrap_or_else(|| "unsupported image".into()),
                    });
                }
                _ => {}
            }
            let waited = started.elapsed();
            if waited + wait > self.poll.timeout {
                return Err(EcrScanError::Timeout {
                    image: name,
                    status: out.status.clone(),
                    waited_s: waited.as_secs(),
                });
            }
            tracing::debug!(status = %out.status, wait_ms = wait.as_millis() as u64, engine = mode.as_str(), "ECR scan not finished, polling");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.poll.max);
        };
        let mut findings = Vec::new();
        for page in &pages {
            if let Some(f) = page.image_scan_findings() {
                findings.extend(f.findings().iter().filter_map(from_basic));
                findings.extend(
                    f.enhanced_findings()
                        .iter()
                        .flat_map(|e| from_enhanced(e, &image.layer_diff_ids)),
                );
            }
        }
        out.findings = dedup(findings);
        Ok(out)
    }

    /// One round of DescribeImageScanFindings: `Some(pages)` once the scan
    /// is done (every page read), `None` while it runs; `out.status` is
    /// updated either way.
    async fn read_findings(
        &self,
        client: &aws_sdk_ecr::Client,
        host: &EcrHost,
        image: &EcrImage,
        id: &ImageIdentifier,
        out: &mut EcrFindings,
    ) -> Result<Option<Vec<DescribeImageScanFindingsOutput>>, Failure> {
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .call("DescribeImageScanFindings", &mut out.calls, || {
                    client
                        .describe_image_scan_findings()
                        .registry_id(&host.account)
                        .repository_name(&image.repository)
                        .image_id(id.clone())
                        .max_results(PAGE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            if token.is_none() {
                let status = page.image_scan_status();
                out.status = status
                    .and_then(|s| s.status())
                    .map_or("UNKNOWN", ScanStatus::as_str)
                    .to_owned();
                out.status_description = status.and_then(|s| s.description()).map(str::to_owned);
                if !matches!(out.status.as_str(), "COMPLETE" | "ACTIVE") {
                    return Ok(None);
                }
                if let Some(f) = page.image_scan_findings() {
                    out.completed_at = f.image_scan_completed_at().and_then(rfc3339);
                    out.vulnerability_source_updated_at =
                        f.vulnerability_source_updated_at().and_then(rfc3339);
                    let mut counts: Vec<(String, i32)> = f
                        .finding_severity_counts()
                        .map(|m| m.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect())
                        .unwrap_or_default();
                    counts.sort();
                    out.severity_counts = counts;
                }
            }
            token = page.next_token().map(str::to_owned);
            pages.push(page);
            if token.is_none() {
                return Ok(Some(pages));
            }
        }
    }

    /// One ECR call with retries on throttling, 5xx and transport errors.
    async fn call<T, E, F, Fut>(
        &self,
        operation: &str,
        calls: &mut u32,
        mut send: F,
    ) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            *calls += 1;
            let (message, throttled) = match send().await {
                Ok(v) => return Ok(v),
                Err(SdkError::ServiceError(se)) => {
                    let code = se.err().code().unwrap_or("Unknown").to_owned();
                    let message = se.err().message().unwrap_or_default().to_owned();
                    let status = se.raw().status().as_u16();
                    let throttled = status == 429
                        || code.contains("Throttl")
                        || code == "TooManyRequestsException";
                    if !throttled && status < 500 && code != "ServerException" {
                        return Err(Failure::Service { code, message });
                    }
                    (format!("{code}: {message}"), throttled)
                }
                Err(e) => (DisplayErrorContext(&e).to_string(), false),
            };
            if attempt >= self.retry.max_attempts {
                return Err(Failure::Exhausted {
                    attempts: attempt,
                    message,
                    throttled,
                });
            }
            let wait = self.retry.delay(attempt - 1, None);
            tracing::warn!(operation, attempt, wait_ms = wait.as_millis() as u64, throttled, %message, "ECR call failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A call's failure before it is put in the terms of the scan.
enum Failure {
    /// A 4xx the service named.
    Service { code: String, message: String },
    Exhausted {
        attempts: u32,
        message: String,
        throttled: bool,
    },
}

impl Failure {
    fn into_error(self, operation: &str, image: &str) -> EcrScanError {
        match self {
            Failure::Service { code, message } => classify(operation, image, code, message),
            Failure::Exhausted {
                attempts,
                message,
                throttled: true,
            } => EcrScanError::Throttled {
                operation: operation.into(),
                attempts,
                message,
            },
            Failure::Exhausted {
                attempts, message, ..
            } => EcrScanError::Unavailable {
                operation: operation.into(),
                attempts,
                message,
            },
        }
    }
}

fn classify(operation: &str, image: &str, code: String, message: String) -> EcrScanError {
    let message = if message.is_empty() {
        code.clone()
    } else {
        format!("{code}: {message}")
    };
    match code.as_str() {
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationTokenException" => EcrScanError::AccessDenied {
            operation: operation.into(),
            message,
        },
        "ImageNotFoundException" | "RepositoryNotFoundException" => EcrScanError::NotFound {
            image: image.into(),
            message,
        },
        "ImageArchivedException" => EcrScanError::ScanFailed {
            image: image.into(),
            status: "IMAGE_ARCHIVED".into(),
            description: message,
        },
        _ => EcrScanError::Rejected {
            operation: operation.into(),
            message,
        },
    }
}

fn rfc3339(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.fmt(Format::DateTime).ok()
}

/// A basic finding: `name` is the CVE, the package and CVSS scores are
/// `attributes`. Basic scanning gives no fixed version.
fn from_basic(f: &ImageScanFinding) -> Option<Finding> {
    let id = f.name().filter(|n| !n.is_empty())?;
    let attr = |k: &str| {
        f.attributes()
            .iter()
            .find(|a| a.key() == k)
            .and_then(|a| a.value())
            .filter(|v| !v.is_empty())
    };
    let score = |k: &str| attr(k).and_then(|v| v.parse::<f64>().ok());
    // CVSS 3 when ECR has it: the newer rating, and the one thresholds in
    // people's heads are about.
    let (cvss_score, cvss_vector, cvss_method) = match score("CVSS3_SCORE") {
        Some(s) => (Some(s), attr("CVSS3_VECTOR"), Some("CVSSv3")),
        None => match score("CVSS2_SCORE") {
            Some(s) => (Some(s), attr("CVSS2_VECTOR"), Some("CVSSv2")),
            None => (None, None, None),
        },
    };
    Some(Finding {
        id: id.to_owned(),
        severity: Severity::parse(f.severity().map_or("", |s| s.as_str())),
        severity_source: Some(BASIC_SOURCE.into()),
        cvss_score,
        cvss_vector: cvss_vector.map(str::to_owned),
        cvss_method: cvss_method.map(str::to_owned),
        package: attr("package_name").unwrap_or_default().to_owned(),
        version: attr("package_version").unwrap_or_default().to_owned(),
        description: f.description().unwrap_or_default().to_owned(),
        url: f.uri().map(str::to_owned),
        ..Finding::default()
    })
}

/// An enhanced (Inspector) finding: one [`Finding`] per vulnerable package.
fn from_enhanced(e: &EnhancedImageScanFinding, layers: &HashMap<String, String>) -> Vec<Finding> {
    let Some(d) = e.package_vulnerability_details() else {
        return Vec::new();
    };
    let Some(id) = d
        .vulnerability_id()
        .or_else(|| e.title().and_then(|t| t.split_whitespace().next()))
        .filter(|i| !i.is_empty())
    else {
        return Vec::new();
    };
    // The score Inspector's severity came from (scoreDetails), else the
    // first CVSS of the vulnerability's source.
    let detail = e.score_details().and_then(|s| s.cvss());
    let listed = d
        .cvss()
        .iter()
        .find(|c| c.source() == d.source())
        .or_else(|| d.cvss().first());
    let (score, vector, version, source) = match (detail, listed) {
        (Some(c), _) => (
            Some(c.score()),
            c.scoring_vector(),
            c.version(),
            c.score_source(),
        ),
        (None, Some(c)) => (
            Some(c.base_score()),
            c.scoring_vector(),
            c.version(),
            c.source(),
        ),
        (None, None) => (None, None, None, d.source()),
    };
    let mut references: Vec<String> = Vec::new();
    for u in d.reference_urls() {
        if Some(u.as_str()) != d.source_url() && !references.contains(u) {
            references.push(u.clone());
        }
    }
    let base = Finding {
        id: id.to_owned(),
        severity: Severity::parse(e.severity().unwrap_or("")),
        severity_source: source.map(str::to_owned),
        cvss_score: score.filter(|s| *s > 0.0),
        cvss_vector: vector.map(str::to_owned),
        cvss_method: version.map(cvss_method),
        exploit_available: e.exploit_available() == Some("YES"),
        description: e.description().unwrap_or_default().to_owned(),
        url: d.source_url().map(str::to_owned),
        references,
        published: d.vendor_created_at().and_then(rfc3339),
        updated: d.vendor_updated_at().and_then(rfc3339),
        ..Finding::default()
    };
    let packages = d.vulnerable_packages();
    if packages.is_empty() {
        return vec![base];
    }
    packages
        .iter()
        .map(|p| Finding {
            package: p.name().unwrap_or_default().to_owned(),
            version: package_version(p),
            purl: purl(p).unwrap_or_default(),
            fixed_version: p
                .fixed_in_version()
                .filter(|v| !v.is_empty() && *v != NO_FIX)
                .map(crate::inspector::findings::without_zero_epoch),
            path: p.file_path().map(str::to_owned),
            layer: p.source_layer_hash().and_then(|h| layers.get(h)).cloned(),
            ..base.clone()
        })
        .collect()
}

/// `3.1` → `CVSSv31`, as CycloneDX names rating methods.
fn cvss_method(version: &str) -> String {
    match version {
        "2" | "2.0" => "CVSSv2".into(),
        "3" | "3.0" => "CVSSv3".into(),
        "3.1" => "CVSSv31".into(),
        "4" | "4.0" => "CVSSv4".into(),
        v => format!("CVSS {v}"),
    }
}

/// Inspector splits OS package versions into epoch, version and release;
/// people (and fixedInVersion) write `epoch:version-release`.
fn package_version(p: &VulnerablePackage) -> String {
    let mut v = String::new();
    if let Some(e) = p.epoch().filter(|e| *e > 0) {
        v.push_str(&format!("{e}:"));
    }
    v.push_str(p.version().unwrap_or_default());
    if let Some(r) = p.release().filter(|r| !r.is_empty()) {
        v.push('-');
        v.push_str(r);
    }
    v
}

/// A purl for language packages, whose ecosystem the package manager
/// names. OS packages (`OS`) get none: ECR does not say which distribution,
/// and a guessed purl could make a policy file's ignore rule match the
/// wrong package.
fn purl(p: &VulnerablePackage) -> Option<String> {
    let name = p.name().filter(|n| !n.is_empty())?;
    let version = p.version().filter(|v| !v.is_empty())?;
    let kind = match p.package_manager()? {
        "NPM" | "NODEPKG" | "YARN" => "npm",
        "PIP" | "PIPENV" | "POETRY" | "PYTHONPKG" => "pypi",
        "BUNDLER" | "GEMSPEC" => "gem",
        "CARGO" => "cargo",
        "NUGET" | "DOTNET_CORE" => "nuget",
        "GOBINARY" | "GOMOD" => "golang",
        "COMPOSER" => "composer",
        "JAR" | "POM" => {
            // Inspector names Java packages `group:artifact`.
            let (group, artifact) = name.split_once(':')?;
            return Some(format!("pkg:maven/{group}/{artifact}@{version}"));
        }
        _ => return None,
    };
    Some(format!("pkg:{kind}/{name}@{version}"))
}

/// One finding per (id, package, version, path), worst first, as
/// [`super::findings::merge`] orders the inspector engine's.
fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Finding> = findings
        .into_iter()
        .filter(|f| {
            seen.insert((
                f.id.clone(),
                f.package.clone(),
                f.version.clone(),
                f.path.clone(),
            ))
        })
        .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.package.cmp(&b.package))
    });
    out
}

/// What the report says about where an ecr-* engine's findings come from.
pub fn engine_note(mode: EcrMode) -> String {
    format!(
        "Engine {}: the findings are Amazon ECR's ({}); scangate built no SBOM, so sbom.cdx.json lists no components and COMPONENTS counts the distinct vulnerable packages ECR reported",
        mode.as_str(),
        match mode {
            EcrMode::Basic => "basic scanning: operating-system packages only, no fixed versions",
            EcrMode::Enhanced => "Amazon Inspector's continuous scanning",
        }
    )
}

/// A CycloneDX 1.5 document naming the image and saying why it has no
/// components: the reports and the output artifact always carry an SBOM
/// file, and an empty one must not read as "nothing installed".
pub fn placeholder_sbom(
    image: &str,
    digest: &str,
    mode: EcrMode,
    ecr: &EcrFindings,
) -> serde_json::Value {
    let mut props = vec![
        serde_json::json!({"name": "scangate:engine", "value": mode.as_str()}),
        serde_json::json!({"name": "scangate:sbom", "value": "not built: the findings are Amazon ECR's"}),
        serde_json::json!({"name": "scangate:ecr:scan_status", "value": ecr.status}),
    ];
    if let Some(t) = &ecr.completed_at {
        props.push(serde_json::json!({"name": "scangate:ecr:scan_completed_at", "value": t}));
    }
    if let Some(t) = &ecr.vulnerability_source_updated_at {
        props.push(
            serde_json::json!({"name": "scangate:ecr:vulnerability_source_updated_at", "value": t}),
        );
    }
    serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "scangate", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "container", "bom-ref": "image", "name": image, "version": digest},
            "properties": props,
        },
        "components": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Counts;
    use integration_tests::ecr::{EcrEmulator, ScanSetup, fixture};

    const REGISTRY: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const DIGEST: &str = "sha256:5d4b2f1e8a9c0d3e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e";
    /// The fixture's `sourceLayerHash`.
    const LAYER: &str = "sha256:1f3c64b6b1a7b0d3a8b65e2b9a5f1f2a6c8d2b7e4f9a0c1d2e3f4a5b6c7d8e9f";

    async fn scanner(emu: &EcrEmulator, attempts: u32) -> EcrScanner {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(emu.url())
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                "AKIDTEST", "test", None, None, "test",
            ))
            .load()
            .await;
        EcrScanner::new(
            &sdk,
            RetryPolicy {
                max_attempts: attempts,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            PollPolicy {
                first: Duration::from_millis(5),
                max: Duration::from_millis(20),
                timeout: Duration::from_secs(5),
            },
        )
    }

    fn image(repository: &str) -> EcrImage {
        EcrImage {
            host_registry: REGISTRY.into(),
            repository: repository.into(),
            digest: DIGEST.into(),
            layer_diff_ids: HashMap::from([(LAYER.to_owned(), "sha256:diff0".to_owned())]),
        }
    }

    async fn emulator() -> EcrEmulator {
        EcrEmulator::start("AWS", "pw", Duration::from_secs(3600))
            .await
            .unwrap()
    }

    fn find<'a>(fs: &'a [Finding], id: &str, package: &str) -> &'a Finding {
        fs.iter()
            .find(|f| f.id == id && f.package == package)
            .unwrap_or_else(|| panic!("{id} {package} not in {fs:#?}"))
    }

    #[tokio::test]
    async fn basic_findings_are_mapped_across_pages() {
        let emu = emulator().await;
        let mut setup = ScanSetup::basic(fixture("basic-findings.json"));
        setup.polls_before_complete = 2;
        emu.add_image("team/app", DIGEST, &["1"], setup);
        emu.set_page_size(3);
        let s = scanner(&emu, 3).await;
        let r = s.scan(&image("team/app"), EcrMode::Basic).await.unwrap();
        assert_eq!(r.status, "COMPLETE");
        assert!(!r.reused_scan);
        assert_eq!(r.findings.len(), 8);
        let zlib = find(&r.findings, "CVE-2023-45853", "zlib");
        assert_eq!(zlib.severity, Severity::Critical);
        assert_eq!(zlib.version, "1:1.2.13.dfsg-1");
        assert_eq!(zlib.cvss_score, Some(9.8));
        assert_eq!(zlib.cvss_method.as_deref(), Some("CVSSv3"));
        assert_eq!(
            zlib.cvss_vector.as_deref(),
            Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
        );
        assert_eq!(zlib.severity_source.as_deref(), Some("AMAZON_ECR"));
        assert_eq!(
            zlib.url.as_deref(),
            Some("https://security-tracker.debian.org/tracker/CVE-2023-45853")
        );
        // CVSS 2 only: its score, named as such.
        let beast = find(&r.findings, "CVE-2011-3389", "gnutls28");
        assert_eq!(
            (beast.cvss_score, beast.cvss_method.as_deref()),
            (Some(4.3), Some("CVSSv2"))
        );
        // CVSS 3 wins over CVSS 2.
        assert_eq!(
            find(&r.findings, "CVE-2022-0563", "util-linux").cvss_score,
            Some(5.5)
        );
        // INFORMATIONAL and UNDEFINED are OTHER.
        assert_eq!(
            find(&r.findings, "CVE-2005-2541", "tar").severity,
            Severity::Other
        );
        let krb = find(&r.findings, "CVE-2024-26458", "krb5");
        assert_eq!((krb.severity, krb.cvss_score), (Severity::Other, None));
        assert!(r.findings.iter().all(|f| f.fixed_version.is_none()));
        let c = Counts::of(&r.findings);
        assert_eq!(
            [c.critical, c.high, c.medium, c.low, c.other],
            [1, 3, 1, 1, 2]
        );
        // ECR's own counts are per finding, ours per distinct id.
        assert!(r.severity_counts.contains(&("HIGH".to_owned(), 3)));
        assert_eq!(r.vulnerable_packages(), 7);
        assert!(r.findings[0].severity >= r.findings[7].severity);

        let calls = emu.scan_calls();
        let ops: Vec<(&str, Option<&str>)> = calls
            .iter()
            .map(|c| (c.operation.as_str(), c.next_token.as_deref()))
            .collect();
        assert_eq!(
            ops,
            [
                ("StartImageScan", None),
                ("DescribeImageScanFindings", None),
                ("DescribeImageScanFindings", None),
                ("DescribeImageScanFindings", None),
                ("DescribeImageScanFindings", Some("page-3")),
                ("DescribeImageScanFindings", Some("page-6")),
            ]
        );
        assert!(
            calls
                .iter()
                .all(|c| c.image_digest.as_deref() == Some(DIGEST)
                    && c.signed_region.as_deref() == Some("eu-west-1"))
        );

        // A second scan the same day: ECR refuses to start one, today's is read.
        let again = s.scan(&image("team/app"), EcrMode::Basic).await.unwrap();
        assert!(again.reused_scan);
        assert_eq!(again.findings.len(), 8);
    }

    #[tokio::test]
    async fn enhanced_findings_are_mapped_per_vulnerable_package() {
        let emu = emulator().await;
        emu.add_image(
            "team/app",
            DIGEST,
            &["1"],
            ScanSetup::enhanced(fixture("enhanced-findings.json")),
        );
        let r = scanner(&emu, 3)
            .await
            .scan(&image("team/app"), EcrMode::Enhanced)
            .await
            .unwrap();
        assert_eq!(r.status, "ACTIVE");
        // Nothing is started: Inspector scans on push.
        assert!(
            emu.scan_calls()
                .iter()
                .all(|c| c.operation == "DescribeImageScanFindings")
        );
        assert_eq!(r.findings.len(), 6, "{:#?}", r.findings);

        let zlib = find(&r.findings, "CVE-2023-45853", "zlib1g");
        assert_eq!(zlib.severity, Severity::Critical);
        assert_eq!(zlib.version, "1:1.2.13.dfsg-1");
        // "NotAvailable" is no fix.
        assert_eq!(zlib.fixed_version, None);
        assert_eq!(zlib.purl, "", "OS packages: ECR does not name the distro");
        assert_eq!(zlib.layer.as_deref(), Some("sha256:diff0"));
        assert_eq!(
            zlib.url.as_deref(),
            Some("https://nvd.nist.gov/vuln/detail/CVE-2023-45853")
        );
        assert_eq!(zlib.references.len(), 2);
        assert_eq!(zlib.published.as_deref(), Some("2023-11-11T16:26:40Z"));

        for pkg in ["libc6", "libc-bin"] {
            let f = find(&r.findings, "CVE-2024-2961", pkg);
            assert_eq!(f.severity, Severity::High);
            assert_eq!(f.version, "2.36-9+deb12u4");
            assert_eq!(f.fixed_version.as_deref(), Some("2.36-9+deb12u6"));
            assert!(f.exploit_available);
            assert_eq!(
                (
                    f.cvss_score,
                    f.cvss_method.as_deref(),
                    f.severity_source.as_deref()
                ),
                (Some(7.3), Some("CVSSv31"), Some("NVD"))
            );
        }
        let lodash = find(&r.findings, "CVE-2021-23337", "lodash");
        assert_eq!(lodash.purl, "pkg:npm/lodash@4.17.20");
        assert_eq!(lodash.fixed_version.as_deref(), Some("4.17.21"));
        assert_eq!(
            lodash.path.as_deref(),
            Some("app/node_modules/lodash/package.json")
        );
        assert!(!lodash.exploit_available);
        assert_eq!(
            find(&r.findings, "CVE-2005-2541", "tar").severity,
            Severity::Other
        );
        let c = Counts::of(&r.findings);
        assert_eq!(
            [c.critical, c.high, c.medium, c.low, c.other],
            [1, 2, 1, 0, 1]
        );
        assert_eq!(r.vulnerable_packages(), 6);
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let emu = emulator().await;
        let mut failed = ScanSetup::basic(fixture("basic-findings.json"));
        failed.failure =
            Some("UnsupportedImageError: The operating system 'scratch' is not supported".into());
        emu.add_image("team/failed", DIGEST, &["1"], failed);
        let mut slow = ScanSetup::basic(Vec::new());
        slow.polls_before_complete = u32::MAX;
        emu.add_image("team/slow", DIGEST, &["1"], slow);
        let s = scanner(&emu, 2).await;

        let e = s
            .scan(&image("team/failed"), EcrMode::Basic)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, EcrScanError::ScanFailed { status, .. } if status == "FAILED"),
            "{e}"
        );
        assert!(e.to_string().contains("'scratch' is not supported"), "{e}");
        assert!(!e.is_permission() && !e.is_unavailable());

        let e = s
            .scan(&image("team/none"), EcrMode::Basic)
            .await
            .unwrap_err();
        assert!(matches!(e, EcrScanError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("RepositoryNotFoundException"), "{e}");

        let mut quick = s.clone();
        quick.poll.timeout = Duration::from_millis(30);
        let e = quick
            .scan(&image("team/slow"), EcrMode::Basic)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, EcrScanError::Timeout { status, .. } if status == "IN_PROGRESS"),
            "{e}"
        );
        assert!(e.is_unavailable());

        emu.throttle(2);
        let e = s
            .scan(&image("team/failed"), EcrMode::Basic)
            .await
            .unwrap_err();
        assert!(
            matches!(e, EcrScanError::Throttled { attempts: 2, .. }),
            "{e}"
        );
        assert!(e.is_unavailable());

        emu.deny();
        let e = s
            .scan(&image("team/failed"), EcrMode::Enhanced)
            .await
            .unwrap_err();
        assert!(e.is_permission(), "{e}");
        assert!(
            e.to_string().contains("ecr:DescribeImageScanFindings"),
            "{e}"
        );
    }
}
