//! Background helper processes (registries, S3 servers, …) that never outlive
//! the test binary.
//!
//! `Drop` alone is not enough: statics are never dropped, a `SIGKILL`ed or
//! aborted test process skips destructors, and `PR_SET_PDEATHSIG` fires when
//! the *thread* that spawned the child ends (which breaks a registry shared
//! between tests). So every process runs under a small `sh` watchdog whose
//! stdin is a pipe from us: when this process goes away for any reason the
//! pipe reaches EOF and the watchdog kills the child.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The watchdog: `"$@"` is the program and its arguments. It exits with the
/// child's status, so an early crash of the child is visible to us. The pipe
/// is duplicated to fd 3 because sh gives background jobs /dev/null as stdin.
const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
(cat <&3 >/dev/null; kill -KILL "$pid" 2>/dev/null) &
exec 3<&-
wait "$pid"
"#;

/// A child process (under the watchdog) killed on drop. stdout and stderr
/// go to `log_path`.
#[derive(Debug)]
pub struct BackgroundProcess {
    child: Child,
    // Held only so that dropping it closes the pipe the watchdog waits on.
    stdin: Option<ChildStdin>,
    log_path: PathBuf,
    name: String,
}

impl BackgroundProcess {
    /// Starts `program args…` with its output appended to `log_path`.
    pub fn spawn(program: &Path, args: &[&str], log_path: &Path) -> Result<Self> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            // own process group: Drop kills the watchdog and the child together
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin,
            log_path: log_path.to_owned(),
            name: program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// Process id of the watchdog, which is also the process group id.
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the child has exited.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// The last `max` bytes of the log, for error messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.log_path, max)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills the whole group and reaps the watchdog. Idempotent.
    pub fn kill(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let pgid = self.child.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals our own child's group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for BackgroundProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The log file a worker's stdout and stderr both go to (its JSON logs are
/// on stdout, as on ECS; a panic would be on stderr): each handle appends,
/// so neither overwrites the other.
pub fn append_to(path: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Sends a command's stdout and stderr to one log file ([`append_to`]).
pub trait LogTo {
    fn log_to(&mut self, path: &Path) -> &mut Self;
}

impl LogTo for Command {
    fn log_to(&mut self, path: &Path) -> &mut Self {
        self.stdout(append_to(path)).stderr(append_to(path))
    }
}

pub fn log_tail(path: &Path, max: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    if s.len() > max {
        let mut cut = s.len() - max;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("…{}", &s[cut..]);
    }
    s
}

/// A port that was free a moment ago on 127.0.0.1. Callers retry on a bind
/// race, which is rare but possible with parallel tests.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// HTTP status of `GET path` on `addr`, with a plain std socket so that it
/// works inside and outside a tokio runtime. `None` if nothing answers.
pub fn http_get_status(addr: &str, path: &str, timeout: Duration) -> Option<u16> {
    let sa: SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sa, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let line = std::str::from_utf8(&buf[..got]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until `GET path` answers with any HTTP status, failing early (with
/// the log) when the process exits.
pub fn wait_http(
    proc_: &mut BackgroundProcess,
    addr: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = proc_.try_wait()? {
            bail!(
                "{} exited ({status}) before {addr} answered; log {}:\n{}",
                proc_.name(),
                proc_.log_path().display(),
                proc_.log_tail(4000)
            );
        }
        if let Some(code) = http_get_status(addr, path, Duration::from_millis(500)) {
            return Ok(code);
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not answer GET http://{addr}{path} within {timeout:?}; log {}:\n{}",
                proc_.name(),
                proc_.log_path().display(),
                proc_.log_tail(4000)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// moto's S3-compatible server (`moto_server`, from `.ci/run`'s
/// `target/venv`) on a free 127.0.0.1 port; killed on drop like the registry.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_S3` (path-style addressing).
    pub endpoint: String,
    process: BackgroundProcess,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// `SCANGATE_MOTO_SERVER`, else `<workspace>/target/venv/bin/moto_server`,
    /// else `moto_server` on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("SCANGATE_MOTO_SERVER").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p)).filter(|p| p.is_file());
        }
        let venv = crate::corpus::workspace_dir().join("target/venv/bin/moto_server");
        if venv.is_file() {
            return Some(venv);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("moto_server"))
                .find(|p| p.is_file())
        })
    }

    pub fn start() -> Result<Self> {
        let bin = Self::binary().context(
            "moto_server not installed: run .ci/run (it makes target/venv) or `python3 -m venv target/venv && target/venv/bin/pip install 'moto[server]'`",
        )?;
        let mut last_err = None;
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("scangate-moto-")
                .tempdir()?;
            let port = free_port()?.to_string();
            let log = dir.path().join("moto.log");
            let mut process =
                BackgroundProcess::spawn(&bin, &["-H", "127.0.0.1", "-p", &port], &log)?;
            let addr = format!("127.0.0.1:{port}");
            match wait_http(&mut process, &addr, "/moto-api/", Duration::from_secs(30)) {
                Ok(_) => {
                    return Ok(Self {
                        endpoint: format!("http://{addr}"),
                        process,
                        _dir: dir,
                    });
                }
                Err(e) if format!("{e:#}").contains("Address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap())
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.process.log_tail(max)
    }
}

/// Runs `cmd` to its end, returning its output and its peak RSS in KiB
/// (`wait4`'s rusage of that one child, so tests running in parallel do not
/// mix their children as `RUSAGE_CHILDREN` would).
pub fn run_measured(mut cmd: std::process::Command) -> (std::process::Output, i64) {
    use std::os::unix::process::ExitStatusExt as _;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning scangate");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; `pid` is our own
    // child, not yet reaped (the `Child` is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child);
    let out = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    };
    (out, usage.ru_maxrss)
}
