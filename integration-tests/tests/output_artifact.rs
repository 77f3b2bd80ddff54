//! End to end: the action's output artifact (a zip of the reports, written
//! with the job's artifact credentials and the pipeline's encryption),
//! artifact-credential renewal on long jobs, and base-image attribution,
//! through the real `scangate worker` binary, the emulators, moto S3 and the
//! real docker-registry.
//!
//! The worker reaches moto through a small recording proxy: it notes which
//! access key and which encryption headers each S3 request carried, and
//! refuses (403 AccessDenied, as a bucket policy would) the requests the
//! test's gate rejects.

mod support;

use std::io::Read as _;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use integration_tests::Emulators;
use integration_tests::codepipeline::{
    Artifact, CodePipelineEmulator, EncryptionKey, JobSnapshot, NewJob,
};
use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::images::{ImageBuilder, Layer};
use integration_tests::process::MotoServer;
use integration_tests::registry::Registry;
use serde_json::Value;
use support::{RESULT_TIMEOUT, RunningWorker, Worker, failure, success as variables};

const BUCKET: &str = "artifacts";
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/6f1d3c2e-5b7a-4c1e-9f00-2a4b6c8d0e1f";

/// One S3 request as the proxy saw it.
#[derive(Debug, Clone, Default)]
struct S3Call {
    method: String,
    path: String,
    access_key: Option<String>,
    sse: Option<String>,
    sse_kms_key: Option<String>,
    /// For uploads of output artifacts: whether the job already had its
    /// result when the upload arrived (filled in by the gate).
    job_had_result: Option<bool>,
}

type Gate = Arc<dyn Fn(&mut S3Call) -> bool + Send + Sync>;

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<S3Call>>>,
    gate: Gate,
}

struct S3Proxy {
    endpoint: String,
    calls: Arc<Mutex<Vec<S3Call>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Proxy {
    async fn start(upstream: &str, gate: Gate) -> S3Proxy {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            calls: calls.clone(),
            gate,
        };
        let app = axum::Router::new().fallback(proxy).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        S3Proxy {
            endpoint: format!("http://{addr}"),
            calls,
            task,
        }
    }

    fn calls(&self) -> Vec<S3Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls on `s3://artifacts/KEY`.
    fn calls_on(&self, key: &str) -> Vec<S3Call> {
        let path = format!("/{BUCKET}/{key}");
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }
}

async fn proxy(State(st): State<ProxyState>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 512 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let h = |k: &str| {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut call = S3Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        // SigV4: "AWS4-HMAC-SHA256 Credential=AKID/date/region/s3/aws4_request, …"
        access_key: h("authorization").and_then(|a| {
            a.split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .map(str::to_owned)
        }),
        sse: h("x-amz-server-side-encryption"),
        sse_kms_key: h("x-amz-server-side-encryption-aws-kms-key-id"),
        job_had_result: None,
    };
    let allowed = (st.gate)(&mut call);
    st.calls.lock().unwrap().push(call);
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>proxy</RequestId></Error>",
        )
            .into_response();
    }
    let url = format!(
        "{}{}",
        st.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        // moto checks no signatures, so the Host can change under them.
        if k != header::HOST && k != header::CONTENT_LENGTH {
            headers.append(k.clone(), v.clone());
        }
    }
    let resp = match st
        .client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING && k != header::CONNECTION
        {
            out_headers.append(k.clone(), v.clone());
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    (status, out_headers, bytes).into_response()
}

/// Lets through only the keys CodePipeline issued for some job, so a worker
/// falling back to its own role (AKIDEXAMPLE) would be refused, as the
/// artifact bucket's policy refuses it in AWS; notes for each output upload
/// whether the job already had a result.
fn job_credentials_only(cp: CodePipelineEmulator) -> Gate {
    Arc::new(move |call: &mut S3Call| {
        let jobs = cp.jobs();
        let issued = |key: &str| {
            jobs.iter().any(|j| {
                cp.issued_credentials(&j.id)
                    .iter()
                    .any(|c| c.access_key_id == key)
            })
        };
        if call.method == "PUT" && call.path.ends_with(".zip") {
            call.job_had_result = Some(jobs.iter().any(|j| {
                j.output_artifacts.iter().any(|a| {
                    a.location
                        .as_ref()
                        .and_then(|l| l.s3_location.as_ref())
                        .is_some_and(|s| call.path.ends_with(&s.object_key))
                }) && j.result.is_some()
            }));
        }
        call.access_key.as_deref().is_some_and(issued)
    })
}

