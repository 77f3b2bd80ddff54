//! The action's output artifact (DESIGN.md, "Output artifacts: 0–1"): a zip
//! with the SBOM and the reports, written where CodePipeline said
//! (`outputArtifacts[0].location.s3Location`), with the job's own artifact
//! credentials, and encrypted the way the pipeline's artifact store is: with
//! the job's KMS key when CodePipeline names one, else SSE-S3, which is what
//! CodePipeline itself uses for a store without a customer key.

use std::io::Write as _;

use aws_sdk_s3::types::ServerSideEncryption;

use super::artifact::job_s3_client;
use super::{ArtifactCredentials, FailureKind, JobInfo};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the job's output artifact {name:?} has no S3 location")]
    NoLocation { name: String },
    #[error("the job carries no artifact credentials to write its output artifact")]
    NoCredentials,
    #[error(
        "writing the output artifact s3://{bucket}/{key} was denied: {message} (the pipeline's artifact bucket{kms} must allow the job's artifact credentials)"
    )]
    Denied {
        bucket: String,
        key: String,
        message: String,
        kms: &'static str,
    },
    #[error("writing the output artifact s3://{bucket}/{key} failed: {message}")]
    Unavailable {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("writing the output artifact s3://{bucket}/{key} was refused: {message}")]
    Refused {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("building the output artifact zip: {0}")]
    Zip(String),
}

impl OutputError {
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            OutputError::Denied { .. } => FailureKind::PermissionError,
            OutputError::Unavailable { .. } => FailureKind::SystemUnavailable,
            // CodePipeline handed over a job it cannot have meant: nothing
            // the action's configuration could fix.
            OutputError::NoLocation { .. }
            | OutputError::NoCredentials
            | OutputError::Refused { .. }
            | OutputError::Zip(_) => FailureKind::JobFailed,
        }
    }
}

/// Where and how the output artifact is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTarget {
    pub bucket: String,
    pub key: String,
    /// The job's `encryptionKey` id (a KMS key id, ARN or alias), if any.
    pub kms_key: Option<String>,
}

impl OutputTarget {
    /// `None` when the action declares no output artifact. Only the first is
    /// used: the action type allows at most one.
    pub fn of(job: &JobInfo) -> Result<Option<OutputTarget>, OutputError> {
        let Some(art) = job.output_artifacts.first() else {
            return Ok(None);
        };
        match (&art.bucket, &art.key) {
            (Some(b), Some(k)) if !b.is_empty() && !k.is_empty() => Ok(Some(OutputTarget {
                bucket: b.clone(),
                key: k.clone(),
                kms_key: job.encryption_key.clone().filter(|k| !k.is_empty()),
            })),
            _ => Err(OutputError::NoLocation {
                name: art.name.clone(),
            }),
        }
    }
}

/// Zips `files` (name, contents), in the order given. Deflate keeps the
/// SBOM and the JSON reports small; the timestamps are fixed so the same
/// reports always make the same bytes.
pub fn zip<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<u8>, OutputError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644)
        .last_modified_time(zip::DateTime::default());
    for (name, body) in files {
        z.start_file(name, opts)
            .map_err(|e| OutputError::Zip(format!("{name}: {e}")))?;
        z.write_all(body)
            .map_err(|e| OutputError::Zip(format!("{name}: {e}")))?;
    }
    z.finish().map_err(|e| OutputError::Zip(e.to_string()))?;
    Ok(buf.into_inner())
}

/// Uploads the zip with the job's credentials.
pub async fn upload(
    sdk: &aws_config::SdkConfig,
    creds: &ArtifactCredentials,
    force_path_style: bool,
    target: &OutputTarget,
    body: Vec<u8>,
) -> Result<(), OutputError> {
    let client = job_s3_client(sdk, creds, force_path_style);
    let mut put = client
        .put_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .content_type("application/zip")
        .body(body.into());
    put = match &target.kms_key {
        Some(key) => put
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(key),
        None => put.server_side_encryption(ServerSideEncryption::Aes256),
    };
    put.send().await.map(|_| ()).map_err(|e| {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let (bucket, key) = (target.bucket.clone(), target.key.clone());
        let message = crate::inspector::describe(&e);
        match status {
            Some(403) => OutputError::Denied {
                bucket,
                key,
                message,
                kms: if target.kms_key.is_some() {
                    " and its KMS key"
                } else {
                    ""
                },
            },
            Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => OutputError::Refused {
                bucket,
                key,
                message,
            },
            // 5xx, throttling, timeouts and connection failures, after the
            // SDK's own retries.
            _ => OutputError::Unavailable {
                bucket,
                key,
                message,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Artifact;
    use std::io::Read as _;

    fn job(outputs: Vec<Artifact>, key: Option<&str>) -> JobInfo {
        JobInfo {
            output_artifacts: outputs,
            encryption_key: key.map(str::to_owned),
            ..JobInfo::test("job-1")
        }
    }

    #[test]
    fn target_from_the_first_output_artifact_with_the_job_key() {
        let art = |n: &str, b: Option<&str>, k: Option<&str>| Artifact {
            name: n.into(),
            bucket: b.map(str::to_owned),
            key: k.map(str::to_owned),
        };
        assert_eq!(OutputTarget::of(&job(vec![], None)).unwrap(), None);
        let t = OutputTarget::of(&job(
            vec![
                art("ScanReport", Some("artifacts"), Some("p/ScanRepor/x.zip")),
                art("Other", Some("b"), Some("k")),
            ],
            Some("arn:aws:kms:us-east-1:123456789012:key/k"),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(t.bucket, "artifacts");
        assert_eq!(t.key, "p/ScanRepor/x.zip");
        assert_eq!(
            t.kms_key.as_deref(),
            Some("arn:aws:kms:us-east-1:123456789012:key/k")
        );
        let e = OutputTarget::of(&job(vec![art("ScanReport", None, None)], None)).unwrap_err();
        assert!(
            e.to_string().contains("\"ScanReport\" has no S3 location"),
            "{e}"
        );
        assert_eq!(e.failure_kind(), FailureKind::JobFailed);
    }

    #[test]
    fn zip_round_trips_every_file_in_order() {
        let sbom = br#"{"bomFormat":"CycloneDX"}"#.repeat(100);
        let z = zip([
            ("sbom.cdx.json", sbom.as_slice()),
            ("report.md", b"# scangate\n".as_slice()),
            ("empty.json", b"".as_slice()),
        ])
        .unwrap();
        assert!(z.len() < sbom.len(), "deflated");
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(&z)).unwrap();
        assert_eq!(a.len(), 3);
        let mut text = Vec::new();
        a.by_name("sbom.cdx.json")
            .unwrap()
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, sbom);
        assert_eq!(a.by_index(1).unwrap().name().unwrap(), "report.md");
        // Same input, same bytes.
        assert_eq!(
            z,
            zip([
                ("sbom.cdx.json", sbom.as_slice()),
                ("report.md", b"# scangate\n".as_slice()),
                ("empty.json", b"".as_slice()),
            ])
            .unwrap()
        );
    }

    #[test]
    fn denied_is_a_permission_error_that_names_the_kms_key() {
        let e = OutputError::Denied {
            bucket: "b".into(),
            key: "k".into(),
            message: "AccessDenied".into(),
            kms: " and its KMS key",
        };
        assert_eq!(e.failure_kind(), FailureKind::PermissionError);
        assert!(
            e.to_string().contains("artifact bucket and its KMS key"),
            "{e}"
        );
    }
}
