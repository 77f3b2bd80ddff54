//! CodePipeline emulator: the job-worker side of the API (awsJson1_1) that a
//! custom action's worker uses, and an admin side that plays the pipeline.
//!
//! Job life: `Created` → `PollForJobs` hands it out with a fresh nonce
//! (`Dispatched`) → `AcknowledgeJob` with that nonce (`InProgress`) →
//! `PutJobSuccessResult` (`Succeeded`) or `PutJobFailureResult` (`Failed`).
//! A dispatched job not acknowledged within `dispatch_timeout` goes back to
//! `Created` and its nonce stops working, so another worker can take it.
//! Inputs are checked against the botocore model's shapes (required members,
//! lengths, patterns, enums) and errors carry the model's shape names.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::faults::{
    ConnectionAbort, FaultAction, FaultError, FaultRule, Faults, abort_connection,
};
use crate::{CallLog, CallRecord, now_rfc3339};

/// `X-Amz-Target` prefix of every operation.
pub const TARGET_PREFIX: &str = "CodePipeline_20150709.";
/// Largest `outputVariables` map, as its JSON text, that PutJobSuccessResult
/// takes (AWS: 122,880 characters for an action's output variables).
pub const OUTPUT_VARIABLES_MAX_SERIALIZED: usize = 122_880;
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

const CATEGORIES: &[&str] = &[
    "Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute",
];
const OWNERS: &[&str] = &["AWS", "ThirdParty", "Custom"];
const FAILURE_TYPES: &[&str] = &[
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
];

// ---------------------------------------------------------------------------
// shapes

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionTypeId {
    pub category: String,
    pub owner: String,
    pub provider: String,
    pub version: String,
}

impl ActionTypeId {
    pub fn new(
        category: impl Into<String>,
        owner: impl Into<String>,
        provider: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        ActionTypeId {
            category: category.into(),
            owner: owner.into(),
            provider: provider.into(),
            version: version.into(),
        }
    }

