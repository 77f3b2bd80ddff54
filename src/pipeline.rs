//! Image reference → verdict: the stages of one scan, shared by the worker
//! and the CLI.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::cancel::{self, CancelToken, Cancelled};
use crate::catalog;
use crate::image::{self, ImageError, ImageRef, ImageSource, Platform, PullOptions};
use crate::inspector::ecr::{EcrMode, EcrScanError, EcrScanner};
use crate::inspector::{Inspector, InspectorError, MAX_COMPONENTS, ScanResult};
use crate::job::artifact::ArtifactError;
use crate::job::cfg::Engine;
use crate::job::output::OutputError;
use crate::job::{ConfigError, FailureKind};
use crate::policy::{Attribution, BaseImagePolicy, BaseLayers, BaseSource, Decision, Policy};
use crate::risks::{self, ImageView, RiskOutput, RiskReport, SignatureStatus};
use crate::sbom;

mod ecr;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("building the SBOM failed: {0}")]
    Sbom(String),
    #[error(transparent)]
    Inspector(#[from] InspectorError),
    #[error(transparent)]
    Ecr(#[from] EcrScanError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(
        "worker shutting down: the job did not finish within the shutdown grace period; retry the action"
    )]
    ShuttingDown,
    /// The job's deadline or the worker's shutdown stopped the work; the
    /// worker has already decided the job's outcome.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    #[error("internal error: {0}")]
    Internal(String),
}

impl PipelineError {
    pub fn failure_kind(&self) -> FailureKind {
        use image::FailureClass as C;
        match self {
            PipelineError::Config(_) => FailureKind::ConfigurationError,
            PipelineError::Artifact(e) if e.is_permission() => FailureKind::PermissionError,
            PipelineError::Artifact(e) if e.is_unavailable() => FailureKind::SystemUnavailable,
            PipelineError::Artifact(_) => FailureKind::ConfigurationError,
            PipelineError::Image(e) => match e.failure_class() {
                C::Configuration => FailureKind::ConfigurationError,
                C::Permission => FailureKind::PermissionError,
                C::NotFound | C::Corrupt => FailureKind::JobFailed,
                C::Unavailable => FailureKind::SystemUnavailable,
            },
            PipelineError::Inspector(e) => match e {
                InspectorError::AccessDenied(_) => FailureKind::PermissionError,
                InspectorError::Throttled { .. }
                | InspectorError::Unavailable { .. }
                | InspectorError::Unreachable { .. } => FailureKind::SystemUnavailable,
                InspectorError::Validation(_)
                | InspectorError::EmptyAnswer
                | InspectorError::AnswerTooLarge { .. } => FailureKind::JobFailed,
            },
            PipelineError::Ecr(e) if e.is_permission() => FailureKind::PermissionError,
            PipelineError::Ecr(e) if e.is_unavailable() => FailureKind::SystemUnavailable,
            PipelineError::Ecr(_) => FailureKind::JobFailed,
            PipelineError::Output(e) => e.failure_kind(),
            PipelineError::ShuttingDown | PipelineError::Cancelled(_) => {
                FailureKind::SystemUnavailable
            }
            PipelineError::Sbom(_) | PipelineError::Internal(_) => FailureKind::JobFailed,
        }
    }
}

/// What a scan needs besides the request: shared by all jobs of a worker.
#[derive(Clone)]
pub struct Context {
    pub pull: PullOptions,
    pub inspector: Inspector,
    /// The ecr-basic and ecr-enhanced engines.
    pub ecr: EcrScanner,
    /// `awskms:///ARN` cosign keys of a policy's `signature:` section.
    pub kms: crate::signature::kms::AwsKms,
}

