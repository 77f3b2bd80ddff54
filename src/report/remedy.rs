//! What to do about a job that ended in an error: the error report
//! (`report.html` and `record.json` of a failed job, DESIGN.md "Reports
//! store") says what went wrong and, here, what a person does next. The
//! action's execution link points at that page, so this is the first thing
//! someone reads after a red stage.

use crate::image::FailureClass;
use crate::inspector::InspectorError;
use crate::job::FailureKind;
use crate::job::artifact::ArtifactError;
use crate::pipeline::PipelineError;

const RETRY: &str =
    "Then use Retry on the failed stage in the CodePipeline console (or release a new change).";

/// Steps, most specific first, ending with how to run the job again.
pub fn remedy(e: &PipelineError) -> Vec<String> {
    let mut steps = specific(e);
    steps.push(match e.failure_kind() {
        FailureKind::ConfigurationError => format!(
            "Nothing was scanned: the job's configuration or input was refused before the scan. Fix it in the pipeline definition (CodePipeline console: Edit stage, then the ScanGate action; or your CDK/CloudFormation). {RETRY}"
        ),
        FailureKind::PermissionError => format!(
            "Nothing is wrong with the image or the policy: an identity lacks a permission. Fix the IAM policy (or the registry credentials) named above; no pipeline change is needed. {RETRY}"
        ),
        FailureKind::SystemUnavailable => format!(
            "Nothing is wrong with the image, the policy or the permissions: a service did not answer in time. Check the AWS Health Dashboard and the worker's network path (NAT gateway or VPC endpoints). {RETRY}"
        ),
        FailureKind::JobFailed => RETRY.to_owned(),
    });
    steps
}

fn specific(e: &PipelineError) -> Vec<String> {
    let s = |t: &str| vec![t.to_owned()];
    match e {
        PipelineError::Config(c) => {
            use crate::job::ConfigError as C;
            match c {
                C::PolicyFile(_) => s(
                    "Fix the policy file in the source repository: `scangate policy check FILE` reports the same error locally with its line. Pushing the fix starts the pipeline again.",
                ),
                C::NoImage => s(
                    "Set the action's ImageUrl property (usually #{BuildVariables.IMAGE_URL}), or give the action an input artifact holding imageDetail.json or imagedefinitions.json.",
                ),
                _ => s("Correct the action property the message names, in the form it shows."),
            }
        }
        PipelineError::Artifact(a) => match a {
            ArtifactError::Denied { .. } => s(
                "The job's artifact credentials could not read the input artifact: check that the pipeline's role can read its artifact bucket and, if the bucket uses a customer-managed KMS key, that the key policy lets the pipeline's role decrypt.",
            ),
            ArtifactError::MissingFile { .. } => s(
                "The file is not in the input artifact: check the PolicyFile path (relative to the artifact's root) and that the source action's output holds it.",
            ),
            _ => s(
                "Check the action's input artifact: it must be the zip the previous action produced.",
            ),
        },
        PipelineError::Image(i) => match i.failure_class() {
            FailureClass::Permission => s(
                "The registry refused the worker. For Amazon ECR, the worker's task role needs ecr:GetAuthorizationToken, and ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on the repository (and kms:Decrypt on its key if it is KMS-encrypted); a repository in another account also needs a repository policy allowing the role. For other registries, set SCANGATE_REGISTRY_USERNAME and SCANGATE_REGISTRY_PASSWORD with SCANGATE_REGISTRY_HOSTS naming the host, or give the worker a Docker config.",
            ),
            FailureClass::NotFound => s(
                "Check that the build pushed the image, and that ImageUrl (or imageDetail.json) names the repository and the tag or digest it pushed, in the registry the worker can reach.",
            ),
            FailureClass::Configuration => {
                s("Correct the image reference or the Platform property.")
            }
            FailureClass::Unavailable => s(
                "The registry could not be reached or kept refusing with throttling: check it is up and reachable from the worker's subnets.",
            ),
            FailureClass::Corrupt => s(
                "The image could not be read safely (broken, too large or in a format scangate does not read): rebuild and push it, and check the message for the limit it exceeded.",
            ),
        },
        PipelineError::Inspector(i) => match i {
            InspectorError::AccessDenied(_) => s(
                "Grant the worker's task role inspector-scan:ScanSbom (the ScanGate CDK construct does), and check that no service control policy or permissions boundary denies it; Amazon Inspector must be available in the worker's region.",
            ),
            InspectorError::Validation(_) | InspectorError::EmptyAnswer => s(
                "Amazon Inspector refused the SBOM scangate built: report this with the job id and the SBOM (sbom.cdx.json) if it was stored.",
            ),
            _ => Vec::new(),
        },
        PipelineError::Ecr(x) if x.is_permission() => s(
            "The ECR engines need ecr:DescribeImageScanFindings (and ecr:StartImageScan for ecr-basic; inspector2:ListFindings for ecr-enhanced) on the worker's task role.",
        ),
        PipelineError::Output(_) => s(
            "The output artifact could not be written: check that the pipeline's role can write its artifact bucket and use its KMS key.",
        ),
        PipelineError::Internal(_) | PipelineError::Sbom(_) => s(
            "This is a bug in scangate, not a problem with your image: report it with the job id (the worker's log has the details).",
        ),
        _ => Vec::new(),
    }
}
