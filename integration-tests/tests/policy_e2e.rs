//! End to end, "a verdict people can trust": policy files read from the
//! job's input artifact by the real worker, their effect visible in the
//! pipeline's result and in the reports stored in S3 (moto).
//!
//! worker_e2e.rs already covers a live ignore rule passing with SUPPRESSED=1,
//! the expired rule's failure message and a policy file missing from the
//! artifact. This file covers what those leave out: the record and report
//! of suppressed, expired and stale rules, a malformed file, and action
//! properties overriding the file.
//!
//! Two real Inspector answers from the fixtures: debian:latest's, whose one
//! HIGH (CVE-2023-50387 in systemd, no fixed version) is the finding most
//! tests suppress, and alpine:3.18.2's, with one CRITICAL (CVE-2022-48174
//! in busybox) and one HIGH (CVE-2023-5363 in openssl), for suppressing a
//! CRITICAL while the HIGH is judged by its threshold.

mod support;

use integration_tests::codepipeline::Artifact;
use serde_json::Value;
use support::{Env, failure, s3_keys, s3_text, success};

const FINDING: &str = "CVE-2023-50387";
const NOT_PRESENT: &str = "CVE-2099-0001";

/// The ignore rule for the fixture's HIGH, expiring on `expires`, and a rule
/// for a vulnerability the image does not have.
fn ignore_policy(expires: &str) -> String {
    format!(
        "version: 1
ignore:
  - id: {FINDING}
    package: pkg:deb/debian/systemd
    reason: resolved does not validate DNSSEC here
    expires: {expires}
  - id: {NOT_PRESENT}
    reason: fixed upstream long ago
"
    )
}

struct Fixture {
    env: Env,
    s3: aws_sdk_s3::Client,
    image: String,
}

impl Fixture {
    async fn new(artifacts: &[(&str, String)]) -> Fixture {
        let env = Env::new(true).await;
        let s3 = env.s3().await;
        for b in ["reports", "artifacts"] {
            s3.create_bucket().bucket(b).send().await.unwrap();
        }
        for (key, body) in artifacts {
            s3.put_object()
                .bucket("artifacts")
                .key(*key)
                .body(support::artifact_zip("policy/scangate.yaml", body).into())
                .send()
                .await
                .unwrap();
        }
        env.push_debian_fixture("2024").await;
        let image = env.registry.reference("fixture/debian:2024");
        Fixture { env, s3, image }
    }

    /// Like [`Fixture::new`], scanning the alpine:3.18.2 fixture image.
    async fn alpine(artifacts: &[(&str, String)]) -> Fixture {
        let mut f = Fixture::new(artifacts).await;
        f.image = f.env.push_alpine_fixture("3.18.2").await;
        f
    }

    fn enqueue(&self, artifact: &str, props: &[(&str, &str)]) -> String {
        let mut config = vec![
            ("ImageUrl", self.image.as_str()),
            ("PolicyFile", "policy/scangate.yaml"),
        ];
        config.extend_from_slice(props);
        self.env.enqueue(
            "policy-pipeline",
            &config,
            Some(Artifact::s3("BuildOutput", "artifacts", artifact)),
        )
    }

    async fn record(&self, id: &str) -> Value {
        serde_json::from_str(
            &s3_text(
                &self.s3,
                "reports",
                &format!("scangate/jobs/{id}/record.json"),
            )
            .await,
        )
        .unwrap()
    }

    async fn report_md(&self, id: &str) -> String {
        s3_text(
            &self.s3,
            "reports",
            &format!("scangate/jobs/{id}/report.md"),
        )
        .await
    }
}

