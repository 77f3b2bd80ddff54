//! The emulators themselves, driven over real HTTP the way an SDK would:
//! awsJson1_1 with `X-Amz-Target` for CodePipeline, restJson1 for Inspector.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::codepipeline::{ActionTypeId, CodePipelineOptions, JobStatus};
use integration_tests::vulndb::{SeverityCounts, VulnDb, default_fixtures_dir};
use integration_tests::{EmulatorOptions, Emulators, start};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

async fn emulators_with(opts: EmulatorOptions) -> Emulators {
    start("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .expect("emulators start")
}

async fn emulators() -> Emulators {
    emulators_with(EmulatorOptions::default()).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn error_type(&self) -> &str {
        self.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// An awsJson1_1 error of this shape, in the header and in `__type`.
    #[track_caller]
    fn assert_cp_error(&self, shape: &str) {
        assert_eq!(self.status, 400, "{}", self.body);
        assert_eq!(self.error_type(), shape, "{}", self.body);
        assert_eq!(self.body["__type"], shape, "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

async fn codepipeline(emu: &Emulators, operation: &str, input: Value) -> Answer {
    let response = client()
        .post(&emu.urls.codepipeline)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("CodePipeline_20150709.{operation}"))
        .body(input.to_string())
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn scan(emu: &Emulators, request: &Value) -> Answer {
    let response = client()
        .post(format!("{}/scan/sbom", emu.urls.inspector))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn admin_get(emu: &Emulators, path: &str) -> Value {
    let r = client()
        .get(format!("{}{path}", emu.urls.admin))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

async fn admin_send(emu: &Emulators, method: reqwest::Method, path: &str, body: Value) -> Answer {
    let r = client()
        .request(method, format!("{}{path}", emu.urls.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(r).await
}

fn scangate_type() -> Value {
    json!({ "category": "Test", "owner": "Custom", "provider": "ScanGate", "version": "1" })
}

async fn enqueue(emu: &Emulators, job: Value) -> String {
    let a = admin_send(emu, reqwest::Method::POST, "/codepipeline/jobs", job).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap().to_string()
}

async fn poll(emu: &Emulators, batch: u32) -> Vec<Value> {
    let a = codepipeline(
        emu,
        "PollForJobs",
        json!({ "actionTypeId": scangate_type(), "maxBatchSize": batch }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["jobs"].as_array().unwrap().clone()
}

/// Enqueue, poll and acknowledge one job; returns its id.
async fn job_in_progress(emu: &Emulators) -> String {
    let id = enqueue(
        emu,
        json!({ "configuration": { "ImageUrl": "registry.local/app:1" } }),
    )
    .await;
    let jobs = poll(emu, 1).await;
    assert_eq!(jobs[0]["id"], json!(id));
    let a = codepipeline(
        emu,
        "AcknowledgeJob",
        json!({ "jobId": id, "nonce": jobs[0]["nonce"] }),
    )
    .await;
    assert_eq!(a.body, json!({ "status": "InProgress" }));
    id
}

// ---------------------------------------------------------------------------
// CodePipeline

#[tokio::test]
async fn job_lifecycle_over_http() {
    let emu = emulators().await;
    let id = enqueue(
        &emu,
        json!({
            "configuration": { "ImageUrl": "registry.local/app:1", "HighThreshold": "0" },
            "pipelineName": "app-pipeline",
            "stageName": "Gate",
            "actionName": "Scan",
            "inputArtifacts": [{ "name": "BuildOutput", "location": { "type": "S3",
                "s3Location": { "bucketName": "artifacts", "objectKey": "app/BuildOutput/abc.zip" } } }],
        }),
    )
    .await;

    let jobs = poll(&emu, 1).await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["id"], json!(id));
    assert_eq!(job["accountId"], "123456789012");
    let nonce = job["nonce"].as_str().unwrap().to_string();
    assert!(!nonce.is_empty() && nonce.len() <= 50);
    let data = &job["data"];
    assert_eq!(data["actionTypeId"], scangate_type());
    assert_eq!(
        data["actionConfiguration"]["configuration"]["ImageUrl"],
        "registry.local/app:1"
    );
    let ctx = &data["pipelineContext"];
    assert_eq!(ctx["pipelineName"], "app-pipeline");
    assert_eq!(ctx["stage"]["name"], "Gate");
    assert_eq!(ctx["action"]["name"], "Scan");
    assert!(ctx["action"]["actionExecutionId"].is_string());
    assert_eq!(
        ctx["pipelineArn"],
        "arn:aws:codepipeline:us-east-1:123456789012:app-pipeline"
    );
    assert!(ctx["pipelineExecutionId"].is_string());
    assert_eq!(
        data["inputArtifacts"][0]["location"]["s3Location"]["objectKey"],
        "app/BuildOutput/abc.zip"
    );
    for k in ["accessKeyId", "secretAccessKey", "sessionToken"] {
        assert!(data["artifactCredentials"][k].is_string(), "{k}");
    }
    // Handed out once: the next poll finds nothing.
    assert!(poll(&emu, 1).await.is_empty());
    let snapshot = admin_get(&emu, &format!("/codepipeline/jobs/{id}")).await;
    assert_eq!(snapshot["status"], "Dispatched");
    assert!(
        snapshot.get("artifactCredentials").is_none(),
        "the admin API must not list credentials"
    );

    codepipeline(
        &emu,
        "AcknowledgeJob",
        json!({ "jobId": id, "nonce": "12345" }),
    )
    .await
    .assert_cp_error("InvalidNonceException");
    let a = codepipeline(
        &emu,
        "AcknowledgeJob",
        json!({ "jobId": id, "nonce": nonce }),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers.get("content-type").unwrap(),
        "application/x-amz-json-1.1"
    );
    assert_eq!(a.body, json!({ "status": "InProgress" }));

    let details = codepipeline(&emu, "GetJobDetails", json!({ "jobId": id })).await;
    assert_eq!(details.body["jobDetails"]["id"], json!(id));
    assert_eq!(
        details.body["jobDetails"]["data"]["pipelineContext"]["pipelineName"],
        "app-pipeline"
    );

    let a = codepipeline(
        &emu,
        "PutJobSuccessResult",
        json!({
            "jobId": id,
            "executionDetails": { "summary": "PASS: 0 critical, 0 high", "externalExecutionId": id, "percentComplete": 100 },
            "outputVariables": { "VERDICT": "PASS", "CRITICAL": "0" },
        }),
    )
    .await;
    assert_eq!((a.status, a.body), (200, json!({})));
    codepipeline(
        &emu,
        "PutJobFailureResult",
        json!({ "jobId": id, "failureDetails": { "type": "JobFailed", "message": "again" } }),
    )
    .await
    .assert_cp_error("InvalidJobStateException");
    codepipeline(&emu, "PutJobSuccessResult", json!({ "jobId": id }))
        .await
        .assert_cp_error("InvalidJobStateException");

    let snapshot = admin_get(&emu, &format!("/codepipeline/jobs/{id}")).await;
    assert_eq!(snapshot["status"], "Succeeded");
    assert_eq!(snapshot["result"]["outcome"], "success");
    assert_eq!(snapshot["result"]["outputVariables"]["VERDICT"], "PASS");
    assert_eq!(
        snapshot["result"]["executionDetails"]["summary"],
        "PASS: 0 critical, 0 high"
    );
    assert_eq!(snapshot["resultCalls"], 3);
    assert_eq!(snapshot["acknowledgeCalls"], 2);
    let statuses: Vec<&str> = snapshot["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["Created", "Dispatched", "InProgress", "Succeeded"]
    );

    // The same through the Rust API.
    let job = emu.codepipeline.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result_calls, 3);

    let calls = admin_get(&emu, "/codepipeline/calls").await;
    let ops: Vec<&str> = calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "PollForJobs",
            "PollForJobs",
            "AcknowledgeJob",
            "AcknowledgeJob",
            "GetJobDetails",
            "PutJobSuccessResult",
            "PutJobFailureResult",
            "PutJobSuccessResult"
        ]
    );
    let rejected = &calls[2];
    assert_eq!(rejected["status"], 400);
    assert_eq!(rejected["errorType"], "InvalidNonceException");
    assert_eq!(rejected["request"]["nonce"], "12345");
}

#[tokio::test]
async fn failure_result_and_job_state_errors() {
    let emu = emulators().await;
    // A dispatched but unacknowledged job takes no result.
    let id = enqueue(&emu, json!({})).await;
    let jobs = poll(&emu, 1).await;
    codepipeline(
        &emu,
        "PutJobFailureResult",
        json!({ "jobId": id, "failureDetails": { "type": "JobFailed", "message": "x" } }),
    )
    .await
    .assert_cp_error("InvalidJobStateException");
    codepipeline(
        &emu,
        "AcknowledgeJob",
        json!({ "jobId": id, "nonce": jobs[0]["nonce"] }),
    )
    .await;
    let a = codepipeline(
        &emu,
        "PutJobFailureResult",
        json!({ "jobId": id, "failureDetails": {
            "type": "PermissionError", "message": "registry answered 403 for registry.local/app:1",
            "externalExecutionId": id } }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let job = emu.codepipeline.job(&id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let failure = job.result.as_ref().unwrap().failure().unwrap();
    assert_eq!(
        failure.failure_type,
        integration_tests::codepipeline::FailureType::PermissionError
    );
    codepipeline(
        &emu,
        "PutJobFailureResult",
        json!({ "jobId": id, "failureDetails": { "type": "JobFailed", "message": "twice" } }),
    )
    .await
    .assert_cp_error("InvalidJobStateException");

    let unknown = "00000000-0000-4000-8000-000000000000";
    for (op, input) in [
        ("AcknowledgeJob", json!({ "jobId": unknown, "nonce": "1" })),
        ("GetJobDetails", json!({ "jobId": unknown })),
        ("PutJobSuccessResult", json!({ "jobId": unknown })),
    ] {
        codepipeline(&emu, op, input)
            .await
            .assert_cp_error("JobNotFoundException");
    }
}

#[tokio::test]
async fn inputs_are_checked_against_the_model() {
    let emu = emulators().await;
    let id = job_in_progress(&emu).await;
    let long = |n: usize| "x".repeat(n);

    let cases = [
        (
            "AcknowledgeJob",
            json!({ "jobId": "not-a-job-id", "nonce": "1" }),
            "jobId",
        ),
        (
            "AcknowledgeJob",
            json!({ "jobId": id, "nonce": long(51) }),
            "nonce",
        ),
        ("AcknowledgeJob", json!({ "jobId": id }), "nonce"),
        (
            "PollForJobs",
            json!({ "actionTypeId": scangate_type(), "maxBatchSize": 0 }),
            "maxBatchSize",
        ),
        ("PollForJobs", json!({}), "actionTypeId"),
        (
            "PollForJobs",
            json!({ "actionTypeId": { "category": "Scan", "owner": "Custom", "provider": "ScanGate", "version": "1" } }),
            "actionTypeId.category",
        ),
        (
            "PollForJobs",
            json!({ "actionTypeId": { "category": "Test", "owner": "Custom", "provider": long(36), "version": "1" } }),
            "actionTypeId.provider",
        ),
        (
            "PutJobSuccessResult",
            json!({ "jobId": id, "executionDetails": { "summary": long(2049) } }),
            "executionDetails.summary",
        ),
        (
            "PutJobSuccessResult",
            json!({ "jobId": id, "executionDetails": { "externalExecutionId": long(1501) } }),
            "executionDetails.externalExecutionId",
        ),
        (
            "PutJobSuccessResult",
            json!({ "jobId": id, "executionDetails": { "percentComplete": 101 } }),
            "executionDetails.percentComplete",
        ),
        (
            "PutJobSuccessResult",
            json!({ "jobId": id, "outputVariables": { "bad key!": "x" } }),
            "outputVariables",
        ),
        (
            "PutJobSuccessResult",
            json!({ "jobId": id, "continuationToken": "t", "outputVariables": { "A": "x" } }),
            "continuation token",
        ),
        (
            "PutJobFailureResult",
            json!({ "jobId": id }),
            "failureDetails",
        ),
        (
            "PutJobFailureResult",
            json!({ "jobId": id, "failureDetails": { "type": "Broken", "message": "m" } }),
            "failureDetails.type",
        ),
        (
            "PutJobFailureResult",
            json!({ "jobId": id, "failureDetails": { "type": "JobFailed", "message": "" } }),
            "failureDetails.message",
        ),
        (
            "PutJobFailureResult",
            json!({ "jobId": id, "failureDetails": { "type": "JobFailed", "message": long(5001) } }),
            "failureDetails.message",
        ),
    ];
    for (op, input, mentions) in cases {
        let a = codepipeline(&emu, op, input).await;
        a.assert_cp_error("ValidationException");
        let message = a.body["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{op}: {message}");
    }

    let a = codepipeline(
        &emu,
        "PollForJobs",
        json!({ "actionTypeId": scangate_type(), "maxBatchSize": "3" }),
    )
    .await;
    a.assert_cp_error("SerializationException");

    // Right at the limits is fine, and the job is still there to take it.
    let mut vars = serde_json::Map::new();
    vars.insert("BIG".into(), json!(long(122_880 - 10)));
    assert_eq!(Value::Object(vars.clone()).to_string().len(), 122_880);
    let a = codepipeline(
        &emu,
        "PutJobFailureResult",
        json!({ "jobId": id, "failureDetails": { "type": "JobFailed", "message": long(5000) } }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    let id = job_in_progress(&emu).await;
    vars.insert("MORE".into(), json!("y"));
    codepipeline(
        &emu,
        "PutJobSuccessResult",
        json!({ "jobId": id, "outputVariables": vars }),
    )
    .await
    .assert_cp_error("OutputVariablesSizeExceededException");
    vars.remove("MORE");
    let a = codepipeline(
        &emu,
        "PutJobSuccessResult",
        json!({ "jobId": id, "outputVariables": vars, "executionDetails": { "summary": long(2048) } }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(emu.codepipeline.job(&id).unwrap().result_calls, 2);
}

#[tokio::test]
async fn unknown_action_types_and_operations() {
    let emu = emulators().await;
    let other = json!({ "category": "Test", "owner": "Custom", "provider": "OtherScanner", "version": "1" });
    codepipeline(&emu, "PollForJobs", json!({ "actionTypeId": other }))
        .await
        .assert_cp_error("ActionTypeNotFoundException");
    let a = admin_send(
        &emu,
        reqwest::Method::POST,
        "/codepipeline/action-types",
        other.clone(),
    )
    .await;
    assert_eq!(a.status, 201);
    let a = codepipeline(&emu, "PollForJobs", json!({ "actionTypeId": other })).await;
    assert_eq!((a.status, a.body), (200, json!({ "jobs": [] })));
    // A job of one type is not handed to a worker of another.
    emu.codepipeline.enqueue_job(
        integration_tests::codepipeline::NewJob::new().action_type(ActionTypeId::new(
            "Test",
            "Custom",
            "OtherScanner",
            "1",
        )),
    );
    assert!(poll(&emu, 5).await.is_empty());

    codepipeline(&emu, "ListPipelines", json!({}))
        .await
        .assert_cp_error("UnknownOperationException");
    let a = answer(
        client()
            .post(&emu.urls.codepipeline)
            .header("x-amz-target", "CodePipeline_20150709.PollForJobs")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    a.assert_cp_error("SerializationException");
}

#[tokio::test]
async fn batches_unique_ids_and_query_params() {
    let emu = emulators().await;
    for i in 0..5 {
        enqueue(
            &emu,
            json!({ "configuration": { "Team": if i == 4 { "blue" } else { "red" } } }),
        )
        .await;
    }
    let a = codepipeline(
        &emu,
        "PollForJobs",
        json!({ "actionTypeId": scangate_type(), "maxBatchSize": 10, "queryParam": { "Team": "blue" } }),
    )
    .await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 1);
    let first = poll(&emu, 3).await;
    let second = poll(&emu, 3).await;
    assert_eq!((first.len(), second.len()), (3, 1));
    let ids: BTreeSet<_> = first
        .iter()
        .chain(&second)
        .map(|j| j["id"].to_string())
        .collect();
    let nonces: BTreeSet<_> = first
        .iter()
        .chain(&second)
        .map(|j| j["nonce"].to_string())
        .collect();
    assert_eq!((ids.len(), nonces.len()), (4, 4));
}

#[tokio::test]
async fn unacknowledged_jobs_are_dispatched_again() {
    let emu = emulators_with(EmulatorOptions {
        codepipeline: CodePipelineOptions {
            dispatch_timeout: Duration::from_millis(200),
            ..CodePipelineOptions::default()
        },
        ..EmulatorOptions::default()
    })
    .await;
    let id = enqueue(&emu, json!({})).await;
    let first = poll(&emu, 1).await;
    assert!(poll(&emu, 1).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = poll(&emu, 1).await;
    assert_eq!(second[0]["id"], json!(id));
    assert_ne!(second[0]["nonce"], first[0]["nonce"]);
    codepipeline(
        &emu,
        "AcknowledgeJob",
        json!({ "jobId": id, "nonce": first[0]["nonce"] }),
    )
    .await
    .assert_cp_error("InvalidNonceException");
    let a = codepipeline(
        &emu,
        "AcknowledgeJob",
        json!({ "jobId": id, "nonce": second[0]["nonce"] }),
    )
    .await;
    assert_eq!(a.body["status"], "InProgress");
    assert_eq!(emu.codepipeline.job(&id).unwrap().dispatch_count, 2);
}

#[tokio::test]
async fn codepipeline_faults() {
    let emu = emulators().await;
    let rules = json!([
        { "operation": "PollForJobs", "kind": "throttle", "count": 1 },
        { "operation": "AcknowledgeJob", "kind": "error5xx", "count": 1 },
        { "operation": "GetJobDetails", "kind": "access_denied", "count": 1 },
    ]);
    let a = admin_send(&emu, reqwest::Method::PUT, "/faults", rules).await;
    assert_eq!(a.status, 200, "{}", a.body);

    let id = enqueue(&emu, json!({})).await;
    let a = codepipeline(
        &emu,
        "PollForJobs",
        json!({ "actionTypeId": scangate_type() }),
    )
    .await;
    a.assert_cp_error("ThrottlingException");
    // Throttled calls change nothing: the job is still there.
    let jobs = poll(&emu, 1).await;
    let ack = json!({ "jobId": id, "nonce": jobs[0]["nonce"] });
    let a = codepipeline(&emu, "AcknowledgeJob", ack.clone()).await;
    assert_eq!((a.status, a.error_type()), (500, "InternalFailure"));
    let a = codepipeline(&emu, "AcknowledgeJob", ack).await;
    assert_eq!(a.body["status"], "InProgress");
    codepipeline(&emu, "GetJobDetails", json!({ "jobId": id }))
        .await
        .assert_cp_error("AccessDeniedException");

    let rules = admin_get(&emu, "/faults").await;
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["remaining"] == 0 && r["fired"] == 1)
    );
    let calls = emu.codepipeline.calls();
    assert_eq!(calls[0].fault.as_deref(), Some("throttle"));
}

// ---------------------------------------------------------------------------
// Inspector

fn fixtures() -> PathBuf {
    default_fixtures_dir().parent().unwrap().to_path_buf()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn walk<'a>(components: &'a [Value], out: &mut Vec<&'a Value>) {
    for c in components {
        out.push(c);
        if let Some(n) = c.get("components").and_then(Value::as_array) {
            walk(n, out);
        }
    }
}

fn all_components(sbom: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    walk(sbom["components"].as_array().unwrap(), &mut out);
    out
}

/// A vulnerability without what depends on the answer it is in.
fn vulnerability_text(v: &Value) -> Value {
    let mut v = v.clone();
    let obj = v.as_object_mut().unwrap();
    obj.remove("bom-ref");
    obj.remove("affects");
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_array_mut) {
        props.retain(|p| !p["name"].as_str().unwrap().contains(":fixed_version:"));
        if props.is_empty() {
            obj.remove("properties");
        }
    }
    v
}

/// Vulnerability id → (affected refs, fixed versions by ref).
fn affects(sbom: &Value) -> BTreeMap<String, (BTreeSet<String>, BTreeMap<String, String>)> {
    let mut out = BTreeMap::new();
    for v in sbom["vulnerabilities"].as_array().unwrap() {
        let refs = v["affects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ref"].as_str().unwrap().to_string())
            .collect();
        let fixed = v
            .get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let r = p["name"].as_str()?.split(":fixed_version:").nth(1)?;
                Some((r.to_string(), p["value"].as_str()?.to_string()))
            })
            .collect();
        out.insert(v["id"].as_str().unwrap().to_string(), (refs, fixed));
    }
    out
}

/// Everything that differs between our answer and the real one, except
/// serial number, timestamp and the order of vulnerabilities.
fn differences(ours: &Value, real: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let (a, b) = (all_components(ours), all_components(real));
    if a.len() != b.len() {
        diffs.push(format!(
            "{} components, the real answer has {}",
            a.len(),
            b.len()
        ));
    }
    for (x, y) in a.iter().zip(&b) {
        for key in ["bom-ref", "name", "purl", "type", "version", "properties"] {
            if x.get(key) != y.get(key) {
                diffs.push(format!(
                    "component {}: {key} {} vs {}",
                    y["bom-ref"],
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
        let nested = |c: &Value| {
            c.get("components")
                .map_or(0, |n| n.as_array().unwrap().len())
        };
        if nested(x) != nested(y) {
            diffs.push(format!("component {}: nesting differs", y["bom-ref"]));
        }
    }
    if SeverityCounts::from_answer_metadata(ours) != SeverityCounts::from_answer_metadata(real) {
        diffs.push(format!(
            "summary {:?} vs {:?}",
            SeverityCounts::from_answer_metadata(ours),
            SeverityCounts::from_answer_metadata(real)
        ));
    }
    let (va, vb) = (affects(ours), affects(real));
    let (ia, ib): (BTreeSet<_>, BTreeSet<_>) = (va.keys().collect(), vb.keys().collect());
    for id in ia.symmetric_difference(&ib) {
        diffs.push(format!(
            "vulnerability {id} only in {}",
            if va.contains_key(*id) {
                "ours"
            } else {
                "the real answer"
            }
        ));
    }
    for (id, theirs) in &vb {
        if let Some(mine) = va.get(id)
            && mine != theirs
        {
            diffs.push(format!(
                "vulnerability {id}: affects {mine:?} vs {theirs:?}"
            ));
        }
    }
    let texts = |sbom: &Value| -> BTreeMap<String, Value> {
        sbom["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_string(), vulnerability_text(v)))
            .collect()
    };
    let (ta, tb) = (texts(ours), texts(real));
    for (id, theirs) in &tb {
        if let Some(mine) = ta.get(id)
            && mine != theirs
        {
            diffs.push(format!("vulnerability {id}: text differs"));
        }
    }
    let mut refs: Vec<&str> = ours["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["bom-ref"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=refs.len()).map(|n| format!("vuln-{n}")).collect();
    refs.retain(|r| !expected.iter().any(|e| e == r));
    if !refs.is_empty() {
        diffs.push(format!("vulnerability bom-refs not vuln-1..N: {refs:?}"));
    }
    diffs
}

/// The pairs of SBOM and real answer in the fixtures.
fn fixture_pairs() -> Vec<(String, PathBuf, PathBuf)> {
    let dir = fixtures();
    let mut pairs: Vec<_> = std::fs::read_dir(dir.join("sboms"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|sbom| {
            let name = sbom.file_name()?.to_str()?.to_string();
            let answer = dir.join("scans").join(format!("{name}.scan"));
            answer.is_file().then_some((name, sbom, answer))
        })
        .collect();
    pairs.sort();
    pairs.push((
        "dockerfile-checks".into(),
        dir.join("dockerfile-checks-sbom.json"),
        dir.join("dockerfile-checks-inspector-scan-cdx.json"),
    ));
    pairs
}

#[tokio::test]
async fn scansbom_reproduces_every_real_answer() {
    let emu = emulators().await;
    let pairs = fixture_pairs();
    assert!(
        pairs.len() >= 14,
        "fixtures missing under {}",
        fixtures().display()
    );
    let mut report = Vec::new();
    for (name, sbom_path, answer_path) in &pairs {
        let sbom = read_json(sbom_path);
        let real = read_json(answer_path);
        let a = scan(
            &emu,
            &json!({ "sbom": sbom, "outputFormat": "CYCLONE_DX_1_5" }),
        )
        .await;
        assert_eq!(a.status, 200, "{name}: {}", a.body);
        let ours = &a.body["sbom"];
        assert_eq!(ours["bomFormat"], "CycloneDX");
        assert_eq!(ours["specVersion"], "1.5");
        assert_eq!(ours["metadata"]["tools"], real["sbom"]["metadata"]["tools"]);
        let diffs = differences(ours, &real["sbom"]);
        if !diffs.is_empty() {
            report.push(format!("{name}:\n  {}", diffs.join("\n  ")));
        }
    }
    assert!(
        report.is_empty(),
        "answers that differ from the real ones:\n{}",
        report.join("\n")
    );
}

/// The reproduction above could be a lookup of the answer itself; here the
/// knowledge comes from the other images only. Debian-based images share
/// packages, so their findings must come out the same, and no image may get
/// a finding its real answer lacks.
#[test]
fn matching_carries_over_between_images() {
    let scans = default_fixtures_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&scans)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (left_out, expect_all) in [
        ("debian_latest.json", true),
        ("python_latest.json", true),
        ("node_latest.json", false),
    ] {
        let mut db = VulnDb::empty();
        for f in files
            .iter()
            .filter(|f| !f.ends_with(format!("{left_out}.scan")))
        {
            db.add_file(f).unwrap();
        }
        let sbom = read_json(&fixtures().join("sboms").join(left_out));
        let real = read_json(&scans.join(format!("{left_out}.scan")));
        let ours =
            integration_tests::inspector::scan_sbom(&db, &json!({ "sbom": sbom }), 5000).unwrap();
        let ids = |v: &Value| -> BTreeSet<String> {
            v["sbom"]["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap().to_string())
                .collect()
        };
        let (ours, real) = (ids(&ours), ids(&real));
        assert!(
            ours.is_subset(&real),
            "{left_out}: {:?}",
            ours.difference(&real).collect::<Vec<_>>()
        );
        assert!(!ours.is_empty(), "{left_out}");
        if expect_all {
            assert_eq!(ours, real, "{left_out}");
        }
    }
}

#[test]
fn severity_rule_reproduces_every_summary() {
    let dir = fixtures();
    let mut answers: Vec<PathBuf> = std::fs::read_dir(dir.join("scans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    answers.push(dir.join("dockerfile-checks-inspector-scan-cdx.json"));
    assert!(answers.len() >= 14);
    for path in answers {
        let real = read_json(&path);
        let sbom = &real["sbom"];
        let counted = SeverityCounts::of(sbom["vulnerabilities"].as_array().unwrap());
        assert_eq!(
            Some(counted),
            SeverityCounts::from_answer_metadata(sbom),
            "{}",
            path.display()
        );
    }
}

fn component(purl: &str) -> Value {
    let p = integration_tests::vulndb::Purl::parse(purl).unwrap();
    json!({ "bom-ref": format!("ref-{}", p.name), "type": "application", "name": p.name, "version": p.version, "purl": purl })
}

fn sbom_of(components: Vec<Value>) -> Value {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "version": 1,
        "metadata": { "component": { "bom-ref": "image", "type": "container", "name": "app:1" } },
        "components": components,
    })
}

#[tokio::test]
async fn refs_are_renumbered_and_source_packages_carry_debian_findings() {
    let emu = emulators().await;
    let mut glibc =
        component("pkg:deb/debian/glibc@2.36-9+deb12u4?arch=amd64&distro=bookworm&epoch=0");
    glibc["components"] = json!([
        component("pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=bookworm&epoch=0"),
        component("pkg:deb/debian/libc-bin@2.36-9+deb12u4?arch=amd64&distro=bookworm&epoch=0"),
    ]);
    let sbom = sbom_of(vec![
        json!({ "bom-ref": "os", "type": "operating-system", "name": "debian", "version": "12" }),
        component("pkg:deb/debian/usrmerge@37~deb12u1?arch=all&distro=bookworm&epoch=0"),
        glibc,
        component("pkg:npm/left-pad@1.3.0"),
    ]);
    let a = scan(&emu, &json!({ "sbom": sbom })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let out = &a.body["sbom"];
    let comps = all_components(out);
    let refs: Vec<&str> = comps
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        ["comp-1", "comp-2", "comp-3", "comp-4", "comp-5", "comp-6"]
    );
    assert_eq!(out["components"][2]["components"][1]["bom-ref"], "comp-5");
    assert_eq!(
        comps[1]["purl"],
        "pkg:deb/debian/usrmerge@37%7Edeb12u1?arch=all&distro=bookworm&epoch=0"
    );
    assert_eq!(comps[1]["version"], "37%7Edeb12u1");
    assert_eq!(
        comps[5]["properties"][0]["value"],
        "Component skipped: no rules found."
    );

    // glibc 2.36-9+deb12u4 on bookworm: the real answers list CVE-2024-2961
    // and others against the source package, never against libc6.
    let vulns = out["vulnerabilities"].as_array().unwrap();
    let ids: BTreeSet<&str> = vulns.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert!(ids.contains("CVE-2024-2961"), "{ids:?}");
    for v in vulns {
        assert_eq!(v["affects"], json!([{ "ref": "comp-3" }]), "{}", v["id"]);
    }
    let cve = vulns.iter().find(|v| v["id"] == "CVE-2024-2961").unwrap();
    assert!(
        cve["properties"]
            .as_array()
            .unwrap()
            .contains(&json!({ "name": "amazon:inspector:sbom_scanner:fixed_version:comp-3", "value": "0:2.36-9+deb12u6" })),
        "{}",
        cve["properties"]
    );
    assert!(
        comps[2].get("properties").is_none(),
        "a vulnerable component has no info property"
    );
    let counts = SeverityCounts::from_answer_metadata(out).unwrap();
    assert_eq!(counts, SeverityCounts::of(vulns));
}

#[tokio::test]
async fn too_many_components_and_wrong_sboms_are_refused() {
    let emu = emulators().await;
    let flat = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| component(&format!("pkg:npm/pkg-{i}@1.0.0")))
            .collect()
    };
    let a = scan(&emu, &json!({ "sbom": sbom_of(flat(5001)) })).await;
    assert_eq!(
        (a.status, a.error_type()),
        (400, "ValidationException"),
        "{}",
        a.body
    );
    assert_eq!(a.body["reason"], "FIELD_VALIDATION_FAILED");
    // Nested components count too: 2,500 parents with one child each, plus one.
    let mut nested: Vec<Value> = flat(2500)
        .into_iter()
        .map(|mut c| {
            c["components"] = json!([component("pkg:npm/child@1.0.0")]);
            c
        })
        .collect();
    nested.push(component("pkg:npm/one-more@1.0.0"));
    let a = scan(&emu, &json!({ "sbom": sbom_of(nested.clone()) })).await;
    assert_eq!(a.body["reason"], "FIELD_VALIDATION_FAILED", "{}", a.body);
    nested.pop();
    let a = scan(&emu, &json!({ "sbom": sbom_of(nested) })).await;
    assert_eq!(a.status, 200);
    assert_eq!(all_components(&a.body["sbom"]).len(), 5000);

    let mut old = sbom_of(flat(1));
    old["specVersion"] = json!("1.4");
    let a = scan(&emu, &json!({ "sbom": old })).await;
    assert_eq!((a.status, a.error_type()), (400, "ValidationException"));
    assert_eq!(a.body["reason"], "UNSUPPORTED_SBOM_TYPE");
    let a = scan(&emu, &json!({ "sbom": { "spdxVersion": "SPDX-2.3" } })).await;
    assert_eq!(a.body["reason"], "UNSUPPORTED_SBOM_TYPE");
    let a = scan(
        &emu,
        &json!({ "sbom": sbom_of(flat(1)), "outputFormat": "SARIF" }),
    )
    .await;
    assert_eq!(a.body["reason"], "FIELD_VALIDATION_FAILED");
    let a = scan(&emu, &json!({})).await;
    assert_eq!(a.body["reason"], "FIELD_VALIDATION_FAILED");

    let a = answer(
        client()
            .post(format!("{}/scan/sbom", emu.urls.inspector))
            .body("{\"sbom\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((a.status, a.error_type()), (400, "ValidationException"));
    assert_eq!(a.body["reason"], "CANNOT_PARSE");
    assert!(a.body["message"].is_string());

    let summaries: Vec<Value> = emu
        .inspector
        .calls()
        .into_iter()
        .map(|c| c.request)
        .collect();
    assert_eq!(summaries[0]["componentCount"], 5001);
    assert_eq!(summaries[2]["componentCount"], 5000);
}

#[tokio::test]
async fn inspector_faults() {
    let emu = emulators().await;
    let request = json!({ "sbom": sbom_of(vec![component("pkg:npm/left-pad@1.3.0")]) });
    emu.faults
        .set(vec![
            integration_tests::faults::FaultRule::new(
                "ScanSbom",
                integration_tests::faults::FaultKind::Throttle,
            )
            .times(1),
        ])
        .unwrap();
    let a = scan(&emu, &request).await;
    assert_eq!((a.status, a.error_type()), (429, "ThrottlingException"));
    assert_eq!(a.headers.get("retry-after").unwrap(), "1");
    assert!(a.body["message"].is_string());
    assert_eq!(scan(&emu, &request).await.status, 200);

    let a = admin_send(
        &emu,
        reqwest::Method::POST,
        "/faults",
        json!({ "operation": "ScanSbom", "kind": "error5xx", "count": 1 }),
    )
    .await;
    assert_eq!(a.status, 201);
    let a = scan(&emu, &request).await;
    assert_eq!((a.status, a.error_type()), (500, "InternalServerException"));
    assert_eq!(a.headers.get("retry-after").unwrap(), "1");
    assert_eq!(a.body["reason"], "OTHER");

    admin_send(
        &emu,
        reqwest::Method::PUT,
        "/faults",
        json!([{ "operation": "*", "kind": "access_denied", "count": 1 },
               { "operation": "ScanSbom", "kind": "drop", "count": 1 },
               { "operation": "ScanSbom", "kind": "delay", "ms": 300, "count": 1 }]),
    )
    .await;
    let a = scan(&emu, &request).await;
    assert_eq!((a.status, a.error_type()), (403, "AccessDeniedException"));
    let dropped = client()
        .post(format!("{}/scan/sbom", emu.urls.inspector))
        .body(request.to_string())
        .send()
        .await;
    assert!(dropped.is_err(), "a dropped call gets no answer");
    let started = std::time::Instant::now();
    assert_eq!(scan(&emu, &request).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let calls = emu.inspector.calls();
    let drop = calls
        .iter()
        .find(|c| c.fault.as_deref() == Some("drop"))
        .unwrap();
    assert_eq!(drop.status, None);
    let deleted = client()
        .delete(format!("{}/faults", emu.urls.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(emu.faults.rules().is_empty());
}

#[tokio::test]
async fn inspector_output_format() {
    let emu = emulators().await;
    let dir = fixtures();
    let sbom = read_json(&dir.join("dockerfile-checks-sbom.json"));
    let real_cdx = read_json(&dir.join("dockerfile-checks-inspector-scan-cdx.json"));
    let a = scan(&emu, &json!({ "sbom": sbom, "outputFormat": "INSPECTOR" })).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let out = &a.body["sbom"];
    let vulns = out["vulnerabilities"].as_array().unwrap();
    let ids: BTreeSet<&str> = vulns.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let real_ids: BTreeSet<&str> = real_cdx["sbom"]["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, real_ids);
    let count = &out["vulnerability_count"];
    let total: u64 = ["critical", "high", "medium", "low", "other"]
        .iter()
        .map(|k| count[k].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, ids.len());
    let real_counts = SeverityCounts::from_answer_metadata(&real_cdx["sbom"]).unwrap();
    assert_eq!(count["critical"], real_counts.critical);
    assert_eq!(count["high"], real_counts.high);
    let finding = vulns
        .iter()
        .find(|v| v["id"] == "IN-DOCKER-005-003")
        .unwrap();
    assert_eq!(
        finding["affects"][0]["file"],
        "dockerfile:comp-1.Dockerfile"
    );
    assert_eq!(finding["severity"], "high");
    let cve = vulns
        .iter()
        .find(|v| v["affects"][0].get("installed_version").is_some())
        .unwrap();
    assert!(
        cve["affects"][0]["installed_version"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/ubuntu/")
    );
    assert!(
        out["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["info_message"] == "Component skipped: no rules found.")
    );
}

#[tokio::test]
async fn emulators_binary_prints_its_urls() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scangate-emulators"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the URL line in time")
        .unwrap()
        .unwrap();
    let urls: Value = serde_json::from_str(&line).unwrap();
    for k in ["codepipeline", "inspector", "admin"] {
        assert!(
            urls[k].as_str().unwrap().starts_with("http://127.0.0.1:"),
            "{line}"
        );
    }
    let health: Value = client()
        .get(format!("{}/health", urls["admin"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true);
    let knowledge: Value = client()
        .get(format!(
            "{}/inspector/knowledge",
            urls["admin"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        knowledge["vulnerabilities"].as_u64().unwrap() > 1000,
        "{knowledge}"
    );
    child.kill().await.unwrap();
}

#[test]
fn vulndb_lists_what_it_knows() {
    let db = VulnDb::shared_default().unwrap();
    let purls = db.vulnerable_purls();
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:deb/debian/glibc@")),
        "{:?}",
        &purls[..5]
    );
    let stats = db.stats();
    assert!(stats.sources.len() >= 14);
    assert!(stats.dockerfile_findings >= 6);
}
