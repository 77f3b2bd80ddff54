//! `scangate worker`: the CodePipeline job worker.
//!
//! CodePipeline's job queue is the coordinator: every worker polls, the
//! first to acknowledge a job owns it, and scale comes from running more
//! workers. Within one worker a semaphore bounds the jobs in flight.

pub mod api;
pub mod cfg;
mod deliver;
pub mod health;
pub mod lease;
pub mod metrics;
pub mod pending;
pub mod protection;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use cfg::WorkerConfig;

use crate::cancel::CancelToken;
use crate::image::PullOptions;
use crate::inspector::ecr::{EcrScanner, PollPolicy};
use crate::inspector::{Inspector, RetryPolicy};
use crate::job::output::{self, OutputTarget};
use crate::job::{ArtifactCredentials, FailureKind, JobConfig, JobInfo, Outcome};
use crate::pipeline::{self, Context, PipelineError, ScanReport, ScanRequest};
use crate::report::ReportStore;
use api::{AckCheck, Api, ApiError, ResultRetry};
use health::State;
use pending::PendingStore;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error("could not start the health server on {addr}: {source}")]
    Health {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Everything a job task needs, shared.
struct Shared {
    api: Api,
    ctx: Context,
    reports: Option<ReportStore>,
    state: Arc<State>,
    worker_id: String,
    sdk: aws_config::SdkConfig,
    s3_force_path_style: bool,
    credentials_refresh_after: Duration,
    job_timeout: Duration,
    /// Unsent results, for this or another worker to send.
    pending: PendingStore,
    result_retry: ResultRetry,
    /// After the shutdown's abort, how long result calls may still take.
    result_margin: Duration,
    /// How long an ambiguous AcknowledgeJob is rechecked.
    ack_recheck: Duration,
    /// Jobs whose result this worker is sending: the sweep leaves them.
    delivering: std::sync::Mutex<std::collections::HashSet<String>>,
    /// ECS task scale-in protection while jobs are in flight.
    protection: protection::TaskProtection,
    /// The in-flight leases (written, renewed, swept).
    leases: lease::Journal,
}

impl Shared {
    fn delivering(&self, job_id: &str) -> Delivering<'_> {
        self.delivering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job_id.to_owned());
        Delivering(self, job_id.to_owned())
    }

    fn is_delivering(&self, job_id: &str) -> bool {
        self.delivering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(job_id)
    }
}

/// Marks a job's result as being sent by this worker until dropped.
struct Delivering<'a>(&'a Shared, String);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0
            .delivering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

/// The pull settings of the registry flags; an error (a start-up
/// configuration error) when the registry credentials have no hosts.
pub fn pull_options(r: &cfg::RegistryArgs) -> Result<PullOptions, String> {
    Ok(PullOptions {
        insecure_registries: r.insecure_registries.clone(),
        credentials: r.credentials()?,
        registry_hosts: r.hosts()?,
        allow_loopback_redirects: r.allow_loopback_redirects || r.allow_loopback_redirects_old_name,
        ..PullOptions::default()
    })
}

/// Runs until SIGTERM or SIGINT, then drains (DESIGN.md).
pub async fn run(cfg: WorkerConfig, sdk: aws_config::SdkConfig) -> Result<(), WorkerError> {
    run_until(cfg, sdk, shutdown_signal()).await
}

/// Runs until `shutdown` completes, then drains like on SIGTERM.
pub async fn run_until(
    cfg: WorkerConfig,
    sdk: aws_config::SdkConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let shared = start(&cfg, &sdk).await?;
    let gauges = tokio::spawn(shared.state.clone().emit_gauges_every(cfg.metrics_interval));
    let (mut stop_rx, abort_rx) = on_shutdown(shutdown, cfg.shutdown_grace);
    let sweeper = tokio::spawn(deliver::sweep_loop(
        shared.clone(),
        cfg.pending_sweep_interval,
        stop_rx.clone(),
    ));
    let mut poller = Poller::new(shared, &cfg, abort_rx);
    poller.run(&mut stop_rx).await;

    tracing::info!(
        in_flight = poller.tasks.len(),
        "stopped polling; waiting for in-flight jobs"
    );
    while poller.tasks.join_next().await.is_some() {}
    sweeper.abort();
    gauges.abort();
    tracing::info!("worker stopped");
    Ok(())
}