/// A live rule suppresses the HIGH: PASS, SUPPRESSED=1, and the record and
/// report say what was suppressed and why, and that the other rule matched
/// nothing. Past its date the rule stops applying: FAIL naming the finding,
/// and the record and report list the rule as expired.
#[tokio::test(flavor = "multi_thread")]
async fn suppressed_expired_and_stale_rules_are_recorded() {
    let f = Fixture::new(&[
        ("live.zip", ignore_policy("2099-12-31")),
        ("expired.zip", ignore_policy("2024-01-31")),
    ])
    .await;
    let w = f.env.worker("s3://reports/scangate");

    let live = f.enqueue("live.zip", &[]);
    let v = success(&f.env.result(&live, &w).await).clone();
    assert_eq!(v["VERDICT"], "PASS");
    assert_eq!(v["SUPPRESSED"], "1");
    assert_eq!(v["HIGH"], "1", "counts still show the suppressed finding");

    let expired = f.enqueue("expired.zip", &[]);
    let (kind, message) = failure(&f.env.result(&expired, &w).await);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 HIGH (threshold 0)"), "{message}");
    assert!(
        message.contains(FINDING) && message.contains("systemd"),
        "{message}"
    );

    // The documented keys, for both jobs.
    let keys = s3_keys(&f.s3, "reports", "scangate/").await;
    for id in [&live, &expired] {
        for file in ["record.json", "sbom.cdx.json", "findings.json", "report.md"] {
            let want = format!("scangate/jobs/{id}/{file}");
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        assert!(
            keys.iter()
                .any(|k| k.starts_with("scangate/index/policy-pipeline/")
                    && k.ends_with(&format!("-{id}.json"))),
            "no index entry for {id} in {keys:?}"
        );
    }

    let r = f.record(&live).await;
    assert_eq!(r["verdict"], "PASS");
    assert_eq!(r["suppressed"], 1);
    assert_eq!(r["suppressions"][0]["id"], FINDING);
    assert_eq!(r["suppressions"][0]["package"], "systemd");
    assert_eq!(
        r["suppressions"][0]["reason"],
        "resolved does not validate DNSSEC here"
    );
    assert_eq!(r["suppressions"][0]["expires"], "2099-12-31");
    let stale = r["stale_rules"].as_array().unwrap();
    assert_eq!(stale.len(), 1, "{r}");
    assert_eq!(stale[0]["id"], NOT_PRESENT);
    assert_eq!(r["expired_rules"], serde_json::json!([]));
    let md = f.report_md(&live).await;
    assert!(
        md.contains("resolved does not validate DNSSEC here"),
        "{md}"
    );
    assert!(
        md.contains(NOT_PRESENT),
        "the stale rule is in the report:\n{md}"
    );

    let r = f.record(&expired).await;
    assert_eq!(r["verdict"], "FAIL");
    assert_eq!(r["failure_type"], "JobFailed");
    assert_eq!(r["suppressed"], 0);
    assert_eq!(r["expired_rules"][0]["id"], FINDING);
    assert_eq!(r["expired_rules"][0]["expires"], "2024-01-31");
    assert_eq!(r["violations"][0]["severity"], "HIGH");
    let md = f.report_md(&expired).await;
    assert!(md.contains("expired"), "{md}");
    assert!(
        md.lines()
            .any(|l| l.contains("expired") && l.contains(FINDING)),
        "the report names the expired rule:\n{md}"
    );
}

/// A malformed policy file is a ConfigurationError that names the field and
/// its line, and the job still has a record saying so.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_policy_file_is_a_configuration_error() {
    let f = Fixture::new(&[
        (
            "typo.zip",
            "version: 1\nignore:\n  - id: CVE-2023-50387\n    reson: misspelt\n".into(),
        ),
        (
            "bad-threshold.zip",
            "version: 1\nthresholds:\n  high: lots\n".into(),
        ),
    ])
    .await;
    let w = f.env.worker("s3://reports/scangate");

    let typo = f.enqueue("typo.zip", &[]);
    let (kind, message) = failure(&f.env.result(&typo, &w).await);
    assert_eq!(kind, "ConfigurationError", "{message}");
    assert!(message.contains("policy/scangate.yaml"), "{message}");
    assert!(message.contains("ignore[0]"), "{message}");
    assert!(message.contains("reson"), "{message}");
    assert!(message.contains("line 4"), "{message}");

    let bad = f.enqueue("bad-threshold.zip", &[]);
    let (kind, message) = failure(&f.env.result(&bad, &w).await);
    assert_eq!(kind, "ConfigurationError", "{message}");
    assert!(message.contains("thresholds.high"), "{message}");
    assert!(message.contains("line 3"), "{message}");

    let r = f.record(&typo).await;
    assert_eq!(r["verdict"], "ERROR");
    assert_eq!(r["failure_type"], "ConfigurationError");
    assert!(r["message"].as_str().unwrap().contains("ignore[0]"), "{r}");
}

