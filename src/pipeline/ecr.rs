//! The ecr-* engines' scan: the image's digest from the registry (the
//! chosen platform's manifest, which is what ECR scans and stores findings
//! for), ECR's findings ([`crate::inspector::ecr`]), the risk producers,
//! the signature check, then the same policy as the inspector engine.
//!
//! ECR's findings need no layer, but the image risks do (secrets in files,
//! files a later layer deleted or overwrote, setuid and world-writable
//! files, an SSH server): while ECR answers, one streaming pass reads every
//! layer with the worker's pull credentials, shows the bytes to the secret
//! scanner and keeps no file (no cataloguing). It is always on, because a
//! policy that sets no `secrets:` or `config:` section still gets those
//! findings in its reports (DESIGN, "Image risks beyond CVEs"). Its cost is
//! the download and decompression the inspector engine pays, without the
//! catalogers; memory is the same bounded layer reader's. When the pass
//! fails, a policy whose `secrets:` or `config:` section fails the gate
//! fails the job (a gate must not pass what it could not read); otherwise
//! the report says which rules could not run.

use std::sync::Arc;
use std::time::Instant;

use super::{Context, PipelineError, ScanReport, ScanRequest, Timings};
use crate::catalog::Catalog;
use crate::image::{ImageError, ImageRef, ImageSource, PullOptions, PulledImage, ResolvedImage};
use crate::inspector::ScanResult;
use crate::inspector::ecr::{EcrFindings, EcrImage, EcrMode, engine_note, placeholder_sbom};
use crate::job::ConfigError;
use crate::job::cfg::check_engine_image;
use crate::risks::secrets::SecretScan;
use crate::risks::{self, ImageView, RiskOutput, RiskReport, SignatureStatus};

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
    let secret_scan = SecretScan::new(&req.policy.risks.secrets.scanner())
        .map_err(|e| ConfigError::Secrets(e.to_string()))?;
    let t1 = Instant::now();
    // The layer pass runs while ECR scans (a basic scan takes seconds to
    // minutes): its cost mostly hides behind ECR's.
    let ((ecr, ecr_ms), (layers, pull_ms)) = tokio::join!(
        async {
            let r = ctx.ecr.scan(&target(req, &resolved), mode).await;
            (r, t1.elapsed().as_millis() as u64)
        },
        async {
            let r = layer_pass(&opts, req, &resolved, &secret_scan).await;
            (r, t0.elapsed().as_millis() as u64)
        }
    );
    let ecr = ecr?;
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
    let t2 = Instant::now();
    let risks = image_risks(req, &resolved, layers, secret_scan).await?;
    let risk_ms = t2.elapsed().as_millis() as u64;
    let source = ImageSource::Registry(req.image.clone());
    let signature = super::check_signature(
        ctx,
        &source,
        &resolved.manifest_digest,
        resolved.index_digest.as_deref(),
        &req.policy,
    )
    .await?;
    let mut warnings = resolved.warnings.clone();
    warnings.extend(engine_warnings(req, mode, &ecr));
    warnings.extend(risks.warnings);
    let today = crate::policy::file::today_utc();
    let mut decision = req.policy.decide_with(&ecr.findings, today, None);
    req.policy
        .decide_risks(&mut decision, &risks.findings, today);
    if let Some(v) = &signature {
        req.policy.decide_signature(&mut decision, v);
    }
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
            catalog_ms: risk_ms,
            inspector_ms: ecr_ms,
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

/// The one streaming pass over the layers: every file's bytes go to the
/// secret scanner, no file is kept (the reader still records setuid,
/// world-writable and SSH server entries for the configuration rules).
/// Pinned to the digest ECR scans, so a tag moved meanwhile cannot swap
/// the image under the findings.
async fn layer_pass(
    opts: &PullOptions,
    req: &ScanRequest,
    resolved: &ResolvedImage,
    secrets: &Arc<SecretScan>,
) -> Result<PulledImage, ImageError> {
    let pinned = ImageRef {
        tag: None,
        digest: Some(resolved.manifest_digest.clone()),
        ..req.image.clone()
    };
    let mut opts = opts.clone();
    opts.observer = Some(secrets.observer());
    crate::image::pull(&pinned, &opts, Arc::new(|_: &str| false)).await
}

/// Every risk producer over what the layer pass read; when it could not
/// read the layers, over the config only (see the module docs for when
/// that fails the job instead).
async fn image_risks(
    req: &ScanRequest,
    resolved: &ResolvedImage,
    layers: Result<PulledImage, ImageError>,
    secrets: Arc<SecretScan>,
) -> Result<RiskOutput, PipelineError> {
    let pulled = match layers {
        Ok(p) => p,
        Err(e) if gates_on_files(req) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "layer pass failed: risks from the image config only");
            let mut out = config_risks(req, resolved)?;
            out.warnings.push(format!(
                "the layers could not be read ({e}): secrets in files and the \
                 configuration rules over files were not checked"
            ));
            return Ok(out);
        }
    };
    let (pulled, _, mut out) = super::image_risks(
        req.cancel.as_ref(),
        pulled,
        Catalog::default(),
        req.image.to_string(),
        None,
        &req.policy,
        Some(secrets),
    )
    .await?;
    out.warnings.extend(pulled.warnings);
    Ok(out)
}

/// Whether the policy fails the gate on a secret or configuration
/// finding: then an unread layer must fail the job, not pass it.
fn gates_on_files(req: &ScanRequest) -> bool {
    let r = &req.policy.risks;
    r.secrets.fail_on.is_some() || r.config.fail_on.is_some()
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

/// The risk producers over what resolving read (the config and the
/// annotations), when the layer pass failed: the rules over files stay
/// silent.
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
