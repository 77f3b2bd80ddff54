//! The image risks under the `ecr-basic` and `ecr-enhanced` engines, end
//! to end: the real `scangate worker` against the CodePipeline and ECR
//! emulators, the real `docker-registry` playing the ECR registry, and moto
//! S3 holding the policy artifact.
//!
//! ECR's findings need no layer, but the secret and configuration rules
//! over files do, and a `signature: {required: true}` policy must gate the
//! ECR engines as it gates the inspector engine (it used to pass an
//! unsigned image).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use integration_tests::Emulators;
use integration_tests::codepipeline::{Artifact, JobSnapshot, NewJob};
use integration_tests::ecr::{EcrEmulator, ScanSetup, fixture};
use integration_tests::images::{
    ImageBuilder, Layer, debian_os_release, dpkg_layer, dpkg_status, push_blob, push_manifest,
};
use integration_tests::process::MotoServer;
use integration_tests::registry::Registry;
use serde_json::{Value, json};
use support::{RunningWorker, Worker, failure, success};

const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
/// The registry password is the ECR token's, as with real ECR.
const ECR_PASSWORD: &str = "eyJwYXlsb2FkIjoiZWNyLXJpc2tzIn0";
/// A GitHub token of the planted-secret corpus (not a live credential).
const TOKEN: &str = "ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP";

struct Env {
    emus: Emulators,
    ecr: EcrEmulator,
    registry: Registry,
    moto: MotoServer,
    reports: tempfile::TempDir,
    keys: tempfile::TempDir,
    worker: Option<RunningWorker>,
}

impl Env {
    async fn new() -> Env {
        let emus = support::start_emulators().await;
        let ecr = EcrEmulator::start("AWS", ECR_PASSWORD, Duration::from_secs(12 * 3600))
            .await
            .unwrap();
        let mut env = Env {
            emus,
            ecr,
            registry: Registry::start_with_auth("AWS", ECR_PASSWORD).unwrap(),
            moto: MotoServer::start().expect("moto_server: run .ci/run"),
            reports: tempfile::tempdir().unwrap(),
            keys: tempfile::tempdir().unwrap(),
            worker: None,
        };
        env.s3()
            .await
            .create_bucket()
            .bucket("artifacts")
            .send()
            .await
            .unwrap();
        env.worker = Some(env.start_worker());
        env
    }

    /// `HOST:PORT`, the registry as the worker reaches it.
    fn ecr_addr(&self) -> String {
        let port = self.registry.addr.rsplit_once(':').unwrap().1;
        format!("{HOST}:{port}")
    }

    /// The worker reaches the registry under the ECR host name (pinned to
    /// 127.0.0.1), ECR's API at the emulator and the policy artifact in moto.
    fn start_worker(&self) -> RunningWorker {
        Worker::new(&self.emus)
            .env("AWS_ENDPOINT_URL_ECR", self.ecr.url())
            .env("SCANGATE_REGISTRY_RESOLVE", format!("{HOST}=127.0.0.1"))
            .registry(&self.ecr_addr())
            .s3(&self.moto.endpoint)
            .reports(self.reports.path())
            .spawn()
    }

    async fn s3(&self) -> aws_sdk_s3::Client {
        support::s3_client(&self.moto.endpoint).await
    }

