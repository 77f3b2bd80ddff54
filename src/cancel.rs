//! Cooperative cancellation for CPU-bound work that runs off the async
//! runtime (layer reading, cataloguing, SBOM building, policy parsing).
//!
//! A job's deadline, the shutdown grace or a sibling failure cannot stop a
//! thread, so the code that loops over image-controlled input asks, in every
//! loop, whether its job is still wanted. The token travels with the thread
//! (a thread-local set by [`scope`]), so the catalogers and parsers need no
//! extra parameter: they call [`checkpoint`] (an error to propagate) or
//! [`is_cancelled`] (a loop to leave), which cost one relaxed atomic load.
//! Outside any scope nothing is ever cancelled (unit tests, the CLI's
//! offline paths that set no deadline).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "stop" flag. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every scope holding this token to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Cancels this token when the returned guard drops: a future that owns
    /// the guard stops its blocking work when the future itself is dropped
    /// (a deadline or a `select!` losing), which `spawn_blocking` alone does
    /// not do.
    pub fn drop_guard(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// See [`CancelToken::drop_guard`].
#[derive(Debug)]
pub struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The work was cancelled (job deadline, shutdown, abandoned pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled: the job's deadline passed or the worker is shutting down")]
pub struct Cancelled;

thread_local! {
    static CURRENT: RefCell<Option<CancelToken>> = const { RefCell::new(None) };
}

/// Runs `f` with `token` as this thread's cancellation token; the previous
/// token (if any) is restored afterwards, also when `f` panics.
pub fn scope<T>(token: &CancelToken, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<CancelToken>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CURRENT.with(|c| c.borrow_mut().replace(token.clone()));
    let _restore = Restore(prev);
    f()
}

/// The token of the current scope, to hand to threads this one starts.
pub fn current() -> Option<CancelToken> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether the current scope's work has been cancelled.
pub fn is_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(CancelToken::is_cancelled))
}

/// `Err(Cancelled)` once the current scope's work has been cancelled.
pub fn checkpoint() -> Result<(), Cancelled> {
    if is_cancelled() {
        Err(Cancelled)
    } else {
        Ok(())
    }
}

/// Runs CPU-bound `f` on tokio's blocking pool under a fresh token that is
/// cancelled when the returned future is dropped, so a deadline around the
/// await really stops the work at its next checkpoint. `parent` (the job's
/// token) cancels it too.
pub async fn spawn_blocking<T, F>(parent: Option<&CancelToken>, f: F) -> Result<T, Cancelled>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let token = CancelToken::new();
    let _guard = token.drop_guard();
    let inner = token.clone();
    let parent = parent.cloned();
    let handle = tokio::task::spawn_blocking(move || {
        // A child sees its parent's cancellation through its own flag: the
        // watcher below copies it across.
        scope(&inner, f)
    });
    let watch = async {
        if let Some(p) = &parent {
            loop {
                if p.is_cancelled() {
                    token.cancel();
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        } else {
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        joined = handle => match joined {
            Ok(v) => Ok(v),
            // A panic in the work is a bug: surface it as such.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Cancelled),
        },
        () = watch => Err(Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_scope_nothing_is_cancelled() {
        assert!(!is_cancelled());
        assert!(checkpoint().is_ok());
    }

    #[test]
    fn scope_sets_and_restores() {
        let t = CancelToken::new();
        scope(&t, || {
            assert!(checkpoint().is_ok());
            t.cancel();
            assert_eq!(checkpoint(), Err(Cancelled));
            let inner = CancelToken::new();
            scope(&inner, || assert!(!is_cancelled()));
            assert!(is_cancelled());
        });
        assert!(!is_cancelled());
    }

    #[tokio::test]
    async fn dropping_the_future_cancels_the_work() {
        let seen = CancelToken::new();
        let seen2 = seen.clone();
        let fut = spawn_blocking(None, move || {
            while !is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            seen2.cancel();
        });
        let r = tokio::time::timeout(std::time::Duration::from_millis(100), fut).await;
        assert!(r.is_err());
        for _ in 0..200 {
            if seen.is_cancelled() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the blocking work never saw the cancellation");
    }

    #[tokio::test]
    async fn a_cancelled_parent_stops_the_child() {
        let parent = CancelToken::new();
        let p2 = parent.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            p2.cancel();
        });
        let r = spawn_blocking(Some(&parent), || {
            while !is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            7
        })
        .await;
        // Either the watcher or the work noticed first; both mean stopped.
        assert!(matches!(r, Err(Cancelled) | Ok(7)));
    }
}
