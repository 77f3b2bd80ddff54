//! In-flight leases: no acknowledged job is left to CodePipeline's timeout.
//!
//! A worker killed mid-scan (SIGKILL, an out-of-memory kill, a lost task)
//! sends no result, and CodePipeline would hold the job InProgress for its
//! own action timeout: hours of a pipeline waiting on nothing. So right
//! before `AcknowledgeJob` (a kill between a successful acknowledgement and
//! a later write would leave no trace), and before any scan work, the
//! worker writes a lease
//! (`{reports}/inflight/{jobId}.json`, beside the pending results, or under
//! the local spool) and renews its heartbeat every `SCANGATE_LEASE_HEARTBEAT`.
//! Every worker's sweep (at start-up and on the pending-results timer) takes
//! a lease whose heartbeat is older than `SCANGATE_LEASE_TTL` to belong to a
//! dead worker: if CodePipeline still holds the job InProgress it reports
//! SystemUnavailable, with a message a person can act on, then removes the
//! lease.
//!
//! Exactly one result: the lease never sends anything itself. Whoever
//! decides the job's result, the worker that scanned it handing its verdict
//! over or a sweeper declaring it abandoned, must first *create* the job's
//! pending record ([`PendingStore::create`]: a hard link on a directory,
//! `If-None-Match: *` on S3), and only the creator sends. A worker that
//! loses that race drops its result; a sweeper that finds a pending record
//! leaves the result to it. CodePipeline's own state machine is the last
//! line: a second result is refused with InvalidJobStateException.
//!
//! A job this worker then fails to acknowledge (another worker has it)
//! leaves its lease to expire rather than deleting it: under the same name
//! the lease may already be the other worker's, renewed by it; once stale,
//! a sweep's recheck with the stale nonce finds the job not ours and removes
//! it. A sweeper whose recheck acknowledges a job still dispatched under
//! the stale nonce reports it SystemUnavailable: a result, never two.
//!
//! A worker that cannot renew its lease (the store is unreachable) must not
//! scan on blindly past the TTL, when a sweeper would report the job
//! abandoned under it: after `TTL - heartbeat` without one successful
//! renewal it stops the job and reports SystemUnavailable itself (through
//! the same exclusive create, so a sweeper that got there first wins).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::Instrument;

use super::Shared;
use super::api::AckCheck;
use super::pending::{Created, PendingError, PendingResult, Records};
use crate::job::{FailureKind, JobInfo, Outcome};
use crate::report::ReportStore;

/// How long a sweep asks CodePipeline about one expired lease's job before
/// leaving it to the next sweep.
const CHECK_BUDGET: Duration = Duration::from_secs(10);

/// How long the first write of a lease may take (it delays the job's
/// acknowledgement, and a job left unacknowledged is handed out again).
const FIRST_WRITE: Duration = Duration::from_secs(5);

/// The longest image reference kept in a lease (it goes into a message).
const MAX_IMAGE_CHARS: usize = 512;

/// One job in flight, as its worker last said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub job_id: String,
    /// The job's nonce: a sweeper acknowledges with it to learn whether the
    /// job is still InProgress (GetJobDetails carries no status).
    pub nonce: String,
    pub worker_id: String,
    /// The job's `ImageUrl`, or "" when the input artifact names the image.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub pipeline: String,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub heartbeat_ms: u64,
    /// When the worker's own job deadline (SCANGATE_JOB_TIMEOUT) ends it.
    pub deadline_ms: u64,
}

impl Lease {
    pub fn of(job: &JobInfo, worker_id: &str, job_timeout: Duration) -> Lease {
        let now = now_ms();
        Lease {
            job_id: job.id.clone(),
            nonce: job.nonce.clone(),
            worker_id: worker_id.to_owned(),
            image: job
                .configuration
                .get("ImageUrl")
                .map(|i| crate::util::truncate_chars(i, MAX_IMAGE_CHARS))
                .unwrap_or_default(),
            pipeline: crate::util::truncate_chars(&job.pipeline, 200),
            started_ms: now,
            heartbeat_ms: now,
            deadline_ms: now.saturating_add(job_timeout.as_millis() as u64),
        }
    }

