//! Getting a job's one result to CodePipeline, even through throttling, an
//! outage or a restart of the worker (see [`super::pending`]).

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use super::Shared;
use super::lease::Held;
use super::pending::{Created, PendingResult, PendingStore};
use crate::job::Outcome;

/// Sends `outcome` as the job's result. It is made the job's pending
/// result first (an exclusive create, see [`super::lease`]), so that a
/// worker killed while retrying leaves it for the next, and the job's lease
/// is then removed; if a sweeper already reported the job abandoned (this
/// worker's lease expired), that result stands and this one is dropped. The
/// slot is held while the tries last (up to the configured total, or the
/// shutdown grace), and what is still unsent then stays pending.
pub(super) async fn deliver(
    shared: &Shared,
    job_id: &str,
    outcome: Outcome,
    abort_rx: &mut watch::Receiver<bool>,
    started: Instant,
    lease: Held,
) {
    let (result, kind) = match &outcome {
        Outcome::Success { .. } => ("success", ""),
        Outcome::Failure { kind, .. } => ("failure", kind.as_str()),
    };
    let _delivering = shared.delivering(job_id);
    let pending = PendingResult::new(job_id, outcome, &shared.worker_id);
    let mut lease = Some(lease);
    let persisted = match shared.pending.create(&pending).await {
        Ok(Created::New) => {
            if let Some(l) = lease.take() {
                l.release().await;
            }
            true
        }
        Ok(Created::Taken(other)) => {
            tracing::warn!(
                result,
                decided_by = other.as_ref().map_or("", |o| o.worker_id.as_str()),
                "the job's result was already decided by another worker (this worker's lease \
                 expired); dropping this one"
            );
            if let Some(l) = lease.take() {
                l.release().await;
            }
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not keep the result pending before sending it");
            false
        }
    };
    let sent = tokio::select! {
        r = shared.api.put_result(job_id, &pending.outcome, shared.result_retry) => Some(r),
        () = after_abort(abort_rx, shared.result_margin) => None,
    };
    match sent {
        Some(Ok(())) => {
            tracing::info!(
                result,
                failure_type = kind,
                duration_ms = started.elapsed().as_millis() as u64,
                "job result sent"
            );
            forget(&shared.pending, job_id).await;
        }
        Some(Err(e)) if e.job_is_closed() => {
            tracing::warn!(error = %e, result, "CodePipeline takes no result for this job");
            forget(&shared.pending, job_id).await;
        }
        Some(Err(e)) if persisted => tracing::error!(
            error = %e, result, store = %shared.pending.describe(),
            "could not send the job result yet; it stays pending for this or another worker to send"
        ),
        Some(Err(e)) => {
            // The lease stays (dropped, not released): a sweeper reports the
            // job SystemUnavailable once it expires, rather than nothing.
            tracing::error!(error = %e, result, "could not send the job result, and it could not be kept pending; its lease will expire");
            return;
        }
        None if persisted => tracing::warn!(
            result, store = %shared.pending.describe(),
            "shutting down before CodePipeline took the job result; it stays pending"
        ),
        None => {
            tracing::warn!(
                result,
                "shutting down before CodePipeline took the job result; its lease will expire"
            );
            return;
        }
    }
    if let Some(l) = lease {
        l.release().await;
    }
}

/// Completes `margin` after the shutdown's abort: the time left for result
/// calls before the process must be gone.
async fn after_abort(abort_rx: &mut watch::Receiver<bool>, margin: Duration) {
    if abort_rx.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(margin).await;
}

async fn forget(store: &PendingStore, job_id: &str) {
    if let Err(e) = store.delete(job_id).await {
        // A leftover is sent again by a sweep, and CodePipeline refuses it
        // (the job has its result): harmless, so a warning.
        tracing::warn!(error = %e, "could not delete the pending result");
    }
}

/// Sends the results other workers (or this one before a restart) left
/// pending, and reports the jobs whose leases expired: on start-up, then
/// every `interval` until `stop`.
pub(super) async fn sweep_loop(
    shared: std::sync::Arc<Shared>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        sweep(&shared).await;
        super::lease::sweep(&shared).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Tries each pending result once (with a short retry budget); what
/// CodePipeline takes or refuses is deleted, the rest waits for the next
/// sweep. Results this worker is sending itself are left to it.
pub(super) async fn sweep(shared: &Shared) -> usize {
    let ids = match shared.pending.list().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list pending results");
            return 0;
        }
    };
    let mut sent = 0;
    for id in ids {
        if shared.is_delivering(&id) {
            continue;
        }
        let span = tracing::info_span!("pending", job_id = %id);
        if send_pending(shared, &id).instrument(span).await {
            sent += 1;
        }
    }
    sent
}

/// One pending result: `true` when CodePipeline took it now.
pub(super) async fn send_pending(shared: &Shared, id: &str) -> bool {
    let p = match shared.pending.load(id).await {
        Ok(Some(p)) => p,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable pending result; skipping it");
            return false;
        }
    };
    let retry = crate::worker::api::ResultRetry {
        total: SWEEP_RETRY,
        max_delay: Duration::from_secs(5),
    };
    match shared.api.put_result(id, &p.outcome, retry).await {
        Ok(()) => {
            tracing::info!(from_worker = %p.worker_id, "pending job result sent");
            forget(&shared.pending, id).await;
            true
        }
        Err(e) if e.job_is_closed() => {
            tracing::info!(error = %e, "pending result no longer wanted: the job has a result or is over");
            forget(&shared.pending, id).await;
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "pending result still not sent; the next sweep retries");
            false
        }
    }
}

/// Per pending result and sweep: short, so that one throttled job does not
/// hold back the others.
const SWEEP_RETRY: Duration = Duration::from_secs(20);
