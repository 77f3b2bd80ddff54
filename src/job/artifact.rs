//! The image reference from the input artifact, when `ImageUrl` is not set:
//! `imageDetail.json` (ECR source / CodeBuild) or `imagedefinitions.json`
//! (ECS deploy convention), inside the artifact zip in the pipeline's
//! artifact bucket, read with the job's own short-lived credentials.

use std::io::Read as _;

use aws_sdk_s3::config::Credentials;

use super::{ArtifactCredentials, JobInfo};

/// The artifact zip is small; a bound keeps a hostile one from eating memory.
const MAX_ARTIFACT_BYTES: u64 = 64 * 1024 * 1024;
const MAX_ENTRY_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("the job's input artifact has no S3 location")]
    NoLocation,
    #[error("the job carries no artifact credentials to read its input artifact")]
    NoCredentials,
    #[error("reading the input artifact s3://{bucket}/{key} was denied: {message}")]
    Denied {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("reading the input artifact s3://{bucket}/{key} failed: {message}")]
    Unavailable {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("the input artifact is not a zip file: {0}")]
    NotZip(String),
    #[error("the input artifact is larger than {MAX_ARTIFACT_BYTES} bytes")]
    TooLarge,
    #[error(
        "the input artifact has neither imageDetail.json nor imagedefinitions.json: set ImageUrl, or export the image from the build stage"
    )]
    NoImageFile,
    #[error("{file} in the input artifact is not valid: {reason}")]
    BadImageFile { file: &'static str, reason: String },
    #[error("{path} is not in the input artifact (it holds: {listing})")]
    MissingFile { path: String, listing: String },
    #[error("{path} in the input artifact cannot be read: {reason}")]
    UnreadableFile { path: String, reason: String },
}

impl ArtifactError {
    pub fn is_permission(&self) -> bool {
        matches!(self, ArtifactError::Denied { .. })
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, ArtifactError::Unavailable { .. })
    }
}

/// An S3 client that acts as the job: CodePipeline's short-lived artifact
/// credentials, not the worker's role, so a worker can only reach the
/// artifacts of the jobs it holds.
pub fn job_s3_client(
    sdk: &aws_config::SdkConfig,
    creds: &ArtifactCredentials,
    force_path_style: bool,
) -> aws_sdk_s3::Client {
    let ArtifactCredentials {
        access_key_id,
        secret_access_key,
        session_token,
    } = creds.clone();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .credentials_provider(Credentials::new(
            access_key_id,
            secret_access_key,
            Some(session_token),
            None,
            "codepipeline-job",
        ))
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Downloads the first input artifact with `creds` (the job's artifact
/// credentials, refreshed by the caller when old; `None`: the job has none).
pub async fn download(
    sdk: &aws_config::SdkConfig,
    job: &JobInfo,
    creds: Option<&ArtifactCredentials>,
    force_path_style: bool,
) -> Result<Vec<u8>, ArtifactError> {
    let art = job
        .input_artifacts
        .first()
        .ok_or(ArtifactError::NoLocation)?;
    let (Some(bucket), Some(key)) = (&art.bucket, &art.key) else {
        return Err(ArtifactError::NoLocation);
    };
    let client = job_s3_client(
        sdk,
        creds.ok_or(ArtifactError::NoCredentials)?,
        force_path_style,
    );
    let err = |message: String, denied: bool| {
        let (bucket, key) = (bucket.clone(), key.clone());
        if denied {
            ArtifactError::Denied {
                bucket,
                key,
                message,
            }
        } else {
            ArtifactError::Unavailable {
                bucket,
                key,
                message,
            }
        }
    };
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            let denied = e.raw_response().is_some_and(|r| r.status().as_u16() == 403);
            err(crate::inspector::describe(&e), denied)
        })?;
    if out.content_length().unwrap_or(0) as u64 > MAX_ARTIFACT_BYTES {
        return Err(ArtifactError::TooLarge);
    }
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| err(e.to_string(), false))?;
    Ok(body.to_vec())
}

/// Finds the image reference in an artifact zip.
pub fn image_from_zip(bytes: &[u8]) -> Result<String, ArtifactError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ArtifactError::NotZip(e.to_string()))?;
    for (file, parse) in [
        (
            "imageDetail.json",
            parse_image_detail as fn(&str) -> Result<String, String>,
        ),
        ("imagedefinitions.json", parse_image_definitions),
    ] {
        let Some(idx) = (0..zip.len()).find(|i| {
            zip.name_for_index(*i)
                .and_then(|n| n.ok())
                .is_some_and(|n| n.rsplit('/').next() == Some(file))
        }) else {
            continue;
        };
        let mut entry = zip
            .by_index(idx)
            .map_err(|e| ArtifactError::NotZip(e.to_string()))?;
        let mut text = String::new();
        (&mut entry)
            .take(MAX_ENTRY_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| ArtifactError::BadImageFile {
                file,
                reason: e.to_string(),
            })?;
        return parse(&text).map_err(|reason| ArtifactError::BadImageFile { file, reason });
    }
    Err(ArtifactError::NoImageFile)
}

