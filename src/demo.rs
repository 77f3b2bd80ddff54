//! `scangate demo`: the whole job loop on one machine, no AWS account.
//!
//! It starts the CodePipeline and Inspector emulators from
//! `integration-tests` in-process (Inspector's knowledge is the real answer
//! bundled with them), serves a bundled image from an in-memory OCI
//! registry, queues two jobs with different thresholds, and runs the real
//! worker against them — the same code path as production, with only the
//! endpoints pointed elsewhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use integration_tests::codepipeline::{JobResult, NewJob};
use integration_tests::inspector::InspectorOptions;
use integration_tests::oci_server::OciServer;
use integration_tests::vulndb::VulnDb;
use integration_tests::{EmulatorOptions, demo_assets, images};

use crate::worker::{self, WorkerConfig, cfg::RegistryArgs};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    #[error("the jobs did not finish within {0:?}")]
    Timeout(Duration),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

pub struct DemoOptions {
    pub reports: PathBuf,
}

pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let reports = std::path::absolute(&opts.reports).map_err(setup("reports folder"))?;
    std::fs::create_dir_all(&reports).map_err(setup("reports folder"))?;

    // Inspector knows exactly what the real service answered for this image.
    let mut db = VulnDb::empty();
    let scan: serde_json::Value =
        serde_json::from_slice(demo_assets::DEBIAN_SCAN).map_err(setup("bundled answer"))?;
    db.add_answer(&scan).map_err(setup("bundled answer"))?;
    let emus = integration_tests::start(
        "127.0.0.1:0".parse().expect("literal address"),
        EmulatorOptions {
            inspector: InspectorOptions {
                vulndb: Some(Arc::new(db)),
                ..InspectorOptions::default()
            },
            ..EmulatorOptions::default()
        },
    )
    .await
    .map_err(setup("starting the emulators"))?;

    // The bundled image: a dpkg database with the packages of debian:latest
    // as Amazon's generator saw them in 2024.
    let tmp = std::env::temp_dir().join(format!("scangate-demo-{}.json", std::process::id()));
    std::fs::write(&tmp, demo_assets::DEBIAN_SBOM).map_err(setup("bundled SBOM"))?;
    let image = images::image_from_inspector_fixture(&tmp).map_err(setup("bundled image"));
    let _ = std::fs::remove_file(&tmp);
    let image = image?;
    let registry = OciServer::new();
    for l in &image.layers {
        registry.add_blob(l.blob.clone());
    }
    registry.add_blob(image.config_bytes.clone());
    registry.add_manifest(
        "demo/debian",
        "2024",
        &image.media_type,
        image.manifest_bytes.clone(),
    );
    let reg_addr = registry
        .serve("127.0.0.1:0".parse().expect("literal address"))
        .await
        .map_err(setup("starting the registry"))?;
    let image_ref = format!("{reg_addr}/demo/debian:2024");

    let jobs = [
        ("strict", vec![("ImageUrl", image_ref.clone())]),
        (
            "lenient",
            vec![
                ("ImageUrl", image_ref.clone()),
                ("HighThreshold", "5".to_owned()),
            ],
        ),
        (
            "broken",
            vec![("ImageUrl", format!("{reg_addr}/demo/debian:no-such-tag"))],
        ),
    ];
    let mut ids = Vec::new();
    for (name, config) in &jobs {
        let j = NewJob {
            pipeline_name: format!("demo-{name}"),
            stage_name: "Scan".into(),
            action_name: "ScanGate".into(),
            configuration: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..NewJob::default()
        };
        ids.push((*name, emus.codepipeline.enqueue_job(j)));
    }
    println!("scangate demo");
    println!(
        "  CodePipeline + Inspector emulators: {}",
        emus.urls.codepipeline
    );
    println!("  image: {image_ref} ({})", image.manifest_digest);
    println!("  reports: {}\n", reports.display());

    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&emus.urls.codepipeline)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIDDEMO",
            "demo",
            None,
            None,
            "scangate-demo",
        ))
        .load()
        .await;
    let cfg = WorkerConfig {
        provider: "ScanGate".into(),
        category: "Test".into(),
        action_version: "1".into(),
        concurrency: 2,
        poll_interval: Duration::from_millis(200),
        reports: Some(format!("file://{}", reports.display())),
        reports_kms_key: None,
        health_addr: worker::cfg::HealthAddr(None),
        shutdown_grace: Duration::from_secs(10),
        job_timeout: Duration::from_secs(300),
        registry: RegistryArgs {
            insecure_registries: vec![reg_addr.to_string()],
            registry_username: None,
            registry_password: None,
            registry_hosts: Vec::new(),
            allow_loopback_redirects: false,
            allow_loopback_redirects_old_name: false,
        },
        s3_force_path_style: false,
        artifact_credentials_refresh_after: worker::cfg::ARTIFACT_CREDENTIALS_REFRESH_AFTER,
        result_retry: Duration::from_secs(60),
        // Unused: pending results go beside the reports.
        pending_dir: reports.join("pending"),
        pending_sweep_interval: Duration::from_secs(60),
        ack_recheck: Duration::from_secs(30),
        lease_heartbeat: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(120),
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker::run_until(cfg, sdk, async {
        let _ = done_rx.await;
    }));
    let limit = Duration::from_secs(120);
    for (_, id) in &ids {
        if emus.codepipeline.wait_for_result(id, limit).await.is_none() {
            return Err(DemoError::Timeout(limit));
        }
    }
    let _ = done_tx.send(());
    worker
        .await
        .map_err(|e| DemoError::Setup(format!("worker task: {e}")))??;

    for (name, id) in &ids {
        let snap = emus.codepipeline.job(id).expect("job exists");
        println!("job {name} ({id}): {:?}", snap.status);
        match &snap.result {
            Some(JobResult::Success(s)) => {
                if let Some(d) = &s.execution_details {
                    println!("  summary: {}", d.summary.as_deref().unwrap_or(""));
                }
                for (k, v) in &s.output_variables {
                    println!("  {k} = {v}");
                }
            }
            Some(JobResult::Failure(f)) => {
                println!("  failure type: {:?}", f.failure_type);
                for line in f.message.lines() {
                    println!("  | {line}");
                }
            }
            None => println!("  no result"),
        }
        println!(
            "  record: {}\n",
            reports.join("jobs").join(id).join("record.json").display()
        );
    }
    emus.shutdown().await;
    Ok(())
}
