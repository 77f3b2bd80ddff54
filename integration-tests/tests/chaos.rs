//! Chaos: many jobs through the real `scangate worker` binary while every
//! dependency misbehaves and workers are killed and restarted (issue 9,
//! standing defences). Every acknowledged job must get exactly one result.
//!
//! - CodePipeline (emulator): throttling, 5xx and dropped answers on
//!   PollForJobs, AcknowledgeJob, GetJobDetails and PutJob*Result.
//! - Inspector (emulator): throttling, 5xx, slow (late, trickled) and
//!   dropped answers, and 10 MB answers.
//! - The registry (the real `docker-registry`) and S3 (moto, the reports and
//!   pending-results store) behind a TCP fault proxy: 503s, resets, answers
//!   cut short (truncated blobs and listings).
//! - Workers: SIGTERM (drain) and SIGKILL mid-job, each restarted.
//!
//! The figures are printed: jobs, faults by kind, results, jobs swept
//! (reported SystemUnavailable by another worker after their worker was
//! SIGKILLed and its lease expired), duplicates, lost, left to
//! CodePipeline's timeout, and the workers' peak RSS. Every job must end
//! with exactly one result: duplicates = 0, lost = 0, and none left to
//! CodePipeline's own job timeout (which the emulator enforces, 120 s,
//! far beyond the 5 s lease TTL used here).
//!
//! `CHAOS_JOBS` (default 60 here; `integration-tests/scripts/chaos.sh` runs
//! 1,000) and `CHAOS_FAULT_RATE` (default 0.21 per dependency) size the run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use integration_tests::codepipeline::{
    CodePipelineOptions, JobResult, JobSnapshot, JobStatus, NewJob,
};
use integration_tests::fault_proxy::{FaultMix, FaultProxy};
use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::process::MotoServer;
use integration_tests::registry::Registry;
use integration_tests::{EmulatorOptions, Emulators, corpus, images};
use support::{RunningWorker, Worker};

/// A worker taken out of service by the chaos loop, kept for its log.
struct Retired {
    worker: RunningWorker,
    killed: bool,
}

/// Jobs a worker acknowledged and never reported on (its log's view).
fn unfinished_jobs(w: &RunningWorker) -> BTreeSet<String> {
    let log = w.log();
    let mut acked = BTreeSet::new();
    let mut done = BTreeSet::new();
    for line in log.lines() {
        let Some(id) = job_id(line) else { continue };
        if line.contains("job acknowledged") {
            acked.insert(id);
        } else if line.contains("job result sent") || line.contains("pending result") {
            done.insert(id);
        }
    }
    acked.difference(&done).cloned().collect()
}

fn job_id(line: &str) -> Option<String> {
    let at = line.find("job_id")?;
    let rest = &line[at + "job_id".len()..];
    let rest = rest.trim_start_matches(['"', ':', '=', ' ']);
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}

