//! Inspector's answer is not ours (issue 9): the real `scangate scan`
//! against the Inspector emulator answering with padded bodies, sent chunked
//! (no `Content-Length`, as a stream of any size could be). An answer over
//! the 64 MiB cap fails the scan at the cap, without retrying, with memory
//! bounded; a 10 MB answer (slow, trickled) is read like any other.

use std::process::Command;

use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::process::run_measured;
use integration_tests::registry::Registry;
use integration_tests::{EmulatorOptions, Emulators, corpus, images};

struct Env {
    emus: Emulators,
    registry: Registry,
    image: String,
}

impl Env {
    async fn new() -> Env {
        let emus =
            integration_tests::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
                .await
                .expect("starting emulators");
        let registry = Registry::start().expect("starting docker-registry");
        let img = images::image_from_inspector_fixture(
            &corpus::inspector_fixtures_dir().join("sboms/alpine_3.18.2.json"),
        )
        .expect("building the fixture image");
        img.push(&registry.addr, "fixture/alpine:answer", None)
            .await
            .expect("pushing");
        let image = registry.reference("fixture/alpine:answer");
        Env {
            emus,
            registry,
            image,
        }
    }

    /// `scangate scan IMAGE --format json`: its output, exit code and peak RSS.
    fn scan(&self) -> (Option<i32>, String, String, i64) {
        let mut cmd = Command::new(corpus::scangate_bin());
        cmd.args(["scan", &self.image, "--format", "json"])
            .args(["--critical-threshold", "1000", "--high-threshold", "1000"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_INSPECTOR_SCAN", &self.emus.urls.inspector)
            .env("SCANGATE_INSECURE_REGISTRIES", &self.registry.addr);
        let (out, rss_kib) = run_measured(cmd);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            rss_kib,
        )
    }

    fn scan_calls(&self) -> usize {
        self.emus
            .inspector
            .calls()
            .iter()
            .filter(|c| c.operation == "ScanSbom")
            .count()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_over_the_cap_fails_the_scan_with_bounded_memory() {
    let env = Env::new().await;
    // 200 MiB, streamed in 16 chunks: only the cap stops it.
    env.emus
        .faults
        .set(vec![FaultRule::new(
            "ScanSbom",
            FaultKind::Pad { bytes: 200 << 20 },
        )])
        .unwrap();
    let (code, _stdout, stderr, rss_kib) = env.scan();
    eprintln!(
        "200 MiB ScanSbom answer: exit {code:?}, peak RSS {} MiB",
        rss_kib / 1024
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("larger than 64 MiB"), "{stderr}");
    assert!(
        stderr.contains("AWS_ENDPOINT_URL_INSPECTOR_SCAN"),
        "{stderr}"
    );
    // Not retried: the same answer would come again.
    assert_eq!(env.scan_calls(), 1);
    // The cap (64 MiB) plus the scan itself, far below the 200 MiB sent.
    assert!(rss_kib < 180 * 1024, "peak RSS {} MiB", rss_kib / 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_ten_megabyte_answer_is_read_like_any_other() {
    let env = Env::new().await;
    let (code, stdout, stderr, plain_kib) = env.scan();
    assert_eq!(code, Some(0), "{stderr}");
    let plain: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    env.emus
        .faults
        .set(vec![
            FaultRule::new("ScanSbom", FaultKind::Pad { bytes: 10 << 20 }),
            FaultRule::new("ScanSbom", FaultKind::Trickle { ms: 2000 }),
        ])
        .unwrap();
    let (code, stdout, stderr, padded_kib) = env.scan();
    eprintln!(
        "ScanSbom answer: plain peak RSS {} MiB; 10 MB trickled over 2 s: {} MiB",
        plain_kib / 1024,
        padded_kib / 1024
    );
    assert_eq!(code, Some(0), "{stderr}");
    let padded: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // The same verdict and findings: the padding is not a finding.
    assert_eq!(padded["counts"], plain["counts"]);
    assert_eq!(padded["verdict"], plain["verdict"]);
    // A few copies of 10 MB at most, not a blow-up.
    assert!(
        padded_kib < plain_kib + 120 * 1024,
        "{} MiB vs {} MiB",
        padded_kib / 1024,
        plain_kib / 1024
    );
}