/// A job's scan. The image is a registry reference by type: a pipeline
/// job must never make the worker read its local disk (the command line
/// scans local sources with [`scan_source`]).
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub image: ImageRef,
    pub platform: Platform,
    pub policy: Policy,
    pub engine: Engine,
    /// The job's token: its deadline and the worker's shutdown cancel it,
    /// stopping the CPU-bound stages at their next checkpoint.
    pub cancel: Option<CancelToken>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub pull_ms: u64,
    pub catalog_ms: u64,
    pub inspector_ms: u64,
    pub total_ms: u64,
}

/// Everything one scan produced.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub image: String,
    pub manifest_digest: String,
    pub index_digest: Option<String>,
    pub config_digest: String,
    pub os: Option<String>,
    /// Packages catalogued (binary packages; source groupings not counted).
    pub packages: usize,
    /// Components in the SBOM, nested included.
    pub sbom_components: usize,
    pub sbom: serde_json::Value,
    pub sbom_parts: usize,
    pub result: ScanResult,
    pub decision: Decision,
    pub fixable_only: bool,
    pub warnings: Vec<String>,
    pub timings: Timings,
    pub report_uri: Option<String>,
    pub sbom_uri: Option<String>,
    /// Secret and configuration findings, and the signature check.
    pub risks: RiskReport,
}

/// The SBOM of an image, without Inspector: `scangate sbom` and the first
/// half of every scan.
pub struct ImageSbom {
    pub pulled: image::PulledImage,
    pub catalog: catalog::Catalog,
    pub bom: sbom::Bom,
    pub pull_ms: u64,
    pub catalog_ms: u64,
}

pub async fn build_sbom(
    pull: &PullOptions,
    reference: &ImageSource,
    platform: &Platform,
) -> Result<ImageSbom, PipelineError> {
    build_sbom_with(pull, reference, platform, None).await
}

/// [`build_sbom`] under a job's cancellation token. Cataloguing and SBOM
/// building are CPU-bound and driven by image content: they run on the
/// blocking pool, never on a runtime thread, so a hostile image cannot
/// stall `/healthz`, the poll loop, the other jobs or the job's deadline.
async fn build_sbom_with(
    pull: &PullOptions,
    reference: &ImageSource,
    platform: &Platform,
    cancel: Option<&CancelToken>,
) -> Result<ImageSbom, PipelineError> {
    let t0 = Instant::now();
    let mut opts = pull.clone();
    opts.platform = platform.clone();
    let pulled = image::pull_source(reference, &opts, Arc::new(catalog::Selector)).await?;
    let pull_ms = t0.elapsed().as_millis() as u64;
    let t1 = Instant::now();
    let reference = reference.to_string();
    let (pulled, catalog, bom) = off_runtime(cancel, move || {
        let catalog = catalog::try_run(&pulled.files)?;
        test_hooks::burn_cpu()?;
        let bom = sbom::build(
            &catalog,
            &image_meta(reference, &pulled),
            &Default::default(),
        );
        cancel::checkpoint()?;
        Ok((pulled, catalog, bom))
    })
    .await?;
    let catalog_ms = t1.elapsed().as_millis() as u64;
    Ok(ImageSbom {
        pulled,
        catalog,
        bom,
        pull_ms,
        catalog_ms,
    })
}

fn image_meta(reference: String, pulled: &image::PulledImage) -> sbom::ImageMeta {
    sbom::ImageMeta {
        reference,
        manifest_digest: pulled.manifest_digest.clone(),
        config_digest: pulled.config_digest.clone(),
        index_digest: pulled.index_digest.clone(),
        layer_diff_ids: pulled.layers.iter().map(|l| l.diff_id.clone()).collect(),
        layer_digests: pulled.layers.iter().map(|l| l.digest.clone()).collect(),
    }
}

/// Runs CPU-bound `f` on the blocking pool under `cancel` (the job's token,
/// if any); dropping the returned future (deadline, shutdown) cancels it.
pub async fn off_runtime<T, F>(cancel: Option<&CancelToken>, f: F) -> Result<T, PipelineError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PipelineError> + Send + 'static,
{
    // The job's span goes along, so the work's logs still name the job.
    let span = tracing::Span::current();
    cancel::spawn_blocking(cancel, move || span.in_scope(f)).await?
}

