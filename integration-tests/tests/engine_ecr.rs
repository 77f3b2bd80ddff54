//! The `ecr-basic` and `ecr-enhanced` engines end to end: the real
//! `scangate worker` binary against the CodePipeline emulator, the ECR
//! emulator (tokens and scan findings) and the real `docker-registry`
//! playing the ECR registry under an ECR host name pinned to 127.0.0.1.

mod support;

use std::time::Duration;

use integration_tests::Emulators;
use integration_tests::codepipeline::JobSnapshot;
use integration_tests::ecr::{EcrEmulator, ScanSetup, fixture};
use integration_tests::images::{ImageBuilder, debian_os_release, dpkg_layer, dpkg_status};
use integration_tests::registry::Registry;
use support::{RESULT_TIMEOUT, RunningWorker, Worker, failure, success};

const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
/// The registry password is the ECR token's, as with real ECR.
const ECR_PASSWORD: &str = "eyJwYXlsb2FkIjoiZWNyLWVuZ2luZSJ9";

struct Env {
    emus: Emulators,
    ecr: EcrEmulator,
    registry: Registry,
    reports: tempfile::TempDir,
    worker: Option<RunningWorker>,
}

impl Env {
    async fn new() -> Env {
        let emus = support::start_emulators().await;
        let ecr = EcrEmulator::start("AWS", ECR_PASSWORD, Duration::from_secs(12 * 3600))
            .await
            .unwrap();
        let registry = Registry::start_with_auth("AWS", ECR_PASSWORD).unwrap();
        let mut env = Env {
            emus,
            ecr,
            registry,
            reports: tempfile::tempdir().unwrap(),
            worker: None,
        };
        env.worker = Some(env.start_worker());
        env
    }

    /// `HOST:PORT`, the registry as the worker reaches it.
    fn ecr_addr(&self) -> String {
        let port = self.registry.addr.rsplit_once(':').unwrap().1;
        format!("{HOST}:{port}")
    }

    /// The worker reaches the registry under the ECR host name (pinned to
    /// 127.0.0.1) and ECR's API at the emulator.
    fn start_worker(&self) -> RunningWorker {
        Worker::new(&self.emus)
            .env("AWS_ENDPOINT_URL_ECR", self.ecr.url())
            .env("SCANGATE_REGISTRY_RESOLVE", format!("{HOST}=127.0.0.1"))
            .registry(&self.ecr_addr())
            .reports(self.reports.path())
            .spawn()
    }

    /// Pushes a small Debian image as `team/app:TAG`; returns its digest.
    async fn push(&self, tag: &str) -> String {
        ImageBuilder::new()
            .layer(dpkg_layer(
                &debian_os_release(),
                &dpkg_status(&[
                    ("libc6", "2.36-9+deb12u4", "amd64", "glibc"),
                    ("zlib1g", "1:1.2.13.dfsg-1", "amd64", "zlib"),
                ]),
            ))
            .build()
            .unwrap()
            .push_to(&self.registry, &format!("team/app:{tag}"))
            .await
            .expect("pushing")
    }

    fn job(&self, config: &[(&str, &str)]) -> String {
        support::enqueue(&self.emus, config)
    }

    async fn result(&self, id: &str) -> JobSnapshot {
        let w = self.worker.as_ref().unwrap();
        w.job_result(&self.emus, id, RESULT_TIMEOUT).await
    }