/// Action properties win over the file's thresholds, in both directions.
#[tokio::test(flavor = "multi_thread")]
async fn action_properties_override_the_file_thresholds() {
    let f = Fixture::new(&[
        (
            "lenient.zip",
            "version: 1\nthresholds: { high: 5 }\n".into(),
        ),
        (
            "strict.zip",
            "version: 1\nthresholds: { high: 0, medium: 0 }\n".into(),
        ),
    ])
    .await;
    let w = f.env.worker("s3://reports/scangate");

    // The file alone: lenient passes, strict fails on both severities.
    let lenient = f.enqueue("lenient.zip", &[]);
    assert_eq!(
        success(&f.env.result(&lenient, &w).await)["VERDICT"],
        "PASS"
    );
    let strict = f.enqueue("strict.zip", &[]);
    let (_, message) = failure(&f.env.result(&strict, &w).await);
    assert!(message.contains("1 HIGH (threshold 0)"), "{message}");
    assert!(message.contains("1 MEDIUM (threshold 0)"), "{message}");

    // A property overrides that one threshold and leaves the rest of the file.
    let tightened = f.enqueue("lenient.zip", &[("HighThreshold", "0")]);
    let (kind, message) = failure(&f.env.result(&tightened, &w).await);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 HIGH (threshold 0)"), "{message}");
    let loosened = f.enqueue("strict.zip", &[("HighThreshold", "1")]);
    let (_, message) = failure(&f.env.result(&loosened, &w).await);
    assert!(!message.contains("HIGH (threshold"), "{message}");
    assert!(message.contains("1 MEDIUM (threshold 0)"), "{message}");
    let both = f.enqueue(
        "strict.zip",
        &[("HighThreshold", "1"), ("MediumThreshold", "unlimited")],
    );
    assert_eq!(success(&f.env.result(&both, &w).await)["VERDICT"], "PASS");
    let r = f.record(&both).await;
    assert_eq!(r["verdict"], "PASS");
    assert_eq!(r["counts"]["high"], 1);

    // The record says which policy decided: the file (path, SHA-256 of its
    // bytes, the artifact it came from), the properties that overrode it,
    // what was in force, and why this PASS with findings passed.
    let p = &r["policy"];
    assert_eq!(p["source"]["kind"], "policy_file");
    let file = &p["source"]["file"];
    assert_eq!(file["path"], "policy/scangate.yaml");
    assert_eq!(
        file["sha256"],
        sha256_hex("version: 1\nthresholds: { high: 0, medium: 0 }\n")
    );
    assert_eq!(
        file["location"],
        "input artifact BuildOutput (s3://artifacts/strict.zip)"
    );
    assert_eq!(
        p["source"]["overrides"],
        serde_json::json!(["HighThreshold=1", "MediumThreshold=unlimited"])
    );
    assert_eq!(p["thresholds"]["high"], 1);
    assert_eq!(p["thresholds"]["medium"], Value::Null);
    assert_eq!(p["thresholds"]["critical"], 0);
    let why: Vec<&str> = r["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "pass [thresholds.high]: 1 HIGH: 1 counted, at most 1 allowed",
        "pass [thresholds.medium]: 1 MEDIUM: no MEDIUM threshold (unlimited)",
    ] {
        assert!(why.contains(&want), "{want:?} not in {why:#?}");
    }
    let md = f.report_md(&both).await;
    assert!(
        md.contains("overridden by HighThreshold=1, MediumThreshold=unlimited"),
        "{md}"
    );
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

const ALPINE_CRITICAL: &str = "CVE-2022-48174";

/// An ignore rule for alpine:3.18.2's CRITICAL (busybox), expiring on
/// `expires`.
fn ignore_critical(expires: &str) -> String {
    format!(
        "version: 1
ignore:
  - id: {ALPINE_CRITICAL}
    package: pkg:apk/alpine/busybox
    reason: the shell is never reachable in this image
    expires: {expires}
"
    )
}

/// A CRITICAL suppressed by a live rule, with HighThreshold allowing the
/// one HIGH: PASS with SUPPRESSED=1 and CRITICAL=1 (counts keep every
/// finding, as Inspector's do). The same rule expired: FAIL naming the
/// CRITICAL.
#[tokio::test(flavor = "multi_thread")]
async fn a_suppressed_critical_passes_until_its_rule_expires() {
    let f = Fixture::alpine(&[
        ("live.zip", ignore_critical("2099-12-31")),
        ("expired.zip", ignore_critical("2024-01-31")),
    ])
    .await;
    let w = f.env.worker("s3://reports/scangate");

    let live = f.enqueue("live.zip", &[("HighThreshold", "1")]);
    let v = success(&f.env.result(&live, &w).await).clone();
    assert_eq!(v["VERDICT"], "PASS", "{v:?}");
    assert_eq!(v["SUPPRESSED"], "1");
    assert_eq!(
        v["CRITICAL"], "1",
        "the suppressed CRITICAL is still counted"
    );
    assert_eq!(v["HIGH"], "1");
    assert_eq!(v["MEDIUM"], "7");
    let r = f.record(&live).await;
    assert_eq!(r["suppressions"][0]["id"], ALPINE_CRITICAL);
    assert_eq!(r["suppressions"][0]["package"], "busybox");
    assert_eq!(r["stale_rules"], serde_json::json!([]));

    let expired = f.enqueue("expired.zip", &[("HighThreshold", "1")]);
    let (kind, message) = failure(&f.env.result(&expired, &w).await);
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("1 CRITICAL (threshold 0)"), "{message}");
    assert!(
        message.contains(ALPINE_CRITICAL) && message.contains("busybox"),
        "{message}"
    );
    assert!(
        !message.contains("HIGH (threshold"),
        "the HIGH is within its threshold: {message}"
    );
    let r = f.record(&expired).await;
    assert_eq!(r["verdict"], "FAIL");
    assert_eq!(r["suppressed"], 0);
    assert_eq!(r["expired_rules"][0]["id"], ALPINE_CRITICAL);
}

