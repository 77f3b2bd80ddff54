//! `/healthz`, `/metrics` (Prometheus text) and `/jobs` for operators and
//! the ECS health check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use super::api::ApiError;
use super::metrics::{Emitter, Gauges, JobEnd, Totals};
use crate::job::{FailureKind, JobInfo};

/// Failed polls in a row after which `/healthz` fails (DESIGN.md).
pub const UNHEALTHY_AFTER: u32 = 3;

#[derive(Debug, Clone, Serialize)]
struct Running {
    job_id: String,
    pipeline: String,
    stage: String,
    action: String,
    started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip)]
    execution_id: String,
    #[serde(skip)]
    received: Instant,
    #[serde(skip)]
    digest: Option<String>,
    #[serde(skip)]
    verdict: Option<String>,
}

/// Finished jobs, for `/metrics`.
#[derive(Debug, Default)]
struct Completed {
    by_result: BTreeMap<String, u64>,
    duration_sum: Duration,
    count: u64,
}

pub struct State {
    concurrency: u32,
    running: Mutex<BTreeMap<String, Running>>,
    polls: AtomicU64,
    poll_errors: AtomicU64,
    /// `poll_errors` when the last gauge line was written.
    poll_errors_reported: AtomicU64,
    consecutive_poll_failures: AtomicU32,
    last_poll_error: Mutex<String>,
    /// Most jobs in flight at once since the last gauge line.
    peak_busy: AtomicU32,
    completed: Mutex<Completed>,
    emitter: Emitter,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    pub fn new(concurrency: u32, emitter: Emitter) -> State {
        State {
            concurrency,
            running: Mutex::default(),
            polls: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            poll_errors_reported: AtomicU64::new(0),
            consecutive_poll_failures: AtomicU32::new(0),
            last_poll_error: Mutex::default(),
            peak_busy: AtomicU32::new(0),
            completed: Mutex::default(),
            emitter,
        }
    }

    pub fn polled(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.consecutive_poll_failures.store(0, Ordering::Relaxed);
    }