    /// scangate's default action type: `Test` / `Custom` / `ScanGate` / `1`.
    pub fn scangate() -> Self {
        ActionTypeId::new("Test", "Custom", "ScanGate", "1")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    Created,
    Queued,
    Dispatched,
    InProgress,
    TimedOut,
    Succeeded,
    Failed,
}

impl JobStatus {
    /// No result can be put any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Created => "Created",
            JobStatus::Queued => "Queued",
            JobStatus::Dispatched => "Dispatched",
            JobStatus::InProgress => "InProgress",
            JobStatus::TimedOut => "TimedOut",
            JobStatus::Succeeded => "Succeeded",
            JobStatus::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureType {
    JobFailed,
    ConfigurationError,
    PermissionError,
    RevisionOutOfSync,
    RevisionUnavailable,
    SystemUnavailable,
}

impl FailureType {
    fn parse(s: &str) -> Option<FailureType> {
        Some(match s {
            "JobFailed" => FailureType::JobFailed,
            "ConfigurationError" => FailureType::ConfigurationError,
            "PermissionError" => FailureType::PermissionError,
            "RevisionOutOfSync" => FailureType::RevisionOutOfSync,
            "RevisionUnavailable" => FailureType::RevisionUnavailable,
            "SystemUnavailable" => FailureType::SystemUnavailable,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3ArtifactLocation {
    pub bucket_name: String,
    pub object_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    #[serde(rename = "type")]
    pub location_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_location: Option<S3ArtifactLocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ArtifactLocation>,
}

impl Artifact {
    /// An artifact in S3, as CodePipeline hands them to custom actions.
    pub fn s3(name: impl Into<String>, bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Artifact {
            name: name.into(),
            revision: None,
            location: Some(ArtifactLocation {
                location_type: "S3".into(),
                s3_location: Some(S3ArtifactLocation {
                    bucket_name: bucket.into(),
                    object_key: key.into(),
                }),
            }),
        }
    }
}

/// Temporary credentials for the artifact bucket (sensitive in the model:
/// never printed, never listed by the admin API).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsSessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl std::fmt::Debug for AwsSessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsSessionCredentials(*** redacted ***)")
    }
}

impl AwsSessionCredentials {
    fn generate() -> Self {
        let hex = |n: usize| -> String {
            let mut s = String::new();
            while s.len() < n {
                s.push_str(&uuid::Uuid::new_v4().simple().to_string());
            }
            s.truncate(n);
            s
        };
        AwsSessionCredentials {
            access_key_id: format!("ASIA{}", hex(16).to_ascii_uppercase()),
            secret_access_key: hex(40),
            session_token: hex(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionKey {
    pub id: String,
    #[serde(rename = "type")]
    pub key_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    #[serde(rename = "type")]
    pub failure_type: FailureType,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_execution_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessResult {
    pub execution_details: Option<ExecutionDetails>,
    pub output_variables: BTreeMap<String, String>,
    pub current_revision: Option<Value>,
    pub continuation_token: Option<String>,
}

/// The result a worker put for a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum JobResult {
    Success(SuccessResult),
    Failure(FailureDetails),
}

impl JobResult {
    pub fn success(&self) -> Option<&SuccessResult> {
        match self {
            JobResult::Success(s) => Some(s),
            JobResult::Failure(_) => None,
        }
    }

    pub fn failure(&self) -> Option<&FailureDetails> {
        match self {
            JobResult::Failure(f) => Some(f),
            JobResult::Success(_) => None,
        }
    }
}

/// A job to enqueue, as the pipeline would create it. JSON (admin API):
/// `{"configuration": {"ImageUrl": "…"}, "pipelineName": "app", …}`; every
/// member is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NewJob {
    /// Default: the first registered action type. Unregistered types are
    /// registered, as creating a pipeline with them would.
    pub action_type_id: Option<ActionTypeId>,
    pub configuration: BTreeMap<String, String>,
    pub pipeline_name: String,
    pub stage_name: String,
    pub action_name: String,
    /// Default: a new UUID.
    pub pipeline_execution_id: Option<String>,
    pub input_artifacts: Vec<Artifact>,
    pub output_artifacts: Vec<Artifact>,
    /// Default: made-up credentials.
    pub artifact_credentials: Option<AwsSessionCredentials>,
    pub encryption_key: Option<EncryptionKey>,
}

impl Default for NewJob {
    fn default() -> Self {
        NewJob {
            action_type_id: None,
            configuration: BTreeMap::new(),
            pipeline_name: "scangate-demo".into(),
            stage_name: "Scan".into(),
            action_name: "ImageScan".into(),
            pipeline_execution_id: None,
            input_artifacts: Vec::new(),
            output_artifacts: Vec::new(),
            artifact_credentials: None,
            encryption_key: None,
        }
    }
}

impl NewJob {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configuration.insert(key.into(), value.into());
        self
    }

    pub fn pipeline(mut self, name: impl Into<String>) -> Self {
        self.pipeline_name = name.into();
        self
    }

    pub fn action_type(mut self, action_type: ActionTypeId) -> Self {
        self.action_type_id = Some(action_type);
        self
    }

    pub fn input_artifact(mut self, artifact: Artifact) -> Self {
        self.input_artifacts.push(artifact);
        self
    }

    pub fn output_artifact(mut self, artifact: Artifact) -> Self {
        self.output_artifacts.push(artifact);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    pub at: String,
    pub status: JobStatus,
}

/// A job as the admin API shows it (no credentials).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSnapshot {
    pub id: String,
    /// The nonce of the current dispatch; `None` before the first and after
    /// a dispatch expired.
    pub nonce: Option<String>,
    pub account_id: String,
    pub status: JobStatus,
    pub action_type_id: ActionTypeId,
    pub configuration: BTreeMap<String, String>,
    pub pipeline_name: String,
    pub stage_name: String,
    pub action_name: String,
    pub action_execution_id: String,
    pub pipeline_execution_id: String,
    pub pipeline_arn: String,
    pub input_artifacts: Vec<Artifact>,
    pub output_artifacts: Vec<Artifact>,
    pub continuation_token: Option<String>,
    /// The job whose success with a continuation token created this one.
    pub continued_from: Option<String>,
    /// How often PollForJobs handed it out.
    pub dispatch_count: u32,
    /// AcknowledgeJob calls naming it, rejected ones included.
    pub acknowledge_calls: u32,
    pub result: Option<JobResult>,
    /// PutJobSuccessResult / PutJobFailureResult calls naming it, rejected
    /// ones included.
    pub result_calls: u32,
    /// GetJobDetails calls naming it; each one issued new artifact
    /// credentials.
    pub get_job_details_calls: u32,
    pub history: Vec<StatusChange>,
    pub created_at: String,
}

#[derive(Debug, Clone)]
struct Job {
    view: JobSnapshot,
    /// The current artifact credentials, and every set issued, oldest first.
    credentials: AwsSessionCredentials,
    issued_credentials: Vec<AwsSessionCredentials>,
    encryption_key: Option<EncryptionKey>,
    dispatched_at: Option<Instant>,
    in_progress_since: Option<Instant>,
}

impl Job {
    fn set_status(&mut self, status: JobStatus) {
        self.view.status = status;
        self.view.history.push(StatusChange {
            at: now_rfc3339(),
            status,
        });
    }

    fn data(&self) -> Value {
        let v = &self.view;
        let mut data = json!({
            "actionTypeId": v.action_type_id,
            "actionConfiguration": { "configuration": v.configuration },
            "pipelineContext": {
                "pipelineName": v.pipeline_name,
                "stage": { "name": v.stage_name },
                "action": { "name": v.action_name, "actionExecutionId": v.action_execution_id },
                "pipelineArn": v.pipeline_arn,
                "pipelineExecutionId": v.pipeline_execution_id,
            },
            "inputArtifacts": v.input_artifacts,
            "outputArtifacts": v.output_artifacts,
            "artifactCredentials": self.credentials,
        });
        if let Some(token) = &v.continuation_token {
            data["continuationToken"] = json!(token);
        }
        if let Some(key) = &self.encryption_key {
            data["encryptionKey"] = json!(key);
        }
        data
    }
}

// ---------------------------------------------------------------------------
// errors

/// Error shapes the emulator answers with; the first six are the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Validation,
    ActionTypeNotFound,
    InvalidNonce,
    JobNotFound,
    InvalidJobState,
    OutputVariablesSizeExceeded,
    Throttling,
    AccessDenied,
    InternalFailure,
    UnknownOperation,
    Serialization,
}

impl ErrorCode {
    pub fn shape_name(self) -> &'static str {
        match self {
            ErrorCode::Validation => "ValidationException",
            ErrorCode::ActionTypeNotFound => "ActionTypeNotFoundException",
            ErrorCode::InvalidNonce => "InvalidNonceException",
            ErrorCode::JobNotFound => "JobNotFoundException",
            ErrorCode::InvalidJobState => "InvalidJobStateException",
            ErrorCode::OutputVariablesSizeExceeded => "OutputVariablesSizeExceededException",
            ErrorCode::Throttling => "ThrottlingException",
            ErrorCode::AccessDenied => "AccessDeniedException",
            ErrorCode::InternalFailure => "InternalFailure",
            ErrorCode::UnknownOperation => "UnknownOperationException",
            ErrorCode::Serialization => "SerializationException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.shape_name())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.code.status(),
            Json(json!({ "__type": self.code.shape_name(), "message": self.message })),
        )
            .into_response();
        response.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.code.shape_name()),
        );
        response
    }
}

// ---------------------------------------------------------------------------
// input checks, worded like the service's ValidationException messages

/// A pattern check and the pattern as the model writes it.
type Pattern = (fn(&str) -> bool, &'static str);

struct StrRule {
    required: bool,
    min: Option<usize>,
    max: Option<usize>,
    pattern: Option<Pattern>,
    one_of: Option<&'static [&'static str]>,
}

const fn rule(required: bool, min: Option<usize>, max: Option<usize>) -> StrRule {
    StrRule {
        required,
        min,
        max,
        pattern: None,
        one_of: None,
    }
}

fn is_job_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| {
            p.len() == n
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn is_name_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_variable_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'@' || b == b'_' || b == b'-')
}

const JOB_ID_PATTERN: &str = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

const JOB_ID: StrRule = StrRule {
    pattern: Some((is_job_id, JOB_ID_PATTERN)),
    ..rule(true, None, None)
};

fn shown(s: &str) -> String {
    const MAX: usize = 256;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

fn serialization(path: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Serialization,
        format!("Cannot deserialize '{path}': expected {expected}"),
    )
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| serialization(path, "a structure"))
}

