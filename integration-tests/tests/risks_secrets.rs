//! Embedded secrets (NIST SP 800-190 §4.1.4) end to end: the real
//! `scangate sbom --secrets` binary on images this harness builds with a
//! planted secret of every rule in every location (a file, a file a later
//! layer deleted, ENV, a label, a build arg in history `created_by`), on
//! the nine shared corpus images (no unexplained finding), and under an
//! RSS budget with large files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use integration_tests::corpus;
use integration_tests::images::{ImageBuilder, Layer};
use serde_json::Value;

mod samples {
    include!("../../src/risks/secrets/samples.rs");
}
use samples::samples;

/// Rules limited to the files of one tool (`.npmrc`, `.netrc` …): they do
/// not apply to the image config.
const FILE_ONLY: &[&str] = &[
    "docker-config-auth",
    "npmrc-auth",
    "pypirc-password",
    "netrc-password",
    "git-credentials",
];

struct Run {
    out: Output,
    findings: Value,
    /// Everything the run wrote: stdout, stderr, the SBOM, findings.json.
    all_output: String,
    max_rss_kib: i64,
}

fn run_sbom(image_dir: &Path, secrets: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let sbom = dir.path().join("sbom.json");
    let found = dir.path().join("secrets.json");
    let mut cmd = Command::new(corpus::scangate_bin());
    cmd.arg("sbom")
        .arg(format!("oci:{}", image_dir.display()))
        .arg("-o")
        .arg(&sbom)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("RUST_LOG", "scangate=debug");
    if secrets {
        cmd.arg("--secrets").arg(&found);
    }
    let (out, max_rss_kib) = integration_tests::process::run_measured(cmd);
    assert!(
        out.status.success(),
        "scangate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let findings_text = read(&found);
    let all_output = [
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        read(&sbom),
        findings_text.clone(),
    ]
    .join("\n");
    let findings = if secrets {
        serde_json::from_str(&findings_text).expect("findings JSON")
    } else {
        Value::Null
    };
    Run {
        out,
        findings,
        all_output,
        max_rss_kib,
    }
}

/// (rule, where) of every finding: `file:/path`, `deleted:/path`,
/// `overwritten:/path`, `config:Env[3]`.
fn located(findings: &Value) -> BTreeSet<(String, String)> {
    findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let loc = &f["location"];
            let at = match loc["in"].as_str().unwrap() {
                "file" if loc["later_layer"].is_string() => format!(
                    "{}:{}",
                    loc["later_layer"].as_str().unwrap(),
                    loc["path"].as_str().unwrap()
                ),
                "file" => format!("file:{}", loc["path"].as_str().unwrap()),
                "config" => format!("config:{}", loc["field"].as_str().unwrap()),
                other => other.to_owned(),
            };
            (f["rule_id"].as_str().unwrap().to_owned(), at)
        })
        .collect()
}

#[test]
fn planted_secrets_every_rule_every_location_recall_1() {
    let samples = samples();
    let mut kept = Layer::new();
    let mut doomed = Layer::new();
    let mut deleter = Layer::new();
    let mut image = ImageBuilder::new();
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    // The builder's own PATH is Env[0].
    let mut env_index = 1;
    let mut build_args = Vec::new();
    for (i, (rule, path, text, _)) in samples.iter().enumerate() {
        // Each sample at its own path (several share a rule or a path).
        let file = format!("/s{i}{path}");
        kept = kept.file(&file, text.as_bytes());
        expected.insert((rule.to_string(), format!("file:{file}")));
        let gone = format!("/gone{i}{path}");
        doomed = doomed.file(&gone, text.as_bytes());
        deleter = deleter.whiteout(&gone);
        expected.insert((rule.to_string(), format!("deleted:{gone}")));
        if FILE_ONLY.contains(rule) {
            continue;
        }
        // The whole sample (a key's lines, the key-id/secret pair) is one
        // config value, as `ENV X="$(cat f)"` would make it.
        let value = text.trim();
        image = image.env(&format!("S{i}={value}"));
        expected.insert((rule.to_string(), format!("config:Env[{env_index}]")));
        env_index += 1;
        image = image.label(&format!("l{i:02}"), value);
        expected.insert((rule.to_string(), format!("config:Labels.l{i:02}")));
        build_args.push(format!("A{i}={value}"));
    }
    // `docker build --build-arg` leaves `RUN |N A=v … /bin/sh -c …`.
    let run = format!(
        "RUN |{} {} /bin/sh -c make install",
        build_args.len(),
        build_args.join(" ")
    );
    deleter = deleter.created_by(&run);
    image = image.layer(kept).layer(doomed).layer(deleter);
    let built = image.build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    built.write_oci_layout(dir.path(), None).unwrap();

    let run = run_sbom(dir.path(), true);
    let found = located(&run.findings);
    // The AWS pair samples also carry the key id (its own rule): expected
    // wherever the pair is.
    let mut expected_all = expected.clone();
    for (rule, at) in &expected {
        if rule == "aws-secret-access-key" && !at.starts_with("config:history") {
            expected_all.insert(("aws-access-key-id".into(), at.clone()));
        }
    }
    // history[2] is the deleting layer's RUN with every build arg.
    let history = "config:history[2].created_by".to_string();
    for (rule, _, _, _) in &samples {
        if !FILE_ONLY.contains(rule) {
            expected_all.insert((rule.to_string(), history.clone()));
        }
    }
    let missed: Vec<_> = expected_all.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected_all).collect();
    let recall = 1.0 - missed.len() as f64 / expected_all.len() as f64;
    eprintln!(
        "planted {} (rule, location) pairs; found {}; recall {recall:.3}",
        expected_all.len(),
        found.len()
    );
    assert!(missed.is_empty(), "missed: {missed:#?}");
    assert!(extra.is_empty(), "unexpected: {extra:#?}");
    assert_eq!(recall, 1.0);

    // No raw value anywhere in what the run wrote (findings, SBOM, logs).
    for (rule, _, _, secret) in &samples {
        let probe = &secret[..secret.len().min(16)];
        assert!(
            !run.all_output.contains(probe),
            "{rule}: a raw secret reached the output"
        );
    }
    for f in run.findings["findings"].as_array().unwrap() {
        assert!(f["severity"].is_string() && f["remediation"].is_string());
        if f["location"]["in"] == "file" {
            assert!(f["location"]["line"].as_u64().unwrap() >= 1);
            assert!(
                f["location"]["layer_digest"]
                    .as_str()
                    .unwrap()
                    .starts_with("sha256:")
            );
        }
    }
}