struct Env {
    emus: Emulators,
    registry: Registry,
    moto: MotoServer,
    reports: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        let moto =
            MotoServer::start().expect("moto_server: run .ci/run, or set SCANGATE_MOTO_SERVER");
        let env = Env {
            emus: support::start_emulators().await,
            registry: Registry::start().expect("starting docker-registry"),
            moto,
            reports: tempfile::tempdir().unwrap(),
        };
        env.s3()
            .await
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        env
    }

    /// A worker whose S3 requests go through `proxy`.
    fn worker(&self, proxy: &S3Proxy) -> Worker {
        Worker::new(&self.emus)
            .s3(&proxy.endpoint)
            .registry(&self.registry.addr)
            .reports(self.reports.path())
    }

    async fn s3(&self) -> aws_sdk_s3::Client {
        support::s3_client(&self.moto.endpoint).await
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3()
            .await
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3()
            .await
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("s3://{BUCKET}/{key}: {e:?}"));
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    async fn result(&self, id: &str, w: &RunningWorker) -> JobSnapshot {
        w.job_result(&self.emus, id, RESULT_TIMEOUT).await
    }

    fn record(&self, id: &str) -> Value {
        let p = self
            .reports
            .path()
            .join("jobs")
            .join(id)
            .join("record.json");
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    }

    async fn push_debian_fixture(&self) -> String {
        support::push_debian_fixture(&self.registry, "2024").await;
        self.registry.reference("fixture/debian:2024")
    }
}

fn job(config: &[(&str, &str)], input: Option<&str>, output: Option<&str>, key: bool) -> NewJob {
    NewJob {
        input_artifacts: input
            .map(|k| Artifact::s3("BuildOutput", BUCKET, k))
            .into_iter()
            .collect(),
        output_artifacts: output
            .map(|k| Artifact::s3("ScanReport", BUCKET, k))
            .into_iter()
            .collect(),
        encryption_key: key.then(|| EncryptionKey {
            id: KMS_KEY.into(),
            key_type: "KMS".into(),
        }),
        ..support::scan_job(config)
    }
}

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    for (name, body) in files {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(body.as_bytes()).unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

/// name → contents of every entry.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    (0..z.len())
        .map(|i| {
            let mut e = z.by_index(i).unwrap();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            (e.name().unwrap().to_string(), body)
        })
        .collect()
}