    fn record(&self, id: &str) -> serde_json::Value {
        let p = self
            .reports
            .path()
            .join("jobs")
            .join(id)
            .join("record.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ecr_basic_fails_on_a_critical_and_reuses_todays_scan() {
    let env = Env::new().await;
    let digest = env.push("1").await;
    env.ecr.add_image(
        "team/app",
        &digest,
        &["1"],
        ScanSetup::basic(fixture("basic-findings.json")),
    );
    let image = format!("{}/team/app:1", env.ecr_addr());
    let id = env.job(&[("ImageUrl", &image), ("Engine", "ecr-basic")]);
    let snap = env.result(&id).await;
    let (kind, msg) = failure(&snap);
    assert!(kind.contains("JobFailed"), "{kind}: {msg}");
    assert!(msg.contains(&digest), "{msg}");
    assert!(msg.contains("CVE-2023-45853"), "{msg}");
    assert!(
        msg.contains("1 critical, 3 high, 1 medium, 1 low, 2 other"),
        "{msg}"
    );
    let calls = env.ecr.scan_calls();
    assert_eq!(calls[0].operation, "StartImageScan");
    // The manifest digest the registry served, in the registry's region.
    assert!(
        calls
            .iter()
            .all(|c| c.image_digest.as_deref() == Some(digest.as_str())
                && c.repository == "team/app"
                && c.signed_region.as_deref() == Some("eu-west-1"))
    );
    let record = env.record(&id);
    assert_eq!(record["verdict"], "FAIL");
    assert_eq!(record["image"]["digest"], digest.as_str());
    assert_eq!(record["packages"], 7);
    let warnings = record["warnings"].to_string();
    assert!(warnings.contains("scangate built no SBOM"), "{warnings}");
    // The SBOM file says why it is empty instead of claiming an empty image.
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            env.reports
                .path()
                .join("jobs")
                .join(&id)
                .join("sbom.cdx.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sbom["components"].as_array().unwrap().len(), 0);
    assert!(
        sbom["metadata"]["properties"]
            .to_string()
            .contains("ecr-basic")
    );

    // Same image again the same day: ECR refuses a second scan, the first
    // one's findings decide.
    let id2 = env.job(&[
        ("ImageUrl", &image),
        ("Engine", "ecr-basic"),
        ("CriticalThreshold", "1"),
        ("HighThreshold", "3"),
    ]);
    let v = success(&env.result(&id2).await).clone();
    assert_eq!(v["VERDICT"], "PASS");
    assert_eq!(
        [
            &v["CRITICAL"],
            &v["HIGH"],
            &v["MEDIUM"],
            &v["LOW"],
            &v["OTHER"]
        ],
        ["1", "3", "1", "1", "2"]
    );
    assert_eq!(v["IMAGE_DIGEST"], digest);
    assert_eq!(v["COMPONENTS"], "7");
    assert!(
        env.record(&id2)["warnings"]
            .to_string()
            .contains("today's earlier scan was read")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ecr_enhanced_passes_within_thresholds() {
    let env = Env::new().await;
    let digest = env.push("2").await;
    env.ecr.add_image(
        "team/app",
        &digest,
        &["2"],
        ScanSetup::enhanced(fixture("enhanced-findings.json")),
    );
    env.ecr.set_page_size(2);
    let image = format!("{}/team/app:2", env.ecr_addr());
    let id = env.job(&[
        ("ImageUrl", &image),
        ("Engine", "ecr-enhanced"),
        ("CriticalThreshold", "1"),
        ("HighThreshold", "2"),
    ]);
    let v = success(&env.result(&id).await).clone();
    assert_eq!(v["VERDICT"], "PASS");
    assert_eq!(v["HIGHEST_SEVERITY"], "CRITICAL");
    assert_eq!(
        [
            &v["CRITICAL"],
            &v["HIGH"],
            &v["MEDIUM"],
            &v["LOW"],
            &v["OTHER"]
        ],
        ["1", "2", "1", "0", "1"]
    );
    assert_eq!(v["COMPONENTS"], "6");
    assert_eq!(v["IMAGE_DIGEST"], digest);
    let calls = env.ecr.scan_calls();
    assert!(
        calls
            .iter()
            .all(|c| c.operation == "DescribeImageScanFindings")
    );
    // 5 findings in pages of 2.
    assert_eq!(calls.iter().filter(|c| c.next_token.is_some()).count(), 2);

    // FixableOnly: zlib1g's critical has no fix, so only the fixable highs count.
    let id = env.job(&[
        ("ImageUrl", &image),
        ("Engine", "ecr-enhanced"),
        ("CriticalThreshold", "0"),
        ("HighThreshold", "1"),
        ("FixableOnly", "true"),
    ]);
    let (kind, msg) = failure(&env.result(&id).await);
    assert!(kind.contains("JobFailed"), "{kind}: {msg}");
    assert!(msg.contains("2 HIGH (threshold 1)"), "{msg}");
    assert!(!msg.contains("CRITICAL (threshold"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn non_ecr_image_is_a_configuration_error() {
    let env = Env::new().await;
    let id = env.job(&[
        ("ImageUrl", "registry.example.com/team/app:1"),
        ("Engine", "ecr-enhanced"),
    ]);
    let (kind, msg) = failure(&env.result(&id).await);
    assert!(kind.contains("ConfigurationError"), "{kind}: {msg}");
    assert!(
        msg.contains("ecr-enhanced") && msg.contains("private ECR image"),
        "{msg}"
    );
    assert!(env.ecr.scan_calls().is_empty());

    let id = env.job(&[
        ("ImageUrl", &format!("{HOST}/team/app:1")),
        ("Engine", "grype"),
    ]);
    let (kind, msg) = failure(&env.result(&id).await);
    assert!(kind.contains("ConfigurationError"), "{kind}: {msg}");
    assert!(msg.contains("ecr-basic"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_scan_is_job_failed_with_ecrs_description() {
    let env = Env::new().await;
    let digest = env.push("3").await;
    let mut setup = ScanSetup::basic(Vec::new());
    setup.failure = Some(
        "UnsupportedImageError: The operating system and/or package manager are not supported."
            .into(),
    );
    env.ecr.add_image("team/app", &digest, &["3"], setup);
    let image = format!("{}/team/app:3", env.ecr_addr());
    let id = env.job(&[("ImageUrl", &image), ("Engine", "ecr-basic")]);
    let (kind, msg) = failure(&env.result(&id).await);
    assert!(kind.contains("JobFailed"), "{kind}: {msg}");
    assert!(msg.contains("ended FAILED"), "{msg}");
    assert!(msg.contains("package manager are not supported"), "{msg}");
    assert_eq!(env.record(&id)["failure_type"], "JobFailed");

    // Denied: a permission error that names the missing action.
    env.ecr.deny();
    let id = env.job(&[("ImageUrl", &image), ("Engine", "ecr-basic")]);
    let (kind, msg) = failure(&env.result(&id).await);
    assert!(kind.contains("PermissionError"), "{kind}: {msg}");
    assert!(msg.contains("ecr:"), "{msg}");
}