    /// When a lease last renewed at `heartbeat_ms` expires.
    pub fn expires_ms(&self, ttl: Duration) -> u64 {
        self.heartbeat_ms.saturating_add(ttl.as_millis() as u64)
    }

    /// The SystemUnavailable message of an abandoned job.
    pub fn abandoned_message(&self, ttl: Duration) -> String {
        let image = if self.image.is_empty() {
            "the image named by its input artifact".to_owned()
        } else {
            self.image.clone()
        };
        format!(
            "the scangate worker {} that was scanning {image} stopped before it sent a result \
             (its lease expired at {}: no heartbeat since {}, SCANGATE_LEASE_TTL {}); nothing \
             was decided about the image: retry the action (job {})",
            self.worker_id,
            rfc3339(self.expires_ms(ttl)),
            rfc3339(self.heartbeat_ms),
            humantime::format_duration(ttl),
            self.job_id,
        )
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The lease settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub heartbeat: Duration,
    pub ttl: Duration,
}

impl LeaseTimes {
    /// A TTL shorter than two heartbeats would expire live jobs on one
    /// slow renewal.
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() || self.ttl < self.heartbeat * 2 {
            return Err(format!(
                "SCANGATE_LEASE_TTL ({}) must be at least twice SCANGATE_LEASE_HEARTBEAT ({}), \
                 which must not be zero",
                humantime::format_duration(self.ttl),
                humantime::format_duration(self.heartbeat)
            ));
        }
        Ok(())
    }

    /// How long a worker scans on without one renewed heartbeat: one
    /// heartbeat short of the TTL, so that it stops before a sweeper may
    /// declare the job abandoned.
    pub fn give_up_after(&self) -> Duration {
        self.ttl.saturating_sub(self.heartbeat)
    }
}

/// Where the leases are: `{reports}/inflight/`, else `{spool}/inflight/`.
#[derive(Clone)]
pub struct LeaseStore(pub Records);

impl LeaseStore {
    pub fn new(reports: Option<&ReportStore>, spool: PathBuf) -> LeaseStore {
        LeaseStore(Records::new(reports, spool.join("inflight"), "inflight"))
    }

    pub fn describe(&self) -> String {
        self.0.describe()
    }

    pub async fn write(&self, lease: &Lease) -> Result<(), PendingError> {
        let body = serde_json::to_vec(lease).map_err(|e| PendingError::Invalid {
            key: format!("{}.json", lease.job_id),
            reason: e.to_string(),
        })?;
        self.0.put(&lease.job_id, body).await
    }

    pub async fn load(&self, job_id: &str) -> Result<Option<Lease>, PendingError> {
        self.0.get(job_id, |l: &Lease| &l.job_id).await
    }

    pub async fn delete(&self, job_id: &str) -> Result<(), PendingError> {
        self.0.delete(job_id).await
    }

    pub async fn list(&self) -> Result<Vec<String>, PendingError> {
        self.0.list().await
    }
}

/// This worker's side of the journal: the store, the settings, and the
/// jobs it holds (which its own sweep leaves alone).
pub(super) struct Journal {
    pub store: LeaseStore,
    pub times: LeaseTimes,
    held: Arc<Mutex<HashSet<String>>>,
}

impl Journal {
    pub fn new(store: LeaseStore, times: LeaseTimes) -> Journal {
        Journal {
            store,
            times,
            held: Default::default(),
        }
    }

    fn holds(&self, job_id: &str) -> bool {
        lock(&self.held).contains(job_id)
    }