/// `scangate scan` with `--other-threshold` and `--format html`: the flags
/// gate the three OTHER findings of alpine:3.18.2 (not rated by anyone yet,
/// one with a public exploit and a fix), the HTML written is the same
/// self-contained report the worker stores, and it names the flags as the
/// policy's source and the OTHER ids that failed it.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_gates_other_findings_and_writes_the_html_report() {
    let env = Env::new(false).await;
    let image = env.push_alpine_fixture("3.18.2").await;
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let html_arg = html.display().to_string();
    let scan = |extra: &[&str]| {
        let mut args = vec![
            "scan",
            image.as_str(),
            "--insecure-registries",
            env.registry.addr.as_str(),
            "--critical-threshold",
            "unlimited",
            "--high-threshold",
            "unlimited",
        ];
        args.extend_from_slice(extra);
        env.cli(&args)
    };

    // Without a limit OTHER does not fail, and the JSON says why it passed.
    let out = scan(&["--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["policy"]["source"]["kind"], "command_line");
    assert_eq!(
        report["policy"]["source"]["overrides"],
        serde_json::json!([
            "--critical-threshold unlimited",
            "--high-threshold unlimited"
        ])
    );
    let rules = report["rules"].to_string();
    assert!(
        rules.contains("3 OTHER: no OTHER threshold (unlimited)"),
        "{rules}"
    );

    let out = scan(&[
        "--other-threshold",
        "0",
        "--format",
        "html",
        "-o",
        &html_arg,
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("Content-Security-Policy"));
    assert!(!page.contains("src=\"http"), "no external asset");
    assert!(
        page.contains("flags --critical-threshold unlimited, --high-threshold unlimited, --other-threshold 0 on top of the defaults"),
        "{page}"
    );
    assert!(
        page.contains("FAIL [thresholds.other]: 3 OTHER (threshold 0) — CVE-2023-6237, CVE-2024-2511, CVE-2024-4603"),
        "{page}"
    );
    assert!(page.contains("OTHER means no severity rating"));
}
