//! The ecr-* engines' scan: the image's digest from the registry (the
//! chosen platform's manifest, which is what ECR scans and stores findings
//! for), ECR's findings ([`crate::inspector::ecr`]), the risk producers over
//! the image configuration (the layers are not read), then the same policy
//! as the inspector engine.

use std::time::Instant;

use super::{Context, PipelineError, ScanReport, ScanRequest, Timings};
use crate::image::ResolvedImage;
use crate::inspector::ScanResult;
use crate::inspector::ecr::{EcrFindings, EcrImage, EcrMode, engine_note, placeholder_sbom};
use crate::job::cfg::check_engine_image;
use crate::risks::{self, ImageView, RiskOutput, RiskReport};

pub(super) async fn scan(
    ctx: &Context,
    req: &ScanRequest,
    mode: EcrMode,
) -> Result<ScanReport, PipelineError> {
    check_engine_image(req.engine, &req.image)?;
    let t0 = Instant::now();
    let mut opts = ctx.pull.clone();
    opts.platform = req.platform.clone();
    let resolved = crate::image::resolve(&req.image, &opts).await?;
    let pull_ms = t0.elapsed().as_millis() as u64;
    let t1 = Instant::now();
    let ecr = ctx.ecr.scan(&target(req, &resolved), mode).await?;
    let ecr_ms = t1.elapsed().as_millis() as u64;
    tracing::info!(
        engine = mode.as_str(),
        digest = %resolved.manifest_digest,
        status = %ecr.status,
        findings = ecr.findings.len(),
        calls = ecr.calls,
        reused_scan = ecr.reused_scan,
        ecr_ms,
        "ECR findings read"
    );
    let risks = config_risks(req, &resolved)?;
    let mut warnings = resolved.warnings.clone();
    warnings.extend(engine_warnings(req, mode, &ecr));
    warnings.extend(risks.warnings);
    let today = crate::policy::file::today_utc();
    let mut decision = req.policy.decide_with(&ecr.findings, today, None);
    req.policy
        .decide_risks(&mut decision, &risks.findings, today);
    let packages = ecr.vulnerable_packages();
    let sbom = placeholder_sbom(
        &req.image.to_string(),
        &resolved.manifest_digest,
        mode,
        &ecr,
    );
    Ok(ScanReport {
        image: req.image.to_string(),
        manifest_digest: resolved.manifest_digest.clone(),
        index_digest: resolved.index_digest.clone(),
        config_digest: resolved.config_digest.clone(),
        os: None,
        packages,
        sbom_components: 0,
        sbom,
        sbom_parts: 0,
        result: ScanResult {
            findings: ecr.findings,
            calls: ecr.calls,
            ..ScanResult::default()
        },
        decision,
        fixable_only: req.policy.fixable_only,
        warnings,
        timings: Timings {
            pull_ms,
            catalog_ms: 0,
            inspector_ms: ecr_ms,
            total_ms: t0.elapsed().as_millis() as u64,
        },
        report_uri: None,
        sbom_uri: None,
        risks: RiskReport {
            findings: risks.findings,
            ..RiskReport::default()
        },
    })
}

/// The image as ECR names it, with the layer digests enhanced findings
/// point at.
fn target(req: &ScanRequest, resolved: &ResolvedImage) -> EcrImage {
    EcrImage {
        host_registry: req.image.registry.clone(),
        repository: req.image.repository.clone(),
        digest: resolved.manifest_digest.clone(),
        layer_diff_ids: resolved
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.diff_id.clone()))
            .collect(),
    }
}

/// The risk producers over what resolving read: the config and the
/// annotations. No layer was read, so the rules over files stay silent.
fn config_risks(req: &ScanRequest, resolved: &ResolvedImage) -> Result<RiskOutput, PipelineError> {
    let reference = req.image.to_string();
    let digests: Vec<String> = resolved.layers.iter().map(|l| l.digest.clone()).collect();
    let view = ImageView {
        reference: &reference,
        manifest_digest: &resolved.manifest_digest,
        config: &resolved.config,
        annotations: &resolved.annotations,
        layer_digests: &digests,
        files: None,
        packages: &[],
        base_layers: None,
        policy: &req.policy.risks,
    };
    Ok(risks::produce_all(&view)?)
}

/// What the report must say about an ECR engine's coverage and the policy
/// settings it cannot honour.
fn engine_warnings(req: &ScanRequest, mode: EcrMode, ecr: &EcrFindings) -> Vec<String> {
    let mut warnings = vec![engine_note(mode)];
    if ecr.reused_scan {
        warnings.push(
            "ECR allows one basic scan per image per day: today's earlier scan was read".into(),
        );
    }
    if mode == EcrMode::Basic && req.policy.fixable_only {
        warnings.push(
            "FixableOnly counts nothing with ecr-basic: ECR basic scanning reports no fixed versions".into(),
        );
    }
    if req.policy.base_image.is_some() {
        warnings.push(format!(
            "base_image is ignored with Engine {}: attributing findings to layers needs scangate's SBOM (Engine inspector)",
            mode.as_str()
        ));
    }
    warnings
}