    /// Puts a zip of `files` into the artifacts bucket as `key`.
    async fn artifact(&self, key: &str, files: &[(&str, &[u8])]) -> Artifact {
        use std::io::Write as _;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, body) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(body).unwrap();
        }
        z.finish().unwrap();
        self.s3()
            .await
            .put_object()
            .bucket("artifacts")
            .key(key)
            .body(buf.into_inner().into())
            .send()
            .await
            .unwrap();
        Artifact::s3("BuildOutput", "artifacts", key)
    }

    fn job(&self, config: &[(&str, &str)], input: Option<Artifact>) -> String {
        self.emus.codepipeline.enqueue_job(NewJob {
            pipeline_name: "app-pipeline".into(),
            stage_name: "Scan".into(),
            action_name: "ImageScan".into(),
            configuration: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            input_artifacts: input.into_iter().collect(),
            ..NewJob::default()
        })
    }

    async fn result(&self, id: &str) -> JobSnapshot {
        let w = self.worker.as_ref().unwrap();
        w.job_result(&self.emus, id, Duration::from_secs(120)).await
    }

    fn report(&self, id: &str, name: &str) -> String {
        let p = self.reports.path().join("jobs").join(id).join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A cosign key pair made by openssl: (private key path, public PEM).
    fn cosign_key(&self) -> (PathBuf, Vec<u8>) {
        let key = self.keys.path().join("cosign.key");
        let public = self.keys.path().join("cosign.pub");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key.to_str().unwrap(),
        ]);
        openssl(&[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        (key, std::fs::read(&public).unwrap())
    }

    /// Signs `digest` of `repo` as `cosign sign --key` does with the
    /// registry's tag scheme: a simple-signing payload naming the digest,
    /// its ECDSA signature (DER, base64) in the layer's annotation, under
    /// the tag `sha256-HEX.sig`.
    async fn cosign_sign(&self, key: &std::path::Path, repo: &str, digest: &str) {
        let payload = json!({
            "critical": {
                "identity": {"docker-reference": format!("{}/{repo}", self.ecr_addr())},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature"
            },
            "optional": null
        })
        .to_string();
        let msg = self.keys.path().join("payload.json");
        std::fs::write(&msg, &payload).unwrap();
        let der = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            msg.to_str().unwrap(),
        ]);
        let signature = base64::engine::general_purpose::STANDARD.encode(der);
        let r = &self.registry;
        let payload_digest = push_blob(r, repo, payload.as_bytes()).await.unwrap();
        let config = json!({
            "architecture": "", "created": "0001-01-01T00:00:00Z", "os": "",
            "rootfs": {"type": "layers", "diff_ids": [payload_digest]}, "config": {}
        })
        .to_string();
        let config_digest = push_blob(r, repo, config.as_bytes()).await.unwrap();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": payload_digest,
                "size": payload.len(),
                "annotations": {"dev.cosignproject.cosign/signature": signature}
            }]
        })
        .to_string();
        let tag = format!("{}.sig", digest.replacen(':', "-", 1));
        push_manifest(
            r,
            repo,
            &tag,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        )
        .await
        .unwrap();
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A small Debian image whose second layer adds a token in a config file,
/// a setuid helper and a file the third layer overwrites.
fn risky_image() -> ImageBuilder {
    ImageBuilder::new()
        .layer(dpkg_layer(
            &debian_os_release(),
            &dpkg_status(&[("libc6", "2.36-9+deb12u4", "amd64", "glibc")]),
        ))
        .layer(
            Layer::new()
                .file("etc/app/deploy.env", format!("GITHUB_TOKEN={TOKEN}\n"))
                .file("etc/app/old.env", format!("token: {TOKEN}\n"))
                .file_mode("usr/local/bin/helper", b"\x7fELF helper".to_vec(), 0o4755),
        )
        .layer(Layer::new().file("etc/app/old.env", "token: from-the-vault\n"))
}

fn risks_of(findings_json: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(findings_json).unwrap();
    v["risks"].as_array().unwrap().clone()
}

