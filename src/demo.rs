//! `scangate demo`: the whole job loop on one machine, no AWS account.
//!
//! It starts the CodePipeline and Inspector emulators from
//! `integration-tests` in-process (Inspector's knowledge is the real answer
//! bundled with them), serves a bundled image from an in-memory OCI
//! registry, queues three jobs (two thresholds and a missing tag), and runs
//! the real worker against them — the same code path as production, with
//! only the endpoints pointed elsewhere.
//!
//! `scangate demo --serve` keeps the emulators and the image up instead and
//! prints the variables that point `scangate scan` at them. The emulators
//! are a library dependency of scangate (the `integration-tests` crate), so
//! the one `scangate` binary carries them: nothing else to build.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::codepipeline::{JobResult, NewJob};
use integration_tests::inspector::InspectorOptions;
use integration_tests::oci_server::OciServer;
use integration_tests::vulndb::VulnDb;
use integration_tests::{EmulatorOptions, Emulators, corpus, demo_assets, images};

use crate::worker::{self, WorkerConfig, cfg::RegistryArgs};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    #[error("the jobs did not finish within {0:?}")]
    Timeout(Duration),
    #[error(
        "demo --serve listens on loopback only (127.0.0.1 or ::1): its emulators have an \
         unauthenticated admin API; {0} is not loopback"
    )]
    NotLoopback(SocketAddr),
}

/// A line on stdout; a reader that went away is not the demo's problem
/// (`println!` would panic: exit status 101).
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, $($arg)*).and_then(|_| o.flush());
    }};
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

pub struct DemoOptions {
    pub reports: PathBuf,
}

/// The bundled Debian image (a dpkg database with the packages of
/// debian:latest as Amazon's generator saw them in 2024) served from an
/// in-memory registry on `ip`; its reference and digest.
async fn serve_bundled_image(ip: std::net::IpAddr) -> Result<(SocketAddr, String), DemoError> {
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
        .serve(SocketAddr::new(ip, 0))
        .await
        .map_err(setup("starting the registry"))?;
    Ok((reg_addr, image.manifest_digest.clone()))
}

/// The emulators with `db` as Inspector's knowledge.
async fn start_emulators(addr: SocketAddr, db: VulnDb) -> Result<Emulators, DemoError> {
    integration_tests::start(
        addr,
        EmulatorOptions {
            inspector: InspectorOptions {
                vulndb: Some(Arc::new(db)),
                ..InspectorOptions::default()
            },
            ..EmulatorOptions::default()
        },
    )
    .await
    .map_err(setup("starting the emulators"))
}

/// Inspector knows exactly what the real service answered for the bundled
/// image.
fn bundled_knowledge() -> Result<VulnDb, DemoError> {
    let mut db = VulnDb::empty();
    add_bundled_answer(&mut db)?;
    Ok(db)
}

fn add_bundled_answer(db: &mut VulnDb) -> Result<(), DemoError> {
    let scan: serde_json::Value =
        serde_json::from_slice(demo_assets::DEBIAN_SCAN).map_err(setup("bundled answer"))?;
    db.add_answer(&scan).map_err(setup("bundled answer"))
}

pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let shown_reports = opts.reports.clone();
    let reports = std::path::absolute(&opts.reports).map_err(setup("reports folder"))?;
    std::fs::create_dir_all(&reports).map_err(setup("reports folder"))?;
    let emus = start_emulators(
        "127.0.0.1:0".parse().expect("literal address"),
        bundled_knowledge()?,
    )
    .await?;
    let (reg_addr, digest) =
        serve_bundled_image("127.0.0.1".parse().expect("literal address")).await?;
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
    out!("scangate demo");
    out!(
        "  CodePipeline + Inspector emulators: {}",
        emus.urls.codepipeline
    );
    out!("  image: {image_ref} ({digest})");
    out!("  reports: {}\n", reports.display());

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
        metrics_service: worker::metrics::DEFAULT_SERVICE.into(),
        metrics_interval: Duration::from_secs(60),
        // not on ECS, and stdout is the demo's story
        ecs_agent_uri: None,
        emf_stdout: false,
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
        out!("job {name} ({id}): {:?}", snap.status);
        match &snap.result {
            Some(JobResult::Success(s)) => {
                if let Some(d) = &s.execution_details {
                    out!("  summary: {}", d.summary.as_deref().unwrap_or(""));
                }
                for (k, v) in &s.output_variables {
                    out!("  {k} = {v}");
                }
            }
            Some(JobResult::Failure(f)) => {
                out!("  failure type: {:?}", f.failure_type);
                for line in f.message.lines() {
                    out!("  | {line}");
                }
            }
            None => out!("  no result"),
        }
        out!(
            "  record: {}\n",
            reports.join("jobs").join(id).join("record.json").display()
        );
    }
    emus.shutdown().await;
    next_steps(&shown_reports, &reports, &ids);
    Ok(())
}

