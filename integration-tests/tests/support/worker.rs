//! The real `scangate worker` as the end-to-end tests run it: one builder
//! for its environment and its log, one handle that signals, waits for and
//! reads it, and kills it by PID when dropped.
//!
//! Every test file used to carry its own copy of this, each with a slightly
//! different environment and a different idea of "the worker exited"; the
//! differences that mattered (RUST_LOG, stdout apart, one CPU, the ECR
//! endpoint...) are the builder's options now, so a file says only what is
//! particular to it.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use integration_tests::codepipeline::JobSnapshot;
use integration_tests::process::{LogTo as _, append_to};
use integration_tests::{Emulators, corpus};

/// What any scangate process of a test sees (after `env_clear`): `PATH`,
/// the emulators' endpoints and made-up credentials; nothing from the
/// developer's own AWS setup, so no real account can be reached.
pub fn emulator_env(emus: &Emulators) -> BTreeMap<String, String> {
    [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        (
            "AWS_ENDPOINT_URL_CODEPIPELINE",
            emus.urls.codepipeline.clone(),
        ),
        (
            "AWS_ENDPOINT_URL_INSPECTOR_SCAN",
            emus.urls.inspector.clone(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `scangate worker`, not yet started.
#[must_use = "a Worker does nothing until spawn()"]
pub struct Worker {
    env: BTreeMap<String, String>,
    log: Option<PathBuf>,
    stdout_apart: bool,
    one_cpu: bool,
    health_addr: Option<String>,
}

impl Worker {
    /// The environment every worker gets: [`emulator_env`], a fast poll
    /// (200 ms, so tests do not wait on it), no health server (a fixed port
    /// would collide between parallel tests; see [`Worker::health`]), and
    /// debug logs from scangate itself, for the failure messages.
    pub fn new(emus: &Emulators) -> Worker {
        let mut env = emulator_env(emus);
        for (k, v) in [
            ("SCANGATE_POLL_INTERVAL", "200ms"),
            ("SCANGATE_HEALTH_ADDR", "off"),
            ("RUST_LOG", "info,scangate=debug"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        Worker {
            env,
            log: None,
            stdout_apart: false,
            one_cpu: false,
            health_addr: None,
        }
    }

    /// Sets (or overrides) one variable.
    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Worker {
        self.env.insert(key.to_owned(), value.as_ref().to_owned());
        self
    }

    /// Sets (or overrides) several variables, in order.
    pub fn envs(self, pairs: &[(&str, &str)]) -> Worker {
        pairs.iter().fold(self, |w, (k, v)| w.env(k, v))
    }

    /// Unsets a variable the defaults set (the worker then uses its own
    /// default).
    pub fn env_remove(mut self, key: &str) -> Worker {
        self.env.remove(key);
        self
    }

    /// The registry the test pushed to, which speaks plain HTTP.
    pub fn registry(self, addr: &str) -> Worker {
        self.env("SCANGATE_INSECURE_REGISTRIES", addr)
    }

    /// The reports store in a local directory.
    pub fn reports(self, dir: &Path) -> Worker {
        self.reports_uri(&format!("file://{}", dir.display()))
    }

    /// The reports store by URI (`file://…` or `s3://bucket/prefix`).
    pub fn reports_uri(self, uri: &str) -> Worker {
        self.env("SCANGATE_REPORTS", uri)
    }

    /// S3 (moto, or a proxy in front of it) at `endpoint`, path-style: moto
    /// has no virtual-host buckets on 127.0.0.1.
    pub fn s3(self, endpoint: &str) -> Worker {
        self.env("AWS_ENDPOINT_URL_S3", endpoint)
            .env("SCANGATE_S3_FORCE_PATH_STYLE", "true")
    }

    /// How many jobs the worker runs at once.
    pub fn slots(self, n: usize) -> Worker {
        self.env("SCANGATE_CONCURRENCY", n.to_string())
    }

    pub fn rust_log(self, filter: &str) -> Worker {
        self.env("RUST_LOG", filter)
    }

    /// The health server on a port free a moment ago on 127.0.0.1
    /// ([`RunningWorker::health_addr`]).
    pub fn health(mut self) -> Worker {
        let port = integration_tests::process::free_port().expect("a free port");
        let addr = format!("127.0.0.1:{port}");
        self.health_addr = Some(addr.clone());
        self.env("SCANGATE_HEALTH_ADDR", addr)
    }

    /// The log at `path` (which outlives the worker) instead of in a
    /// temporary directory of its own.
    pub fn log(mut self, path: &Path) -> Worker {
        self.log = Some(path.to_owned());
        self
    }

    /// stdout in a file of its own ([`RunningWorker::stdout`]), for tests
    /// that parse every stdout line (EMF): a panic on stderr must not mix in.
    pub fn stdout_apart(mut self) -> Worker {
        self.stdout_apart = true;
        self
    }

    /// Under `taskset -c 0` with one tokio worker thread: what a busy
    /// one-vCPU task looks like, where blocking work could starve the rest.
    pub fn on_one_cpu(mut self) -> Worker {
        self.one_cpu = true;
        self.env("TOKIO_WORKER_THREADS", "1")
    }

    pub fn spawn(self) -> RunningWorker {
        let dir = tempfile::tempdir().unwrap();
        let log = self.log.unwrap_or_else(|| dir.path().join("worker.log"));
        let mut cmd = if self.one_cpu {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(corpus::scangate_bin());
            c
        } else {
            Command::new(corpus::scangate_bin())
        };
        cmd.arg("worker").env_clear().envs(&self.env);
        let stdout = self.stdout_apart.then(|| dir.path().join("stdout"));
        match &stdout {
            Some(out) => cmd.stdout(append_to(out)).stderr(append_to(&log)),
            None => cmd.log_to(&log),
        };
        die_with_this_thread(&mut cmd);
        RunningWorker {
            child: ChildGuard::new(cmd.spawn().expect("starting scangate worker")),
            log,
            stdout,
            health_addr: self.health_addr,
            _dir: dir,
        }
    }
}

/// SIGKILL the worker when the thread that spawned it ends, so that a test
/// binary killed or aborted before its destructors run leaves no worker
/// polling the (gone) emulators. The spawning thread is the test's own
/// (`#[tokio::test]` runs its body there), which ends only after the test.
fn die_with_this_thread(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A started `scangate worker`; killed (SIGKILL, by PID) and reaped on drop.
pub struct RunningWorker {
    child: ChildGuard,
    log: PathBuf,
    stdout: Option<PathBuf>,
    health_addr: Option<String>,
    _dir: tempfile::TempDir,
}

impl RunningWorker {
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Everything the worker wrote so far (its JSON logs are on stdout, a
    /// panic on stderr): both streams, stdout first when it is apart.
    pub fn log(&self) -> String {
        let out = self.stdout.as_deref().map(read).unwrap_or_default();
        out + &read(&self.log)
    }

    /// stdout alone; the whole log unless [`Worker::stdout_apart`].
    pub fn stdout(&self) -> String {
        read(self.stdout.as_deref().unwrap_or(&self.log))
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `127.0.0.1:PORT` of the health server ([`Worker::health`]).
    pub fn health_addr(&self) -> &str {
        self.health_addr
            .as_deref()
            .expect("the worker was started without Worker::health()")
    }

    pub fn exited(&self) -> bool {
        self.child.exited()
    }

    /// SIGTERM: the worker drains and exits. Nothing if it already exited
    /// ([`RunningWorker::wait_exit`] then says how).
    pub fn terminate(&self) {
        self.child.signal(libc::SIGTERM);
    }

    /// SIGKILL, as when a task is stopped hard, and reaps it.
    pub fn kill(&self) {
        self.child.kill();
    }

    /// The exit code, once the worker exits within `timeout`; `None` if it
    /// is still running (or was ended by a signal).
    pub fn wait_exit(&self, timeout: Duration) -> Option<i32> {
        self.child.wait_exit(timeout)
    }

    /// Waits until `needle` is in the log; panics with the log at `timeout`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the worker log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The job's snapshot once it has a result (from this worker or
    /// another). Panics with this worker's log at `timeout`, or at once if
    /// the worker exited: then no result is coming.
    pub async fn job_result(&self, emus: &Emulators, id: &str, timeout: Duration) -> JobSnapshot {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = emus.codepipeline.job(id)
                && s.result.is_some()
            {
                return s;
            }
            let exited = self.exited();
            if exited || Instant::now() > deadline {
                panic!(
                    "job {id} got no result (worker exited: {exited})\n--- worker log ---\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A child process signalled only by its PID while it is known to be
/// unreaped (so never a recycled PID), and killed and reaped on drop. The
/// mutex lets `&self` methods reap it: tests hold the worker shared across
/// `.await`s.
pub struct ChildGuard {
    child: Mutex<Child>,
    pid: u32,
}

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard {
            pid: child.id(),
            child: Mutex::new(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn lock(&self) -> MutexGuard<'_, Child> {
        // A test that panicked while holding it still wants the child killed.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn exited(&self) -> bool {
        !matches!(self.lock().try_wait(), Ok(None))
    }

    /// Sends `sig` unless the child already exited; the lock keeps it from
    /// being reaped (and its PID reused) in between.
    pub fn signal(&self, sig: libc::c_int) {
        let mut child = self.lock();
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) on our own unreaped child.
            let r = unsafe { libc::kill(self.pid as libc::pid_t, sig) };
            assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
        }
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill(&self) {
        let mut child = self.lock();
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn wait_exit(&self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.lock().try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