/// Knobs only a debug build honours, for the tests that prove the worker
/// stays responsive while a job burns CPU. Release builds compile them out.
mod test_hooks {
    #[cfg(debug_assertions)]
    use crate::cancel;
    use crate::cancel::Cancelled;

    /// `SCANGATE_TEST_ONLY_BURN_CPU_MS`: spin this long inside the blocking
    /// cataloguing stage, checking cancellation as real catalogers do.
    #[cfg(debug_assertions)]
    pub fn burn_cpu() -> Result<(), Cancelled> {
        let Some(ms) = std::env::var("SCANGATE_TEST_ONLY_BURN_CPU_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return Ok(());
        };
        let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut x = 0u64;
        while std::time::Instant::now() < end {
            cancel::checkpoint()?;
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        Ok(())
    }

    #[cfg(not(debug_assertions))]
    pub fn burn_cpu() -> Result<(), Cancelled> {
        Ok(())
    }
}

/// Where a scan's vulnerability findings come from: the one place that
/// turns the `Engine` property into a vulnerability producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VulnSource {
    /// scangate's SBOM sent to Inspector ScanSbom.
    Inspector,
    /// The findings Amazon ECR holds for the image.
    Ecr(EcrMode),
}

impl VulnSource {
    fn of(engine: Engine) -> VulnSource {
        match engine {
            Engine::Inspector => VulnSource::Inspector,
            Engine::EcrBasic => VulnSource::Ecr(EcrMode::Basic),
            Engine::EcrEnhanced => VulnSource::Ecr(EcrMode::Enhanced),
        }
    }
}

/// A job's scan: registry images only.
pub async fn scan(ctx: &Context, req: &ScanRequest) -> Result<ScanReport, PipelineError> {
    match VulnSource::of(req.engine) {
        VulnSource::Ecr(mode) => ecr::scan(ctx, req, mode).await,
        VulnSource::Inspector => {
            let source = ImageSource::Registry(req.image.clone());
            let cancel = req.cancel.as_ref();
            scan_inner(ctx, &source, &req.platform, &req.policy, &|_| {}, cancel).await
        }
    }
}

/// Where [`scan_source_with_progress`] is: `scan` tells a person at a
/// terminal, since a large image takes a while to pull and to scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Pulling,
    Catalogued { packages: usize },
    Scanning { components: usize },
}

/// Scans an image from any source, local ones included (command line).
pub async fn scan_source(
    ctx: &Context,
    source: &ImageSource,
    platform: &Platform,
    policy: &Policy,
) -> Result<ScanReport, PipelineError> {
    scan_source_with_progress(ctx, source, platform, policy, &|_| {}).await
}