/// Engine ecr-enhanced reads the layers once for the file rules: the
/// token in a file (and the overwritten copy, said so), and the setuid
/// binary; ECR's own findings still decide the vulnerability counts.
#[tokio::test(flavor = "multi_thread")]
async fn ecr_enhanced_reports_secrets_in_files_and_setuid_binaries() {
    let env = Env::new().await;
    let digest = risky_image()
        .build()
        .unwrap()
        .push_to(&env.registry, "team/app:risky")
        .await
        .unwrap();
    env.ecr.add_image(
        "team/app",
        &digest,
        &["risky"],
        ScanSetup::enhanced(fixture("enhanced-findings.json")),
    );
    let image = format!("{}/team/app:risky", env.ecr_addr());
    let id = env.job(
        &[
            ("ImageUrl", &image),
            ("Engine", "ecr-enhanced"),
            ("CriticalThreshold", "10"),
            ("HighThreshold", "10"),
        ],
        None,
    );
    let v = success(&env.result(&id).await).clone();
    assert_eq!(v["VERDICT"], "PASS", "{v:?}");
    assert_eq!(v["CRITICAL"], "1", "{v:?}");
    assert_ne!(v["SECRETS"], "0", "{v:?}");
    assert_ne!(v["MISCONFIGS"], "0", "{v:?}");
    let findings = env.report(&id, "findings.json");
    assert!(
        !findings.contains(&TOKEN[8..]),
        "the token leaked: {findings}"
    );
    let risks = risks_of(&findings);
    let secrets = risks.iter().filter(|r| r["kind"] == "secret").count();
    assert_eq!(secrets.to_string(), v["SECRETS"]);
    let secret_at = |path: &str| {
        risks
            .iter()
            .find(|r| r["rule_id"] == "github-token" && r["location"]["path"] == path)
            .unwrap_or_else(|| panic!("no secret at {path}: {risks:?}"))
            .clone()
    };
    let live = secret_at("/etc/app/deploy.env");
    assert_eq!(live["location"]["layer"], 1);
    assert!(live["location"].get("later_layer").is_none(), "{live}");
    let old = secret_at("/etc/app/old.env");
    assert_eq!(old["location"]["later_layer"], "overwritten", "{old}");
    let setuid = risks
        .iter()
        .find(|r| r["rule_id"] == "CIS-DI-0008")
        .unwrap_or_else(|| panic!("no setuid finding: {risks:?}"));
    assert_eq!(setuid["location"]["path"], "/usr/local/bin/helper");
    assert_eq!(setuid["location"]["layer"], 1);
    let md = env.report(&id, "report.md");
    assert!(md.contains("overwritten by a later layer"), "{md}");
}

/// `signature: {required: true}` gates Engine ecr-basic: an unsigned
/// image FAILs (it used to PASS: the ECR engines never checked), and the
/// same image signed with the policy's cosign key passes the gate.
#[tokio::test(flavor = "multi_thread")]
async fn ecr_basic_requires_a_signature_when_the_policy_does() {
    let env = Env::new().await;
    let digest = risky_image()
        .build()
        .unwrap()
        .push_to(&env.registry, "team/app:sig")
        .await
        .unwrap();
    env.ecr.add_image(
        "team/app",
        &digest,
        &["sig"],
        ScanSetup::basic(fixture("basic-findings.json")),
    );
    let (key, public) = env.cosign_key();
    let policy = "version: 1\nthresholds: { critical: null, high: null }\n\
                  signature:\n  required: true\n  cosign:\n    keys: [cosign.pub]\n";
    let artifact = env
        .artifact(
            "policy.zip",
            &[
                ("policy/scangate.yaml", policy.as_bytes()),
                ("policy/cosign.pub", &public),
            ],
        )
        .await;
    let image = format!("{}/team/app:sig", env.ecr_addr());
    let props = [
        ("ImageUrl", image.as_str()),
        ("Engine", "ecr-basic"),
        ("PolicyFile", "policy/scangate.yaml"),
    ];

    let id = env.job(&props, Some(artifact.clone()));
    let (kind, msg) = failure(&env.result(&id).await);
    assert!(kind.contains("JobFailed"), "{kind}: {msg}");
    assert!(msg.to_lowercase().contains("signature"), "{msg}");
    let record: Value = serde_json::from_str(&env.report(&id, "record.json")).unwrap();
    assert_eq!(record["verdict"], "FAIL", "{record}");
    assert!(record.to_string().contains("UNSIGNED"), "{record}");

    env.cosign_sign(&key, "team/app", &digest).await;
    let id = env.job(&props, Some(artifact));
    let v = success(&env.result(&id).await).clone();
    assert_eq!(v["VERDICT"], "PASS", "{v:?}");
    assert_eq!(v["SIGNATURE"], "VERIFIED", "{v:?}");
    assert_eq!(v["IMAGE_DIGEST"], digest);
}