/// Checks the configuration and builds what every job shares: a
/// misconfigured worker stops here, before its first poll.
async fn start(
    cfg: &WorkerConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<Arc<Shared>, WorkerError> {
    // Before anything else: a worker that would offer its registry password
    // to any host must not start.
    let pull = pull_options(&cfg.registry).map_err(WorkerError::Config)?;
    let api = Api::new(sdk, &cfg.category, &cfg.provider, &cfg.action_version)
        .map_err(WorkerError::Config)?;
    let memory_budget =
        crate::image::memory::check_setting().map_err(|e| WorkerError::Config(e.to_string()))?;
    let reports = open_reports(cfg, sdk)?;
    let worker_id = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "scangate".into()),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let pending = PendingStore::new(reports.as_ref(), cfg.pending_dir.clone());
    let leases = lease_journal(cfg, reports.as_ref())?;
    let state = new_state(cfg);
    // Covers a job's deadline and the retries of its result.
    let protection = protection::TaskProtection::new(
        cfg.ecs_agent_uri.as_deref(),
        cfg.job_timeout + cfg.result_retry,
    )
    .map_err(|e| WorkerError::Config(e.to_string()))?;
    if let Some(addr) = cfg.health_addr.0 {
        health::serve(addr, state.clone())
            .await
            .map_err(|source| WorkerError::Health { addr, source })?;
    }
    let shared = Arc::new(Shared {
        api,
        ctx: Context {
            pull,
            inspector: Inspector::new(sdk, RetryPolicy::default()),
            ecr: EcrScanner::new(sdk, RetryPolicy::default(), PollPolicy::default()),
            kms: crate::signature::kms::AwsKms::new(sdk),
        },
        reports,
        state,
        worker_id,
        sdk: sdk.clone(),
        s3_force_path_style: cfg.s3_force_path_style,
        credentials_refresh_after: cfg.artifact_credentials_refresh_after,
        job_timeout: cfg.job_timeout,
        pending,
        result_retry: ResultRetry {
            total: cfg.result_retry,
            ..ResultRetry::default()
        },
        result_margin: result_margin(cfg.shutdown_grace),
        ack_recheck: cfg.ack_recheck,
        delivering: Default::default(),
        protection,
        leases,
    });
    log_started(cfg, &shared, memory_budget);
    Ok(shared)
}

/// The reports store (S3 or a directory), when configured: it also holds
/// the pending results and the leases.
fn open_reports(
    cfg: &WorkerConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<Option<ReportStore>, WorkerError> {
    let Some(uri) = &cfg.reports else {
        return Ok(None);
    };
    let store = ReportStore::open(uri, sdk, cfg.s3_force_path_style)
        .map_err(|e| WorkerError::Config(e.to_string()))?
        .with_kms_key(cfg.reports_kms_key.clone());
    Ok(Some(store))
}

/// The lease journal, refusing lease times under which a live worker's
/// lease could look dead.
fn lease_journal(
    cfg: &WorkerConfig,
    reports: Option<&ReportStore>,
) -> Result<lease::Journal, WorkerError> {
    let lease_times = lease::LeaseTimes {
        heartbeat: cfg.lease_heartbeat,
        ttl: cfg.lease_ttl,
    };
    lease_times.check().map_err(WorkerError::Config)?;
    Ok(lease::Journal::new(
        lease::LeaseStore::new(reports, cfg.pending_dir.clone()),
        lease_times,
    ))
}

/// The health and metrics state, emitting EMF on stdout only when asked.
fn new_state(cfg: &WorkerConfig) -> Arc<State> {
    Arc::new(State::new(
        cfg.concurrency,
        if cfg.emf_stdout {
            metrics::Emitter::stdout(cfg.metrics_service.clone())
        } else {
            metrics::Emitter::discard(cfg.metrics_service.clone())
        },
    ))
}

/// The one start-up line an operator checks a deployment by.
fn log_started(cfg: &WorkerConfig, shared: &Shared, memory_budget: u64) {
    let worker_id = shared.worker_id.as_str();
    tracing::info!(
        worker_id,
        provider = %cfg.provider,
        category = %cfg.category,
        version = %cfg.action_version,
        concurrency = cfg.concurrency,
        region = %shared.api.region,
        pending = %shared.pending.describe(),
        leases = %shared.leases.store.describe(),
        memory_budget_mib = memory_budget >> 20,
        task_protection = shared.protection.enabled(),
        "worker started"
    );
}

/// Turns `shutdown` into the two signals the worker drains by, as
/// receivers: stop (no more polling) at once, abort (in-flight jobs give up
/// and report) once the grace, less a margin for the result calls, is over.
fn on_shutdown(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> (watch::Receiver<bool>, watch::Receiver<bool>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (abort_tx, abort_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            grace_s = grace.as_secs(),
            "shutdown requested: no new jobs, draining"
        );
        let _ = stop_tx.send(true);
        // Keep a margin for the result calls themselves.
        tokio::time::sleep(grace.saturating_sub(result_margin(grace))).await;
        let _ = abort_tx.send(true);
    });
    (stop_rx, abort_rx)
}

