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

    /// A failure after which the call may or may not have taken effect: a
    /// timeout, a reset connection, a 5xx. A throttled call did not.
    pub fn ambiguous(&self) -> bool {
        matches!(self, ApiError::Other(_))
    }

    /// CodePipeline's definitive word that the job takes no result from us
    /// (any more): it has one, timed out, or was never ours.
    pub fn job_is_closed(&self) -> bool {
        matches!(self, ApiError::InvalidState(_) | ApiError::Lost(_))
    }
}

/// How long a job's result is retried before the worker gives up its slot
/// and leaves the result to the pending store (DESIGN.md: a result lost to
/// throttling would leave an acknowledged job without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultRetry {
    /// All tries of one result together.
    pub total: Duration,
    /// The longest wait between two tries (before jitter).
    pub max_delay: Duration,
}

impl Default for ResultRetry {
    fn default() -> Self {
        ResultRetry {
            total: Duration::from_secs(10 * 60),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// What the recheck after an ambiguous `AcknowledgeJob` learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCheck {
    /// CodePipeline says InProgress under our nonce: the job is ours.
    Ours,
    /// Gone, another nonce, or not InProgress: not ours to answer.
    NotOurs,
    /// CodePipeline did not answer within the budget.
    Unknown,
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

    /// After an `AcknowledgeJob` whose answer was lost, asks CodePipeline
    /// whether the job became ours. `JobDetails` carries no status, so
    /// `GetJobDetails` only tells a vanished job apart; the status comes
    /// from acknowledging again with the same nonce, which changes nothing
    /// for a job already InProgress and is how CodePipeline reports it.
    pub async fn recheck_acknowledged(
        &self,
        job_id: &str,
        nonce: &str,
        budget: Duration,
    ) -> AckCheck {
        let deadline = tokio::time::Instant::now() + budget;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let answer = match self
                .client
                .get_job_details()
                .job_id(job_id)
                .send()
                .await
                .map_err(classify)
            {
                Err(e) => Err(e),
                Ok(_) => self.acknowledge_once(job_id, nonce).await,
            };
            match answer {
                Ok(true) => return AckCheck::Ours,
                Ok(false) => return AckCheck::NotOurs,
                Err(e) if e.job_is_closed() => return AckCheck::NotOurs,
                Err(e) if e.retryable() => {
                    let wait = backoff(attempt);
                    if tokio::time::Instant::now() + wait >= deadline {
                        tracing::warn!(error = %e, attempt, "the acknowledgement's fate is still unknown");
                        return AckCheck::Unknown;
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot recheck the acknowledgement");
                    return AckCheck::Unknown;
                }
            }
        }
    }

    async fn acknowledge_once(&self, job_id: &str, nonce: &str) -> Result<bool, ApiError> {
        let out = self
            .client
            .acknowledge_job()
            .job_id(job_id)
            .nonce(nonce)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.status() == Some(&JobStatus::InProgress))
    }

    /// Sends the job's one result, retrying throttling and failures with
    /// capped, jittered backoff for up to `retry.total`. A lost answer is
    /// retried; if the retry then meets InvalidJobStateException, the first
    /// call went through. `Err` with [`ApiError::job_is_closed`] means the
    /// job takes no result from us; any other `Err` leaves the result
    /// unsent (the caller keeps it pending).
    pub async fn put_result(
        &self,
        job_id: &str,
        outcome: &Outcome,
        retry: ResultRetry,
    ) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + retry.total;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.put_result_once(job_id, outcome).await {
                Ok(()) => return Ok(()),
                Err(ApiError::InvalidState(m)) if attempt > 1 => {
                    tracing::info!(message = %m, "result already recorded by an earlier attempt");
                    return Ok(());
                }
                Err(e) if e.retryable() => {
                    let wait = capped_backoff(attempt, retry.max_delay);
                    if tokio::time::Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    if attempt <= 3 || attempt.is_power_of_two() {
                        tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "job result call failed, retrying");
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn put_result_once(&self, job_id: &str, outcome: &Outcome) -> Result<(), ApiError> {
        match outcome {
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

/// [`backoff`] with its cap lowered or raised to `max` (before jitter),
/// jittered over the upper half so that many workers throttled together
/// do not retry together.
pub fn capped_backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    base.min(max).mul_f64(0.5 + rand::random::<f64>() * 0.5)
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
