//! End to end, `scangate scan` as a person or a CI job runs it: the real
//! binary against the Inspector emulator (answering with the real ScanSbom
//! answer for Amazon's SBOM of alpine:3.18.2: one CRITICAL, one HIGH, seven
//! MEDIUM, three OTHER) and an image in the real docker-registry. What is
//! checked is the contract scripts rely on: the exit code (0 pass, 1 or
//! `--exit-code` on a policy failure, 2 on an error), the report files, and
//! an error message that names the problem.

mod support;

use serde_json::Value;
use support::{Env, Output};

const CRITICAL: &str = "CVE-2022-48174";
const HIGH: &str = "CVE-2023-5363";

struct Fixture {
    env: Env,
    image: String,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let env = Env::new(false).await;
        let image = env.push_alpine_fixture("3.18.2").await;
        Fixture {
            env,
            image,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `scangate scan IMAGE ARGS…`, the registry reached over plain HTTP.
    fn scan(&self, image: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "scan",
            image,
            "--insecure-registries",
            &self.env.registry.addr,
        ];
        all.extend_from_slice(args);
        self.env.cli(&all)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Exit codes and verdicts: the default thresholds fail on the CRITICAL;
/// `--exit-code` changes only the failure's code; lenient thresholds, or a
/// policy file ignoring the CRITICAL with HIGH allowed, pass.
#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_follow_the_verdict() {
    let f = Fixture::new().await;

    let out = f.scan(&f.image, &["--format", "json"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "FAIL");
    assert_eq!(report["counts"]["critical"], 1);
    assert_eq!(report["counts"]["high"], 1);
    assert_eq!(report["counts"]["medium"], 7);
    let violations = report["violations"].to_string();
    assert!(violations.contains("CRITICAL"), "{violations}");

    // stderr is a pipe here, as in CI: no progress lines.
    assert!(
        !out.stderr.contains("packages catalogued") && !out.stderr.contains("with Inspector…"),
        "{}",
        out.stderr
    );

    let out = f.scan(&f.image, &["--exit-code", "7"]);
    assert_eq!(out.code, Some(7), "{out:?}");
    assert!(
        out.stdout.contains(CRITICAL),
        "the table names it:\n{}",
        out.stdout
    );

    let out = f.scan(
        &f.image,
        &["--critical-threshold", "unlimited", "--high-threshold", "1"],
    );
    assert_eq!(out.code, Some(0), "{out:?}");

    let policy = f.path("scangate.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nthresholds: {{ high: 1 }}\nignore:\n  - id: {CRITICAL}\n    \
             reason: no shell reachable\n    expires: 2099-12-31\n"
        ),
    )
    .unwrap();
    let out = f.scan(&f.image, &["--policy", &policy, "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "PASS");
    assert_eq!(report["suppressed"], 1);
    assert_eq!(report["counts"]["critical"], 1, "counts keep every finding");
    // A flag overrides the file: HIGH back to 0 fails again.
    let out = f.scan(&f.image, &["--policy", &policy, "--high-threshold", "0"]);
    assert_eq!(out.code, Some(1), "{out:?}");
}

/// `--format sarif|junit --output FILE` writes the report to the file, valid
/// SARIF 2.1.0 JSON and well-formed JUnit XML naming the findings, and says
/// the verdict in one line on stderr.
#[tokio::test(flavor = "multi_thread")]
async fn sarif_and_junit_reports_are_written_to_the_output_file() {
    let f = Fixture::new().await;

    let sarif = f.path("scan.sarif");
    let out = f.scan(&f.image, &["--format", "sarif", "--output", &sarif]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "the report went to the file: {out:?}"
    );
    assert!(
        out.stderr.contains("FAIL") && out.stderr.contains(&sarif),
        "{}",
        out.stderr
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    let rules: Vec<&str> = results
        .iter()
        .filter_map(|r| r["ruleId"].as_str())
        .collect();
    assert!(
        rules.contains(&CRITICAL) && rules.contains(&HIGH),
        "{rules:?}"
    );

    let junit = f.path("junit.xml");
    let out = f.scan(&f.image, &["--format", "junit", "--output", &junit]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let failures: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| {
            let case = n.parent().unwrap();
            format!(
                "{} {}",
                case.attribute("name").unwrap_or_default(),
                n.attribute("message").unwrap_or_default()
            )
        })
        .collect();
    assert!(
        failures
            .iter()
            .any(|f| f.contains(CRITICAL) || f.contains("CRITICAL")),
        "{failures:?}\n{xml}"
    );
}

/// A malformed reference and a tag the registry does not have are errors
/// (exit 2), not failed gates, and the message says which.
#[tokio::test(flavor = "multi_thread")]
async fn bad_references_are_errors_with_exit_code_2() {
    let f = Fixture::new().await;
    let addr = &f.env.registry.addr;

    let bad = format!("{addr}/Fixture/Alpine:3.18.2");
    let out = f.scan(&bad, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("invalid image reference") && out.stderr.contains(&bad),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("must be lowercase"), "{}", out.stderr);

    let missing = format!("{addr}/fixture/alpine:no-such-tag");
    let out = f.scan(&missing, &["--exit-code", "7"]);
    assert_eq!(
        out.code,
        Some(2),
        "an error is never the policy's code: {out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("error: image not found: {missing}")),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// `scangate scan … | head -1`: the reader goes away before the report is
/// written. The exit status is still the verdict's (1 here), not a panic's
/// 101, and nothing is said about a broken pipe; the same for `sbom` (0).
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_keeps_the_verdicts_exit_status() {
    let f = Fixture::new().await;
    let run = |args: &[&str]| {
        let mut all = vec![
            args[0],
            args[1],
            "--insecure-registries",
            &f.env.registry.addr,
        ];
        all.extend_from_slice(&args[2..]);
        let mut cmd = std::process::Command::new(integration_tests::corpus::scangate_bin());
        cmd.args(&all)
            .env_clear()
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "AWS_ENDPOINT_URL_INSPECTOR_SCAN",
                &f.env.emus.urls.inspector,
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // Closed before anything is written: the first write gets EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for format in ["table", "json", "sarif"] {
        let (code, stderr) = run(&["scan", &f.image, "--format", format]);
        assert_eq!(code, Some(1), "{format}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{format}: {stderr}"
        );
    }
    let (code, stderr) = run(&["sbom", &f.image]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The policy's `signature:` section gates the scan: with
/// `signature.required` and a cosign key, an image nobody signed fails
/// (SIGNATURE UNSIGNED, the rule named); a key file that is not beside the
/// policy is a configuration error (exit 2) found before any pull.
#[tokio::test(flavor = "multi_thread")]
async fn signature_required_fails_an_unsigned_image() {
    let f = Fixture::new().await;
    let key = f.path("cosign.key");
    let public = f.path("cosign.pub");
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
        vec!["pkey", "-in", &key, "-pubout", "-out", &public],
    ] {
        let st = std::process::Command::new("openssl")
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args:?}");
    }
    let policy = f.path("signed.yaml");
    std::fs::write(
        &policy,
        "version: 1\nthresholds: { critical: null, high: null }\n\
         signature:\n  required: true\n  cosign:\n    keys: [cosign.pub]\n",
    )
    .unwrap();
    let out = f.scan(&f.image, &["--policy", &policy, "--format", "json"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "FAIL");
    assert_eq!(report["signature"], "UNSIGNED", "{report}");
    let violations = report["violations"].to_string();
    assert!(violations.contains("signature"), "{violations}");

    // Not required: reported, never failing.
    std::fs::write(
        &policy,
        "version: 1\nthresholds: { critical: null, high: null }\n\
         signature:\n  cosign:\n    keys: [cosign.pub]\n",
    )
    .unwrap();
    let out = f.scan(&f.image, &["--policy", &policy, "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["signature"], "UNSIGNED", "{report}");

    std::fs::write(
        &policy,
        "version: 1\nsignature:\n  required: true\n  cosign:\n    keys: [missing.pub]\n",
    )
    .unwrap();
    let out = f.scan(&f.image, &["--policy", &policy]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("missing.pub"), "{}", out.stderr);
}

/// `sbom --risks FILE` runs every risk producer that needs no service in
/// the SBOM's one pass, offline (what `bench-risks.sh` measures): the
/// configuration rules (the image runs as root and has no HEALTHCHECK) and
/// the secret scan (a planted private key) land in FILE, the key's value
/// never does, and the SBOM is still written.
#[test]
fn sbom_risks_writes_configuration_and_secret_findings() {
    use integration_tests::images::{ImageBuilder, Layer};
    let b64 = "2O76UMFxFkM+R5Kjp1vRt/1fjORS+6ilI8ihN5KXSc7Tvo+hBKqFYY+kv5ZJr3J1";
    let key = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{b64}\n{b64}\nAB12==\n-----END OPENSSH PRIVATE KEY-----\n"
    );
    let built = ImageBuilder::new()
        .layer(Layer::new().file("/root/.ssh/id_ed25519", key.as_bytes()))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    built.write_oci_layout(&layout, None).unwrap();
    let (sbom, risks) = (dir.path().join("sbom.json"), dir.path().join("risks.json"));
    let out = std::process::Command::new(integration_tests::corpus::scangate_bin())
        .arg("sbom")
        .arg(format!("oci:{}", layout.display()))
        .arg("-o")
        .arg(&sbom)
        .arg("--risks")
        .arg(&risks)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scangate sbom --risks failed: {stderr}"
    );
    let text = std::fs::read_to_string(&risks).expect("the risks file");
    assert!(!text.contains(b64), "the key's value leaked: {text}");
    let found: Value = serde_json::from_str(&text).unwrap();
    let got: Vec<(String, String)> = found["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["rule_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("config", "CIS-DI-0001"),
        ("config", "CIS-DI-0006"),
        ("secret", "private-key"),
    ] {
        assert!(
            got.iter().any(|(k, r)| (k.as_str(), r.as_str()) == want),
            "{want:?} not in {got:?}"
        );
    }
    let bom: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
}