/// The polling loop's state: the job slots and tasks, and what the poll
/// error handling remembers from one poll to the next.
struct Poller {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    /// Notified when a job task gives its slot back.
    freed: Arc<Notify>,
    tasks: JoinSet<()>,
    abort_rx: watch::Receiver<bool>,
    poll_interval: Duration,
    /// Consecutive failed polls, for the backoff.
    failures: u32,
    /// The missing action type is logged once, not on every poll.
    missing_type_reported: bool,
}

impl Poller {
    fn new(shared: Arc<Shared>, cfg: &WorkerConfig, abort_rx: watch::Receiver<bool>) -> Poller {
        Poller {
            shared,
            slots: Arc::new(Semaphore::new(cfg.concurrency as usize)),
            freed: Arc::new(Notify::new()),
            tasks: JoinSet::new(),
            abort_rx,
            poll_interval: cfg.poll_interval,
            failures: 0,
            missing_type_reported: false,
        }
    }

    /// Polls for as many jobs as there are free slots until stopped; with
    /// none free it waits for a slot rather than polling for nothing.
    async fn run(&mut self, stop_rx: &mut watch::Receiver<bool>) {
        while !*stop_rx.borrow() {
            while self.tasks.try_join_next().is_some() {}
            let free = self.slots.available_permits() as u32;
            if free == 0 {
                tokio::select! {
                    _ = self.freed.notified() => {}
                    _ = stop_rx.changed() => {}
                }
                continue;
            }
            if let Some(wait) = self.poll(free).await {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_rx.changed() => {}
                }
            }
        }
    }

    /// One PollForJobs: starts the jobs it gave, and says how long to wait
    /// before the next (no wait after jobs: slots may still be free).
    async fn poll(&mut self, free: u32) -> Option<Duration> {
        match self.shared.api.poll(free).await {
            Ok(jobs) => {
                self.failures = 0;
                self.missing_type_reported = false;
                self.shared.state.polled();
                if jobs.is_empty() {
                    return Some(jitter(self.poll_interval));
                }
                for job in jobs {
                    self.spawn(JobInfo::from_sdk(&job));
                }
                None
            }
            Err(e) => Some(self.poll_failed(e)),
        }
    }

    /// Runs one job in its own task, holding a slot until it ends.
    fn spawn(&mut self, info: JobInfo) {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            // CodePipeline gave more than we asked for; the
            // job returns to the queue when its ack times out.
            tracing::warn!(job_id = %info.id, "no free slot for an extra job; leaving it");
            return;
        };
        let shared = self.shared.clone();
        let freed = self.freed.clone();
        let abort_rx = self.abort_rx.clone();
        self.tasks.spawn(async move {
            handle_job(shared, info, abort_rx).await;
            drop(permit);
            freed.notify_one();
        });
    }

    /// Counts and logs a failed poll; returns how long to wait before the
    /// next one.
    fn poll_failed(&mut self, e: ApiError) -> Duration {
        let state = &self.shared.state;
        if let ApiError::ActionTypeNotFound { .. } = e {
            // Say it once, clearly, then retry slowly: the stack may
            // still be deploying, and a crash loop helps nobody.
            if !self.missing_type_reported {
                tracing::error!(error = %e, "cannot poll for jobs");
                self.missing_type_reported = true;
            }
            state.poll_error(&e);
            // Under a minute, so that every minute has a PollErrors
            // count for the stack's "polls failing" alarm.
            return Duration::from_secs(30);
        }
        self.failures += 1;
        state.poll_error(&e);
        let wait = api::backoff(self.failures).max(self.poll_interval);
        if self.failures <= 3 || self.failures.is_power_of_two() {
            tracing::warn!(error = %e, failures = self.failures, wait_ms = wait.as_millis() as u64, "PollForJobs failed");
        }
        wait
    }
}