/// [`scan_source`], calling `progress` as each stage starts or ends.
pub async fn scan_source_with_progress(
    ctx: &Context,
    source: &ImageSource,
    platform: &Platform,
    policy: &Policy,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<ScanReport, PipelineError> {
    scan_inner(ctx, source, platform, policy, progress, None).await
}

async fn scan_inner(
    ctx: &Context,
    source: &ImageSource,
    platform: &Platform,
    policy: &Policy,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: Option<&CancelToken>,
) -> Result<ScanReport, PipelineError> {
    let t0 = Instant::now();
    // The secret scan reads every file's bytes during the pull's one pass.
    let secret_scan = risks::secrets::SecretScan::new(&policy.risks.secrets.scanner())
        .map_err(|e| ConfigError::Secrets(e.to_string()))?;
    let mut pull = ctx.pull.clone();
    pull.observer = Some(secret_scan.observer());
    progress(Progress::Pulling);
    let ImageSbom {
        pulled,
        catalog,
        bom,
        pull_ms,
        catalog_ms,
    } = build_sbom_with(&pull, source, platform, cancel).await?;
    tracing::info!(
        digest = %pulled.manifest_digest,
        layers = pulled.layers.len(),
        packages = catalog.packages.len(),
        pull_ms,
        catalog_ms,
        "image catalogued"
    );
    progress(Progress::Catalogued {
        packages: catalog.packages.len(),
    });
    let components = sbom::component_count(&bom);
    let (bom, parts_json) = off_runtime(cancel, move || {
        let parts = sbom_parts(&bom)?;
        Ok((bom, parts))
    })
    .await?;
    progress(Progress::Scanning { components });
    let (result, inspector_ms, base) =
        inspector_and_base(ctx, &parts_json, policy, &pulled, platform).await;
    let result = result?;
    let base_layers = base_prefix(base.as_ref());
    let (pulled, catalog, risks) = image_risks(
        cancel,
        pulled,
        catalog,
        source.to_string(),
        base_layers,
        policy,
        Some(secret_scan),
    )
    .await?;
    let signature = check_signature(
        ctx,
        source,
        &pulled.manifest_digest,
        pulled.index_digest.as_deref(),
        policy,
    )
    .await?;
    let mut judged = judge(cancel, bom, result, base, pulled.layers.len(), policy).await?;
    let today = crate::policy::file::today_utc();
    policy.decide_risks(&mut judged.decision, &risks.findings, today);
    if let Some(v) = &signature {
        policy.decide_signature(&mut judged.decision, v);
    }
    let warnings = scan_warnings(&pulled, &catalog, &judged, risks.warnings);
    Ok(ScanReport {
        image: source.to_string(),
        manifest_digest: pulled.manifest_digest.clone(),
        index_digest: pulled.index_digest.clone(),
        config_digest: pulled.config_digest.clone(),
        os: catalog
            .os
            .as_ref()
            .map(|o| o.pretty_name.clone().unwrap_or_else(|| o.id.clone())),
        packages: catalog.packages.len(),
        sbom_components: components,
        sbom: judged.sbom,
        sbom_parts: parts_json.len(),
        result: judged.result,
        decision: judged.decision,
        fixable_only: policy.fixable_only,
        warnings,
        timings: Timings {
            pull_ms,
            catalog_ms,
            inspector_ms,
            total_ms: t0.elapsed().as_millis() as u64,
        },
        report_uri: None,
        sbom_uri: None,
        risks: RiskReport {
            findings: risks.findings,
            signature: signature
                .as_ref()
                .map_or(SignatureStatus::NotChecked, SignatureStatus::of),
            signature_reason: signature.as_ref().map_or_else(String::new, |v| v.reason()),
        },
    })
}

/// The signature check the policy's `signature:` section asks for, over
/// the digest actually scanned; `None` when the section asks for nothing.
/// Keys and roots come from the policy only (read with the policy file);
/// the registry (or the OCI layout) is only asked where the signatures
/// are. Takes the digests, not the pulled image: the ECR engines check the
/// same way without pulling through the cataloguing path.
async fn check_signature(
    ctx: &Context,
    source: &ImageSource,
    manifest_digest: &str,
    index_digest: Option<&str>,
    policy: &Policy,
) -> Result<Option<crate::signature::SignatureVerdict>, PipelineError> {
    use crate::signature::SignatureVerdict;
    let section = &policy.risks.signature;
    if !section.is_configured() {
        return Ok(None);
    }
    let unread = |p: &str| -> Result<String, String> {
        Err(format!(
            "{p}: key and root files are read with the policy file"
        ))
    };
    let trust = section
        .load(&unread, Some(&ctx.kms))
        .await
        .map_err(|e| ConfigError::Signature(e.to_string()))?;
    let (manifest, index) = (manifest_digest, index_digest);
    let verdict = match source {
        ImageSource::Registry(image) => {
            crate::signature::verify_image(image, manifest, index, &trust, &ctx.pull).await
        }
        // cosign and Notation store the signatures of a layout's image in
        // the layout itself.
        ImageSource::OciLayout { dir, .. } => {
            crate::signature::verify_layout_image(dir, manifest, index, &trust).await
        }
        ImageSource::DockerArchive { .. } => SignatureVerdict::NotChecked {
            detail: format!(
                "{source}: a docker save archive cannot carry signatures; \
                 scan the registry image or an OCI layout"
            ),
        },
    };
    tracing::info!(signature = verdict.name(), reason = %verdict.reason(), "signature checked");
    Ok(Some(verdict))
}

/// Inspector's answer (and how long it took) and the base image's layers,
/// fetched together: the base is a few small GETs made while Inspector
/// works.
async fn inspector_and_base(
    ctx: &Context,
    parts: &[serde_json::Value],
    policy: &Policy,
    pulled: &image::PulledImage,
    platform: &Platform,
) -> (
    Result<ScanResult, InspectorError>,
    u64,
    Option<Result<BaseLayers, String>>,
) {
    let t = Instant::now();
    let (result, base) = tokio::join!(
        async {
            let r = ctx.inspector.scan(parts).await;
            (r, t.elapsed().as_millis() as u64)
        },
        async {
            match &policy.base_image {
                Some(b) => Some(resolve_base(&ctx.pull, b, pulled, platform).await),
                None => None,
            }
        }
    );
    (result.0, result.1, base)
}

/// The base image's layers count as the base's only when the image is
/// really built on it (all its layers start the image's).
fn base_prefix(base: Option<&Result<BaseLayers, String>>) -> Option<usize> {
    match base {
        Some(Ok(b)) if b.is_prefix() => Some(b.base_layers),
        _ => None,
    }
}

/// Runs every risk producer ([`risks::PRODUCERS`]) over the pulled image,
/// off the runtime: they loop over image-controlled entries.
async fn image_risks(
    cancel: Option<&CancelToken>,
    pulled: image::PulledImage,
    catalog: catalog::Catalog,
    reference: String,
    base_layers: Option<usize>,
    policy: &Policy,
    secrets: Option<Arc<risks::secrets::SecretScan>>,
) -> Result<(image::PulledImage, catalog::Catalog, RiskOutput), PipelineError> {
    let risk_policy = policy.risks.clone();
    off_runtime(cancel, move || {
        let digests: Vec<String> = pulled.layers.iter().map(|l| l.digest.clone()).collect();
        let view = ImageView {
            reference: &reference,
            manifest_digest: &pulled.manifest_digest,
            config: &pulled.config,
            annotations: &pulled.annotations,
            layer_digests: &digests,
            files: Some(&pulled.files),
            packages: &catalog.packages,
            base_layers,
            policy: &risk_policy,
        };
        let mut out = risks::produce_all(&view)?;
        if let Some(scan) = secrets {
            let today = crate::policy::file::today_utc();
            let found = scan.findings(&pulled.layers, &pulled.config, today)?;
            tracing::debug!(
                findings = found.findings.len(),
                files = found.stats.files_searched,
                bytes = found.stats.bytes_searched,
                "secret scan done"
            );
            out.findings.extend(found.findings);
            out.warnings.extend(found.warnings);
        }
        Ok((pulled, catalog, out))
    })
    .await
}

/// The report's warnings: the pull's, the catalogers', Inspector's, the
/// base image's and the risk producers'.
fn scan_warnings(
    pulled: &image::PulledImage,
    catalog: &catalog::Catalog,
    judged: &Judged,
    risk_warnings: Vec<String>,
) -> Vec<String> {
    let mut warnings = pulled.warnings.clone();
    warnings.extend(catalog.warnings.iter().cloned());
    warnings.extend(judged.result.warnings.iter().cloned());
    // An unresolved base never fails the job: the report says why the
    // top-level thresholds judged everything.
    if let Some(w) = judged
        .decision
        .base_image
        .as_ref()
        .and_then(|b| b.warning.clone())
    {
        tracing::warn!("{w}");
        warnings.push(w);
    }
    warnings.extend(risk_warnings);
    warnings
}

/// The SBOM in parts Inspector accepts, as JSON.
fn sbom_parts(bom: &sbom::Bom) -> Result<Vec<serde_json::Value>, PipelineError> {
    sbom::split(bom, MAX_COMPONENTS)
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PipelineError::Internal(format!("serialising the SBOM: {e}")))
}

