//! End to end: the real `scangate worker` binary against the CodePipeline
//! and Inspector emulators and the real Debian `docker-registry`, with
//! images pushed by our own code or by skopeo.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::codepipeline::{JobStatus, NewJob};
use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::registry::Registry;
use integration_tests::{corpus, images};
use support::{WorkerEnv as Env, artifact_zip, failure, success};

#[tokio::test(flavor = "multi_thread")]
async fn pass_with_real_counts_and_digest() {
    let env = Env::new().await;
    let digest = env.push_debian_fixture("2024").await;
    let w = env.worker().spawn();
    let image = env.registry.reference("fixture/debian:2024");
    let id = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    let snap = env.result(&id, &w).await;
    let v = success(&snap);
    // The real ScanSbom answer for this SBOM: 0/1/1/0/7.
    assert_eq!(v["VERDICT"], "PASS");
    assert_eq!(v["CRITICAL"], "0");
    assert_eq!(v["HIGH"], "1");
    assert_eq!(v["MEDIUM"], "1");
    assert_eq!(v["LOW"], "0");
    assert_eq!(v["OTHER"], "7");
    assert_eq!(v["HIGHEST_SEVERITY"], "HIGH");
    assert_eq!(v["IMAGE_DIGEST"], digest);
    assert!(v["COMPONENTS"].parse::<usize>().unwrap() > 80, "{v:?}");
    assert_eq!(snap.result_calls, 1);
    // The job's record and SBOM are in the reports store.
    let dir = env.reports.path().join("jobs").join(&id);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("record.json")).unwrap()).unwrap();
    assert_eq!(record["verdict"], "PASS");
    assert_eq!(record["image"]["digest"], digest.as_str());
    assert!(dir.join("sbom.cdx.json").exists());
    assert!(v["REPORT_URI"].starts_with("file://"));
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_names_the_threshold_and_the_findings() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let w = env.worker().spawn();
    let id = env.job(&[("ImageUrl", &env.registry.reference("fixture/debian:2024"))]);
    let snap = env.result(&id, &w).await;
    let (kind, msg) = failure(&snap);
    assert_eq!(kind, "JobFailed");
    assert!(msg.contains("1 HIGH (threshold 0)"), "{msg}");
    assert!(msg.contains("CVE-2023-50387"), "{msg}");
    assert!(msg.contains("systemd"), "{msg}");
    assert!(msg.contains(&id), "{msg}");
    assert!(msg.chars().count() <= 5000);
}