/// The end of the shutdown grace kept for sending the results of the jobs
/// it fails.
fn result_margin(grace: Duration) -> Duration {
    (grace / 10).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn handle_job(shared: Arc<Shared>, job: JobInfo, mut abort_rx: watch::Receiver<bool>) {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        pipeline = %job.pipeline,
        stage = %job.stage,
        action = %job.action,
        execution_id = job.pipeline_execution_id.as_deref().unwrap_or(""),
    );
    async move {
        // Written before AcknowledgeJob: a SIGKILL at any moment after the
        // acknowledgement (even during its recheck) leaves a lease that
        // another worker's sweep turns into a result.
        let Some(mut lease) = shared
            .leases
            .hold(lease::Lease::of(
                &job,
                &shared.worker_id,
                shared.job_timeout,
            ))
            .await
        else {
            return;
        };
        if !claim(&shared, &job).await {
            // Dropped, not released: the job may already be another
            // worker's, under the same lease name (see lease.rs).
            drop(lease);
            return;
        }
        let started = Instant::now();
        shared.state.job_started(&job);
        shared.protection.job_started();
        tracing::info!("job acknowledged");

        let cancel = CancelToken::new();
        let store = shared.leases.store.describe();
        let outcome = guarded(
            {
                let (shared, job, cancel) = (shared.clone(), job.clone(), cancel.clone());
                async move { process(&shared, &job, &cancel).await }.in_current_span()
            },
            &job.id,
            shared.job_timeout,
            &mut abort_rx,
            &cancel,
            lease.lost(&store, shared.leases.times.ttl),
        )
        .await;
        let kind = match &outcome {
            Outcome::Success { .. } => None,
            Outcome::Failure { kind, .. } => Some(*kind),
        };
        deliver::deliver(&shared, &job.id, outcome, &mut abort_rx, started, lease).await;
        shared.state.job_finished(&job.id, kind);
        shared.protection.job_finished();
    }
    .instrument(span)
    .await
}

/// Acknowledges the job: `true` when it is ours and owes one result. An
/// acknowledgement whose answer was lost may have gone through, leaving a
/// job CodePipeline holds InProgress for us: it is rechecked, and while its
/// fate stays unknown the job is scanned anyway (a result for a job that
/// turns out not to be ours is refused by CodePipeline, harmlessly).
async fn claim(shared: &Shared, job: &JobInfo) -> bool {
    match shared.api.acknowledge(&job.id, &job.nonce).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::debug!("job not InProgress after acknowledge; another worker has it");
            false
        }
        Err(e) if e.job_is_closed() => {
            tracing::debug!(error = %e, "job taken by another worker");
            false
        }
        Err(e) if e.ambiguous() => {
            tracing::warn!(error = %e, "acknowledge failed ambiguously; rechecking the job");
            match shared
                .api
                .recheck_acknowledged(&job.id, &job.nonce, shared.ack_recheck)
                .await
            {
                AckCheck::Ours => true,
                AckCheck::NotOurs => {
                    tracing::info!("recheck: the job is not ours; leaving it");
                    false
                }
                AckCheck::Unknown => {
                    tracing::error!(
                        "recheck: CodePipeline did not say whether the job is ours; scanning it anyway so that it is not abandoned"
                    );
                    true
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not acknowledge job; it returns to the queue");
            false
        }
    }
}

/// Runs a job's work so that whatever happens it ends in an outcome: the
/// work runs in its own task, so a panic is caught as a JoinError rather
/// than taking the job's one result with it, and the shutdown deadline and
/// the job's own deadline turn unfinished work into SystemUnavailable (a
/// stalled registry must not hold a worker slot, nor leave the pipeline
/// waiting for CodePipeline's own action timeout). `lease_lost` completes
/// when the job's lease cannot be renewed: the job stops before another
/// worker may report it abandoned. Every way out cancels `cancel`, so
/// CPU-bound work on the blocking pool stops too.
async fn guarded(
    work: impl std::future::Future<Output = Outcome> + Send + 'static,
    job_id: &str,
    timeout: Duration,
    abort_rx: &mut watch::Receiver<bool>,
    cancel: &CancelToken,
    lease_lost: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    let _stop = cancel.drop_guard();
    let mut task = tokio::spawn(work);
    tokio::select! {
        _ = tokio::time::sleep(timeout) => {
            task.abort();
            tracing::error!(timeout = ?timeout, "job deadline reached");
            Outcome::failure(
                FailureKind::SystemUnavailable,
                format!(
                    "the scan did not finish within the job deadline ({}, SCANGATE_JOB_TIMEOUT): \
                     a registry or AWS service stalled; retry the action (job {job_id})",
                    humantime::format_duration(timeout)
                ),
            )
        }
        r = &mut task => match r {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "job task panicked");
                Outcome::failure(
                    FailureKind::JobFailed,
                    format!("internal error: scangate crashed while scanning ({e}); look up job {job_id} in the worker logs"),
                )
            }
        },
        _ = abort_rx.wait_for(|a| *a) => {
            task.abort();
            Outcome::from_error(job_id, &PipelineError::ShuttingDown)
        }
        o = lease_lost => {
            task.abort();
            o
        }
    }
}

