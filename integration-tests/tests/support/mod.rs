//! What the end-to-end tests share: the real `scangate` binary as a worker
//! ([`Worker`]) and as a command, the emulators, the docker-registry, moto
//! S3, images built from fixtures.

#![allow(dead_code)] // each test file uses its own part

mod worker;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[allow(unused_imports)] // each test file uses its own part
pub use worker::{ChildGuard, RunningWorker, Worker, emulator_env};

use integration_tests::codepipeline::{Artifact, JobResult, JobSnapshot, NewJob};
use integration_tests::images::{ImageBuilder, Layer};
use integration_tests::process::MotoServer;
use integration_tests::registry::Registry;
use integration_tests::{EmulatorOptions, Emulators, corpus, images};

/// The environment every scangate command gets ([`emulator_env`], and moto
/// when the test started it).
fn base_env(cmd: &mut Command, emus: &Emulators, moto: Option<&MotoServer>) {
    cmd.env_clear().envs(emulator_env(emus));
    if let Some(m) = moto {
        cmd.env("AWS_ENDPOINT_URL_S3", &m.endpoint)
            .env("SCANGATE_S3_FORCE_PATH_STYLE", "true");
    }
}

/// How long a job may take to get its result in a test before it fails.
pub const RESULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a worker test stands on: the emulators, the docker-registry and a
/// reports directory ([`Env`] adds moto and takes the reports URI).
pub struct WorkerEnv {
    pub emus: Emulators,
    pub registry: Registry,
    pub reports: tempfile::TempDir,
}

impl WorkerEnv {
    pub async fn new() -> WorkerEnv {
        WorkerEnv {
            emus: start_emulators().await,
            registry: Registry::start().expect("starting docker-registry"),
            reports: tempfile::tempdir().unwrap(),
        }
    }

    /// A worker on this registry and reports directory; the test adds its
    /// own settings and spawns it.
    pub fn worker(&self) -> Worker {
        Worker::new(&self.emus)
            .registry(&self.registry.addr)
            .reports(self.reports.path())
    }

    /// Queues a [`scan_job`]; returns its id.
    pub fn job(&self, config: &[(&str, &str)]) -> String {
        enqueue(&self.emus, config)
    }

    pub async fn result(&self, id: &str, w: &RunningWorker) -> JobSnapshot {
        w.job_result(&self.emus, id, RESULT_TIMEOUT).await
    }

    /// [`push_debian_fixture`] to this registry; returns the digest.
    pub async fn push_debian_fixture(&self, tag: &str) -> String {
        push_debian_fixture(&self.registry, tag).await
    }
}

/// The CodePipeline, Inspector (and ECR...) emulators on free ports.
pub async fn start_emulators() -> Emulators {
    integration_tests::start("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default())
        .await
        .expect("starting emulators")
}

pub struct Env {
    pub emus: Emulators,
    pub registry: Registry,
    pub moto: Option<MotoServer>,
}

/// What a `scangate` command printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub async fn new(with_moto: bool) -> Env {
        let emus = start_emulators().await;
        let moto = with_moto.then(|| {
            MotoServer::start().expect("moto_server: run .ci/run, or set SCANGATE_MOTO_SERVER")
        });
        Env {
            emus,
            registry: Registry::start().expect("starting docker-registry"),
            moto,
        }
    }

    /// `scangate worker` writing its reports to `reports` (a URI).
    pub fn worker(&self, reports: &str) -> RunningWorker {
        let mut w = Worker::new(&self.emus)
            .registry(&self.registry.addr)
            .reports_uri(reports);
        if let Some(m) = &self.moto {
            w = w.s3(&m.endpoint);
        }
        w.spawn()
    }

    /// Runs `scangate ARGS…` to completion with the test environment.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(corpus::scangate_bin());
        cmd.args(args);
        base_env(&mut cmd, &self.emus, self.moto.as_ref());
        let out = cmd.output().expect("running scangate");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn enqueue(
        &self,
        pipeline: &str,
        config: &[(&str, &str)],
        input: Option<Artifact>,
    ) -> String {
        self.emus.codepipeline.enqueue_job(NewJob {
            pipeline_name: pipeline.into(),
            input_artifacts: input.into_iter().collect(),
            ..scan_job(config)
        })
    }

    pub async fn result(&self, id: &str, w: &RunningWorker) -> JobSnapshot {
        w.job_result(&self.emus, id, RESULT_TIMEOUT).await
    }

    /// The image built from Amazon's own SBOM of debian:latest (2024): its
    /// real ScanSbom answer has one HIGH (CVE-2023-50387 in systemd, no
    /// fixed version), one MEDIUM and seven OTHER.
    pub async fn push_debian_fixture(&self, tag: &str) -> String {
        push_debian_fixture(&self.registry, tag).await
    }

    /// The image built from Amazon's own SBOM of alpine:3.18.2 (one layer,
    /// see [`alpine_fixture_layer`]); returns its full reference.
    pub async fn push_alpine_fixture(&self, tag: &str) -> String {
        let img = ImageBuilder::new()
            .layer(alpine_fixture_layer())
            .build()
            .expect("building the fixture image");
        img.push(&self.registry.addr, &format!("fixture/alpine:{tag}"), None)
            .await
            .expect("pushing");
        self.registry.reference(&format!("fixture/alpine:{tag}"))
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.moto.as_ref().expect("started without moto").endpoint).await
    }
}

