//! `/healthz`, `/metrics` (Prometheus text) and `/jobs` for operators and
//! the ECS health check.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State as AxState;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::job::JobInfo;

#[derive(Debug, Clone, Serialize)]
struct Running {
    job_id: String,
    pipeline: String,
    stage: String,
    action: String,
    started: String,
}

pub struct State {
    concurrency: u32,
    running: Mutex<BTreeMap<String, Running>>,
    polls: AtomicU64,
    poll_errors: AtomicU64,
    succeeded: AtomicU64,
    failed: Mutex<BTreeMap<&'static str, u64>>,
}

impl State {
    pub fn new(concurrency: u32) -> State {
        State {
            concurrency,
            running: Mutex::default(),
            polls: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: Mutex::default(),
        }
    }

    pub fn polled(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn poll_error(&self) {
        self.poll_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn job_started(&self, job: &JobInfo) {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                job.id.clone(),
                Running {
                    job_id: job.id.clone(),
                    pipeline: job.pipeline.clone(),
                    stage: job.stage.clone(),
                    action: job.action.clone(),
                    started: now,
                },
            );
    }

    pub fn job_finished(&self, id: &str, failure: Option<&'static str>) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        match failure {
            None => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Some(kind) => {
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(kind)
                    .or_default() += 1;
            }
        }
    }

    fn metrics(&self) -> String {
        let mut s = String::new();
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).len();
        let _ = writeln!(
            s,
            "# TYPE scangate_jobs_in_flight gauge\nscangate_jobs_in_flight {running}"
        );
        let _ = writeln!(
            s,
            "# TYPE scangate_concurrency gauge\nscangate_concurrency {}",
            self.concurrency
        );
        let _ = writeln!(
            s,
            "# TYPE scangate_polls_total counter\nscangate_polls_total {}",
            self.polls.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE scangate_poll_errors_total counter\nscangate_poll_errors_total {}",
            self.poll_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# TYPE scangate_jobs_total counter");
        let _ = writeln!(
            s,
            "scangate_jobs_total{{result=\"success\"}} {}",
            self.succeeded.load(Ordering::Relaxed)
        );
        for (k, v) in self.failed.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                s,
                "scangate_jobs_total{{result=\"failure\",failure_type=\"{k}\"}} {v}"
            );
        }
        s
    }
}

pub async fn serve(addr: SocketAddr, state: Arc<State>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(|AxState(s): AxState<Arc<State>>| async move {
                ([("content-type", "text/plain; version=0.0.4")], s.metrics()).into_response()
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