/// What the job's input artifact and configuration ask to scan.
struct Inputs {
    image: crate::image::ImageRef,
    policy: crate::policy::Policy,
}

async fn process(shared: &Shared, job: &JobInfo, cancel: &CancelToken) -> Outcome {
    let unknown = JobConfig::unknown_keys(&job.configuration);
    if !unknown.is_empty() {
        tracing::warn!(keys = ?unknown, "ignoring configuration properties this worker does not know");
    }
    let cfg = match JobConfig::parse(&job.configuration) {
        Ok(c) => c,
        Err(e) => return failed(shared, job, &e.into()).await,
    };
    // Checked before the scan: a job CodePipeline could not have meant
    // should not cost a pull first.
    let target = match OutputTarget::of(job) {
        Ok(t) => t,
        Err(e) => return failed(shared, job, &e.into()).await,
    };
    let mut creds = JobCredentials::new(job);
    let inputs = match inputs(shared, job, &cfg, &mut creds, cancel).await {
        Ok(i) => i,
        Err(e) => return failed(shared, job, &e).await,
    };
    tracing::info!(image = %inputs.image, platform = %cfg.platform, policy_file = cfg.policy_file.as_deref().unwrap_or(""), "scanning");
    shared.state.note_image(&job.id, &inputs.image.to_string());
    let req = ScanRequest {
        image: inputs.image,
        platform: cfg.platform.clone(),
        policy: inputs.policy,
        engine: cfg.engine,
        cancel: Some(cancel.clone()),
    };
    match pipeline::scan(&shared.ctx, &req).await {
        Ok(report) => finish(shared, job, target.as_ref(), &mut creds, report, cancel).await,
        Err(e) => failed(shared, job, &e).await,
    }
}

/// The image and policy of a job: from its configuration, or read (off the
/// runtime: unzipping and YAML are CPU work on pipeline-supplied bytes)
/// from its input artifact, which one download serves for both.
async fn inputs(
    shared: &Shared,
    job: &JobInfo,
    cfg: &JobConfig,
    creds: &mut JobCredentials,
    cancel: &CancelToken,
) -> Result<Inputs, PipelineError> {
    if cfg.image.is_some() && cfg.policy_file.is_none() {
        return Ok(Inputs {
            image: cfg.image.clone().ok_or(crate::job::ConfigError::NoImage)?,
            policy: cfg.policy.clone(),
        });
    }
    let zip = artifact_zip(shared, job, cfg, creds).await?;
    let cfg = cfg.clone();
    // Recorded with the decision: which artifact the policy file came from.
    let artifact_uri = job.input_artifacts.first().and_then(|a| {
        let (b, k) = (a.bucket.as_ref()?, a.key.as_ref()?);
        Some(format!("input artifact {} (s3://{b}/{k})", a.name))
    });
    pipeline::off_runtime(Some(cancel), move || {
        let image = match cfg.image.clone() {
            Some(i) => i,
            None => image_from_zip(&zip)?,
        };
        let policy = match &cfg.policy_file {
            Some(path) => {
                let file = policy_from_zip(&zip, path)?;
                for w in file.warnings(crate::policy::file::today_utc()) {
                    tracing::warn!(policy_file = %path, "{w}");
                }
                cfg.policy_with_file(&file).read_from(artifact_uri)
            }
            None => cfg.policy.clone(),
        };
        Ok(Inputs { image, policy })
    })
    .await
}

