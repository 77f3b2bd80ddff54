//! Configuration defects (NIST SP 800-190 §4.1.3) end to end: the real
//! `scangate` binary scans images from the real docker-registry (and the
//! shared corpus from its OCI layouts) with the Inspector emulator, and
//! every configuration rule is checked where a user sees it: `scan`'s JSON
//! and table, the report files, the verdict under `config.fail_on`, and the
//! worker's output variables.

mod support;

use std::collections::BTreeMap;

use integration_tests::images::{ImageBuilder, Layer};
use integration_tests::{corpus, process};
use serde_json::{Value, json};
use support::{Env, Output};

/// Planted values: none of them may appear in any output.
const SECRET_VALUE: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const URL_TOKEN: &str = "tok3nInTheQuery";
const URL_PASSWORD: &str = "pa55InTheUrl";

/// Every configuration rule, each planted once.
const ALL_RULES: [&str; 8] = [
    "CIS-DI-0001",
    "CIS-DI-0006",
    "CIS-DI-0008",
    "CIS-DI-0009",
    "CIS-DI-0010",
    "SG-CONFIG-SSH",
    "SG-CONFIG-WORLD-WRITABLE",
    "SG-CONFIG-MUTABLE-BASE",
];

/// The alpine fixture (so Inspector has real answers), then a layer that
/// adds a setuid helper, a world-writable config file and an SSH daemon,
/// made by `ADD` of a remote URL; root user, a secret in ENV, port 22, no
/// HEALTHCHECK, a base named by its `latest` tag.
fn defective_image() -> ImageBuilder {
    ImageBuilder::new()
        .layer(support::alpine_fixture_layer())
        .layer(
            Layer::new()
                .dir("usr/local/bin")
                .file_mode("usr/local/bin/helper", b"#!/bin/sh\n".to_vec(), 0o4755)
                .dir("app")
                .file_mode("app/config.yml", b"listen: 8080\n".to_vec(), 0o666)
                .dir("tmp")
                // World-writable inside /tmp is expected: not a finding.
                .file_mode("tmp/scratch", b"x".to_vec(), 0o666)
                .dir("usr/sbin")
                .file_mode("usr/sbin/sshd", b"\x7fELF".to_vec(), 0o755)
                .created_by(&format!(
                    "ADD https://builder:{URL_PASSWORD}@downloads.example.com/tool.tgz?token={URL_TOKEN} /usr/local/ # buildkit"
                )),
        )
        .env(&format!("AWS_SECRET_ACCESS_KEY={SECRET_VALUE}"))
        .env("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE")
        .env("GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D")
        .config_field("ExposedPorts", json!({"22/tcp": {}, "8080/tcp": {}}))
        .label(
            "org.opencontainers.image.base.name",
            "docker.io/library/alpine:latest",
        )
}

/// The same image with every defect fixed: no configuration finding.
fn clean_image() -> ImageBuilder {
    ImageBuilder::new()
        .layer(support::alpine_fixture_layer())
        .layer(
            Layer::new()
                .dir("app")
                .file("app/config.yml", "listen: 8080\n")
                .created_by("COPY app /app # buildkit"),
        )
        .config_field("User", json!("10001:10001"))
        .config_field(
            "Healthcheck",
            json!({"Test": ["CMD", "/app/health"], "Interval": 30_000_000_000u64}),
        )
        .config_field("ExposedPorts", json!({"8080/tcp": {}}))
        .annotation(
            "org.opencontainers.image.base.name",
            "docker.io/library/alpine:3.18",
        )
        .annotation(
            "org.opencontainers.image.base.digest",
            &format!("sha256:{}", "c".repeat(64)),
        )
}

async fn push(env: &Env, image: ImageBuilder, repo_tag: &str) -> String {
    image
        .build()
        .unwrap()
        .push(&env.registry.addr, repo_tag, None)
        .await
        .unwrap();
    env.registry.reference(repo_tag)
}

