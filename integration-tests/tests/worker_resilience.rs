//! The worker under pressure (issue 9, defects 5 and 9), end to end: the
//! real `scangate worker` binary against the CodePipeline and Inspector
//! emulators and the real `docker-registry`.
//!
//! - CPU-bound scan work on one CPU must not freeze `/healthz` or polling,
//!   the job deadline must fire on time, and SIGTERM must end the process
//!   within its grace. The CPU is burnt by `SCANGATE_TEST_ONLY_BURN_CPU_MS`,
//!   a knob only debug builds honour, inside the blocking cataloguing stage
//!   and checking cancellation as the catalogers do.
//! - A result CodePipeline throttles for a minute is still delivered, once;
//!   a result whose worker is killed while retrying is delivered by the next
//!   worker, once.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration_tests::Emulators;
use integration_tests::codepipeline::{JobResult, JobSnapshot, JobStatus, NewJob};
use integration_tests::faults::{FaultKind, FaultRule};
use integration_tests::registry::Registry;
use support::{RunningWorker, Worker, failure};

struct Env {
    emus: Emulators,
    registry: Registry,
    reports: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        Env {
            emus: support::start_emulators().await,
            registry: Registry::start().expect("starting docker-registry"),
            reports: tempfile::tempdir().unwrap(),
        }
    }

    /// A worker on this registry and reports directory.
    fn worker(&self) -> Worker {
        Worker::new(&self.emus)
            .registry(&self.registry.addr)
            .reports(self.reports.path())
    }

    fn job(&self, image: &str) -> String {
        self.emus.codepipeline.enqueue_job(NewJob {
            pipeline_name: "app-pipeline".into(),
            stage_name: "Scan".into(),
            action_name: "ImageScan".into(),
            // Thresholds that the fixture's findings stay within: these tests
            // are about delivering the result, a PASS.
            configuration: [
                ("ImageUrl".to_string(), image.to_string()),
                ("CriticalThreshold".to_string(), "1000".to_string()),
                ("HighThreshold".to_string(), "1000".to_string()),
            ]
            .into(),
            ..NewJob::default()
        })
    }

    async fn push_debian_fixture(&self, tag: &str) -> String {
        support::push_debian_fixture(&self.registry, tag).await;
        self.registry.reference(&format!("fixture/debian:{tag}"))
    }

    async fn result(&self, id: &str, w: &RunningWorker, timeout: Duration) -> JobSnapshot {
        w.job_result(&self.emus, id, timeout).await
    }

    fn pending_file(&self, id: &str) -> PathBuf {
        self.reports
            .path()
            .join("pending")
            .join(format!("{id}.json"))
    }

    fn calls(&self, op: &str) -> usize {
        self.emus
            .codepipeline
            .calls()
            .iter()
            .filter(|c| c.operation == op)
            .count()
    }
}

/// The final statuses a job went through: exactly one result means one.
fn final_statuses(s: &JobSnapshot) -> usize {
    s.history.iter().filter(|h| h.status.is_final()).count()
}