/// A finished scan: its reports stored, its output artifact written, its
/// outcome decided.
async fn finish(
    shared: &Shared,
    job: &JobInfo,
    target: Option<&OutputTarget>,
    creds: &mut JobCredentials,
    report: ScanReport,
    cancel: &CancelToken,
) -> Outcome {
    let report = match store_reports(shared, job, report, cancel).await {
        Ok(r) => r,
        Err(e) => return Outcome::from_error(&job.id, &e),
    };
    // Written before the result on PASS and FAIL alike: on FAIL it is
    // where the pipeline's next action or a person finds why.
    let (report, written) = match target {
        Some(t) => match write_output(shared, job, creds, t, report, cancel).await {
            Ok(w) => w,
            Err(e) => return Outcome::from_error(&job.id, &e),
        },
        None => (report, Ok(())),
    };
    tracing::info!(
        verdict = %report.decision.verdict,
        critical = report.decision.counts.critical,
        high = report.decision.counts.high,
        medium = report.decision.counts.medium,
        low = report.decision.counts.low,
        other = report.decision.counts.other,
        packages = report.packages,
        digest = %report.manifest_digest,
        total_ms = report.timings.total_ms,
        "scan finished"
    );
    shared.state.note_scan(
        &job.id,
        &report.decision.verdict.to_string(),
        &report.manifest_digest,
    );
    with_output(&job.id, Outcome::from_report(&job.id, &report), written)
}

/// Saves the job's reports, returning the report with their addresses.
/// Rendering them is CPU work over every finding and package, so the whole
/// save runs on a blocking thread (its uploads are still driven by the
/// runtime through `block_on`, which a blocking-pool thread may call).
async fn store_reports(
    shared: &Shared,
    job: &JobInfo,
    mut report: ScanReport,
    cancel: &CancelToken,
) -> Result<ScanReport, PipelineError> {
    let Some(store) = shared.reports.clone() else {
        return Ok(report);
    };
    let (job, worker_id) = (job.clone(), shared.worker_id.clone());
    let runtime = tokio::runtime::Handle::current();
    pipeline::off_runtime(Some(cancel), move || {
        match runtime.block_on(store.save(&job, &worker_id, &report)) {
            Ok(uris) => {
                report.report_uri = Some(uris.report);
                report.sbom_uri = Some(uris.sbom);
            }
            // Losing the report must not lose the verdict.
            Err(e) => tracing::error!(error = %e, "could not store the job's reports"),
        }
        Ok(report)
    })
    .await
}

/// A job that ends without a verdict still gets a record, so that `jobs
/// list` shows configuration and permission errors too.
async fn failed(shared: &Shared, job: &JobInfo, e: &PipelineError) -> Outcome {
    tracing::warn!(error = %e, failure_type = e.failure_kind().as_str(), "scan failed");
    if let Some(store) = &shared.reports
        && let Err(se) = store.save_failure(job, &shared.worker_id, e).await
    {
        tracing::error!(error = %se, "could not store the job record");
    }
    Outcome::from_error(&job.id, e)
}

/// The job's artifact credentials, renewed before use once they are old.
struct JobCredentials {
    current: Option<ArtifactCredentials>,
    issued: Instant,
}

impl JobCredentials {
    fn new(job: &JobInfo) -> Self {
        JobCredentials {
            current: job.credentials.clone(),
            issued: job.received,
        }
    }

    /// Credentials fit for use now. A failed renewal is not fatal: the old
    /// credentials may well still be valid (the threshold leaves a margin),
    /// and if not, S3's answer says so precisely.
    async fn get(&mut self, shared: &Shared, job_id: &str) -> Option<&ArtifactCredentials> {
        let age = self.issued.elapsed();
        if age >= shared.credentials_refresh_after {
            match shared.api.job_credentials(job_id).await {
                Ok(Some(c)) => {
                    tracing::info!(
                        age_s = age.as_secs(),
                        "artifact credentials renewed (GetJobDetails)"
                    );
                    self.current = Some(c);
                    self.issued = Instant::now();
                }
                Ok(None) => {
                    tracing::warn!(
                        "GetJobDetails returned no artifact credentials; using the old ones"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, age_s = age.as_secs(), "could not renew the artifact credentials; using the old ones")
                }
            }
        }
        self.current.as_ref()
    }
}