/// `scangate scan IMAGE --format json` with vulnerability thresholds that
/// let the alpine fixture's findings pass, so the verdict is the risks'.
fn scan(env: &Env, image: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "scan",
        image,
        "--insecure-registries",
        &env.registry.addr,
        "--critical-threshold",
        "100",
        "--high-threshold",
        "100",
    ];
    args.extend_from_slice(extra);
    env.cli(&args)
}

fn risks_of(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    v["risks"].as_array().cloned().unwrap_or_default()
}

/// Configuration findings per rule (the planted ENV secret also gives a
/// secret finding: that is the secret scanner's, tested in risks_secrets).
fn rule_counts(risks: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in risks.iter().filter(|r| r["kind"] == "config") {
        *m.entry(r["rule_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

fn assert_no_leak(what: &str, text: &str) {
    for planted in [SECRET_VALUE, "wJalrXUtnFEMI", URL_TOKEN, URL_PASSWORD] {
        assert!(
            !text.contains(planted),
            "{planted} leaked into {what}:\n{text}"
        );
    }
}

/// Every rule fires exactly once on the defective image, at the right
/// place, with no planted value in any output format; the fixed image has
/// none; the default policy reports without failing.
#[tokio::test(flavor = "multi_thread")]
async fn every_rule_fires_once_and_nothing_leaks() {
    let env = Env::new(false).await;
    let bad = push(&env, defective_image(), "risks/defective:1").await;
    let good = push(&env, clean_image(), "risks/clean:1").await;

    let out = scan(&env, &bad, &["--format", "json"]);
    assert_eq!(out.code, Some(0), "report only by default: {out:?}");
    assert_no_leak("scan --format json", &out.stdout);
    assert_no_leak("stderr", &out.stderr);
    let risks = risks_of(&out);
    let counts = rule_counts(&risks);
    let want: BTreeMap<String, usize> = ALL_RULES.iter().map(|r| (r.to_string(), 1)).collect();
    assert_eq!(counts, want, "{risks:#?}");
    let by_rule: BTreeMap<&str, &Value> = risks
        .iter()
        .map(|r| (r["rule_id"].as_str().unwrap(), r))
        .collect();
    // Where each one is.
    let setuid = by_rule["CIS-DI-0008"];
    assert_eq!(setuid["location"]["path"], "/usr/local/bin/helper");
    assert_eq!(setuid["location"]["layer"], 1);
    assert_eq!(
        by_rule["SG-CONFIG-WORLD-WRITABLE"]["location"]["path"],
        "/app/config.yml"
    );
    assert_eq!(by_rule["CIS-DI-0010"]["location"]["field"], "Env[1]");
    assert_eq!(
        by_rule["CIS-DI-0010"]["excerpt"],
        "AWS_SECRET_ACCESS_KEY=********"
    );
    let ssh = by_rule["SG-CONFIG-SSH"]["title"].as_str().unwrap();
    assert!(
        ssh.contains("/usr/sbin/sshd present") && ssh.contains("port 22/tcp exposed"),
        "{ssh}"
    );
    assert_eq!(
        by_rule["CIS-DI-0009"]["title"],
        "ADD of a remote URL: https://downloads.example.com/tool.tgz"
    );
    for r in &risks {
        assert!(r["kind"] == "config" || r["kind"] == "secret", "{r}");
        assert_eq!(r["gate"], "reported");
    }

    // Every other format: the rules are there, the values are not.
    for format in ["table", "markdown", "sarif", "junit"] {
        let out = scan(&env, &bad, &["--format", format]);
        assert_eq!(out.code, Some(0), "{format}: {out:?}");
        assert_no_leak(format, &out.stdout);
        for rule in ALL_RULES {
            assert!(
                out.stdout.contains(rule),
                "{format} lacks {rule}:\n{}",
                out.stdout
            );
        }
    }
    let sarif = scan(&env, &bad, &["--format", "sarif"]);
    let sarif: Value = serde_json::from_str(&sarif.stdout).unwrap();
    let rules: Vec<&str> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for rule in ALL_RULES {
        assert_eq!(rules.iter().filter(|r| **r == rule).count(), 1, "{rules:?}");
    }

    let out = scan(&env, &good, &["--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(risks_of(&out).is_empty(), "{}", out.stdout);
}

/// `config.fail_on` turns the gate on; `disable` and reasoned `allow`
/// entries take findings out of it; `policy check` validates the section.
#[tokio::test(flavor = "multi_thread")]
async fn config_fail_on_gates_and_allow_rules_suppress() {
    let env = Env::new(false).await;
    let bad = push(&env, defective_image(), "risks/defective:2").await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };

    let strict = write(
        "strict.yaml",
        "version: 1\nthresholds: { critical: 100, high: 100 }\nconfig:\n  fail_on: high\n",
    );
    let out = scan(&env, &bad, &["--format", "json", "--policy", &strict]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_no_leak("failing scan", &out.stdout);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let violations = v["violations"].to_string();
    for rule in ["CIS-DI-0001", "CIS-DI-0010"] {
        assert!(violations.contains(rule), "{violations}");
    }
    // MEDIUM and LOW rules are below fail_on: reported, not violations.
    for rule in ["SG-CONFIG-SSH", "CIS-DI-0006", "CIS-DI-0008"] {
        assert!(!violations.contains(rule), "{violations}");
    }
    assert_eq!(v["risk_gates"]["config"]["unsuppressed"], 8);

    let accepted = write(
        "accepted.yaml",
        "version: 1\nthresholds: { critical: 100, high: 100 }\nconfig:\n  fail_on: high\n  disable: [CIS-DI-0001]\n  allow:\n    - { rule: CIS-DI-0010, path: 'Env[*]', reason: rotated and removed in the next release, expires: 2099-01-01 }\n",
    );
    let out = scan(&env, &bad, &["--format", "json", "--policy", &accepted]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["risk_gates"]["config"]["unsuppressed"], 6);
    assert_eq!(v["risk_gates"]["config"]["disabled"], 1);
    assert_eq!(
        v["risk_gates"]["config"]["suppressions"][0]["reason"],
        "rotated and removed in the next release"
    );

    let check = env.cli(&["policy", "check", &accepted]);
    assert_eq!(check.code, Some(0), "{check:?}");
    let bad_policy = write("bad.yaml", "version: 1\nconfig:\n  fail_on: severe\n");
    let check = env.cli(&["policy", "check", &bad_policy]);
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(
        check
            .stderr
            .contains("fail_on must be one of critical, high, medium, low"),
        "{}",
        check.stderr
    );
}

/// The worker's success result carries SECRETS, MISCONFIGS and SIGNATURE,
/// and findings.json the risk findings.
#[tokio::test(flavor = "multi_thread")]
async fn worker_output_variables() {
    let env = Env::new(false).await;
    let bad = push(&env, defective_image(), "risks/defective:3").await;
    let reports = tempfile::tempdir().unwrap();
    let w = env.worker(&support::reports_dir_uri(reports.path()));
    let id = env.enqueue(
        "risks",
        &[
            ("ImageUrl", bad.as_str()),
            ("CriticalThreshold", "100"),
            ("HighThreshold", "100"),
        ],
        None,
    );
    let snap = env.result(&id, &w).await;
    let vars = support::success(&snap);
    assert_eq!(vars["MISCONFIGS"], "8", "{vars:?}");
    // The planted AWS_SECRET_ACCESS_KEY in ENV is a secret as well.
    assert_ne!(vars["SECRETS"], "0", "{vars:?}");
    assert_eq!(vars["SIGNATURE"], "NOT_CHECKED");
    let findings: Value = serde_json::from_slice(
        &std::fs::read(reports.path().join("jobs").join(&id).join("findings.json")).unwrap(),
    )
    .unwrap();
    let risks = findings["risks"].as_array().unwrap();
    let of = |kind: &str| risks.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!(of("config"), 8);
    assert_eq!(of("secret").to_string(), vars["SECRETS"]);
    assert!(findings["vulnerabilities"].as_array().is_some());
    for f in [
        "findings.json",
        "report.md",
        "report.html",
        "report.sarif",
        "junit.xml",
        "record.json",
    ] {
        let text = std::fs::read_to_string(reports.path().join("jobs").join(&id).join(f)).unwrap();
        assert_no_leak(f, &text);
    }
}

/// What the nine shared corpus images really have. Each finding here is
/// true of the image as built by ../shared/corpus/build.sh:
/// - every image runs as root and declares no HEALTHCHECK (the corpus
///   Dockerfiles set neither USER nor HEALTHCHECK);
/// - the Debian- and RPM-based images ship the distribution's setuid
///   tools (su, passwd, mount, …): with no base image known, all layers
///   are the image's, so each is listed (CIS-DI-0008).
///
/// Nothing else may fire: no secret ENV, no SSH, no world-writable file, no
/// remote ADD, no mutable base.
#[test]
fn corpus_images_have_only_explained_findings() {
    let names = [
        "debian-base",
        "alpine-like",
        "python-app",
        "node-app",
        "polyglot",
        "distroless-like",
        "rpm-bdb",
        "rpm-ndb",
        "rpm-sqlite",
    ];
    let dir = corpus::ensure_corpus(&names).expect("the shared corpus");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::new(false));
    for name in names {
        let source = format!("oci:{}", dir.join(name).display());
        let mut cmd = std::process::Command::new(corpus::scangate_bin());
        cmd.args([
            "scan",
            &source,
            "--format",
            "json",
            "--critical-threshold",
            "100000",
            "--high-threshold",
            "100000",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_INSPECTOR_SCAN", &env.emus.urls.inspector);
        let (out, rss) = process::run_measured(cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: {e}\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let risks = v["risks"].as_array().cloned().unwrap_or_default();
        let counts = rule_counts(&risks);
        eprintln!("{name}: {counts:?} (peak RSS {rss} KiB)");
        for (rule, n) in &counts {
            let explained = match rule.as_str() {
                "CIS-DI-0001" | "CIS-DI-0006" => *n == 1,
                "CIS-DI-0008" => risks
                    .iter()
                    .filter(|r| r["rule_id"] == "CIS-DI-0008")
                    .all(|r| is_distribution_setuid(r["location"]["path"].as_str().unwrap())),
                _ => false,
            };
            assert!(explained, "{name}: unexplained {rule} ×{n}: {risks:#?}");
        }
        assert_eq!(counts.get("CIS-DI-0001"), Some(&1), "{name} runs as root");
    }
}

/// The setuid/setgid programs Debian, Fedora/RHEL and Alpine packages
/// install on purpose.
fn is_distribution_setuid(path: &str) -> bool {
    const KNOWN: &[&str] = &[
        "chfn",
        "chsh",
        "gpasswd",
        "newgrp",
        "passwd",
        "su",
        "mount",
        "umount",
        "chage",
        "expiry",
        "unix_chkpwd",
        "pam_extrausers_chkpwd",
        "ssh-agent",
        "wall",
        "write",
        "crontab",
        "sudo",
        "pkexec",
        "ping",
        "fusermount",
        "fusermount3",
        "newuidmap",
        "newgidmap",
        "bbsuid",
        "dbus-daemon-launch-helper",
        "userhelper",
        "grub2-set-bootflag",
        "pam_timestamp_check",
        "utempter",
        "ssh-keysign",
        "mount.nfs",
        "write.ul",
    ];
    let file = path.rsplit('/').next().unwrap_or(path);
    KNOWN.contains(&file)
}

/// The final filesystem decides: a setuid file a later layer deleted, one a
/// later layer rewrote without the bit (`RUN chmod a-s`), and a directory
/// a later opaque marker emptied are not findings; the setuid file the
/// base image (named by `base_image.ref`) brought is the base's.
#[tokio::test(flavor = "multi_thread")]
async fn later_layers_and_the_base_image_decide() {
    let env = Env::new(false).await;
    let base = ImageBuilder::new()
        .layer(support::alpine_fixture_layer())
        .layer(
            Layer::new()
                .dir("bin")
                .file_mode("bin/su", b"su".to_vec(), 0o4755),
        );
    let base_ref = push(&env, base.clone(), "risks/base:1").await;
    let image = base
        .layer(
            Layer::new()
                .dir("opt")
                .file_mode("opt/gone", b"x".to_vec(), 0o4755)
                .file_mode("opt/fixed", b"x".to_vec(), 0o6755)
                .dir("srv")
                .dir("srv/drop")
                .file_mode("srv/drop/open", b"x".to_vec(), 0o666)
                .file_mode("opt/kept", b"x".to_vec(), 0o2755),
        )
        .layer(
            Layer::new()
                .whiteout("opt/gone")
                .file_mode("opt/fixed", b"x".to_vec(), 0o755)
                .opaque("srv/drop"),
        );
    let image = push(&env, image, "risks/layered:1").await;

    let out = scan(&env, &image, &["--format", "json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let paths: Vec<String> = risks_of(&out)
        .iter()
        .filter(|r| r["rule_id"] == "CIS-DI-0008" || r["rule_id"] == "SG-CONFIG-WORLD-WRITABLE")
        .map(|r| {
            format!(
                "{} {}",
                r["rule_id"].as_str().unwrap(),
                r["location"]["path"].as_str().unwrap()
            )
        })
        .collect();
    // No base known: the base's su is listed too.
    assert_eq!(paths, ["CIS-DI-0008 /bin/su", "CIS-DI-0008 /opt/kept"]);

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("base.yaml");
    std::fs::write(
        &policy,
        format!("version: 1\nthresholds: {{ critical: 100, high: 100 }}\nbase_image:\n  ref: {base_ref}\n"),
    )
    .unwrap();
    let out = scan(
        &env,
        &image,
        &["--format", "json", "--policy", policy.to_str().unwrap()],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let setuid: Vec<Value> = risks_of(&out)
        .into_iter()
        .filter(|r| r["rule_id"] == "CIS-DI-0008")
        .collect();
    assert_eq!(setuid.len(), 1, "{setuid:#?}");
    assert_eq!(setuid[0]["location"]["path"], "/opt/kept");
    assert_eq!(setuid[0]["location"]["layer"], 2);
}

/// A hostile layer of 30,000 setuid, world-writable files: the layer
/// reader records at most 2,048 of them, each rule lists at most 50 and
/// says how many more there were, and memory stays flat.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_setuid_files_is_bounded() {
    let env = Env::new(false).await;
    let mut flood = Layer::new().dir("x");
    for i in 0..30_000 {
        flood = flood.file_mode(&format!("x/f{i:05}"), Vec::new(), 0o6777);
    }
    let image = push(
        &env,
        ImageBuilder::new()
            .layer(support::alpine_fixture_layer())
            .layer(flood),
        "risks/flood:1",
    )
    .await;
    let mut cmd = std::process::Command::new(corpus::scangate_bin());
    cmd.args([
        "scan",
        &image,
        "--insecure-registries",
        &env.registry.addr,
        "--format",
        "json",
        "--critical-threshold",
        "100",
        "--high-threshold",
        "100",
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    .env("AWS_SECRET_ACCESS_KEY", "test-secret")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("AWS_ENDPOINT_URL_INSPECTOR_SCAN", &env.emus.urls.inspector);
    let (out, rss_kib) = process::run_measured(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let counts = rule_counts(v["risks"].as_array().unwrap());
    assert_eq!(counts["CIS-DI-0008"], 50, "{counts:?}");
    assert_eq!(counts["SG-CONFIG-WORLD-WRITABLE"], 50, "{counts:?}");
    let warnings = v["warnings"].to_string();
    assert!(
        warnings
            .contains("27952 more setuid/setgid or world-writable entries than the 2048 recorded"),
        "{warnings}"
    );
    assert!(
        warnings.contains("configuration rule CIS-DI-0008: 1998 more findings than the 50 listed"),
        "{warnings}"
    );
    eprintln!("flood of 30000 setuid files: peak RSS {rss_kib} KiB");
    assert!(rss_kib < 160 * 1024, "peak RSS {rss_kib} KiB");
}
