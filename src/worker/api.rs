//! The CodePipeline job-worker calls, each with the retry behaviour its
//! failure modes call for.

use std::time::Duration;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionOwner, ActionTypeId, ExecutionDetails, FailureDetails, FailureType, Job,
    JobStatus,
};

use crate::inspector::describe;
use crate::job::{ArtifactCredentials, FailureKind, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "action type Custom/{category}/{provider}/{version} was not found in region {region}: create it (the CDK stack does) or fix SCANGATE_PROVIDER / SCANGATE_CATEGORY / SCANGATE_ACTION_VERSION / AWS_REGION"
    )]
    ActionTypeNotFound {
        category: String,
        provider: String,
        version: String,
        region: String,
    },
    #[error("CodePipeline is throttling: {0}")]
    Throttled(String),
    #[error("the job was taken by another worker or no longer exists: {0}")]
    Lost(String),
    #[error("the job already has a result: {0}")]
    InvalidState(String),
    #[error("CodePipeline access denied: {0}")]
    AccessDenied(String),
    #[error("CodePipeline call failed: {0}")]
    Other(String),
}

impl ApiError {
    fn retryable(&self) -> bool {
        matches!(self, ApiError::Throttled(_) | ApiError::Other(_))
    }
}

fn classify<E, R>(e: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let msg = format!("{code}: {}", se.err().message().unwrap_or_default());
            match code {
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded" => ApiError::Throttled(msg),
                "InvalidNonceException" | "JobNotFoundException" => ApiError::Lost(msg),
                "InvalidJobStateException" => ApiError::InvalidState(msg),
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException" => ApiError::AccessDenied(msg),
                _ => ApiError::Other(msg),
            }
        }
        _ => ApiError::Other(describe(&e)),
    }
}

#[derive(Clone)]
pub struct Api {
    pub client: Client,
    pub type_id: ActionTypeId,
    pub region: String,
}

impl Api {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        category: &str,
        provider: &str,
        version: &str,
    ) -> Result<Api, String> {
        // Our own retry loops decide what is safe to repeat: a blind SDK
        // retry of a result call whose answer was lost would turn a recorded
        // result into InvalidJobStateException.
        let conf = aws_sdk_codepipeline::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        let type_id = ActionTypeId::builder()
            .category(ActionCategory::from(category))
            .owner(ActionOwner::Custom)
            .provider(provider)
            .version(version)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Api {
            client: Client::from_conf(conf),
            type_id,
            region: sdk
                .region()
                .map_or_else(|| "(no region set)".to_owned(), |r| r.to_string()),
        })
    }

    pub async fn poll(&self, max: u32) -> Result<Vec<Job>, ApiError> {
        match self
            .client
            .poll_for_jobs()
            .action_type_id(self.type_id.clone())
            .max_batch_size(max.clamp(1, 100) as i32)
            .send()
            .await
        {
            Ok(out) => Ok(out.jobs().to_vec()),
            Err(e) => {
                if let SdkError::ServiceError(se) = &e
                    && se.err().code() == Some("ActionTypeNotFoundException")
                {
                    return Err(ApiError::ActionTypeNotFound {
                        category: self.type_id.category().as_str().to_owned(),
                        provider: self.type_id.provider().to_owned(),
                        version: self.type_id.version().to_owned(),
                        region: self.region.clone(),
                    });
                }
                Err(classify(e))
            }
        }
    }

    /// Claims a job. `Ok(true)` only when CodePipeline says InProgress: from
    /// then on the job is ours and owes exactly one result.
    pub async fn acknowledge(&self, job_id: &str, nonce: &str) -> Result<bool, ApiError> {
        let out = retry("AcknowledgeJob", 4, || async {
            self.client
                .acknowledge_job()
                .job_id(job_id)
                .nonce(nonce)
                .send()
                .await
                .map_err(classify)
        })
        .await?;
        Ok(out.status() == Some(&JobStatus::InProgress))
    }

    /// Fresh artifact credentials for a job we hold (GetJobDetails):
    /// those PollForJobs gave expire about 15 minutes after it answered.
    pub async fn job_credentials(
        &self,
        job_id: &str,
    ) -> Result<Option<ArtifactCredentials>, ApiError> {
        let out = retry("GetJobDetails", 3, || async {
            self.client
                .get_job_details()
                .job_id(job_id)
                .send()
                .await
                .map_err(classify)
        })
        .await?;
        Ok(out
            .job_details()
            .and_then(|d| d.data())
            .and_then(|d| d.artifact_credentials())
            .map(ArtifactCredentials::from_sdk))
    }

    /// Sends the job's one result. A lost answer is retried; if the retry
    /// then meets InvalidJobStateException, the first call went through.
    pub async fn put_result(&self, job_id: &str, outcome: &Outcome) -> Result<(), ApiError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = match outcome {
                Outcome::Success { summary, variables } => self
                    .client
                    .put_job_success_result()
                    .job_id(job_id)
                    .execution_details(
                        ExecutionDetails::builder()
                            .summary(summary)
                            .external_execution_id(job_id)
                            .percent_complete(100)
                            .build(),
                    )
                    .set_output_variables(Some(
                        variables
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
                Outcome::Failure { kind, message } => self
                    .client
                    .put_job_failure_result()
                    .job_id(job_id)
                    .failure_details(
                        FailureDetails::builder()
                            .r#type(failure_type(*kind))
                            .message(message)
                            .external_execution_id(job_id)
                            .build()
                            .map_err(|e| ApiError::Other(e.to_string()))?,
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify),
            };
            match res {
                Ok(()) => return Ok(()),
                Err(ApiError::InvalidState(m)) if attempt > 1 => {
                    tracing::info!(message = %m, "result already recorded by an earlier attempt");
                    return Ok(());
                }
                Err(e) if e.retryable() && attempt < 6 => {
                    let wait = backoff(attempt);
                    tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "job result call failed, retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

pub fn failure_type(k: FailureKind) -> FailureType {
    match k {
        FailureKind::JobFailed => FailureType::JobFailed,
        FailureKind::ConfigurationError => FailureType::ConfigurationError,
        FailureKind::PermissionError => FailureType::PermissionError,
        FailureKind::SystemUnavailable => FailureType::SystemUnavailable,
    }
}

/// Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s, … capped at 20 s.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    base.min(Duration::from_secs(20))
        .mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

async fn retry<T, F, Fut>(what: &str, max: u32, mut f: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if e.retryable() && attempt < max => {
                let wait = backoff(attempt);
                tracing::warn!(call = what, error = %e, attempt, "retrying");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}
