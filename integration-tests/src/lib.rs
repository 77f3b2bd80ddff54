//! Emulators of the AWS APIs scangate talks to, and the harness of its
//! end-to-end tests.
//!
//! - [`codepipeline`]: the CodePipeline job-worker API (awsJson1_1), with an
//!   admin API to register action types, enqueue jobs and read their results.
//! - [`inspector`]: Inspector Scan `ScanSbom` (restJson1), answering from the
//!   knowledge in [`vulndb`], which is built from real ScanSbom answers.
//! - [`faults`]: throttling, errors, delays and dropped connections on demand.
//!
//! [`start`] serves all of it on one port: CodePipeline at `POST /` (routed by
//! `X-Amz-Target`), Inspector at `POST /scan/sbom`, the admin API under
//! `/admin/`.

pub mod codepipeline;
pub mod fault_proxy;
pub mod faults;
pub mod inspector;
pub mod vulndb;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::codepipeline::{CodePipelineEmulator, CodePipelineOptions};
use crate::faults::{ConnectionAbort, Faults};
use crate::inspector::{InspectorEmulator, InspectorOptions};
use crate::vulndb::VulnDbError;

/// One call an emulator received, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// Order of arrival across this emulator, from 1.
    pub seq: u64,
    pub operation: String,
    /// RFC 3339, UTC, when the call arrived.
    pub at: String,
    /// CodePipeline: the request body. Inspector: a summary of it
    /// (`outputFormat`, `bomFormat`, `specVersion`, `componentCount`, `bytes`),
    /// because SBOMs are large.
    pub request: Value,
    /// HTTP status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The error shape answered, if any (`InvalidNonceException`, …).
    pub error_type: Option<String>,
    /// The injected fault that decided the answer, if any.
    pub fault: Option<String>,
    pub duration_ms: u64,
}

/// A bounded, shared call log: the oldest records go first when full.
#[derive(Debug, Clone)]
pub(crate) struct CallLog {
    inner: Arc<Mutex<CallLogInner>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct CallLogInner {
    next_seq: u64,
    records: VecDeque<CallRecord>,
}

impl CallLog {
    pub(crate) fn new(capacity: usize) -> Self {
        CallLog {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn push(&self, mut record: CallRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_seq += 1;
        record.seq = inner.next_seq;
        if inner.records.len() == self.capacity {
            inner.records.pop_front();
        }
        inner.records.push_back(record);
    }

    pub(crate) fn snapshot(&self) -> Vec<CallRecord> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.records.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .records
            .clear();
    }
}

/// RFC 3339 UTC with milliseconds, the way the services write timestamps.
pub(crate) fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_rfc3339(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// Options of [`start`].
#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    pub codepipeline: CodePipelineOptions,
    pub inspector: InspectorOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    VulnDb(#[from] VulnDbError),
}

/// The base URLs of running emulators, as `scangate-emulators` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmulatorUrls {
    /// For `AWS_ENDPOINT_URL_CODEPIPELINE`.
    pub codepipeline: String,
    /// For `AWS_ENDPOINT_URL_INSPECTOR_SCAN`.
    pub inspector: String,
    /// Base of the admin API (`{admin}/codepipeline/jobs`, …).
    pub admin: String,
}

/// Running emulators. Dropping this stops them; [`Emulators::shutdown`]
/// also waits for the listener to close.
#[derive(Debug)]
pub struct Emulators {
    pub addr: SocketAddr,
    pub urls: EmulatorUrls,
    pub codepipeline: CodePipelineEmulator,
    pub inspector: InspectorEmulator,
    /// Shared by both emulators: `*` rules apply to either.
    pub faults: Faults,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Emulators {
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Forget all jobs, calls and fault rules; registered action types stay.
    pub fn reset(&self) {
        self.codepipeline.reset();
        self.inspector.reset();
        self.faults.clear();
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Start both emulators on `addr` (port 0 picks a free port).
pub async fn start(addr: SocketAddr, opts: EmulatorOptions) -> Result<Emulators, EmulatorError> {
    let faults = Faults::new();
    let codepipeline = CodePipelineEmulator::with_faults(opts.codepipeline, faults.clone());
    let inspector = InspectorEmulator::with_faults(opts.inspector, faults.clone())?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| EmulatorError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind { addr, source })?;
    let base = format!("http://{addr}");
    let urls = EmulatorUrls {
        codepipeline: base.clone(),
        inspector: base.clone(),
        admin: format!("{base}/admin"),
    };
    let router = router(&codepipeline, &inspector, &faults);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, router, shutdown_rx));
    Ok(Emulators {
        addr,
        urls,
        codepipeline,
        inspector,
        faults,
        shutdown,
        task: Some(task),
    })
}

/// The whole HTTP surface, for serving some other way.
pub fn router(
    codepipeline: &CodePipelineEmulator,
    inspector: &InspectorEmulator,
    faults: &Faults,
) -> Router {
    let admin = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
        )
        .route(
            "/reset",
            post(reset_all).with_state((codepipeline.clone(), inspector.clone(), faults.clone())),
        )
        .nest("/codepipeline", codepipeline.admin_router())
        .nest("/inspector", inspector.admin_router())
        .nest("/faults", faults.admin_router());
    Router::new()
        .merge(codepipeline.router())
        .merge(inspector.router())
        .nest("/admin", admin)
}

async fn reset_all(
    State((codepipeline, inspector, faults)): State<(
        CodePipelineEmulator,
        InspectorEmulator,
        Faults,
    )>,
) -> StatusCode {
    codepipeline.reset();
    inspector.reset();
    faults.clear();
    StatusCode::NO_CONTENT
}

/// Serves HTTP/1.1 connection by connection, rather than with `axum::serve`,
/// so that a handler can drop its own connection (the `drop` fault).
async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let abort = Arc::new(Notify::new());
            let marker = ConnectionAbort(abort.clone());
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(marker.clone());
                router.clone().oneshot(req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                // Dropping the connection future closes the socket unanswered.
                _ = abort.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

// harness modules (registry, images) are declared below
pub mod corpus;
pub mod ecr;
pub mod ecs_agent;
pub mod images;
pub mod oci_server;
pub mod process;
pub mod redirect_proxy;
pub mod registry;
pub mod token_server;

/// Real Inspector data bundled for `scangate demo` (see assets/demo/PROVENANCE.md).
pub mod demo_assets {
    pub const DEBIAN_SBOM: &[u8] = include_bytes!("../assets/demo/debian_latest.sbom.json");
    pub const DEBIAN_SCAN: &[u8] = include_bytes!("../assets/demo/debian_latest.scan.json");
}