#[tokio::test(flavor = "multi_thread")]
async fn fixable_only_and_lenient_thresholds_pass() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let w = env.worker().spawn();
    // The one HIGH (CVE-2023-50387, systemd) has no fixed version in the
    // real answer, so counting only fixable findings passes.
    let id = env.job(&[
        ("ImageUrl", &env.registry.reference("fixture/debian:2024")),
        ("FixableOnly", "true"),
    ]);
    let snap = env.result(&id, &w).await;
    assert_eq!(success(&snap)["HIGH"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_is_a_configuration_error() {
    let env = Env::new().await;
    let w = env.worker().spawn();
    let bad_ref = env.job(&[("ImageUrl", "Not An Image::ref")]);
    let bad_threshold = env.job(&[("ImageUrl", "127.0.0.1:1/x:1"), ("HighThreshold", "lots")]);
    let bad_platform = env.job(&[("ImageUrl", "127.0.0.1:1/x:1"), ("Platform", "amd64")]);
    for (id, needle) in [
        (bad_ref, "ImageUrl"),
        (bad_threshold, "HighThreshold"),
        (bad_platform, "Platform"),
    ] {
        let (kind, msg) = failure(&env.result(&id, &w).await);
        assert_eq!(kind, "ConfigurationError", "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tag_is_image_not_found() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let w = env.worker().spawn();
    let image = env.registry.reference("fixture/debian:does-not-exist");
    let id = env.job(&[("ImageUrl", &image)]);
    let (kind, msg) = failure(&env.result(&id, &w).await);
    assert_eq!(kind, "JobFailed");
    assert!(msg.contains("image not found"), "{msg}");
    assert!(msg.contains(&image), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_scansbom_still_succeeds() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    env.emus
        .faults
        .set(vec![
            FaultRule::new("ScanSbom", FaultKind::Throttle).times(2),
        ])
        .unwrap();
    let w = env.worker().spawn();
    let id = env.job(&[
        ("ImageUrl", &env.registry.reference("fixture/debian:2024")),
        ("HighThreshold", "unlimited"),
    ]);
    let snap = env.result(&id, &w).await;
    assert_eq!(success(&snap)["HIGH"], "1");
    let calls = env.emus.inspector.calls();
    assert_eq!(calls.iter().filter(|c| c.status == Some(429)).count(), 2);
    assert_eq!(calls.iter().filter(|c| c.status == Some(200)).count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn inspector_access_denied_is_a_permission_error() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    env.emus
        .faults
        .set(vec![FaultRule::new("ScanSbom", FaultKind::AccessDenied)])
        .unwrap();
    let w = env.worker().spawn();
    let id = env.job(&[("ImageUrl", &env.registry.reference("fixture/debian:2024"))]);
    let (kind, msg) = failure(&env.result(&id, &w).await);
    assert_eq!(kind, "PermissionError", "{msg}");
    assert!(msg.contains("inspector-scan:ScanSbom"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_sbom_is_split_under_the_limit() {
    let env = Env::new().await;
    let img = images::big_dpkg_image(5_600).unwrap();
    img.push(&env.registry.addr, "fixture/big:1", None)
        .await
        .unwrap();
    let w = env.worker().spawn();
    let id = env.job(&[("ImageUrl", &env.registry.reference("fixture/big:1"))]);
    let snap = env.result(&id, &w).await;
    assert_eq!(success(&snap)["COMPONENTS"], "5600");
    let calls = env.emus.inspector.calls();
    assert!(calls.len() >= 2, "{calls:?}");
    for c in &calls {
        let n = c.request["componentCount"].as_u64().unwrap();
        assert!(n <= 5_000, "a ScanSbom call carried {n} components");
        assert_eq!(c.status, Some(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_forty_jobs_exactly_one_result_each() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let image = env.registry.reference("fixture/debian:2024");
    let w1 = env.worker().slots(3).spawn();
    let w2 = env.worker().slots(3).spawn();
    let ids: Vec<String> = (0..40)
        .map(|i| {
            if i % 4 == 0 {
                env.job(&[("ImageUrl", &image)])
            } else {
                env.job(&[("ImageUrl", &image), ("HighThreshold", "5")])
            }
        })
        .collect();
    for id in &ids {
        env.result(id, &w1).await;
    }
    let mut passed = 0;
    for id in &ids {
        let s = env.emus.codepipeline.job(id).unwrap();
        assert_eq!(
            s.result_calls, 1,
            "job {id} had {} result calls",
            s.result_calls
        );
        assert!(matches!(s.status, JobStatus::Succeeded | JobStatus::Failed));
        if s.status == JobStatus::Succeeded {
            passed += 1;
        }
    }
    assert_eq!(passed, 30);
    // Both workers took part.
    for w in [&w1, &w2] {
        assert!(w.log().contains("job result sent"), "{}", w.log());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_jobs() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    env.emus
        .faults
        .set(vec![
            FaultRule::new("ScanSbom", FaultKind::Delay { ms: 3_000 }).times(1),
        ])
        .unwrap();
    let w = env.worker().env("SCANGATE_SHUTDOWN_GRACE", "60s").spawn();
    let id = env.job(&[
        ("ImageUrl", &env.registry.reference("fixture/debian:2024")),
        ("HighThreshold", "5"),
    ]);
    wait_status(&env, &id, JobStatus::InProgress).await;
    w.terminate();
    assert_eq!(w.wait_exit(Duration::from_secs(60)), Some(0), "{}", w.log());
    let s = env.emus.codepipeline.job(&id).unwrap();
    assert_eq!(s.status, JobStatus::Succeeded, "{}", w.log());
    // No polling after the signal: a job queued now stays queued.
    let late = env.job(&[("ImageUrl", "x/y:1")]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.emus.codepipeline.job(&late).unwrap().status,
        JobStatus::Created
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_fails_what_the_grace_period_cannot_finish() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    env.emus
        .faults
        .set(vec![FaultRule::new(
            "ScanSbom",
            FaultKind::Delay { ms: 30_000 },
        )])
        .unwrap();
    let w = env.worker().env("SCANGATE_SHUTDOWN_GRACE", "3s").spawn();
    let id = env.job(&[("ImageUrl", &env.registry.reference("fixture/debian:2024"))]);
    wait_status(&env, &id, JobStatus::InProgress).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.terminate();
    assert_eq!(w.wait_exit(Duration::from_secs(20)), Some(0), "{}", w.log());
    let (kind, msg) = failure(&env.emus.codepipeline.job(&id).unwrap());
    assert_eq!(kind, "SystemUnavailable");
    assert!(msg.contains("worker shutting down"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_action_type_is_reported_once_and_the_worker_stays_up() {
    let env = Env::new().await;
    let w = env
        .worker()
        .env("SCANGATE_PROVIDER", "NoSuchProvider")
        .spawn();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!w.exited(), "worker exited: {}", w.log());
    let log = w.log();
    assert_eq!(log.matches("was not found in region").count(), 1, "{log}");
    assert!(log.contains("Custom/Test/NoSuchProvider/1"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_log() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let w = env
        .worker()
        .envs(&[
            ("SCANGATE_REGISTRY_PASSWORD", "registry-pass-123"),
            ("SCANGATE_REGISTRY_USERNAME", "u"),
            ("SCANGATE_REGISTRY_HOSTS", &env.registry.addr),
        ])
        .spawn();
    let id = env.job(&[
        ("ImageUrl", &env.registry.reference("fixture/debian:2024")),
        ("HighThreshold", "5"),
        ("SecretToken", "config-secret-456"),
    ]);
    env.result(&id, &w).await;
    let log = w.log();
    for secret in ["registry-pass-123", "config-secret-456", "test-secret"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    // Nor the artifact credentials the job carried.
    assert!(!log.contains("secretAccessKey"), "{log}");
    assert!(!log.contains("sessionToken"), "{log}");
}

async fn wait_status(env: &Env, id: &str, want: JobStatus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if env.emus.codepipeline.job(id).map(|s| s.status) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} never reached {want:?}");
}

/// The corpus debian-base image (debootstrap, three layers with whiteouts),
/// pushed with skopeo: every package of the ground truth is found.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_debian_base_end_to_end() {
    let dir = corpus::ensure_corpus(&["debian-base"]).expect("building the corpus");
    let env = Env::new().await;
    let digest = corpus::push_oci_layout(
        &env.registry,
        &dir.join("debian-base"),
        "corpus/debian-base:1",
    )
    .expect("skopeo push");
    let w = env.worker().spawn();
    let started = Instant::now();
    let id = env.job(&[("ImageUrl", &env.registry.reference("corpus/debian-base:1"))]);
    let snap = env.result(&id, &w).await;
    let elapsed = started.elapsed();
    let v = success(&snap);
    let expected: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(corpus::expected_path("debian-base")).unwrap())
            .unwrap();
    assert_eq!(v["COMPONENTS"], expected.len().to_string());
    assert_eq!(v["IMAGE_DIGEST"], digest);
    // Score the stored SBOM with the corpus scorer.
    let sbom = env
        .reports
        .path()
        .join("jobs")
        .join(&id)
        .join("sbom.cdx.json");
    let out = Command::new("python3")
        .arg(corpus::shared_dir().join("corpus/score.py"))
        .arg(corpus::expected_path("debian-base"))
        .arg(&sbom)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("debian-base job took {elapsed:?}\n{text}");
    assert!(text.contains("recall=1.0000 precision=1.0000"), "{text}");
}

/// Reports land in S3 (moto) under the documented keys, encrypted with the
/// configured KMS key (SCANGATE_REPORTS_KMS_KEY); the image comes from `imageDetail.json` in the input artifact, read with the
/// job's own credentials, when `ImageUrl` is not set.
#[tokio::test(flavor = "multi_thread")]
async fn reports_in_s3_and_image_from_the_input_artifact() {
    let moto = integration_tests::process::MotoServer::start()
        .expect("moto_server: run .ci/run, or set SCANGATE_MOTO_SERVER");
    let s3 = support::s3_client(&moto.endpoint).await;
    for b in ["reports", "artifacts"] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let env = Env::new().await;
    let digest = env.push_debian_fixture("2024").await;
    let image = env.registry.reference("fixture/debian:2024");
    let key = "app-pipeline/BuildOutpu/abc123.zip";
    s3.put_object()
        .bucket("artifacts")
        .key(key)
        .body(artifact_zip("imageDetail.json", &format!(r#"{{"ImageURI":"{image}"}}"#)).into())
        .send()
        .await
        .unwrap();
    let w = env
        .worker()
        .reports_uri("s3://reports/scangate")
        .env("SCANGATE_REPORTS_KMS_KEY", "alias/scangate-reports")
        .s3(&moto.endpoint)
        .spawn();
    let job = NewJob {
        pipeline_name: "app-pipeline".into(),
        stage_name: "Scan".into(),
        action_name: "ImageScan".into(),
        configuration: [("HighThreshold".to_string(), "5".to_string())].into(),
        input_artifacts: vec![integration_tests::codepipeline::Artifact::s3(
            "BuildOutput",
            "artifacts",
            key,
        )],
        ..NewJob::default()
    };
    let id = env.emus.codepipeline.enqueue_job(job);
    let snap = env.result(&id, &w).await;
    let v = success(&snap);
    assert_eq!(v["IMAGE_DIGEST"], digest);
    assert_eq!(
        v["REPORT_URI"],
        format!("s3://reports/scangate/jobs/{id}/report.html")
    );
    assert_eq!(
        v["SBOM_URI"],
        format!("s3://reports/scangate/jobs/{id}/sbom.cdx.json")
    );
    let listed = s3
        .list_objects_v2()
        .bucket("reports")
        .prefix("scangate/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    for f in [
        "record.json",
        "sbom.cdx.json",
        "findings.json",
        "report.md",
        "report.html",
        "report.sarif",
        "junit.xml",
    ] {
        let want = format!("scangate/jobs/{id}/{f}");
        assert!(
            keys.contains(&want.as_str()),
            "{want} missing from {keys:?}"
        );
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with("scangate/index/app-pipeline/")
                && k.ends_with(&format!("{id}.json"))),
        "{keys:?}"
    );
    let head = s3
        .head_object()
        .bucket("reports")
        .key(format!("scangate/jobs/{id}/record.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some("alias/scangate-reports"));
}

/// No ImageUrl and an artifact without imageDetail.json: a configuration
/// error that says what to do.
#[tokio::test(flavor = "multi_thread")]
async fn artifact_without_an_image_file_is_a_configuration_error() {
    let moto = integration_tests::process::MotoServer::start()
        .expect("moto_server: run .ci/run, or set SCANGATE_MOTO_SERVER");
    let s3 = support::s3_client(&moto.endpoint).await;
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    s3.put_object()
        .bucket("artifacts")
        .key("src.zip")
        .body(artifact_zip("README.md", "hello").into())
        .send()
        .await
        .unwrap();
    let env = Env::new().await;
    let w = env.worker().s3(&moto.endpoint).spawn();
    let job = NewJob {
        input_artifacts: vec![integration_tests::codepipeline::Artifact::s3(
            "Source",
            "artifacts",
            "src.zip",
        )],
        ..NewJob::default()
    };
    let id = env.emus.codepipeline.enqueue_job(job);
    let (kind, msg) = failure(&env.result(&id, &w).await);
    assert_eq!(kind, "ConfigurationError");
    assert!(
        msg.contains("imageDetail.json") && msg.contains("ImageUrl"),
        "{msg}"
    );
}

/// A registry with htpasswd Basic auth: the worker's credentials get the
/// image; a wrong password is a PermissionError that says what to check and
/// does not echo the password.
#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry_and_wrong_credentials() {
    let mut env = Env::new().await;
    env.registry =
        Registry::start_with_auth("ci-user", "right-password-789").expect("registry with auth");
    let img = images::image_from_inspector_fixture(
        &corpus::inspector_fixtures_dir().join("sboms/debian_latest.json"),
    )
    .unwrap();
    let digest = img
        .push(
            &env.registry.addr,
            "private/debian:1",
            env.registry.credentials.as_ref(),
        )
        .await
        .unwrap();
    let image = env.registry.reference("private/debian:1");

    let good = env
        .worker()
        .envs(&[
            ("SCANGATE_REGISTRY_USERNAME", "ci-user"),
            ("SCANGATE_REGISTRY_PASSWORD", "right-password-789"),
            ("SCANGATE_REGISTRY_HOSTS", &env.registry.addr),
        ])
        .spawn();
    let id = env.job(&[("ImageUrl", &image), ("HighThreshold", "5")]);
    assert_eq!(
        success(&env.result(&id, &good).await)["IMAGE_DIGEST"],
        digest
    );
    drop(good);

    let bad = env
        .worker()
        .envs(&[
            ("SCANGATE_REGISTRY_USERNAME", "ci-user"),
            ("SCANGATE_REGISTRY_PASSWORD", "wrong-password-000"),
            ("SCANGATE_REGISTRY_HOSTS", &env.registry.addr),
        ])
        .spawn();
    let id = env.job(&[("ImageUrl", &image)]);
    let (kind, msg) = failure(&env.result(&id, &bad).await);
    assert_eq!(kind, "PermissionError", "{msg}");
    assert!(!msg.contains("wrong-password-000"), "{msg}");
    assert!(!bad.log().contains("wrong-password-000"));

    let anonymous = env.worker().spawn();
    let id = env.job(&[("ImageUrl", &image)]);
    let (kind, msg) = failure(&env.result(&id, &anonymous).await);
    assert_eq!(kind, "PermissionError", "{msg}");
}

/// Throttled and failing PollForJobs calls back off and recover.
#[tokio::test(flavor = "multi_thread")]
async fn poll_throttling_and_errors_back_off_and_recover() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    env.emus
        .faults
        .set(vec![
            FaultRule::new("PollForJobs", FaultKind::Throttle).times(3),
            FaultRule::new("PollForJobs", FaultKind::Error5xx).times(2),
            FaultRule::new("PutJobSuccessResult", FaultKind::Error5xx).times(1),
        ])
        .unwrap();
    let w = env.worker().spawn();
    let id = env.job(&[
        ("ImageUrl", &env.registry.reference("fixture/debian:2024")),
        ("HighThreshold", "5"),
    ]);
    let snap = env.result(&id, &w).await;
    assert_eq!(success(&snap)["VERDICT"], "PASS");
    let calls = env.emus.codepipeline.calls();
    let count = |op: &str| calls.iter().filter(|c| c.operation == op).count();
    // The 5xx on the result was retried: two calls, one recorded result.
    assert_eq!(count("PutJobSuccessResult"), 2);
    assert_eq!(snap.result_calls, 1);
    assert!(count("PollForJobs") >= 6, "{}", count("PollForJobs"));
}

/// A PolicyFile in the input artifact: a live ignore rule for the debian
/// fixture's one HIGH (CVE-2023-50387 in systemd) passes the gate with
/// SUPPRESSED=1; the same rule past its `expires` date no longer applies and
/// the failure says so; a PolicyFile missing from the artifact is a
/// ConfigurationError naming it.
#[tokio::test(flavor = "multi_thread")]
async fn policy_file_from_the_input_artifact() {
    let moto = integration_tests::process::MotoServer::start()
        .expect("moto_server: run .ci/run, or set SCANGATE_MOTO_SERVER");
    let s3 = support::s3_client(&moto.endpoint).await;
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let image = env.registry.reference("fixture/debian:2024");
    let policy = |expires: &str| {
        format!(
            "version: 1\nignore:\n  - id: CVE-2023-50387\n    package: pkg:deb/debian/systemd\n    reason: resolved does not validate DNSSEC here\n    expires: {expires}\n"
        )
    };
    for (key, body) in [
        ("app/live.zip", policy("2099-12-31")),
        ("app/expired.zip", policy("2024-01-31")),
    ] {
        s3.put_object()
            .bucket("artifacts")
            .key(key)
            .body(artifact_zip("policy/scangate.yaml", &body).into())
            .send()
            .await
            .unwrap();
    }
    let w = env.worker().s3(&moto.endpoint).spawn();
    let job = |key: &str, file: &str| NewJob {
        pipeline_name: "app-pipeline".into(),
        stage_name: "Scan".into(),
        action_name: "ImageScan".into(),
        configuration: [
            ("ImageUrl".to_string(), image.clone()),
            ("PolicyFile".to_string(), file.to_string()),
        ]
        .into(),
        input_artifacts: vec![integration_tests::codepipeline::Artifact::s3(
            "BuildOutput",
            "artifacts",
            key,
        )],
        ..NewJob::default()
    };

    let id = env
        .emus
        .codepipeline
        .enqueue_job(job("app/live.zip", "policy/scangate.yaml"));
    let snap = env.result(&id, &w).await;
    let v = success(&snap);
    assert_eq!(v["VERDICT"], "PASS");
    assert_eq!(v["SUPPRESSED"], "1");
    assert_eq!(v["HIGH"], "1", "the counts still show the finding");

    let id = env
        .emus
        .codepipeline
        .enqueue_job(job("app/expired.zip", "policy/scangate.yaml"));
    let snap = env.result(&id, &w).await;
    let (kind, message) = failure(&snap);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 HIGH (threshold 0)"), "{message}");
    assert!(
        message.contains("expired ignore rules, no longer applied: CVE-2023-50387"),
        "{message}"
    );

    let id = env
        .emus
        .codepipeline
        .enqueue_job(job("app/live.zip", "scangate.yaml"));
    let snap = env.result(&id, &w).await;
    let (kind, message) = failure(&snap);
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains("policy file scangate.yaml: not found in the input artifact"),
        "{message}"
    );
    assert!(message.contains("policy/scangate.yaml"), "{message}");
}

/// `/healthz`, `/metrics` and `/jobs` answer while the worker runs.
#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_and_jobs_endpoints() {
    let env = Env::new().await;
    env.push_debian_fixture("2024").await;
    let w = env.worker().health().spawn();
    let addr = w.health_addr().to_owned();
    let id = env.job(&[
        ("ImageUrl", &env.registry.reference("fixture/debian:2024")),
        ("HighThreshold", "5"),
    ]);
    env.result(&id, &w).await;
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            let r = reqwest::get(&url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("scangate_jobs_total{result=\"success\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("scangate_jobs_in_flight 0"), "{metrics}");
    let (status, jobs) = get("/jobs").await;
    assert_eq!(status, 200);
    assert!(jobs.contains("\"running\""), "{jobs}");
}

// ------------------------------------------------- the harness itself ----

/// A worker that cannot start (a concurrency it refuses) ends the wait for
/// a result at once, with its log, rather than after the timeout: the old
/// per-file check looked for `/proc/PID`, which a dead but unreaped worker
/// still has, so it never fired.
#[tokio::test(flavor = "multi_thread")]
#[should_panic(expected = "worker exited: true")]
async fn a_worker_that_exits_ends_the_wait_for_its_result() {
    let env = Env::new().await;
    let w = env.worker().slots(0).spawn();
    let id = env.job(&[("ImageUrl", "127.0.0.1:1/x:1")]);
    w.job_result(&env.emus, &id, Duration::from_secs(60)).await;
}

/// Dropping a running worker kills and reaps it: no process is left behind
/// (not even a zombie) by a test that ends, passes or panics.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_worker_leaves_no_process() {
    let env = Env::new().await;
    let w = env.worker().spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!w.exited(), "{}", w.log());
    let pid = w.pid();
    drop(w);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "worker {pid} outlived its handle"
    );
}
