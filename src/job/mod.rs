//! One CodePipeline job: what it asks for, and the one result it gets.

pub mod artifact;
pub mod cfg;
pub mod outcome;
pub mod output;

use std::collections::BTreeMap;
use std::time::Instant;

pub use cfg::{ConfigError, JobConfig};
pub use outcome::{FailureKind, Outcome};

/// The parts of a CodePipeline `Job` the worker uses, copied out of the SDK
/// type so that nothing downstream can `{:?}`-print the artifact credentials
/// or the configuration values the SDK's Debug would show.
#[derive(Clone)]
pub struct JobInfo {
    pub id: String,
    pub nonce: String,
    pub account_id: Option<String>,
    pub pipeline: String,
    pub stage: String,
    pub action: String,
    pub pipeline_execution_id: Option<String>,
    pub action_execution_id: Option<String>,
    pub configuration: BTreeMap<String, String>,
    pub input_artifacts: Vec<Artifact>,
    pub output_artifacts: Vec<Artifact>,
    pub credentials: Option<ArtifactCredentials>,
    /// The id of the KMS key that encrypts the pipeline's artifacts.
    pub encryption_key: Option<String>,
    /// When PollForJobs handed the job (and its credentials) over: artifact
    /// credentials live about 15 minutes from then.
    pub received: Instant,
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
}

#[derive(Clone)]
pub struct ArtifactCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl ArtifactCredentials {
    pub fn from_sdk(c: &aws_sdk_codepipeline::types::AwsSessionCredentials) -> Self {
        ArtifactCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().to_owned(),
        }
    }
}

impl std::fmt::Debug for ArtifactCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArtifactCredentials(<redacted>)")
    }
}

impl std::fmt::Debug for JobInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobInfo")
            .field("id", &self.id)
            .field("pipeline", &self.pipeline)
            .field("stage", &self.stage)
            .field("action", &self.action)
            .field("pipeline_execution_id", &self.pipeline_execution_id)
            .field(
                "configuration_keys",
                &self.configuration.keys().collect::<Vec<_>>(),
            )
            .field("input_artifacts", &self.input_artifacts)
            .field("output_artifacts", &self.output_artifacts)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Where a job runs, from its job data: the same for a polled job and for
/// GetJobDetails' answer.
pub struct Place {
    pub pipeline: String,
    pub stage: String,
    pub action: String,
    pub pipeline_execution_id: Option<String>,
}

impl Place {
    pub fn of(data: Option<&aws_sdk_codepipeline::types::JobData>) -> Place {
        let ctx = data.and_then(|d| d.pipeline_context());
        Place {
            pipeline: ctx
                .and_then(|c| c.pipeline_name())
                .unwrap_or_default()
                .to_owned(),
            stage: ctx
                .and_then(|c| c.stage())
                .and_then(|s| s.name())
                .unwrap_or_default()
                .to_owned(),
            action: ctx
                .and_then(|c| c.action())
                .and_then(|a| a.name())
                .unwrap_or_default()
                .to_owned(),
            pipeline_execution_id: ctx
                .and_then(|c| c.pipeline_execution_id())
                .map(str::to_owned),
        }
    }
}

impl JobInfo {
    pub fn from_sdk(job: &aws_sdk_codepipeline::types::Job) -> JobInfo {
        let data = job.data();
        let ctx = data.and_then(|d| d.pipeline_context());
        let arts = |list: &[aws_sdk_codepipeline::types::Artifact]| {
            list.iter()
                .map(|a| {
                    let s3 = a.location().and_then(|l| l.s3_location());
                    Artifact {
                        name: a.name().unwrap_or_default().to_owned(),
                        bucket: s3.map(|s| s.bucket_name().to_owned()),
                        key: s3.map(|s| s.object_key().to_owned()),
                    }
                })
                .collect::<Vec<_>>()
        };
        let place = Place::of(data);
        JobInfo {
            id: job.id().unwrap_or_default().to_owned(),
            nonce: job.nonce().unwrap_or_default().to_owned(),
            account_id: job.account_id().map(str::to_owned),
            pipeline: place.pipeline,
            stage: place.stage,
            action: place.action,
            pipeline_execution_id: place.pipeline_execution_id,
            action_execution_id: ctx
                .and_then(|c| c.action())
                .and_then(|a| a.action_execution_id())
                .map(str::to_owned),
            configuration: data
                .and_then(|d| d.action_configuration())
                .and_then(|c| c.configuration())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            input_artifacts: arts(data.map(|d| d.input_artifacts()).unwrap_or_default()),
            output_artifacts: arts(data.map(|d| d.output_artifacts()).unwrap_or_default()),
            credentials: data
                .and_then(|d| d.artifact_credentials())
                .map(ArtifactCredentials::from_sdk),
            encryption_key: data
                .and_then(|d| d.encryption_key())
                .map(|k| k.id().to_owned()),
            received: Instant::now(),
        }
    }

    /// A job with nothing set but its id.
    #[cfg(test)]
    pub fn test(id: &str) -> JobInfo {
        JobInfo {
            id: id.into(),
            nonce: "n".into(),
            account_id: None,
            pipeline: "p".into(),
            stage: "s".into(),
            action: "a".into(),
            pipeline_execution_id: None,
            action_execution_id: None,
            configuration: BTreeMap::new(),
            input_artifacts: vec![],
            output_artifacts: vec![],
            credentials: None,
            encryption_key: None,
            received: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets_or_config_values() {
        let j = JobInfo {
            configuration: [("Token".to_string(), "hunter2".to_string())].into(),
            credentials: Some(ArtifactCredentials {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: "s3cr3t".into(),
                session_token: "tok".into(),
            }),
            ..JobInfo::test("j")
        };
        let d = format!("{j:?}");
        for secret in ["hunter2", "AKIAEXAMPLE", "s3cr3t", "tok\""] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("Token"));
    }
}
