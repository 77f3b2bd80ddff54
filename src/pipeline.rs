//! Image reference → verdict: the stages of one scan, shared by the worker
//! and the CLI.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::catalog;
use crate::image::{self, ImageError, ImageRef, ImageSource, Platform, PullOptions};
use crate::inspector::ecr::{EcrScanError, EcrScanner};
use crate::inspector::{Inspector, InspectorError, MAX_COMPONENTS, ScanResult};
use crate::job::artifact::ArtifactError;
use crate::job::cfg::Engine;
use crate::job::output::OutputError;
use crate::job::{ConfigError, FailureKind};
use crate::policy::{Attribution, BaseImagePolicy, BaseLayers, BaseSource, Decision, Policy};
use crate::sbom;

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
                InspectorError::Throttled { .. } | InspectorError::Unavailable { .. } => {
                    FailureKind::SystemUnavailable
                }
                InspectorError::Validation(_) | InspectorError::EmptyAnswer => {
                    FailureKind::JobFailed
                }
            },
            PipelineError::Ecr(e) if e.is_permission() => FailureKind::PermissionError,
            PipelineError::Ecr(e) if e.is_unavailable() => FailureKind::SystemUnavailable,
            PipelineError::Ecr(_) => FailureKind::JobFailed,
            PipelineError::Output(e) => e.failure_kind(),
            PipelineError::ShuttingDown => FailureKind::SystemUnavailable,
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
    let t0 = Instant::now();
    let mut opts = pull.clone();
    opts.platform = platform.clone();
    let pulled = image::pull_source(reference, &opts, Arc::new(catalog::Selector)).await?;
    let pull_ms = t0.elapsed().as_millis() as u64;
    let t1 = Instant::now();
    let catalog = catalog::run(&pulled.files);
    let meta = sbom::ImageMeta {
        reference: reference.to_string(),
        manifest_digest: pulled.manifest_digest.clone(),
        config_digest: pulled.config_digest.clone(),
        index_digest: pulled.index_digest.clone(),
        layer_diff_ids: pulled.layers.iter().map(|l| l.diff_id.clone()).collect(),
        layer_digests: pulled.layers.iter().map(|l| l.digest.clone()).collect(),
    };
    let bom = sbom::build(&catalog, &meta, &sbom::SbomOptions::default());
    let catalog_ms = t1.elapsed().as_millis() as u64;
    Ok(ImageSbom {
        pulled,
        catalog,
        bom,
        pull_ms,
        catalog_ms,
    })
}

/// A job's scan: registry images only.
pub async fn scan(ctx: &Context, req: &ScanRequest) -> Result<ScanReport, PipelineError> {
    if req.engine.is_ecr() {
        return crate::inspector::ecr::scan_report(&ctx.pull, &ctx.ecr, req).await;
    }
    let source = ImageSource::Registry(req.image.clone());
    scan_source(ctx, &source, &req.platform, &req.policy).await
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
    let t0 = Instant::now();
    progress(Progress::Pulling);
    let ImageSbom {
        pulled,
        catalog,
        bom,
        pull_ms,
        catalog_ms,
    } = build_sbom(&ctx.pull, source, platform).await?;
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
    let parts = sbom::split(&bom, MAX_COMPONENTS);
    let parts_json = parts
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PipelineError::Internal(format!("serialising the SBOM: {e}")))?;
    progress(Progress::Scanning {
        components: sbom::component_count(&bom),
    });
    let t2 = Instant::now();
    // The base image's manifest and config are a few small GETs: fetched
    // while Inspector works.
    let (result, base) = tokio::join!(
        async {
            let r = ctx.inspector.scan(&parts_json).await;
            (r, t2.elapsed().as_millis() as u64)
        },
        async {
            match &policy.base_image {
                Some(b) => Some(resolve_base(&ctx.pull, b, &pulled, platform).await),
                None => None,
            }
        }
    );
    let (result, inspector_ms) = result;
    let mut result = result?;
    let sbom = serde_json::to_value(&bom)
        .map_err(|e| PipelineError::Internal(format!("serialising the SBOM: {e}")))?;
    let image_layers = pulled.layers.len();
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
    crate::inspector::findings::attach_locations(&mut result.findings, &sbom);
    let mut warnings = pulled.warnings.clone();
    warnings.extend(catalog.warnings.iter().cloned());
    warnings.extend(result.warnings.iter().cloned());
    // An unresolved base never fails the job: the report says why the
    // top-level thresholds judged everything.
    if let Some(w) = decision.base_image.as_ref().and_then(|b| b.warning.clone()) {
        tracing::warn!("{w}");
        warnings.push(w);
    }
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
        sbom_components: sbom::component_count(&bom),
        sbom,
        sbom_parts: parts_json.len(),
        result,
        decision,
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
    })
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