/// What the policy made of Inspector's findings.
struct Judged {
    sbom: serde_json::Value,
    result: ScanResult,
    decision: Decision,
}

/// Applies the policy (base-image attribution, suppressions, thresholds)
/// and locates each finding in the SBOM: CPU work over the whole SBOM and
/// every finding, so it runs off the runtime like cataloguing.
async fn judge(
    cancel: Option<&CancelToken>,
    bom: sbom::Bom,
    mut result: ScanResult,
    base: Option<Result<BaseLayers, String>>,
    image_layers: usize,
    policy: &Policy,
) -> Result<Judged, PipelineError> {
    let policy = policy.clone();
    off_runtime(cancel, move || {
        let sbom = serde_json::to_value(&bom)
            .map_err(|e| PipelineError::Internal(format!("serialising the SBOM: {e}")))?;
        cancel::checkpoint()?;
        let attribution =
            base.map(|b| Attribution::from_sbom(&result.findings, &sbom, image_layers, b));
        let decision = policy.decide_with(
            &result.findings,
            crate::policy::file::today_utc(),
            attribution.as_ref(),
        );
        if let Some(b) = &decision.base_image {
            tracing::info!(
                base = b.reference.as_deref().unwrap_or(""),
                base_layers = b.base_layers,
                matched_layers = b.matched_layers,
                applied = b.applied,
                inherited = b.inherited.len(),
                "base image attribution"
            );
        }
        cancel::checkpoint()?;
        crate::inspector::findings::attach_locations(&mut result.findings, &sbom);
        Ok(Judged {
            sbom,
            result,
            decision,
        })
    })
    .await
}