    /// A failed poll. Throttling counts as an error but not against health:
    /// CodePipeline answered a signed request for this action type, so the
    /// worker can receive jobs, and replacing it would only add load. Any
    /// other failure (access denied, no credentials, unknown action type,
    /// an unreachable endpoint) does; the container health check's own
    /// retries keep a short outage from replacing the task.
    pub fn poll_error(&self, e: &ApiError) {
        self.poll_errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, ApiError::Throttled(_)) {
            return;
        }
        self.consecutive_poll_failures
            .fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_poll_error) = crate::util::truncate_chars(&e.to_string(), 500);
    }

    /// `Err` with the reason while polling is broken.
    pub fn health(&self) -> Result<(), String> {
        let n = self.consecutive_poll_failures.load(Ordering::Relaxed);
        if n < UNHEALTHY_AFTER {
            return Ok(());
        }
        Err(format!(
            "{n} consecutive failed polls for jobs; last: {}",
            lock(&self.last_poll_error)
        ))
    }

    pub fn job_started(&self, job: &JobInfo) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut running = lock(&self.running);
        running.insert(
            job.id.clone(),
            Running {
                job_id: job.id.clone(),
                pipeline: job.pipeline.clone(),
                stage: job.stage.clone(),
                action: job.action.clone(),
                started: now,
                image: None,
                execution_id: job.pipeline_execution_id.clone().unwrap_or_default(),
                received: job.received,
                digest: None,
                verdict: None,
            },
        );
        self.peak_busy
            .fetch_max(running.len() as u32, Ordering::Relaxed);
    }

    /// The image a job scans, once its inputs are read.
    pub fn note_image(&self, job_id: &str, image: &str) {
        if let Some(r) = lock(&self.running).get_mut(job_id) {
            r.image = Some(image.to_owned());
        }
    }

    /// The verdict and digest of a job whose scan finished.
    pub fn note_scan(&self, job_id: &str, verdict: &str, digest: &str) {
        if let Some(r) = lock(&self.running).get_mut(job_id) {
            r.verdict = Some(verdict.to_owned());
            r.digest = Some(digest.to_owned());
        }
    }

    /// Ends a job: its EMF job line (also its log record), and the totals.
    /// `failure` is the failure type of its result; `None` for a PASS.
    pub fn job_finished(&self, id: &str, failure: Option<FailureKind>) {
        let Some(r) = lock(&self.running).remove(id) else {
            return;
        };
        // A policy FAIL is CodePipeline's JobFailed too; the metric tells
        // it apart from a job that failed without a verdict.
        let result = match failure {
            None => "PASS",
            Some(FailureKind::JobFailed) if r.verdict.as_deref() == Some("FAIL") => "FAIL",
            Some(k) => k.as_str(),
        };
        let duration = r.received.elapsed();
        {
            let mut c = lock(&self.completed);
            *c.by_result.entry(result.to_owned()).or_default() += 1;
            c.duration_sum += duration;
            c.count += 1;
        }
        self.emitter.job(&JobEnd {
            job_id: r.job_id,
            pipeline: r.pipeline,
            stage: r.stage,
            action: r.action,
            execution_id: r.execution_id,
            image: r.image,
            digest: r.digest,
            verdict: r.verdict,
            result: result.to_owned(),
            failure_type: failure.map(|k| k.as_str().to_owned()),
            duration,
        });
    }

    fn busy_and_oldest(&self) -> (u32, Duration) {
        let running = lock(&self.running);
        let oldest = running
            .values()
            .map(|r| r.received.elapsed())
            .max()
            .unwrap_or_default();
        (running.len() as u32, oldest)
    }

    /// The gauge figures since the last call, which starts the next period.
    pub fn take_gauges(&self) -> Gauges {
        let (busy, oldest) = self.busy_and_oldest();
        let peak = self.peak_busy.swap(busy, Ordering::Relaxed).max(busy);
        let errors = self.poll_errors.load(Ordering::Relaxed);
        let before = self.poll_errors_reported.swap(errors, Ordering::Relaxed);
        Gauges {
            slots: self.concurrency,
            slots_busy: peak,
            oldest_job_age: oldest,
            poll_errors: errors.saturating_sub(before),
        }
    }

    pub fn totals(&self) -> Totals {
        let (busy, oldest) = self.busy_and_oldest();
        let c = lock(&self.completed);
        Totals {
            slots: self.concurrency,
            slots_busy: busy,
            oldest_job_age: oldest,
            polls: self.polls.load(Ordering::Relaxed),
            poll_errors: self.poll_errors.load(Ordering::Relaxed),
            consecutive_poll_failures: self.consecutive_poll_failures.load(Ordering::Relaxed),
            completed: c.by_result.clone(),
            duration_sum: c.duration_sum,
            duration_count: c.count,
        }
    }

    /// Writes a gauge line now and every `interval` until aborted.
    pub async fn emit_gauges_every(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        // Late ticks are not made up: one line per interval keeps the Sum
        // statistic of SlotsBusy and Slots one sample per worker.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let g = self.take_gauges();
            self.emitter.gauges(&g);
        }
    }
}