/// What the shared corpus images hold that a rule matches, and why it is
/// fine; everything else is a false positive.
const EXPLAINED: &[(&str, &str, &str)] = &[];

#[test]
fn corpus_images_have_no_unexplained_secrets() {
    let names = [
        "alpine-like",
        "debian-base",
        "distroless-like",
        "node-app",
        "polyglot",
        "python-app",
        "rpm-bdb",
        "rpm-ndb",
        "rpm-sqlite",
    ];
    let root = corpus::ensure_corpus(&names).unwrap();
    for name in names {
        let run = run_sbom(&root.join(name), true);
        let stats = &run.findings["stats"];
        eprintln!(
            "{name}: {} files ({} bytes) searched, {} skipped by path, {} by content, {} by size; {} findings",
            stats["files_searched"],
            stats["bytes_searched"],
            stats["files_skipped_by_path"],
            stats["files_skipped_by_content"],
            stats["files_skipped_by_size"],
            run.findings["findings"].as_array().unwrap().len()
        );
        assert!(stats["files_searched"].as_u64().unwrap() > 0, "{name}");
        for (rule, at) in located(&run.findings) {
            assert!(
                EXPLAINED
                    .iter()
                    .any(|(n, r, a)| *n == name && *r == rule && *a == at),
                "{name}: unexplained secret finding {rule} at {at}"
            );
        }
    }
}

#[test]
fn memory_stays_flat_with_large_and_many_text_files() {
    // 64 text files of 1 MiB (the size cap) with long lines and keyword
    // noise, one 48 MiB text file over the cap, and a secret at the end of
    // the last searched file.
    let noisy = "eyJ AKIA password ://x ".repeat(1 << 16);
    let mb = noisy.as_bytes()[..(1 << 20) - 64].to_vec();
    let mut layer = Layer::new();
    for i in 0..64 {
        layer = layer.file(&format!("/data/f{i}.txt"), mb.clone());
    }
    layer = layer.file("/data/huge.log", "x".repeat(48 << 20));
    let mut last = mb.clone();
    last.extend_from_slice(b"\nghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n");
    last.truncate(1 << 20);
    layer = layer.file("/data/z.txt", last);
    let built = ImageBuilder::new().layer(layer).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    built.write_oci_layout(dir.path(), None).unwrap();

    let plain = run_sbom(dir.path(), false);
    let with = run_sbom(dir.path(), true);
    eprintln!(
        "peak RSS: sbom {} KiB, sbom --secrets {} KiB",
        plain.max_rss_kib, with.max_rss_kib
    );
    let found = located(&with.findings);
    assert!(found.contains(&("github-token".into(), "file:/data/z.txt".into())));
    assert_eq!(with.findings["stats"]["files_skipped_by_size"], 1);
    // A window per file, not the files: a few MiB at most on top.
    assert!(
        with.max_rss_kib < plain.max_rss_kib + 16 * 1024,
        "{} vs {} KiB",
        with.max_rss_kib,
        plain.max_rss_kib
    );
    let _ = plain.out;
}

/// A secret in a file a later layer overwrote is still in the earlier
/// layer's blob: it is reported, and says `overwritten`; a file under a
/// directory a later layer replaced with a symlink, or made opaque, says
/// `deleted`; an untouched one says neither.
#[test]
fn secrets_a_later_layer_overwrote_or_hid_say_so() {
    let token = "token: ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n";
    let built = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("app/settings.env", token)
                .file("srv/conf/key.env", token)
                .file("opt/cache/token.txt", token)
                .file("keep.env", token),
        )
        .layer(
            Layer::new()
                .file("app/settings.env", "token: from-the-vault\n")
                .symlink("srv/conf", "/etc")
                .opaque("opt/cache"),
        )
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    built.write_oci_layout(dir.path(), None).unwrap();
    let run = run_sbom(dir.path(), true);
    let found = located(&run.findings);
    let want: BTreeSet<(String, String)> = [
        "overwritten:/app/settings.env",
        "deleted:/srv/conf/key.env",
        "deleted:/opt/cache/token.txt",
        "file:/keep.env",
    ]
    .iter()
    .map(|at| ("github-token".to_string(), at.to_string()))
    .collect();
    assert_eq!(found, want);
    assert!(!run.all_output.contains("ajAIxNKu8iS2G8NP"));
}