struct Env {
    emus: Emulators,
    registry: Registry,
    registry_proxy: FaultProxy,
    _moto: MotoServer,
    s3_proxy: FaultProxy,
    bucket: String,
    logs: tempfile::TempDir,
    started: usize,
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Env {
    async fn new(rate: f64) -> Env {
        let opts = EmulatorOptions {
            codepipeline: CodePipelineOptions {
                // The backstop a SIGKILLed worker's job must never need:
                // the lease sweep reports it long before.
                job_timeout: Some(Duration::from_secs(120)),
                // A dropped PollForJobs answer hands the job out again soon.
                dispatch_timeout: Duration::from_secs(5),
                ..CodePipelineOptions::default()
            },
            ..EmulatorOptions::default()
        };
        let emus = integration_tests::start("127.0.0.1:0".parse().unwrap(), opts)
            .await
            .expect("starting emulators");
        let registry = Registry::start().expect("starting docker-registry");
        let registry_proxy =
            FaultProxy::start(registry.addr.parse().unwrap(), FaultMix::each(rate / 3.0))
                .await
                .unwrap();
        let moto = MotoServer::start().expect("starting moto");
        let s3_addr = moto.endpoint.trim_start_matches("http://").parse().unwrap();
        let s3_proxy = FaultProxy::start(s3_addr, FaultMix::default())
            .await
            .unwrap();
        let bucket = "chaos-reports".to_string();
        let s3 = support::s3_client(&moto.endpoint).await;
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        s3_proxy.set_mix(FaultMix::each(rate / 3.0));
        Env {
            emus,
            registry,
            registry_proxy,
            _moto: moto,
            s3_proxy,
            bucket,
            logs: tempfile::tempdir().unwrap(),
            started: 0,
        }
    }

    /// A worker behind the fault proxies, with short leases and sweeps so
    /// that a SIGKILLed worker's jobs are swept within the run; its log
    /// stays in `logs` after it is retired.
    fn worker(&mut self) -> RunningWorker {
        self.started += 1;
        let log = self
            .logs
            .path()
            .join(format!("worker-{}.log", self.started));
        Worker::new(&self.emus)
            .s3(&format!("http://{}", self.s3_proxy.addr))
            .reports_uri(&format!("s3://{}/chaos", self.bucket))
            .registry(&self.registry_proxy.addr.to_string())
            .slots(3)
            .envs(&[
                ("SCANGATE_POLL_INTERVAL", "100ms"),
                ("SCANGATE_SHUTDOWN_GRACE", "5s"),
                ("SCANGATE_PENDING_SWEEP_INTERVAL", "2s"),
                ("SCANGATE_LEASE_HEARTBEAT", "1s"),
                ("SCANGATE_LEASE_TTL", "5s"),
                ("SCANGATE_LOG_FORMAT", "json"),
            ])
            .log(&log)
            .spawn()
    }

    fn job(&self, image: &str, i: usize) -> String {
        let mut configuration = BTreeMap::from([("ImageUrl".to_string(), image.to_string())]);
        if i.is_multiple_of(3) {
            configuration.insert("HighThreshold".into(), "1000".into());
            configuration.insert("CriticalThreshold".into(), "1000".into());
        }
        self.emus.codepipeline.enqueue_job(NewJob {
            pipeline_name: format!("pipeline-{}", i % 7),
            stage_name: "Scan".into(),
            action_name: "ImageScan".into(),
            configuration,
            ..NewJob::default()
        })
    }
}

fn codepipeline_faults(rate: f64) -> Vec<FaultRule> {
    let mut rules = Vec::new();
    for op in [
        "PollForJobs",
        "AcknowledgeJob",
        "GetJobDetails",
        "PutJobSuccessResult",
        "PutJobFailureResult",
    ] {
        rules.push(FaultRule::new(op, FaultKind::Throttle).with_probability(rate / 2.0));
        rules.push(FaultRule::new(op, FaultKind::Error5xx).with_probability(rate / 4.0));
        rules.push(FaultRule::new(op, FaultKind::Drop).with_probability(rate / 4.0));
    }
    rules
}

/// A 10 MB answer: within the 64 MiB cap, read and parsed like any other.
const PADDED_ANSWER: u64 = 10 << 20;

fn inspector_faults(rate: f64) -> Vec<FaultRule> {
    vec![
        FaultRule::new("ScanSbom", FaultKind::Delay { ms: 1500 }).with_probability(rate / 4.0),
        // Modifiers: they combine with the outcome rules below.
        FaultRule::new("ScanSbom", FaultKind::Trickle { ms: 2000 }).with_probability(rate / 4.0),
        FaultRule::new(
            "ScanSbom",
            FaultKind::Pad {
                bytes: PADDED_ANSWER,
            },
        )
        .with_probability(rate / 4.0),
        FaultRule::new("ScanSbom", FaultKind::Throttle).with_probability(rate / 2.0),
        FaultRule::new("ScanSbom", FaultKind::Error5xx).with_probability(rate / 4.0),
        FaultRule::new("ScanSbom", FaultKind::Drop).with_probability(rate / 4.0),
    ]
}

/// Peak RSS (`VmHWM`) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn final_results(s: &JobSnapshot) -> usize {
    s.history.iter().filter(|h| h.status.is_final()).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_job_gets_exactly_one_result_under_chaos() {
    let jobs = env_usize("CHAOS_JOBS", 60);
    let rate = env_f64("CHAOS_FAULT_RATE", 0.21);
    let mut env = Env::new(rate).await;
    let img = images::image_from_inspector_fixture(
        &corpus::inspector_fixtures_dir().join("sboms/alpine_3.18.2.json"),
    )
    .expect("building the fixture image");
    img.push(&env.registry.addr, "fixture/alpine:chaos", None)
        .await
        .expect("pushing");
    let image = format!("{}/fixture/alpine:chaos", env.registry_proxy.addr);

    // One rule list serves both emulators (operation names tell them apart).
    let mut rules = codepipeline_faults(rate);
    rules.extend(inspector_faults(rate));
    env.emus.faults.set(rules).unwrap();

    let ids: Vec<String> = (0..jobs).map(|i| env.job(&image, i)).collect();
    let mut workers: Vec<RunningWorker> = (0..3).map(|_| env.worker()).collect();
    let mut retired: Vec<Retired> = Vec::new();
    let (mut sigkills, mut sigterms) = (0usize, 0usize);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60 + jobs as u64 * 3);
    let mut next_chaos = Instant::now() + Duration::from_secs(2);
    let mut round = 0usize;
    let mut peak_kib = 0u64;
    loop {
        for w in &workers {
            peak_kib = peak_kib.max(peak_rss_kib(w.pid()).unwrap_or(0));
        }
        let snaps: Vec<JobSnapshot> = ids
            .iter()
            .map(|id| env.emus.codepipeline.job(id).unwrap())
            .collect();
        if snaps.iter().all(|s| s.status.is_final()) || Instant::now() > deadline {
            break;
        }
        // Chaos stops two thirds of the way through, so that the last jobs
        // and the pending results can drain.
        let finished = snaps.iter().filter(|s| s.status.is_final()).count();
        if Instant::now() >= next_chaos && finished < jobs * 2 / 3 {
            round += 1;
            let i = round % workers.len();
            let w = std::mem::replace(&mut workers[i], env.worker());
            peak_kib = peak_kib.max(peak_rss_kib(w.pid()).unwrap_or(0));
            let killed = round.is_multiple_of(2);
            if killed {
                w.kill();
                sigkills += 1;
            } else {
                w.terminate();
                sigterms += 1;
            }
            retired.push(Retired { worker: w, killed });
            next_chaos = Instant::now() + Duration::from_millis(1500);
        }
        for w in &workers {
            assert!(!w.exited(), "a worker died on its own:\n{}", w.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fired: BTreeMap<String, u64> =
        env.emus
            .faults
            .rules()
            .iter()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(format!("{} {:?}", r.rule.operation, r.rule.kind))
                    .or_default() += r.fired;
                m
            });
    // Faults off, to read the results.
    env.emus.faults.clear();

    let killed_jobs: BTreeSet<String> = retired
        .iter()
        .filter(|r| r.killed)
        .flat_map(|r| unfinished_jobs(&r.worker))
        .collect();
    let mut results = BTreeMap::<String, usize>::new();
    let (mut duplicates, mut lost, mut left_to_timeout) = (0usize, Vec::new(), Vec::new());
    let mut swept = 0usize;
    for id in &ids {
        let s = env.emus.codepipeline.job(id).unwrap();
        if final_results(&s) > 1 {
            duplicates += 1;
        }
        let kind = match (&s.status, &s.result) {
            (JobStatus::Succeeded, _) => "succeeded".to_string(),
            (JobStatus::Failed, Some(JobResult::Failure(f)))
                if f.message.contains("lease expired") =>
            {
                swept += 1;
                "SystemUnavailable (lease expired, swept)".to_string()
            }
            (JobStatus::Failed, Some(JobResult::Failure(f))) => format!("{:?}", f.failure_type),
            (JobStatus::TimedOut, _) => {
                left_to_timeout.push(format!(
                    "{id} (held by a SIGKILLed worker: {})",
                    killed_jobs.contains(id)
                ));
                "timed out".to_string()
            }
            _ => {
                lost.push(format!(
                    "{id} ({:?}, {} acks)",
                    s.status, s.acknowledge_calls
                ));
                "lost".to_string()
            }
        };
        *results.entry(kind).or_default() += 1;
    }
    let cp_faults: u64 = fired
        .iter()
        .filter(|(k, _)| !k.starts_with("ScanSbom"))
        .map(|(_, v)| v)
        .sum();
    let insp_faults: u64 = fired
        .iter()
        .filter(|(k, _)| k.starts_with("ScanSbom"))
        .map(|(_, v)| v)
        .sum();
    eprintln!(
        "chaos: {jobs} jobs in {:.0?}; workers started {}, SIGTERM {sigterms}, SIGKILL {sigkills}\n\
         faults: codepipeline {cp_faults}, inspector {insp_faults}, registry {:?}, s3 {:?}\n\
         faults by rule: {fired:?}\n\
         results: {results:?}
         jobs held by SIGKILLed workers {}; swept (lease expired, reported by another worker) {swept}
         duplicates = {duplicates}; lost = {}; left to CodePipeline's timeout = {}
         workers' peak RSS {} MiB",
        t0.elapsed(),
        env.started,
        env.registry_proxy.counts(),
        env.s3_proxy.counts(),
        killed_jobs.len(),
        lost.len(),
        left_to_timeout.len(),
        peak_kib / 1024,
    );
    assert_eq!(duplicates, 0, "jobs with more than one result");
    assert!(
        lost.is_empty(),
        "jobs that never got a result: {lost:?}\n--- last worker log ---\n{}",
        workers[0].log()
    );
    if !left_to_timeout.is_empty() {
        // What every worker said about them, to tell where they fell.
        for entry in &left_to_timeout {
            let id = entry.split(' ').next().unwrap_or_default();
            let all = retired
                .iter()
                .map(|r| (&r.worker, r.killed))
                .chain(workers.iter().map(|w| (w, false)));
            for (i, (w, killed)) in all.enumerate() {
                for line in w.log().lines().filter(|l| l.contains(id)) {
                    eprintln!("worker {i} (killed {killed}): {line}");
                }
            }
        }
    }
    assert!(
        left_to_timeout.is_empty(),
        "jobs left to CodePipeline's timeout: {left_to_timeout:?}"
    );
    assert!(cp_faults > 0 && insp_faults > 0, "no faults were injected");
}