#[derive(Default)]
struct Checks {
    errors: Vec<String>,
}

impl Checks {
    fn null(&mut self, path: &str) {
        self.errors.push(format!(
            "Value null at '{path}' failed to satisfy constraint: Member must not be null"
        ));
    }

    fn violation(&mut self, value: &str, path: &str, constraint: String) {
        self.errors.push(format!(
            "Value '{}' at '{path}' failed to satisfy constraint: {constraint}",
            shown(value)
        ));
    }

    fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        key: &str,
        path: &str,
        rule: &StrRule,
    ) -> Result<Option<&'a str>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if rule.required {
                    self.null(path);
                }
                Ok(None)
            }
            Some(Value::String(s)) => {
                self.check(s, path, rule);
                Ok(Some(s))
            }
            Some(_) => Err(serialization(path, "a string")),
        }
    }

    fn check(&mut self, s: &str, path: &str, rule: &StrRule) {
        let len = s.chars().count();
        if let Some(min) = rule.min
            && len < min
        {
            self.violation(
                s,
                path,
                format!("Member must have length greater than or equal to {min}"),
            );
        }
        if let Some(max) = rule.max
            && len > max
        {
            self.violation(
                s,
                path,
                format!("Member must have length less than or equal to {max}"),
            );
        }
        if let Some((matches, pattern)) = rule.pattern
            && !matches(s)
        {
            self.violation(
                s,
                path,
                format!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
        if let Some(values) = rule.one_of
            && !values.contains(&s)
        {
            self.violation(
                s,
                path,
                format!(
                    "Member must satisfy enum value set: [{}]",
                    values.join(", ")
                ),
            );
        }
    }

    fn integer(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let n = match obj.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| serialization(path, "an integer"))?,
        };
        if let Some(min) = min
            && n < min
        {
            self.violation(
                &n.to_string(),
                path,
                format!("Member must have value greater than or equal to {min}"),
            );
        }
        if let Some(max) = max
            && n > max
        {
            self.violation(
                &n.to_string(),
                path,
                format!("Member must have value less than or equal to {max}"),
            );
        }
        Ok(Some(n))
    }

    /// A structure member: `None` when absent (recorded if required).
    fn structure<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
    ) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.null(path);
                }
                Ok(None)
            }
            Some(v) => object(v, path).map(Some),
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.errors.len() {
            0 => Ok(()),
            n => Err(ApiError::new(
                ErrorCode::Validation,
                format!(
                    "{n} validation error{} detected: {}",
                    if n == 1 { "" } else { "s" },
                    self.errors.join("; ")
                ),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// the emulator

#[derive(Debug, Clone)]
pub struct CodePipelineOptions {
    pub account_id: String,
    pub region: String,
    /// Registered from the start.
    pub action_types: Vec<ActionTypeId>,
    /// How long a dispatched job waits for AcknowledgeJob before it can be
    /// handed out again.
    pub dispatch_timeout: Duration,
    /// How long a job may stay `InProgress` before it is `TimedOut`; `None`:
    /// forever.
    pub job_timeout: Option<Duration>,
    pub max_recorded_calls: usize,
}

impl Default for CodePipelineOptions {
    fn default() -> Self {
        CodePipelineOptions {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            action_types: vec![ActionTypeId::scangate()],
            dispatch_timeout: Duration::from_secs(60),
            job_timeout: None,
            max_recorded_calls: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CodePipelineEmulator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: CodePipelineOptions,
    state: Mutex<Store>,
    faults: Faults,
    calls: CallLog,
}

#[derive(Debug, Default)]
struct Store {
    action_types: Vec<ActionTypeId>,
    jobs: Vec<Job>,
    index: HashMap<String, usize>,
}

impl Store {
    fn job_mut(&mut self, id: &str) -> Result<&mut Job, ApiError> {
        match self.index.get(id) {
            Some(&i) => Ok(&mut self.jobs[i]),
            None => Err(ApiError::new(
                ErrorCode::JobNotFound,
                format!("Job {id} not found"),
            )),
        }
    }

    /// Time passes only when someone looks: expire dispatches and jobs.
    fn sweep(&mut self, opts: &CodePipelineOptions) {
        let now = Instant::now();
        for job in &mut self.jobs {
            match job.view.status {
                JobStatus::Dispatched
                    if job
                        .dispatched_at
                        .is_some_and(|t| now.duration_since(t) >= opts.dispatch_timeout) =>
                {
                    job.view.nonce = None;
                    job.dispatched_at = None;
                    job.set_status(JobStatus::Created);
                }
                JobStatus::InProgress
                    if opts
                        .job_timeout
                        .zip(job.in_progress_since)
                        .is_some_and(|(timeout, t)| now.duration_since(t) >= timeout) =>
                {
                    job.set_status(JobStatus::TimedOut);
                }
                _ => {}
            }
        }
    }

    fn insert(&mut self, job: Job) {
        self.index.insert(job.view.id.clone(), self.jobs.len());
        self.jobs.push(job);
    }
}

fn new_nonce() -> String {
    rand::random::<u64>().to_string()
}

impl CodePipelineEmulator {
    pub fn new(opts: CodePipelineOptions) -> Self {
        Self::with_faults(opts, Faults::new())
    }

    pub(crate) fn with_faults(opts: CodePipelineOptions, faults: Faults) -> Self {
        let state = Store {
            action_types: opts.action_types.clone(),
            ..Store::default()
        };
        CodePipelineEmulator {
            inner: Arc::new(Inner {
                calls: CallLog::new(opts.max_recorded_calls),
                opts,
                state: Mutex::new(state),
                faults,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Store> {
        // Every update is completed before a panic could occur, so a poisoned
        // lock still guards consistent data.
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sweep(&self.inner.opts);
        state
    }

    pub fn register_action_type(&self, action_type: ActionTypeId) {
        let mut state = self.state();
        if !state.action_types.contains(&action_type) {
            state.action_types.push(action_type);
        }
    }

    pub fn action_types(&self) -> Vec<ActionTypeId> {
        self.state().action_types.clone()
    }

    /// Create a job, as a pipeline execution reaching the action would.
    /// Returns its id.
    pub fn enqueue_job(&self, new: NewJob) -> String {
        let mut state = self.state();
        let action_type = new
            .action_type_id
            .or_else(|| state.action_types.first().cloned())
            .unwrap_or_else(ActionTypeId::scangate);
        if !state.action_types.contains(&action_type) {
            state.action_types.push(action_type.clone());
        }
        let opts = &self.inner.opts;
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_rfc3339();
        let credentials = new
            .artifact_credentials
            .unwrap_or_else(AwsSessionCredentials::generate);
        let job = Job {
            view: JobSnapshot {
                id: id.clone(),
                nonce: None,
                account_id: opts.account_id.clone(),
                status: JobStatus::Created,
                action_type_id: action_type,
                configuration: new.configuration,
                pipeline_arn: format!(
                    "arn:aws:codepipeline:{}:{}:{}",
                    opts.region, opts.account_id, new.pipeline_name
                ),
                pipeline_name: new.pipeline_name,
                stage_name: new.stage_name,
                action_name: new.action_name,
                action_execution_id: uuid::Uuid::new_v4().to_string(),
                pipeline_execution_id: new
                    .pipeline_execution_id
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                input_artifacts: new.input_artifacts,
                output_artifacts: new.output_artifacts,
                continuation_token: None,
                continued_from: None,
                dispatch_count: 0,
                acknowledge_calls: 0,
                result: None,
                result_calls: 0,
                get_job_details_calls: 0,
                history: vec![StatusChange {
                    at: now.clone(),
                    status: JobStatus::Created,
                }],
                created_at: now,
            },
            credentials: credentials.clone(),
            issued_credentials: vec![credentials],
            encryption_key: new.encryption_key,
            dispatched_at: None,
            in_progress_since: None,
        };
        state.insert(job);
        id
    }

    pub fn job(&self, id: &str) -> Option<JobSnapshot> {
        let state = self.state();
        state.index.get(id).map(|&i| state.jobs[i].view.clone())
    }

    /// All jobs, oldest first.
    pub fn jobs(&self) -> Vec<JobSnapshot> {
        self.state().jobs.iter().map(|j| j.view.clone()).collect()
    }

    /// Wait until the job is `Succeeded`, `Failed` or `TimedOut`; `None` if
    /// it is unknown or `timeout` passes first.
    pub async fn wait_for_result(&self, id: &str, timeout: Duration) -> Option<JobSnapshot> {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id)?;
            if job.status.is_final() {
                return Some(job);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every set of artifact credentials issued for the job, oldest first
    /// (for tests that check which set a worker used; never served by the
    /// admin API, because the model marks them sensitive).
    pub fn issued_credentials(&self, id: &str) -> Vec<AwsSessionCredentials> {
        let state = self.state();
        state
            .index
            .get(id)
            .map(|&i| state.jobs[i].issued_credentials.clone())
            .unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.inner.calls.snapshot()
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Replace the fault rules (shared with Inspector under [`crate::start`]).
    pub fn set_faults(&self, rules: Vec<FaultRule>) -> Result<(), FaultError> {
        self.inner.faults.set(rules)
    }

    /// Forget jobs and recorded calls; action types stay registered.
    pub fn reset(&self) {
        let mut state = self.state();
        state.jobs.clear();
        state.index.clear();
        drop(state);
        self.inner.calls.clear();
    }

    /// One API operation without HTTP or faults: `input` is the request
    /// body, the result the response body.
    pub fn invoke(&self, operation: &str, input: &Value) -> Result<Value, ApiError> {
        match operation {
            "PollForJobs" => self.poll_for_jobs(input),
            "AcknowledgeJob" => self.acknowledge_job(input),
            "PutJobSuccessResult" => self.put_job_success_result(input),
            "PutJobFailureResult" => self.put_job_failure_result(input),
            "GetJobDetails" => self.get_job_details(input),
            other => Err(ApiError::new(
                ErrorCode::UnknownOperation,
                format!("Unknown operation {other}"),
            )),
        }
    }

    fn poll_for_jobs(&self, input: &Value) -> Result<Value, ApiError> {
        let obj = object(input, "PollForJobsInput")?;
        let mut checks = Checks::default();
        let mut action_type = None;
        if let Some(at) = checks.structure(obj, "actionTypeId", "actionTypeId", true)? {
            let category = checks.string(
                at,
                "category",
                "actionTypeId.category",
                &StrRule {
                    one_of: Some(CATEGORIES),
                    ..rule(true, None, None)
                },
            )?;
            let owner = checks.string(
                at,
                "owner",
                "actionTypeId.owner",
                &StrRule {
                    one_of: Some(OWNERS),
                    ..rule(true, None, None)
                },
            )?;
            let token = |min, max| StrRule {
                pattern: Some((is_name_token, "[0-9A-Za-z_-]+")),
                ..rule(true, Some(min), Some(max))
            };
            let provider = checks.string(at, "provider", "actionTypeId.provider", &token(1, 35))?;
            let version = checks.string(at, "version", "actionTypeId.version", &token(1, 9))?;
            if let (Some(c), Some(o), Some(p), Some(v)) = (category, owner, provider, version) {
                action_type = Some(ActionTypeId::new(c, o, p, v));
            }
        }
        let batch = checks
            .integer(obj, "maxBatchSize", "maxBatchSize", Some(1), None)?
            .unwrap_or(1);
        let mut query = Vec::new();
        if let Some(q) = checks.structure(obj, "queryParam", "queryParam", false)? {
            if q.len() > 1 {
                checks.errors.push(format!(
                    "Value '{}' at 'queryParam' failed to satisfy constraint: Member must have length less than or equal to 1",
                    Value::Object(q.clone())
                ));
            }
            for (k, v) in q {
                checks.check(k, "queryParam", &rule(true, Some(1), Some(50)));
                let v = v
                    .as_str()
                    .ok_or_else(|| serialization("queryParam", "a string"))?;
                checks.check(
                    v,
                    "queryParam",
                    &StrRule {
                        pattern: Some((is_name_token, "[a-zA-Z0-9_-]+")),
                        ..rule(true, Some(1), Some(50))
                    },
                );
                query.push((k.clone(), v.to_string()));
            }
        }
        checks.finish()?;
        let Some(action_type) = action_type else {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "actionTypeId is incomplete",
            ));
        };

        let mut state = self.state();
        if !state.action_types.contains(&action_type) {
            return Err(ApiError::new(
                ErrorCode::ActionTypeNotFound,
                format!(
                    "Action type not found: category={} owner={} provider={} version={}",
                    action_type.category,
                    action_type.owner,
                    action_type.provider,
                    action_type.version
                ),
            ));
        }
        let mut jobs = Vec::new();
        for job in state.jobs.iter_mut() {
            if jobs.len() as i64 >= batch {
                break;
            }
            if job.view.status != JobStatus::Created
                || job.view.action_type_id != action_type
                || !query
                    .iter()
                    .all(|(k, v)| job.view.configuration.get(k) == Some(v))
            {
                continue;
            }
            let nonce = new_nonce();
            job.view.nonce = Some(nonce.clone());
            job.view.dispatch_count += 1;
            job.dispatched_at = Some(Instant::now());
            job.set_status(JobStatus::Dispatched);
            jobs.push(json!({
                "id": job.view.id,
                "data": job.data(),
                "nonce": nonce,
                "accountId": job.view.account_id,
            }));
        }
        Ok(json!({ "jobs": jobs }))
    }

    fn acknowledge_job(&self, input: &Value) -> Result<Value, ApiError> {
        let obj = object(input, "AcknowledgeJobInput")?;
        let mut checks = Checks::default();
        let id = checks.string(obj, "jobId", "jobId", &JOB_ID)?;
        let nonce = checks.string(obj, "nonce", "nonce", &rule(true, Some(1), Some(50)))?;
        checks.finish()?;
        let (id, nonce) = (id.unwrap_or(""), nonce.unwrap_or(""));
        let mut state = self.state();
        let job = state.job_mut(id)?;
        job.view.acknowledge_calls += 1;
        if job.view.nonce.as_deref() != Some(nonce) {
            return Err(ApiError::new(
                ErrorCode::InvalidNonce,
                format!("The nonce is not valid for job {id}"),
            ));
        }
        // Acknowledging again (a retried call) changes nothing.
        if job.view.status == JobStatus::Dispatched {
            job.in_progress_since = Some(Instant::now());
            job.set_status(JobStatus::InProgress);
        }
        Ok(json!({ "status": job.view.status.as_str() }))
    }

    /// Counts the attempt on the job, if the id names one.
    fn note_result_call(&self, id: Option<&str>) {
        if let Some(id) = id
            && let Ok(job) = self.state().job_mut(id)
        {
            job.view.result_calls += 1;
        }
    }

    fn check_in_progress(job: &Job) -> Result<(), ApiError> {
        if job.view.status == JobStatus::InProgress {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::InvalidJobState,
            format!(
                "Job {} is {}; a result can only be put for a job that is InProgress",
                job.view.id,
                job.view.status.as_str()
            ),
        ))
    }

    fn put_job_success_result(&self, input: &Value) -> Result<Value, ApiError> {
        let obj = object(input, "PutJobSuccessResultInput")?;
        let mut checks = Checks::default();
        let id = checks.string(obj, "jobId", "jobId", &JOB_ID)?;
        self.note_result_call(id);
        let continuation_token = checks.string(
            obj,
            "continuationToken",
            "continuationToken",
            &rule(false, Some(1), Some(2048)),
        )?;

        let mut execution_details = None;
        if let Some(d) = checks.structure(obj, "executionDetails", "executionDetails", false)? {
            execution_details = Some(ExecutionDetails {
                summary: checks
                    .string(
                        d,
                        "summary",
                        "executionDetails.summary",
                        &rule(false, Some(1), Some(2048)),
                    )?
                    .map(str::to_string),
                external_execution_id: checks
                    .string(
                        d,
                        "externalExecutionId",
                        "executionDetails.externalExecutionId",
                        &rule(false, Some(1), Some(1500)),
                    )?
                    .map(str::to_string),
                percent_complete: checks.integer(
                    d,
                    "percentComplete",
                    "executionDetails.percentComplete",
                    Some(0),
                    Some(100),
                )?,
            });
        }

        let mut current_revision = None;
        if let Some(r) = checks.structure(obj, "currentRevision", "currentRevision", false)? {
            checks.string(
                r,
                "revision",
                "currentRevision.revision",
                &rule(true, Some(1), Some(1500)),
            )?;
            checks.string(
                r,
                "changeIdentifier",
                "currentRevision.changeIdentifier",
                &rule(true, Some(1), Some(100)),
            )?;
            checks.string(
                r,
                "revisionSummary",
                "currentRevision.revisionSummary",
                &rule(false, Some(1), Some(2048)),
            )?;
            // awsJson timestamps are epoch seconds.
            if let Some(created) = r.get("created")
                && !created.is_null()
                && !created.is_number()
            {
                return Err(serialization("currentRevision.created", "a timestamp"));
            }
            current_revision = Some(Value::Object(r.clone()));
        }

        let mut output_variables = BTreeMap::new();
        if let Some(vars) = checks.structure(obj, "outputVariables", "outputVariables", false)? {
            for (k, v) in vars {
                let path = format!("outputVariables.{k}");
                let v = v.as_str().ok_or_else(|| serialization(&path, "a string"))?;
                checks.check(
                    k,
                    "outputVariables",
                    &StrRule {
                        pattern: Some((is_variable_key, "[A-Za-z0-9@\\-_]+")),
                        ..rule(true, None, None)
                    },
                );
                output_variables.insert(k.clone(), v.to_string());
            }
            if continuation_token.is_some() && !vars.is_empty() {
                checks.errors.push(
                    "outputVariables can be included only when there is no continuation token on the request"
                        .to_string(),
                );
            }
        }
        checks.finish()?;
        let size = serde_json::to_string(&output_variables).map_or(0, |s| s.len());
        if size > OUTPUT_VARIABLES_MAX_SERIALIZED {
            return Err(ApiError::new(
                ErrorCode::OutputVariablesSizeExceeded,
                format!(
                    "Exceeded the total size limit for all variables in the pipeline: {size} characters, at most {OUTPUT_VARIABLES_MAX_SERIALIZED}"
                ),
            ));
        }

        let id = id.unwrap_or("");
        let mut state = self.state();
        let job = state.job_mut(id)?;
        Self::check_in_progress(job)?;
        job.view.result = Some(JobResult::Success(SuccessResult {
            execution_details,
            output_variables,
            current_revision,
            continuation_token: continuation_token.map(str::to_string),
        }));
        job.set_status(JobStatus::Succeeded);
        if let Some(token) = continuation_token {
            // The action is not finished: CodePipeline creates a new job for
            // it that carries the token.
            let mut next = job.clone();
            let now = now_rfc3339();
            next.view.id = uuid::Uuid::new_v4().to_string();
            next.view.nonce = None;
            next.view.status = JobStatus::Created;
            next.view.continuation_token = Some(token.to_string());
            next.view.continued_from = Some(id.to_string());
            next.view.dispatch_count = 0;
            next.view.acknowledge_calls = 0;
            next.view.result = None;
            next.view.result_calls = 0;
            next.view.history = vec![StatusChange {
                at: now.clone(),
                status: JobStatus::Created,
            }];
            next.view.created_at = now;
            next.dispatched_at = None;
            next.in_progress_since = None;
            state.insert(next);
        }
        Ok(json!({}))
    }

    fn put_job_failure_result(&self, input: &Value) -> Result<Value, ApiError> {
        let obj = object(input, "PutJobFailureResultInput")?;
        let mut checks = Checks::default();
        let id = checks.string(obj, "jobId", "jobId", &JOB_ID)?;
        self.note_result_call(id);
        let mut details = None;
        if let Some(d) = checks.structure(obj, "failureDetails", "failureDetails", true)? {
            let failure_type = checks.string(
                d,
                "type",
                "failureDetails.type",
                &StrRule {
                    one_of: Some(FAILURE_TYPES),
                    ..rule(true, None, None)
                },
            )?;
            let message = checks.string(
                d,
                "message",
                "failureDetails.message",
                &rule(true, Some(1), Some(5000)),
            )?;
            let external = checks.string(
                d,
                "externalExecutionId",
                "failureDetails.externalExecutionId",
                &rule(false, Some(1), Some(1500)),
            )?;
            if let (Some(t), Some(m)) = (failure_type.and_then(FailureType::parse), message) {
                details = Some(FailureDetails {
                    failure_type: t,
                    message: m.to_string(),
                    external_execution_id: external.map(str::to_string),
                });
            }
        }
        checks.finish()?;
        let Some(details) = details else {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "failureDetails is incomplete",
            ));
        };
        let mut state = self.state();
        let job = state.job_mut(id.unwrap_or(""))?;
        Self::check_in_progress(job)?;
        job.view.result = Some(JobResult::Failure(details));
        job.set_status(JobStatus::Failed);
        Ok(json!({}))
    }

    fn get_job_details(&self, input: &Value) -> Result<Value, ApiError> {
        let obj = object(input, "GetJobDetailsInput")?;
        let mut checks = Checks::default();
        let id = checks.string(obj, "jobId", "jobId", &JOB_ID)?;
        checks.finish()?;
        let mut state = self.state();
        let job = state.job_mut(id.unwrap_or(""))?;
        job.view.get_job_details_calls += 1;
        // As CodePipeline does: each call hands out new temporary
        // credentials, which is how a long job renews expiring ones.
        let fresh = AwsSessionCredentials::generate();
        job.credentials = fresh.clone();
        job.issued_credentials.push(fresh);
        Ok(json!({
            "jobDetails": {
                "id": job.view.id,
                "data": job.data(),
                "accountId": job.view.account_id,
            }
        }))
    }

    /// `POST /` for all operations.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(api_handler))
            .with_state(self.clone())
    }

    /// To be nested at `/admin/codepipeline`: `GET|POST /action-types`,
    /// `GET|POST /jobs`, `GET /jobs/{id}`, `GET /calls`, `POST /reset`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route(
                "/action-types",
                get(admin_action_types).post(admin_register_action_type),
            )
            .route("/jobs", get(admin_jobs).post(admin_enqueue_job))
            .route("/jobs/{id}", get(admin_job))
            .route("/calls", get(admin_calls))
            .route("/reset", post(admin_reset))
            .with_state(self.clone())
    }
}

// ---------------------------------------------------------------------------
// HTTP

async fn api_handler(State(emu): State<CodePipelineEmulator>, req: Request) -> Response {
    let started = Instant::now();
    let at = now_rfc3339();
    let abort = req.extensions().get::<ConnectionAbort>().cloned();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or(&target)
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await;
    let (parsed, request_record) = match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => (Ok(json!({})), json!({})),
        Ok(b) => match serde_json::from_slice::<Value>(b) {
            Ok(v) => (Ok(v.clone()), v),
            Err(e) => (
                Err(ApiError::new(
                    ErrorCode::Serialization,
                    format!("Malformed JSON: {e}"),
                )),
                json!(String::from_utf8_lossy(b)),
            ),
        },
        Err(_) => (
            Err(ApiError::new(
                ErrorCode::Serialization,
                "The request body could not be read",
            )),
            Value::Null,
        ),
    };
    let mut record = CallRecord {
        seq: 0,
        operation: if operation.is_empty() {
            "(no X-Amz-Target)".into()
        } else {
            operation.clone()
        },
        at,
        request: request_record,
        status: None,
        error_type: None,
        fault: None,
        duration_ms: 0,
    };

    let decision = emu.inner.faults.decide(&operation);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    record.fault = decision.action.map(|a| a.as_str().to_string());
    let result = match decision.action {
        Some(FaultAction::Drop) => {
            record.duration_ms = started.elapsed().as_millis() as u64;
            emu.inner.calls.push(record);
            return abort_connection(abort).await;
        }
        Some(FaultAction::DropAnswer) => {
            if let Ok(input) = &parsed {
                let _ = emu.invoke(&operation, input);
            }
            record.duration_ms = started.elapsed().as_millis() as u64;
            emu.inner.calls.push(record);
            return abort_connection(abort).await;
        }
        Some(FaultAction::Throttle) => Err(ApiError::new(ErrorCode::Throttling, "Rate exceeded")),
        Some(FaultAction::Error5xx) => Err(ApiError::new(
            ErrorCode::InternalFailure,
            "The request processing has failed because of an unknown error, exception or failure.",
        )),
        Some(FaultAction::AccessDenied) => Err(ApiError::new(
            ErrorCode::AccessDenied,
            format!("User is not authorized to perform: codepipeline:{operation}"),
        )),
        None if !target.starts_with(TARGET_PREFIX) => Err(ApiError::new(
            ErrorCode::UnknownOperation,
            format!("Unknown operation target '{target}'"),
        )),
        None => parsed.and_then(|input| emu.invoke(&operation, &input)),
    };
    let mut response = match result {
        Ok(output) => {
            let mut r = (StatusCode::OK, output.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
        Err(e) => {
            record.error_type = Some(e.code.shape_name().to_string());
            let mut r = e.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
    };
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    record.status = Some(response.status().as_u16());
    record.duration_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(operation = %record.operation, status = ?record.status, error = ?record.error_type, "CodePipeline call");
    emu.inner.calls.push(record);
    response
}

async fn admin_action_types(State(emu): State<CodePipelineEmulator>) -> Json<Vec<ActionTypeId>> {
    Json(emu.action_types())
}

async fn admin_register_action_type(
    State(emu): State<CodePipelineEmulator>,
    Json(action_type): Json<ActionTypeId>,
) -> (StatusCode, Json<Vec<ActionTypeId>>) {
    emu.register_action_type(action_type);
    (StatusCode::CREATED, Json(emu.action_types()))
}

async fn admin_jobs(State(emu): State<CodePipelineEmulator>) -> Json<Vec<JobSnapshot>> {
    Json(emu.jobs())
}

async fn admin_enqueue_job(
    State(emu): State<CodePipelineEmulator>,
    Json(job): Json<NewJob>,
) -> (StatusCode, Json<Value>) {
    let id = emu.enqueue_job(job);
    (StatusCode::CREATED, Json(json!({ "id": id })))
}

async fn admin_job(State(emu): State<CodePipelineEmulator>, Path(id): Path<String>) -> Response {
    match emu.job(&id) {
        Some(job) => Json(job).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": format!("no job {id}") })),
        )
            .into_response(),
    }
}

async fn admin_calls(State(emu): State<CodePipelineEmulator>) -> Json<Vec<CallRecord>> {
    Json(emu.calls())
}

async fn admin_reset(State(emu): State<CodePipelineEmulator>) -> StatusCode {
    emu.reset();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emulator() -> CodePipelineEmulator {
        CodePipelineEmulator::new(CodePipelineOptions::default())
    }

    fn poll(emu: &CodePipelineEmulator) -> Vec<Value> {
        let out = emu
            .invoke(
                "PollForJobs",
                &json!({ "actionTypeId": ActionTypeId::scangate(), "maxBatchSize": 10 }),
            )
            .unwrap();
        out["jobs"].as_array().unwrap().clone()
    }

    #[test]
    fn job_ids_match_the_model_pattern() {
        let emu = emulator();
        let id = emu.enqueue_job(NewJob::new());
        assert!(is_job_id(&id), "{id}");
        assert!(!is_job_id("ABCDEF00-0000-0000-0000-000000000000"));
    }

    #[test]
    fn expired_dispatch_returns_the_job_with_a_new_nonce() {
        let emu = CodePipelineEmulator::new(CodePipelineOptions {
            dispatch_timeout: Duration::ZERO,
            ..CodePipelineOptions::default()
        });
        let id = emu.enqueue_job(NewJob::new());
        let first = poll(&emu);
        assert_eq!(first.len(), 1);
        let second = poll(&emu);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0]["id"], json!(id));
        assert_ne!(first[0]["nonce"], second[0]["nonce"]);
        let err = emu
            .invoke(
                "AcknowledgeJob",
                &json!({ "jobId": id, "nonce": first[0]["nonce"] }),
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidNonce);
        assert_eq!(emu.job(&id).unwrap().dispatch_count, 2);
    }

    #[test]
    fn continuation_token_creates_a_follow_up_job() {
        let emu = emulator();
        let id = emu.enqueue_job(NewJob::new().config("ImageUrl", "x"));
        let job = &poll(&emu)[0];
        emu.invoke(
            "AcknowledgeJob",
            &json!({ "jobId": id, "nonce": job["nonce"] }),
        )
        .unwrap();
        emu.invoke(
            "PutJobSuccessResult",
            &json!({ "jobId": id, "continuationToken": "page-2" }),
        )
        .unwrap();
        let next = &poll(&emu)[0];
        assert_ne!(next["id"], json!(id));
        assert_eq!(next["data"]["continuationToken"], "page-2");
        assert_eq!(
            next["data"]["actionConfiguration"]["configuration"]["ImageUrl"],
            "x"
        );
    }

    #[test]
    fn get_job_details_issues_new_credentials_and_keeps_the_encryption_key() {
        let emu = emulator();
        let key = EncryptionKey {
            id: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
            key_type: "KMS".into(),
        };
        let id = emu.enqueue_job(NewJob {
            encryption_key: Some(key.clone()),
            output_artifacts: vec![Artifact::s3("ScanReport", "artifacts", "p/o.zip")],
            ..NewJob::new()
        });
        let polled = &poll(&emu)[0];
        let first = polled["data"]["artifactCredentials"]["accessKeyId"].clone();
        assert_eq!(polled["data"]["encryptionKey"]["type"], "KMS");
        let out = emu
            .invoke("GetJobDetails", &json!({ "jobId": id }))
            .unwrap();
        let data = &out["jobDetails"]["data"];
        assert_ne!(data["artifactCredentials"]["accessKeyId"], first);
        assert_eq!(data["encryptionKey"]["id"], json!(key.id));
        assert_eq!(
            data["outputArtifacts"][0]["location"]["s3Location"]["objectKey"],
            "p/o.zip"
        );
        assert_eq!(emu.job(&id).unwrap().get_job_details_calls, 1);
        let issued = emu.issued_credentials(&id);
        assert_eq!(issued.len(), 2);
        assert_eq!(json!(issued[0].access_key_id), first);
        assert_eq!(
            json!(issued[1].access_key_id),
            data["artifactCredentials"]["accessKeyId"]
        );
        let err = emu
            .invoke(
                "GetJobDetails",
                &json!({ "jobId": "00000000-0000-0000-0000-000000000000" }),
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::JobNotFound);
    }

    #[test]
    fn credentials_are_not_printed() {
        let creds = AwsSessionCredentials::generate();
        assert!(!format!("{creds:?}").contains(&creds.secret_access_key));
    }
}