/// Reads the text file at `path` inside an artifact zip (a leading `./` or
/// `/` is ignored; the match is otherwise exact). At most 1 MiB.
pub fn file_from_zip(bytes: &[u8], path: &str) -> Result<String, ArtifactError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ArtifactError::NotZip(e.to_string()))?;
    let norm = |p: &str| {
        p.trim_start_matches("./")
            .trim_start_matches('/')
            .to_owned()
    };
    let want = norm(path);
    let names: Vec<String> = (0..zip.len())
        .filter_map(|i| {
            zip.name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.to_string())
        })
        .collect();
    let Some(idx) = names.iter().position(|n| norm(n) == want) else {
        const SHOWN: usize = 10;
        let mut listing = names
            .iter()
            .filter(|n| !n.ends_with('/'))
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if names.len() > SHOWN {
            listing.push_str(", …");
        }
        if listing.is_empty() {
            listing = "no files".into();
        }
        return Err(ArtifactError::MissingFile {
            path: path.to_owned(),
            listing,
        });
    };
    let unreadable = |reason: String| ArtifactError::UnreadableFile {
        path: path.to_owned(),
        reason,
    };
    let mut entry = zip.by_index(idx).map_err(|e| unreadable(e.to_string()))?;
    if entry.size() > MAX_ENTRY_BYTES {
        return Err(unreadable(format!(
            "it is larger than {MAX_ENTRY_BYTES} bytes"
        )));
    }
    let mut text = String::new();
    (&mut entry)
        .take(MAX_ENTRY_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(text)
}

fn parse_image_detail(text: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    v["ImageURI"]
        .as_str()
        .or_else(|| v["imageUri"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| "no ImageURI field".to_owned())
}

fn parse_image_definitions(text: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let list = v.as_array().ok_or("expected a JSON list")?;
    match list.as_slice() {
        [one] => one["imageUri"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no imageUri field".to_owned()),
        [] => Err("the list is empty".to_owned()),
        _ => Err("it names several images; set ImageUrl to choose one".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn zip_with(name: &str, body: &str) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(body.as_bytes()).unwrap();
        z.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn image_detail() {
        let z = zip_with(
            "imageDetail.json",
            r#"{"ImageSizeInBytes":"1","ImageURI":"123.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:ab"}"#,
        );
        assert_eq!(
            image_from_zip(&z).unwrap(),
            "123.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:ab"
        );
    }

    #[test]
    fn image_definitions() {
        let z = zip_with(
            "out/imagedefinitions.json",
            r#"[{"name":"web","imageUri":"reg/app:1"}]"#,
        );
        assert_eq!(image_from_zip(&z).unwrap(), "reg/app:1");
        let z = zip_with(
            "imagedefinitions.json",
            r#"[{"name":"a","imageUri":"r/a:1"},{"name":"b","imageUri":"r/b:1"}]"#,
        );
        assert!(
            image_from_zip(&z)
                .unwrap_err()
                .to_string()
                .contains("several")
        );
    }

    #[test]
    fn named_files() {
        let z = zip_with("policy/scangate.yaml", "version: 1\n");
        assert_eq!(
            file_from_zip(&z, "policy/scangate.yaml").unwrap(),
            "version: 1\n"
        );
        assert_eq!(
            file_from_zip(&z, "./policy/scangate.yaml").unwrap(),
            "version: 1\n"
        );
        let e = file_from_zip(&z, "scangate.yaml").unwrap_err().to_string();
        assert!(
            e.contains("scangate.yaml is not in the input artifact"),
            "{e}"
        );
        assert!(e.contains("policy/scangate.yaml"), "{e}");
        assert!(matches!(
            file_from_zip(b"nope", "x"),
            Err(ArtifactError::NotZip(_))
        ));
    }

    #[test]
    fn garbage() {
        assert!(matches!(
            image_from_zip(b"not a zip"),
            Err(ArtifactError::NotZip(_))
        ));
        let z = zip_with("README", "hi");
        assert!(matches!(
            image_from_zip(&z),
            Err(ArtifactError::NoImageFile)
        ));
        let z = zip_with("imageDetail.json", "{");
        assert!(
            image_from_zip(&z)
                .unwrap_err()
                .to_string()
                .contains("imageDetail.json")
        );
    }
}