pub async fn serve(addr: SocketAddr, state: Arc<State>) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/healthz",
            get(|AxState(s): AxState<Arc<State>>| async move {
                match s.health() {
                    Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("unhealthy: {why}\n"),
                    ),
                }
            }),
        )
        .route(
            "/metrics",
            get(|AxState(s): AxState<Arc<State>>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    super::metrics::prometheus(&s.totals()),
                )
                    .into_response()
            }),
        )
        .route(
            "/jobs",
            get(|AxState(s): AxState<Arc<State>>| async move {
                let running: Vec<Running> = s
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .cloned()
                    .collect();
                axum::Json(serde_json::json!({ "running": running }))
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "health server listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(())
}

/// `scangate healthcheck`: asks the worker at `addr` (its
/// `SCANGATE_HEALTH_ADDR`; a wildcard address is probed on loopback) for
/// `/healthz`. `Err` says why it is not healthy.
pub async fn probe(addr: &str, timeout: std::time::Duration) -> Result<(), String> {
    if addr.trim().eq_ignore_ascii_case("off") {
        return Err("SCANGATE_HEALTH_ADDR is off: there is no health endpoint to probe".into());
    }
    let sock: std::net::SocketAddr = addr
        .trim()
        .parse()
        .map_err(|e| format!("invalid health address {addr:?}: {e}"))?;
    let target = match sock.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], sock.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, sock.port()))
        }
        _ => sock,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(format!("http://{target}/healthz"))
        .send()
        .await
        .map_err(|e| format!("no answer from http://{target}/healthz: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "http://{target}/healthz answered {}",
            resp.status()
        ))
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    #[derive(Clone, Default)]
    struct Buf(Arc<StdMutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn state() -> (State, Buf) {
        let buf = Buf::default();
        (
            State::new(2, Emitter::to("gate", Box::new(buf.clone()))),
            buf,
        )
    }

    fn lines(buf: &Buf) -> Vec<serde_json::Value> {
        String::from_utf8(buf.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn job(id: &str) -> JobInfo {
        JobInfo {
            id: id.into(),
            nonce: "n".into(),
            account_id: None,
            pipeline: "app".into(),
            stage: "Scan".into(),
            action: "Gate".into(),
            pipeline_execution_id: Some("exec-1".into()),
            action_execution_id: None,
            configuration: Default::default(),
            input_artifacts: vec![],
            output_artifacts: vec![],
            credentials: None,
            encryption_key: None,
            received: Instant::now(),
        }
    }

    #[test]
    fn unhealthy_after_three_failed_polls_until_one_succeeds() {
        let (s, _) = state();
        let denied = ApiError::AccessDenied("AccessDeniedException: no".into());
        for _ in 0..2 {
            s.poll_error(&denied);
            assert!(s.health().is_ok());
        }
        s.poll_error(&denied);
        let why = s.health().unwrap_err();
        assert!(
            why.contains("3 consecutive") && why.contains("AccessDenied"),
            "{why}"
        );
        // throttling neither breaks nor heals it
        s.poll_error(&ApiError::Throttled("slow down".into()));
        assert!(s.health().is_err());
        s.polled();
        assert!(s.health().is_ok());
        for _ in 0..5 {
            s.poll_error(&ApiError::Throttled("slow down".into()));
        }
        assert!(
            s.health().is_ok(),
            "throttling alone keeps the worker healthy"
        );
        assert_eq!(s.totals().poll_errors, 9);
    }

    #[test]
    fn results_gauges_and_job_lines() {
        let (s, buf) = state();
        s.job_started(&job("a"));
        s.job_started(&job("b"));
        s.note_image("a", "registry.example/app:1");
        s.note_scan("a", "FAIL", "sha256:aa");
        s.job_finished("a", Some(FailureKind::JobFailed));
        s.job_finished("b", Some(FailureKind::PermissionError));
        s.job_started(&job("c"));
        s.note_scan("c", "PASS", "sha256:cc");
        s.job_finished("c", None);
        s.job_started(&job("d"));
        s.poll_error(&ApiError::Other("boom".into()));
        let g = s.take_gauges();
        assert_eq!(
            (g.slots, g.slots_busy, g.poll_errors),
            (2, 2, 1),
            "peak busy was 2"
        );
        let g = s.take_gauges();
        assert_eq!((g.slots_busy, g.poll_errors), (1, 0), "a new period");
        let results: Vec<String> = lines(&buf)
            .iter()
            .map(|l| l["Result"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(results, ["FAIL", "PermissionError", "PASS"]);
        let first = &lines(&buf)[0];
        assert_eq!(first["failure_type"], "JobFailed");
        assert_eq!(first["verdict"], "FAIL");
        assert_eq!(first["image"], "registry.example/app:1");
        assert_eq!(first["execution_id"], "exec-1");
        let t = s.totals();
        assert_eq!(t.completed["FAIL"], 1);
        assert_eq!(t.completed["PASS"], 1);
        assert_eq!(t.duration_count, 3);
        // an unknown job (never started here) is not counted twice
        s.job_finished("a", None);
        assert_eq!(s.totals().duration_count, 3);
    }
}

#[cfg(test)]
mod probe_tests {
    use super::probe;
    use std::time::Duration;

    #[tokio::test]
    async fn healthy_unhealthy_and_unreachable() {
        use axum::http::StatusCode;
        for (status, healthy) in [
            (StatusCode::OK, true),
            (StatusCode::SERVICE_UNAVAILABLE, false),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new().route(
                "/healthz",
                axum::routing::get(move || async move { status }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let wildcard = format!("0.0.0.0:{}", addr.port());
            assert_eq!(
                probe(&wildcard, Duration::from_secs(3)).await.is_ok(),
                healthy
            );
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = probe(&closed.to_string(), Duration::from_secs(3))
            .await
            .unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(
            probe("off", Duration::from_secs(1))
                .await
                .unwrap_err()
                .contains("off")
        );
    }
}