/// Zips the files the report stage produced (off the runtime: rendering
/// and compressing are CPU work) and writes them to the job's output
/// artifact location. The report is handed back with the result.
async fn write_output(
    shared: &Shared,
    job: &JobInfo,
    creds: &mut JobCredentials,
    target: &OutputTarget,
    report: ScanReport,
    cancel: &CancelToken,
) -> Result<(ScanReport, Result<(), output::OutputError>), PipelineError> {
    let (job2, worker_id) = (job.clone(), shared.worker_id.clone());
    let zipped = pipeline::off_runtime(Some(cancel), move || {
        let record = ReportStore::record_of(&job2, &worker_id, &report);
        let zipped = ReportStore::files(&job2, &record, &report)
            .map_err(|e| output::OutputError::Zip(e.to_string()))
            .and_then(|files| {
                let zip = output::zip(files.iter().map(|f| (f.name, f.body.as_slice())))?;
                Ok((zip, files.len()))
            });
        Ok((report, zipped))
    })
    .await?;
    let (report, zipped) = zipped;
    let written = match zipped {
        Ok((zip, files)) => upload_output(shared, job, creds, target, zip, files).await,
        Err(e) => Err(e),
    };
    Ok((report, written))
}

async fn upload_output(
    shared: &Shared,
    job: &JobInfo,
    creds: &mut JobCredentials,
    target: &OutputTarget,
    zip: Vec<u8>,
    files: usize,
) -> Result<(), output::OutputError> {
    let bytes = zip.len();
    let creds = creds
        .get(shared, &job.id)
        .await
        .ok_or(output::OutputError::NoCredentials)?;
    output::upload(&shared.sdk, creds, shared.s3_force_path_style, target, zip).await?;
    tracing::info!(
        bucket = %target.bucket,
        key = %target.key,
        bytes,
        files,
        kms = target.kms_key.is_some(),
        "output artifact written"
    );
    Ok(())
}

/// The scan's outcome once the output artifact was (or was not) written. A
/// PASS whose artifact is missing is not a PASS: the next action would find
/// nothing. A FAIL stays the policy's FAIL, with the artifact problem added,
/// because the verdict is what the person reading it needs first.
fn with_output(
    job_id: &str,
    outcome: Outcome,
    written: Result<(), output::OutputError>,
) -> Outcome {
    let Err(e) = written else {
        return outcome;
    };
    tracing::error!(error = %e, "could not write the output artifact");
    match outcome {
        Outcome::Success { .. } => Outcome::from_error(job_id, &e.into()),
        Outcome::Failure { kind, message } => {
            let note = format!("\n\nThe output artifact could not be written either: {e}");
            let room = crate::job::outcome::MAX_MESSAGE.saturating_sub(note.chars().count());
            Outcome::failure(
                kind,
                format!("{}{note}", crate::util::truncate_chars(&message, room)),
            )
        }
    }
}

/// The input artifact zip, for the image reference and/or the policy file.
async fn artifact_zip(
    shared: &Shared,
    job: &JobInfo,
    cfg: &JobConfig,
    creds: &mut JobCredentials,
) -> Result<Vec<u8>, PipelineError> {
    use crate::job::{ConfigError, artifact};
    if job.input_artifacts.is_empty() {
        return Err(match (&cfg.image, &cfg.policy_file) {
            (None, _) => ConfigError::NoImage,
            (Some(_), Some(file)) => ConfigError::PolicyFileWithoutArtifact { file: file.clone() },
            (Some(_), None) => ConfigError::NoImage,
        }
        .into());
    }
    let creds = creds.get(shared, &job.id).await;
    Ok(artifact::download(&shared.sdk, job, creds, shared.s3_force_path_style).await?)
}

fn image_from_zip(zip: &[u8]) -> Result<crate::image::ImageRef, PipelineError> {
    use crate::job::{ConfigError, artifact};
    let text = artifact::image_from_zip(zip)?;
    tracing::info!(image = %text, "image taken from the input artifact");
    text.parse().map_err(|e: crate::image::ImageError| {
        ConfigError::BadImageUrl {
            value: text.clone(),
            reason: e.to_string(),
        }
        .into()
    })
}