/// A job of the `ImageScan` action in stage `Scan` of `app-pipeline`, with
/// this configuration.
pub fn scan_job(config: &[(&str, &str)]) -> NewJob {
    NewJob {
        pipeline_name: "app-pipeline".into(),
        stage_name: "Scan".into(),
        action_name: "ImageScan".into(),
        configuration: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..NewJob::default()
    }
}

/// Queues a [`scan_job`]; returns its id.
pub fn enqueue(emus: &Emulators, config: &[(&str, &str)]) -> String {
    emus.codepipeline.enqueue_job(scan_job(config))
}

/// Pushes the image built from Amazon's own SBOM of debian:latest (2024)
/// as `fixture/debian:TAG`; returns its digest. The Inspector emulator
/// answers it with that fixture's real findings (see
/// [`Env::push_debian_fixture`]).
pub async fn push_debian_fixture(registry: &Registry, tag: &str) -> String {
    let img = images::image_from_inspector_fixture(
        &corpus::inspector_fixtures_dir().join("sboms/debian_latest.json"),
    )
    .expect("building the fixture image");
    img.push(&registry.addr, &format!("fixture/debian:{tag}"), None)
        .await
        .expect("pushing")
}

/// A client of moto's S3 at `endpoint`, with the tests' made-up keys,
/// path-style (moto has no virtual-host buckets on 127.0.0.1).
pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIDEXAMPLE",
            "test-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

/// A root filesystem layer with the apk database and os-release of Amazon's
/// own SBOM of alpine:3.18.2, so that our SBOM of it matches theirs and the
/// Inspector emulator answers with that fixture's real ScanSbom findings:
/// one CRITICAL (CVE-2022-48174 in busybox), one HIGH (CVE-2023-5363 in
/// openssl), seven MEDIUM, three OTHER.
pub fn alpine_fixture_layer() -> Layer {
    let fx = images::read_inspector_fixture(
        &corpus::inspector_fixtures_dir().join("sboms/alpine_3.18.2.json"),
    )
    .expect("reading the alpine_3.18.2 fixture SBOM");
    Layer::new()
        .dir("etc")
        .file(
            "etc/os-release",
            fx.os_release()
                .expect("the fixture names its distro")
                .as_str(),
        )
        .file("etc/alpine-release", format!("{}\n", fx.distro_release))
        .dir("lib")
        .dir("lib/apk")
        .dir("lib/apk/db")
        .file("lib/apk/db/installed", fx.apk_installed())
        .created_by("/bin/sh -c #(nop) ADD file:alpine-minirootfs.tar.gz in / ")
}

pub async fn s3_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

pub async fn s3_text(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3://{bucket}/{key}: {e:?}"));
    String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

pub fn artifact_zip(name: &str, body: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(body.as_bytes()).unwrap();
    z.finish().unwrap();
    buf.into_inner()
}

pub fn success(s: &JobSnapshot) -> &BTreeMap<String, String> {
    match &s.result {
        Some(JobResult::Success(r)) => &r.output_variables,
        other => panic!("expected success, got {other:?}"),
    }
}

pub fn failure(s: &JobSnapshot) -> (String, String) {
    match &s.result {
        Some(JobResult::Failure(f)) => (format!("{:?}", f.failure_type), f.message.clone()),
        other => panic!("expected failure, got {other:?}"),
    }
}

pub fn reports_dir_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}