    /// Writes the lease of a job about to be acknowledged and keeps renewing it
    /// until the returned [`Held`] is released or dropped. `None` when it
    /// could not be written within [`FIRST_WRITE`]: the job is then not
    /// acknowledged (it returns to CodePipeline's queue), because a job
    /// acknowledged without a lease would be left to CodePipeline's timeout
    /// by a kill, and a store that refuses the first write would make the
    /// worker give the job up before the TTL anyway.
    pub async fn hold(&self, lease: Lease) -> Option<Held> {
        let last_ok = Instant::now();
        let first = async {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                // Each try bounded: a store that hangs is a store that failed.
                match tokio::time::timeout(FIRST_WRITE / 2, self.store.write(&lease)).await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) if attempt <= 3 => {
                        tracing::warn!(error = %e, attempt, "could not write the job's lease yet")
                    }
                    Ok(Err(_)) => {}
                    Err(_) => tracing::warn!(attempt, "writing the job's lease timed out"),
                }
                tokio::time::sleep(Duration::from_millis(100) * attempt.min(10)).await;
            }
        };
        if tokio::time::timeout(FIRST_WRITE, first).await.is_err() {
            tracing::error!(
                store = %self.store.describe(),
                "the job's lease could not be written; not acknowledging the job (it returns to the queue)"
            );
            return None;
        }
        lock(&self.held).insert(lease.job_id.clone());
        let (lost_tx, lost_rx) = watch::channel(None);
        let task = tokio::spawn(
            heartbeat(
                self.store.clone(),
                lease.clone(),
                self.times,
                last_ok,
                lost_tx,
            )
            .in_current_span(),
        );
        Some(Held {
            job_id: lease.job_id,
            store: self.store.clone(),
            held: self.held.clone(),
            task,
            lost: lost_rx,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Renews the lease every heartbeat; says how long it went without a
/// renewal once that reaches [`LeaseTimes::give_up_after`] (to the
/// millisecond, not at the next tick: a sweeper may act at the TTL), and
/// stops.
async fn heartbeat(
    store: LeaseStore,
    mut lease: Lease,
    times: LeaseTimes,
    mut last_ok: Instant,
    lost: watch::Sender<Option<Duration>>,
) {
    let mut failures = 0u32;
    loop {
        let give_up_at = tokio::time::Instant::from_std(last_ok + times.give_up_after());
        let renew = async {
            tokio::time::sleep(times.heartbeat).await;
            lease.heartbeat_ms = now_ms();
            // Bounded: a store that hangs is a store that failed.
            tokio::time::timeout(times.heartbeat, store.write(&lease)).await
        };
        let renewed = tokio::select! {
            r = renew => r,
            () = tokio::time::sleep_until(give_up_at) => {
                let _ = lost.send(Some(last_ok.elapsed()));
                return;
            }
        };
        match renewed {
            Ok(Ok(())) => {
                last_ok = Instant::now();
                failures = 0;
            }
            Ok(Err(e)) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "could not renew the job's lease");
            }
            Err(_) => {
                failures += 1;
                tracing::warn!(failures, "renewing the job's lease timed out");
            }
        }
    }
}

/// A lease this worker holds and renews.
pub(super) struct Held {
    job_id: String,
    store: LeaseStore,
    held: Arc<Mutex<HashSet<String>>>,
    task: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<Option<Duration>>,
}

impl Held {
    /// Completes, with the job's SystemUnavailable outcome, when the lease
    /// could not be renewed for [`LeaseTimes::give_up_after`]; never
    /// otherwise.
    pub async fn lost(&mut self, store: &str, ttl: Duration) -> Outcome {
        let silent = self
            .lost
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| *v);
        // The heartbeat task ended without a word: it was stopped.
        let Some(silent) = silent else {
            return std::future::pending().await;
        };
        tracing::error!(
            silent_s = silent.as_secs(),
            "the job's lease could not be renewed; stopping the job before another worker takes it over"
        );
        Outcome::failure(
            FailureKind::SystemUnavailable,
            format!(
                "scangate stopped this scan: for {} it could not renew the job's lease in {store} \
                 (SCANGATE_LEASE_TTL {}), after which another worker would report the job \
                 abandoned; the store (S3 or the worker's disk) is unreachable or failing: retry \
                 the action (job {})",
                humantime::format_duration(Duration::from_secs(silent.as_secs())),
                humantime::format_duration(ttl),
                self.job_id
            ),
        )
    }

    /// Stops renewing and removes the lease: the job's result is decided
    /// (pending) or delivered. A lease left behind by a failed delete is
    /// harmless: the sweeper finds the result pending or the job closed.
    pub async fn release(self) {
        self.task.abort();
        if let Err(e) = self.store.delete(&self.job_id).await {
            tracing::warn!(error = %e, "could not remove the job's lease");
        }
    }
}