/// Samples `/healthz` until `done` says stop; returns the slowest answer.
async fn slowest_health(addr: &str, mut done: impl FnMut() -> bool) -> (Duration, usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("http://{addr}/healthz");
    let (mut worst, mut n) = (Duration::ZERO, 0);
    while !done() {
        let t = Instant::now();
        let r = client.get(&url).send().await.expect("/healthz answers");
        assert!(r.status().is_success());
        worst = worst.max(t.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (worst, n)
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_bound_scan_on_one_cpu_keeps_health_polling_and_the_deadline() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("cpu").await;
    let timeout_s = 5;
    let w = env
        .worker()
        .on_one_cpu()
        .health()
        .env("SCANGATE_JOB_TIMEOUT", format!("{timeout_s}s"))
        // Ten minutes of CPU: only the deadline can end this job.
        .env("SCANGATE_TEST_ONLY_BURN_CPU_MS", "600000")
        .spawn();
    w.wait_log("health server listening", Duration::from_secs(30))
        .await;
    let id = env.job(&image);
    w.wait_log("job acknowledged", Duration::from_secs(30))
        .await;
    let acked = Instant::now();
    let polls_before = env.calls("PollForJobs");
    let (worst, samples) = slowest_health(w.health_addr(), || {
        env.emus
            .codepipeline
            .job(&id)
            .is_some_and(|s| s.result.is_some())
            || acked.elapsed() > Duration::from_secs(60)
    })
    .await;
    let took = acked.elapsed();
    let snap = env.result(&id, &w, Duration::from_secs(1)).await;
    let polls_during = env.calls("PollForJobs") - polls_before;
    eprintln!(
        "one CPU: result {:.2}s after ack (deadline {timeout_s}s); /healthz slowest {worst:?} over {samples} samples; {polls_during} polls meanwhile",
        took.as_secs_f64()
    );
    let (kind, message) = failure(&snap);
    assert_eq!(kind, "SystemUnavailable", "{message}");
    assert!(message.contains("job deadline"), "{message}");
    assert!(
        took < Duration::from_secs(timeout_s + 3),
        "the deadline fired {took:?} after the ack"
    );
    assert!(worst < Duration::from_secs(1), "/healthz took {worst:?}");
    assert!(samples >= 10, "{samples}");
    // The other slot kept polling (every 200 ms) while the job burnt CPU.
    assert!(polls_during >= 5, "{polls_during} polls during the job");
    assert_eq!(final_statuses(&snap), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_a_cpu_bound_job_within_the_grace_on_one_cpu() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("term").await;
    let grace_s = 4;
    let w = env
        .worker()
        .on_one_cpu()
        .env("SCANGATE_SHUTDOWN_GRACE", format!("{grace_s}s"))
        .env("SCANGATE_TEST_ONLY_BURN_CPU_MS", "600000")
        .spawn();
    let id = env.job(&image);
    w.wait_log("job acknowledged", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    w.terminate();
    let code = w.wait_exit(Duration::from_secs(grace_s + 10));
    let lived = t.elapsed();
    eprintln!(
        "SIGTERM with a CPU-bound job: exited after {:.2}s (grace {grace_s}s), code {code:?}",
        lived.as_secs_f64()
    );
    assert_eq!(code, Some(0), "{}", w.log());
    assert!(
        lived < Duration::from_secs(grace_s + 2),
        "lived {lived:?} after SIGTERM"
    );
    let snap = env.emus.codepipeline.job(&id).unwrap();
    let (kind, message) = failure(&snap);
    assert_eq!(kind, "SystemUnavailable");
    assert!(message.contains("shutting down"), "{message}");
    assert_eq!(snap.status, JobStatus::Failed);
}

fn throttle_results() -> Vec<FaultRule> {
    vec![
        FaultRule::new("PutJobSuccessResult", FaultKind::Throttle),
        FaultRule::new("PutJobFailureResult", FaultKind::Throttle),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_throttled_for_a_minute_is_delivered_once() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("throttled").await;
    env.emus
        .codepipeline
        .set_faults(throttle_results())
        .unwrap();
    let w = env.worker().spawn();
    let id = env.job(&image);
    w.wait_log("job result call failed, retrying", Duration::from_secs(60))
        .await;
    // Written before the first try, so a kill now would not lose it.
    assert!(env.pending_file(&id).exists());
    let throttled_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        env.emus.codepipeline.job(&id).unwrap().result.is_none(),
        "still throttled"
    );
    env.emus.codepipeline.set_faults(vec![]).unwrap();
    let snap = env.result(&id, &w, Duration::from_secs(60)).await;
    // Throttled calls never reach the job: count them at the API.
    let tries = env.calls("PutJobSuccessResult");
    eprintln!(
        "result delivered {:.1}s after throttling began, after {tries} PutJobSuccessResult calls",
        throttled_at.elapsed().as_secs_f64(),
    );
    assert!(matches!(snap.result, Some(JobResult::Success(_))));
    assert_eq!(snap.status, JobStatus::Succeeded);
    assert_eq!(final_statuses(&snap), 1);
    assert_eq!(snap.result_calls, 1, "one accepted call");
    assert!(tries > 3, "{tries}");
    // Sent: no longer pending, and nothing sends it again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!env.pending_file(&id).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_result_is_sent_once_by_the_next_worker() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("restart").await;
    env.emus
        .codepipeline
        .set_faults(throttle_results())
        .unwrap();
    let a = env
        .worker()
        .env("SCANGATE_PENDING_SWEEP_INTERVAL", "1s")
        .spawn();
    let id = env.job(&image);
    a.wait_log("job result call failed, retrying", Duration::from_secs(60))
        .await;
    assert!(env.pending_file(&id).exists());
    // The task dies while CodePipeline throttles its result.
    a.kill();
    assert!(env.emus.codepipeline.job(&id).unwrap().result.is_none());
    assert_eq!(
        env.emus.codepipeline.job(&id).unwrap().status,
        JobStatus::InProgress
    );
    env.emus.codepipeline.set_faults(vec![]).unwrap();

    // A new worker (it could be another task: the store is shared) sends
    // it on start-up, without any job of its own.
    let b = env
        .worker()
        .env("SCANGATE_PENDING_SWEEP_INTERVAL", "1s")
        .spawn();
    let snap = env.result(&id, &b, Duration::from_secs(30)).await;
    b.wait_log("pending job result sent", Duration::from_secs(5))
        .await;
    assert!(matches!(snap.result, Some(JobResult::Success(_))));
    assert_eq!(final_statuses(&snap), 1);
    assert!(!env.pending_file(&id).exists());
    // Later sweeps find nothing to send: still exactly one result.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = env.emus.codepipeline.job(&id).unwrap();
    assert_eq!(after.result_calls, snap.result_calls, "sent again");
    assert_eq!(final_statuses(&after), 1);
}

/// A pending result for a job that already has one (the worker died after
/// CodePipeline took it, before deleting the record) is dropped, not sent
/// twice; a record that is not a job id is never used.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_pending_result_is_dropped_without_a_second_result() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("stale").await;
    let w = env
        .worker()
        .env("SCANGATE_PENDING_SWEEP_INTERVAL", "1s")
        .spawn();
    let id = env.job(&image);
    let snap = env.result(&id, &w, Duration::from_secs(60)).await;
    let calls = snap.result_calls;
    let dir = env.reports.path().join("pending");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = serde_json::json!({
        "job_id": id,
        "outcome": {"result": "failure", "kind": "JobFailed", "message": "stale"},
        "worker_id": "dead-worker",
    });
    std::fs::write(env.pending_file(&id), stale.to_string()).unwrap();
    std::fs::write(dir.join("..%2fescape.json"), stale.to_string()).unwrap();
    w.wait_log("pending result no longer wanted", Duration::from_secs(10))
        .await;
    assert!(!env.pending_file(&id).exists());
    let after = env.emus.codepipeline.job(&id).unwrap();
    assert!(matches!(after.result, Some(JobResult::Success(_))));
    assert_eq!(final_statuses(&after), 1);
    assert_eq!(after.result_calls, calls + 1, "one refused resend");
    assert!(
        dir.join("..%2fescape.json").exists(),
        "not a job id: untouched"
    );
}

/// An AcknowledgeJob that took effect but whose answers were lost, every
/// try: CodePipeline holds the job InProgress for this worker, which must
/// recheck (GetJobDetails, the same nonce again) rather than leave the job
/// to CodePipeline's action timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_acknowledgements_lost_their_answers_still_gets_its_result() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("ack").await;
    env.emus
        .codepipeline
        .set_faults(vec![
            FaultRule::new("AcknowledgeJob", FaultKind::DropAnswer).times(6),
        ])
        .unwrap();
    let w = env.worker().spawn();
    let id = env.job(&image);
    let snap = env.result(&id, &w, Duration::from_secs(90)).await;
    assert!(
        w.log().contains("acknowledge failed ambiguously"),
        "{}",
        w.log()
    );
    assert!(matches!(snap.result, Some(JobResult::Success(_))));
    assert_eq!(final_statuses(&snap), 1);
    assert!(snap.acknowledge_calls >= 7, "{}", snap.acknowledge_calls);
    assert!(env.calls("GetJobDetails") >= 1);
    assert_eq!(snap.dispatch_count, 1, "never handed out again");
}

/// Short lease settings: a heartbeat every 500 ms, expired after 3 s, swept
/// every second.
const LEASE: [(&str, &str); 3] = [
    ("SCANGATE_LEASE_HEARTBEAT", "500ms"),
    ("SCANGATE_LEASE_TTL", "3s"),
    ("SCANGATE_PENDING_SWEEP_INTERVAL", "1s"),
];

impl Env {
    fn lease_file(&self, id: &str) -> PathBuf {
        self.reports
            .path()
            .join("inflight")
            .join(format!("{id}.json"))
    }

    fn lease(&self, id: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.lease_file(id)).ok()?;
        serde_json::from_str(&text).ok()
    }

    async fn wait_lease(&self, id: &str, w: &RunningWorker) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.lease(id) {
                return l;
            }
            assert!(Instant::now() < deadline, "no lease for {id}\n{}", w.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Scans stall at Inspector (ten minutes per answer): a job stays in
/// flight until its worker is killed or gives it up.
fn stall_inspector(env: &Env) {
    env.emus
        .faults
        .set(vec![FaultRule::new(
            "ScanSbom",
            FaultKind::Delay { ms: 600_000 },
        )])
        .unwrap();
}

/// A worker SIGKILLed mid-scan sends nothing; its lease stops being
/// renewed, and the next worker's sweep reports the job SystemUnavailable,
/// once, within the lease TTL and one sweep, rather than leaving the
/// pipeline to CodePipeline's own action timeout (hours).
#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_workers_job_is_reported_by_the_next_worker_within_the_lease_ttl() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("killed").await;
    stall_inspector(&env);
    let a = env.worker().envs(&LEASE).spawn();
    let id = env.job(&image);
    a.wait_log("job acknowledged", Duration::from_secs(30))
        .await;
    let first = env.wait_lease(&id, &a).await;
    assert_eq!(first["nonce"].as_str().map(str::is_empty), Some(false));
    let worker_a = first["worker_id"].as_str().unwrap().to_owned();
    // Renewed while the job runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let renewed = env.lease(&id).unwrap();
    assert!(
        renewed["heartbeat_ms"].as_u64() > first["heartbeat_ms"].as_u64(),
        "{first} -> {renewed}"
    );
    a.kill();
    let killed = Instant::now();
    let snap = env.emus.codepipeline.job(&id).unwrap();
    assert_eq!(snap.status, JobStatus::InProgress);
    assert!(snap.result.is_none());

    let b = env.worker().envs(&LEASE).spawn();
    let snap = env.result(&id, &b, Duration::from_secs(30)).await;
    let took = killed.elapsed();
    eprintln!(
        "SIGKILLed worker's job reported {:.2}s after the kill (TTL 3s, sweep 1s, incl. the new worker's start-up)",
        took.as_secs_f64()
    );
    let (kind, message) = failure(&snap);
    assert_eq!(kind, "SystemUnavailable", "{message}");
    for part in ["lease expired", &worker_a, &image, "retry the action", &id] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    // TTL + one sweep + the new worker's start-up.
    assert!(took < Duration::from_secs(3 + 1 + 5), "{took:?}");
    assert_eq!(final_statuses(&snap), 1);
    b.wait_log(
        "lease expired: the job's worker stopped",
        Duration::from_secs(5),
    )
    .await;
    assert!(!env.lease_file(&id).exists(), "the lease is removed");
    assert!(
        !env.pending_file(&id).exists(),
        "and nothing is left pending"
    );
    // Later sweeps find nothing: still exactly one result.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = env.emus.codepipeline.job(&id).unwrap();
    assert_eq!(after.result_calls, snap.result_calls, "sent again");
    assert_eq!(final_statuses(&after), 1);
}

/// A worker whose lease store fails does not scan on blindly past the TTL
/// (when a sweeper would report the job abandoned under it): it stops the
/// job one heartbeat before and reports SystemUnavailable itself, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_cannot_renew_its_lease_stops_the_job_before_the_ttl() {
    let env = Env::new().await;
    let image = env.push_debian_fixture("unrenewed").await;
    stall_inspector(&env);
    let w = env.worker().envs(&LEASE).spawn();
    let id = env.job(&image);
    env.wait_lease(&id, &w).await;
    // The journal breaks: `inflight` is no longer a directory.
    let dir = env.reports.path().join("inflight");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"").unwrap();
    let broke = Instant::now();
    let snap = env.result(&id, &w, Duration::from_secs(30)).await;
    let took = broke.elapsed();
    eprintln!(
        "lease store broken: the worker gave the job up after {:.2}s (TTL 3s)",
        took.as_secs_f64()
    );
    let (kind, message) = failure(&snap);
    assert_eq!(kind, "SystemUnavailable", "{message}");
    assert!(
        message.contains("could not renew the job's lease"),
        "{message}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(final_statuses(&snap), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(final_statuses(&env.emus.codepipeline.job(&id).unwrap()), 1);
}