/// The PolicyFile from the input artifact: missing, unreadable or invalid
/// is a ConfigurationError naming the file and the problem.
fn policy_from_zip(zip: &[u8], path: &str) -> Result<crate::policy::PolicyFile, PipelineError> {
    use crate::job::{ConfigError, artifact::ArtifactError};
    let bad = |message: String| -> PipelineError {
        ConfigError::PolicyFile(crate::policy::PolicyFileError {
            file: path.to_owned(),
            message,
        })
        .into()
    };
    // A missing policy file is the action's configuration, not the artifact's.
    let text = crate::job::artifact::file_from_zip(zip, path).map_err(|e| match e {
        ArtifactError::MissingFile { listing, .. } => bad(format!(
            "not found in the input artifact (it holds: {listing})"
        )),
        ArtifactError::UnreadableFile { reason, .. } => {
            bad(format!("cannot be read from the input artifact: {reason}"))
        }
        e => e.into(),
    })?;
    let mut file =
        crate::policy::PolicyFile::parse(path, &text).map_err(ConfigError::PolicyFile)?;
    // Keys and roots the signature section names sit beside the policy
    // file in the same artifact.
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let read = |name: &str| -> Result<String, String> {
        let full = if dir.is_empty() || name.starts_with('/') {
            name.trim_start_matches('/').to_owned()
        } else {
            format!("{dir}/{name}")
        };
        crate::job::artifact::file_from_zip(zip, &full).map_err(|e| e.to_string())
    };
    file.resolve_signature_files(&read)
        .map_err(ConfigError::PolicyFile)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_still_gets_a_job_failed_outcome() {
        let (_tx, mut rx) = watch::channel(false);
        let o = guarded(
            async {
                let missing: Option<u8> = std::hint::black_box(None);
                Outcome::failure(
                    FailureKind::SystemUnavailable,
                    missing.expect("a bug").to_string(),
                )
            },
            "job-1",
            Duration::from_secs(60),
            &mut rx,
            &CancelToken::new(),
            std::future::pending(),
        )
        .await;
        let Outcome::Failure { kind, message } = o else {
            panic!("expected a failure")
        };
        assert_eq!(kind, FailureKind::JobFailed);
        assert!(message.contains("job-1"), "{message}");
    }

    #[test]
    fn an_unwritten_output_artifact_fails_a_pass_and_annotates_a_fail() {
        let denied = || {
            Err(output::OutputError::Denied {
                bucket: "artifacts".into(),
                key: "p/Scan/out.zip".into(),
                message: "AccessDenied: Access Denied".into(),
                kms: "",
            })
        };
        let pass = Outcome::Success {
            summary: "PASS".into(),
            variables: Default::default(),
        };
        assert_eq!(with_output("j", pass.clone(), Ok(())), pass);
        let Outcome::Failure { kind, message } = with_output("j", pass, denied()) else {
            panic!("a PASS without its artifact must fail")
        };
        assert_eq!(kind, FailureKind::PermissionError);
        assert!(
            message.contains("s3://artifacts/p/Scan/out.zip was denied"),
            "{message}"
        );

        let long = "1 CRITICAL (threshold 0) ".repeat(400);
        let fail = Outcome::failure(FailureKind::JobFailed, long);
        let Outcome::Failure { kind, message } = with_output("j", fail, denied()) else {
            panic!()
        };
        assert_eq!(kind, FailureKind::JobFailed, "the verdict stays the result");
        assert!(message.starts_with("1 CRITICAL (threshold 0)"), "{message}");
        assert!(
            message.ends_with(
                "(the pipeline's artifact bucket must allow the job's artifact credentials)"
            ),
            "{message}"
        );
        assert!(message.chars().count() <= crate::job::outcome::MAX_MESSAGE);
    }

    #[tokio::test]
    async fn the_job_deadline_fails_a_stalled_job() {
        let (_tx, mut rx) = watch::channel(false);
        let work = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Outcome::failure(FailureKind::JobFailed, "never")
        };
        let Outcome::Failure { kind, message } = guarded(
            work,
            "job-3",
            Duration::from_millis(50),
            &mut rx,
            &CancelToken::new(),
            std::future::pending(),
        )
        .await
        else {
            panic!("expected a failure")
        };
        assert_eq!(kind, FailureKind::SystemUnavailable);
        assert!(message.contains("job deadline (50ms"), "{message}");
        assert!(message.contains("job-3"), "{message}");
    }

    #[tokio::test]
    async fn the_shutdown_deadline_fails_unfinished_work() {
        let (tx, mut rx) = watch::channel(false);
        let work = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Outcome::failure(FailureKind::JobFailed, "never")
        };
        let guard = tokio::spawn(async move {
            guarded(
                work,
                "job-2",
                Duration::from_secs(7200),
                &mut rx,
                &CancelToken::new(),
                std::future::pending(),
            )
            .await
        });
        tx.send(true).unwrap();
        let Outcome::Failure { kind, message } = guard.await.unwrap() else {
            panic!("expected a failure")
        };
        assert_eq!(kind, FailureKind::SystemUnavailable);
        assert!(message.contains("worker shutting down"), "{message}");
    }
}