impl Drop for Held {
    /// Dropped without [`Held::release`], the lease stays and expires: the
    /// worker could neither send the result nor keep it pending, so the
    /// sweeper's SystemUnavailable is the job's best remaining answer.
    fn drop(&mut self) {
        self.task.abort();
        lock(&self.held).remove(&self.job_id);
    }
}

/// Reports the jobs of expired leases (other than this worker's own) and
/// removes those leases; the number of jobs reported.
pub(super) async fn sweep(shared: &Shared) -> usize {
    let ids = match shared.leases.store.list().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the in-flight leases");
            return 0;
        }
    };
    let mut reported = 0;
    for id in ids {
        if shared.leases.holds(&id) || shared.is_delivering(&id) {
            continue;
        }
        let span = tracing::info_span!("lease", job_id = %id);
        if expire(shared, &id).instrument(span).await {
            reported += 1;
        }
    }
    reported
}

/// One lease: `true` when its job was found abandoned and reported now.
async fn expire(shared: &Shared, id: &str) -> bool {
    let store = &shared.leases.store;
    let ttl = shared.leases.times.ttl;
    let lease = match store.load(id).await {
        Ok(Some(l)) => l,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable lease; skipping it");
            return false;
        }
    };
    if now_ms() < lease.expires_ms(ttl) {
        return false;
    }
    if !still_in_progress(shared, &lease).await {
        return false;
    }
    let p = PendingResult::new(
        id,
        Outcome::failure(FailureKind::SystemUnavailable, lease.abandoned_message(ttl)),
        &shared.worker_id,
    );
    match shared.pending.create(&p).await {
        Ok(Created::New) => {}
        Ok(Created::Taken(_)) => {
            tracing::info!(
                "expired lease, but the job's result is already decided; removing the lease"
            );
            drop_lease(store, id).await;
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot record the abandoned job's result yet; the next sweep retries");
            return false;
        }
    }
    drop_lease(store, id).await;
    tracing::warn!(
        from_worker = %lease.worker_id,
        image = %lease.image,
        pipeline = %lease.pipeline,
        expired_at = %rfc3339(lease.expires_ms(ttl)),
        "lease expired: the job's worker stopped; reporting the job SystemUnavailable"
    );
    super::deliver::send_pending(shared, id).await;
    true
}

/// Whether the expired lease's job still waits for a result from us: not
/// when a result is already pending for it, nor when CodePipeline no
/// longer holds it InProgress (those leases are removed). An unanswered
/// question leaves the lease to the next sweep.
async fn still_in_progress(shared: &Shared, lease: &Lease) -> bool {
    let id = &lease.job_id;
    match shared.pending.load(id).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            tracing::info!("expired lease, but the job's result is pending; removing the lease");
            drop_lease(&shared.leases.store, id).await;
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "expired lease beside an unreadable pending result; leaving both");
            return false;
        }
    }
    match shared
        .api
        .recheck_acknowledged(id, &lease.nonce, CHECK_BUDGET)
        .await
    {
        AckCheck::Ours => true,
        AckCheck::NotOurs => {
            tracing::info!("expired lease of a job no longer in progress; removing it");
            drop_lease(&shared.leases.store, id).await;
            false
        }
        AckCheck::Unknown => {
            tracing::warn!(
                "expired lease: CodePipeline did not say whether the job is in progress; the next sweep retries"
            );
            false
        }
    }
}

async fn drop_lease(store: &LeaseStore, id: &str) {
    if let Err(e) = store.delete(id).await {
        tracing::warn!(error = %e, "could not remove the lease");
    }
}

#[cfg(test)]
mod tests;
