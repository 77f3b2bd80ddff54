//! A job that ends in an error still gets `record.json` and a `report.html`
//! that says what went wrong and what to do (DESIGN.md, "Reports store"):
//! the action's execution link points there. Through the real `scangate
//! worker` binary, the CodePipeline and Inspector emulators and the real
//! Debian `docker-registry`.

mod support;

use std::path::Path;

use integration_tests::codepipeline::{JobResult, JobSnapshot};
use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::registry::Registry;
use integration_tests::{Emulators, corpus, images};
use support::{RunningWorker, Worker};

fn job(emus: &Emulators, config: &[(&str, &str)]) -> String {
    support::enqueue(emus, config)
}

async fn result(emus: &Emulators, id: &str, w: &RunningWorker) -> JobSnapshot {
    w.job_result(emus, id, support::RESULT_TIMEOUT).await
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
    let emus = support::start_emulators().await;
    let registry = Registry::start().expect("starting docker-registry");
    let reports = tempfile::tempdir().unwrap();
    let img = images::image_from_inspector_fixture(
        &corpus::inspector_fixtures_dir().join("sboms/debian_latest.json"),
    )
    .expect("building the fixture image");
    img.push(&registry.addr, "fixture/debian:2024", None)
        .await
        .expect("pushing");
    // At the worker's own default log level (no RUST_LOG), as this test
    // always ran: the reports, not the log, are under test.
    let w = Worker::new(&emus)
        .registry(&registry.addr)
        .reports(reports.path())
        .env_remove("RUST_LOG")
        .spawn();

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
