//! A job that ends in an error still gets `record.json` and a `report.html`
//! that says what went wrong and what to do (DESIGN.md, "Reports store"):
//! the action's execution link points there. Through the real `scangate
//! worker` binary, the CodePipeline and Inspector emulators and the real
//! Debian `docker-registry`.

use integration_tests::process::LogTo;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use integration_tests::codepipeline::{JobResult, JobSnapshot, NewJob};
use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::registry::Registry;
use integration_tests::{EmulatorOptions, Emulators, corpus, images};

struct Worker {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Worker {
    fn start(emus: &Emulators, registry: &Registry, reports: &Path) -> Worker {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(corpus::scangate_bin())
            .arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_CODEPIPELINE", &emus.urls.codepipeline)
            .env("AWS_ENDPOINT_URL_INSPECTOR_SCAN", &emus.urls.inspector)
            .env("SCANGATE_INSECURE_REGISTRIES", &registry.addr)
            .env("SCANGATE_POLL_INTERVAL", "200ms")
            .env("SCANGATE_HEALTH_ADDR", "off")
            .env("SCANGATE_REPORTS", format!("file://{}", reports.display()))
            .log_to(log.path())
            .spawn()
            .expect("starting scangate worker");
        Worker { child, log }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn job(emus: &Emulators, config: &[(&str, &str)]) -> String {
    emus.codepipeline.enqueue_job(NewJob {
        pipeline_name: "app-pipeline".into(),
        stage_name: "Scan".into(),
        action_name: "ImageScan".into(),
        configuration: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..NewJob::default()
    })
}

async fn result(emus: &Emulators, id: &str, w: &Worker) -> JobSnapshot {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = emus.codepipeline.job(id)
            && s.result.is_some()
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} got no result\n{}",
            std::fs::read_to_string(w.log.path()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The failure type CodePipeline got, the stored record and report page.
fn stored(snap: &JobSnapshot, reports: &Path, id: &str) -> (String, serde_json::Value, String) {
    let kind = match &snap.result {
        Some(JobResult::Failure(f)) => format!("{:?}", f.failure_type),
        other => panic!("expected a failure, got {other:?}"),
    };
    let dir = reports.join("jobs").join(id);
    let record = serde_json::from_slice(&std::fs::read(dir.join("record.json")).unwrap()).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html of the error");
    (kind, record, html)
}

fn assert_page(html: &str, kind: &str, reason: &str, fix: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("Content-Security-Policy"),
        "self-contained, under the CSP"
    );
    assert!(
        html.contains(&format!(
            r#"<p id="failure-type"><strong>{kind}</strong></p>"#
        )),
        "{html}"
    );
    let message = html.split(r#"<p id="message">"#).nth(1).unwrap_or_default();
    assert!(message.contains(reason), "the reason {reason:?} in {html}");
    let todo = html
        .split(r#"<section id="remedy">"#)
        .nth(1)
        .unwrap_or_default();
    assert!(todo.contains(fix), "the fix {fix:?} in {html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_and_permission_errors_get_a_report_with_the_reason_and_the_fix() {
    let emus = integration_tests::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .expect("starting emulators");
    let registry = Registry::start().expect("starting docker-registry");
    let reports = tempfile::tempdir().unwrap();
    let img = images::image_from_inspector_fixture(
        &corpus::inspector_fixtures_dir().join("sboms/debian_latest.json"),
    )
    .expect("building the fixture image");
    img.push(&registry.addr, "fixture/debian:2024", None)
        .await
        .expect("pushing");
    let w = Worker::start(&emus, &registry, reports.path());

    // ConfigurationError: a threshold that is not a number.
    let id = job(
        &emus,
        &[
            ("ImageUrl", &registry.reference("fixture/debian:2024")),
            ("HighThreshold", "lots"),
        ],
    );
    let (kind, record, html) = stored(&result(&emus, &id, &w).await, reports.path(), &id);
    assert_eq!(kind, "ConfigurationError");
    assert_eq!(record["verdict"], "ERROR");
    assert_eq!(record["failure_type"], "ConfigurationError");
    assert!(record["remedy"].as_array().is_some_and(|r| !r.is_empty()));
    assert_page(
        &html,
        "ConfigurationError",
        "HighThreshold must be a whole number",
        "Edit stage",
    );

    // PermissionError: Amazon Inspector denies ScanSbom.
    emus.faults
        .set(vec![FaultRule::new("ScanSbom", FaultKind::AccessDenied)])
        .unwrap();
    let id = job(
        &emus,
        &[("ImageUrl", &registry.reference("fixture/debian:2024"))],
    );
    let (kind, record, html) = stored(&result(&emus, &id, &w).await, reports.path(), &id);
    assert_eq!(kind, "PermissionError");
    assert_eq!(record["failure_type"], "PermissionError");
    assert_page(
        &html,
        "PermissionError",
        "Amazon Inspector denied ScanSbom",
        "Grant the worker&#39;s task role inspector-scan:ScanSbom",
    );
    assert!(html.contains(&registry.reference("fixture/debian:2024")));
}