/// PASS with the job's KMS key and FAIL without one: both get the zip with
/// the documented entries, before their result, written with the job's own
/// credentials, SSE-KMS with the job's key id or SSE-S3.
#[tokio::test(flavor = "multi_thread")]
async fn output_zip_on_pass_and_fail_with_job_credentials_and_encryption() {
    let env = Env::new().await;
    let proxy = S3Proxy::start(
        &env.moto.endpoint,
        job_credentials_only(env.emus.codepipeline.clone()),
    )
    .await;
    let image = env.push_debian_fixture().await;
    let w = env.worker(&proxy).spawn();
    let cp = &env.emus.codepipeline;

    let pass = cp.enqueue_job(job(
        &[("ImageUrl", &image), ("HighThreshold", "1")],
        None,
        Some("app-pipeline/ScanReport/pass.zip"),
        true,
    ));
    let fail = cp.enqueue_job(job(
        &[("ImageUrl", &image)],
        None,
        Some("app-pipeline/ScanReport/fail.zip"),
        false,
    ));
    let pass_snap = env.result(&pass, &w).await;
    assert_eq!(variables(&pass_snap)["VERDICT"], "PASS");
    let fail_snap = env.result(&fail, &w).await;
    let (kind, message) = failure(&fail_snap);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 HIGH (threshold 0)"), "{message}");

    for (id, key, verdict) in [
        (&pass, "app-pipeline/ScanReport/pass.zip", "PASS"),
        (&fail, "app-pipeline/ScanReport/fail.zip", "FAIL"),
    ] {
        let files = unzip(&env.get(key).await);
        for name in ["sbom.cdx.json", "findings.json", "report.md", "record.json"] {
            assert!(
                files.contains_key(name),
                "{name} missing from {:?}",
                files.keys()
            );
        }
        let record: Value = serde_json::from_slice(&files["record.json"]).unwrap();
        assert_eq!(record["job_id"], id.as_str());
        assert_eq!(record["verdict"], verdict);
        let sbom: Value = serde_json::from_slice(&files["sbom.cdx.json"]).unwrap();
        assert_eq!(sbom["bomFormat"], "CycloneDX");
        assert_eq!(sbom["specVersion"], "1.5");
        let findings: Value = serde_json::from_slice(&files["findings.json"]).unwrap();
        assert!(
            findings["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["id"] == "CVE-2023-50387"),
            "{findings}"
        );
        // The zip's reports are the store's, byte for byte.
        let stored =
            std::fs::read(env.reports.path().join("jobs").join(id).join("report.md")).unwrap();
        assert_eq!(files["report.md"], stored);

        let puts: Vec<S3Call> = proxy
            .calls_on(key)
            .into_iter()
            .filter(|c| c.method == "PUT")
            .collect();
        assert_eq!(puts.len(), 1, "{puts:?}");
        let issued = cp.issued_credentials(id);
        assert_eq!(
            puts[0].access_key.as_deref(),
            Some(issued[0].access_key_id.as_str()),
            "the job's own artifact credentials"
        );
        assert_eq!(
            puts[0].job_had_result,
            Some(false),
            "written before the result"
        );
        assert_eq!(
            cp.job(id).unwrap().get_job_details_calls,
            0,
            "fresh credentials"
        );
    }

    let puts = |key: &str| {
        proxy
            .calls_on(key)
            .into_iter()
            .find(|c| c.method == "PUT")
            .unwrap()
    };
    let p = puts("app-pipeline/ScanReport/pass.zip");
    assert_eq!(p.sse.as_deref(), Some("aws:kms"));
    assert_eq!(p.sse_kms_key.as_deref(), Some(KMS_KEY));
    let f = puts("app-pipeline/ScanReport/fail.zip");
    assert_eq!(f.sse.as_deref(), Some("AES256"));
    assert_eq!(f.sse_kms_key, None);

    // moto keeps what was asked for.
    let s3 = env.s3().await;
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("app-pipeline/ScanReport/pass.zip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(KMS_KEY));
    assert_eq!(head.content_type(), Some("application/zip"));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("app-pipeline/ScanReport/fail.zip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    assert!(
        proxy
            .calls()
            .iter()
            .all(|c| c.access_key.as_deref() != Some("AKIDEXAMPLE")),
        "the worker's own credentials never touch the artifact bucket"
    );
}

/// A job that outlives the renewal threshold gets new artifact credentials
/// (GetJobDetails) before it writes its output; the input artifact, read
/// early, used the ones PollForJobs gave.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_job_renews_its_artifact_credentials_before_the_upload() {
    let env = Env::new().await;
    let proxy = S3Proxy::start(
        &env.moto.endpoint,
        job_credentials_only(env.emus.codepipeline.clone()),
    )
    .await;
    let image = env.push_debian_fixture().await;
    env.put(
        "app-pipeline/BuildOutpu/in.zip",
        zip_of(&[("imageDetail.json", &format!(r#"{{"ImageURI":"{image}"}}"#))]),
    )
    .await;
    // Inspector takes 3 s: the job is "long" against a 1.5 s threshold.
    env.emus
        .faults
        .set(vec![FaultRule::new(
            "ScanSbom",
            FaultKind::Delay { ms: 3000 },
        )])
        .unwrap();
    let w = env
        .worker(&proxy)
        .env("SCANGATE_ARTIFACT_CREDENTIALS_REFRESH_AFTER", "1500ms")
        .spawn();
    let cp = &env.emus.codepipeline;
    let id = cp.enqueue_job(job(
        &[("HighThreshold", "1")],
        Some("app-pipeline/BuildOutpu/in.zip"),
        Some("app-pipeline/ScanReport/out.zip"),
        true,
    ));
    let snap = env.result(&id, &w).await;
    assert_eq!(variables(&snap)["VERDICT"], "PASS", "{}", w.log());
    assert_eq!(snap.get_job_details_calls, 1);
    let issued = cp.issued_credentials(&id);
    assert_eq!(issued.len(), 2);
    let key_of = |key: &str, method: &str| {
        proxy
            .calls_on(key)
            .into_iter()
            .find(|c| c.method == method)
            .and_then(|c| c.access_key)
    };
    assert_eq!(
        key_of("app-pipeline/BuildOutpu/in.zip", "GET").as_deref(),
        Some(issued[0].access_key_id.as_str()),
        "the input was read with the first credentials"
    );
    assert_eq!(
        key_of("app-pipeline/ScanReport/out.zip", "PUT").as_deref(),
        Some(issued[1].access_key_id.as_str()),
        "the output was written with the renewed ones"
    );
    assert!(unzip(&env.get("app-pipeline/ScanReport/out.zip").await).contains_key("record.json"));
    assert!(
        w.log().contains("artifact credentials renewed"),
        "{}",
        w.log()
    );
}

/// The artifact bucket refuses the upload: the job, which would have passed,
/// fails with PermissionError naming the object.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upload_is_a_permission_error() {
    let env = Env::new().await;
    let gate: Gate = Arc::new(|c: &mut S3Call| c.method != "PUT");
    let proxy = S3Proxy::start(&env.moto.endpoint, gate).await;
    let image = env.push_debian_fixture().await;
    let w = env.worker(&proxy).spawn();
    let id = env.emus.codepipeline.enqueue_job(job(
        &[("ImageUrl", &image), ("HighThreshold", "1")],
        None,
        Some("app-pipeline/ScanReport/denied.zip"),
        true,
    ));
    let (kind, message) = failure(&env.result(&id, &w).await);
    assert_eq!(kind, "PermissionError");
    assert!(
        message.contains("writing the output artifact s3://artifacts/app-pipeline/ScanReport/denied.zip was denied"),
        "{message}"
    );
    assert!(message.contains("and its KMS key"), "{message}");
    assert_eq!(env.record(&id)["verdict"], "PASS", "the scan itself passed");
}

/// An image made of the Alpine 3.18.2 fixture (whose busybox has a
/// CRITICAL, CVE-2022-48174) plus an application layer. With
/// `base_image.thresholds.critical: null` the inherited CRITICAL is
/// reported, not gated; an application layer that brings its own CRITICAL
/// still fails; without the section the base's CRITICAL fails the gate.
#[tokio::test(flavor = "multi_thread")]
async fn base_image_findings_are_inherited_and_judged_by_the_base_thresholds() {
    let env = Env::new().await;
    let proxy = S3Proxy::start(
        &env.moto.endpoint,
        job_credentials_only(env.emus.codepipeline.clone()),
    )
    .await;
    let base_layer = support::alpine_fixture_layer();
    let npm = |name: &str, version: &str| {
        Layer::new()
            .file(
                &format!("app/node_modules/{name}/package.json"),
                format!(r#"{{"name":"{name}","version":"{version}"}}"#),
            )
            .created_by("COPY node_modules /app/node_modules # buildkit")
    };
    let base = ImageBuilder::new()
        .layer(base_layer.clone())
        .build()
        .unwrap();
    base.push(&env.registry.addr, "fixture/alpine:3.18.2", None)
        .await
        .unwrap();
    let base_ref = env.registry.reference("fixture/alpine:3.18.2");
    // Own layer without vulnerabilities; the base named by the policy.
    let app = ImageBuilder::new()
        .layer(base_layer.clone())
        .layer(npm("left-pad", "1.3.0"))
        .build()
        .unwrap();
    assert_eq!(app.layers[0].diff_id, base.layers[0].diff_id);
    app.push(&env.registry.addr, "fixture/app:1", None)
        .await
        .unwrap();
    // Own layer with a CRITICAL (ip 2.0.0, CVE-2023-42282); the base named
    // by the image's own annotation.
    let app2 = ImageBuilder::new()
        .layer(base_layer)
        .layer(npm("ip", "2.0.0"))
        .annotation("org.opencontainers.image.base.name", &base_ref)
        .annotation(
            "org.opencontainers.image.base.digest",
            &base.manifest_digest,
        )
        .build()
        .unwrap();
    app2.push(&env.registry.addr, "fixture/app:2", None)
        .await
        .unwrap();

    let with_ref = format!(
        "version: 1\nbase_image:\n  ref: {base_ref}\n  thresholds: {{ critical: null, high: null }}\n"
    );
    let from_annotations =
        "version: 1\nbase_image:\n  thresholds: { critical: null, high: null }\n".to_owned();
    env.put(
        "app-pipeline/Source/policy.zip",
        zip_of(&[
            ("with-ref.yaml", &with_ref),
            ("from-annotations.yaml", &from_annotations),
        ]),
    )
    .await;
    let w = env.worker(&proxy).spawn();
    let cp = &env.emus.codepipeline;
    let input = Some("app-pipeline/Source/policy.zip");

    let inherited = cp.enqueue_job(job(
        &[
            ("ImageUrl", &env.registry.reference("fixture/app:1")),
            ("PolicyFile", "with-ref.yaml"),
        ],
        input,
        Some("app-pipeline/ScanReport/base.zip"),
        false,
    ));
    let snap = env.result(&inherited, &w).await;
    let v = variables(&snap);
    assert_eq!(v["VERDICT"], "PASS", "{}", w.log());
    assert_eq!(
        v["CRITICAL"], "1",
        "the inherited CRITICAL is still reported"
    );
    let files = unzip(&env.get("app-pipeline/ScanReport/base.zip").await);
    let record: Value = serde_json::from_slice(&files["record.json"]).unwrap();
    let b = &record["base_image"];
    assert_eq!(b["applied"], true, "{b}");
    assert_eq!(b["source"], "policy");
    assert_eq!(b["reference"], base_ref.as_str());
    assert_eq!(b["digest"], base.manifest_digest.as_str());
    assert_eq!(
        (b["base_layers"].as_u64(), b["matched_layers"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(b["image_layers"], 2);
    assert_eq!(b["counts"]["critical"], 1);
    let ids: Vec<&str> = b["inherited"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(ids.contains(&"CVE-2022-48174"), "{ids:?}");
    let busybox = b["inherited"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "CVE-2022-48174")
        .unwrap();
    assert_eq!(busybox["layers"], serde_json::json!([0]));
    assert!(
        busybox["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:apk/alpine/busybox@")
    );

    let own_critical = cp.enqueue_job(job(
        &[
            ("ImageUrl", &env.registry.reference("fixture/app:2")),
            ("PolicyFile", "from-annotations.yaml"),
        ],
        input,
        None,
        false,
    ));
    let (kind, message) = failure(&env.result(&own_critical, &w).await);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 CRITICAL (threshold 0)"), "{message}");
    let b = &env.record(&own_critical)["base_image"];
    assert_eq!(b["source"], "annotation", "{b}");
    assert_eq!(b["applied"], true);
    assert_eq!(
        b["reference"],
        format!("{base_ref}@{}", base.manifest_digest).as_str()
    );
    let ids: Vec<&str> = b["inherited"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(ids.contains(&"CVE-2022-48174"), "{ids:?}");
    assert!(!ids.contains(&"CVE-2023-42282"), "ip is the image's own");

    // Without the section, the same image fails on the base's CRITICAL.
    let plain = cp.enqueue_job(job(
        &[("ImageUrl", &env.registry.reference("fixture/app:1"))],
        None,
        None,
        false,
    ));
    let (kind, message) = failure(&env.result(&plain, &w).await);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 CRITICAL (threshold 0)"), "{message}");
    assert!(env.record(&plain)["base_image"].is_null());

    // A base that cannot be resolved warns and gates everything.
    env.put(
        "app-pipeline/Source/missing.zip",
        zip_of(&[(
            "p.yaml",
            &format!(
                "version: 1\nbase_image:\n  ref: {}\n  thresholds: {{ critical: null, high: null }}\n",
                env.registry.reference("fixture/nothing:here")
            ),
        )]),
    )
    .await;
    let unresolved = cp.enqueue_job(job(
        &[
            ("ImageUrl", &env.registry.reference("fixture/app:1")),
            ("PolicyFile", "p.yaml"),
        ],
        Some("app-pipeline/Source/missing.zip"),
        None,
        false,
    ));
    let (kind, _) = failure(&env.result(&unresolved, &w).await);
    assert_eq!(kind, "JobFailed", "a missing base is not a job error");
    let r = env.record(&unresolved);
    assert_eq!(r["base_image"]["applied"], false);
    let warning = r["base_image"]["warning"].as_str().unwrap();
    assert!(warning.contains("could not be resolved"), "{warning}");
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str() == Some(warning)),
        "{r}"
    );
}