/// What to do with the demo's output: the newcomer's next commands.
fn next_steps(shown: &Path, reports: &Path, ids: &[(&str, String)]) {
    let report = ids
        .iter()
        .map(|(_, id)| reports.join("jobs").join(id).join("report.html"))
        .find(|p| p.is_file());
    out!("Next:");
    if let Some(r) = report {
        out!("  open a report:  file://{}", r.display());
    }
    let dir = shell_word(&shown.display().to_string());
    out!("  list the jobs:  scangate jobs list --reports {dir}");
    if let Some((_, id)) = ids.first() {
        // Any unique prefix names a job; 8 characters of a UUID will do.
        let prefix = id.get(..8).unwrap_or(id);
        out!("  show one job:   scangate jobs show --reports {dir} {prefix}");
    }
    out!("  scan yourself:  scangate demo --serve   (then scangate scan against its emulators)");
}

/// `s` quoted for a POSIX shell when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `scangate demo --serve`: the emulators and the bundled image, up until
/// `stop` resolves, with the variables that point `scangate scan` at them.
pub async fn serve(
    listen: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DemoError> {
    if !listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(listen));
    }
    let (db, sources) = sample_knowledge()?;
    let stats = db.stats();
    let emus = start_emulators(listen, db).await?;
    let (reg_addr, digest) = serve_bundled_image(listen.ip()).await?;
    out!("scangate demo --serve: a SIMULATION, not Amazon Inspector.");
    out!(
        "  The Inspector emulator's vulnerability knowledge is a fixed sample: {} vulnerabilities \
         from {} recorded ScanSbom answers ({sources}). It is not current data: a PASS here says \
         nothing about an image's real risk.",
        stats.vulnerabilities,
        stats.sources.len(),
    );
    out!(
        "  emulators (CodePipeline, Inspector): {}",
        emus.urls.codepipeline
    );
    out!("  registry (plain HTTP): {reg_addr}, with {reg_addr}/demo/debian:2024 ({digest})");
    out!("");
    out!("In another shell, export these (they point only scangate's AWS calls here):");
    out!("");
    for (k, v) in serve_env(&emus, reg_addr) {
        out!("export {k}={v}");
    }
    out!("");
    out!("then scan the bundled image, or your own (docker-archive:app.tar, oci:./dir):");
    out!("");
    out!("scangate scan {reg_addr}/demo/debian:2024");
    out!("");
    out!("Serving until Ctrl-C.");
    stop.await;
    emus.shutdown().await;
    Ok(())
}

/// The environment `scangate scan` needs to use the emulators: a region,
/// made-up keys (the emulators check none, and nothing real must leave this
/// machine), the endpoints, and the registry over plain HTTP.
pub fn serve_env(emus: &Emulators, registry: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDSCANGATEDEMO".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "not-a-secret".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        (
            "AWS_ENDPOINT_URL_INSPECTOR_SCAN",
            emus.urls.inspector.clone(),
        ),
        (
            "AWS_ENDPOINT_URL_CODEPIPELINE",
            emus.urls.codepipeline.clone(),
        ),
        ("SCANGATE_INSECURE_REGISTRIES", registry.to_string()),
    ]
}

/// The emulator's knowledge for --serve: the recorded answers of
/// `SCANGATE_EMULATOR_FIXTURES`, else of the shared fixtures
/// (`shared/fixtures/inspector/scans`) when this machine has them, plus the
/// bundled image's own answer; and a note saying which.
fn sample_knowledge() -> Result<(VulnDb, String), DemoError> {
    let dir = std::env::var_os(integration_tests::vulndb::FIXTURES_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| corpus::inspector_fixtures_dir().join("scans"));
    let (mut db, note) = if dir.is_dir() {
        let db = VulnDb::load_dir(&dir).map_err(setup("recorded answers"))?;
        (
            db,
            format!("{} and the bundled Debian answer", dir.display()),
        )
    } else {
        (VulnDb::empty(), "the bundled Debian answer only".to_owned())
    };
    add_bundled_answer(&mut db)?;
    Ok((db, note))
}