/// Finds the base image named by the policy (`base_image.ref`) or by the
/// image itself (`org.opencontainers.image.base.*`), reads its manifest and
/// config (no layers) for the scanned platform, and compares layer diff ids.
/// Every failure is an explanation for the report, never a job failure.
async fn resolve_base(
    pull: &PullOptions,
    policy: &BaseImagePolicy,
    image: &image::PulledImage,
    platform: &Platform,
) -> Result<BaseLayers, String> {
    use image::manifest::BaseAnnotation;
    let (name, source) = match &policy.reference {
        Some(r) => (r.clone(), BaseSource::Policy),
        None => match BaseAnnotation::find(&image.annotations, &image.config.labels) {
            Some(a) => (
                a.reference(),
                if a.from_labels {
                    BaseSource::Label
                } else {
                    BaseSource::Annotation
                },
            ),
            None => {
                return Err(format!(
                    "base_image has no ref and the image has no {} annotation or label",
                    image::manifest::BASE_NAME_ANNOTATION
                ));
            }
        },
    };
    let reference: ImageRef = name.parse().map_err(|e: ImageError| e.to_string())?;
    // A host the image itself named gets no credentials: a label must not
    // be able to collect the worker's password (or an ECR token).
    let mut opts = match source {
        BaseSource::Policy => pull.clone(),
        BaseSource::Label | BaseSource::Annotation => pull.for_content_named(),
    };
    opts.platform = platform.clone();
    let base = image::resolve(&reference, &opts)
        .await
        .map_err(|e| format!("{reference}: {e}"))?;
    let base_ids: Vec<String> = base.layers.iter().map(|l| l.diff_id.clone()).collect();
    let image_ids: Vec<String> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    Ok(BaseLayers::compare(
        reference.to_string(),
        source,
        Some(base.manifest_digest),
        &base_ids,
        &image_ids,
    ))
}
